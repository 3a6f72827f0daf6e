"""Restoration losses and the multi-stage wrapper. Inputs are NCHW RGB images in [0, 1]."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


class PSNRLoss(nn.Module):
    """Official PSNR loss: ``weight * 10/ln(10) * mean_batch(ln(mean_CHW((pred - gt)^2) + 1e-8))``,
    i.e. minus ``weight`` times the batch-mean per-image PSNR at peak 1."""

    def __init__(self, weight: float = 1.0, eps: float = 1e-8):
        super().__init__()
        self.weight, self.eps, self.scale = weight, eps, 10.0 / math.log(10.0)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        mse = (pred - target).pow(2).mean(dim=(1, 2, 3))  # (N,)
        return self.weight * self.scale * torch.log(mse + self.eps).mean()


class L1Loss(nn.Module):
    """Mean absolute error times ``weight`` (the official SIDD recipe, weight 1)."""

    def __init__(self, weight: float = 1.0):
        super().__init__()
        self.weight = weight

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.weight * (pred - target).abs().mean()


class CharbonnierLoss(nn.Module):
    """``weight * mean(sqrt((pred - gt)^2 + eps^2))`` (MPRNet uses eps 1e-3)."""

    def __init__(self, weight: float = 1.0, eps: float = 1e-3):
        super().__init__()
        self.weight, self.eps = weight, eps

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.weight * torch.sqrt((pred - target).pow(2) + self.eps**2).mean()


LOSSES = {"psnr": PSNRLoss, "l1": L1Loss, "charbonnier": CharbonnierLoss}


def make_loss(name: str, weight: float = 1.0) -> nn.Module:
    """Build a pixel loss by name (``psnr``, ``l1``, ``charbonnier``)."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; expected one of {sorted(LOSSES)}")
    return LOSSES[name](weight=weight)


class MultiStageLoss(nn.Module):
    """Apply one pixel loss to every stage output and sum with per-stage weights.

    The official recipes weight every stage equally (``stage_weights=None`` = all 1); the loss's own
    ``weight`` (e.g. 0.5 for the PSNR loss) is applied inside it, as in the official code.
    """

    def __init__(self, loss: nn.Module, stage_weights: Sequence[float] | None = None):
        super().__init__()
        self.loss, self.stage_weights = loss, None if stage_weights is None else tuple(stage_weights)

    def forward(self, outputs: Sequence[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        weights = self.stage_weights or (1.0,) * len(outputs)
        if len(weights) != len(outputs):
            raise ValueError(f"stage_weights has {len(weights)} entries for {len(outputs)} stage outputs")
        return sum(w * self.loss(out, target) for w, out in zip(weights, outputs))
