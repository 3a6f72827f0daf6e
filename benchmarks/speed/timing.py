"""Timing helpers shared by the speed benchmarks (``python -m benchmarks.speed`` runs them; see its runner).

Side-by-side timing: a comparison benchmark times its *fast* path with pytest-benchmark and its *baseline*
path in the ``setup`` hook of the same ``benchmark.pedantic`` call, i.e. interleaved round by round
(baseline, fast, baseline, fast, ...). On a shared, noisy CPU both paths then see the same load, and the
reported ratio -- baseline minimum / fast minimum -- compares like with like. Minima are used because
contention only ever adds time; the ratio of medians is reported beside it, with a 95% bootstrap interval
(:func:`ratio_interval`: percentile interval of the ratio of medians over resampled rounds, by
``scipy.stats.bootstrap``; rounds resampled in pairs where they were interleaved).

Conventions for ``benchmark.extra_info`` (read by :mod:`benchmarks.speed.runner`):

* ``paths``: ``{path name: {"ms_min", "ms_median", "ms_mean", "rounds"}}`` for every timed path;
* ``compared``: ``{"baseline": path name, "fast": path name, "measure": "ms_median" | "peak_mb"}``: which
  two paths the ratio compares and in which of their numbers (``ratio_median`` = baseline / fast in it);
* ``ratio`` (and ``ratio_median``): a higher-is-better ratio of this benchmark (a speed-up or a memory
  saving), ``ratio_of``: what it divides; ``ratio_low``/``ratio_high``: the 95% interval of
  ``ratio_median`` (:func:`ratio_interval`; absent with fewer than 2 rounds a path);
* ``label``: what the benchmark measures or compares, in words (required: the runner refuses a benchmark
  without one, so that renaming a test never relabels the speed table); ``target``: the minimum of its
  ratio, where it has one (:func:`stated`);
* ``metrics``: other numbers, ``{metric name: value}`` (e.g. ``peak_mb``, ``patches_per_s``);
* ``input``: what one timed call processes, as a shape ``NxCxHxW`` (e.g. ``1x3x256x256``; synthetic
  tensors), stored as the record's ``dataset``;
* ``device``, ``hardware`` (:func:`hinet.hardware.describe` of the device), ``cpu_capability``
  (``torch.backends.cpu.get_cpu_capability()``), ``gpu`` (CUDA: model and compute capability),
  ``torch_threads``, ``torch_version``, ``cpu``: where it ran (``hinet.records.environment(device,
  hardware=True)``, called while the benchmark's thread setting is in force).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats

from hinet.records import environment


def status_kb() -> dict[str, int]:
    """VmRSS / VmHWM of this process in kB, from /proc/self/status (Linux; peak-memory benchmarks)."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key = line.split(":", 1)[0]
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(line.split()[1])
    return out


def stated(label: str, target: float | None = None) -> dict[str, Any]:
    """``extra_info`` entries by which a benchmark states what it measures (``label``, required by the runner)
    and, where it has one, the minimum of its higher-is-better ratio (``target``)."""
    return {"label": label} if target is None else {"label": label, "target": target}


