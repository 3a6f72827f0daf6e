"""SYNTHETIC paired data: the embedded default when no real dataset is on disk.

Clean images come from two sources (no download either way):

* ``"deadleaves"`` (training and the primary test sets): procedural dead-leaves scenes
  (:mod:`hinet.data.deadleaves`), item ``i`` its own scene, drawn independently of every other item; the
  split is part of each scene's seed, so training and test scenes are disjoint by construction.
* ``"photos"`` (the second test set, :data:`hinet.tasks.NATURAL_PHOTOS_SET`): crops of RGB photographs that
  scikit-image ships inside its wheel (the pooch-fetched images are not used); its scene is the photograph, so
  its crops are NOT independent images. Training and test photographs are disjoint:

  * train: astronaut, coffee, rocket, hubble_deep_field, immunohistochemistry
  * test:  chelsea, motorcycle_left, motorcycle_right (the stereo pair from ``stereo_motorcycle``)

Degradations (all on RGB values in [0, 1]; the degraded image is quantised to 8-bit levels, like a PNG):

* ``denoise``: heteroscedastic Poisson-Gaussian noise, variance ``a*x + b`` per pixel and channel, with ``a``
  log-uniform in [2e-4, 1e-2] and ``b`` log-uniform in [1e-6, 1e-3] per image (sigma about 1..25 /255).
* ``deblur``: a random camera-shake kernel -- a random walk with momentum rasterised (bilinear splatting) into
  a 7..21 px kernel, normalised to sum 1 -- convolved per channel with reflect padding.
* ``derain``: rain streaks -- random seed points of a random density, smeared by a line kernel of random length
  and angle (near vertical), softened by a 0.6 px Gaussian, and added with a screen blend
  ``1 - (1 - x)(1 - s)``. Density and brightness come from a level (light / medium / heavy).

Every item is a pure function of ``(seed, task, split, level, source, index)``. Items are
``(degraded, clean, name)``, float32 (3, size, size) RGB in [0, 1]; names are
``synthetic-<task>-<split>-<index, 4 digits>-<photograph or "deadleaves">`` and ``.synthetic`` is True.
``.scene(index)`` is :func:`hinet.data.deadleaves.scene_id` of the item for dead leaves, the photograph for
photos.
"""

from __future__ import annotations

import math
from functools import cache
from typing import Any, Literal

import numpy as np
import skimage.data
import torch
from scipy import ndimage
from skimage.draw import line_aa
from torch.utils.data import Dataset

from ..tasks import NATURAL_PHOTOS_SET, TASK_NAMES, TASKS, synthetic_name
from .deadleaves import dead_leaves, scene_id
from .deadleaves import stable_code as _stable_code
from .rain13k import RAIN13K_TEST_SETS

__all__ = [
    "SOURCES",
    "SYNTHETIC_TASKS",
    "TEST_PHOTOS",
    "TRAIN_PHOTOS",
    "SyntheticPairs",
    "camera_shake_kernel",
    "synthetic_test_sets",
]

SYNTHETIC_TASKS: tuple[str, ...] = TASK_NAMES  # the task table (hinet.tasks) is the one definition
TRAIN_PHOTOS: tuple[str, ...] = ("astronaut", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry")
TEST_PHOTOS: tuple[str, ...] = ("chelsea", "motorcycle_left", "motorcycle_right")
RAIN_LEVELS: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    # level: (seed density range [fraction of pixels], streak brightness range)
    "light": ((0.001, 0.003), (0.30, 0.60)),
    "medium": ((0.003, 0.008), (0.40, 0.80)),
    "heavy": ((0.008, 0.020), (0.60, 0.95)),
}
# The Rain13k test set each synthetic stand-in imitates in rain strength.
_RAIN_SET_LEVELS = {"Rain100H": "heavy", "Rain100L": "light"}
_DEFAULT_COUNT = {"train": 256, "test": 16}
SOURCES: tuple[str, ...] = ("deadleaves", "photos")  # where clean images come from (module docstring)
_MAX_SIZE = 1024  # dead-leaves side limit (photos: their smallest side)

Task = Literal["denoise", "deblur", "derain"]
SplitName = Literal["train", "test"]


