"""TensorBoard event files written by the trainer, read back with TensorBoard's own event reader; and the
numbers of a run are reproducible run to run at a fixed commit and thread count."""

from __future__ import annotations

from dataclasses import replace

import pytest

from hinet.config import preset, scaled
from hinet.image_records import read_image_metrics
from hinet.recipes import recipe
from hinet.records import read_records
from hinet.spec import RunSpec
from hinet.train import train


def tiny_spec(seed: int = 0) -> RunSpec:
    r = replace(recipe("sidd-proxy"), total_iters=4, val_every=2, val_limit=2, batch_size=2, crop=32, log_every=1)
    return RunSpec(r, scaled(preset("sidd-1x"), width=4, depth=2), seed, family="components", variant="full")


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("track")
    for name in ("a", "b"):
        train(tiny_spec(), root / name, records_path=root / name / "records.jsonl", run_id="same-run",
              progress=False, verify=False)
    return root


def test_tensorboard_events_hold_every_curve_and_images(two_runs):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(two_runs / "a" / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    tags = events.Tags()
    assert {"train/loss", "train/lr", "train/images_per_s"} <= set(tags["scalars"])
    val = [t for t in tags["scalars"] if t.startswith("val/")]
    assert any(t.endswith("denoise/clamped/psnr") for t in val) and any(t.endswith("denoise/official/psnr")
                                                                         for t in val)
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3, 4]
    clamped = next(t for t in val if t.endswith("denoise/clamped/psnr"))
    recorded = read_records(two_runs / "a" / "records.jsonl")
    mine = recorded[(recorded["protocol"] == "denoise/clamped") & (recorded["metric"] == "psnr")
                    & (recorded["dataset"] == clamped.split("/")[1])]  # tag val/<set>/<protocol>/<metric>
    assert [e.step for e in events.Scalars(clamped)] == [2, 4]
    assert [round(e.value, 4) for e in events.Scalars(clamped)] == [round(v, 4) for v in mine.sort_values("step")[
        "value"]]
    assert len(tags["images"]) == 2 and len(events.Images(tags["images"][0])) == 2  # two images, two validations


def test_the_same_spec_gives_the_same_numbers_run_to_run(two_runs):
    a, b = (read_records(two_runs / n / "records.jsonl") for n in ("a", "b"))
    keep = ~a["metric"].isin(["images_per_s"])  # wall-clock throughput is the only number allowed to differ
    cols = ["split", "dataset", "protocol", "metric", "step", "value"]
    assert a[keep][cols].reset_index(drop=True).equals(b[~b["metric"].isin(["images_per_s"])][cols]
                                                       .reset_index(drop=True))
    pa, pb = (read_image_metrics(two_runs / n / "per_image").sort_values(["step", "protocol", "metric", "image"])
              for n in ("a", "b"))
    assert pa["value"].tolist() == pb["value"].tolist()


def test_every_record_names_the_hardware_and_the_reference(tmp_path):
    import torch

    spec = replace(tiny_spec(), reference="full")
    train(spec, tmp_path / "run", records_path=tmp_path / "records.jsonl", progress=False, verify=False)
    recorded = read_records(tmp_path / "records.jsonl")
    capability = torch.backends.cpu.get_cpu_capability()
    assert recorded["device"].str.startswith("cpu: CPU ").all() and recorded["device"].str.contains(capability).all()
    assert (recorded["reference"] == "full").all()
