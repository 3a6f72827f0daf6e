"""Benchmark: HINet against its peers, side by side: MPRNet (denoising), NAFNet (width 64) and any network given
with ``--model`` (a name or your own ``package.module:callable``).

* ``test_inference[<peer>]``: one forward of the full-size networks on one 1x3x256x256 image, eval mode, fp32,
  ``torch.inference_mode``, HINet SIDD-1x against the peer, interleaved round by round; ratio = peer time / HINet
  time, so "HINet is N x faster than <peer> on this machine" is the ratio with its 95% interval.
* ``test_train_step[<peer>]``: one training step of the ``methods`` family at proxy scale (recipe ``sidd-proxy``:
  each network shrunk by its own rule, :func:`hinet.models.proxy_network`; batch 8 of 64x64 crops), built as the
  trainer builds it (:func:`hinet.build.build_training`, no fast switches for either, fp32).

Inputs are SYNTHETIC uniform noise (timings do not depend on image content). Under CUDA the paths are timed by
``benchmarks.claims``; this suite runs on the CPU.
"""

from __future__ import annotations

import torch

from hinet.build import build_training
from hinet.models import build_network, network
from hinet.recipes import recipe
from hinet.spec import RunSpec

from .timing import compare

SIZE = 256
ROUNDS = 3
TRAIN_ROUNDS = 5
RECIPE = "sidd-proxy"


def test_inference(benchmark, peer: str) -> None:
    torch.manual_seed(0)
    hinet, other = (build_network(network(n)).eval() for n in ("sidd-1x", peer))
    x = torch.rand(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))

    def run(model):
        def call():
            with torch.inference_mode():
                return model(x)
        return call

    result = compare(benchmark, run(hinet), run(other), rounds=ROUNDS, warmup_rounds=1, fast_name="hinet-sidd-1x",
                     baseline_name=peer, label=f"inference 1x{SIZE}², HINet SIDD-1x vs {peer}, fp32 (ratio: how "
                     f"many times faster HINet is)", input=f"1x3x{SIZE}x{SIZE}")
    benchmark.extra_info["metrics"] = {"hinet_ms_min": 1e3 * result["fast_min_s"],
                                       "peer_ms_min": 1e3 * result["baseline_min_s"]}


def test_train_step(benchmark, peer: str) -> None:
    r = recipe(RECIPE)
    steps = [build_training(RunSpec(r, r.network(network(n)), 0)).step for n in ("sidd-1x", peer)]
    g = torch.Generator().manual_seed(1)
    batch = [(torch.rand(r.batch_size, 3, r.crop, r.crop, generator=g),
              torch.rand(r.batch_size, 3, r.crop, r.crop, generator=g))]
    compare(benchmark, lambda: steps[0](batch), lambda: steps[1](batch), rounds=TRAIN_ROUNDS, warmup_rounds=1,
            fast_name="hinet-sidd-1x", baseline_name=peer, input=f"{r.batch_size}x3x{r.crop}x{r.crop}",
            label=f"training step, methods family at proxy scale ({RECIPE}), HINet vs {peer}, fp32")
