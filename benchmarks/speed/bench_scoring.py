"""Benchmark: PSNR + SSIM (official 3-D window, RGB) of 64 SIDD-sized blocks, batched torch vs per image.

Run: ``.venv/bin/python -m pytest benchmarks/speed/bench_scoring.py -p no:cacheprovider --benchmark-only``.
Not part of the default test run (``testpaths = ["tests"]``).

The per-image baseline is what BasicSR-style numpy code does: one HWC uint8 image at a time, float64,
PSNR from the mean squared error and SSIM from scipy.ndimage Gaussian filters. It uses scipy's separable
``gaussian_filter`` (3 passes of 11 taps), not a dense 11x11x11 kernel, so the comparison is not inflated.
``tests/test_metrics.py`` checks that both paths give the same numbers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from scipy import ndimage

from hinet.metrics import psnr, ssim
from hinet.records import environment

from .timing import ratio_info, stated, summary_ms

N_BLOCKS = 64
BLOCK = 256  # SIDD validation blocks are 256 x 256 x 3
ROUNDS = 3


def numpy_psnr_ssim(pred: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    """PSNR (dB, peak 255) and 3-D-window SSIM of one pair of HWC uint8 RGB images, float64 numpy/scipy."""
    a = pred.astype(np.float64)
    b = gt.astype(np.float64)
    mse = np.mean((a - b) ** 2)
    psnr_db = float("inf") if mse == 0 else 20.0 * np.log10(255.0 / np.sqrt(mse))

    def blur(x: np.ndarray) -> np.ndarray:
        # 11 taps (radius 5), sigma 1.5 along H, W and C; mode "nearest" is replicate padding.
        return ndimage.gaussian_filter(x, sigma=1.5, radius=5, mode="nearest")

    c1, c2 = (0.01 * 255.0) ** 2, (0.03 * 255.0) ** 2
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return psnr_db, float(ssim_map.mean())


def score_per_image_numpy(preds: np.ndarray, gts: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 stacks -> (N, 2) array of [psnr, ssim], one image at a time."""
    return np.array([numpy_psnr_ssim(p, g) for p, g in zip(preds, gts)])


def score_batched_torch(preds: torch.Tensor, gts: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) float in [0, 1] on the uint8 grid -> (N, 2) float64 of [psnr, ssim], whole batch."""
    return torch.stack((psnr(preds, gts), ssim(preds, gts)), dim=1)


def synthetic_blocks(n: int = N_BLOCKS, size: int = BLOCK, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """SYNTHETIC data: smooth random "GT" blocks and noisy "predictions", both (n, size, size, 3) uint8."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, size=(n, size // 16, size // 16, 3))
    gt = ndimage.zoom(coarse, (1, 16, 16, 1), order=1)
    pred = gt + rng.normal(0.0, 10.0, size=gt.shape)
    return np.clip(pred, 0, 255).round().astype(np.uint8), np.clip(gt, 0, 255).round().astype(np.uint8)


def to_tensor(x: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32 in [0, 1]."""
    return torch.from_numpy(x).permute(0, 3, 1, 2).float().div(255.0).contiguous()


@pytest.fixture(scope="module")
def blocks() -> dict[str, object]:
    pred, gt = synthetic_blocks()
    return {"pred": pred, "gt": gt, "pred_t": to_tensor(pred), "gt_t": to_tensor(gt), "timings": {}}


def test_per_image_numpy(benchmark, blocks) -> None:
    benchmark.extra_info.update(environment("cpu", hardware=True))
    benchmark.extra_info.update(n_blocks=N_BLOCKS, block=f"{BLOCK}x{BLOCK}x3", input=f"{N_BLOCKS}x3x{BLOCK}x{BLOCK}",
                                path="numpy/scipy per image", **stated("per-image numpy PSNR+SSIM"))
    out = benchmark.pedantic(
        score_per_image_numpy, args=(blocks["pred"], blocks["gt"]), rounds=ROUNDS, iterations=1
    )
    assert out.shape == (N_BLOCKS, 2) and np.isfinite(out).all()
    blocks["timings"]["per_image_s"] = list(benchmark.stats.stats.data)


@pytest.fixture(params=sorted({1, torch.get_num_threads()}), ids=lambda n: f"threads{n}")
def torch_threads(request) -> Iterator[int]:
    """Intra-op threads for the batched path; restored afterwards. On a shared, oversubscribed CPU one
    thread can beat two: each op waits for its slowest thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


def test_batched_torch(benchmark, blocks, torch_threads) -> None:
    out = benchmark.pedantic(
        score_batched_torch, args=(blocks["pred_t"], blocks["gt_t"]), rounds=ROUNDS, iterations=1, warmup_rounds=1
    )
    assert out.shape == (N_BLOCKS, 2) and torch.isfinite(out).all()
    per_image_s = blocks["timings"].get("per_image_s")
    if per_image_s is None:  # this test was selected alone: time the baseline here, same rounds
        per_image_s = []
        for _ in range(ROUNDS):
            start = time.perf_counter()
            score_per_image_numpy(blocks["pred"], blocks["gt"])
            per_image_s.append(time.perf_counter() - start)
    batched_s = list(benchmark.stats.stats.data)
    benchmark.extra_info.update(environment(blocks["pred_t"].device, hardware=True))  # while torch_threads is in force
    benchmark.extra_info.update(
        n_blocks=N_BLOCKS,
        block=f"{BLOCK}x{BLOCK}x3",
        input=f"{N_BLOCKS}x3x{BLOCK}x{BLOCK}",
        path="torch batched",
        per_image_min_s=min(per_image_s),
        batched_min_s=min(batched_s),
        paths={"numpy per image": summary_ms(per_image_s), "torch batched": summary_ms(batched_s)},
        compared={"baseline": "numpy per image", "fast": "torch batched", "measure": "ms_median"},
        ratio_of="per-image numpy time / batched torch time",
        **stated(f"batched torch PSNR+SSIM vs per-image numpy, {torch_threads} torch thread(s)", 5.0),
        **ratio_info(per_image_s, batched_s, paired=False),  # separate tests: rounds not interleaved
    )
