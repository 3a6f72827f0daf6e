"""Statistics for ablation comparisons: effects with intervals, Holm, equivalence, power, sequential seeds, verdicts.

An ablation should end in a verdict per variant ("costs 0.25 dB [0.14, 0.36] on new scenes (Holm p = 0.003)",
"equivalent within ±0.1 dB on this test set", "inconclusive on new scenes: more scenes needed"), not in a table
of p-values. This module computes them.

Input: a tidy per-image DataFrame with columns ``run_id``, ``variant``, ``seed`` (int), ``image`` (str id),
``scene`` (str id of the group of test images the image belongs to: a SIDD source photograph, a GoPro video)
and ``value`` (float, e.g. PSNR in dB), already filtered by the caller to one dataset, protocol, metric and
training step (:func:`verdicts_by_step` takes a ``step`` column too). Without a ``scene`` column every image is
its own scene; without an ``image`` column each (variant, seed) has one value (set means).

Design (common random numbers): every variant is trained with the same seeds (same data order, crops and
per-module initial weights) and scored on the same test images, so the differences
``d[s, i] = variant[s, i] - reference[s, i]`` are paired by (seed, image). Images are nested in scenes:

    d[s, i] = mu + a_s + c_j + b_i + (ac)_sj + e_si        (j = scene of image i)

with independent seed effects a_s (training randomness), scene effects c_j, image-within-scene effects b_i, a
seed-by-scene interaction and a seed-by-image residual.

**Two estimands** (:data:`ESTIMANDS`), named in every verdict:

* ``test_set``: the test images are fixed, as in a published benchmark number. The target is the mean
  difference over these images, in expectation over training randomness; only seeds are random. The per-seed
  means over all images are independent draws around it, so the interval is the paired t interval over seeds
  (S - 1 df). More seeds always narrow it.
* ``population``: new scenes, and new images within scenes, drawn like these ones; seeds, scenes and images are
  random. The target is mu. The per-seed scene means (every scene weighs the same) form a crossed seeds x scenes
  table without replication, whose grand mean has variance ``var_seed / S + var_scene / J + var_resid / (S J)``
  (``var_scene`` holds the image-within-scene variance divided by the images per scene). Its components come from
  the ANOVA mean squares (E MS_seed = resid + J var_seed, E MS_scene = resid + S var_scene, E MS_resid = resid),
  each floored at zero; the interval is a t interval with Satterthwaite degrees of freedom for that combination
  of mean squares. In a balanced design this equals the nested ANOVA of the whole table (Var(mean) S J I =
  MS_seed + MS_scene - MS_seed x scene). Seeds cannot remove the scene term: when it alone keeps the interval
  wider than the margin the verdict says "more scenes needed". With one image per scene this is the crossed
  seeds x images model.

The variance split reported beside each verdict (:func:`variance_split`) is the nested ANOVA of the seeds x
(scenes / images) table: seed, scene, image-within-scene, seed x scene and residual components, from the
expected mean squares (the mean scene size n0 of unbalanced one-way ANOVA stands in for I when scenes differ in
size); the tests check it against statsmodels' REML mixed model.

**Multiplicity**: Holm across the comparisons of a family (:func:`holm`, checked against statsmodels).

**Equivalence** (TOST): H0 |mu| >= delta is rejected at level alpha iff both one-sided t tests reject, i.e. iff
the (1 - 2 alpha) interval from the same estimate, SE and df lies inside (-delta, delta). Default margins
(:data:`DEFAULT_MARGINS`): 0.05 dB at paper scale, 0.1 dB at proxy scale.

**Power**: minimum detectable effect (two-sided alpha, 80% power) from the noncentral t distribution with the
df implied by the estimand's variance components (:func:`minimum_detectable_effect`), and the number of seeds
needed to detect ``delta`` with the scenes fixed (:func:`seeds_needed`; ``inf`` where the scene term alone is
too large). In the one-level case these equal statsmodels ``TTestPower`` (checked in the tests).

**Sequential seeds** (written by hand: statsmodels has no group-sequential boundaries). Seeds are run in rounds;
look k uses the first ``looks[k]`` seeds and information fraction ``t_k = looks[k] / looks[-1]``. Efficacy (H0:
mu = 0, two-sided) spends alpha with the Lan-DeMets O'Brien-Fleming-like function ``a(t) = 2 - 2 Phi(z_{1 -
a/2} / sqrt(t))`` per tail; the boundaries c_k solve ``P(|Z_j| < c_j for j < k, |Z_k| >= c_k) = alpha(t_k) -
alpha(t_{k-1})`` under ``corr(Z_j, Z_k) = sqrt(t_j / t_k)``, by numerical integration of the score process
(Armitage-McPherson-Rowe recursion, Simpson weights). Each one-sided test of TOST uses the one-sided spending of
level alpha; equivalence is declared at the first look where ``mean ± e_k SE`` lies inside (-delta, delta). The
looks are fixed in advance (:class:`SequentialPlan`). The t statistic of the chosen estimand is compared with the
t quantile of the z boundary's tail probability. Across variants, efficacy is the sequentially rejective
group-sequential Bonferroni procedure (Holm-like; Maurer & Bretz 2013); a variant declared equivalent or
significant gets no more seeds (non-binding stopping only removes rejection opportunities). A scene or image
term shared by all looks makes successive statistics more correlated than seeds/max seeds assumes, which makes
the boundaries conservative.

Written by hand (numpy/scipy underneath): the crossed and nested ANOVA variance components and their
Satterthwaite df, the power solve, the group-sequential boundaries and decision rule, the verdicts, and Holm's
adjustment (statsmodels' calls ``gc.collect()`` on every call). statsmodels is the reference in the tests
(``multipletests``, ``ttost_paired``, ``TTestPower``, ``MixedLM``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy import optimize, stats

DEFAULT_MARGINS: Mapping[str, float] = {"paper": 0.05, "proxy": 0.1}  # dB, equivalence margin by training scale
ESTIMANDS: tuple[str, ...] = ("test_set", "population")
#: How each estimand is named in a verdict's words.
ESTIMAND_WORDS: Mapping[str, str] = {"test_set": "on this test set", "population": "on new scenes"}
REQUIRED_COLUMNS: tuple[str, ...] = ("run_id", "variant", "seed", "value")
VERDICT_COLUMNS: tuple[str, ...] = (
    "variant", "reference", "estimand", "step", "difference", "ci_low", "ci_high", "p", "p_holm", "delta", "tost_p",
    "equivalent", "mde", "seeds_needed", "n_seeds", "n_scenes", "n_images", "var_seed", "var_scene", "var_image",
    "verdict",
    # extra columns after the requested ones
    "significant", "se", "dof", "var_seed_scene", "var_resid", "seed_share", "scene_share", "tost_p_holm", "note",
)
SEQUENTIAL_COLUMNS: tuple[str, ...] = (
    "variant", "reference", "estimand", "look", "n_seeds", "n_scenes", "difference", "se", "dof", "t",
    "efficacy_t_bound", "significant", "significant_look", "equivalence_t_bound", "equivalent", "equivalent_look",
    "decision",
)


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


# ------------------------------------------------------------------------------------- variance components
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

    Returns arrays over the leading axes: ``mean``, ``var_mean`` (floored, see the module docstring), ``dof``
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


# ------------------------------------------------------------------------------------------------ input
def _check_frame(df: pd.DataFrame, need_step: bool = False) -> None:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"ablation_stats: expected a pandas DataFrame, got {type(df).__name__}")
    need = [*REQUIRED_COLUMNS, *(["step"] if need_step else [])]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise ValueError(f"ablation data: missing column(s) {missing}; found {list(df.columns)}, expected at least "
                         f"{need} (+ image for per-image values)")
    if df.empty:
        raise ValueError("ablation data: no rows")
    vals = pd.to_numeric(df["value"], errors="coerce")
    bad = ~np.isfinite(vals.to_numpy(dtype=float))
    if bad.any():
        raise ValueError(f"ablation data: column value has {int(bad.sum())} non-finite or non-numeric entries "
                         f"(first {df['value'][bad].iloc[0]!r}); expected finite numbers")
    def integral(v: object) -> bool:  # 3 or 3.0 (pandas makes ints float next to a missing value), not True
        return (isinstance(v, (int, np.integer, float, np.floating)) and not isinstance(v, (bool, np.bool_))
                and math.isfinite(v) and float(v).is_integer())

    bad_seed = next((v for v in df["seed"].tolist() if not integral(v)), None)
    if bad_seed is not None or df["seed"].isna().any():
        raise ValueError(f"ablation data: column seed holds {bad_seed!r}; expected integers (no missing seeds)")
    key = ["variant", "seed", *(["image"] if "image" in df.columns else []), *(["step"] if need_step else [])]
    dup = df[df.duplicated(key, keep=False)]
    if len(dup):
        raise ValueError(f"ablation data: several values for {dup[key].iloc[0].to_dict()}; expected one per {key}")
    runs = df.groupby(["variant", "seed"])["run_id"].nunique()
    if (runs > 1).any():
        v, s = runs[runs > 1].index[0]
        raise ValueError(f"ablation data: variant {v!r} seed {s} comes from several runs "
                         f"{sorted(df[(df['variant'] == v) & (df['seed'] == s)]['run_id'].unique())}; expected one")


@dataclass(frozen=True)
class PairedDesign:
    """The paired differences variant - reference of a family's comparison.

    ``d``: (S, N) array, seeds ascending x images sorted; ``scenes[i]``: the scene of image ``images[i]``
    (the image itself where no scene is recorded; ``"<set mean>"`` for set means). ``note`` says what was
    dropped to pair the runs.
    """

    d: np.ndarray
    seeds: tuple[int, ...]
    images: tuple[str, ...]
    scenes: tuple[str, ...]
    note: str = ""

    @property
    def n_scenes(self) -> int:
        return len(set(self.scenes))

    def table(self, estimand: str) -> np.ndarray:
        """The estimand's (S, K) table (:func:`estimand_table`)."""
        if self.d.size == 0:
            return np.zeros((0, 1))
        return estimand_table(self.d, self.scenes, estimand)


