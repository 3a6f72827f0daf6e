"""Training engine: exact resume after a kill, refusal of conflicting run directories, non-finite loss,
two-process DDP (gloo) against one process, and gradient accumulation. Runs go through the command line; kills,
torchrun and concurrent trainers are real processes, the rest run in this process (:func:`run`)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import in_process

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
TINY = ["--recipe", "sidd-proxy", "--no-progress", "--model-set", "width=4", "--model-set", "depth=2",
        "--recipe-set", "crop=32", "--recipe-set", "batch_size=4", "--recipe-set", "val_limit=2",
        "--recipe-set", "log_every=1"]


def train_cmd(run_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "hinet.train", *TINY, "--run-dir", str(run_dir), *extra]


def run(cmd: list[str], check: bool = True) -> subprocess.CompletedProcess:
    """Run a command; ``python -m hinet.train`` runs in this process (its CLI, ``hinet.train.main``, on one thread as
    the real processes of this file run), which saves a process start per run. Kills, torchrun and the lock between
    two trainers use real processes (``subprocess.Popen`` below)."""
    if cmd[:3] == [sys.executable, "-m", "hinet.train"]:
        done = in_process("hinet.train", cmd[3:])
    else:
        done = subprocess.run(cmd, env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=300)
    if check and done.returncode != 0:
        raise AssertionError(f"{cmd} failed:\n{done.stdout}\n{done.stderr}")
    return done


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "model.pth", weights_only=True)["state_dict"]


def relative_weight_difference(a_dir: Path, b_dir: Path) -> float:
    a, b = weights(a_dir), weights(b_dir)
    diff = sum(float((a[k] - b[k]).float().square().sum()) for k in a)
    norm = sum(float(a[k].float().square().sum()) for k in a)
    return (diff / norm) ** 0.5


def losses(run_dir: Path) -> list[float]:
    """The run's training-loss curve, as the trainer recorded it (latest value per step)."""
    from hinet.records import read_records

    df = read_records(run_dir / "records.jsonl")
    return df[(df["split"] == "train") & (df["metric"] == "loss")].sort_values("step")["value"].tolist()


def test_resume_after_kill_matches_uninterrupted_run(tmp_path):
    iters = ["--iters", "100", "--ckpt-every", "5"]
    run(train_cmd(tmp_path / "straight", *iters))
    killed = tmp_path / "killed"
    proc = subprocess.Popen(train_cmd(killed, *iters), env=ENV, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    ckpt = killed / "checkpoints" / "last.pth"
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "done.json").exists(), "the run finished before it could be killed"
    step = torch.load(ckpt, weights_only=True)["step"]
    assert 0 < step < 100
    refused = run(train_cmd(killed, *iters), check=False)  # same spec, no --resume: refused
    assert refused.returncode != 0 and "--resume" in refused.stderr
    run(train_cmd(killed, *iters, "--resume"))
    a, b = weights(tmp_path / "straight"), weights(killed)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed run differs from the uninterrupted one"
    assert losses(killed)[-1] == losses(tmp_path / "straight")[-1]


def test_conflicting_run_directory_is_refused(tmp_path):
    run(train_cmd(tmp_path / "r", "--iters", "2", "--seed", "0"))
    other = run(train_cmd(tmp_path / "r", "--iters", "2", "--seed", "1"), check=False)
    assert other.returncode != 0 and "holds another run" in other.stderr
    again = run(train_cmd(tmp_path / "r", "--iters", "2", "--seed", "0"))  # finished: not repeated
    assert json.loads(again.stdout[again.stdout.index("{"):])  # prints the stored final metrics
    from hinet.records import read_records

    df = read_records(tmp_path / "r" / "records.jsonl", all_versions=True)  # every row ever written
    assert ((df["split"] == "train") & (df["metric"] == "loss")).sum() == 2


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    out = run(train_cmd(tmp_path / "r", "--iters", "50", "--ckpt-every", "1", "--recipe-set", "lr=1e30",
                        "--recipe-set", "eta_min=0", "--recipe-set", "grad_clip=1e30"), check=False)
    assert out.returncode != 0 and "loss became" in out.stderr
    state = torch.load(tmp_path / "r" / "checkpoints" / "last.pth", weights_only=True)
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    assert not (tmp_path / "r" / "done.json").exists()


def test_two_process_ddp_matches_single_process(tmp_path):
    iters = ["--iters", "6"]
    run(train_cmd(tmp_path / "single", *iters))
    ddp = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "hinet.train",
           *TINY, "--run-dir", str(tmp_path / "ddp"), *iters]
    run(ddp)
    config = json.loads((tmp_path / "ddp" / "config.json").read_text())
    assert config["world_size"] == 2
    assert losses(tmp_path / "ddp") == pytest.approx(losses(tmp_path / "single"), rel=1e-4)
    # Adam divides by the gradient's running RMS, so float-order noise in near-zero gradients can move
    # single weights by up to ~lr per step; the network as a whole must still agree closely.
    assert relative_weight_difference(tmp_path / "single", tmp_path / "ddp") < 1e-4


