"""Rebuild every table and figure under ``results/`` from the JSONL records; nothing is hand-edited.

Run ``python -m hinet.report [--records DIR] [--out DIR] [--published DIR] [--images DIR]``.
Records are read with :func:`hinet.records.read_records` (schema and units: ``hinet/records.py``).

Comparability rule: only records with ``recipe == "eval"`` and ``synthetic == False`` (real checkpoints
evaluated on real data) are ever put beside a published number. Everything else lands in tables and
figures whose file name, title and first column say ``synthetic`` and/or ``(not comparable to the paper)``.
"Kind" below is the pair (synthetic, recipe), e.g. "synthetic, proxy scale (not comparable to the paper)";
``<stem>`` is ``<family>_<dataset>`` for real-data paper/eval runs and ``<family>_<dataset>_<kind slug>``
(e.g. ``components_SIDD_synthetic_proxy``) for everything else.

Files written (each table as ``.md`` with title and caption, ``.csv`` with raw numbers, ``.tex``):

- ``tables/<stem>.{md,csv,tex}``: one ablation family (records with family not in ``benchmark``/``speed``) on
  one dataset. Final validation numbers (psnr/ssim, split val or test, at each run's last step); per
  (split, protocol, variant): number of seeds, mean PSNR, 95% t-interval half-width over seeds, mean SSIM,
  mean paired PSNR difference from the reference variant (``full`` if present, else the alphabetically
  first) with the paired t-test p-value over common seeds, params (M) and GMACs from the step-0
  ``params``/``macs`` records.
- ``tables/published_comparison.{md,csv,tex}``: real-data evaluations next to the published value for
  the same dataset/method(=variant)/metric and the difference (ours - published), with the source.
- ``tables/eval_not_comparable.{md,csv,tex}`` (only if any): psnr/ssim of benchmark/speed-family records
  that are synthetic or not ``eval`` (e.g. an evaluation on synthetic data), labelled as such.
- ``tables/speed.{md,csv,tex}`` (only if family ``speed`` records exist): mean, std, 95% CI and n of each
  speed metric (``ms_per_iter``, ``ratio``, ...) per dataset/protocol/device/variant.
- ``figures/ablation_<stem>.png``: point plot of final PSNR and SSIM per variant with 95% t-intervals.
- ``figures/psnr_vs_macs_<stem>.png`` (if ``macs`` records exist): mean PSNR (95% CI) against GMACs per
  variant. Published reference points (HINet README tables + conv-only MACs per 256x256 from
  ``complexity.csv``) share the axes only for real-data paper/eval runs; otherwise they get their own,
  separately labelled panel.
- ``figures/curves_<family>[_<kind slug>].png`` (if train/val records with steps exist): every recorded
  train metric (``loss``, and e.g. ``lr``, ``images_per_s``) and every validation metric (``psnr``, ``ssim``)
  against step, one panel per metric (validation panels also per dataset and protocol), hue = variant,
  mean over seeds with a 95% t-interval band.
- ``figures/speed.png``: bar plot of each speed metric per variant (hue = device), 95% t-intervals.
- ``figures/comparison[_<name>].png``: visual grid (rows = images; columns = input, variants, ground
  truth) for ``<images>/`` or each ``<images>/<name>/`` holding ``input/`` and ``target/`` PNG folders.

Records that feed none of the above are listed in a warning (never dropped silently).
"""

from __future__ import annotations

import argparse
import re
import warnings
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never open a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from scipy import stats  # noqa: E402
from skimage import io as skio  # noqa: E402
from skimage.util import img_as_float  # noqa: E402

from .records import read_records  # noqa: E402

PUBLISHED_DIR = Path(__file__).resolve().parents[1] / "results" / "published"
PUBLISHED_COLUMNS = ["table", "dataset", "method", "metric", "value", "source"]
QUALITY = ("psnr", "ssim")
EVAL_SPLITS = ("val", "test")
NON_ABLATION_FAMILIES = ("benchmark", "speed")
PAPER_RECIPES = ("paper", "eval")  # recipes whose real-data results may share axes with paper numbers
NOT_COMPARABLE = "not comparable to the paper"
RUN_KEY = ["run_id", "dataset", "split", "protocol"]
DPI = 150


