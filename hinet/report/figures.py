"""Every figure of the suite: ablation point plots, PSNR vs MACs, training curves, the visual comparison grid,
the speed bars (all written by :func:`hinet.report.build_report`) and the Optuna study figures (written by
:mod:`hinet.tune` through :func:`tune_figures`).

Figures are PNG at :data:`DPI` dots per inch, drawn with matplotlib's Agg backend (files only, no window)
and seaborn; intervals are 95% Student-t intervals over seeds (:func:`hinet.report.statistics.t_interval`).
Every file is written atomically (:func:`hinet.atomic.replacing`): an interrupted report never leaves a
torn PNG.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # files only; never open a window
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from skimage import io as skio  # noqa: E402
from skimage.util import img_as_float  # noqa: E402

from ..atomic import replacing  # noqa: E402
from .labels import NOT_COMPARABLE  # noqa: E402
from .statistics import QUALITY, t_interval  # noqa: E402
from .tables import speed_table  # noqa: E402

if TYPE_CHECKING:
    import optuna

DPI = 150
_CI: Callable[[np.ndarray], tuple[float, float]] = t_interval  # seaborn errorbar callable


def save(fig: plt.Figure, path: Path, dpi: int = DPI) -> Path:
    """Write ``fig`` as PNG to ``path`` atomically (folders created), close it and return ``path``."""
    try:
        with replacing(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format="png", bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def ablation_figure(block_runs: pd.DataFrame, title: str, path: Path) -> Path:
    """Point plot of final PSNR/SSIM per variant (95% t-intervals); one panel per split/protocol and metric."""
    long = block_runs.melt(id_vars=["variant", "seed", "split", "protocol"], value_vars=list(QUALITY),
                           var_name="metric", value_name="value").dropna(subset=["value"])
    long["panel"] = long["split"] + " / " + long["protocol"] + " | " + long["metric"]  # only panels with data
    ref = set(block_runs["reference"].dropna()) if "reference" in block_runs else set()
    order = sorted(long["variant"].unique(), key=lambda v: (v not in ref, v))  # the declared reference first
    g = sns.catplot(data=long, x="variant", y="value", col="panel", col_wrap=2, kind="point", order=order,
                    errorbar=_CI, linestyle="none", sharex=False, sharey=False, height=3.2, aspect=1.3)
    for ax in g.axes.flat:
        ax.set_xticks(range(len(order)))
        ax.set_xticklabels(order, rotation=30, ha="right")
    g.set_titles("{col_name}")
    g.figure.subplots_adjust(hspace=0.55)
    g.set_ylabels("mean and 95% CI over seeds")
    g.figure.suptitle(title, y=1.03)
    return save(g.figure, path)


def _draw_published(ax: plt.Axes, paper: pd.DataFrame) -> None:
    ax.scatter(paper["gmacs"], paper["psnr"], marker="*", s=140, color="black",
               label="published (MACs: conv-only per 256x256)")
    for _, p in paper.iterrows():
        ax.annotate(p["method"], (p["gmacs"], p["psnr"]), textcoords="offset points", xytext=(4, 4), fontsize=8)


def macs_figure(stats_rows: pd.DataFrame, title: str, path: Path, paper: pd.DataFrame | None,
                same_axes: bool) -> Path:
    """Mean PSNR (95% CI) against GMACs per variant; published points on the same axes only if ``same_axes``.

    ``stats_rows``: :func:`hinet.report.tables.ablation_table` rows with an ``eval`` column (split /
    protocol), one panel per value. Otherwise the published points (if any) get their own right-hand
    panel, labelled as reference only.
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
        ax.set(xlabel="GMACs per 1x3x256x256 forward (as recorded)",
               ylabel="PSNR (dB), mean and 95% CI over seeds",
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
    return save(fig, path)


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
    return save(g.figure, path)


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
    return save(fig, Path(out_path))


def speed_figure(records: pd.DataFrame, path: Path) -> Path:
    """Horizontal bars of the speed suite's ratios, one per row of :func:`hinet.report.tables.speed_table`
    (its human labels): ratio = baseline / fast of the medians (log axis, higher is better), the 95%
    bootstrap interval as error bar, the target as a red tick, 1 (no gain) as a dashed line. The title
    names the device (and capability) most rows ran on; rows of another device name theirs.
    ``records``: family 'speed' rows."""
    table = speed_table(records)
    if table.empty:  # e.g. only a path timed alone: say so rather than fail the whole report
        fig, ax = plt.subplots(figsize=(6.0, 1.5))
        ax.axis("off")
        ax.text(0.5, 0.5, "no speed record holds a ratio (metric ratio/ratio_median)", ha="center", va="center")
        return save(fig, path)
    where = table["device"] + " (capability " + table["capability"] + ")"
    common = where.mode().iloc[0]  # the device most rows ran on names the figure; others are named per row
    several = table["what"].duplicated(keep=False)  # one comparison in several invocations: add the time
    labels = [w + (f" ({m})" if dup else "") + ("" if d == common else f"\n[{d}]")
              for w, m, dup, d in zip(table["what"], table["measured"], several, where)]
    fig, ax = plt.subplots(figsize=(9.5, max(2.0, 0.5 * len(table) + 1.2)))
    y = np.arange(len(table))[::-1]  # first row on top
    ratio = table["ratio"].to_numpy(float)
    low = np.where(table["ratio_low"].isna(), ratio, table["ratio_low"].to_numpy(float))
    high = np.where(table["ratio_high"].isna(), ratio, table["ratio_high"].to_numpy(float))
    target = table["target"].to_numpy(float)
    colors = ["tab:green" if m == "yes" else "tab:red" if m == "no" else "tab:blue" for m in table["meets target"]]
    ax.barh(y, ratio - 1.0, left=1.0, color=colors, alpha=0.7, height=0.6)  # from 1 (no gain) to the ratio
    ax.errorbar(ratio, y, xerr=[ratio - low, high - ratio], fmt="none", ecolor="black", capsize=3, lw=1)
    has_target = ~np.isnan(target)
    ax.scatter(target[has_target], y[has_target], marker="|", s=500, color="red", linewidths=2.5, zorder=3)
    ax.axvline(1.0, color="grey", ls="--", lw=1)
    for yi, r, lo, hi in zip(y, ratio, low, high):
        text = f"{r:.2f}" if lo == hi else f"{r:.2f} [{lo:.2f}, {hi:.2f}]"
        ax.annotate(text, (max(r, hi, 1.0), yi), xytext=(5, -3), textcoords="offset points", fontsize=7)
    values = np.concatenate([low, high, target[has_target], [1.0]])
    lo_x, hi_x = values.min() / 1.15, values.max() * 1.8  # room for the annotations
    ax.set_xscale("log")
    ax.set_xlim(lo_x, hi_x)
    fine = (0.5, 0.75, 1, 1.25, 1.5, 2, 3, 5, 10)
    coarse = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
    ax.set_xticks([v for v in (fine if hi_x / lo_x < 20 else coarse) if lo_x <= v <= hi_x])
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlabel("ratio baseline / fast of the medians (log scale; > 1: the fast path wins)", fontsize=8)
    ax.set_title(f"Speed on {common}\nratio of medians, 95% bootstrap interval over rounds, red tick = target\n"
                 "green / red = the whole interval meets / misses it, blue = unclear or no target", fontsize=9)
    fig.tight_layout()
    return save(fig, path)


def tune_figures(study: optuna.Study, out_dir: str | Path) -> list[Path]:
    """Write an Optuna study's report under ``out_dir`` (e.g. ``results``) and return the files written:
    ``tables/optuna_<study>.csv`` (``study.trials_dataframe()``, one row per trial),
    ``figures/optuna_<study>_history.png`` (objective per completed trial and best so far; needs one
    completed trial) and ``figures/optuna_<study>_importances.png`` (parameter importances; needs two
    completed trials and a parameter that varies among them). Skipped figures are announced.

    Every worker of a study rewrites these files at its end; each is replaced atomically, so readers
    never see half a file.
    """
    import optuna  # heavy: only the tuner's figures need optuna, not the report
    from optuna.trial import TrialState  # as optuna above
    from optuna.visualization import matplotlib as ovm  # as optuna above

    out_dir = Path(out_dir)
    stem = f"optuna_{study.study_name}"
    written = []
    table = out_dir / "tables" / f"{stem}.csv"
    with replacing(table) as tmp:
        study.trials_dataframe().to_csv(tmp, index=False)
    written.append(table)

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    common = set.intersection(*(set(t.params) for t in complete)) if complete else set()
    varying = [p for p in sorted(common) if len({t.params[p] for t in complete}) > 1]
    plots = {"history": (ovm.plot_optimization_history, len(complete) >= 1,
                         "no completed trial"),
             "importances": (ovm.plot_param_importances, len(complete) >= 2 and bool(varying),
                             f"{len(complete)} completed trial(s), varying parameters {varying}; needs >= 2 "
                             f"completed trials with at least one varying parameter")}
    settings = study.user_attrs.get("settings", {})
    what = "validation PSNR, dB"
    if settings:
        what = (f"{'synthetic' if settings['data'] is None else 'real'} data, {settings['recipe']['name']}, "
                f"{settings['recipe']['total_iters']} iterations; {settings['protocol']} PSNR, dB")
    for name, (plot, ok, why) in plots.items():
        if not ok:
            print(f"[hinet.tune] {stem}_{name}.png skipped: {why}")
            continue
        with warnings.catch_warnings():  # optuna's matplotlib backend is marked experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            ax = plot(study)
        fig = ax.figure
        fig.suptitle(f"Optuna study {study.study_name}\n(proxy scale; {what})", fontsize=9)
        fig.tight_layout()
        written.append(save(fig, out_dir / "figures" / f"{stem}_{name}.png", dpi=120))
    return written


VERDICT_COLOURS = {"costs": "#c0392b", "gains": "#2471a3", "equivalent": "#229954", "inconclusive": "#7f8c8d"}


def _verdict_kind(text: str) -> str:
    return next((k for k in VERDICT_COLOURS if text.startswith(k)), "inconclusive")


def forest_figure(final: pd.DataFrame, title: str, path: Path) -> Path:
    """Forest plot of the verdict table: each variant's paired difference from the reference with its 95%
    interval, the ±delta equivalence band shaded, points coloured by the kind of verdict (the words are in
    the verdict table); one panel per (set, protocol, metric). The variant names are the only labels, so the
    plot area takes most of the width."""
    panels = list(final.groupby(["set", "protocol", "metric"], sort=True))
    height = sum(0.32 * len(b) + 1.1 for _, b in panels)
    fig, axes = plt.subplots(len(panels), 1, figsize=(7.0, height), squeeze=False)
    for ax, ((name, protocol, metric), block) in zip(axes[:, 0], panels):
        block = block.reset_index(drop=True)
        delta = float(block["delta"].iloc[0])
        ax.axvspan(-delta, delta, color="#d5f5e3", zorder=0, label=f"±{delta:g} equivalence margin")
        ax.axvline(0, color="black", lw=0.8)
        y = np.arange(len(block))[::-1]
        for yi, (_, r) in zip(y, block.iterrows()):
            colour = VERDICT_COLOURS[_verdict_kind(str(r["verdict"]))]
            ax.errorbar(r["difference"], yi, xerr=[[r["difference"] - r["ci_low"]], [r["ci_high"] - r["difference"]]],
                        fmt="o", color=colour, capsize=3)
        ax.set_yticks(y)
        ax.set_yticklabels(block["variant"], fontsize=8)
        ax.set_ylim(-0.7, len(block) - 0.3)
        unit = " (dB)" if metric == "psnr" else ""
        ax.set_xlabel(f"{metric.upper()} difference from {block['reference'].iloc[0]}{unit}, 95% interval", fontsize=8)
        step = block["step"].iloc[0]
        ax.set_title(f"{name} | {protocol} | {metric}" + ("" if pd.isna(step) else f" | step {int(step)}"),
                     fontsize=9)
    handles = [plt.Line2D([], [], marker="o", ls="", color=c, label=k) for k, c in VERDICT_COLOURS.items()]
    axes[0, 0].legend(handles=handles, fontsize=7, loc="best", framealpha=0.8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save(fig, path)


def difference_curves_figure(per_step: pd.DataFrame, title: str, path: Path) -> Path:
    """Paired difference from the reference at every validation step (95% interval band, ±delta shaded),
    with a marker at each step where the difference is significant (Holm within the step)."""
    panels = list(per_step.groupby(["set", "protocol", "metric"], sort=True))
    ncols = min(2, len(panels))
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.2 * ncols, 3.6 * nrows), squeeze=False)
    palette = dict(zip(sorted(per_step["variant"].unique()), sns.color_palette(n_colors=per_step["variant"].nunique())))
    for ax, ((name, protocol, metric), block) in zip(axes.flat, panels):
        delta = float(block["delta"].iloc[0])
        ax.axhspan(-delta, delta, color="#d5f5e3", zorder=0)
        ax.axhline(0, color="black", lw=0.8)
        for variant, v in block.groupby("variant"):
            v = v.sort_values("step")
            colour = palette[variant]
            ax.plot(v["step"], v["difference"], color=colour, label=variant)
            ax.fill_between(v["step"].astype(float), v["ci_low"], v["ci_high"], color=colour, alpha=0.18)
            sig = v[v["significant"].astype(bool)]
            ax.scatter(sig["step"], sig["difference"], color=colour, marker="*", s=70, zorder=3)
        ax.set(xlabel="step", ylabel=f"{metric} difference" + (" (dB)" if metric == "psnr" else ""),
               title=f"{name} | {protocol} | {metric}")
        ax.title.set_fontsize(9)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=7, title="* significant (Holm)", title_fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save(fig, path)