def test_gradient_accumulation_keeps_the_global_batch(tmp_path):
    iters = ["--iters", "4"]
    run(train_cmd(tmp_path / "full", *iters))
    out = run(train_cmd(tmp_path / "accum", *iters, "--micro-batch", "2"))
    assert "2 accumulation step(s)" in out.stdout
    assert losses(tmp_path / "accum") == pytest.approx(losses(tmp_path / "full"), rel=1e-4)


def test_fast_switches_keep_the_loss_curve(tmp_path):
    iters = ["--iters", "4"]
    run(train_cmd(tmp_path / "eager", *iters))
    run(train_cmd(tmp_path / "fast", *iters, "--fused-norm", "--inplace-act", "--channels-last"))
    assert losses(tmp_path / "fast") == pytest.approx(losses(tmp_path / "eager"), rel=1e-4)


def test_training_on_prepared_crops(tmp_path):
    from hinet.data.prepare import prepare_crops
    from hinet.data.synthetic import SyntheticPairs

    pairs = SyntheticPairs("denoise", "train", size=96, count=2, seed=0)
    assert prepare_crops(pairs, tmp_path / "crops", size=64, stride=32, workers=0) == 8  # 2 x 2 per image
    run(train_cmd(tmp_path / "r", "--iters", "2", "--train-crops", str(tmp_path / "crops")))
    spec = json.loads((tmp_path / "r" / "config.json").read_text())["spec"]
    assert spec["train_crops"] == str(tmp_path / "crops")


def test_missing_dataset_is_a_clear_error(tmp_path):
    out = run(train_cmd(tmp_path / "r", "--iters", "2", "--data", str(tmp_path / "nowhere")), check=False)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert "SIDD" in out.stderr and "abdokamel.github.io/sidd" in out.stderr


def _write_pairs(folder: Path, names: list[str], size: tuple[int, int], seed: int) -> None:
    """Tiny PNG pairs in the flat input/target layout of the published datasets."""
    from hinet.data.io import write_image

    g = torch.Generator().manual_seed(seed)
    for sub in ("input", "target"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for name in names:
        clean = torch.rand(3, *size, generator=g)
        write_image(folder / "target" / f"{name}.png", clean)
        write_image(folder / "input" / f"{name}.png", (clean + 0.1 * torch.randn(3, *size, generator=g)).clamp(0, 1))


def _write_sidd(root: Path) -> None:
    import numpy as np
    from scipy.io import savemat

    from hinet.data.io import write_image

    g = torch.Generator().manual_seed(0)
    for scene in ("0001_001_S6_00100_00060_3200_L", "0002_001_S6_00100_00020_3200_N"):
        (root / "Data" / scene).mkdir(parents=True)
        clean = torch.rand(3, 80, 96, generator=g)
        write_image(root / "Data" / scene / f"{scene[:4]}_GT_SRGB_010.PNG", clean)
        write_image(root / "Data" / scene / f"{scene[:4]}_NOISY_SRGB_010.PNG",
                    (clean + 0.05 * torch.randn(3, 80, 96, generator=g)).clamp(0, 1))
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 256, (1, 2, 256, 256, 3), dtype=np.uint8)
    noisy = np.clip(gt.astype(int) + rng.integers(-10, 11, gt.shape), 0, 255).astype(np.uint8)
    savemat(root / "ValidationGtBlocksSrgb.mat", {"ValidationGtBlocksSrgb": gt})
    savemat(root / "ValidationNoisyBlocksSrgb.mat", {"ValidationNoisyBlocksSrgb": noisy})


