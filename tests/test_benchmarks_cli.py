"""The benchmark commands, run in-process on synthetic data and on tiny real-layout datasets in tmp_path.

Datasets are written in the published layouts: SIDD validation/benchmark blocks as MAT v5 files
(uint8, (images, blocks, 256, 256, 3)), GoPro and HIDE as MPRNet's flat ``test/{input,target}`` PNG folders,
Rain13k as ``test/<set>/{input,target}``. Networks are width-4, depth-3 HINets saved in the official format
(two-stage networks) or ours.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

import hinet
from benchmarks import gopro, rain13k, sidd
from hinet.config import PRESETS, scaled
from hinet.data import GoPro, Rain13k, write_image
from hinet.data.io import to_uint8
from hinet.evaluate import PROTOCOLS, evaluate
from hinet.metrics import psnr, ssim
from hinet.records import read_records
from hinet.tasks import NATURAL_PHOTOS_SET

RAIN_SETS = ("Test100", "Rain100H", "Rain100L", "Test2800", "Test1200")
REPO = Path(__file__).resolve().parents[1]


def _pair(rng: np.random.Generator, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    clean = torch.from_numpy(rng.random((3, h, w), dtype=np.float32))
    degraded = (clean + torch.from_numpy(rng.normal(0, 0.05, (3, h, w)).astype(np.float32))).clamp(0, 1)
    return degraded, clean


def _write_pairs(folder: Path, rng: np.random.Generator, count: int, h: int, w: int) -> None:
    for k in range(count):
        degraded, clean = _pair(rng, h, w)
        for side, img in (("input", degraded), ("target", clean)):
            (folder / side).mkdir(parents=True, exist_ok=True)
            write_image(folder / side / f"{k + 1}.png", img)


def _net(preset: str, seed: int) -> hinet.HINet:
    torch.manual_seed(seed)
    return hinet.HINet(scaled(PRESETS[preset], width=4, depth=3)).eval()


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """One data folder holding SIDD (validation + benchmark), GoPro, HIDE and Rain13k, all tiny."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    gt = rng.integers(20, 236, (1, 2, 256, 256, 3), dtype=np.uint8)
    noisy = np.clip(gt + rng.normal(0, 8, gt.shape), 0, 255).astype(np.uint8)
    (root / "SIDD").mkdir()
    scipy.io.savemat(root / "SIDD" / "ValidationNoisyBlocksSrgb.mat", {"ValidationNoisyBlocksSrgb": noisy})
    scipy.io.savemat(root / "SIDD" / "ValidationGtBlocksSrgb.mat", {"ValidationGtBlocksSrgb": gt})
    scipy.io.savemat(root / "SIDD" / "BenchmarkNoisyBlocksSrgb.mat", {"BenchmarkNoisyBlocksSrgb": noisy[:, ::-1]})
    _write_pairs(root / "GoPro" / "test", rng, 2, 64, 96)
    _write_pairs(root / "HIDE" / "test", rng, 2, 64, 96)
    for k, name in enumerate(RAIN_SETS):
        _write_pairs(root / "Rain13k" / "test" / name, rng, 2, 40 + 4 * k, 48)
    return root


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory) -> dict[str, Path]:
    """Official-format (2-stage) checkpoints for GoPro/Rain13k, ours for SIDD, and one whose output exceeds 1."""
    root = tmp_path_factory.mktemp("ckpt")
    out = {"gopro_a": hinet.save_official(_net("gopro", 1), root / "gopro_a.pth"),
           "gopro_b": hinet.save_official(_net("gopro", 2), root / "gopro_b.pth"),
           "rain": hinet.save_official(_net("rain13k", 3), root / "rain.pth"),
           "sidd": hinet.save(_net("sidd-1x", 4), root / "sidd.pth")}
    bright = _net("sidd-1x", 4)
    with torch.no_grad():
        bright.head.bias += 0.3  # residual output = input + ~0.3: pixels above 1.0 in every block
    out["bright"] = hinet.save(bright, root / "bright.pth")
    return out


@pytest.fixture(autouse=True)
def _records_go_to_tmp(tmp_path, monkeypatch):
    """Every benchmark command appends records to results/records/ under the working directory by default:
    run the tests from a temporary one so that they never touch the repository's results."""
    monkeypatch.chdir(tmp_path)