@cache
def _photo(name: str) -> np.ndarray:
    """A bundled scikit-image photograph as float32 (H, W, 3) RGB in [0, 1] (read-only, cached)."""
    if name in ("motorcycle_left", "motorcycle_right"):
        left, right, _disparity = skimage.data.stereo_motorcycle()
        img = left if name == "motorcycle_left" else right
    else:
        img = getattr(skimage.data, name)()
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise RuntimeError(f"skimage.data.{name} is not an 8-bit RGB image: {img.dtype} {img.shape}")
    out = img.astype(np.float32) / 255.0
    out.setflags(write=False)
    return out


def _quantise(x: np.ndarray) -> np.ndarray:
    # Store degraded images at 8-bit precision, as real PNG datasets are.
    return np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.float32) / 255.0


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


# --------------------------------------------------------------------------------------------------------
# degradations: clean (H, W, 3) float32 in [0, 1] -> degraded (H, W, 3) float32 in [0, 1]


def _add_noise(clean: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    a, b = _log_uniform(rng, 2e-4, 1e-2), _log_uniform(rng, 1e-6, 1e-3)
    sigma = np.sqrt(a * clean + b)  # signal-dependent std, (H, W, 3)
    noisy = clean + sigma * rng.standard_normal(clean.shape, dtype=np.float32)
    return _quantise(noisy), {"a": a, "b": b}


def camera_shake_kernel(rng: np.random.Generator, size: int, *, steps: int = 96) -> np.ndarray:
    """A random camera-shake blur kernel, (size, size) float32, non-negative, summing to 1.

    The trajectory is a 2-D random walk whose velocity has momentum (so it curves smoothly, like hand shake);
    it is scaled to fill a random 40-100 % of the kernel and rasterised by bilinear splatting (written by hand:
    neither scipy nor scikit-image ships a motion-trajectory kernel generator).
    """
    if size < 3 or size % 2 == 0:
        raise ValueError(f"kernel size must be odd and >= 3, got {size}")
    velocity = rng.standard_normal(2)
    points = np.zeros((steps, 2))
    for t in range(1, steps):
        velocity = 0.85 * velocity + 0.5 * rng.standard_normal(2)
        points[t] = points[t - 1] + velocity
    points -= points.mean(axis=0)
    extent = np.abs(points).max()
    radius = (size - 1) / 2
    if extent > 0:
        points *= radius * rng.uniform(0.4, 1.0) / extent
    points += radius  # kernel coordinates, centre at (radius, radius)
    kernel = np.zeros((size, size), dtype=np.float64)
    r0, c0 = np.floor(points[:, 0]).astype(int), np.floor(points[:, 1]).astype(int)
    fr, fc = points[:, 0] - r0, points[:, 1] - c0
    for dr, dc, w in ((0, 0, (1 - fr) * (1 - fc)), (1, 0, fr * (1 - fc)), (0, 1, (1 - fr) * fc), (1, 1, fr * fc)):
        r, c = np.clip(r0 + dr, 0, size - 1), np.clip(c0 + dc, 0, size - 1)
        np.add.at(kernel, (r, c), w)
    return (kernel / kernel.sum()).astype(np.float32)


def _add_blur(clean: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    size = int(rng.choice(np.arange(7, 22, 2)))
    kernel = camera_shake_kernel(rng, size)
    # same 2-D kernel on every channel: (k, k) -> (k, k, 1); scipy's "reflect" mirrors about the edge
    blurred = ndimage.convolve(clean, kernel[:, :, None], mode="reflect")
    return _quantise(blurred), {"kernel_size": size}


def _line_kernel(length: int, angle_deg: float) -> np.ndarray:
    """Anti-aliased line of ``length`` px at ``angle_deg`` from vertical, (L, L) float32 summing to 1."""
    size = length if length % 2 == 1 else length + 1
    c, half = size // 2, (length - 1) / 2
    dy, dx = half * math.cos(math.radians(angle_deg)), half * math.sin(math.radians(angle_deg))
    rr, cc, val = line_aa(round(c - dy), round(c - dx), round(c + dy), round(c + dx))
    kernel = np.zeros((size, size), dtype=np.float32)
    keep = (rr >= 0) & (rr < size) & (cc >= 0) & (cc < size)
    kernel[rr[keep], cc[keep]] = val[keep]
    return kernel / kernel.sum()


def _add_rain(clean: np.ndarray, rng: np.random.Generator, level: str) -> tuple[np.ndarray, dict[str, Any]]:
    (d_lo, d_hi), (i_lo, i_hi) = RAIN_LEVELS[level]
    density, brightness = rng.uniform(d_lo, d_hi), rng.uniform(i_lo, i_hi)
    length, angle = int(rng.integers(10, 31)), float(rng.uniform(-25.0, 25.0))
    h, w, _ = clean.shape
    m = length  # margin so streaks also enter from outside the frame
    seeds = (rng.random((h + 2 * m, w + 2 * m)) < density) * rng.uniform(0.6, 1.0, (h + 2 * m, w + 2 * m))
    kernel = _line_kernel(length, angle)
    # a seed of value v becomes a line of value v / (kernel mass per pixel); rescale so a lone streak peaks near v
    streaks = ndimage.convolve(seeds.astype(np.float32), kernel, mode="constant") / kernel.max()
    streaks = ndimage.gaussian_filter(streaks, 0.6)[m : m + h, m : m + w]
    streaks = np.clip(streaks * brightness, 0.0, 1.0)[:, :, None]  # (H, W) -> (H, W, 1), same on R, G, B
    rainy = 1.0 - (1.0 - clean) * (1.0 - streaks)  # screen blend
    return _quantise(rainy), {"level": level, "density": density, "length": length, "angle": angle}


class SyntheticPairs(Dataset):
    """SYNTHETIC degraded/clean pairs of dead-leaves scenes or photograph crops (see the module docstring).

    Args:
        task: ``"denoise"``, ``"deblur"`` or ``"derain"``.
        split: ``"train"`` or ``"test"`` (disjoint scenes, disjoint source photographs).
        size: square image size in pixels, in [8, 1024] for dead leaves, at most 300 (the height of the
            smallest source photograph) for photos.
        count: number of items (default 256 for train, 16 for test).
        seed: base seed; item ``i`` is a pure function of ``(seed, task, split, rain_level, source, i)``.
        rain_level: ``"light"``, ``"medium"`` or ``"heavy"`` for derain; None draws a level per item.
        name: dataset name (default ``"synthetic-<task>-<split>"``).
        source: ``"deadleaves"`` (each item its own scene) or ``"photos"`` (scene = the photograph).
    """

    synthetic = True
    root = None

    def __init__(
        self,
        task: Task | str,
        split: SplitName | str,
        *,
        size: int = 128,
        count: int | None = None,
        seed: int = 0,
        rain_level: str | None = None,
        name: str | None = None,
        source: str = "deadleaves",
    ) -> None:
        if task not in SYNTHETIC_TASKS:
            raise ValueError(f"unknown synthetic task {task!r}; expected one of {SYNTHETIC_TASKS}")
        if split not in ("train", "test"):
            raise ValueError(f"synthetic split must be 'train' or 'test', got {split!r}")
        if rain_level is not None and (task != "derain" or rain_level not in RAIN_LEVELS):
            raise ValueError(f"rain_level must be one of {tuple(RAIN_LEVELS)} and only for derain, got {rain_level!r}")
        if source not in SOURCES:
            raise ValueError(f"synthetic source must be one of {SOURCES}, got {source!r}")
        self.task, self.split, self.seed, self.rain_level = task, split, int(seed), rain_level
        self.source = source
        self.sources: tuple[str, ...] = TRAIN_PHOTOS if split == "train" else TEST_PHOTOS
        if source == "photos":
            largest = min(min(_photo(s).shape[:2]) for s in self.sources)
            what = f"synthetic crop size for split {split!r}"
        else:
            largest, what = _MAX_SIZE, "synthetic dead-leaves size"
        if not 8 <= size <= largest:
            raise ValueError(f"{what} must be in [8, {largest}], got {size}")
        self.size = int(size)
        self.count = _DEFAULT_COUNT[split] if count is None else int(count)
        if self.count < 1:
            raise ValueError(f"count must be >= 1, got {count}")
        self.name = name or f"synthetic-{task}-{split}"
        self._code = _stable_code(task, split, rain_level or "")

    def __len__(self) -> int:
        return self.count

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self._code, index])

    def _check(self, index: int) -> None:
        if not 0 <= index < self.count:
            raise IndexError(f"{self.name} index {index} out of range [0, {self.count})")

    def scene(self, index: int) -> str:
        """The scene of item ``index``: its dead-leaves scene id, or its source photograph (crops of one
        photograph share content)."""
        self._check(index)
        if self.source == "photos":
            return self.sources[index % len(self.sources)]  # round-robin: every photo is used
        return scene_id(self.seed, self.split, index)

    def describe(self, index: int) -> dict[str, Any]:
        """Provenance of item ``index``: scene (and crop box for photos) and degradation parameters."""
        return self._make(index)[2]

    def _make(self, index: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        self._check(index)
        rng = self._rng(index)
        if self.source == "photos":
            source = self.scene(index)
            photo = _photo(source)
            top = int(rng.integers(0, photo.shape[0] - self.size + 1))
            left = int(rng.integers(0, photo.shape[1] - self.size + 1))
            clean = photo[top : top + self.size, left : left + self.size]
            info: dict[str, Any] = {"source": source, "scene": source, "top": top, "left": left, "size": self.size}
        else:
            clean = dead_leaves(self.seed, self.split, index, self.size)
            info = {"source": "deadleaves", "scene": self.scene(index), "size": self.size}
        if self.task == "denoise":
            degraded, params = _add_noise(clean, rng)
        elif self.task == "deblur":
            degraded, params = _add_blur(clean, rng)
        else:
            level = self.rain_level or str(rng.choice(list(RAIN_LEVELS)))
            degraded, params = _add_rain(clean, rng, level)
        return degraded, clean, {**info, **params}

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, str]:
        degraded, clean, info = self._make(index)

        def to_chw(x: np.ndarray) -> torch.Tensor:  # (H, W, 3) -> (3, H, W) float32
            return torch.from_numpy(np.array(x.transpose(2, 0, 1), dtype=np.float32, order="C"))  # a writable copy

        name = f"synthetic-{self.task}-{self.split}-{index:04d}-{info['source']}"
        return to_chw(degraded), to_chw(clean), name

    def __repr__(self) -> str:
        return (f"SyntheticPairs(name={self.name!r}, task={self.task!r}, split={self.split!r}, "
                f"source={self.source!r}, items={self.count})")


