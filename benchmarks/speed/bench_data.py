"""Benchmark: training patches per second from prepared 512x512 PNG crops vs what the proxy step consumes.

Data: a SYNTHETIC ``prepare_crops`` folder (``input_crops/``, ``gt_crops/``: 8-bit RGB PNG, compression 3 as
the official scripts) cut at 512 px / stride 384 (the SIDD setting) from noisy smooth random images, so that
the PNGs are about as large (and as slow to decode) as real noisy SIDD crops.

Loader: ``DataLoader(PatchDataset(crops, 64, augment="sidd"), batch_size=8, num_workers=2)``, the
``sidd-proxy`` recipe's crop, augmentation and batch. After a warm-up longer than the prefetch queue
(2 workers x 2 batches) the main process only waits for the workers, so timing K consecutive batches
measures their production rate.

Consumption: the proxy training step (``bench_train.proxy_step``), timed after the loader's workers have
exited so that the two never share the CPU; ratio = loader patches/s / eager-step patches/s (target >= 2),
i.e. eager-step time per batch / loader time per batch (the paths ``eager step`` and ``loader``, ms per
batch of 8 patches; rounds not interleaved, so the interval resamples them separately);
``ratio_vs_fast_step`` divides by the fast step's rate instead.
"""

from __future__ import annotations

import time

import pytest
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

from hinet.data.patches import PatchDataset
from hinet.data.prepare import PREPARE_SETTINGS, PreparedCrops, prepare_crops
from hinet.recipes import recipe
from hinet.records import environment

from .bench_train import RECIPE, proxy_step
from .timing import ratio_info, stated, summary_ms

WORKERS = 2
BATCHES_PER_ROUND = 8
WARMUP_BATCHES = 6  # > prefetch depth (workers x prefetch_factor = 4)
ROUNDS = 6
STEP_ROUNDS = 12


class NoisySmoothImages(Dataset):
    """SYNTHETIC pairs: a smooth random RGB field (clean) and the same plus Gaussian noise, sigma 15/255,
    quantised to 8 bits (degraded). Items ``(degraded, clean, name)``, float32 (3, size, size) in [0, 1]."""

    synthetic = True

    def __init__(self, count: int = 4, size: int = 896, seed: int = 0):
        self.count, self.size, self.seed = count, size, seed

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, str]:
        g = torch.Generator().manual_seed(self.seed * 1000 + index)
        coarse = torch.rand(1, 3, self.size // 32, self.size // 32, generator=g)  # (1, 3, h, w)
        clean = F.interpolate(coarse, size=(self.size, self.size), mode="bicubic", align_corners=False)[0]
        clean = clean.clamp(0, 1)
        noisy = (clean + torch.randn(clean.shape, generator=g) * (15 / 255)).clamp(0, 1)
        return (noisy * 255).round() / 255, (clean * 255).round() / 255, f"synthetic-{index:04d}"


@pytest.fixture(scope="module")
def crops(tmp_path_factory) -> PreparedCrops:
    out = tmp_path_factory.mktemp("prepared") / "train"
    _, _, size, stride = PREPARE_SETTINGS["sidd"]
    threads = torch.get_num_threads()
    n = prepare_crops(NoisySmoothImages(), out, size=size, stride=stride, workers=0)
    torch.set_num_threads(threads)  # prepare_crops(workers=0) leaves the caller at one intra-op thread
    assert n == 16
    return PreparedCrops(out)


def time_step(fast: bool, rounds: int) -> tuple[list[float], int]:
    """Seconds of ``rounds`` proxy training steps (after two warm-up steps), and the batch size."""
    step, batch = proxy_step(fast)
    step(), step()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return times, batch


def test_patches_per_second(benchmark, crops: PreparedCrops) -> None:
    r = recipe(RECIPE)
    patches = PatchDataset(crops, r.crop, augment=r.augment, length=10**6, seed=0)
    loader = DataLoader(patches, batch_size=r.batch_size, shuffle=True, num_workers=WORKERS,
                        generator=torch.Generator().manual_seed(0))
    live = {"batches": iter(loader)}  # a holder, so the iterator (and its workers) can be dropped below
    for _ in range(WARMUP_BATCHES):
        next(live["batches"])

    def draw() -> None:
        for _ in range(BATCHES_PER_ROUND):
            degraded, clean, _ = next(live["batches"])
            assert degraded.shape == (r.batch_size, 3, r.crop, r.crop)

    benchmark.pedantic(draw, rounds=ROUNDS, iterations=1)
    live.clear()  # the workers exit before the training step is timed
    per_round = BATCHES_PER_ROUND * r.batch_size
    loader_rate = per_round / benchmark.stats.stats.min
    loader_batch_s = [t / BATCHES_PER_ROUND for t in benchmark.stats.stats.data]  # seconds per batch
    eager_s, batch = time_step(False, STEP_ROUNDS)
    fast_s, _ = time_step(True, STEP_ROUNDS)
    assert batch == r.batch_size
    consume, consume_fast = batch / min(eager_s), batch / min(fast_s)
    benchmark.extra_info.update(environment("cpu", hardware=True))
    benchmark.extra_info.update(
        loader="PatchDataset", workers=WORKERS, crop=r.crop, batch=r.batch_size,
        input=f"{BATCHES_PER_ROUND * r.batch_size}x3x{r.crop}x{r.crop}",
        source="512x512 PNG crops (synthetic)",
        paths={"eager step": summary_ms(eager_s), "loader": summary_ms(loader_batch_s)},
        compared={"baseline": "eager step", "fast": "loader", "measure": "ms_median"},
        **ratio_info(eager_s, loader_batch_s, paired=False),
        ratio_of="loader patches/s / eager proxy step patches/s (= step time / loader time per batch)",
        **stated("loader patches/s vs proxy step consumption", 2.0),
        metrics={"patches_per_s": loader_rate, "step_patches_per_s": consume,
                 "fast_step_patches_per_s": consume_fast, "ratio_vs_fast_step": loader_rate / consume_fast})
