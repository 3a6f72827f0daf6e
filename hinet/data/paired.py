"""Folder-pair base class: a degraded image file paired with a clean image file.

Every paired dataset in :mod:`hinet.data` yields items ``(degraded, clean, name)``: two float32 tensors of shape
(3, H, W), RGB, values in [0, 1], and a ``str`` name; items come in a deterministic sorted order.

:class:`PairedFiles` holds an explicit list of :class:`Pair` (file paths + name) and checks, when an item is
loaded, that both images have the same size. :func:`pair_folders` builds that list from an ``input/`` and a
``target/`` folder by matching file stems (``1.jpg`` pairs with ``1.png``), failing on any unpaired file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

import torch
from torch.utils.data import Dataset

from .io import DatasetError, is_image_file, read_image

__all__ = ["Pair", "PairedFiles", "check_unique_names", "list_images", "pair_folders"]


class Pair(NamedTuple):
    """One degraded/clean file pair and the item name it is reported under."""

    degraded: Path
    clean: Path
    name: str


def list_images(folder: str | os.PathLike[str]) -> list[Path]:
    """Image files (by extension, any case) directly inside ``folder``, sorted by file name."""
    folder = Path(folder)
    return sorted((p for p in folder.iterdir() if p.is_file() and is_image_file(p)), key=lambda p: p.name)


def _by_stem(files: Iterable[Path], folder: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for f in files:
        if f.stem in out:
            raise DatasetError(f"two images with the same stem in {folder}: {out[f.stem].name} and {f.name}")
        out[f.stem] = f
    return out


def pair_folders(input_dir: str | os.PathLike[str], target_dir: str | os.PathLike[str]) -> list[Pair]:
    """Pair every image in ``input_dir`` with the image of the same stem in ``target_dir``.

    Extensions may differ (``.jpg`` vs ``.png``). Names are the stems; the result is sorted by name.

    Raises:
        FileNotFoundError: a folder is missing (callers turn this into a :class:`DatasetNotFoundError`).
        DatasetError: an image has no partner (the message names it), a stem repeats, or both are empty.
    """
    input_dir, target_dir = Path(input_dir), Path(target_dir)
    for folder in (input_dir, target_dir):
        if not folder.is_dir():
            raise FileNotFoundError(f"folder not found: {folder}")
    inputs = _by_stem(list_images(input_dir), input_dir)
    targets = _by_stem(list_images(target_dir), target_dir)
    for stem, path in inputs.items():
        if stem not in targets:
            raise DatasetError(f"unpaired image {path}: no file named {stem}.* in {target_dir}")
    for stem, path in targets.items():
        if stem not in inputs:
            raise DatasetError(f"unpaired image {path}: no file named {stem}.* in {input_dir}")
    if not inputs:
        raise DatasetError(f"no images (png/jpg) in {input_dir} and {target_dir}")
    return [Pair(inputs[s], targets[s], s) for s in sorted(inputs)]


def check_unique_names(pairs: Sequence[Pair]) -> None:
    """Raise :class:`DatasetError` if two pairs share a name (names key output files and metrics)."""
    seen: dict[str, Pair] = {}
    for p in pairs:
        if p.name in seen:
            raise DatasetError(f"duplicate item name {p.name!r}: {seen[p.name].degraded} and {p.degraded}")
        seen[p.name] = p


class PairedFiles(Dataset):
    """Paired images given as file paths. Items: ``(degraded, clean, name)``, CHW RGB float32 in [0, 1].

    Attributes:
        name: dataset name used in reports (e.g. ``"GoPro-test"``).
        root: the dataset root folder.
        pairs: the sorted :class:`Pair` list.
        synthetic: always False (the data come from disk).

    :meth:`scene` is the group of images that share content (a video sequence, a source photograph) that an
    item belongs to: :meth:`scene_of` of its name, which a reader overrides with its one rule (the default:
    every item is its own scene).
    """

    synthetic = False

    def __init__(self, pairs: Sequence[Pair], *, name: str, root: str | os.PathLike[str] | None) -> None:
        if not pairs:
            raise DatasetError(f"{name}: no image pairs under {root}")
        check_unique_names(pairs)
        self.pairs: list[Pair] = list(pairs)
        self.name = name
        self.root: Path | None = Path(root) if root is not None else None

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, str]:
        pair = self.pairs[index]
        degraded = read_image(pair.degraded)
        clean = read_image(pair.clean)
        if degraded.shape != clean.shape:
            raise DatasetError(
                f"size mismatch in pair {pair.name!r}: {pair.degraded} is {_hw(degraded.shape)}, "
                f"{pair.clean} is {_hw(clean.shape)}"
            )
        return degraded, clean, pair.name

    def scene_of(self, name: str) -> str:
        """The scene of the item called ``name``; here the name itself (every image its own scene)."""
        return name

    def scene(self, index: int) -> str:
        """The scene of item ``index`` (see :meth:`scene_of`)."""
        return self.scene_of(self.pairs[index].name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, root={str(self.root)!r}, items={len(self)})"


def _hw(shape: torch.Size) -> str:
    return f"{shape[-2]}x{shape[-1]} (HxW)"
