"""SYNTHETIC clean images: procedural dead-leaves scenes, each a pure function of ``(seed, split, index)``.

A dead-leaves image is a stack of opaque random discs ("leaves") seen from above: the first leaf dropped hides
everything dropped after it. Leaves are drawn front to back until every pixel is covered, so the image is an
exact sample of the stationary model inside the frame (not a truncated stack with visible background).

* radii: power law, density proportional to ``r**-3`` on ``[rmin, rmax]`` (the scale-invariant choice: as many
  edges at every scale), drawn by inverse transform;
* centres: uniform on the frame grown by ``rmax`` on every side; leaves that cannot reach the frame are
  rejected, which leaves the Poisson model's law of the visible leaves unchanged;
* colours: RGB triples drawn from the pixels of the training photographs (:data:`PALETTE_PHOTOS`, every 8th
  pixel), i.e. from natural colour statistics without any of their content, then pulled towards their grey
  level by a random factor per leaf (saturation control);
* texture: a mild linear luminance gradient across each leaf (random direction, at most ``gradient`` from its
  centre to its rim);
* acquisition: a Gaussian blur of random width in ``blur`` px per scene (soft edges, like optics), values
  clipped to [0, 1].

Rendering is vectorised: all leaves are expanded at once into their rows and each row into its run of pixels
inside the disc (ragged arrays), and the front-most leaf of each pixel wins (``np.minimum.at`` on leaf order).
Later batches of leaves only fill pixels still uncovered, and skip leaves whose bounding box holds none.

References (the model and its use as a training prior; this code is written for this project):

* R. Achddou, Y. Gousseau, S. Ladjal, "Synthetic images as a regularity prior for image restoration neural
  networks", SSVM 2021 (dead leaves with power-law radii as training data for denoising).
* The VibrantLeaves generator, arXiv:2504.10201 (adds textures and acquisition effects to dead leaves).

Images are float32 (size, size, 3) RGB in [0, 1].
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from functools import cache, lru_cache

import numpy as np
import skimage.data
from scipy import ndimage

__all__ = ["DeadLeaves", "PALETTE_PHOTOS", "dead_leaves", "power_law_radii", "scene_id", "stable_code"]

PALETTE_PHOTOS: tuple[str, ...] = ("astronaut", "coffee", "rocket", "immunohistochemistry")
_MAX_BATCHES = 64  # a batch covers ~98 % of what is left; 64 batches leave nothing uncovered in practice


def stable_code(*parts: str) -> int:
    """A process-independent integer code of ``parts`` (crc32 of ``"/".join(parts)``): str hash() is salted per
    process, this keeps seeds identical across runs and DataLoader workers."""
    return zlib.crc32("/".join(parts).encode())


def scene_id(seed: int, split: str, index: int) -> str:
    """The name of dead-leaves scene ``index`` of ``split`` under ``seed``: ``deadleaves-<split>-<seed>-<index>``
    (equal ids, equal images; the split is part of the id as it is of the seed, so splits never share one)."""
    return f"deadleaves-{split}-{int(seed)}-{int(index):04d}"


def power_law_radii(rng: np.random.Generator, n: int, rmin: float, rmax: float, alpha: float = 3.0) -> np.ndarray:
    """``n`` radii with density proportional to ``r**-alpha`` on ``[rmin, rmax]`` (alpha != 1), float64 (n,).

    Inverse transform: with ``b = 1 - alpha``, ``r = (rmin**b + u (rmax**b - rmin**b))**(1/b)``, u uniform."""
    if not 0 < rmin < rmax or alpha == 1.0:
        raise ValueError(f"need 0 < rmin < rmax and alpha != 1, got rmin={rmin}, rmax={rmax}, alpha={alpha}")
    b = 1.0 - alpha
    u = rng.random(n)
    return (rmin**b + u * (rmax**b - rmin**b)) ** (1.0 / b)


@cache
def _palette() -> np.ndarray:
    """Every 8th pixel (both axes) of the :data:`PALETTE_PHOTOS`, float32 (P, 3) RGB in [0, 1] (read-only)."""
    pixels = [getattr(skimage.data, name)()[::8, ::8].reshape(-1, 3) for name in PALETTE_PHOTOS]
    out = np.concatenate(pixels).astype(np.float32) / 255.0  # (P, 3)
    out.setflags(write=False)
    return out


@dataclass(frozen=True)
class DeadLeaves:
    """Parameters of the dead-leaves model (see the module docstring). Lengths in pixels of the rendered image.

    Args:
        rmin, rmax: radius range; ``rmax=None`` is half the image side.
        alpha: power-law exponent of the radius density (3: scale invariant).
        saturation: range of the factor that keeps a leaf's colour away from its grey level (1 = as drawn).
        gradient: largest luminance change from a leaf's centre to its rim (0 = flat leaves).
        blur: range of the per-scene Gaussian blur's sigma (0 = none).
    """

    rmin: float = 2.0
    rmax: float | None = None
    alpha: float = 3.0
    saturation: tuple[float, float] = (0.5, 1.0)
    gradient: float = 0.08
    blur: tuple[float, float] = (0.3, 0.8)

    def render(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """One scene, float32 (size, size, 3) RGB in [0, 1], drawn from ``rng``."""
        rmax = size / 2 if self.rmax is None else float(self.rmax)
        label = np.full(size * size, np.iinfo(np.int64).max, dtype=np.int64)  # front-most leaf per pixel
        cy, cx, rad = np.empty(0), np.empty(0), np.empty(0)
        for _ in range(_MAX_BATCHES):
            uncovered = label == np.iinfo(np.int64).max
            if not uncovered.any():
                break
            y, x, r = self._leaves(rng, size, rmax, area=4.0 * size * size)
            if len(rad):  # a leaf whose bounding box holds no uncovered pixel is hidden: skip it
                seen = _reaches(uncovered.reshape(size, size), y, x, r)
                y, x, r = y[seen], x[seen], r[seen]
            first = len(rad)
            cy, cx, rad = np.concatenate([cy, y]), np.concatenate([cx, x]), np.concatenate([rad, r])
            batch = np.full(size * size, np.iinfo(np.int64).max, dtype=np.int64)
            pixel, leaf = _rasterise(y, x, r, size)
            np.minimum.at(batch, pixel, leaf + first)
            label[uncovered] = batch[uncovered]  # later leaves lie behind every earlier one
        n = len(rad)
        label = np.where(label == np.iinfo(np.int64).max, n, label)  # never in practice: background leaf n
        colour = _palette()[rng.integers(0, len(_palette()), n + 1)]  # (n + 1, 3)
        grey = colour.mean(axis=1, keepdims=True)
        colour = grey + rng.uniform(*self.saturation, (n + 1, 1)) * (colour - grey)
        theta = rng.uniform(0.0, 2 * math.pi, n + 1)
        slope = rng.uniform(-self.gradient, self.gradient, n + 1) / np.append(rad, 1.0)  # per pixel
        rows, cols = np.divmod(np.arange(size * size), size)
        cy1, cx1 = np.append(cy, 0.0)[label], np.append(cx, 0.0)[label]  # (size*size,) centre of each pixel's leaf
        shade = slope[label] * ((rows - cy1) * np.cos(theta[label]) + (cols - cx1) * np.sin(theta[label]))
        image = (colour[label] + shade[:, None]).reshape(size, size, 3)  # (size*size, 3) -> (size, size, 3)
        sigma = rng.uniform(*self.blur) if self.blur[1] > 0 else 0.0
        if sigma > 0:
            image = ndimage.gaussian_filter(image, (sigma, sigma, 0.0), mode="reflect")
        return np.clip(image, 0.0, 1.0).astype(np.float32)

    def _leaves(self, rng: np.random.Generator, size: int, rmax: float, area: float
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Leaves (centre y, centre x, radius), front first, that reach the frame, whose summed disc area is
        about ``area``."""
        mean_area = math.pi * _mean_r2(self.rmin, rmax, self.alpha)
        n = max(16, int(area / mean_area * ((size + 2 * rmax) / size) ** 2))
        r = power_law_radii(rng, n, self.rmin, rmax, self.alpha)
        y, x = rng.uniform(-rmax, size + rmax, (2, n))
        # distance from the centre to the frame [0, size - 1]^2; a leaf beyond its radius cannot be seen
        dy = np.maximum(np.maximum(-y, y - (size - 1)), 0.0)
        dx = np.maximum(np.maximum(-x, x - (size - 1)), 0.0)
        keep = dy * dy + dx * dx <= r * r
        return y[keep], x[keep], r[keep]