def synthetic_test_sets(task: Task | str, *, size: int = 128, count: int = 8, seed: int = 0,
                        natural_count: int | None = None) -> dict[str, Dataset]:
    """SYNTHETIC stand-ins for a task's test sets, keyed like :func:`hinet.data.locate.open_test_sets`, in the
    order of ``hinet.tasks.TASKS[task].synthetic_sets``.

    Dead-leaves sets of ``count`` images (each its own scene): ``denoise`` -> ``"SIDD (synthetic)"``;
    ``deblur`` -> ``"GoPro (synthetic)"``; ``derain`` -> five sets named ``"<Rain13k set> (synthetic)"``
    (Rain100H heavy rain, Rain100L light, the others medium). Then, for every task,
    :data:`hinet.tasks.NATURAL_PHOTOS_SET`: the same degradations on ``natural_count`` crops of the held-out
    test photographs (scene = the photograph; derain: a level drawn per image), so the transfer from dead
    leaves to natural images is visible. Every set has its own seed stream. ``natural_count`` defaults to a
    quarter of ``count`` (at least 3, one crop per photograph): its crops share three scenes, so beyond a few
    per photograph they add validation time but little information about new scenes.
    """
    if task not in TASKS:
        raise ValueError(f"unknown synthetic task {task!r}; expected one of {SYNTHETIC_TASKS}")
    levels = {synthetic_name(s): _RAIN_SET_LEVELS.get(s, "medium") for s in RAIN13K_TEST_SETS}
    out: dict[str, Dataset] = {}
    for name in TASKS[task].synthetic_sets:
        natural = name == NATURAL_PHOTOS_SET
        out[name] = SyntheticPairs(
            task, "test", size=size, count=(natural_count or max(3, count // 4)) if natural else count,
            seed=seed + _stable_code(name), rain_level=None if natural or task != "derain" else levels[name],
            name=name, source="photos" if natural else "deadleaves")
    return out