def _run(module, argv: list[str], capsys) -> tuple[int, str, str]:
    code = module.main([*argv, "--no-progress"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _table_row(out: str, *cells: str) -> list[str]:
    """The cells of the first table line whose leading cells are ``cells``."""
    for line in out.splitlines():
        parts = [p.strip() for p in line.strip().strip("|").split("|")]
        if parts[:len(cells)] == list(cells):
            return parts
    raise AssertionError(f"no table row starting with {cells} in:\n{out}")


# ------------------------------------------------------------------------------------------ synthetic


def test_sidd_synthetic_says_synthetic_everywhere(tmp_path, capsys) -> None:
    js, rec = tmp_path / "out.json", tmp_path / "rec.jsonl"
    code, out, _ = _run(sidd, ["--limit", "2", "--json", str(js), "--records", str(rec)], capsys)
    assert code == 0
    summary = json.loads(js.read_text())
    assert summary["synthetic"] is True and "synthetic" in summary["note"]
    assert summary["method"] == "degraded input" and summary["weights"] == []
    assert [(r["dataset"], r["protocol"]) for r in summary["results"]] == [
        (d, p) for d in ("SIDD (synthetic)", NATURAL_PHOTOS_SET) for p in ("denoise/official", "denoise/clamped")]
    for r in summary["results"]:
        assert r["synthetic"] is True and "synthetic" in r["dataset"] and "published" not in r
        assert r["count"] == 2 and 10 < r["metrics"]["psnr"] < 60
    for line in out.splitlines():
        if re.search(r"[A-Za-z0-9]", line):
            assert "synthetic" in line.lower(), line
    assert "not comparable with the published numbers" in out
    assert "39.99" not in out and "pub. PSNR" not in out
    records = read_records(rec)
    assert set(records["synthetic"]) == {True} and set(records["family"]) == {"checkpoint_eval"}
    assert set(records["recipe"]) == {"eval-subset"}  # --limit 2 of 8
    assert set(records["metric"]) == {"psnr", "ssim"}


def test_rain13k_synthetic_average_is_over_the_five_stand_ins_only(tmp_path, capsys) -> None:
    js = tmp_path / "r.json"
    code, _, _ = _run(rain13k, ["--synthetic-size", "32", "--synthetic-count", "1", "--json", str(js)], capsys)
    assert code == 0
    results = json.loads(js.read_text())["results"]
    assert [r["dataset"] for r in results] == [*(f"{s} (synthetic)" for s in RAIN_SETS), NATURAL_PHOTOS_SET,
                                               "Average (synthetic)"]
    mean = sum(r["metrics"]["psnr"] for r in results[:5]) / 5  # the natural photographs are not in it
    assert results[-1]["metrics"]["psnr"] == pytest.approx(mean, abs=1e-12) and results[-1]["count"] == 5


def test_module_entry_point_runs_as_a_subprocess(tmp_path) -> None:
    js = tmp_path / "g.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.gopro", "--synthetic-size", "32", "--synthetic-count", "1",
         "--no-progress", "--json", str(js)], cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)})  # this checkout's code, not an installed copy
    assert proc.returncode == 0, proc.stderr
    assert "GoPro (synthetic)" in proc.stdout
    assert json.loads(js.read_text())["results"][0]["description"].startswith("deblur/official [tiled256")


# ------------------------------------------------------------------------------------------ real data


def test_sidd_real_data_beside_the_published_numbers(data, ckpts, tmp_path, capsys) -> None:
    js = tmp_path / "s.json"
    code, out, _ = _run(sidd, ["--data", str(data), "--weights", str(ckpts["sidd"]), "--json", str(js)], capsys)
    assert code == 0
    assert "synthetic" not in out.lower()
    assert "PSNR diff" in out and "SSIM diff" in out
    summary = json.loads(js.read_text())
    assert summary["synthetic"] is False and summary["method"] == "sidd"
    official = summary["results"][0]
    assert official["dataset"] == "SIDD" and official["count"] == 2
    pub = {p["method"]: p for p in official["published"]}
    assert pub["HINet"]["values"]["psnr"] == 39.99 and pub["HINet 0.5x"]["values"]["psnr"] == 39.82
    assert pub["HINet"]["difference"]["psnr"] == pytest.approx(official["metrics"]["psnr"] - 39.99)
    row = _table_row(out, "SIDD", "denoise/official", "2", f"{official['metrics']['psnr']:.2f}", "", "HINet")
    assert row[6] == "39.99" and row[7] == f"{official['metrics']['psnr'] - 39.99:+.2f}"


