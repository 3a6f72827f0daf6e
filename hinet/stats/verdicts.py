"""Verdicts in words and the verdict tables of a family: one row per non-reference variant and estimand.

An ablation should end in a verdict per variant ("costs 0.25 dB [0.14, 0.36] on new scenes (Holm p = 0.003)",
"equivalent within ±0.1 dB on this test set", "inconclusive on new scenes: more scenes needed"), not in a table
of p-values. Default margins: :data:`hinet.stats.estimands.DEFAULT_MARGINS` by training scale.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd

from .anova import variance_split
from .estimands import ESTIMAND_WORDS, check_estimand, check_margin, default_margin
from .paired import check_frame, check_reference, effect_of_design, equivalence_test, holm, paired_design
from .power import minimum_detectable_effect, seeds_needed

VERDICT_COLUMNS: tuple[str, ...] = (
    "variant", "reference", "estimand", "step", "difference", "ci_low", "ci_high", "p", "p_holm", "delta", "tost_p",
    "equivalent", "mde", "seeds_needed", "n_seeds", "n_scenes", "n_images", "var_seed", "var_scene", "var_image",
    "verdict",
    # extra columns after the requested ones
    "significant", "se", "dof", "var_seed_scene", "var_resid", "seed_share", "scene_share", "tost_p_holm", "note",
)

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
    """The verdict in words, naming the ``estimand`` (see :mod:`hinet.stats`); ``needed`` is
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
        return check_margin(delta)
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
    check_frame(df)
    check_estimand(estimand)
    d_margin = _resolve_delta(delta, scale)
    if step is None and "step" in df.columns:
        steps = df["step"].dropna().unique()
        if len(steps) > 1:
            raise ValueError(f"verdict_table: several steps {sorted(steps)[:5]}...; filter to one or use "
                             "verdicts_by_step")
        step = int(steps[0]) if len(steps) else None
    check_reference(df, reference)
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
    check_frame(df, need_step=True)
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
