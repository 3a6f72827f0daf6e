"""The test-time statistics family: one trained network scored under whole-image, grid and TLC treatments,
each recorded as its own variant under the shared scoring protocol."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ablations import test_time
from hinet.config import scaled
from hinet.evaluate import parse_protocol
from hinet.image_records import read_image_metrics
from hinet.recipes import recipe
from hinet.records import read_records
from hinet.spec import PreflightError, RunSpec
from hinet.train import train


def tiny_spec(evaluations):
    r = replace(recipe("gopro-proxy"), total_iters=2, val_every=2, val_limit=2, batch_size=2, crop=32, log_every=1)
    return RunSpec(r, scaled(test_time.BASE, width=4, depth=3), 0, family="test_time", variant="hinet",
                   evaluations=evaluations)


def test_protocol_names_with_tiles_and_tlc():
    p = parse_protocol("deblur/official@64")
    assert p.tiled and p.tile == 64 and p.name == "deblur/official@64"
    q = parse_protocol("deblur/full+tlc96-64")
    assert q.tlc == (96, 64) and not q.tiled and "TLC base 96/train 64" in q.describe()
    for bad in ("deblur/full@64", "deblur", "deblur/nope"):
        with pytest.raises(ValueError):
            parse_protocol(bad)


def test_one_network_four_treatments_recorded_as_variants(tmp_path):
    spec = tiny_spec(test_time.evaluations(32))
    train(spec, tmp_path / "run", records_path=tmp_path / "r.jsonl", run_id="tt-s0", progress=False,
          tensorboard=False, verify=False)
    df = read_records(tmp_path / "r.jsonl")
    val = df[df["split"] == "val"]
    assert set(val["variant"]) == {"full_image", "grid", "tlc_1x", "tlc_1.5x"}
    assert set(val["run_id"]) == {f"tt-s0@{v}" for v in ("full_image", "grid", "tlc_1x", "tlc_1.5x")}
    assert set(val["protocol"]) == {"deblur/full"}  # the shared scoring; the treatment is the variant
    per = read_image_metrics(tmp_path / "per_image")
    from hinet.report.consistency import check_per_image

    check_per_image(df, tmp_path / "per_image", tmp_path / "r.jsonl")  # every treatment's file matches its records
    psnr = per[per["metric"] == "psnr"].pivot_table(index="image", columns="variant", values="value")
    assert (psnr["grid"] - psnr["full_image"]).abs().max() > 1e-6  # 32-pixel tiles on 128-pixel images differ
    assert (psnr["tlc_1x"] - psnr["full_image"]).abs().max() > 1e-6  # a 32-pixel window differs from global
    sizes = df[(df["split"] == "model") & (df["metric"] == "params")]
    assert len(set(sizes["run_id"])) == 5  # the trained run and its four treatments


def test_treatments_that_score_differently_are_refused_before_training(tmp_path):
    spec = tiny_spec(("a=deblur/full", "b=derain/full"))  # Y-channel scoring: not the same comparison
    with pytest.raises(PreflightError, match="share one scoring"):
        train(spec, tmp_path / "run", records_path=tmp_path / "r.jsonl", progress=False, tensorboard=False)
    assert not (tmp_path / "run" / "checkpoints" / "last.pth").exists()