@pytest.mark.parametrize("recipe", ["sidd-proxy", "gopro-proxy", "rain13k-proxy"])
def test_trains_on_each_real_layout(tmp_path, recipe):
    from hinet.data.rain13k import RAIN13K_TEST_SETS

    data = tmp_path / "datasets"
    if recipe == "sidd-proxy":
        _write_sidd(data / "SIDD")
    elif recipe == "gopro-proxy":
        _write_pairs(data / "GoPro" / "train", ["a", "b"], (48, 64), 1)
        _write_pairs(data / "GoPro" / "test", ["c"], (48, 64), 2)
    else:
        _write_pairs(data / "Rain13k" / "train", ["a", "b"], (48, 64), 1)
        for k, name in enumerate(RAIN13K_TEST_SETS):
            _write_pairs(data / "Rain13k" / "test" / name, ["x"], (40, 56), 10 + k)
    cmd = train_cmd(tmp_path / "r", "--iters", "2", "--data", str(data))
    cmd[cmd.index("sidd-proxy")] = recipe
    out = run(cmd)
    metrics = json.loads(out.stdout[out.stdout.index("{"):])
    expected = {"sidd-proxy": ["SIDD"], "gopro-proxy": ["GoPro"], "rain13k-proxy": list(RAIN13K_TEST_SETS)}[recipe]
    assert sorted({key.split("/")[0] for key in metrics}) == sorted(expected)
    records = (tmp_path / "r" / "records.jsonl").read_text()
    assert '"synthetic":false' in records.replace(" ", "") and '"recipe":"proxy"' in records.replace(" ", "")
    from hinet.image_records import read_image_metrics

    images = read_image_metrics(tmp_path / "r" / "per_image")  # every per-image row names its scene
    scenes = {"sidd-proxy": {"0000"}, "gopro-proxy": {"c"}, "rain13k-proxy": {"x"}}[recipe]  # 2 blocks of image 0
    assert set(images["scene"]) == scenes and images["scene"].notna().all()


def test_invalid_overrides_are_clear_errors(tmp_path):
    bad = run(train_cmd(tmp_path / "r", "--model-set", "width=5"), check=False)
    assert bad.returncode != 0 and "HINetConfig.width=5" in bad.stderr and "Traceback" not in bad.stderr
    bad = run(train_cmd(tmp_path / "r", "--recipe-set", "augment=rotate"), check=False)
    assert bad.returncode != 0 and "Recipe.augment=" in bad.stderr and "Traceback" not in bad.stderr
    bad = run(train_cmd(tmp_path / "r", "--recipe-set", "wf=64"), check=False)
    assert bad.returncode != 0 and "FIELD one of" in bad.stderr


def test_model_set_csff_no_trains_a_network_without_csff_and_stores_false(tmp_path):
    """The silent-wrong-result case: 'no' must be parsed as False, not kept as a truthy string."""
    import hinet

    run(train_cmd(tmp_path / "r", "--iters", "1", "--model-set", "csff=no", "--model-set", "sam=off"))
    stored = json.loads((tmp_path / "r" / "config.json").read_text())["spec"]["model"]
    assert stored["csff"] is False and stored["sam"] is False
    trained = hinet.load(tmp_path / "r" / "model.pth")
    assert trained.cfg.csff is False and trained.cfg.sam is False
    assert not [name for name, _ in trained.named_modules() if "csff" in name or "sam" in name.split(".")[0]]
    frozen = run(train_cmd(tmp_path / "p", "--recipe-set", "proxy=false"), check=False)
    assert frozen.returncode == 2 and "Recipe.proxy cannot be overridden" in frozen.stderr


def test_a_kill_right_after_a_checkpoint_loses_no_validation_and_a_second_trainer_is_refused(tmp_path, capsys):
    """Every validation step is a checkpoint step by default. The validation of a step runs before its
    checkpoint, so a process killed the moment a checkpoint appears has recorded every validation up to
    that step, and the resume (which starts after it) never skips one. While the first process trains,
    a second one on the same run directory is refused by the run's lock."""
    from hinet.image_records import image_file, image_store
    from hinet.records import read_records
    from hinet.train import main

    run_dir = tmp_path / "run"
    args = [*TINY, "--run-dir", str(run_dir), "--iters", "6", "--recipe-set", "val_every=2", "--no-tensorboard",
            "--recipe-set", "val_limit=1"]
    proc = subprocess.Popen([sys.executable, "-m", "hinet.train", *args], env=ENV, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = run_dir / "checkpoints" / "last.pth"
    deadline = time.time() + 120
    while not (run_dir / "config.json").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.001)
    capsys.readouterr()
    assert main([*args, "--resume"]) == 2  # the first process holds the run's lock
    err = capsys.readouterr().err
    assert "is being trained by another process" in err and f"pid {proc.pid}" in err, err
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.0005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (run_dir / "done.json").exists(), "the run finished before it could be killed"
    step = torch.load(ckpt, weights_only=True)["step"]
    records = run_dir / "records.jsonl"
    df = read_records(records)
    validated = set(df.loc[df["split"] == "val", "step"].dropna().astype(int))
    assert {s for s in (2, 4, 6) if s <= step} <= validated, (step, validated)
    assert main([*args, "--resume"]) == 0  # the lock died with the killed process
    df = read_records(records)
    assert set(df.loc[df["split"] == "val", "step"].dropna().astype(int)) == {2, 4, 6}
    assert all(image_file(image_store(records), "run", s).exists() for s in (2, 4, 6))
    from hinet.report.consistency import check_per_image

    check_per_image(df, image_store(records), records)  # what a killed and resumed run wrote is consistent
