"""The report's tables: builders (DataFrames from records) and :func:`write_table` (``.md``, ``.csv``, ``.tex``).

Every file is written atomically (:mod:`hinet.atomic`): an interrupted report leaves the previous table or
the new one, never a torn file. ``.csv`` holds the raw numbers, ``.md`` and ``.tex`` the formatted ones
(:data:`NUMBER_FORMATS`; NaN shown as ``n/a``).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import atomic_write_text, replacing
from ..stats import ESTIMANDS
from .labels import NOT_COMPARABLE, is_paper_kind, kind_label
from .speed_labels import MEASURES, comparison_labels, split_device
from .statistics import QUALITY, variant_stats
from .verdicts import NO_VERDICT, verdict_protocol

#: Display format of each numeric column in ``.md`` / ``.tex`` (the ``.csv`` keeps full precision).
NUMBER_FORMATS = {"psnr_mean": "{:.2f}", "psnr_ci95": "{:.2f}", "ssim_mean": "{:.4f}",
                  "params_m": "{:.4g}", "gmacs": "{:.4g}", "ours": "{:.4f}",
                  "published": "{:.4f}", "difference": "{:+.4f}", "mean": "{:.4g}", "std": "{:.3g}",
                  "ci95": "{:.3g}", "ci_low": "{:+.4f}", "ci_high": "{:+.4f}", "p_holm": "{:.3g}", "tost_p": "{:.3g}",
                  "mde": "{:.4f}", "seeds_needed": "{:.0f}", "var_seed": "{:.3g}", "var_scene": "{:.3g}",
                  "var_image": "{:.3g}",
                  "delta": "{:g}", "baseline": "{:.1f}", "fast": "{:.1f}", "ratio": "{:.2f}",
                  "ratio_low": "{:.2f}", "ratio_high": "{:.2f}", "target": "{:g}",
                  **{f"{e}_{c}": f for e in ESTIMANDS for c, f in (("difference", "{:+.3f}"), ("ci_low", "{:+.3f}"),
                                                                     ("ci_high", "{:+.3f}"), ("p_holm", "{:.3g}"))}}


def _display(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for col, fmt in NUMBER_FORMATS.items():
        if col in out:
            out[col] = [("n/a" if pd.isna(x) else fmt.format(x)) for x in out[col]]
    return out


def _tex_escape(text: str) -> str:
    # to_latex escapes cells but not the caption; these are the characters our captions can contain.
    return re.sub(r"([&%$#_{}])", r"\\\1", text)


def write_table(df: pd.DataFrame, out_dir: Path, stem: str, title: str, caption: str) -> list[Path]:
    """``<stem>.md`` (title, caption, formatted table), ``.csv`` (raw numbers) and ``.tex`` (formatted),
    each written atomically; returns the three paths."""
    shown = _display(df)
    align = ["right" if pd.api.types.is_numeric_dtype(df[c]) and df[c].dtype != bool else "left" for c in df]
    body = shown.to_markdown(index=False, disable_numparse=True, colalign=align) if len(df) else "(no rows)"
    md, csv, tex = (Path(out_dir) / f"{stem}.{ext}" for ext in ("md", "csv", "tex"))
    atomic_write_text(md, f"# {title}\n\n{caption}\n\n{body}\n")
    with replacing(csv) as tmp:
        df.to_csv(tmp, index=False)
    atomic_write_text(tex, shown.to_latex(index=False, escape=True, caption=_tex_escape(f"{title}. {caption}"),
                                          label=f"tab:{stem}"))
    return [md, csv, tex]


def ablation_table(family_runs: pd.DataFrame, synthetic: bool, recipe: str,
                   verdicts: pd.DataFrame | None = None) -> pd.DataFrame:
    """:func:`variant_stats` of every (split, protocol) block of one family/dataset/kind, with a ``kind``
    column first (columns kind, split, protocol, then those of :func:`variant_stats`), and the PSNR comparison
    with the reference from the block's ``verdicts`` (:func:`hinet.report.verdicts.family_verdicts`, the one
    statistic per comparison): ``<estimand>_difference``, ``_ci_low``, ``_ci_high`` and ``_p_holm`` per
    estimand. Protocols that get no verdicts say why in ``note``."""
    parts = [variant_stats(b).assign(split=split, protocol=protocol)
             for (split, protocol), b in family_runs.groupby(["split", "protocol"])]
    table = pd.concat(parts, ignore_index=True)
    table.insert(0, "kind", kind_label(synthetic, recipe))
    table = table[["kind", "split", "protocol", *[c for c in table if c not in ("kind", "split", "protocol")]]]
    shown = ["difference", "ci_low", "ci_high", "p_holm"]
    for estimand in ESTIMANDS:
        cols = [f"{estimand}_{c}" for c in shown]
        v = pd.DataFrame(columns=["protocol", "variant", *cols])
        if verdicts is not None and len(verdicts):
            q = verdicts[(verdicts["metric"] == "psnr") & (verdicts["estimand"] == estimand)]
            v = q[["protocol", "variant", *shown]].rename(columns=dict(zip(shown, cols)))
        table = table.merge(v, on=["protocol", "variant"], how="left")
    silent = ~table["protocol"].map(verdict_protocol)
    table.loc[silent, "note"] = [("; ".join(x for x in (n, NO_VERDICT) if x)) for n in table.loc[silent, "note"]]
    return table


def ablation_caption(synthetic: bool, recipe: str) -> str:
    caption = ("Final validation numbers per variant: n seeds, mean PSNR (dB) with 95% t-interval half-width "
               "over seeds, mean SSIM, params (M) and GMACs per 1x3x256x256 forward; and the verdict's PSNR "
               "comparison with the family's reference for each estimand (test_set: these test images; "
               "population: new scenes): mean paired difference, 95% interval and Holm p (verdicts_<stem>_*).")
    if not is_paper_kind(synthetic, recipe):
        caption += f" Data: {kind_label(synthetic, recipe)}; these numbers must not be read against the paper's."
    return caption


def published_comparison(final: pd.DataFrame, published: pd.DataFrame) -> pd.DataFrame:
    """Our evaluated psnr/ssim beside the published value for the same dataset, method (= variant), metric.

    ``final`` must hold only real-data evaluations (recipe 'eval', synthetic False): anything else raises
    ValueError, so synthetic or proxy numbers can never reach a column compared with the paper.
    Columns: dataset, method, metric, split, protocol, n_runs, ours, published, difference (ours -
    published), source.
    """
    bad = final[final["synthetic"] | (final["recipe"] != "eval")]
    if len(bad):
        raise ValueError(f"published_comparison: only real-data 'eval' records may be compared with the paper; "
                         f"got synthetic/non-eval runs {sorted(set(bad['run_id']))}")
    ours = (final.groupby(["dataset", "variant", "metric", "split", "protocol"])
            .agg(ours=("value", "mean"), n_runs=("run_id", "nunique")).reset_index())
    pub = published[published["metric"].isin(QUALITY)]
    dup = pub[pub.duplicated(["dataset", "method", "metric"], keep=False)]
    if len(dup):
        raise ValueError(f"published_comparison: duplicate published rows {dup.to_dict('records')}")
    pub = pub.rename(columns={"method": "variant", "value": "published"})
    out = ours.merge(pub[["dataset", "variant", "metric", "published", "source"]],
                     on=["dataset", "variant", "metric"], how="left")
    out["difference"] = out["ours"] - out["published"]
    out = out.rename(columns={"variant": "method"})
    return out[["dataset", "method", "metric", "split", "protocol", "n_runs", "ours", "published", "difference",
                "source"]]


PUBLISHED_COMPARISON_TITLE = "Evaluated checkpoints (real data) vs published numbers"
PUBLISHED_COMPARISON_CAPTION = (
    "Only real-data evaluations of checkpoints (recipe 'eval', synthetic False); method = our variant name; "
    "difference = ours - published; sources in results/published/.")


def not_comparable_table(evals: pd.DataFrame) -> pd.DataFrame:
    """Final psnr/ssim of evaluation records that are synthetic or not recipe ``eval``, per kind: columns
    kind, dataset, variant, metric, split, protocol, n_runs, mean."""
    out = (evals.groupby(["synthetic", "recipe", "dataset", "variant", "metric", "split", "protocol"])
           .agg(n_runs=("run_id", "nunique"), mean=("value", "mean")).reset_index())
    out.insert(0, "kind", [kind_label(s, r) for s, r in zip(out.pop("synthetic"), out.pop("recipe"))])
    return out


NOT_COMPARABLE_TITLE = f"Evaluations on synthetic data or non-eval recipes ({NOT_COMPARABLE})"
NOT_COMPARABLE_CAPTION = "Checkpoint-evaluation psnr/ssim that are synthetic or not real-checkpoint evaluations."


#: Columns of :func:`speed_table`, in order.
SPEED_COLUMNS = ("what", "baseline path", "fast path", "unit", "baseline", "fast", "ratio", "ratio_low",
                 "ratio_high", "target", "meets target", "device", "capability", "measured")


def _meets(ratio: float, low: float, high: float, target: float) -> str:
    """``yes``/``no`` when the whole 95% interval (else the ratio itself) is on one side of the target,
    ``unclear`` when the interval straddles it, ``-`` without a target."""
    if pd.isna(target):
        return "-"
    low, high = (ratio, ratio) if pd.isna(low) or pd.isna(high) else (low, high)
    return "yes" if low >= target else "no" if high < target else "unclear"


def speed_table(records: pd.DataFrame) -> pd.DataFrame:
    """One row per comparison of the speed suite and invocation (family 'speed' records, the runner's
    convention: ``benchmarks/speed/runner.py``): columns :data:`SPEED_COLUMNS`.

    ``what``/``baseline path``/``fast path`` are the benchmark's own words
    (:mod:`hinet.report.speed_labels`); ``baseline``
    and ``fast`` are the compared paths' medians over rounds in ``unit`` (ms per call; MB of peak memory
    for the tiling benchmark); ``ratio`` = baseline / fast of those medians (higher is better; the ratio of
    minima where no median was recorded) with its 95% bootstrap interval ``ratio_low``..``ratio_high``
    (rounds resampled, in pairs where the two paths were timed interleaved; NaN with one round); ``target``
    the runner's minimum ratio; ``meets target`` from the interval (:func:`_meets`); ``device`` the hardware
    description and ``capability`` ``torch.backends.cpu.get_cpu_capability()`` (CPU) or the GPU model;
    ``measured`` the invocation's UTC time. Benchmarks without a ratio (a path timed alone) have no row.
    """
    rows = []
    is_path = records["variant"].str.contains(":", regex=False)  # "<name>:<path>" rows are paths
    bench, path_rows = records[~is_path], records[is_path]
    invocation = bench["run_id"].str.split("/", n=1).str[0]
    path_of = path_rows["run_id"].str.rsplit(":", n=1).str[0]  # "<invocation>/<module>::<name>"
    for (_, _, _, device), block in bench.groupby([invocation, "protocol", "variant", "device"], sort=False):
        values = dict(zip(block["metric"], block["value"]))
        if "ratio" not in values and "ratio_median" not in values:
            continue
        what, baseline, fast = comparison_labels(block, path_rows[path_of == block["run_id"].iloc[0]])
        measure = next((m for m in MEASURES if f"baseline_{m}" in values), None)
        ratio = values.get("ratio_median", values.get("ratio"))
        low, high = values.get("ratio_low", np.nan), values.get("ratio_high", np.nan)
        target = values.get("target", np.nan)
        hardware, capability = split_device(str(device))
        rows.append({"what": what, "baseline path": baseline, "fast path": fast,
                     "unit": MEASURES[measure] if measure else "not recorded",
                     "baseline": values.get(f"baseline_{measure}", np.nan),
                     "fast": values.get(f"fast_{measure}", np.nan), "ratio": ratio, "ratio_low": low,
                     "ratio_high": high, "target": target, "meets target": _meets(ratio, low, high, target),
                     "device": hardware, "capability": capability,
                     "measured": block["time"].min().strftime("%Y-%m-%d %H:%M UTC")})
    if not rows:
        return pd.DataFrame(columns=list(SPEED_COLUMNS))
    table = pd.DataFrame(rows)
    first_seen = {what: i for i, what in reversed(list(enumerate(table["what"])))}
    table = table.assign(_order=table["what"].map(first_seen)).sort_values(["_order", "measured"], kind="stable")
    return table[list(SPEED_COLUMNS)].reset_index(drop=True)


SPEED_CAPTION = ("One row per comparison: baseline and fast are medians over rounds (ms per call; MB for peak "
                 "memory); ratio = baseline / fast (higher is better) with a 95% bootstrap interval over rounds "
                 "(low..high); meets target = the whole interval is at or above it (unclear: it straddles the "
                 "target). Both paths ran in the same invocation; capability = "
                 "torch.backends.cpu.get_cpu_capability() or the GPU model. Synthetic inputs: timings do not "
                 "depend on image content.")
