"""Benchmark: one training step at proxy scale, eager fp32 vs the fast training paths of hinet.fast.

The step is ``hinet.train``'s own, built by :func:`hinet.build.build_training` (forward, multi-stage loss,
backward, global-norm clip 0.01, Adam; one micro-batch), from the recipe ``sidd-proxy`` (HINet width
16, depth 3, batch 8 of 64x64 crops, L1 loss, Adam lr 1e-3, betas (0.9, 0.999)). Batches are SYNTHETIC
uniform noise.

* ``eager``: the network as ``hinet.train`` builds it by default (NCHW, reference PartialNorm, fp32);
* ``fast``: a spec with the fast switches (channels_last, fused PartialNorm, in-place LeakyReLU), fp32
  (target >= 1.2x);
* ``fast-bf16``: the same under bfloat16 autocast (changes the numbers; what ``--precision bf16`` trains with).
  Skipped, with :func:`hinet.hardware.reduced_precision_ok`'s reason, where bf16 is not faster than fp32 on
  the device; its precision is resolved with policy ``"error"``, so it never times fp32 under a bf16 name.

The metric ``patches_per_s`` (batch / step time) is the consumption rate that ``bench_data.py`` compares with.
"""

from __future__ import annotations

import pytest
import torch

from hinet.build import build_training
from hinet.config import preset
from hinet.hardware import reduced_precision_ok, resolve_precision
from hinet.recipes import recipe
from hinet.spec import RunSpec

from .timing import compare

RECIPE = "sidd-proxy"
ROUNDS = 15


def proxy_step(fast: bool, precision: str = "fp32", seed: int = 0):
    """A ``step()`` closure training a fresh proxy network on one fixed SYNTHETIC batch (NCHW RGB in [0, 1]),
    and the batch size. The step is built as the trainer builds it (:func:`hinet.build.build_training`) from the
    spec of a run with the fast switches on or off; ``precision`` (``fp32``/``bf16``) is resolved for the CPU with
    policy ``"error"``."""
    r = recipe(RECIPE)
    spec = RunSpec(r, r.network(preset(r.preset)), seed, precision=resolve_precision(precision, "cpu", "error"),
                   channels_last=fast, fused_norm=fast, inplace_act=fast)
    step = build_training(spec).step
    g = torch.Generator().manual_seed(seed + 1)
    batch = [(torch.rand(r.batch_size, 3, r.crop, r.crop, generator=g),
              torch.rand(r.batch_size, 3, r.crop, r.crop, generator=g))]  # one micro-batch (degraded, clean)
    return (lambda: step(batch)), r.batch_size


@pytest.mark.parametrize("path", ["fast", "fast-bf16"])
def test_train_step(benchmark, path: str) -> None:
    precision = "bf16" if path == "fast-bf16" else "fp32"
    ok, why = reduced_precision_ok("cpu", precision)
    if not ok:
        pytest.skip(why)
    fast, batch = proxy_step(True, precision)
    eager, _ = proxy_step(False)
    r = recipe(RECIPE)
    result = compare(benchmark, fast, eager, rounds=ROUNDS, fast_name=path, recipe=RECIPE, target=1.2,
                     label=f"training-step speed-up vs eager fp32, {RECIPE}",
                     input=f"{batch}x3x{r.crop}x{r.crop}")
    benchmark.extra_info["metrics"] = {"patches_per_s": batch / result["fast_min_s"],
                                       "eager_patches_per_s": batch / result["baseline_min_s"]}