def paired_design(df: pd.DataFrame, variant: str, reference: str) -> PairedDesign:
    """The paired differences of ``variant`` against ``reference`` in a tidy frame (columns in the module
    docstring). Only seeds present for both variants are used, and only images present in every one of their
    runs. An image recorded under two scenes is an error."""
    for name in (variant, reference):
        if name not in set(df["variant"]):
            raise ValueError(f"ablation data: variant {name!r} not found; found {sorted(df['variant'].unique())}")
    sub = df[df["variant"].isin([variant, reference])]
    if "image" not in sub.columns:
        sub = sub.assign(image="<set mean>")
    sub = sub.assign(image=sub["image"].astype(str))
    sub = sub.assign(scene=sub["scene"].astype(str) if "scene" in sub.columns else sub["image"])
    seeds_v = set(sub.loc[sub["variant"] == variant, "seed"])
    seeds_r = set(sub.loc[sub["variant"] == reference, "seed"])
    seeds = sorted(int(s) for s in seeds_v & seeds_r)
    notes = []
    unpaired = len(seeds_v ^ seeds_r)
    if unpaired:
        notes.append(f"{unpaired} unpaired seed(s) dropped")
    sub = sub[sub["seed"].isin(seeds)]
    if not seeds:
        return PairedDesign(np.zeros((0, 0)), (), (), (), "; ".join(notes + ["no common seeds"]))
    n_cells = 2 * len(seeds)  # one value per (variant, seed, image): checked by _check_frame
    count = sub.groupby("image").size()
    images = sorted(count.index[count == n_cells])
    if len(images) < len(count):
        notes.append(f"{len(count) - len(images)} image(s) missing in some runs dropped")
    sub = sub[sub["image"].isin(images)]
    scene_of = sub.groupby("image")["scene"].agg(lambda s: sorted(set(s)))
    mixed = scene_of[scene_of.map(len) > 1]
    if len(mixed):
        raise ValueError(f"ablation data: image {mixed.index[0]!r} is recorded under several scenes "
                         f"{mixed.iloc[0]}; expected one scene per image")
    wide = sub.pivot_table(index=["seed", "image"], columns="variant", values="value", aggfunc="first")
    d = (wide[variant] - wide[reference]).unstack("image").reindex(index=seeds, columns=images)
    return PairedDesign(d.to_numpy(dtype=float), tuple(seeds), tuple(images),
                        tuple(scene_of[i][0] for i in images), "; ".join(notes))


