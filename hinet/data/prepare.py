"""Offline sub-image crops of the training sets, as HINet's ``scripts/data_preparation/{sidd,gopro}.py`` made them.

Crop positions reproduce BasicSR's ``extract_subimages`` worker (also vendored in HINet): along each axis of
length ``L``, positions are ``range(0, L - size + 1, stride)``; if the remainder ``L - (last + size)`` is larger
than ``thresh_size`` (0 in both HINet scripts), one more crop snapped to the border, at ``L - size``, is added.
Crops are numbered row-major from ``_s001``. For a 720x1280 GoPro frame (size 512, stride 256) that gives rows
{0, 208} x columns {0, 256, 512, 768} = 8 crops (1280 - 768 - 512 = 0, so no extra column).

HINet settings: SIDD-Medium 512 px, stride 384; GoPro train 512 px, stride 256.

Output: ``<out>/input_crops/<name>_sNNN.png`` and ``<out>/gt_crops/<name>_sNNN.png`` (8-bit RGB PNG), where
``<name>`` is the item name with ``/`` replaced by ``-`` (GOPRO_Large ``scene/000047`` becomes
``scene-000047``, the flat-copy file name; SIDD items are already ``NNNN_SRGB_01x`` as in HINet's script).
Unlike the original (which strips "x2/x3/x4/x8" from names, a DIV2K leftover), names are kept as they are.
Files are written atomically (temporary file + ``os.replace``) by a pool of worker processes.

CLI::

    python -m hinet.data.prepare {sidd,gopro} --data DIR --out OUT [--workers N] [--overwrite]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Sequence
from multiprocessing import Pool
from pathlib import Path

import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from ..atomic import ensure_dir
from ..errors import ArgumentParser, run_command
from .gopro import GoPro
from .io import DatasetError, write_image
from .locate import locate
from .paired import PairedFiles, pair_folders
from .sidd import SIDDMedium
from .verify import verify_pairs

__all__ = ["PREPARE_SETTINGS", "PreparedCrops", "check_output_folder", "crop_positions", "prepare_crops", "main"]

#: dataset -> (locate key, split, crop size, stride), from HINet's data-preparation scripts.
PREPARE_SETTINGS: dict[str, tuple[str, str, int, int]] = {
    "sidd": ("sidd-medium", "train", 512, 384),
    "gopro": ("gopro", "train", 512, 256),
}
INPUT_DIR, GT_DIR = "input_crops", "gt_crops"
PROG = "python -m hinet.data.prepare"


def crop_positions(length: int, size: int, stride: int, thresh_size: int = 0) -> list[int]:
    """Start offsets of ``size``-long crops along an axis of ``length`` (BasicSR ``extract_subimages`` rule).

    Raises:
        ValueError: ``length < size`` (the original script crashes there) or a non-positive size/stride.
    """
    if size < 1 or stride < 1:
        raise ValueError(f"crop size and stride must be positive, got size={size}, stride={stride}")
    if length < size:
        raise ValueError(f"cannot cut {size}-px crops from an axis of {length} px")
    positions = list(range(0, length - size + 1, stride))
    if length - (positions[-1] + size) > thresh_size:
        positions.append(length - size)
    return positions


# Worker-process state: the dataset is sent once per worker (Pool initializer), tasks are item indices.
_WORKER: dict[str, object] = {}


def _init_worker(pairs: Dataset, out_dir: Path, size: int, stride: int, thresh_size: int,
                 single_thread: bool = True) -> None:
    # As torch's DataLoader workers do: one intra-op thread per worker process. Forked children must not enter
    # the OpenMP pool the parent already used (GNU OpenMP is not fork-safe: the child hangs on a futex).
    # In-process (workers=0) the caller's thread setting is left alone.
    if single_thread:
        torch.set_num_threads(1)
    _WORKER.update(pairs=pairs, out_dir=out_dir, size=size, stride=stride, thresh_size=thresh_size)


def _crop_item(index: int) -> int:
    """Cut and write all crops of item ``index``; returns how many were written."""
    pairs, out_dir = _WORKER["pairs"], _WORKER["out_dir"]
    size, stride, thresh = _WORKER["size"], _WORKER["stride"], _WORKER["thresh_size"]
    degraded, clean, name = pairs[index]  # type: ignore[index]
    if clean is None:
        raise DatasetError(f"item {name!r} has no clean image; cannot prepare training crops")
    if degraded.shape != clean.shape:
        raise DatasetError(f"item {name!r}: degraded {tuple(degraded.shape)} vs clean {tuple(clean.shape)}")
    h, w = degraded.shape[-2:]
    try:
        rows = crop_positions(h, size, stride, thresh)  # type: ignore[arg-type]
        cols = crop_positions(w, size, stride, thresh)  # type: ignore[arg-type]
    except ValueError as err:
        raise DatasetError(f"item {name!r} ({h}x{w}): {err}") from err
    stem = name.replace("/", "-")
    n = 0
    for top in rows:
        for left in cols:
            n += 1
            window = (slice(None), slice(top, top + size), slice(left, left + size))
            fname = f"{stem}_s{n:03d}.png"
            write_image(Path(out_dir) / INPUT_DIR / fname, degraded[window])  # type: ignore[arg-type]
            write_image(Path(out_dir) / GT_DIR / fname, clean[window])  # type: ignore[arg-type]
    return n


def check_output_folder(out: Path, overwrite: bool) -> None:
    """Raise ``FileExistsError`` for a file in the way or a non-empty folder without ``overwrite``, and
    :class:`hinet.atomic.OutputError` when the folder cannot be created; both name the path."""
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"output path {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"output folder {out} is not empty; pass overwrite=True (CLI: --overwrite)")
    ensure_dir(out)


def prepare_crops(
    pairs: Dataset,
    out_dir: str | os.PathLike[str],
    *,
    size: int,
    stride: int,
    workers: int = 2,
    thresh_size: int = 0,
    overwrite: bool = False,
) -> int:
    """Cut every pair of ``pairs`` into ``size`` x ``size`` crops at ``stride`` and write them as PNG pairs.

    Args:
        pairs: paired dataset yielding ``(degraded, clean, name)`` (CHW RGB in [0, 1]); it is pickled to the
            worker processes once each.
        out_dir: output folder; gets ``input_crops/`` and ``gt_crops/``.
        workers: worker processes (``multiprocessing.Pool``); 0 runs in this process.
        thresh_size: BasicSR's remainder threshold for the extra border crop (0 as in HINet).
        overwrite: allow a non-empty ``out_dir``; existing ``input_crops/`` and ``gt_crops/`` are replaced.

    Returns:
        the number of crop pairs written.

    Raises:
        FileExistsError: ``out_dir`` is not empty and ``overwrite`` is False.
        DatasetError: an image smaller than ``size`` or a broken pair. The crop folders are then removed, so no
            partial result is left behind.
    """
    out = Path(out_dir)
    if size < 1 or stride < 1:
        raise ValueError(f"crop size and stride must be positive, got size={size}, stride={stride}")
    check_output_folder(out, overwrite)
    if overwrite:
        for sub in (INPUT_DIR, GT_DIR):
            shutil.rmtree(out / sub, ignore_errors=True)
    ensure_dir(out / INPUT_DIR)  # a read-only --out (or parent) fails here, naming the folder
    ensure_dir(out / GT_DIR)
    n_items = len(pairs)  # type: ignore[arg-type]
    initargs = (pairs, out, int(size), int(stride), int(thresh_size))
    total = 0
    try:
        with tqdm(total=n_items, unit="image", desc=f"crops {size}px/{stride}") as bar:
            if workers <= 0:
                _init_worker(*initargs, single_thread=False)
                for i in range(n_items):
                    total += _crop_item(i)
                    bar.update(1)
            else:
                with Pool(processes=workers, initializer=_init_worker, initargs=initargs) as pool:
                    for n in pool.imap_unordered(_crop_item, range(n_items)):
                        total += n
                        bar.update(1)
    except BaseException:
        for sub in (INPUT_DIR, GT_DIR):
            shutil.rmtree(out / sub, ignore_errors=True)
        raise
    finally:
        _WORKER.clear()
    return total


class PreparedCrops(PairedFiles):
    """Crops written by :func:`prepare_crops`, read back as a paired dataset (names ``<name>_sNNN``)."""

    def __init__(self, out_dir: str | os.PathLike[str]) -> None:
        out = Path(out_dir)
        for sub in (INPUT_DIR, GT_DIR):
            if not (out / sub).is_dir():
                raise FileNotFoundError(
                    f"{out / sub} not found: expected the output of prepare_crops "
                    f"(<out>/{INPUT_DIR}/*.png + <out>/{GT_DIR}/*.png)"
                )
        super().__init__(pair_folders(out / INPUT_DIR, out / GT_DIR), name=f"crops-{out.name}", root=out)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; see the module docstring. Returns the exit code (2 with one line on stderr for a bad
    --data/--out or a bad file; ``--debug`` adds the traceback)."""
    parser = ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument("dataset", choices=sorted(PREPARE_SETTINGS))
    parser.add_argument("--data", required=True, type=Path, help="folder holding the dataset (any depth)")
    parser.add_argument("--out", required=True, type=Path, help="output folder for input_crops/ and gt_crops/")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--overwrite", action="store_true", help="replace crops in a non-empty --out")
    parser.add_argument("--no-verify", action="store_true", help="skip the check that every image decodes")
    parser.add_argument("--debug", action="store_true", help="print the traceback of an error")
    args = parser.parse_args(argv)
    return run_command(PROG, lambda: _prepare(args), None if argv is None else list(argv))


def _prepare(args: argparse.Namespace) -> int:
    key, split, size, stride = PREPARE_SETTINGS[args.dataset]
    if not args.data.is_dir():
        raise FileNotFoundError(f"--data {args.data}: no such folder")
    root = locate(args.data, key)
    pairs = SIDDMedium(root) if args.dataset == "sidd" else GoPro(root, split)
    check_output_folder(args.out, args.overwrite)  # before the (long) check of the images
    if not args.no_verify:
        verify_pairs(pairs)
    n = prepare_crops(pairs, args.out, size=size, stride=stride, workers=args.workers, overwrite=args.overwrite)
    print(f"{pairs.name}: {len(pairs)} pairs from {root} -> {n} crop pairs of {size}px (stride {stride}) in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
