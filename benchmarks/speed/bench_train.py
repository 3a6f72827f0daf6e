"""Benchmark: one training step at proxy scale, eager fp32 vs the fast training paths of hinet.fast.

The step is ``hinet.train``'s: forward, multi-stage loss, backward, global-norm clip (0.01), Adam, built by
:func:`hinet.fast.make_train_step` from the recipe ``sidd-proxy`` (HINet width 16, depth 3, batch 8 of 64x64
crops, L1 loss, Adam lr 1e-3, betas (0.9, 0.999)). Batches are SYNTHETIC uniform noise.

* ``eager``: the network as ``hinet.train`` builds it by default (NCHW, reference PartialNorm, fp32);
* ``fast``: :func:`hinet.fast.fast_train_setup` (channels_last, fused PartialNorm, in-place LeakyReLU), fp32
  (target >= 1.2x);
* ``fast-bf16``: the same under bfloat16 autocast (changes the numbers; what ``--precision bf16`` trains with).

The metric ``patches_per_s`` (batch / step time) is the consumption rate that ``bench_data.py`` compares with.
"""

from __future__ import annotations

import pytest
import torch

from hinet.arch import HINet
from hinet.config import preset
from hinet.fast import fast_train_setup, make_train_step
from hinet.losses import MultiStageLoss, make_loss
from hinet.recipes import recipe

from .timing import compare

RECIPE = "sidd-proxy"
ROUNDS = 15


def proxy_step(fast: bool, dtype: torch.dtype | None = None, seed: int = 0):
    """A ``step()`` closure training a fresh proxy network on one fixed SYNTHETIC batch, and the batch size."""
    r = recipe(RECIPE)
    torch.manual_seed(seed)
    model = HINet(r.network(preset(r.preset))).train()
    net = fast_train_setup(model) if fast else model
    opt = torch.optim.Adam(model.parameters(), lr=r.lr, betas=r.betas, weight_decay=r.weight_decay)
    step = make_train_step(net, MultiStageLoss(make_loss(r.loss, r.loss_weight)), opt, grad_clip=r.grad_clip,
                           channels_last=fast, dtype=dtype)
    g = torch.Generator().manual_seed(seed + 1)
    degraded = torch.rand(r.batch_size, 3, r.crop, r.crop, generator=g)
    clean = torch.rand(r.batch_size, 3, r.crop, r.crop, generator=g)
    return (lambda: step(degraded, clean)), r.batch_size


@pytest.mark.parametrize("path", ["fast", "fast-bf16"])
def test_train_step(benchmark, path: str) -> None:
    if path == "fast-bf16" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        pytest.skip("this CPU has no native bfloat16 (AVX512-BF16/AMX) support in oneDNN")
    fast, batch = proxy_step(True, torch.bfloat16 if path == "fast-bf16" else None)
    eager, _ = proxy_step(False)
    r = recipe(RECIPE)
    result = compare(benchmark, fast, eager, rounds=ROUNDS, fast_name=path, recipe=RECIPE,
                     input=f"{batch}x3x{r.crop}x{r.crop}")
    benchmark.extra_info["metrics"] = {"patches_per_s": batch / result["fast_min_s"],
                                       "eager_patches_per_s": batch / result["baseline_min_s"]}
