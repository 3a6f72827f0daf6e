"""Variance components of paired differences: the estimand's crossed ANOVA and the nested variance split.

:func:`crossed_estimates` is the crossed seeds x scenes ANOVA of the ``population`` estimand (model and expected
mean squares in :mod:`hinet.stats`), with Satterthwaite df; :func:`seed_level_estimates` the one-level paired t
of ``test_set`` or set means (S - 1 df).

The variance split reported beside each verdict (:func:`variance_split`) is the nested ANOVA of the seeds x
(scenes / images) table: seed, scene, image-within-scene, seed x scene and residual components, from the
expected mean squares (the mean scene size n0 of unbalanced one-way ANOVA stands in for I when scenes differ in
size); the tests check it against statsmodels' REML mixed model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .estimands import scene_means


@dataclass(frozen=True)
class VarianceComponents:
    """Variance components of an estimand's table of paired differences (value units squared, each >= 0).

    ``seed``: variance of a seed's effect; ``scene``: of a scene's effect (its image term divided by the images
    per scene included); ``resid``: of the seed x scene interaction. In the one-level case (``n_scenes == 0``:
    the ``test_set`` estimand, or set means) ``seed`` is the variance of the per-seed mean differences and
    ``scene`` and ``resid`` are NaN.
    """

    seed: float
    scene: float
    resid: float
    n_seeds: int
    n_scenes: int  # 0: one-level (per-seed means only)

    @property
    def one_level(self) -> bool:
        return self.n_scenes == 0

    def var_mean(self, n_seeds: int | None = None, n_scenes: int | None = None) -> float:
        """Var of the mean difference with ``n_seeds`` x ``n_scenes`` (default: the observed)."""
        s = self.n_seeds if n_seeds is None else n_seeds
        if self.one_level:
            return self.seed / s
        j = self.n_scenes if n_scenes is None else n_scenes
        return self.seed / s + self.scene / j + self.resid / (s * j)

    def dof(self, n_seeds: int | None = None, n_scenes: int | None = None) -> float:
        """Satterthwaite df of :meth:`var_mean` from the expected mean squares at ``n_seeds`` x ``n_scenes``."""
        s = self.n_seeds if n_seeds is None else n_seeds
        if self.one_level:
            return float(s - 1)
        j = self.n_scenes if n_scenes is None else n_scenes
        ms = np.array([self.resid + j * self.seed, self.resid + s * self.scene, self.resid])
        return float(_satterthwaite(ms[None], s, j, self.seed > 0, self.scene > 0)[0])

    def contributions(self) -> dict[str, float]:
        """Shares of Var(mean) (observed S, J) due to seeds, scenes and residual; they sum to 1 (NaN if 0)."""
        total = self.var_mean()
        if self.one_level:
            return {"seed": 1.0 if total > 0 else math.nan, "scene": math.nan, "resid": math.nan}
        s, j = self.n_seeds, self.n_scenes
        parts = {"seed": self.seed / s, "scene": self.scene / j, "resid": self.resid / (s * j)}
        return {k: (v / total if total > 0 else math.nan) for k, v in parts.items()}


def _satterthwaite(ms: np.ndarray, s: int, i: int, seed_pos: np.ndarray, image_pos: np.ndarray) -> np.ndarray:
    """Satterthwaite df of the floored combination; ``ms``: (..., 3) mean squares (seed, column, resid)."""
    df = np.array([s - 1, i - 1, (s - 1) * (i - 1)], dtype=float)
    seed_pos, image_pos = np.asarray(seed_pos), np.asarray(image_pos)
    # coefficients (c_seed, c_column, c_resid) of S*I*Var(mean) as a combination of mean squares, per floor case
    c = np.zeros(ms.shape)
    both = seed_pos & image_pos
    c[..., 0] = np.where(seed_pos, 1.0, 0.0)
    c[..., 1] = np.where(image_pos, 1.0, 0.0)
    c[..., 2] = np.where(both, -1.0, np.where(seed_pos | image_pos, 0.0, 1.0))
    num = (c * ms).sum(-1) ** 2
    den = ((c * ms) ** 2 / df).sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(den > 0, num / den, s * i - 1.0)
    return np.clip(out, 1e-3, s * i - 1.0)


def crossed_estimates(d: np.ndarray) -> dict[str, np.ndarray]:
    """Vectorised crossed-ANOVA estimates of the mean of ``d`` (shape (..., S, J), seeds x columns, S, J >= 2;
    the columns are scenes, or images when each image is its own scene).

    Returns arrays over the leading axes: ``mean``, ``var_mean`` (floored, see :func:`_satterthwaite`), ``dof``
    (Satterthwaite), ``var_seed``, ``var_scene``, ``var_resid`` (floored components), ``ms_seed``, ``ms_scene``,
    ``ms_resid``. With J == 1 or S == 1 use :func:`seed_level_estimates` (one-level) instead.
    """
    d = np.asarray(d, dtype=float)
    s, i = d.shape[-2], d.shape[-1]
    if s < 2 or i < 2:
        raise ValueError(f"crossed_estimates: need at least 2 seeds and 2 scenes, got {s} x {i}")
    grand = d.mean(axis=(-2, -1))
    row = d.mean(axis=-1)  # (..., S) seed means
    col = d.mean(axis=-2)  # (..., J) column means
    g = grand[..., None]
    ms_seed = i * ((row - g) ** 2).sum(-1) / (s - 1)
    ms_scene = s * ((col - g) ** 2).sum(-1) / (i - 1)
    resid = d - row[..., :, None] - col[..., None, :] + grand[..., None, None]
    ms_resid = (resid ** 2).sum(axis=(-2, -1)) / ((s - 1) * (i - 1))
    var_seed = np.maximum(ms_seed - ms_resid, 0.0) / i
    var_scene = np.maximum(ms_scene - ms_resid, 0.0) / s
    var_mean = var_seed / s + var_scene / i + ms_resid / (s * i)
    ms = np.stack([ms_seed, ms_scene, ms_resid], axis=-1)
    dof = _satterthwaite(ms, s, i, var_seed > 0, var_scene > 0)
    return dict(mean=grand, var_mean=var_mean, dof=dof, var_seed=var_seed, var_scene=var_scene,
                var_resid=ms_resid, ms_seed=ms_seed, ms_scene=ms_scene, ms_resid=ms_resid)


def seed_level_estimates(d: np.ndarray) -> dict[str, np.ndarray]:
    """One-level (paired t) estimates from per-seed differences ``d`` of shape (..., S), S >= 2."""
    d = np.asarray(d, dtype=float)
    s = d.shape[-1]
    if s < 2:
        raise ValueError(f"seed_level_estimates: need at least 2 seeds, got {s}")
    var = d.var(axis=-1, ddof=1)
    nan = np.full(var.shape, np.nan)
    return dict(mean=d.mean(-1), var_mean=var / s, dof=np.full(var.shape, s - 1.0), var_seed=var,
                var_scene=nan, var_resid=nan)


def _estimates(t: np.ndarray) -> tuple[dict[str, np.ndarray], bool]:
    """Estimates for an estimand's (..., S, K) table (K == 1: one-level); returns (estimates, one_level)."""
    if t.shape[-1] < 2:
        return seed_level_estimates(t[..., 0]), True
    return crossed_estimates(t), False


