"""Human labels of the speed suite's comparisons, and the ``device`` column of speed records read back.

A speed record names its benchmark by module (``protocol``, e.g. ``bench_model``) and test id (``variant``,
e.g. ``test_forward[w32-fast]``); :data:`COMPARISONS` turns that pair into what a reader needs: what is
compared, and the baseline and fast paths in words. A benchmark not listed keeps its test id as label
(``<module>::<variant>``), so a new benchmark still shows up, only less readably.

The ``device`` column is written by ``benchmarks/speed/runner.py`` (``device_label``) as
``"<device>: <hinet.hardware.describe(device)>; capability <capability>"``, the capability being
``torch.backends.cpu.get_cpu_capability()`` on CPU and the GPU model on CUDA; :func:`split_device` reads it
back. Older records hold the bare device (``cpu``): their capability is ``"not stated"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Comparison:
    """One kind of comparison: ``pattern`` (a regex, full match) on the benchmark's test id in module
    ``protocol``; ``what``/``baseline``/``fast`` are labels, formatted with the pattern's named groups."""

    protocol: str
    pattern: str
    what: str
    baseline: str
    fast: str


_EAGER = "eager fp32 (NCHW, reference HIN)"
_FAST_FP32 = "channels_last + fused HIN + in-place LeakyReLU, fp32"

#: In the order the speed table lists them.
COMPARISONS: tuple[Comparison, ...] = (
    Comparison("bench_model", r"test_forward\[w(?P<w>\d+)-fast\]", "inference 1x256², width {w}, fp32 fast path",
               _EAGER, _FAST_FP32),
    Comparison("bench_model", r"test_forward\[w(?P<w>\d+)-compiled\]",
               "inference 1x256², width {w}, torch.compile", _EAGER, "torch.compile (inductor, frozen weights), fp32"),
    Comparison("bench_model", r"test_forward\[w(?P<w>\d+)-fast-bf16\]", "inference 1x256², width {w}, bf16",
               _EAGER, "fast path under bf16 autocast"),
    Comparison("bench_model", r"test_forward_cuda\[cuda-w(?P<w>\d+)-fast\]",
               "CUDA inference 8x256², width {w}, fp32 fast path", _EAGER, _FAST_FP32),
    Comparison("bench_model", r"test_forward_cuda\[cuda-w(?P<w>\d+)-fast-(?P<p>bf16|fp16)\]",
               "CUDA inference 8x256², width {w}, {p}", _EAGER, "fast path under {p} autocast"),
    Comparison("bench_train", r"test_train_step\[fast\]", "training step, sidd-proxy (width 16, 8x64²), fp32",
               "eager fp32 step (TrainStep)", "fast_train_setup + TrainStep, fp32"),
    Comparison("bench_train", r"test_train_step\[fast-bf16\]", "training step, sidd-proxy (width 16, 8x64²), bf16",
               "eager fp32 step (TrainStep)", "fast_train_setup + TrainStep, bf16 autocast"),
    Comparison("bench_scoring", r"test_batched_torch\[threads(?P<t>\d+)\]",
               "scoring 64 blocks 256² (PSNR + 3-D SSIM), torch threads {t}", "numpy/scipy, one image at a time",
               "torch, whole batch"),
    Comparison("bench_data", r"test_patches_per_second", "training data: loader supply / proxy-step demand",
               "eager proxy step, per batch of 8", "PatchDataset loader (2 workers), per batch of 8"),
    Comparison("bench_tiling", r"test_frame_720p", "peak memory, 1280x720 frame, width 64", "whole frame",
               "256² tiles (3x5 grid, batch 1)"),
)

#: Unit of each compared measure (``baseline_<measure>``/``fast_<measure>`` metrics of a speed record).
MEASURES = {"ms_median": "ms, median of rounds", "peak_mb": "MB, peak resident set"}


def comparison_labels(protocol: str, variant: str) -> tuple[int, str, str, str]:
    """(order, what, baseline label, fast label) of a benchmark; unlisted ones: (len(COMPARISONS),
    ``"<protocol>::<variant>"``, ``"baseline"``, ``"fast"``)."""
    for order, c in enumerate(COMPARISONS):
        match = c.protocol == protocol and re.fullmatch(c.pattern, variant)
        if match:
            groups = match.groupdict()
            return order, c.what.format(**groups), c.baseline.format(**groups), c.fast.format(**groups)
    return len(COMPARISONS), f"{protocol}::{variant}", "baseline", "fast"


def split_device(label: str) -> tuple[str, str]:
    """(device with its hardware, capability) of a speed record's ``device``; capability ``"not stated"``
    when the label has none."""
    head, sep, capability = label.rpartition("; capability ")
    return (head, capability) if sep else (label, "not stated")