def test_sidd_explains_the_official_peak_heuristic(data, ckpts, tmp_path, capsys) -> None:
    js = tmp_path / "s.json"
    code, out, _ = _run(sidd, ["--data", str(data), "--weights", str(ckpts["bright"]), "--json", str(js)], capsys)
    assert code == 0
    official, clamped = (r["metrics"]["psnr"] for r in json.loads(js.read_text())["results"])
    assert official - clamped > 40  # every block exceeds 1.0: scored with peak 255
    assert "1 when the block's output max <= 1.0, else 255" in out
    assert "2 of 2 blocks" in out


def test_sidd_without_peak_gap_prints_no_explanation(data, capsys) -> None:
    code, out, _ = _run(sidd, ["--data", str(data)], capsys)  # the noisy input never exceeds 1.0
    assert code == 0 and "degraded input" in out and "else 255" not in out


def test_sidd_submission(data, ckpts, tmp_path, capsys) -> None:
    dest = tmp_path / "sub" / "SubmitSrgb.mat"
    code, out, _ = _run(sidd, ["--data", str(data), "--weights", str(ckpts["sidd"]), "--submission", str(dest),
                               "--batch-size", "2"], capsys)
    assert code == 0 and str(dest) in out
    mat = scipy.io.loadmat(dest)
    blocks = mat["DenoisedBlocksSrgb"]
    assert blocks.dtype == np.uint8 and blocks.shape == (1, 2, 256, 256, 3)
    assert mat["TimeMPSrgb"].item() > 0
    noisy = scipy.io.loadmat(data / "SIDD" / "BenchmarkNoisyBlocksSrgb.mat")["BenchmarkNoisyBlocksSrgb"]
    x = torch.from_numpy(noisy[0, 1]).permute(2, 0, 1)[None].float() / 255  # (256, 256, 3) -> (1, 3, 256, 256)
    with torch.no_grad():
        expected = to_uint8(hinet.load(ckpts["sidd"])(x)[-1])[0].permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(blocks[0, 1], expected)


def test_sidd_submission_needs_weights_and_data(data, tmp_path) -> None:
    with pytest.raises(SystemExit) as exc:
        sidd.main(["--data", str(data), "--submission", str(tmp_path / "s.mat")])
    assert exc.value.code == 2


def test_gopro_and_hide_beside_the_published_numbers(data, ckpts, capsys) -> None:
    code, out, _ = _run(gopro, ["--data", str(data), "--weights", str(ckpts["gopro_a"])], capsys)
    assert code == 0
    gopro_row = _table_row(out, "GoPro", "deblur/official", "2")
    assert gopro_row[5:8] == ["HINet (paper)", "32.71", f"{float(gopro_row[3]) - 32.71:+.2f}"]
    assert _table_row(out, "GoPro", "deblur/official", "2", gopro_row[3], gopro_row[4], "HINet (README)")[6] == "32.77"
    hide_row = _table_row(out, "HIDE", "deblur/official", "2")
    assert hide_row[5:7] == ["HINet", "30.33"] and hide_row[8:] == ["", ""]  # no published HIDE SSIM
    assert "PSNR diff" in out


def test_gopro_degraded_input_scores_the_input_files(data, tmp_path, capsys) -> None:
    js = tmp_path / "g.json"
    code, _, _ = _run(gopro, ["--data", str(data), "--json", str(js)], capsys)
    assert code == 0
    ds = GoPro(data / "GoPro", "test")
    blurry, sharp = (torch.stack([ds[i][k] for i in range(len(ds))]) for k in (0, 1))
    result = json.loads(js.read_text())["results"][0]
    assert result["dataset"] == "GoPro" and result["metrics"]["psnr"] == pytest.approx(
        float(psnr(blurry, sharp).mean()), abs=1e-9)
    assert result["metrics"]["ssim"] == pytest.approx(float(ssim(blurry, sharp).mean()), abs=1e-9)