def variance_split(d: np.ndarray, scenes: Sequence[str]) -> dict[str, float]:
    """Nested ANOVA variance components of an (S, N) difference table whose images lie in ``scenes``:
    ``seed``, ``scene``, ``image`` (within scene), ``seed_scene`` and ``resid`` (seed x image), each floored at
    zero (NaN where not identifiable: ``image`` and the seed x image residual need scenes of 2+ images, all need
    2+ seeds). Unbalanced scenes use the one-way ANOVA mean scene size n0 in place of I."""
    d = np.asarray(d, dtype=float)
    nan = dict(seed=math.nan, scene=math.nan, image=math.nan, seed_scene=math.nan, resid=math.nan)
    s, n = d.shape
    codes, _ = pd.factorize(pd.Series(list(scenes)).astype(str), sort=True)
    j = int(codes.max()) + 1 if n else 0
    if s < 2 or j < 2:
        return nan
    counts = np.bincount(codes, minlength=j).astype(float)
    n0 = (n - (counts ** 2).sum() / n) / (j - 1)
    grand = d.mean()
    seed_m = d.mean(axis=1)  # (S,)
    sm = scene_means(d, scenes)  # (S, J) seed x scene cell means
    scene_m = sm.mean(axis=0)  # (J,) scene means over seeds and their images
    image_m = d.mean(axis=0)  # (N,)
    ss_seed = n * ((seed_m - grand) ** 2).sum()
    ss_scene = s * (counts * (scene_m - grand) ** 2).sum()
    ss_image = s * ((image_m - scene_m[codes]) ** 2).sum()
    inter = sm - seed_m[:, None] - scene_m[None, :] + grand
    ss_seed_scene = (counts[None, :] * inter ** 2).sum()
    resid = d - sm[:, codes] - image_m[None, :] + scene_m[codes][None, :]
    ss_resid = (resid ** 2).sum()
    ms_seed = ss_seed / (s - 1)
    ms_scene = ss_scene / (j - 1)
    ms_seed_scene = ss_seed_scene / ((s - 1) * (j - 1))
    if n > j:  # some scene holds 2+ images: image and seed x image terms are identifiable
        ms_image = ss_image / (n - j)
        ms_resid = ss_resid / ((s - 1) * (n - j))
        v_resid = ms_resid
        v_image = max(ms_image - ms_resid, 0.0) / s
        v_seed_scene = max(ms_seed_scene - ms_resid, 0.0) / n0
        v_scene = max(ms_scene - ms_seed_scene - ms_image + ms_resid, 0.0) / (s * n0)
    else:  # one image per scene: image and scene effects coincide, so do the two residuals
        v_resid, v_image = math.nan, math.nan
        v_seed_scene = ms_seed_scene
        v_scene = max(ms_scene - ms_seed_scene, 0.0) / s
    v_seed = max(ms_seed - ms_seed_scene, 0.0) / n
    return dict(seed=float(v_seed), scene=float(v_scene), image=float(v_image), seed_scene=float(v_seed_scene),
                resid=float(v_resid))