def _mean_r2(rmin: float, rmax: float, alpha: float) -> float:
    """E[r^2] under the density proportional to r**-alpha on [rmin, rmax] (numerically)."""
    r = np.geomspace(rmin, rmax, 512)
    w = r ** (1.0 - alpha)  # density x r (log-spaced grid: dr proportional to r)
    return float((w * r * r).sum() / w.sum())


def _reaches(uncovered: np.ndarray, y: np.ndarray, x: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Which leaves' bounding boxes hold an uncovered pixel, from the summed-area table of ``uncovered``
    (size, size) bool; (n,) bool."""
    size = uncovered.shape[0]
    table = np.zeros((size + 1, size + 1), dtype=np.int64)
    table[1:, 1:] = uncovered.cumsum(0).cumsum(1)
    t, b = np.clip(np.ceil(y - r), 0, size).astype(np.int64), np.clip(np.floor(y + r) + 1, 0, size).astype(np.int64)
    lo, hi = np.clip(np.ceil(x - r), 0, size).astype(np.int64), np.clip(np.floor(x + r) + 1, 0, size).astype(np.int64)
    return table[b, hi] - table[t, hi] - table[b, lo] + table[t, lo] > 0


def _ragged(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For counts (n,): (owner, position) of the ``counts.sum()`` entries, owner i repeated counts[i] times and
    position 0 .. counts[i] - 1 within its owner."""
    owner = np.repeat(np.arange(len(counts)), counts)
    return owner, np.arange(len(owner)) - (np.cumsum(counts) - counts)[owner]


def _rasterise(y: np.ndarray, x: np.ndarray, r: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(flat pixel index, leaf index) of every pixel centre inside every disc, clipped to the frame. Discs are
    expanded into their rows, each row into its run of pixels (no pixel outside a disc is visited)."""
    top = np.maximum(np.ceil(y - r), 0).astype(np.int64)
    bottom = np.minimum(np.floor(y + r), size - 1).astype(np.int64)
    leaf, k = _ragged(np.maximum(bottom - top + 1, 0))  # one entry per (leaf, row)
    row = top[leaf] + k
    half = np.sqrt(np.maximum(r[leaf] ** 2 - (row - y[leaf]) ** 2, 0.0))  # half chord of the disc on that row
    c0 = np.maximum(np.ceil(x[leaf] - half), 0).astype(np.int64)
    c1 = np.minimum(np.floor(x[leaf] + half), size - 1).astype(np.int64)
    run, j = _ragged(np.maximum(c1 - c0 + 1, 0))  # one entry per pixel
    return row[run] * size + c0[run] + j, leaf[run]


@lru_cache(maxsize=512)
def dead_leaves(seed: int, split: str, index: int, size: int = 128, model: DeadLeaves = DeadLeaves()) -> np.ndarray:
    """Dead-leaves scene ``index`` of ``split`` (e.g. ``"train"``, ``"test"``) under ``seed``: float32
    (size, size, 3) RGB in [0, 1], read-only, a pure function of its arguments (named :func:`scene_id`); the
    split enters the seed, so the scene streams of two splits are disjoint. Memoised (512 scenes; float32
    128x128x3 is 192 KiB a scene, 96 MiB in all): a training run draws its patches from the same few hundred
    scenes many times over, and rendering costs several times the degradation."""
    rng = np.random.default_rng([int(seed), stable_code("deadleaves", split), int(index)])
    image = model.render(rng, size)
    image.setflags(write=False)
    return image
