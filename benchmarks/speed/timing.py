"""Timing helpers shared by the speed benchmarks (``python -m benchmarks.speed`` runs them; see its runner).

Side-by-side timing: a comparison benchmark times its *fast* path with pytest-benchmark and its *baseline*
path in the ``setup`` hook of the same ``benchmark.pedantic`` call, i.e. interleaved round by round
(baseline, fast, baseline, fast, ...). On a shared, noisy CPU both paths then see the same load, and the
reported ratio -- baseline minimum / fast minimum -- compares like with like. Minima are used because
contention only ever adds time; the ratio of medians is reported beside it.

Conventions for ``benchmark.extra_info`` (read by :mod:`benchmarks.speed.runner`):

* ``paths``: ``{path name: {"ms_min", "ms_median", "ms_mean", "rounds"}}`` for every timed path;
* ``ratio`` (and ``ratio_median``): a higher-is-better ratio of this benchmark (a speed-up or a memory
  saving), ``ratio_of``: what it divides;
* ``metrics``: other numbers, ``{metric name: value}`` (e.g. ``peak_mb``, ``patches_per_s``);
* ``input``: what one timed call processes, as a shape ``NxCxHxW`` (e.g. ``1x3x256x256``; synthetic
  tensors), stored as the record's ``dataset``;
* ``device``, ``torch_threads``, ``torch_version``, ``cpu``: where it ran.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


def status_kb() -> dict[str, int]:
    """VmRSS / VmHWM of this process in kB, from /proc/self/status (Linux; peak-memory benchmarks)."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key = line.split(":", 1)[0]
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(line.split()[1])
    return out


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (``platform.processor()`` is often empty on Linux)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def environment(device: str | torch.device = "cpu") -> dict[str, Any]:
    """Where a benchmark ran: device, torch threads and version, CPU model and logical core count."""
    return {"device": str(device), "torch_threads": torch.get_num_threads(), "torch_version": torch.__version__,
            "cpu": cpu_model(), "cpu_count": os.cpu_count()}


def summary_ms(seconds: list[float]) -> dict[str, float]:
    """Minimum, median and mean in milliseconds of a list of durations in seconds, and their count."""
    return {"ms_min": 1e3 * min(seconds), "ms_median": 1e3 * statistics.median(seconds),
            "ms_mean": 1e3 * statistics.fmean(seconds), "rounds": len(seconds)}


def compare(benchmark, fast: Callable[[], Any], baseline: Callable[[], Any], *, rounds: int, warmup_rounds: int = 2,
            fast_name: str = "fast", baseline_name: str = "eager", device: str | torch.device = "cpu",
            **info: Any) -> dict[str, float]:
    """Time ``fast`` (pytest-benchmark) and ``baseline`` (interleaved, in the setup hook) for ``rounds`` rounds.

    ``warmup_rounds`` untimed calls of each first (oneDNN builds its kernels and the allocator grows its
    pools on the first calls). Fills ``benchmark.extra_info`` (see the module docstring); returns
    ``{"ratio", "ratio_median", "fast_min_s", "baseline_min_s"}``.
    """
    for _ in range(warmup_rounds):
        baseline()
        fast()
    baseline_s: list[float] = []

    def time_baseline() -> tuple[tuple, dict]:
        start = time.perf_counter()
        baseline()
        baseline_s.append(time.perf_counter() - start)
        return (), {}

    benchmark.pedantic(fast, setup=time_baseline, rounds=rounds, iterations=1)
    fast_s = list(benchmark.stats.stats.data)
    ratio = min(baseline_s) / min(fast_s)
    ratio_median = statistics.median(baseline_s) / statistics.median(fast_s)
    benchmark.extra_info.update(environment(device))
    benchmark.extra_info.update(info)
    benchmark.extra_info["paths"] = {baseline_name: summary_ms(baseline_s), fast_name: summary_ms(fast_s)}
    benchmark.extra_info.update(ratio=ratio, ratio_median=ratio_median,
                                ratio_of=f"{baseline_name} time / {fast_name} time")
    return {"ratio": ratio, "ratio_median": ratio_median, "fast_min_s": min(fast_s), "baseline_min_s": min(baseline_s)}
