"""Paired differences variant - reference and the tests on them: effect with interval, TOST equivalence, Holm.

Input: the tidy frame described in :mod:`hinet.stats`. Every variant is trained with the same seeds and scored on
the same images, so the differences are paired by (seed, image) (:func:`paired_design`); the effect under an
estimand is a t interval on the estimand's table (:func:`effect_of_design`).

**Equivalence** (TOST): H0 |mu| >= delta is rejected at level alpha iff both one-sided t tests reject, i.e. iff
the (1 - 2 alpha) interval from the same estimate, SE and df lies inside (-delta, delta).

**Multiplicity**: Holm across the comparisons of a family (:func:`holm`, checked against statsmodels).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from .anova import VarianceComponents, _estimates
from .estimands import check_alpha, check_estimand, check_margin, estimand_table

REQUIRED_COLUMNS: tuple[str, ...] = ("run_id", "variant", "seed", "value")

def check_frame(df: pd.DataFrame, need_step: bool = False) -> None:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"ablation data: expected a pandas DataFrame, got {type(df).__name__}")
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


def check_reference(df: pd.DataFrame, reference: str) -> None:
    """Refuse a frame without the family's ``reference`` variant."""
    if reference not in set(df["variant"]):
        raise ValueError(f"ablation data: reference variant {reference!r} not found; found "
                         f"{sorted(df['variant'].unique())}")


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
    """The paired differences of ``variant`` against ``reference`` in a tidy frame (columns in
    :mod:`hinet.stats`). Only seeds present for both variants are used, and only images present in every one of their
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
    n_cells = 2 * len(seeds)  # one value per (variant, seed, image): checked by check_frame
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
        h = _half_width(self.se, self.dof, level)
        return self.difference - h, self.difference + h


def _half_width(se: float, dof: float, level: float) -> float:
    """Half width of the two-sided ``level`` t interval (0 where the SE is 0)."""
    return float(stats.t.ppf(0.5 + level / 2, dof) * se) if se > 0 else 0.0


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
    h = _half_width(se, dof, level)
    return PairedEffect(variant, reference, estimand, mean, se, dof, mean - h, mean + h, _t_p(mean, se, dof), level,
                        comp, s, n_scenes, n_images, design.seeds, "; ".join(notes))


def paired_effect(df: pd.DataFrame, variant: str, reference: str, level: float = 0.95,
                  estimand: str = "population") -> PairedEffect:
    """Effect of ``variant`` against ``reference`` in a tidy DataFrame with columns ``run_id, variant, seed,
    image, scene, value`` (see :mod:`hinet.stats`) under ``estimand`` (``test_set`` or ``population``)."""
    check_frame(df)
    return effect_of_design(paired_design(df, variant, reference), estimand, variant, reference, level)


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
    check_margin(delta)
    check_alpha(alpha)
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
    call, a cost that grows with the process's heap and would be paid once per step of a report."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    if len(ok):
        order = ok[np.argsort(p[ok], kind="stable")]
        m = len(order)
        out[order] = np.minimum(np.maximum.accumulate(p[order] * np.arange(m, 0, -1)), 1.0)
    return out