# ------------------------------------------------------------------------------------------- the effect
@dataclass(frozen=True)
class PairedEffect:
    """Mean paired difference variant - reference (value units, e.g. dB) under one estimand, with its
    uncertainty.

    ``ci_low``/``ci_high``: the ``level`` two-sided t interval; ``p``: two-sided p of H0 difference = 0 (NaN
    when it cannot be estimated: fewer than 2 seeds, or fewer than 2 scenes for ``population``); ``dof``:
    Satterthwaite df; ``components``: the estimand's variance components; ``n_scenes``/``n_images``: the
    design's scenes and images (0 for set means).
    """

    variant: str
    reference: str
    estimand: str
    difference: float
    se: float
    dof: float
    ci_low: float
    ci_high: float
    p: float
    level: float
    components: VarianceComponents
    n_seeds: int
    n_scenes: int
    n_images: int
    seeds: tuple[int, ...] = field(repr=False)
    note: str = ""

    def interval(self, level: float) -> tuple[float, float]:
        """Two-sided t interval at another ``level`` in (0, 1) from the same estimate, SE and df."""
        if not 0 < level < 1:
            raise ValueError(f"interval level: expected a number in (0, 1), got {level!r}")
        if not self.se > 0:
            return self.difference, self.difference
        h = stats.t.ppf(0.5 + level / 2, self.dof) * self.se
        return self.difference - h, self.difference + h


def _t_p(mean: float, se: float, dof: float) -> float:
    if not np.isfinite(se):
        return math.nan
    if se == 0:
        return 1.0 if mean == 0 else 0.0
    return float(2 * stats.t.sf(abs(mean) / se, dof))


def effect_of_design(design: PairedDesign, estimand: str, variant: str = "variant", reference: str = "reference",
                     level: float = 0.95) -> PairedEffect:
    """:class:`PairedEffect` of a :class:`PairedDesign` under ``estimand``."""
    table = design.table(check_estimand(estimand))  # (S, K)
    s, k = table.shape
    set_means = design.images == ("<set mean>",)
    n_scenes, n_images = (0, 0) if set_means else (design.n_scenes, len(design.images))
    mean = float(table.mean()) if table.size else math.nan
    notes = [design.note] if design.note else []
    blocked = None
    if s < 2:
        blocked = f"{s} paired seed(s): no interval"
    elif estimand == "population" and k < 2:
        blocked = (f"{n_scenes} scene(s): the population estimand needs at least 2" if not set_means else
                   "set means only: the population estimand needs per-image values")
    if blocked:
        comp = VarianceComponents(math.nan, math.nan, math.nan, s, 0 if estimand == "test_set" else k)
        return PairedEffect(variant, reference, estimand, mean, math.nan, math.nan, math.nan, math.nan, math.nan,
                            level, comp, s, n_scenes, n_images, design.seeds, "; ".join([*notes, blocked]))
    est, one_level = _estimates(table)
    var, dof = float(est["var_mean"]), float(est["dof"])
    comp = VarianceComponents(float(est["var_seed"]), float(est["var_scene"]), float(est["var_resid"]), s,
                              0 if one_level else k)
    se = math.sqrt(var)
    h = stats.t.ppf(0.5 + level / 2, dof) * se if se > 0 else 0.0
    return PairedEffect(variant, reference, estimand, mean, se, dof, mean - h, mean + h, _t_p(mean, se, dof), level,
                        comp, s, n_scenes, n_images, design.seeds, "; ".join(notes))


def paired_effect(df: pd.DataFrame, variant: str, reference: str, level: float = 0.95,
                  estimand: str = "population") -> PairedEffect:
    """Effect of ``variant`` against ``reference`` in a tidy DataFrame with columns ``run_id, variant, seed,
    image, scene, value`` (see the module docstring) under ``estimand`` (``test_set`` or ``population``)."""
    _check_frame(df)
    return effect_of_design(paired_design(df, variant, reference), estimand, variant, reference, level)