# ----------------------------------------------------------------------------------------------- labels
def kind_label(synthetic: bool, recipe: str) -> str:
    """Human label of a (synthetic, recipe) kind, e.g. 'synthetic, proxy scale (not comparable to the paper)'."""
    scale = {"proxy": "proxy scale", "paper": "paper recipe", "eval": "evaluation"}.get(recipe, f"{recipe} recipe")
    label = f"{'synthetic' if synthetic else 'real data'}, {scale}"
    return label if is_paper_kind(synthetic, recipe) else f"{label} ({NOT_COMPARABLE})"


def is_paper_kind(synthetic: bool, recipe: str) -> bool:
    """True for real-data runs at paper scale or evaluations: the only kinds drawn beside paper numbers."""
    return not synthetic and recipe in PAPER_RECIPES


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")


def _stem(family: str, dataset: str | None, synthetic: bool, recipe: str) -> str:
    stem = _slug(family) if dataset is None else f"{_slug(family)}_{_slug(dataset)}"
    if is_paper_kind(synthetic, recipe):
        return stem
    return f"{stem}_{'synthetic_' if synthetic else ''}{_slug(recipe)}"


# ------------------------------------------------------------------------------------------- published
def load_published(dataset: str | None = None, published_dir: str | Path = PUBLISHED_DIR) -> pd.DataFrame:
    """All published numbers (``results/published/*.csv``), optionally for one dataset.

    Columns: table, dataset, method, metric, value (float), source. Raises ValueError on a file whose
    header is not exactly :data:`PUBLISHED_COLUMNS`, a non-numeric value, an empty source, or an
    unknown ``dataset``.
    """
    files = sorted(Path(published_dir).glob("*.csv"))
    if not files:
        raise FileNotFoundError(f"load_published: no *.csv files in {published_dir}")
    frames = []
    for f in files:
        df = pd.read_csv(f, dtype=str, keep_default_na=False)
        if list(df.columns) != PUBLISHED_COLUMNS:
            raise ValueError(f"{f}: columns {list(df.columns)}, expected {PUBLISHED_COLUMNS}")
        try:
            df["value"] = pd.to_numeric(df["value"], errors="raise").astype("float64")
        except ValueError as err:
            raise ValueError(f"{f}: non-numeric value: {err}") from err
        empty = df[(df.drop(columns="value") == "").any(axis=1)]
        if len(empty):
            raise ValueError(f"{f}: empty cells in rows {[i + 2 for i in empty.index]} (line numbers)")
        frames.append(df)
    out = pd.concat(frames, ignore_index=True)
    if dataset is not None:
        if dataset not in set(out["dataset"]):
            raise ValueError(f"load_published: unknown dataset {dataset!r}; known: {sorted(set(out['dataset']))}")
        out = out[out["dataset"] == dataset].reset_index(drop=True)
    return out