def test_gopro_ensemble_tta_two_protocols_images_records(data, ckpts, tmp_path, capsys) -> None:
    js, rec, imgs = tmp_path / "g.json", tmp_path / "r.jsonl", tmp_path / "imgs"
    argv = ["--data", str(data), "--weights", str(ckpts["gopro_a"]), "--weights", str(ckpts["gopro_b"]), "--tta",
            "--protocol", "official", "--protocol", "matlab", "--json", str(js), "--records", str(rec),
            "--save-images", str(imgs)]
    code, out, _ = _run(gopro, argv, capsys)
    assert code == 0
    summary = json.loads(js.read_text())
    assert summary["method"] == "ensemble(gopro_a+gopro_b)" and len(summary["weights"]) == 2 and summary["tta"]
    assert [(r["dataset"], r["protocol"]) for r in summary["results"]] == [
        (s, f"deblur/{p}") for s in ("GoPro", "HIDE") for p in ("official", "matlab")]
    models = [hinet.load(ckpts["gopro_a"]), hinet.load(ckpts["gopro_b"])]
    direct = evaluate(models, {"GoPro": GoPro(data / "GoPro", "test")}, [PROTOCOLS["deblur"]["matlab"]], tta=True,
                      progress=False)[0]
    assert summary["results"][1]["metrics"] == pytest.approx(direct.metrics, abs=1e-9)
    assert "8 dihedral transforms and 2 checkpoints" in out
    for folder in ("input", "target", "ensemble-gopro_a-gopro_b__tiled256", "ensemble-gopro_a-gopro_b__full-image"):
        assert len(list((imgs / folder).glob("*.png"))) == 4, folder  # 2 GoPro + 2 HIDE
    records = read_records(rec)
    assert len(records) == 2 * 2 * 2  # 2 sets x 2 protocols x (psnr, ssim)
    assert set(records["recipe"]) == {"eval"} and set(records["synthetic"]) == {False}
    assert set(records["protocol"]) == {"deblur/official+tta8", "deblur/matlab+tta8"}
    assert set(records["variant"]) == {"ensemble(gopro_a+gopro_b)"}


def test_rain13k_average_is_the_mean_of_the_set_means(data, ckpts, tmp_path, capsys) -> None:
    js = tmp_path / "r.json"
    code, out, _ = _run(rain13k, ["--data", str(data), "--weights", str(ckpts["rain"]), "--json", str(js)], capsys)
    assert code == 0
    results = json.loads(js.read_text())["results"]
    assert [r["dataset"] for r in results] == [*RAIN_SETS, "Average"]
    for metric in ("psnr", "ssim"):
        mean = sum(r["metrics"][metric] for r in results[:5]) / 5
        assert results[5]["metrics"][metric] == pytest.approx(mean, abs=1e-12)
    avg = _table_row(out, "Average", "derain/official", "10")
    assert avg[3] == f"{results[5]['metrics']['psnr']:.2f}" and avg[5:7] == ["HINet", "33.03"]
    assert _table_row(out, "Rain100L", "derain/official", "2")[6] == "37.28"


def test_rain13k_matlab_protocol_with_limit(data, ckpts, tmp_path, capsys) -> None:
    js = tmp_path / "r.json"
    code, out, _ = _run(rain13k, ["--data", str(data), "--weights", str(ckpts["rain"]), "--protocol", "matlab",
                                  "--limit", "1", "--json", str(js)], capsys)
    assert code == 0
    results = json.loads(js.read_text())["results"]
    assert {r["protocol"] for r in results} == {"derain/matlab"}
    assert "Y (rounded)" in results[0]["description"] and "ssim=matlab" in results[0]["description"]
    assert _table_row(out, "Test100", "derain/matlab", "1 of 2")
    assert "the published numbers cover the full sets" in out
    one = Rain13k(data / "Rain13k", "Test100")
    direct = evaluate(hinet.load(ckpts["rain"]), {"Test100": one}, [PROTOCOLS["derain"]["matlab"]], limit=1,
                      progress=False)[0]
    assert results[0]["metrics"] == pytest.approx(direct.metrics, abs=1e-9)


# ------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(("module", "expected"), [
    (gopro, "GoPro not found"), (rain13k, "Rain13k not found"), (sidd, "SIDD validation blocks not found")])
def test_missing_dataset_exits_non_zero_naming_the_layout(module, expected, tmp_path, capsys) -> None:
    code, out, err = _run(module, ["--data", str(tmp_path)], capsys)
    assert code == 2 and out == ""
    assert expected in err and "Expected layout" in err


