"""Speed and size of the per-image result store (``hinet.image_records.write_image_metrics``) at the sizes of the
published test sets: 1280 SIDD validation blocks under the two denoising protocols (PSNR + SSIM) and
Rain13k's Test2800 (PSNR + SSIM), written once per validation. ``extra_info``: the file size in KB and the
bytes per value; the timing is the whole atomic write (Parquet encode, fsync, rename)."""

from __future__ import annotations

import numpy as np
import pytest

from hinet.image_records import read_image_metrics, write_image_metrics
from hinet.records import environment

from .timing import stated

COMMON = dict(run_id="components-full-sidd-paper-real-s0", family="components", variant="full", seed=0,
              config_hash="0123456789ab", git_commit="0" * 40, synthetic=False, recipe="paper")
SETS = {"sidd-1280": ("SIDD", 1280, ("denoise/official", "denoise/clamped")),
        "test2800": ("Test2800", 2800, ("derain/official",))}


@pytest.mark.parametrize("case", sorted(SETS))
def test_per_image_write(benchmark, tmp_path, case: str) -> None:
    name, count, protocols = SETS[case]
    rng = np.random.default_rng(0)
    rows = [(name, "val", p, m, f"{name}-{i:05d}", float(v)) for p in protocols for m in ("psnr", "ssim")
            for i, v in enumerate(rng.normal(35, 2, count))]
    step = iter(range(1, 10**6))
    benchmark.pedantic(lambda: write_image_metrics(tmp_path, COMMON, next(step) * 1000, rows), rounds=10,
                       iterations=1, warmup_rounds=1)
    files = sorted(tmp_path.rglob("*.parquet"))
    size = files[0].stat().st_size
    assert len(read_image_metrics(files[0])) == len(rows)
    benchmark.extra_info.update(environment("cpu", hardware=True), **stated(f"per-image metrics write, {case}"),
                                input=f"{len(rows)} values", metrics={
        "kb_per_validation": size / 1024, "bytes_per_value": size / len(rows)})
