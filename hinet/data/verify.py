"""Check a dataset's files before a run spends hours on it: every file exists, decodes, and pairs agree in size.

:func:`verify_pairs` is what ``hinet.train`` and the scoring commands call before they start (``--no-verify``
skips it). One bad file ends the check with one :class:`~hinet.data.io.DatasetError` line naming it (and
how many other problems were found), instead of a crash in a DataLoader worker hours into training.

How much is decoded (``decode``):

* ``"check"`` (default): sizes from the headers, then a check of the compressed data that costs a fraction
  of a full decode. PNG: Pillow's ``verify()``, which walks every chunk and checks its CRC-32 (a truncated
  file, a missing ``IEND`` or a flipped byte fail) without inflating the pixels. JPEG: a decode in
  Pillow's draft mode at 1/8 scale (libjpeg's DCT scaling still reads every entropy-coded block, so a
  truncated file fails). Other formats are decoded fully.
* ``"full"``: every file decoded with :func:`~hinet.data.io.read_image`, exactly as training reads it.
* ``"header"``: sizes from the headers only (what ``PairedFiles.verify`` did).

``header`` < ``check`` < ``full`` in cost; what each costs per file on one machine is in the README's "Speed"
section.

Files are checked by a small thread pool (Pillow and zlib release the GIL while they work), with a tqdm bar
for sets of :data:`PROGRESS_MIN` pairs or more. SIDD's ``.mat`` block sets are read whole (their ``load()``),
synthetic sets have no files and pass at once.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

from PIL import Image
from torch.utils.data import Dataset
from tqdm import tqdm

from .io import DECODE_ERRORS, DatasetError, read_image
from .paired import Pair

__all__ = ["PROGRESS_MIN", "Decode", "check_image", "verify_pairs"]

Decode = Literal["check", "full", "header"]
PROGRESS_MIN = 50  # smaller sets finish before a bar is worth drawing


def check_image(path: str | os.PathLike[str], decode: Decode = "check") -> tuple[int, int]:
    """``(height, width)`` of an image file, after checking it as ``decode`` says (see the module docstring).

    Raises:
        DatasetError: the file is missing, or cannot be read or decoded; the message names it.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"image file not found: {path}")
    if decode == "full":
        hw = read_image(path).shape[-2:]
        return int(hw[0]), int(hw[1])
    if decode not in ("check", "header"):
        raise ValueError(f"decode: expected 'check', 'full' or 'header', got {decode!r}")
    try:
        with Image.open(path) as im:
            width, height = im.size
            if decode == "check":
                if im.format == "PNG":
                    im.verify()  # CRC of every chunk, IEND present; pixels are not inflated
                elif im.format == "JPEG":
                    im.draft("RGB", (max(1, width // 8), max(1, height // 8)))  # decode at 1/8 scale
                    im.load()
                else:
                    im.load()
    except DECODE_ERRORS as err:
        raise DatasetError(f"cannot decode image {path}: {err}") from None
    return height, width


def _check_pair(pair: Pair, decode: Decode) -> str | None:
    """The problem with one pair as a message, or None."""
    try:
        hw_d, hw_c = check_image(pair.degraded, decode), check_image(pair.clean, decode)
    except DatasetError as err:
        return str(err)
    if hw_d != hw_c:
        return (f"size mismatch in pair {pair.name!r}: {pair.degraded} is {hw_d[0]}x{hw_d[1]}, "
                f"{pair.clean} is {hw_c[0]}x{hw_c[1]} (HxW)")
    return None


def verify_pairs(dataset: Dataset, progress: bool = True, *, decode: Decode = "check", workers: int = 4) -> int:
    """Check every file of ``dataset`` (see the module docstring); returns the number of items checked.

    ``dataset``: a :class:`~hinet.data.paired.PairedFiles` (GoPro, HIDE, Rain13k, SIDD-Medium, prepared crops),
    a :class:`~hinet.data.patches.PatchDataset` over one, a SIDD block set (read whole), or a synthetic set.

    Raises:
        DatasetError: the first problem in pair order, followed by the count of further problems.
    """
    pairs = getattr(dataset, "pairs", None)
    if isinstance(pairs, Dataset):  # PatchDataset: check the files it cuts from
        return verify_pairs(pairs, progress, decode=decode, workers=workers)
    if pairs is None:
        load = getattr(dataset, "load", None)
        if callable(load):  # SIDD .mat blocks: reading them is the check (errors name the file)
            load()
        return len(dataset)  # type: ignore[arg-type]
    pairs = list(pairs)
    name = getattr(dataset, "name", type(dataset).__name__)
    problems: list[str] = []
    with tqdm(total=len(pairs), unit="pair", desc=f"verify {name}",
              disable=not progress or len(pairs) < PROGRESS_MIN) as bar:
        if workers <= 1:
            results = (_check_pair(p, decode) for p in pairs)
            for problem in results:
                if problem:
                    problems.append(problem)
                bar.update(1)
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                for problem in pool.map(lambda p: _check_pair(p, decode), pairs):  # results in pair order
                    if problem:
                        problems.append(problem)
                    bar.update(1)
    if problems:
        more = f" (and {len(problems) - 1} more problem(s) in {name})" if len(problems) > 1 else ""
        raise DatasetError(problems[0] + more)
    return len(pairs)
