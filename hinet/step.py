"""One training step of the suite: the function ``hinet.train`` runs and the speed suite times.

A step is: for each micro-batch, forward under the chosen precision, multi-stage loss scaled by
1/accumulation, backward (DDP all-reduces only on the last micro-batch); then unscale (fp16), clip the
global gradient norm, optimiser step, zero the gradients. It returns the summed loss of the step as a
device tensor, so the caller decides when to synchronise with the host (the trainer: at log steps only).

Inputs are NCHW float RGB batches in [0, 1] (degraded, clean); with ``channels_last`` the degraded batch
is made NHWC-contiguous before the forward (the model must have been converted too).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext

import torch
from torch import nn

from .hardware import PRECISIONS


class TrainStep:
    """``step(micro_batches) -> loss``: one optimiser step over ``accumulation`` micro-batches.

    Args:
        net: the module to call (the model, its DDP wrapper or a compiled wrapper); returns stage outputs.
        criterion: loss over the list of stage outputs and the clean batch (``hinet.losses.MultiStageLoss``).
        optimizer: its parameters are the ones clipped.
        grad_clip: global-norm clipping threshold (official recipes: 0.01).
        precision: ``fp32`` | ``bf16`` | ``fp16`` (autocast; fp16 with a gradient scaler).
        channels_last: make the degraded batch NHWC-contiguous.
    """

    def __init__(self, net: Callable[[torch.Tensor], Sequence[torch.Tensor]], criterion: nn.Module,
                 optimizer: torch.optim.Optimizer, *, grad_clip: float, precision: str = "fp32",
                 channels_last: bool = False) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision={precision!r}: expected one of {sorted(PRECISIONS)}")
        self.net, self.criterion, self.optimizer = net, criterion, optimizer
        self.params = [p for group in optimizer.param_groups for p in group["params"]]
        self.device = self.params[0].device
        self.grad_clip, self.channels_last = grad_clip, channels_last
        self.dtype = PRECISIONS[precision]
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=precision == "fp16")

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.dtype) if self.dtype is not None else nullcontext()

    def __call__(self, micro_batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        batches = list(micro_batches)
        total = torch.zeros((), device=self.device)
        no_sync = getattr(self.net, "no_sync", None)  # DDP: all-reduce on the last micro-batch only
        for j, (degraded, clean) in enumerate(batches):
            degraded = degraded.to(self.device, non_blocking=True)
            clean = clean.to(self.device, non_blocking=True)
            if self.channels_last:
                degraded = degraded.contiguous(memory_format=torch.channels_last)
            sync = no_sync() if no_sync is not None and j < len(batches) - 1 else nullcontext()
            with sync, self._autocast():
                loss = self.criterion(self.net(degraded), clean) / len(batches)
            self.scaler.scale(loss).backward()
            total += loss.detach()
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        return total
