"""Parameter and MAC counts for any config and input size.

Headline numbers use ptflops (pytorch backend, the counter NAFNet's tables use); ``conv_macs`` counts
convolutions only with torch's built-in ``FlopCounterMode`` (FLOPs / 2) as an independent cross-check.
Reference: SIDD-1x has 88,669,702 parameters and about 157.6 G conv MACs at 1x3x256x256.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from .arch import count_parameters
from .models import NetworkConfig, build_network


@dataclass(frozen=True)
class Complexity:
    params: int
    macs: int  # ptflops total: convolutions plus norms, activations, biases
    conv_macs: int  # FlopCounterMode: convolutions / matmuls only
    size: tuple[int, int]


def ptflops_macs(model: torch.nn.Module, size: tuple[int, int], channels: int = 3) -> int:
    """Total MACs of one forward pass on a (1, channels, H, W) input, counted by ptflops.

    ptflops prints a warning for every further parent of a shared module (MPRNet's one PReLU sits in every
    channel-attention block; the count is right all the same) and prints, rather than raises, a failure of the
    forward; its printout is captured, and a failure raised as a ``RuntimeError`` with its last line."""
    from ptflops import get_model_complexity_info  # only counting needs it (a trainer counts once, at step 0)

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        macs, _ = get_model_complexity_info(model, (channels, *size), as_strings=False, backend="pytorch",
                                            print_per_layer_stat=False, verbose=False)
    if macs is None:
        lines = [ln for ln in printed.getvalue().splitlines() if ln.strip()]
        raise RuntimeError(f"ptflops could not count {type(model).__name__} at {size}: "
                           f"{lines[-1] if lines else 'no reason given'}")
    return int(macs)


def conv_macs(model: torch.nn.Module, size: tuple[int, int], channels: int = 3) -> int:
    """Convolution MACs of one forward pass, counted by torch's FlopCounterMode (FLOPs / 2)."""
    counter = FlopCounterMode(display=False)
    device = next(model.parameters()).device  # a model on the meta device is counted without computing
    with counter, torch.no_grad():
        model(torch.zeros(1, channels, *size, device=device))
    return counter.get_total_flops() // 2


def complexity(model_or_cfg: torch.nn.Module | NetworkConfig, size: tuple[int, int] = (256, 256)) -> Complexity:
    """Parameters and MACs of a model (or a network config, built on the fly: :func:`hinet.models.build_network`)
    at input size (H, W)."""
    model = (model_or_cfg if isinstance(model_or_cfg, torch.nn.Module) else build_network(model_or_cfg)).eval()
    channels = model.cfg.in_channels
    return Complexity(count_parameters(model), ptflops_macs(model, size, channels),
                      conv_macs(model, size, channels), tuple(size))
