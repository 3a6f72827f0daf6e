"""The SIDD benchmark submission: denoise ``BenchmarkNoisyBlocksSrgb.mat`` and write the ``.mat`` file the SIDD
server expects (:func:`hinet.data.write_sidd_submission`: ``DenoisedBlocksSrgb`` uint8 (images, blocks, 256,
256, 3) RGB, plus ``TimeMPSrgb`` in seconds per megapixel). The benchmark has no public ground truth.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from tqdm import tqdm

from ..data import SIDDBenchmark, locate, write_sidd_submission
from ..data.io import to_uint8
from ..evaluate import predict
from .cli import check_outputs
from .scoring import load_method
from .specs import Method


def denoise_blocks(method: Method, dataset: SIDDBenchmark, *, tta: bool, device: torch.device, batch_size: int,
                   progress: bool = True) -> tuple[np.ndarray, float]:
    """Denoise every benchmark block -> ((images, blocks, 256, 256, 3) uint8 RGB, seconds per megapixel).

    Predictions are clamped to [0, 1] and rounded to uint8 (as the MATLAB kit and MPRNet save them). The time
    covers reading, inference and the copy back to the host, over all blocks.
    """
    for m in method.models:
        if isinstance(m, torch.nn.Module):
            m.eval().to(device)
    n = len(dataset)
    out: np.ndarray | None = None
    start = time.perf_counter()
    with torch.inference_mode():
        for first in tqdm(range(0, n, batch_size), desc="SIDD benchmark", disable=not progress, unit="batch"):
            noisy = torch.stack([dataset[i][0] for i in range(first, min(first + batch_size, n))]).to(device)
            pred = predict(method.models, noisy, tta=tta).float().cpu()  # (b, 3, 256, 256)
            hwc = to_uint8(pred).permute(0, 2, 3, 1).numpy()  # (b, 3, H, W) -> (b, H, W, 3)
            if out is None:
                out = np.empty((n, *hwc.shape[1:]), dtype=np.uint8)
            out[first:first + len(hwc)] = hwc
    seconds = time.perf_counter() - start
    megapixels = n * out.shape[1] * out.shape[2] / 1e6
    # (images * blocks, 256, 256, 3) -> (images, blocks, 256, 256, 3), image-major as the dataset indexes it
    return out.reshape(dataset.images, dataset.blocks, *out.shape[1:]), seconds / megapixels


def submit(args: argparse.Namespace) -> int:
    """Write the SIDD benchmark submission ``args.submission`` for ``args.weights`` (found below
    ``args.data``); prints what was done and returns the exit status (0)."""
    check_outputs(args)
    method = load_method(args.weights, args.name)
    dataset = SIDDBenchmark(locate(args.data, "sidd-benchmark"))
    blocks, time_mp = denoise_blocks(method, dataset, tta=args.tta, device=args.device,
                                     batch_size=args.batch_size, progress=not args.no_progress)
    args.submission.parent.mkdir(parents=True, exist_ok=True)
    write_sidd_submission(args.submission, blocks, time_mp=time_mp)
    print(f"SIDD benchmark submission: {method.describe(args.tta)}")
    print(f"denoised {dataset.noisy_path} ({dataset.images} images x {dataset.blocks} blocks), "
          f"{time_mp:.3f} s/MP on {args.device}")
    print(f"wrote {args.submission} (DenoisedBlocksSrgb uint8 {blocks.shape}, TimeMPSrgb)")
    return 0
