"""Seed-sequential ablations: group-sequential boundaries and the decisions at each look.

Written by hand (statsmodels has no group-sequential boundaries). Seeds are run in rounds; look k uses the first
``looks[k]`` seeds and information fraction ``t_k = looks[k] / looks[-1]``. Efficacy (H0: mu = 0, two-sided)
spends alpha with the Lan-DeMets O'Brien-Fleming-like function ``a(t) = 2 - 2 Phi(z_{1 - a/2} / sqrt(t))`` per
tail; the boundaries c_k solve ``P(|Z_j| < c_j for j < k, |Z_k| >= c_k) = alpha(t_k) - alpha(t_{k-1})`` under
``corr(Z_j, Z_k) = sqrt(t_j / t_k)``, by numerical integration of the score process (Armitage-McPherson-Rowe
recursion, Simpson weights). Each one-sided test of TOST uses the one-sided spending of level alpha; equivalence
is declared at the first look where ``mean ± e_k SE`` lies inside (-delta, delta). The looks are fixed in
advance (:class:`SequentialPlan`). The t statistic of the chosen estimand is compared with the t quantile of
the z boundary's tail probability. Across variants, efficacy is the sequentially rejective group-sequential
Bonferroni procedure (Holm-like; Maurer & Bretz 2013); a variant declared equivalent or significant gets no more
seeds (non-binding stopping only removes rejection opportunities). A scene or image term shared by all looks
makes successive statistics more correlated than seeds/max seeds assumes, which makes the boundaries
conservative.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy import optimize, stats

from .anova import _estimates
from .estimands import check_alpha, check_estimand, check_margin
from .paired import check_frame, check_reference, paired_design

SEQUENTIAL_COLUMNS: tuple[str, ...] = (
    "variant", "reference", "estimand", "look", "n_seeds", "n_scenes", "difference", "se", "dof", "t",
    "efficacy_t_bound", "significant", "significant_look", "equivalence_t_bound", "equivalent", "equivalent_look",
    "decision",
)

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
    module's docstring); ``n_grid`` (odd) points per look."""
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
        check_margin(self.delta, "SequentialPlan.delta")
        check_alpha(self.alpha, "SequentialPlan.alpha")
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
    check_frame(df)
    check_estimand(estimand)
    check_reference(df, reference)
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