def claims_figure(claims: pd.DataFrame, published: pd.DataFrame, path: Path, size: int = 256) -> Path:
    """PSNR against GMACs per ``size``-squared input of the denoising methods of the claims table
    (``benchmarks.claims``): each method's published SIDD PSNR at its published MACs (hollow) and at the MACs
    measured here (filled), joined by a line; a method without published MACs has only the filled point."""
    macs = claims[(claims["quantity"] == "gmacs") & (claims["task"] == "denoise")]
    psnr = published[(published["dataset"] == "SIDD") & (published["metric"] == "psnr")]
    psnr = dict(zip(psnr["method"], psnr["value"]))
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for i, row in enumerate(macs.itertuples()):
        if row.method not in psnr:
            continue
        y, color = psnr[row.method], f"C{i}"
        ax.scatter([row.measured], [y], color=color, zorder=3, label=f"{row.method}: measured MACs")
        if pd.notna(row.published):
            ax.scatter([row.published], [y], facecolors="none", edgecolors=color, zorder=3,
                       label=f"{row.method}: published MACs")
            ax.plot([row.published, row.measured], [y, y], color=color, lw=0.8, alpha=0.6)
        ax.annotate(row.method, (row.measured, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set(xscale="log", xlabel=f"GMACs per input (log); published at 256x256, measured at {size}x{size}",
           ylabel="published SIDD PSNR (dB)", title="SIDD: PSNR against MACs, published and measured")
    ax.legend(fontsize=7, loc="lower right")
    return save(fig, path)
