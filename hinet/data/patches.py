"""Training patches: paired random crops with dihedral augmentation, and the 8 dihedral transforms.

``dihedral(x, k)`` follows the official HINet test-time-augmentation order (``transpose`` in
``basicsr/models/image_restoration_model.py``): for ``k >= 4`` flip the width axis first, then rotate by
``k % 4`` quarter turns with ``torch.rot90`` over the last two axes (counter-clockwise as displayed).
``dihedral_inverse`` undoes it. Both work on any (..., H, W) tensor (CHW images, NCHW batches).

Augmentation modes of :class:`PatchDataset` (the same transform is applied to both images of a pair):

* ``"dihedral"``: one of the 8 transforms, uniformly -- the distribution of the official GoPro / Rain13k recipe
  (independent hflip, vflip, transpose, each p = 0.5).
* ``"sidd"``: identity with p = 0.5, otherwise one of the 7 others uniformly (the official SIDD recipe).
* ``"flips"``: independent horizontal and vertical flips, each p = 0.5 (no 90-degree rotation).
* ``None``: no augmentation.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from .io import DatasetError

__all__ = ["AUGMENTS", "PatchDataset", "dihedral", "dihedral_inverse", "paired_random_crop", "pad_to"]

AUGMENTS: tuple[str | None, ...] = ("dihedral", "sidd", "flips", None)


def _check_k(k: int) -> int:
    if not 0 <= int(k) <= 7:
        raise ValueError(f"dihedral index must be in 0..7, got {k}")
    return int(k)


def dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """Dihedral transform ``k`` (0..7) of a (..., H, W) tensor: flip W if ``k >= 4``, then rot90 ``k % 4`` times."""
    k = _check_k(k)
    if k >= 4:
        x = torch.flip(x, dims=(-1,))
    return torch.rot90(x, k % 4, dims=(-2, -1))


def dihedral_inverse(x: torch.Tensor, k: int) -> torch.Tensor:
    """Inverse of :func:`dihedral`: rotate back by ``k % 4`` quarter turns, then flip W if ``k >= 4``."""
    k = _check_k(k)
    x = torch.rot90(x, -(k % 4), dims=(-2, -1))
    if k >= 4:
        x = torch.flip(x, dims=(-1,))
    return x


def pad_to(x: torch.Tensor, size: int) -> torch.Tensor:
    """Pad a (C, H, W) tensor at the bottom/right to at least ``size`` x ``size`` by mirroring.

    Matches BasicSR's ``padding`` (cv2 ``BORDER_REFLECT``, i.e. the edge pixel repeated: ``cba|abc``), which
    numpy calls ``"symmetric"``; numpy also handles pads larger than the image, which torch's reflect cannot.
    """
    h, w = x.shape[-2:]
    ph, pw = max(0, size - h), max(0, size - w)
    if ph == 0 and pw == 0:
        return x
    arr = np.pad(x.numpy(), ((0, 0), (0, ph), (0, pw)), mode="symmetric")
    return torch.from_numpy(arr)


def paired_random_crop(
    degraded: torch.Tensor, clean: torch.Tensor, size: int, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Crop the same ``size`` x ``size`` window from two (C, H, W) tensors (mirror-padded first if smaller)."""
    if degraded.shape[-2:] != clean.shape[-2:]:
        raise DatasetError(f"paired crop needs equal sizes, got {tuple(degraded.shape)} and {tuple(clean.shape)}")
    degraded, clean = pad_to(degraded, size), pad_to(clean, size)
    h, w = degraded.shape[-2:]
    top, left = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
    window = (slice(None), slice(top, top + size), slice(left, left + size))
    return degraded[window], clean[window]


def _draw_transform(augment: str | None, rng: np.random.Generator) -> int:
    if augment is None:
        return 0
    if augment == "dihedral":
        return int(rng.integers(0, 8))
    if augment == "sidd":
        return 0 if rng.random() < 0.5 else int(rng.integers(1, 8))
    # "flips": hflip (k=4) and vflip (= hflip then rot180, k=6), each independently
    hflip, vflip = rng.random() < 0.5, rng.random() < 0.5
    return {(False, False): 0, (True, False): 4, (False, True): 6, (True, True): 2}[(hflip, vflip)]


class PatchDataset(Dataset):
    """Random paired training patches from a paired dataset.

    Item ``i`` of epoch ``e`` is a pure function of ``(seed, e, i)``: the source pair is ``pairs[i % len(pairs)]``,
    then a ``crop`` x ``crop`` window (same position in both images; mirror padding for small images), then one
    random transform (see ``augment`` modes in the module docstring). Items are ``(degraded, clean, name)``,
    float32 (3, crop, crop) RGB in [0, 1].

    Args:
        pairs: a paired dataset yielding ``(degraded, clean, name)``.
        crop: patch size (256 in the official recipes).
        augment: ``"dihedral"``, ``"sidd"``, ``"flips"`` or None.
        length: epoch length; None means ``len(pairs)``. The official SIDD recipe uses 320000.
        seed: base seed.
        cache: keep decoded source pairs in memory (for small sets; per DataLoader worker process).
    """

    def __init__(
        self,
        pairs: Dataset,
        crop: int,
        *,
        augment: str | None = "dihedral",
        length: int | None = None,
        seed: int = 0,
        cache: bool = False,
    ) -> None:
        if augment not in AUGMENTS:
            raise ValueError(f"augment must be one of {AUGMENTS}, got {augment!r}")
        if crop < 1:
            raise ValueError(f"crop must be positive, got {crop}")
        n = len(pairs)  # type: ignore[arg-type]
        if n == 0:
            raise ValueError("PatchDataset needs a non-empty paired dataset")
        self.pairs, self.crop, self.augment, self.seed = pairs, int(crop), augment, int(seed)
        self.length = n if length is None else int(length)
        if self.length < 1:
            raise ValueError(f"length must be >= 1, got {length}")
        self.epoch = 0
        self.cache = cache
        self._cache: dict[int, tuple[torch.Tensor, torch.Tensor, str]] = {}
        self.name = f"{getattr(pairs, 'name', type(pairs).__name__)}-patches{self.crop}"
        self.synthetic = bool(getattr(pairs, "synthetic", False))
        self.root = getattr(pairs, "root", None)

    def set_epoch(self, epoch: int) -> None:
        """Select the random stream of an epoch (call before each epoch, also in every worker's copy)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def _source(self, j: int) -> tuple[torch.Tensor, torch.Tensor, str]:
        if j in self._cache:
            return self._cache[j]
        degraded, clean, name = self.pairs[j]
        if clean is None:
            raise DatasetError(f"{self.name}: item {name!r} has no clean image; cannot train on it")
        if self.cache:
            self._cache[j] = (degraded, clean, name)
        return degraded, clean, name

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, str]:
        if not 0 <= index < self.length:
            raise IndexError(f"{self.name} index {index} out of range [0, {self.length})")
        degraded, clean, name = self._source(index % len(self.pairs))  # type: ignore[arg-type]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        d, c = paired_random_crop(degraded, clean, self.crop, rng)
        k = _draw_transform(self.augment, rng)
        # .contiguous(): rot90/flip return views; batches collate faster from contiguous storage
        return dihedral(d, k).contiguous(), dihedral(c, k).contiguous(), name
