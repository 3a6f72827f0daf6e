"""What a benchmark command scores and the rows it reports: :class:`Benchmark` (one per command),
:class:`Method` (checkpoints or the degraded input) and :class:`Reference` (a published number set). The rows are
:class:`hinet.evaluate.SetResult`, as the trainer's validations.

PSNR is in dB, SSIM and LPIPS in [0, 1]; images are RGB in [0, 1] throughout (see :mod:`hinet.evaluate`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..data import RAIN13K_TEST_SETS

SYNTHETIC_NOTE = "synthetic data: not comparable with the published numbers"
DEGRADED_INPUT = "degraded input"


@dataclass(frozen=True)
class Benchmark:
    """One benchmark command.

    Args:
        name: command name (``python -m benchmarks.<name>``), also used in run ids.
        task: key of :data:`hinet.evaluate.PROTOCOLS` and of :func:`hinet.data.open_test_sets`.
        title: printed above the table.
        references: test set -> published methods (``results/published`` ``method`` column) printed beside
            our numbers on real data.
        splits: test set -> ``Record.split`` (default ``test``).
        average: name of an extra row holding the mean of the set means (Rain13k's "Average"), or None.
    """

    name: str
    task: str
    title: str
    references: Mapping[str, tuple[str, ...]]
    splits: Mapping[str, str] = field(default_factory=dict)
    average: str | None = None


SIDD = Benchmark("sidd", "denoise", "SIDD sRGB denoising, validation blocks",
                 {"SIDD": ("HINet", "HINet 0.5x")}, {"SIDD": "val"})
GOPRO = Benchmark("gopro", "deblur", "GoPro deblurring (and HIDE when present)",
                  {"GoPro": ("HINet (paper)", "HINet (README)"), "HIDE": ("HINet",)})
RAIN13K = Benchmark("rain13k", "derain", "Rain13k deraining, five test sets",
                    {name: ("HINet",) for name in (*RAIN13K_TEST_SETS, "Average")}, average="Average")


@dataclass(frozen=True)
class Reference:
    """A published number set for one test set and method (metric -> value), with its source."""

    dataset: str
    method: str
    values: dict[str, float]
    source: str


@dataclass
class Method:
    """What is scored: networks (an ensemble when several) or the degraded input."""

    name: str
    models: list[Callable[[torch.Tensor], Sequence[torch.Tensor]]]
    weights: list[str]
    configs: list[dict[str, Any]]

    @property
    def is_baseline(self) -> bool:
        return not self.weights

    def describe(self, tta: bool) -> str:
        if self.is_baseline:
            return f"{DEGRADED_INPUT} (no restoration: the input is scored against the target)"
        kind = "HINet checkpoint" if len(self.weights) == 1 else f"ensemble of {len(self.weights)} HINet checkpoints"
        extra = ", TTA x8 (dihedral)" if tta else ""
        return f"{self.name}: {kind} {', '.join(self.weights)}{extra}"


def degraded_input(x: torch.Tensor) -> list[torch.Tensor]:
    """The identity "model": its prediction is the degraded input (N, C, H, W), unchanged."""
    return [x]
