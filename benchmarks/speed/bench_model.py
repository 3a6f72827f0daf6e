"""Benchmark: HINet forward at 256x256 (one image), eager fp32 vs the fast inference paths of hinet.fast.

Baseline "eager": ``model.eval()`` under ``torch.inference_mode()`` (as ``hinet.evaluate`` runs it), NCHW,
reference PartialNorm. Paths, each timed interleaved with the baseline (``benchmarks/speed/timing.py``):

* ``fast``: ``optimize_for_inference(model)``: channels_last, fused PartialNorm, in-place LeakyReLU, fp32
  (target >= 1.3x at width 32);
* ``fast-bf16``: the same under bfloat16 autocast (reduced precision; >= 45 dB vs fp32 in tests/test_fast.py);
* ``compiled``: ``optimize_for_inference(model, compile=True)`` (inductor with freezing); its compilation time
  (with an empty inductor cache, so as a first run would see it) is reported as metric ``compile_s``.

Widths 16 and 32 always; 64 (the published HINet-1x) with ``--bench-width64`` or HINET_BENCH_WIDTH64=1.
Inputs are SYNTHETIC uniform noise (timings do not depend on image content).
"""

from __future__ import annotations

import time

import pytest
import torch

from hinet.arch import HINet
from hinet.config import PRESETS, scaled
from hinet.fast import optimize_for_inference

from .timing import compare

SIZE = 256
ROUNDS = {16: 10, 32: 7, 64: 3}
CASES = [(16, "fast"), (32, "fast"), (32, "fast-bf16"), (32, "compiled"), (64, "fast")]


def _bf16_supported() -> bool:
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


@pytest.mark.parametrize("width,path", CASES, ids=[f"w{w}-{p}" for w, p in CASES])
def test_forward(benchmark, width: int, path: str, width64: bool, tmp_path, monkeypatch) -> None:
    if width == 64 and not width64:
        pytest.skip("width 64 runs only with --bench-width64 (or HINET_BENCH_WIDTH64=1)")
    if path == "fast-bf16" and not _bf16_supported():
        pytest.skip("this CPU has no native bfloat16 (AVX512-BF16/AMX) support in oneDNN")
    torch.manual_seed(0)
    model = HINet(scaled(PRESETS["sidd-1x"], width=width)).eval()
    image = torch.rand(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))  # SYNTHETIC
    options = {"fast": {}, "fast-bf16": {"dtype": torch.bfloat16}, "compiled": {"compile": True}}[path]
    if path == "compiled":  # a cold inductor cache: compile_s is what a first run pays
        monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    runner = optimize_for_inference(model, **options)
    start = time.perf_counter()
    with torch.inference_mode():
        fast_out, ref = runner(image)[-1], model(image)[-1]
    first_call_s = time.perf_counter() - start  # includes compilation for the compiled path
    err = (fast_out - ref).abs().max().item()
    if path != "fast-bf16":
        assert err <= 1e-4, f"{path} differs from eager by {err}"

    def eager() -> None:
        with torch.inference_mode():
            model(image)

    result = compare(benchmark, lambda: runner(image), eager, rounds=ROUNDS[width], fast_name=path,
                     width=width, input=f"1x3x{SIZE}x{SIZE}", max_abs_diff=err)
    metrics = {"ms_per_image": 1e3 * result["fast_min_s"]}
    if path == "compiled":
        metrics["compile_s"] = first_call_s
    benchmark.extra_info["metrics"] = metrics


CUDA_CASES = [(w, p) for w in (32, 64) for p in ("fast", "fast-bf16", "fast-fp16")]
CUDA_BATCH = 8


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("width,path", CUDA_CASES, ids=[f"cuda-w{w}-{p}" for w, p in CUDA_CASES])
def test_forward_cuda(benchmark, width: int, path: str) -> None:
    """On CUDA: a batch of 8 images at 256², eager fp32 vs the fast paths; reports images per second.
    Each timed call ends with ``torch.cuda.synchronize()`` so that the kernels, not their launches, are timed."""
    torch.manual_seed(0)
    model = HINet(scaled(PRESETS["sidd-1x"], width=width)).eval().cuda()
    image = torch.rand(CUDA_BATCH, 3, SIZE, SIZE, device="cuda")  # SYNTHETIC
    dtype = {"fast": None, "fast-bf16": torch.bfloat16, "fast-fp16": torch.float16}[path]
    runner = optimize_for_inference(model, dtype=dtype)

    def synced(fn):
        def run() -> None:
            fn()
            torch.cuda.synchronize()
        return run

    def eager() -> None:
        with torch.inference_mode():
            model(image)

    result = compare(benchmark, synced(lambda: runner(image)), synced(eager), rounds=20, fast_name=path,
                     device="cuda", width=width, input=f"{CUDA_BATCH}x3x{SIZE}x{SIZE}",
                     gpu=torch.cuda.get_device_name())
    benchmark.extra_info["metrics"] = {"images_per_s": CUDA_BATCH / result["fast_min_s"],
                                       "eager_images_per_s": CUDA_BATCH / result["baseline_min_s"]}