def _paper_points(published: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Published PSNR on ``dataset`` joined with conv-only GMACs per 256x256 (complexity.csv) by method.

    'HINet (paper)' / 'HINet (README)' take the MACs of 'HINet' (the bracket only names the source).
    """
    macs = published[(published["table"] == "A.5 conv-only count") & (published["metric"] == "gmacs")]
    psnr = published[(published["dataset"] == dataset) & (published["metric"] == "psnr")].copy()
    psnr["base"] = psnr["method"].str.split(" (", regex=False).str[0]
    pts = psnr.merge(macs[["method", "value"]].rename(columns={"method": "base", "value": "gmacs"}), on="base")
    return pts.rename(columns={"value": "psnr"})[["method", "psnr", "gmacs"]]


# ---------------------------------------------------------------------------------------------- stats
def t_interval(x: np.ndarray | pd.Series, level: float = 0.95) -> tuple[float, float]:
    """Two-sided t-interval of the mean over seeds; (mean, mean) for fewer than 2 values (NaNs ignored)."""
    x = np.asarray(x, dtype=float)
    x = x[~np.isnan(x)]
    if len(x) < 2 or np.all(x == x[0]):  # no spread: scipy would warn on a zero scale
        m = float(x.mean()) if len(x) else float("nan")
        return m, m
    lo, hi = stats.t.interval(level, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    return float(lo), float(hi)


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


def run_table(final: pd.DataFrame, records: pd.DataFrame) -> pd.DataFrame:
    """One row per (run_id, dataset, split, protocol): attributes, final psnr/ssim, step-0 params/macs."""
    attrs = ["family", "variant", "synthetic", "recipe", "seed"]
    bad = final.groupby("run_id")[attrs].nunique(dropna=False).gt(1).any(axis=1)
    if bad.any():
        raise ValueError(f"run_table: runs with changing family/variant/synthetic/recipe/seed: {list(bad[bad].index)}")
    wide = final.pivot(index=RUN_KEY, columns="metric", values="value").reindex(columns=list(QUALITY))
    runs = final.drop_duplicates(RUN_KEY).set_index(RUN_KEY)[attrs].join(wide).reset_index()
    size = records[_size_mask(records)]
    conflict = size.groupby(["run_id", "metric"])["value"].nunique().gt(1)
    if conflict.any():
        raise ValueError(f"run_table: conflicting step-0 params/macs in runs {list(conflict[conflict].index)}")
    size = size.groupby(["run_id", "metric"])["value"].first().unstack("metric")
    size = size.reindex(columns=["params", "macs"])
    return runs.merge(size, left_on="run_id", right_index=True, how="left")


def _size_mask(records: pd.DataFrame) -> pd.Series:
    """Rows holding a run's model size: metrics params/macs recorded at step 0."""
    return records["metric"].isin(["params", "macs"]) & records["step"].eq(0).fillna(False).astype(bool)


def variant_stats(block: pd.DataFrame) -> pd.DataFrame:
    """Per-variant summary of one (family, dataset, kind, split, protocol) block of :func:`run_table` rows.

    Returns columns: variant, n_seeds, psnr_mean, psnr_ci95 (t-interval half-width), ssim_mean,
    reference, delta_psnr (mean of paired differences variant - reference over common seeds), n_pairs,
    p_value (scipy.stats.ttest_rel; NaN with a note below 2 pairs), params_m, gmacs, note.
    """
    variants = sorted(block["variant"].unique())
    ref = "full" if "full" in variants else variants[0]
    seeded = block.dropna(subset=["seed"])
    dup = seeded[seeded.duplicated(["variant", "seed"], keep=False)]
    if len(dup):
        raise ValueError(f"variant_stats: same variant and seed in several runs: {sorted(dup['run_id'])}")
    ref_runs = seeded[seeded["variant"] == ref][["seed", "psnr"]]
    rows = []
    for v in [ref, *(v for v in variants if v != ref)]:
        r = block[block["variant"] == v]
        notes = [] if r["psnr"].notna().sum() >= 2 else ["<2 seeds: no CI"]
        pairs = seeded[seeded["variant"] == v][["seed", "psnr"]].merge(ref_runs, on="seed", suffixes=("", "_ref"))
        pairs = pairs.dropna()
        delta, p = float("nan"), float("nan")
        if v == ref:
            delta = 0.0
            notes.append("reference")
        else:
            if len(pairs):
                delta = float((pairs["psnr"] - pairs["psnr_ref"]).mean())
            if len(pairs) < 2:
                notes.append(f"{len(pairs)} paired seed(s): no test")
            else:
                with np.errstate(all="ignore"), warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    p = float(stats.ttest_rel(pairs["psnr"], pairs["psnr_ref"]).pvalue)
                if np.isnan(p):
                    notes.append("identical paired values: no test")
        size = {}
        for metric, scale in (("params", 1e6), ("macs", 1e9)):
            vals = r[metric].dropna().unique()
            if len(vals) > 1:
                raise ValueError(f"variant_stats: variant {v!r} has differing {metric} across runs: {vals}")
            size[metric] = vals[0] / scale if len(vals) else float("nan")
        rows.append(dict(variant=v, n_seeds=len(r), psnr_mean=r["psnr"].mean(), psnr_ci95=_ci_half(r["psnr"]),
                         ssim_mean=r["ssim"].mean(), reference=ref, delta_psnr=delta, n_pairs=len(pairs),
                         p_value=p, params_m=size["params"], gmacs=size["macs"], note="; ".join(notes)))
    return pd.DataFrame(rows)


def published_comparison(final: pd.DataFrame, published: pd.DataFrame) -> pd.DataFrame:
    """Our evaluated psnr/ssim beside the published value for the same dataset, method (= variant), metric.

    ``final`` must hold only real-data evaluations (recipe 'eval', synthetic False): anything else raises
    ValueError, so synthetic or proxy numbers can never reach a column compared with the paper.
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


# ---------------------------------------------------------------------------------------------- writers
_FMT = {"psnr_mean": "{:.2f}", "psnr_ci95": "{:.2f}", "ssim_mean": "{:.4f}", "delta_psnr": "{:+.3f}",
        "p_value": "{:.3g}", "params_m": "{:.4g}", "gmacs": "{:.4g}", "ours": "{:.4f}", "published": "{:.4f}",
        "difference": "{:+.4f}", "mean": "{:.4g}", "std": "{:.3g}", "ci95": "{:.3g}"}


def _display(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for col, fmt in _FMT.items():
        if col in out:
            out[col] = [("n/a" if pd.isna(x) else fmt.format(x)) for x in out[col]]
    return out


def _tex_escape(text: str) -> str:
    # to_latex escapes cells but not the caption; these are the characters our captions can contain.
    return re.sub(r"([&%$#_{}])", r"\\\1", text)


def write_table(df: pd.DataFrame, out_dir: Path, stem: str, title: str, caption: str) -> list[Path]:
    """``<stem>.md`` (title, caption, formatted table), ``.csv`` (raw numbers) and ``.tex`` (formatted)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    shown = _display(df)
    align = ["right" if pd.api.types.is_numeric_dtype(df[c]) and df[c].dtype != bool else "left" for c in df]
    body = shown.to_markdown(index=False, disable_numparse=True, colalign=align) if len(df) else "(no rows)"
    paths = [out_dir / f"{stem}.{ext}" for ext in ("md", "csv", "tex")]
    paths[0].write_text(f"# {title}\n\n{caption}\n\n{body}\n")
    df.to_csv(paths[1], index=False)
    paths[2].write_text(shown.to_latex(index=False, escape=True, caption=_tex_escape(f"{title}. {caption}"),
                                       label=f"tab:{stem}"))
    return paths


def _save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def _ci_half(x: pd.Series) -> float:
    lo, hi = t_interval(x)
    return (hi - lo) / 2


_CI: Callable[[np.ndarray], tuple[float, float]] = t_interval  # seaborn errorbar callable


# ---------------------------------------------------------------------------------------------- figures
def ablation_figure(block_runs: pd.DataFrame, title: str, path: Path) -> Path:
    """Point plot of final PSNR/SSIM per variant (95% t-intervals); one row per split/protocol."""
    long = block_runs.melt(id_vars=["variant", "seed", "split", "protocol"], value_vars=list(QUALITY),
                           var_name="metric", value_name="value").dropna(subset=["value"])
    long["panel"] = long["split"] + " / " + long["protocol"] + " | " + long["metric"]  # only panels with data
    order = sorted(long["variant"].unique(), key=lambda v: (v != "full", v))  # reference first
    g = sns.catplot(data=long, x="variant", y="value", col="panel", col_wrap=2, kind="point", order=order,
                    errorbar=_CI, linestyle="none", sharex=False, sharey=False, height=3.2, aspect=1.3)
    for ax in g.axes.flat:
        ax.set_xticks(range(len(order)))
        ax.set_xticklabels(order, rotation=30, ha="right")
    g.set_titles("{col_name}")
    g.figure.subplots_adjust(hspace=0.55)
    g.set_ylabels("mean and 95% CI over seeds")
    g.figure.suptitle(title, y=1.03)
    return _save(g.figure, path)


def _draw_published(ax: plt.Axes, paper: pd.DataFrame) -> None:
    ax.scatter(paper["gmacs"], paper["psnr"], marker="*", s=140, color="black",
               label="published (MACs: conv-only per 256x256)")
    for _, p in paper.iterrows():
        ax.annotate(p["method"], (p["gmacs"], p["psnr"]), textcoords="offset points", xytext=(4, 4), fontsize=8)


def macs_figure(stats_rows: pd.DataFrame, title: str, path: Path, paper: pd.DataFrame | None,
                same_axes: bool) -> Path:
    """Mean PSNR (95% CI) against GMACs per variant; published points on the same axes only if ``same_axes``.

    Otherwise the published points (if any) get their own right-hand panel, labelled as reference only.
    """
    rows = stats_rows.dropna(subset=["gmacs", "psnr_mean"])
    has_paper = paper is not None and len(paper) > 0
    separate = has_paper and not same_axes
    evals = sorted(rows["eval"].unique())  # one panel per protocol: their scales can differ by 40+ dB
    ncols = len(evals) + separate
    fig, axes = plt.subplots(1, ncols, figsize=(6 * ncols, 4.2), squeeze=False, layout="constrained")
    for k, ev in enumerate(evals):
        ax, part = axes[0, k], rows[rows["eval"] == ev]
        ax.errorbar(part["gmacs"], part["psnr_mean"], yerr=part["psnr_ci95"].fillna(0), fmt="none",
                    ecolor="gray", zorder=1)
        sns.scatterplot(data=part, x="gmacs", y="psnr_mean", hue="variant", style="variant", s=70, ax=ax,
                        zorder=2, legend=k == len(evals) - 1)
        ax.set(xlabel="GMACs per forward (as recorded)", ylabel="PSNR (dB), mean and 95% CI over seeds",
               title=f"our runs: {ev}" + (" and published methods" if has_paper and same_axes else ""))
        if has_paper and same_axes:
            _draw_published(ax, paper)
    if separate:
        pax = axes[0, -1]
        _draw_published(pax, paper)
        pax.set(xlabel="GMACs per 256x256 (conv-only count)", ylabel="PSNR (dB)",
                title=f"published reference only: the runs at left are {NOT_COMPARABLE}")
    axes[0, len(evals) - 1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.suptitle(title)
    return _save(fig, path)


def curves_figure(curves: pd.DataFrame, title: str, path: Path) -> Path:
    """Metrics against step (one panel per metric; per dataset/protocol for validation), hue = variant,
    mean over seeds with a 95% t-interval band."""
    val = curves["split"] != "train"
    panel = curves["metric"] + " (" + curves["split"]
    panel = panel.where(~val, panel + ", " + curves["dataset"] + ", " + curves["protocol"]) + ")"
    curves = curves.assign(panel=panel, step=curves["step"].astype("int64"))
    order = sorted(curves["panel"].unique(), key=lambda p: (not p.startswith("loss"), "(train" not in p, p))
    g = sns.relplot(data=curves, x="step", y="value", hue="variant", col="panel", col_order=order, col_wrap=3,
                    kind="line", errorbar=_CI, facet_kws={"sharey": False, "sharex": False}, height=3.2,
                    aspect=1.3)
    g.set_titles("{col_name}")
    g.figure.suptitle(title, y=1.03)
    return _save(g.figure, path)


def comparison_grid(image_dir: str | Path, out_path: str | Path, title: str | None = None) -> Path:
    """Grid of PNGs: rows = images, columns = ``input``, each variant folder (sorted), ``target`` (ground truth).

    ``image_dir`` holds ``input/``, ``target/`` and one folder per variant, each with the same ``*.png``
    names (RGB or grey, any bit depth; shown as stored). Missing folders or files raise.
    """
    image_dir = Path(image_dir)
    for need in ("input", "target"):
        if not (image_dir / need).is_dir():
            raise FileNotFoundError(f"comparison_grid: {image_dir / need} is missing")
    names = sorted(p.name for p in (image_dir / "input").glob("*.png"))
    if not names:
        raise FileNotFoundError(f"comparison_grid: no *.png in {image_dir / 'input'}")
    variants = sorted(p.name for p in image_dir.iterdir() if p.is_dir() and p.name not in ("input", "target"))
    cols = ["input", *variants, "target"]
    for c in cols:
        have = {p.name for p in (image_dir / c).glob("*.png")}
        if have != set(names):
            raise ValueError(f"comparison_grid: {image_dir / c} has {sorted(have)}, expected {names}")
    fig, axes = plt.subplots(len(names), len(cols), figsize=(2.3 * len(cols), 2.3 * len(names)), squeeze=False)
    for i, name in enumerate(names):
        for j, c in enumerate(cols):
            img = img_as_float(skio.imread(image_dir / c / name))  # any bit depth -> float in [0, 1]
            ax = axes[i, j]
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0.0, vmax=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title("ground truth" if c == "target" else c, fontsize=9)
            if j == 0:  # "<set>__<image>.png" -> "<image>", wrapped to fit beside the row
                label = Path(name).stem.split("__")[-1]
                ax.set_ylabel("\n".join(label[k:k + 18] for k in range(0, len(label), 18)), fontsize=7)
    if title:
        fig.suptitle(title)
    return _save(fig, Path(out_path))


def speed_report(records: pd.DataFrame, tables: Path, figures: Path) -> list[Path]:
    """Speed table and bar plot from family 'speed' records (any metric: ms_per_iter, ratio, ...)."""
    keys = ["dataset", "protocol", "device", "variant", "metric"]
    summary = (records.groupby([*keys, "synthetic"])["value"]
               .agg(n="count", mean="mean", std="std", ci95=_ci_half)
               .reset_index())
    summary.insert(0, "input", np.where(summary.pop("synthetic"), "synthetic tensors", "real data"))
    out = write_table(summary, tables, "speed", "Speed", "Mean, std, 95% t-interval half-width and count of each "
                      "speed metric over repeated measurements; timings do not depend on image content.")
    # The figure shows the headline metrics (speed-up ratios, peak memory) as horizontal bars, one panel
    # each; every other metric stays in the table.
    shown = [m for m in ("ratio", "peak_mb") if m in set(records["metric"])] or sorted(set(records["metric"]))
    data = records[records["metric"].isin(shown)]
    data = data.assign(panel=data["dataset"] + " | " + data["metric"])
    rows = data["variant"].nunique()
    g = sns.catplot(data=data, y="variant", x="value", hue="device", col="panel", kind="bar", orient="h",
                    errorbar=_CI, sharex=False, sharey=False, height=max(3.0, 0.35 * rows), aspect=1.4)
    for ax in g.axes.flat:
        ax.tick_params(axis="y", labelsize=7)
    g.set_titles("{col_name}")
    g.figure.suptitle("Speed: ratios (baseline time / fast time) and peak memory (MB), 95% t-intervals", y=1.03)
    return [*out, _save(g.figure, figures / "speed.png")]


# ---------------------------------------------------------------------------------------------- driver
def build_report(records_dir: str | Path = "results/records", out_dir: str | Path = "results",
                 published_dir: str | Path = "results/published", images_dir: str | Path | None = None
                 ) -> list[Path]:
    """Write every table and figure listed in the module docstring; returns the written paths (sorted).

    ``images_dir`` defaults to ``<out_dir>/images`` when that folder exists.
    """
    records = read_records(records_dir)
    published = load_published(published_dir=published_dir)
    tables, figures = Path(out_dir) / "tables", Path(out_dir) / "figures"
    used = pd.Series(False, index=records.index)
    written: list[Path] = []

    final = final_quality(records)
    runs = run_table(final, records)
    ablation = runs[~runs["family"].isin(NON_ABLATION_FAMILIES)]
    # every val/test psnr/ssim is considered; earlier steps are superseded by the final one by design
    used |= records["metric"].isin(QUALITY) & records["split"].isin(EVAL_SPLITS)
    used |= _size_mask(records)
    for (family, dataset, synthetic, recipe), fam in ablation.groupby(["family", "dataset", "synthetic", "recipe"]):
        kind, stem = kind_label(synthetic, recipe), _stem(family, dataset, synthetic, recipe)
        parts = []
        for (split, protocol), b in fam.groupby(["split", "protocol"]):
            parts.append(variant_stats(b).assign(split=split, protocol=protocol))
        table = pd.concat(parts, ignore_index=True)
        table.insert(0, "kind", kind)
        table = table[["kind", "split", "protocol", *[c for c in table if c not in ("kind", "split", "protocol")]]]
        title = f"Ablation '{family}' on {dataset}: {kind}"
        caption = ("Final validation numbers per variant: n seeds, mean PSNR (dB) with 95% t-interval half-width "
                   "over seeds, mean SSIM, mean paired PSNR difference from the reference variant over common "
                   "seeds with the paired t-test p-value, params (M) and GMACs per forward.")
        if not is_paper_kind(synthetic, recipe):
            caption += f" Data: {kind}; these numbers must not be read against the paper's."
        written += write_table(table, tables, stem, title, caption)
        written.append(ablation_figure(fam, title, figures / f"ablation_{stem}.png"))
        if table["gmacs"].notna().any():
            paper = _paper_points(published, dataset)
            rows = table.assign(eval=table["split"] + " / " + table["protocol"])
            written.append(macs_figure(rows, title, figures / f"psnr_vs_macs_{stem}.png", paper,
                                       same_axes=is_paper_kind(synthetic, recipe)))

    curve_mask = (~records["family"].isin(NON_ABLATION_FAMILIES) & records["split"].isin(["train", "val"])
                  & records["step"].notna().astype(bool) & ~_size_mask(records))
    used |= curve_mask
    for (family, synthetic, recipe), c in records[curve_mask].groupby(["family", "synthetic", "recipe"]):
        stem = _stem(family, None, synthetic, recipe)
        title = f"Training curves '{family}': {kind_label(synthetic, recipe)}"
        written.append(curves_figure(c, title, figures / f"curves_{stem}.png"))

    bench = final[final["family"].isin(NON_ABLATION_FAMILIES)]
    comparable = final[~final["synthetic"] & (final["recipe"] == "eval")]
    written += write_table(
        published_comparison(comparable, published), tables, "published_comparison",
        "Evaluated checkpoints (real data) vs published numbers",
        "Only real-data evaluations of checkpoints (recipe 'eval', synthetic False); method = our variant name; "
        "difference = ours - published; sources in results/published/.")
    other = bench[bench["synthetic"] | (bench["recipe"] != "eval")]
    if len(other):
        other = (other.groupby(["synthetic", "recipe", "dataset", "variant", "metric", "split", "protocol"])
                 .agg(n_runs=("run_id", "nunique"), mean=("value", "mean")).reset_index())
        other.insert(0, "kind", [kind_label(s, r) for s, r in zip(other.pop("synthetic"), other.pop("recipe"))])
        written += write_table(other, tables, "eval_not_comparable",
                               f"Evaluations on synthetic data or non-eval recipes ({NOT_COMPARABLE})",
                               "Benchmark-family psnr/ssim that are synthetic or not real-checkpoint evaluations.")

    speed = records["family"] == "speed"
    used |= speed
    if speed.any():
        written += speed_report(records[speed], tables, figures)

    images = Path(images_dir) if images_dir is not None else Path(out_dir) / "images"
    if images_dir is not None or images.is_dir():
        if (images / "input").is_dir():
            written.append(comparison_grid(images, figures / "comparison.png"))
        else:
            for sub in sorted(p for p in images.iterdir() if (p / "input").is_dir()):
                written.append(comparison_grid(sub, figures / f"comparison_{_slug(sub.name)}.png", sub.name))

    if not used.all():
        left = records[~used].groupby(["family", "split", "metric"]).size()
        warnings.warn(f"build_report: {int((~used).sum())} records feed no table or figure: {left.to_dict()}",
                      stacklevel=2)
    return sorted(written)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Rebuild results/tables and results/figures from records.")
    parser.add_argument("--records", default="results/records", help="JSONL file or folder (searched recursively)")
    parser.add_argument("--out", default="results", help="writes <out>/tables and <out>/figures")
    parser.add_argument("--published", default="results/published", help="folder of published *.csv")
    parser.add_argument("--images", default=None, help="comparison images (default <out>/images if present)")
    args = parser.parse_args(argv)
    for path in build_report(args.records, args.out, args.published, args.images):
        print(path)


if __name__ == "__main__":
    main()