# ----------------------------------------------------------------------------------------- equivalence
@dataclass(frozen=True)
class Equivalence:
    """TOST of H0 |difference| >= delta: ``p`` = max of the two one-sided p-values; ``equivalent`` iff p < alpha
    iff the (1 - 2 alpha) interval (``ci_low``, ``ci_high``) lies inside (-delta, delta)."""

    delta: float
    alpha: float
    p: float
    p_lower: float  # H0 difference <= -delta
    p_upper: float  # H0 difference >= +delta
    ci_low: float
    ci_high: float
    equivalent: bool


def equivalence_test(effect: PairedEffect, delta: float, alpha: float = 0.05) -> Equivalence:
    """TOST for ``effect`` with margin ``delta`` > 0 (value units) at level ``alpha`` in (0, 0.5)."""
    if not (delta > 0 and np.isfinite(delta)):
        raise ValueError(f"equivalence margin delta: expected a finite number > 0, got {delta!r}")
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha: expected a number in (0, 0.5), got {alpha!r}")
    m, se, dof = effect.difference, effect.se, effect.dof
    if not np.isfinite(se):
        return Equivalence(delta, alpha, math.nan, math.nan, math.nan, math.nan, math.nan, False)
    if se == 0:
        p_lo = 0.0 if m > -delta else 1.0
        p_up = 0.0 if m < delta else 1.0
    else:
        p_lo = float(stats.t.sf((m + delta) / se, dof))
        p_up = float(stats.t.cdf((m - delta) / se, dof))
    lo, hi = effect.interval(1 - 2 * alpha)
    p = max(p_lo, p_up)
    return Equivalence(delta, alpha, p, p_lo, p_up, lo, hi, bool(p < alpha))


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values in [0, 1] (reject at level alpha where adjusted p < alpha); NaN entries stay NaN
    and are not counted. Written out (step-down: sorted p times m, m-1, ..., running maximum, capped at 1) and
    tested against statsmodels ``multipletests(method="holm")``, whose Holm branch calls ``gc.collect()`` on every
    call (about 0.3 s in a large process, once per step of a report)."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    if len(ok):
        order = ok[np.argsort(p[ok], kind="stable")]
        m = len(order)
        out[order] = np.minimum(np.maximum.accumulate(p[order] * np.arange(m, 0, -1)), 1.0)
    return out


# ----------------------------------------------------------------------------------------------- power
def power_two_sided(effect_over_se: float | np.ndarray, dof: float | np.ndarray, alpha: float = 0.05) -> np.ndarray:
    """Power of the two-sided level-``alpha`` t test when the true mean is ``effect_over_se`` standard errors
    (noncentral t, both tails, as statsmodels ``TTestPower``)."""
    crit = stats.t.ppf(1 - alpha / 2, dof)
    nc = np.asarray(effect_over_se, dtype=float)
    lower = np.nan_to_num(stats.nct.sf(crit, dof, -nc), nan=0.0)  # = cdf(-crit, dof, nc); scipy may give NaN
    return stats.nct.sf(crit, dof, nc) + lower  # for a negligible tail far out, hence the guard


def _nc_for_power(dof: float, alpha: float, power: float) -> float:
    """Noncentrality (effect / SE) at which the two-sided t test has ``power``."""
    def gap(nc: float) -> float:
        return float(power_two_sided(nc, dof, alpha)) - power

    hi = 8.0
    while gap(hi) < 0:  # power rises with nc; scipy's nct is unreliable far out, so widen the bracket gradually
        hi *= 2
        if hi > 1e4:
            return math.inf
    return float(optimize.brentq(gap, 0.0, hi, xtol=1e-10))