def test_unreadable_checkpoint_exits_non_zero_naming_the_file(data, tmp_path, capsys) -> None:
    bad = tmp_path / "broken.pth"
    bad.write_bytes(b"not a checkpoint")
    code, _, err = _run(gopro, ["--data", str(data), "--weights", str(bad)], capsys)
    assert code == 2 and str(bad) in err


def test_tta_without_weights_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exc:
        gopro.main(["--tta"])
    assert exc.value.code == 2


def test_records_by_default_and_not_with_no_records(tmp_path, capsys) -> None:
    code, _, _ = _run(sidd, ["--limit", "1", "--synthetic-count", "1"], capsys)
    default = tmp_path / "results" / "records" / "checkpoint_eval.jsonl"
    assert code == 0 and default.is_file()
    df = read_records(default)
    assert (df["family"] == "checkpoint_eval").all() and df["synthetic"].all()
    default.unlink()
    code, _, _ = _run(sidd, ["--limit", "1", "--synthetic-count", "1", "--no-records"], capsys)
    assert code == 0 and not default.exists()


def test_a_non_finite_metric_is_an_error_naming_it_and_nothing_is_written(tmp_path, capsys) -> None:
    rng = np.random.default_rng(5)
    for k in range(2):  # input == target: the degraded input scores PSNR = inf
        img, _ = _pair(rng, 32, 48)
        for side in ("input", "target"):
            (tmp_path / "d" / "GoPro" / "test" / side).mkdir(parents=True, exist_ok=True)
            write_image(tmp_path / "d" / "GoPro" / "test" / side / f"{k}.png", img)
    js, rec = tmp_path / "g.json", tmp_path / "r.jsonl"
    code, _, err = _run(gopro, ["--data", str(tmp_path / "d"), "--json", str(js), "--records", str(rec)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "'degraded input'" in err and "GoPro, deblur/official" in err and "metrics.psnr: value inf" in err
    assert not js.exists() and not rec.exists()
    code, _, err = _run(gopro, ["--data", str(tmp_path / "d"), "--records", str(rec)], capsys)
    assert code == 2 and "degraded input on GoPro, deblur/official, psnr: value inf" in err and not rec.exists()


def test_summary_json_is_strict() -> None:
    from hinet.benchmark import summary_json

    doc = {"method": "m", "results": [{"dataset": "SIDD", "protocol": "p", "metrics": {"psnr": 30.0, "ssim": 0.9}}]}
    assert json.loads(summary_json(doc)) == doc
    doc["results"][0]["metrics"]["ssim"] = float("nan")
    with pytest.raises(ValueError, match=r"'m': results\[0\] \(SIDD, p\)\.metrics\.ssim: value nan"):
        summary_json(doc)


def test_gopro_tlc_scores_whole_images_with_local_statistics_beside_hinet_local(data, ckpts, tmp_path, capsys):
    """--tlc: the official HINetLocal test setting (full image, no grids), labelled in every number; the
    published HINet-Local row sits beside it; a small window really changes the numbers."""
    js = tmp_path / "tlc.json"
    code, out, _ = _run(gopro, ["--data", str(data), "--weights", str(ckpts["gopro_a"]), "--tlc", "--tlc-base-size",
                                "48", "--json", str(js)], capsys)
    assert code == 0
    row = _table_row(out, "GoPro", "deblur/full+tlc48-256", "2")
    assert "HINet-Local" in out and "33.08" in out
    summary = json.loads(js.read_text())
    described = {r["protocol"]: r["description"] for r in summary["results"]}
    assert set(described) == {"deblur/full+tlc48-256"}  # the tiled default became the full-image protocol
    assert "TLC base 48/train 256" in described["deblur/full+tlc48-256"]
    code, out_full, _ = _run(gopro, ["--data", str(data), "--weights", str(ckpts["gopro_a"]), "--protocol", "full"],
                             capsys)
    assert code == 0 and _table_row(out_full, "GoPro", "deblur/full", "2")[3] != row[3]


def test_tlc_needs_weights_and_its_sizes_need_tlc(data) -> None:
    for argv in (["--tlc"], ["--weights", "x.pth", "--tlc-base-size", "64"], ["--weights", "x.pth", "--tlc",
                                                                               "--tlc-base-size", "0"]):
        with pytest.raises(SystemExit) as exc:
            gopro.main(["--data", str(data), *argv])
        assert exc.value.code == 2
