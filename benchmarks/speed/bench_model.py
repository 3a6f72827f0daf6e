"""Benchmark: HINet forward at 256x256 (one image), eager fp32 vs the fast inference paths of hinet.fast.

Baseline "eager": ``model.eval()`` under ``torch.inference_mode()`` (as ``hinet.evaluate`` runs it), NCHW,
reference PartialNorm. Paths, each timed interleaved with the baseline (``benchmarks/speed/timing.py``):

* ``fast``: ``optimize_for_inference(model)``: channels_last, fused PartialNorm, in-place LeakyReLU, fp32
  (target >= 1.3x at width 32);
* ``fast-bf16``: the same under bfloat16 autocast (reduced precision; >= 45 dB vs fp32 in tests/test_fast.py);
  skipped, with :func:`hinet.hardware.reduced_precision_ok`'s reason, where bf16 is not faster than fp32
  (CPUs without AVX512-BF16/AMX), and built with ``precision_policy="error"`` so that it can never time
  fp32 under a bf16 name;
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
from hinet.hardware import reduced_precision_ok

from .timing import compare

SIZE = 256
ROUNDS = {16: 10, 32: 7, 64: 3}
CASES = [(16, "fast"), (32, "fast"), (32, "fast-bf16"), (32, "compiled"), (64, "fast")]


REDUCED = {"fast-bf16": torch.bfloat16, "fast-fp16": torch.float16}  # path -> autocast dtype


def reduced_precision_runner(model: torch.nn.Module, path: str, device: str):
    """The fast runner of a reduced-precision ``path``, or a pytest skip naming why the device has no fast
    kernels for it; ``precision_policy="error"``, and the runner's dtype is checked: never a silent fp32."""
    ok, why = reduced_precision_ok(device, REDUCED[path])
    if not ok:
        pytest.skip(why)
    runner = optimize_for_inference(model, dtype=REDUCED[path], precision_policy="error")
    assert runner.dtype is REDUCED[path], f"{path}: the runner runs {runner.dtype}"
    return runner


@pytest.mark.parametrize("width,path", CASES, ids=[f"w{w}-{p}" for w, p in CASES])
def test_forward(benchmark, width: int, path: str, width64: bool, tmp_path, monkeypatch) -> None:
    if width == 64 and not width64:
        pytest.skip("width 64 runs only with --bench-width64 (or HINET_BENCH_WIDTH64=1)")
    if path in REDUCED:  # before building anything (reduced_precision_runner checks again)
        ok, why = reduced_precision_ok("cpu", REDUCED[path])
        if not ok:
            pytest.skip(why)
    torch.manual_seed(0)
    model = HINet(scaled(PRESETS["sidd-1x"], width=width)).eval()
    image = torch.rand(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))  # SYNTHETIC
    if path == "compiled":  # a cold inductor cache: compile_s is what a first run pays
        monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    if path in REDUCED:
        runner = reduced_precision_runner(model, path, "cpu")
    else:
        runner = optimize_for_inference(model, compile=path == "compiled")
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
                     label=f"inference speed-up vs eager fp32, width {width}, {SIZE}x{SIZE}",
                     target=1.3 if width == 32 else None, width=width, input=f"1x3x{SIZE}x{SIZE}", max_abs_diff=err)
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
    runner = reduced_precision_runner(model, path, "cuda") if path in REDUCED else optimize_for_inference(model)

    def synced(fn):
        def run() -> None:
            fn()
            torch.cuda.synchronize()
        return run

    def eager() -> None:
        with torch.inference_mode():
            model(image)

    result = compare(benchmark, synced(lambda: runner(image)), synced(eager), rounds=20, fast_name=path,
                     label=f"CUDA inference speed-up vs eager fp32, width {width}, {CUDA_BATCH}x{SIZE}x{SIZE}",
                     device="cuda", width=width, input=f"{CUDA_BATCH}x3x{SIZE}x{SIZE}",
                     gpu=torch.cuda.get_device_name())
    benchmark.extra_info["metrics"] = {"images_per_s": CUDA_BATCH / result["fast_min_s"],
                                       "eager_images_per_s": CUDA_BATCH / result["baseline_min_s"]}
