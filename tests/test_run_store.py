"""The main job on a fresh clone, re-runs, kills and torn files: the grid's runs are real processes; the commands
themselves run in this process (``conftest.in_process``).

Each scenario ends with the report building from the records (the README's main command ends that way)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import in_process

from hinet.image_records import read_image_metrics
from hinet.records import Record, append_records, read_records

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "results" / "records" / "components.jsonl"


def ablate(results: Path, *extra: str) -> subprocess.CompletedProcess:
    argv = ["--variants", "full", "no_sam", "--seeds", "0", "--iters", "2", "--val-images", "4", "--images", "1",
            "--no-progress", "--runs-dir", str(results.parent / "runs"),
            "--records", str(results / "records" / "components.jsonl"), *extra]
    return in_process("ablations.run", argv)  # the grid's runs are real processes


def train(run_dir: Path, records: Path, *extra: str) -> subprocess.CompletedProcess:
    argv = ["--no-progress", "--model-set", "width=4", "--model-set", "depth=2", "--recipe-set", "crop=32",
            "--recipe-set", "batch_size=4", "--recipe-set", "val_limit=2", "--recipe-set", "log_every=1", "--iters",
            "4", "--ckpt-every", "2", "--run-dir", str(run_dir), "--records", str(records), "--no-tensorboard", *extra]
    return in_process("hinet.train", argv)


def report(records: Path, out: Path) -> subprocess.CompletedProcess:
    return in_process("hinet.report", ["--records", str(records.parent), "--out", str(out)], "command")


def tables(results: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((results / "tables").glob("*")) if p.suffix in (".md", ".csv")}


@pytest.mark.slow
def test_fresh_clone_with_committed_records_then_ablate_twice(tmp_path):
    results = tmp_path / "results"
    (results / "records").mkdir(parents=True)
    if COMMITTED.exists():  # a clone holds the committed records of the same run ids, with their per-image files
        same = ("components-full-sidd-proxy-synthetic-s0", "components-no_sam-sidd-proxy-synthetic-s0")
        rows = [json.loads(line) for line in COMMITTED.read_text().splitlines()]
        append_records(results / "records" / "components.jsonl",
                       [Record(**{k: v for k, v in r.items() if not k.startswith("_")}) for r in rows
                        if r["run_id"] in same])  # the committed rows of the two run ids trained again
        for run in same:
            shutil.copytree(COMMITTED.parent / "per_image" / run, results / "records" / "per_image" / run)
    first = ablate(results)
    assert first.returncode == 0, first.stdout + first.stderr
    before = (results / "records" / "components.jsonl").read_bytes()
    made = tables(results)
    assert any(name.startswith("components_") for name in made)
    second = ablate(results)  # nothing left to train: the same report again
    assert second.returncode == 0, second.stdout + second.stderr
    assert "2 runs, 2 already done" in second.stdout
    assert (results / "records" / "components.jsonl").read_bytes() == before
    assert tables(results) == made
    df = read_records(results / "records")
    new = df[df["run_id"].str.contains("components-full-sidd-proxy-synthetic-s0")]
    assert new["step"].max() == 2  # the fresh run superseded the committed 240-step rows of the same run id
    assert (results / "images" / "components_sidd_proxy_synthetic" / "no_sam").is_dir()


def test_kill_after_the_final_validation_then_resume_then_report(tmp_path):
    records = tmp_path / "results" / "records" / "r.jsonl"
    done = train(tmp_path / "run", records)
    assert done.returncode == 0, done.stderr
    # the state a kill between the final validation and done.json leaves: final rows and checkpoint, no done.json
    (tmp_path / "run" / "done.json").unlink()
    (tmp_path / "run" / "model.pth").unlink()
    again = train(tmp_path / "run", records, "--resume")
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "run" / "done.json").exists()
    all_rows = read_records(records, all_versions=True)
    final = all_rows[(all_rows["split"] == "val") & (all_rows["step"] == 4)]
    df = read_records(records)
    val = df[df["split"] == "val"]
    assert not val.duplicated(["dataset", "protocol", "metric", "step"]).any()  # one value per identity
    assert len(final) == 2 * len(val[val["step"] == 4])  # written twice, read once
    built = report(records, tmp_path / "results")
    assert built.returncode == 0, built.stderr


def test_torn_record_tail_then_resume_then_report(tmp_path):
    records = tmp_path / "results" / "records" / "r.jsonl"
    first = train(tmp_path / "run", records, "--iters", "4")
    assert first.returncode == 0
    (tmp_path / "run" / "done.json").unlink()
    raw = records.read_bytes()
    records.write_bytes(raw[:-37])  # power loss in the middle of the last batch
    again = train(tmp_path / "run", records, "--resume")
    assert again.returncode == 0, again.stderr
    df = read_records(records)
    assert sorted(df[df["metric"] == "loss"]["step"]) == [1, 2, 3, 4]
    assert not read_image_metrics(records.parent / "per_image").duplicated(
        ["run_id", "protocol", "metric", "step", "image"]).any()
    built = report(records, tmp_path / "results")
    assert built.returncode == 0, built.stderr


def test_missing_validation_set_fails_before_the_first_step(tmp_path):
    import numpy as np

    from hinet.data.io import write_image

    data = tmp_path / "data" / "SIDD"
    scene = data / "Data" / "0001_001_S6_00100_00060_3200_L"
    scene.mkdir(parents=True)
    rng = np.random.default_rng(0)
    import torch

    clean = torch.from_numpy(rng.random((3, 64, 64), dtype=np.float32))
    write_image(scene / "0001_GT_SRGB_010.PNG", clean)
    write_image(scene / "0001_NOISY_SRGB_010.PNG", clean)
    out = train(tmp_path / "run", tmp_path / "r.jsonl", "--data", str(tmp_path / "data"))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "Validation" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run" / "checkpoints" / "last.pth").exists()
    assert not (tmp_path / "r.jsonl").exists() or read_records(tmp_path / "r.jsonl").empty


def test_unwritable_outputs_fail_before_training_and_name_the_path(tmp_path):
    (tmp_path / "blocked").write_text("a file where the records folder should be")
    out = train(tmp_path / "run", tmp_path / "blocked" / "r.jsonl")
    assert out.returncode == 2 and "blocked" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "run" / "checkpoints" / "last.pth").exists()
    out = train(tmp_path / "run2", tmp_path / "r.jsonl", "--images-dir", str(tmp_path / "blocked" / "img"))
    assert out.returncode == 2 and "blocked" in out.stderr and "Traceback" not in out.stderr