def _ratio_of_medians(baseline: np.ndarray, fast: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.median(baseline, axis=axis) / np.median(fast, axis=axis)


def ratio_interval(baseline_s: list[float], fast_s: list[float], *, paired: bool,
                   confidence: float = 0.95, resamples: int = 2000) -> tuple[float, float] | None:
    """Percentile bootstrap interval of median(baseline) / median(fast) (``scipy.stats.bootstrap``, seed 0).

    ``paired``: the rounds were interleaved (round i of each path ran back to back, under the same load),
    so they are resampled together; else each path's rounds are resampled on their own. None when a path
    has fewer than 2 rounds. With few rounds the interval is coarse (the median of a resample takes only a
    few values), never narrower than the spread of the rounds warrants.
    """
    b, f = np.asarray(baseline_s, dtype=float), np.asarray(fast_s, dtype=float)
    if len(b) < 2 or len(f) < 2:
        return None
    if paired and len(b) != len(f):
        raise ValueError(f"paired rounds need equal counts, got {len(b)} baseline and {len(f)} fast")
    result = stats.bootstrap((b, f), _ratio_of_medians, paired=paired, vectorized=True, method="percentile",
                             confidence_level=confidence, n_resamples=resamples, rng=np.random.default_rng(0))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def ratio_info(baseline_s: list[float], fast_s: list[float], *, paired: bool) -> dict[str, float]:
    """``ratio`` (of minima), ``ratio_median`` and, where computable, ``ratio_low``/``ratio_high`` (95%
    :func:`ratio_interval` of ``ratio_median``) of baseline and fast durations (any one unit)."""
    out = {"ratio": min(baseline_s) / min(fast_s),
           "ratio_median": statistics.median(baseline_s) / statistics.median(fast_s)}
    interval = ratio_interval(baseline_s, fast_s, paired=paired)
    if interval is not None:
        out["ratio_low"], out["ratio_high"] = interval
    return out


def summary_ms(seconds: list[float]) -> dict[str, float]:
    """Minimum, median and mean in milliseconds of a list of durations in seconds, and their count."""
    return {"ms_min": 1e3 * min(seconds), "ms_median": 1e3 * statistics.median(seconds),
            "ms_mean": 1e3 * statistics.fmean(seconds), "rounds": len(seconds)}


def time_interleaved(calls: dict[str, Callable[[], Any]], *, rounds: int, warmup_rounds: int = 1,
                     device: str | torch.device = "cpu") -> dict[str, list[float]]:
    """Seconds of each call over ``rounds`` rounds, interleaved (round r times every call back to back, so all see
    the same load), after ``warmup_rounds`` untimed rounds. On CUDA each call is timed with CUDA events after a
    synchronisation (a launch returns before the GPU has finished; timing without it measures the launch)."""
    cuda = torch.device(device).type == "cuda"
    for _ in range(warmup_rounds):
        for call in calls.values():
            call()
    out: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            if cuda:
                torch.cuda.synchronize(device)
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                call()
                end.record()
                torch.cuda.synchronize(device)
                out[name].append(start.elapsed_time(end) / 1e3)
            else:
                t0 = time.perf_counter()
                call()
                out[name].append(time.perf_counter() - t0)
    return out


def compare(benchmark, fast: Callable[[], Any], baseline: Callable[[], Any], *, label: str, rounds: int,
            target: float | None = None, warmup_rounds: int = 2, fast_name: str = "fast", baseline_name: str = "eager",
            device: str | torch.device = "cpu", **info: Any) -> dict[str, float]:
    """Time ``fast`` (pytest-benchmark) and ``baseline`` (interleaved, in the setup hook) for ``rounds`` rounds.

    ``warmup_rounds`` untimed calls of each first (oneDNN builds its kernels and the allocator grows its
    pools on the first calls). ``label``/``target``: what the comparison is and the minimum ratio it aims at
    (:func:`stated`). Fills ``benchmark.extra_info`` (see the module docstring); returns
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
    ratios = ratio_info(baseline_s, fast_s, paired=True)
    benchmark.extra_info.update(environment(device, hardware=True))
    benchmark.extra_info.update(info, **stated(label, target))
    benchmark.extra_info["paths"] = {baseline_name: summary_ms(baseline_s), fast_name: summary_ms(fast_s)}
    benchmark.extra_info["compared"] = {"baseline": baseline_name, "fast": fast_name, "measure": "ms_median"}
    benchmark.extra_info.update(ratios, ratio_of=f"{baseline_name} time / {fast_name} time")
    return {"ratio": ratios["ratio"], "ratio_median": ratios["ratio_median"], "fast_min_s": min(fast_s),
            "baseline_min_s": min(baseline_s)}
