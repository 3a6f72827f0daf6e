"""The one assembly of a run's training parts from its spec: the seeded network, the fast switches, the optimiser,
the loss and the :class:`hinet.step.TrainStep`.

The trainer, the sequential planner's time probe and the speed suite all build through :func:`build_training`, so a
benchmark times, and a plan estimates, the step the trainer runs (fast switches and precision included).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from .fast import fast_train_setup
from .losses import MultiStageLoss, make_loss
from .models import Factory, ModelError, build_network, reset_network
from .spec import RunSpec
from .step import TrainStep


@dataclass
class Training:
    """What a training loop needs: ``model`` (the parameters, on the device), ``optimizer`` and ``step``."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    step: TrainStep


def build_model(spec: RunSpec) -> nn.Module:
    """The spec's network (:func:`hinet.models.build_network`) with its initial weights: ``torch.manual_seed(seed)``
    (identical on every process), then, with ``init="per-module"``, every module re-drawn from (seed, its name), so
    that variants share the weights of every module they have in common (common random numbers)."""
    torch.manual_seed(spec.seed)
    model = build_network(spec.model)
    if spec.init == "per-module":
        reset_network(model, spec.seed)
    return model


def build_training(spec: RunSpec, device: str | torch.device = "cpu", *,
                   wrap: Callable[[nn.Module], nn.Module] | None = None) -> Training:
    """Model on ``device`` with the spec's fast switches (channels_last, fused norm, in-place activations), Adam with
    the recipe's lr/betas/weight decay, the recipe's multi-stage loss, and the step under the spec's precision.

    ``wrap`` (e.g. DistributedDataParallel) wraps the module the step calls; the optimiser sees the model's own
    parameters. The precision is used as given: resolve it for the device first
    (:func:`hinet.hardware.resolve_precision`)."""
    r = spec.recipe
    if (spec.fused_norm or spec.inplace_act) and isinstance(spec.model, Factory):
        raise ModelError(f"--model {spec.model.factory}: fused_norm/inplace_act are HINet's fast paths (in-place "
                         f"activations are unsafe where an activation's input is used again); turn them off")
    model = build_model(spec).to(device)
    net = fast_train_setup(model, channels_last=spec.channels_last, fused_norm=spec.fused_norm,
                           inplace_act=spec.inplace_act)
    optimizer = torch.optim.Adam(model.parameters(), lr=r.lr, betas=r.betas, weight_decay=r.weight_decay)
    step = TrainStep(wrap(net) if wrap is not None else net, MultiStageLoss(make_loss(r.loss, r.loss_weight)),
                     optimizer, grad_clip=r.grad_clip, precision=spec.precision, channels_last=spec.channels_last)
    return Training(model, optimizer, step)
