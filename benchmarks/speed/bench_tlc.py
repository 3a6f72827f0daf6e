"""Benchmark: HINet forward with the Test-time Local Converter vs whole-image normalisation: time and peak memory.

Paths (eager fp32 under ``torch.inference_mode()``, as ``hinet.evaluate`` runs the network):

* ``global``: the network as trained (instance norm over the whole feature map);
* ``tlc``: ``hinet.tlc.to_local(model, base_size=384, train_size=256)`` (the official HINet-Local setting):
  windowed statistics by cumulative sums wherever the window is smaller than the map.

Networks: the GoPro preset (HIN on the two deepest levels, the setting of the published HINet-Local numbers)
and the SIDD preset (HIN on every level: the most TLC work), at width 16 on CPU (width 32 on CUDA) so that a
720p forward takes seconds on a shared CPU. Sizes: a 720x1280 frame (GoPro's; TLC is local at every level)
and a 256x256 crop (every window covers its map, so TLC runs the global path: the ratio shows it costs
nothing there). Inputs are SYNTHETIC uniform noise (timing and memory do not depend on image content).

Timing: interleaved rounds of both paths (``benchmarks/speed/timing.py``: ``compare``); ``ratio`` = global time /
TLC time (higher is better, < 1 means TLC is slower). Peak memory: on CPU each path runs once more in a
**fresh Python process** (``python -m <this module> PATH SIZE PRESET``), which resets the kernel's resident-set
high-water mark after building and converting the model, runs one forward and reads ``VmHWM`` from
``/proc/self/status`` (Linux; as ``bench_tiling``): ``peak_mb`` is that peak minus the resident set before the
forward. On CUDA ``peak_mb`` is ``torch.cuda.max_memory_allocated`` minus the allocation before the forward.
Both are in ``metrics`` with their ratio ``peak_ratio_tlc_over_global``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from hinet.arch import HINet
from hinet.config import PRESETS, scaled
from hinet.tlc import to_local

from .timing import compare, status_kb

BASE_SIZE, TRAIN_SIZE = 384, 256
CPU_WIDTH, CUDA_WIDTH = 16, 32
SIZES = {"720x1280": (720, 1280), "256x256": (256, 256)}
ROUNDS = {"720x1280": 2, "256x256": 5}
WARMUP = {"720x1280": 1, "256x256": 2}
PRESET_NAMES = ("gopro", "sidd-1x")
CASES = [(p, s) for p in PRESET_NAMES for s in SIZES]
ROOT = Path(__file__).resolve().parents[2]


def build(preset: str, width: int, device: str | torch.device = "cpu") -> tuple[HINet, HINet]:
    """(global model, TLC copy), eval mode, on ``device``, seed 0."""
    torch.manual_seed(0)
    model = HINet(scaled(PRESETS[preset], width=width)).eval().to(device)
    return model, to_local(model, BASE_SIZE, TRAIN_SIZE)


def frame(size: str, device: str | torch.device = "cpu") -> torch.Tensor:
    h, w = SIZES[size]
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(1)).to(device)  # SYNTHETIC


# ------------------------------------------------------------------------------------------ CPU peak memory
def measure(path: str, size: str, preset: str, width: int = CPU_WIDTH) -> dict:
    """One forward of ``path`` (``global`` or ``tlc``) in this process: time and peak-RSS delta (MB)."""
    if path not in ("global", "tlc"):
        raise ValueError(f"path={path!r}: expected 'global' or 'tlc'")
    model, local = build(preset, width)
    net = local if path == "tlc" else model
    x = frame(size)
    before = status_kb()["VmRSS"]
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current resident set
    start = time.perf_counter()
    with torch.inference_mode():
        out = net(x)[-1]
    seconds = time.perf_counter() - start
    peak = status_kb()["VmHWM"]
    if out.shape != x.shape:
        raise RuntimeError(f"{path}: output shape {tuple(out.shape)} != input {tuple(x.shape)}")
    return {"path": path, "size": size, "preset": preset, "width": width, "forward_s": seconds,
            "peak_mb": (peak - before) / 1024, "torch_threads": torch.get_num_threads()}


def run_child(path: str, size: str, preset: str) -> dict:
    """``measure`` in a fresh interpreter (this module run with ``-m``); returns its JSON result."""
    proc = subprocess.run([sys.executable, "-m", __name__, path, size, preset], cwd=ROOT, capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{__name__} child ({path} {size} {preset}) failed with exit code {proc.returncode}:\n"
                           f"{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------ benchmarks
def _check(size: str, out_tlc: torch.Tensor, out_global: torch.Tensor) -> float:
    """Max |TLC - global|; 0-ish at 256 (windows cover the maps), non-zero at 720p (they do not)."""
    diff = (out_tlc - out_global).abs().max().item()
    if size == "256x256":
        assert diff <= 1e-5, f"TLC at the training size should equal the global network, differs by {diff}"
    else:
        assert diff > 0, "TLC at 720p should differ from the global network"
    return diff


def forward(net: HINet, x: torch.Tensor, sync: bool = False) -> Callable[[], None]:
    """One timed call: a forward of ``net`` on ``x`` (and a CUDA synchronise with ``sync``)."""
    def call() -> None:
        with torch.inference_mode():
            net(x)
        if sync:
            torch.cuda.synchronize()
    return call


@pytest.mark.parametrize("preset,size", CASES, ids=[f"{p}-{s}" for p, s in CASES])
def test_tlc_forward_cpu(benchmark, preset: str, size: str) -> None:
    model, local = build(preset, CPU_WIDTH)
    x = frame(size)
    with torch.inference_mode():
        diff = _check(size, local(x)[-1], model(x)[-1])

    result = compare(benchmark, forward(local, x), forward(model, x), rounds=ROUNDS[size], warmup_rounds=WARMUP[size],
                     fast_name="tlc", baseline_name="global", preset=preset, width=CPU_WIDTH, input=f"1x3x{size}",
                     label=f"TLC vs whole-image normalisation, {preset} net width {CPU_WIDTH}, {size}",
                     base_size=BASE_SIZE, train_size=TRAIN_SIZE, max_abs_diff_vs_global=diff,
                     cpu_capability=torch.backends.cpu.get_cpu_capability())
    metrics = {"time_ratio_tlc_over_global": 1 / result["ratio"], "ms_tlc": 1e3 * result["fast_min_s"],
               "ms_global": 1e3 * result["baseline_min_s"]}
    if Path("/proc/self/clear_refs").exists():
        peaks = {p: run_child(p, size, preset)["peak_mb"] for p in ("global", "tlc")}
        metrics.update(peak_mb_global=peaks["global"], peak_mb_tlc=peaks["tlc"],
                       peak_ratio_tlc_over_global=peaks["tlc"] / peaks["global"])
    benchmark.extra_info["metrics"] = metrics


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("preset,size", CASES, ids=[f"cuda-{p}-{s}" for p, s in CASES])
def test_tlc_forward_cuda(benchmark, preset: str, size: str) -> None:
    """On CUDA, width 32: each timed call ends with ``torch.cuda.synchronize()``."""
    model, local = build(preset, CUDA_WIDTH, "cuda")
    x = frame(size, "cuda")
    with torch.inference_mode():
        diff = _check(size, local(x)[-1], model(x)[-1])

    def peak_mb(net: HINet) -> float:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        forward(net, x, sync=True)()
        return (torch.cuda.max_memory_allocated() - before) / 2**20

    result = compare(benchmark, forward(local, x, sync=True), forward(model, x, sync=True), rounds=10,
                     warmup_rounds=3, fast_name="tlc", baseline_name="global", device="cuda", preset=preset,
                     label=f"CUDA TLC vs whole-image normalisation, {preset} net width {CUDA_WIDTH}, {size}",
                     width=CUDA_WIDTH, input=f"1x3x{size}",
                     base_size=BASE_SIZE, train_size=TRAIN_SIZE, max_abs_diff_vs_global=diff,
                     gpu=torch.cuda.get_device_name())
    peaks = {"global": peak_mb(model), "tlc": peak_mb(local)}
    benchmark.extra_info["metrics"] = {
        "time_ratio_tlc_over_global": 1 / result["ratio"], "ms_tlc": 1e3 * result["fast_min_s"],
        "ms_global": 1e3 * result["baseline_min_s"], "peak_mb_global": peaks["global"], "peak_mb_tlc": peaks["tlc"],
        "peak_ratio_tlc_over_global": peaks["tlc"] / peaks["global"]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="child process of bench_tlc: one measured CPU forward")
    parser.add_argument("path", choices=["global", "tlc"])
    parser.add_argument("size", choices=sorted(SIZES))
    parser.add_argument("preset", choices=PRESET_NAMES)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.path, args.size, args.preset)))


if __name__ == "__main__":
    main()