def minimum_detectable_effect(components: VarianceComponents, n_seeds: int | None = None,
                              n_scenes: int | None = None, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest |difference| (value units) detected with probability ``power`` by the two-sided level-``alpha``
    test, with ``n_seeds`` x ``n_scenes`` (default: the observed numbers); NaN if the components are unknown."""
    s = components.n_seeds if n_seeds is None else n_seeds
    var = components.var_mean(s, n_scenes)
    if s < 2 or not np.isfinite(var):
        return math.nan
    dof = components.dof(s, n_scenes)
    return _nc_for_power(dof, alpha, power) * math.sqrt(var)


def seeds_needed(components: VarianceComponents, delta: float, alpha: float = 0.05, power: float = 0.8,
                 max_seeds: int = 1000) -> float:
    """Smallest number of seeds (>= 2; images fixed at the observed number) whose two-sided level-``alpha`` test
    detects a difference of ``delta`` with probability ``power``. ``inf`` if no number up to ``max_seeds`` does
    (the image term var_image / I alone is too large), NaN if the components are unknown."""
    if not np.isfinite(components.seed):
        return math.nan
    if minimum_detectable_effect(components, max_seeds, alpha=alpha, power=power) > delta:
        return math.inf
    if minimum_detectable_effect(components, 2, alpha=alpha, power=power) <= delta:
        return 2.0
    lo, hi = 2, 4  # MDE decreases with the number of seeds: double until delta is reached, then bisect
    while hi < max_seeds and minimum_detectable_effect(components, hi, alpha=alpha, power=power) > delta:
        lo, hi = hi, min(2 * hi, max_seeds)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if minimum_detectable_effect(components, mid, alpha=alpha, power=power) <= delta:
            hi = mid
        else:
            lo = mid
    return float(hi)


# ------------------------------------------------------------------------------------------- verdicts
def _fmt(x: float, digits: int = 2) -> str:
    text = f"{x:.{digits}f}"
    return text.lstrip("-") if float(text) == 0 else text


def _digits(delta: float) -> int:
    """Decimals that resolve the margin: 2 for 0.1 dB, 4 for an SSIM margin of 0.002."""
    return max(2, 1 - math.floor(math.log10(delta))) if delta > 0 and math.isfinite(delta) else 2


def _fmt_p(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"= {p:.3f}"


def verdict_text(difference: float, ci_low: float, ci_high: float, p_holm: float, significant: bool,
                 equivalent: bool, delta: float, needed: float, n_seeds: int, tost_p: float = math.nan,
                 unit: str = "dB", higher_is_better: bool = True, power: float = 0.8, *, estimand: str,
                 n_scenes: int = 0) -> str:
    """The verdict in words, naming the ``estimand`` (see the module docstring); ``needed`` is
    :func:`seeds_needed` for ``delta``; ``n_scenes``: the scenes of the design (``population``)."""
    u = f" {unit}" if unit else ""
    k = _digits(delta)
    where = ESTIMAND_WORDS[check_estimand(estimand)]
    if significant:
        worse = (difference < 0) == higher_is_better
        lo, hi = (-ci_high, -ci_low) if difference < 0 else (ci_low, ci_high)
        text = (f"{'costs' if worse else 'gains'} {_fmt(abs(difference), k)}{u} [{_fmt(lo, k)}, {_fmt(hi, k)}] "
                f"{where} (Holm p {_fmt_p(p_holm)})")
        return text + (f"; within the ±{delta:g}{u} margin" if equivalent else "")
    if equivalent:
        return f"equivalent within ±{delta:g}{u} {where} (TOST p {_fmt_p(tost_p)})"
    if n_seeds < 2:
        return f"inconclusive {where}: {n_seeds} paired seed(s), at least 2 needed"
    if not np.isfinite(ci_low):
        return f"inconclusive {where}: {n_scenes} scene(s), at least 2 needed"
    detail = f"{difference:+.{k}f}{u} [{_fmt(ci_low, k)}, {_fmt(ci_high, k)}]"
    if math.isinf(needed):
        if estimand == "population":
            return (f"inconclusive {where}: more scenes needed; more seeds cannot resolve ±{delta:g}{u} with "
                    f"these {n_scenes} scenes ({detail})")
        return f"inconclusive {where}: more seeds than can be run needed ({detail})"
    if needed > n_seeds:
        return f"inconclusive {where}: about {int(needed)} seeds needed ({detail})"
    return f"inconclusive {where}: {detail}; {n_seeds} seeds give {power:.0%} power at ±{delta:g}{u}, neither shown"


def _resolve_delta(delta: float | None, scale: str | None) -> float:
    if delta is not None:
        if not (delta > 0 and np.isfinite(delta)):
            raise ValueError(f"equivalence margin delta: expected a finite number > 0, got {delta!r}")
        return float(delta)
    if scale is None:
        raise ValueError("equivalence margin: give delta or scale ('paper' or 'proxy')")
    return default_margin(scale)


def verdict_table(df: pd.DataFrame, reference: str, *, estimand: str, delta: float | None = None,
                  scale: str | None = None, alpha: float = 0.05, power: float = 0.8, step: int | None = None,
                  unit: str = "dB", higher_is_better: bool = True, holm_equivalence: bool = False,
                  variants: Iterable[str] | None = None) -> pd.DataFrame:
    """Verdict table of one family under one ``estimand``: one row per non-reference variant, columns
    :data:`VERDICT_COLUMNS`.

    ``df``: tidy per-image (or set-mean) values of one dataset, protocol, metric and step (see the module
    docstring). ``reference``: the family's declared reference variant. ``delta`` (value units) or ``scale``
    (``paper``/``proxy``, :data:`DEFAULT_MARGINS`) sets the equivalence margin. Holm runs over the variants of
    the table. ``step``: written to the step column (default: the single value of a ``step`` column, else None).
    ``var_seed``/``var_scene``/``var_image``/``var_seed_scene``/``var_resid`` are the nested variance split
    (:func:`variance_split`), ``seed_share``/``scene_share`` the shares of the estimand's Var(mean); ``mde`` is
    at 80% power (``power``) with the observed seeds and scenes; ``seeds_needed`` detects ``delta`` (inf:
    unreachable with these scenes).
    """
    _check_frame(df)
    check_estimand(estimand)
    d_margin = _resolve_delta(delta, scale)
    if step is None and "step" in df.columns:
        steps = df["step"].dropna().unique()
        if len(steps) > 1:
            raise ValueError(f"verdict_table: several steps {sorted(steps)[:5]}...; filter to one or use "
                             "verdicts_by_step")
        step = int(steps[0]) if len(steps) else None
    if reference not in set(df["variant"]):
        raise ValueError(f"ablation data: reference variant {reference!r} not found; found "
                         f"{sorted(df['variant'].unique())}")
    names = sorted(set(df["variant"]) - {reference}) if variants is None else [v for v in variants if v != reference]
    designs = [paired_design(df, v, reference) for v in names]
    effects = [effect_of_design(d, estimand, v, reference) for d, v in zip(designs, names)]
    tosts = [equivalence_test(e, d_margin, alpha) if np.isfinite(e.se) else None for e in effects]
    p_holm = holm([e.p for e in effects])
    tost_p = np.array([t.p if t else math.nan for t in tosts])
    tost_holm = holm(tost_p)
    rows = []
    for design, e, ph, tp, tph in zip(designs, effects, p_holm, tost_p, tost_holm):
        c = e.components
        share = c.contributions()
        split = variance_split(design.d, design.scenes)
        significant = bool(ph < alpha)
        equivalent = bool((tph if holm_equivalence else tp) < alpha)
        estimable = e.n_seeds >= 2 and np.isfinite(c.seed)
        mde = minimum_detectable_effect(c, alpha=alpha, power=power) if estimable else math.nan
        need = seeds_needed(c, d_margin, alpha, power) if estimable else math.nan
        rows.append(dict(
            variant=e.variant, reference=reference, estimand=estimand, step=step, difference=e.difference,
            ci_low=e.ci_low, ci_high=e.ci_high, p=e.p, p_holm=ph, delta=d_margin, tost_p=tp, equivalent=equivalent,
            mde=mde, seeds_needed=need, n_seeds=e.n_seeds, n_scenes=e.n_scenes, n_images=e.n_images,
            var_seed=split["seed"], var_scene=split["scene"], var_image=split["image"],
            verdict=verdict_text(e.difference, e.ci_low, e.ci_high, ph, significant, equivalent, d_margin, need,
                                 e.n_seeds, tph if holm_equivalence else tp, unit, higher_is_better, power,
                                 estimand=estimand, n_scenes=e.n_scenes),
            significant=significant, se=e.se, dof=e.dof, var_seed_scene=split["seed_scene"],
            var_resid=split["resid"], seed_share=share["seed"], scene_share=share["scene"], tost_p_holm=tph,
            note=e.note))
    return pd.DataFrame(rows, columns=list(VERDICT_COLUMNS))


def verdicts_by_step(df: pd.DataFrame, reference: str, **kwargs) -> pd.DataFrame:
    """:func:`verdict_table` at every value of the ``step`` column (steps ascending; Holm within each step).

    Rows with a missing step are ignored. The ``significant`` column marks the steps where a difference is
    significant after Holm. Keyword arguments are those of :func:`verdict_table` (except ``step``).
    """
    _check_frame(df, need_step=True)
    if "step" in kwargs:
        raise ValueError("verdicts_by_step: step comes from the step column; do not pass it")
    q = df.dropna(subset=["step"])
    tables = []
    for st, block in q.groupby("step", sort=True):
        if block["variant"].eq(reference).any() and block["variant"].nunique() > 1:
            tables.append(verdict_table(block.drop(columns="step"), reference, step=int(st), **kwargs))
    if not tables:
        return pd.DataFrame(columns=list(VERDICT_COLUMNS))
    return pd.concat(tables, ignore_index=True)


# ---------------------------------------------------------------------------------- group-sequential
def obrien_fleming_spending(t: float | np.ndarray, alpha: float = 0.05, sides: int = 2) -> np.ndarray:
    """Cumulative alpha spent by information fraction ``t`` in [0, 1] (Lan-DeMets O'Brien-Fleming-like).

    One-sided level ``alpha``: ``2 - 2 Phi(z_{1 - alpha/2} / sqrt(t))``. Two-sided level ``alpha`` (symmetric):
    twice the one-sided spending at ``alpha / 2`` (the usual convention of group-sequential software). Both
    equal ``alpha`` at t = 1.
    """
    t = np.asarray(t, dtype=float)
    a1 = alpha / 2 if sides == 2 else alpha  # one-sided level of each tail
    z = stats.norm.ppf(1 - a1 / 2)
    with np.errstate(divide="ignore"):
        one = np.where(t > 0, 2 * stats.norm.sf(z / np.sqrt(np.maximum(t, 1e-300))), 0.0)
    return one * (2 if sides == 2 else 1)


def _simpson_grid(lo: float, hi: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.linspace(lo, hi, n)  # n odd
    w = np.ones(n)
    w[1:-1:2], w[2:-1:2] = 4.0, 2.0
    return x, w * (hi - lo) / (3 * (n - 1))


def _crossing(c: float, tk: float, step_sd: float, sides: int, x: np.ndarray | None, wd: np.ndarray | None) -> float:
    """P(continue up to look k-1 and cross c at look k); ``x``, ``wd``: grid of S_{k-1} and weight x density."""
    b = c * math.sqrt(tk)  # boundary on the score scale S = Z sqrt(t)
    if x is None:
        return float(stats.norm.sf(b / step_sd) * (2 if sides == 2 else 1))
    p = stats.norm.sf((b - x) / step_sd)
    if sides == 2:
        p = p + stats.norm.cdf((-b - x) / step_sd)
    return float((wd * p).sum())


@lru_cache(maxsize=256)
def _boundaries_cached(fractions: tuple[float, ...], alpha: float, sides: int, n_grid: int) -> tuple[float, ...]:
    t = np.array(fractions)
    inc = np.diff(np.concatenate([[0.0], obrien_fleming_spending(t, alpha, sides)]))
    bounds: list[float] = []
    x = wd = None  # grid of the score S_{k-1} on the continuation region and Simpson weight x its density
    prev_t = 0.0
    for k, tk in enumerate(t):
        sd = math.sqrt(tk - prev_t)  # SD of the score increment S_k - S_{k-1} under H0
        if inc[k] <= 1e-15:
            c = math.inf
        else:
            c = float(optimize.brentq(lambda c, tk=tk, sd=sd, x=x, wd=wd, ik=inc[k]:
                                      _crossing(c, tk, sd, sides, x, wd) - ik, 0.0, 40.0, xtol=1e-10))
        bounds.append(c)
        b = min(c, 40.0) * math.sqrt(tk)
        xn, wn = _simpson_grid(-b if sides == 2 else -10.0 * math.sqrt(tk), b, n_grid)
        if x is None:
            dn = stats.norm.pdf(xn / sd) / sd
        else:  # density of S_k on the continuation region: convolve with the N(0, t_k - t_{k-1}) increment
            dn = (stats.norm.pdf((xn[:, None] - x[None, :]) / sd) / sd) @ wd  # (new grid, old grid) @ (old,)
        x, wd, prev_t = xn, wn * dn, tk
    return tuple(bounds)


def spending_boundaries(fractions: Sequence[float], alpha: float = 0.05, sides: int = 2,
                        n_grid: int = 801) -> np.ndarray:
    """z boundaries of a group-sequential test with O'Brien-Fleming-like Lan-DeMets spending at increasing
    information ``fractions`` in (0, 1] (last usually 1). ``sides=2``: reject when |Z_k| >= c_k (total level
    ``alpha``); ``sides=1``: reject when Z_k >= c_k (one-sided level ``alpha``). Numerical integration (see the
    module docstring); ``n_grid`` (odd) points per look."""
    f = tuple(float(x) for x in fractions)
    if not f or any(not 0 < a <= 1 for a in f) or any(b <= a for a, b in zip(f, f[1:])):
        raise ValueError(f"information fractions: expected increasing numbers in (0, 1], got {list(f)}")
    if sides not in (1, 2):
        raise ValueError(f"sides: expected 1 or 2, got {sides!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha: expected a number in (0, 1), got {alpha!r}")
    return np.array(_boundaries_cached(f, float(alpha), sides, n_grid | 1))


@dataclass(frozen=True)
class SequentialPlan:
    """Planned looks of a seed-sequential ablation: ``looks[k]`` = cumulative seeds at look k (increasing,
    first >= 2); information fraction ``looks[k] / looks[-1]``. ``alpha``: family-wise level of the efficacy
    claims (two-sided, Holm-like across variants) and per-variant level of each equivalence claim; ``delta``:
    equivalence margin (value units)."""

    looks: tuple[int, ...]
    delta: float
    alpha: float = 0.05

    def __post_init__(self) -> None:
        looks = tuple(int(x) for x in self.looks)
        if not looks or looks[0] < 2 or any(b <= a for a, b in zip(looks, looks[1:])):
            raise ValueError(f"SequentialPlan.looks: expected increasing seed counts starting at >= 2, got {looks}")
        if not (self.delta > 0 and np.isfinite(self.delta)):
            raise ValueError(f"SequentialPlan.delta: expected a finite number > 0, got {self.delta!r}")
        if not 0 < self.alpha < 0.5:
            raise ValueError(f"SequentialPlan.alpha: expected a number in (0, 0.5), got {self.alpha!r}")
        object.__setattr__(self, "looks", looks)

    @property
    def fractions(self) -> tuple[float, ...]:
        return tuple(n / self.looks[-1] for n in self.looks)

    def efficacy_bounds(self, alpha: float | None = None) -> np.ndarray:
        """Two-sided z boundaries per look at level ``alpha`` (default: the plan's)."""
        return spending_boundaries(self.fractions, self.alpha if alpha is None else alpha, sides=2)

    def equivalence_bounds(self) -> np.ndarray:
        """One-sided z boundaries per look for each of the two TOST tests (level ``alpha`` each)."""
        return spending_boundaries(self.fractions, self.alpha, sides=1)


def _t_bound(z: np.ndarray, dof: np.ndarray, sides: int) -> np.ndarray:
    """t critical values with the nominal tail probability of z boundaries (z: (K,), dof: (..., K))."""
    tail = stats.norm.sf(z)  # per side
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(z), stats.t.isf(tail, dof), np.inf)


def look_statistics(d: np.ndarray, plan: SequentialPlan, upto: int) -> dict[str, np.ndarray]:
    """Estimates at looks 0..upto from a difference array ``d`` (..., S, I) whose seed axis is in run order
    (I == 1 for set means); looks beyond the seeds present are NaN. Arrays have shape (..., upto + 1)."""
    d = np.asarray(d, dtype=float)
    out: dict[str, list[np.ndarray]] = {"mean": [], "se": [], "dof": []}
    for k in range(upto + 1):
        n = plan.looks[k]
        if d.shape[-2] < n:
            nan = np.full(d.shape[:-2], np.nan)
            est = dict(mean=nan, var_mean=nan, dof=nan)
        else:
            est, _ = _estimates(d[..., :n, :])
        out["mean"].append(est["mean"])
        out["se"].append(np.sqrt(est["var_mean"]))
        out["dof"].append(est["dof"])
    return {k: np.stack(v, axis=-1) for k, v in out.items()}


def sequential_decide(diffs: Mapping[str, np.ndarray], plan: SequentialPlan, look: int) -> pd.DataFrame:
    """Decisions at ``look`` (0-based) for difference tables ``diffs[variant]`` (S, I), seeds in run order.

    A variant may have fewer seeds than the current look if it stopped earlier. Efficacy across the variants is
    the sequentially rejective (Holm-like) group-sequential Bonferroni procedure; equivalence is per variant.
    ``decision``: ``significant`` (H0 difference = 0 rejected at some look <= ``look``), ``equivalent``
    (TOST succeeded at some look), ``continue``, or ``inconclusive`` at the last look. Columns: those of
    :data:`SEQUENTIAL_COLUMNS` except reference and n_images (added by :func:`sequential_decisions`).
    """
    if not 0 <= look < len(plan.looks):
        raise ValueError(f"look: expected 0..{len(plan.looks) - 1}, got {look!r}")
    names = list(diffs)
    m = len(names)
    stats_by = {v: look_statistics(diffs[v], plan, look) for v in names}
    for v in names:
        have = np.asarray(diffs[v]).shape[0]
        if have < plan.looks[0]:
            raise ValueError(f"variant {v!r}: {have} paired seed(s); look 0 needs {plan.looks[0]}")
    eq_z = plan.equivalence_bounds()[: look + 1]
    equiv_look: dict[str, int | None] = {}
    for v in names:
        st = stats_by[v]
        tb = _t_bound(eq_z, st["dof"], 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            ok = ((st["mean"] + tb * st["se"] < plan.delta) & (st["mean"] - tb * st["se"] > -plan.delta))
        hits = np.flatnonzero(ok)
        equiv_look[v] = int(hits[0]) if len(hits) else None
    rejected: dict[str, int] = {}
    while True:  # Holm-like: alpha / (number still open), boundaries re-applied to all looks so far
        open_ = [v for v in names if v not in rejected]
        if not open_:
            break
        z = plan.efficacy_bounds(plan.alpha / len(open_))[: look + 1]
        new = {}
        for v in open_:
            st = stats_by[v]
            last = look if equiv_look[v] is None else equiv_look[v]  # stopped for equivalence: no later looks
            tb = _t_bound(z, st["dof"], 2)
            with np.errstate(invalid="ignore", divide="ignore"):
                tstat = np.abs(st["mean"]) / st["se"]
            hits = np.flatnonzero(tstat[: last + 1] >= tb[: last + 1])
            if len(hits):
                new[v] = int(hits[0])
        if not new:
            break
        rejected.update(new)
    z_now = plan.efficacy_bounds(plan.alpha / max(m - len(rejected), 1))[look] if m else math.nan
    rows = []
    for v in names:
        st = stats_by[v]
        mean, se, dof = st["mean"][look], st["se"][look], st["dof"][look]
        if v not in rejected and equiv_look[v] is None and np.asarray(diffs[v]).shape[0] < plan.looks[look]:
            raise ValueError(f"variant {v!r}: {np.asarray(diffs[v]).shape[0]} paired seed(s) and no decision yet; "
                             f"look {look} needs {plan.looks[look]}")
        if v in rejected:
            decision = "significant"
        elif equiv_look[v] is not None:
            decision = "equivalent"
        else:
            decision = "inconclusive" if look == len(plan.looks) - 1 else "continue"
        with np.errstate(invalid="ignore", divide="ignore"):
            tstat = float(mean / se)
        rows.append(dict(
            variant=v, look=look, n_seeds=int(min(np.asarray(diffs[v]).shape[0], plan.looks[look])),
            difference=float(mean), se=float(se), dof=float(dof), t=tstat,
            efficacy_t_bound=float(_t_bound(np.array([z_now]), np.array([dof]), 2)[0]),
            significant=v in rejected, significant_look=rejected.get(v),
            equivalence_t_bound=float(_t_bound(eq_z[-1:], np.array([dof]), 1)[0]),
            equivalent=equiv_look[v] is not None, equivalent_look=equiv_look[v], decision=decision))
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=list(SEQUENTIAL_COLUMNS))


def sequential_decisions(df: pd.DataFrame, plan: SequentialPlan, look: int, reference: str, *,
                         estimand: str) -> pd.DataFrame:
    """Decisions per non-reference variant at ``look`` under ``estimand`` from the tidy data collected so far
    (columns as for :func:`verdict_table`). Look k uses the first ``plan.looks[k]`` common seeds in increasing
    seed order, so seeds must be run in that order. Columns :data:`SEQUENTIAL_COLUMNS`;
    ``difference``/``se``/``dof``/``t`` are at the current look (NaN for a variant that stopped earlier with
    fewer seeds), ``*_t_bound`` the current t boundaries, ``significant_look``/``equivalent_look`` the look of
    the claim."""
    _check_frame(df)
    check_estimand(estimand)
    if reference not in set(df["variant"]):
        raise ValueError(f"ablation data: reference variant {reference!r} not found; found "
                         f"{sorted(df['variant'].unique())}")
    names = sorted(set(df["variant"]) - {reference})
    diffs, n_scenes = {}, {}
    for v in names:
        design = paired_design(df, v, reference)
        table = design.table(estimand)
        if estimand == "population" and design.d.size and table.shape[1] < 2:
            raise ValueError(f"variant {v!r}: {design.n_scenes} scene(s); the population estimand needs at least 2")
        diffs[v] = table if table.size else np.zeros((0, 1))
        n_scenes[v] = design.n_scenes
    out = sequential_decide(diffs, plan, look)
    out.insert(1, "reference", reference)
    out.insert(2, "estimand", estimand)
    out.insert(5, "n_scenes", out["variant"].map(n_scenes))
    return out[list(SEQUENTIAL_COLUMNS)]


__all__ = [
    "DEFAULT_MARGINS", "ESTIMANDS", "ESTIMAND_WORDS", "Equivalence", "PairedDesign", "PairedEffect",
    "SEQUENTIAL_COLUMNS", "SequentialPlan", "VERDICT_COLUMNS", "VarianceComponents", "check_estimand",
    "crossed_estimates", "default_margin", "effect_of_design", "equivalence_test", "estimand_table", "holm",
    "look_statistics", "minimum_detectable_effect", "obrien_fleming_spending", "paired_design", "paired_effect",
    "power_two_sided", "scene_means", "seed_level_estimates", "seeds_needed", "sequential_decide",
    "sequential_decisions", "spending_boundaries", "variance_split", "verdict_table", "verdict_text",
    "verdicts_by_step",
]
