"""The report's computations on records (no files): final values, one row per run, per-variant statistics.

Inputs are the DataFrames of :func:`hinet.records.read_records` (columns :data:`hinet.records.COLUMNS`).
Intervals are two-sided Student-t intervals over seeds (``scipy.stats.t``), descriptive per variant; every
comparison of a variant with its family's reference is the verdict's (:mod:`hinet.report.verdicts`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

QUALITY = ("psnr", "ssim")
EVAL_SPLITS = ("val", "test")
RUN_KEY = ["run_id", "dataset", "split", "protocol"]
#: Protocols of model-size records (params/macs at step 0): ``model`` (MACs per 1x3x256x256 forward) and
#: ``256x256``, the name trainers wrote before ``model``.
SIZE_PROTOCOLS = ("model", "256x256")


def t_interval(x: np.ndarray | pd.Series, level: float = 0.95) -> tuple[float, float]:
    """Two-sided t-interval of the mean over seeds; (mean, mean) for fewer than 2 values (NaNs ignored)."""
    x = np.asarray(x, dtype=float)
    x = x[~np.isnan(x)]
    if len(x) < 2 or np.all(x == x[0]):  # no spread: scipy would warn on a zero scale
        m = float(x.mean()) if len(x) else float("nan")
        return m, m
    lo, hi = stats.t.interval(level, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    return float(lo), float(hi)


def ci_half(x: pd.Series) -> float:
    """Half-width of the 95% :func:`t_interval` (0 with fewer than 2 values or no spread)."""
    lo, hi = t_interval(x)
    return (hi - lo) / 2


def final_quality(records: pd.DataFrame) -> pd.DataFrame:
    """psnr/ssim rows of split val/test at the last step of each (run_id, dataset, split, protocol).

    A step of None (evaluations) counts as earlier than any step. Two values for the same run, metric
    and final step raise ValueError (ambiguous; the report never averages them silently).
    """
    q = records[records["metric"].isin(QUALITY) & records["split"].isin(EVAL_SPLITS)].copy()
    q["_step"] = q["step"].fillna(-1).astype("int64")
    q = q[q["_step"] == q.groupby(RUN_KEY)["_step"].transform("max")]
    dup = q[q.duplicated([*RUN_KEY, "metric"], keep=False)]
    if len(dup):
        where = dup[[*RUN_KEY, "metric"]].drop_duplicates().to_dict("records")
        raise ValueError(f"final_quality: several values at the final step for {where}")
    return q.drop(columns="_step")


def size_mask(records: pd.DataFrame) -> pd.Series:
    """Rows holding a run's model size: metrics params/macs recorded at step 0 under a
    :data:`SIZE_PROTOCOLS` protocol (``macs`` = multiply-accumulates of one 1x3x256x256 forward)."""
    return (records["metric"].isin(["params", "macs"]) & records["protocol"].isin(SIZE_PROTOCOLS).astype(bool)
            & records["step"].eq(0).fillna(False).astype(bool))


def run_table(final: pd.DataFrame, records: pd.DataFrame) -> pd.DataFrame:
    """One row per (run_id, dataset, split, protocol): attributes, final psnr/ssim, step-0 params/macs."""
    attrs = ["family", "variant", "reference", "synthetic", "recipe", "seed"]
    bad = final.groupby("run_id")[attrs].nunique(dropna=False).gt(1).any(axis=1)
    if bad.any():
        raise ValueError(f"run_table: runs with changing family/variant/reference/synthetic/recipe/seed: "
                         f"{list(bad[bad].index)}")
    wide = final.pivot(index=RUN_KEY, columns="metric", values="value").reindex(columns=list(QUALITY))
    runs = final.drop_duplicates(RUN_KEY).set_index(RUN_KEY)[attrs].join(wide).reset_index()
    size = records[size_mask(records)]
    conflict = size.groupby(["run_id", "metric"])["value"].nunique().gt(1)
    if conflict.any():
        raise ValueError(f"run_table: conflicting step-0 params/macs in runs {list(conflict[conflict].index)}")
    size = size.groupby(["run_id", "metric"])["value"].first().unstack("metric")
    size = size.reindex(columns=["params", "macs"])
    return runs.merge(size, left_on="run_id", right_index=True, how="left")


def variant_stats(block: pd.DataFrame) -> pd.DataFrame:
    """Per-variant summary of one (family, dataset, kind, split, protocol) block of :func:`run_table` rows:
    descriptive means only (the comparison with the reference is the verdict's, :mod:`hinet.report.verdicts`).

    Returns columns: variant, n_seeds, psnr_mean, psnr_ci95 (t-interval half-width over seeds), ssim_mean,
    reference (the family's declared reference, from the records), params_m, gmacs, note. The reference comes
    first.
    """
    ref = block["reference"].dropna().unique() if "reference" in block else []
    ref = ref[0] if len(ref) == 1 else None
    seeded = block.dropna(subset=["seed"])
    dup = seeded[seeded.duplicated(["variant", "seed"], keep=False)]
    if len(dup):
        raise ValueError(f"variant_stats: same variant and seed in several runs: {sorted(dup['run_id'])}")
    rows = []
    for v in sorted(block["variant"].unique(), key=lambda v: (v != ref, v)):
        r = block[block["variant"] == v]
        notes = [] if r["psnr"].notna().sum() >= 2 else ["<2 seeds: no CI"]
        if v == ref:
            notes.append("reference")
        size = {}
        for metric, scale in (("params", 1e6), ("macs", 1e9)):
            vals = r[metric].dropna().unique()
            if len(vals) > 1:
                raise ValueError(f"variant_stats: variant {v!r} has differing {metric} across runs: {vals}")
            size[metric] = vals[0] / scale if len(vals) else float("nan")
        rows.append(dict(variant=v, n_seeds=len(r), psnr_mean=r["psnr"].mean(), psnr_ci95=ci_half(r["psnr"]),
                         ssim_mean=r["ssim"].mean(), reference=ref, params_m=size["params"], gmacs=size["macs"],
                         note="; ".join(notes)))
    return pd.DataFrame(rows)
