"""The two estimands of an ablation comparison and the tables they are analysed on.

``test_set``: the test images are fixed; the table is the per-seed mean difference over all images, shape
(S, 1). ``population``: new scenes drawn like these ones; the table is the per-seed scene means, shape (S, J),
every scene weighing the same (see :mod:`hinet.stats` for the model). Also the equivalence margins by training
scale and the checks of a margin and a test level that every test of the package applies.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

DEFAULT_MARGINS: Mapping[str, float] = {"paper": 0.05, "proxy": 0.1}  # dB, equivalence margin by training scale
ESTIMANDS: tuple[str, ...] = ("test_set", "population")
#: How each estimand is named in a verdict's words.
ESTIMAND_WORDS: Mapping[str, str] = {"test_set": "on this test set", "population": "on new scenes"}


def default_margin(scale: str) -> float:
    """Equivalence margin (dB) for a training scale: ``paper`` 0.05, ``proxy`` 0.1 (see :data:`DEFAULT_MARGINS`)."""
    if scale not in DEFAULT_MARGINS:
        raise ValueError(f"equivalence margin: unknown scale {scale!r}; expected one of {sorted(DEFAULT_MARGINS)} "
                         "or an explicit delta")
    return DEFAULT_MARGINS[scale]


def check_estimand(estimand: str) -> str:
    if estimand not in ESTIMANDS:
        raise ValueError(f"estimand={estimand!r}: expected one of {ESTIMANDS}")
    return estimand


def check_margin(delta: float, name: str = "equivalence margin delta") -> float:
    """``delta`` (value units) as a float if it is a finite number > 0; ``name`` heads the error."""
    if not (delta > 0 and math.isfinite(delta)):
        raise ValueError(f"{name}: expected a finite number > 0, got {delta!r}")
    return float(delta)


def check_alpha(alpha: float, name: str = "alpha") -> float:
    """``alpha`` if it is a one-sided test level in (0, 0.5); ``name`` heads the error."""
    if not 0 < alpha < 0.5:
        raise ValueError(f"{name}: expected a number in (0, 0.5), got {alpha!r}")
    return alpha


def scene_means(d: np.ndarray, scenes: Sequence[str] | np.ndarray) -> np.ndarray:
    """(..., S, N) per-image differences -> (..., S, J) per-scene means (scenes in sorted order; every image of a
    scene weighs the same within it)."""
    codes, _ = pd.factorize(pd.Series(list(scenes)).astype(str), sort=True)
    weights = np.zeros((len(codes), codes.max() + 1))  # (N, J): 1 / n_j where image i is in scene j
    weights[np.arange(len(codes)), codes] = 1.0
    weights /= weights.sum(axis=0, keepdims=True)
    return np.asarray(d, dtype=float) @ weights


def estimand_table(d: np.ndarray, scenes: Sequence[str] | np.ndarray, estimand: str) -> np.ndarray:
    """The table an estimand is analysed on, from (..., S, N) per-image differences: ``test_set`` -> (..., S, 1)
    per-seed means over all N images; ``population`` -> (..., S, J) per-seed scene means (one column: one scene,
    which a caller must refuse)."""
    d = np.asarray(d, dtype=float)
    if check_estimand(estimand) == "test_set":
        return d.mean(axis=-1, keepdims=True)
    return scene_means(d, scenes)
