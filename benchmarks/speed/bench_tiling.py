"""Benchmark: one 1280x720 frame through HINet-1x (width 64), full image vs 256x256 tiles: time and peak memory.

Both paths run the eager fp32 network as ``hinet.evaluate`` does (``torch.inference_mode``); tiled is
``hinet.evaluate.predict_tiled`` with tile 256 (the official grid: 3 x 5 overlapping tiles) and tile batch 1.

Peak memory method: torch's CPU allocations go straight to the C allocator, so ``tracemalloc`` cannot see
them and torch keeps no CPU peak statistics. Each path therefore runs in a **fresh Python process**
(``python -m benchmarks.speed.bench_tiling full|tiled``) that builds the model and the SYNTHETIC frame, then resets
the kernel's resident-set high-water mark (``echo 5 > /proc/self/clear_refs``, Linux >= 4.0), runs the
forward, and reads ``VmHWM`` (peak resident set) from ``/proc/self/status``. ``peak_mb`` is that peak minus
the resident set just before the forward: the memory the inference itself needed. A fresh process per path
means no allocator pools survive from the other path. Pages only count once touched, which is what
"needed" means here.

One round per path (a full-image forward at width 64 is slow on a CPU); the forward time includes
oneDNN's first-call kernel creation in both paths. The benchmark's own timing is the tiled child's wall
time (start-up, import and model build included); the forward times are in ``paths``.
Ratio (higher is better) = full-image peak / tiled peak; target >= 2 (tiled needs at most half).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from hinet.arch import HINet
from hinet.config import PRESETS, scaled
from hinet.evaluate import predict_tiled
from hinet.records import environment

from .timing import stated, status_kb

WIDTH = 64
FRAME = (720, 1280)  # H, W
TILE = 256
TILE_BATCH = 1
ROOT = Path(__file__).resolve().parents[2]


def measure(path: str, width: int = WIDTH, tile: int = TILE, batch: int = TILE_BATCH) -> dict:
    """Run one forward of ``path`` (``full`` or ``tiled``) in this process; time and peak-RSS delta."""
    if path not in ("full", "tiled"):
        raise ValueError(f"path={path!r}: expected 'full' or 'tiled'")
    torch.manual_seed(0)
    model = HINet(scaled(PRESETS["sidd-1x"], width=width)).eval()
    frame = torch.rand(1, 3, *FRAME, generator=torch.Generator().manual_seed(1))  # SYNTHETIC
    before = status_kb()["VmRSS"]
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current resident set
    start = time.perf_counter()
    with torch.inference_mode():
        out = model(frame)[-1] if path == "full" else predict_tiled(model, frame, tile, batch)
    seconds = time.perf_counter() - start
    peak = status_kb()["VmHWM"]
    if out.shape != frame.shape:
        raise RuntimeError(f"{path}: output shape {tuple(out.shape)} != input {tuple(frame.shape)}")
    return {"path": path, "forward_s": seconds, "peak_mb": (peak - before) / 1024, "rss_before_mb": before / 1024,
            "torch_threads": torch.get_num_threads(), "width": width, "tile": tile, "tile_batch": batch}


def run_child(path: str) -> dict:
    """``measure(path)`` in a fresh interpreter; returns its JSON result."""
    proc = subprocess.run([sys.executable, "-m", "benchmarks.speed.bench_tiling", path], cwd=ROOT, capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"bench_tiling child ({path}) failed with exit code {proc.returncode}:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_frame_720p(benchmark) -> None:
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("peak-RSS reset needs Linux /proc/self/clear_refs")
    full = run_child("full")
    holder: dict[str, dict] = {}

    def tiled() -> None:
        holder["tiled"] = run_child("tiled")

    benchmark.pedantic(tiled, rounds=1, iterations=1)
    tile = holder["tiled"]
    benchmark.extra_info.update(environment("cpu", hardware=True))
    benchmark.extra_info.update(
        width=WIDTH, frame=f"{FRAME[1]}x{FRAME[0]}", input=f"1x3x{FRAME[0]}x{FRAME[1]}", tile=TILE,
        tile_batch=TILE_BATCH,
        paths={p: {"ms_min": 1e3 * r["forward_s"], "ms_median": 1e3 * r["forward_s"], "ms_mean": 1e3 * r["forward_s"],
                   "rounds": 1, "peak_mb": r["peak_mb"]} for p, r in (("full", full), ("tiled", tile))},
        compared={"baseline": "full", "fast": "tiled", "measure": "peak_mb"},
        ratio=full["peak_mb"] / tile["peak_mb"], ratio_median=full["peak_mb"] / tile["peak_mb"],  # one round
        ratio_of="full-image peak MB / tiled peak MB",
        **stated(f"full-image / tiled peak memory, {FRAME[1]}x{FRAME[0]}, width {WIDTH}", 2.0),
        metrics={"time_ratio_tiled_over_full": tile["forward_s"] / full["forward_s"]})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="child process of bench_tiling: one measured forward")
    parser.add_argument("path", choices=["full", "tiled"])
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.path)))


if __name__ == "__main__":
    main()
