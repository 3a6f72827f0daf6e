"""Rebuild every table and figure under ``results/`` from the JSONL records; nothing is hand-edited.

Run ``python -m hinet.report [--records DIR] [--out DIR] [--published DIR] [--images DIR] [--list-outputs]``.
Records are read with :func:`hinet.records.read_records` (schema and units: ``hinet/records.py``).

Comparability rule: only records with ``recipe == "eval"`` and ``synthetic == False`` (real checkpoints
evaluated on real data) are ever put beside a published number. Everything else lands in tables and
figures whose file name, title and first column say ``synthetic`` and/or ``(not comparable to the paper)``.
"Kind" is the pair (synthetic, recipe), e.g. "synthetic, proxy scale (not comparable to the paper)";
``<stem>`` is ``<family>_<dataset>`` for real-data paper/eval runs and ``<family>_<dataset>_<kind slug>``
(e.g. ``components_SIDD_synthetic_proxy``) for everything else (:mod:`hinet.report.labels`).

Families: ablation families are every family except :data:`hinet.tasks.NON_ABLATION_FAMILIES` (``checkpoint_eval``:
evaluations of finished checkpoints by the benchmark commands; ``speed``: the speed suite; ``optuna``: Optuna
studies, whose trials table and figures ``hinet.tune`` writes). Model size
comes from ``params``/``macs`` records at step 0 with protocol ``model`` (MACs per 1x3x256x256 forward;
the older name ``256x256`` is read too).

:data:`OUTPUTS` names every file written under ``--out`` (``python -m hinet.report --list-outputs`` prints
it); every file is written atomically (:mod:`hinet.atomic`). The package's modules:
:mod:`~hinet.report.statistics` (computations), :mod:`~hinet.report.tables` (table builders and writer),
:mod:`~hinet.report.figures` (every figure), :mod:`~hinet.report.labels` (kinds and file stems); the
published numbers come from :mod:`hinet.published`. Records that feed no output are listed in a warning
(never dropped silently).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from ..atomic import check_output
from ..errors import ArgumentParser, run_command
from ..image_records import image_store, read_image_metrics
from ..published import PUBLISHED_COLUMNS, PUBLISHED_DIR, load_published, paper_points
from ..records import read_records
from ..stats import ESTIMANDS
from ..tasks import EVALUATION_FAMILIES, NON_ABLATION_FAMILIES, SPEED, STUDY, slug
from .consistency import check_per_image
from .figures import (
    DPI,
    ablation_figure,
    comparison_grid,
    curves_figure,
    difference_curves_figure,
    forest_figure,
    macs_figure,
    speed_figure,
    tune_figures,
)
from .labels import NOT_COMPARABLE, is_paper_kind, kind_label, stem
from .statistics import (
    EVAL_SPLITS,
    QUALITY,
    RUN_KEY,
    SIZE_PROTOCOLS,
    final_quality,
    run_table,
    size_mask,
    t_interval,
    variant_stats,
)
from .tables import (
    NOT_COMPARABLE_CAPTION,
    NOT_COMPARABLE_TITLE,
    PUBLISHED_COMPARISON_CAPTION,
    PUBLISHED_COMPARISON_TITLE,
    SPEED_CAPTION,
    ablation_caption,
    ablation_table,
    not_comparable_table,
    published_comparison,
    speed_table,
    write_table,
)
from .verdicts import VERDICT_SHOWN, family_verdicts, reference_of, verdict_caption

__all__ = [
    "DPI", "EVAL_SPLITS", "NON_ABLATION_FAMILIES", "NOT_COMPARABLE", "OUTPUTS", "Output",
    "PUBLISHED_COLUMNS", "PUBLISHED_DIR", "QUALITY", "RUN_KEY", "SIZE_PROTOCOLS", "ablation_figure",
    "build_report", "comparison_grid", "curves_figure", "final_quality", "is_paper_kind", "kind_label",
    "load_published", "macs_figure", "main", "output_for", "published_comparison", "run_table", "speed_report",
    "t_interval", "tune_figures", "variant_stats", "write_table",
]



@dataclass(frozen=True)
class Output:
    """One kind of output file: ``pattern`` relative to ``--out`` (``<name>`` = a placeholder,
    ``{a,b}`` = one file per choice), what it shows, when it is written and by which command."""

    pattern: str
    what: str
    when: str
    writer: str = "hinet.report"

    def regex(self) -> re.Pattern[str]:
        parts = re.split(r"(<[^>]+>|\{[^}]+\})", self.pattern)
        out = []
        for part in parts:
            if part.startswith("<"):
                out.append(r"[^/]+")
            elif part.startswith("{"):
                out.append("(?:" + "|".join(map(re.escape, part[1:-1].split(","))) + ")")
            else:
                out.append(re.escape(part))
        return re.compile("".join(out))


#: Every file written under ``--out``, most specific pattern first (:func:`output_for` takes the first match).
OUTPUTS: tuple[Output, ...] = (
    Output("tables/published_comparison.{md,csv,tex}",
           "real-data checkpoint evaluations (family checkpoint_eval, recipe eval, synthetic False) next to the "
           "published value for the same dataset/method(=variant)/metric, the difference (ours - published) "
           "and the source", "always (no rows until such records exist)"),
    Output("tables/eval_not_comparable.{md,csv,tex}",
           f"psnr/ssim of checkpoint_eval/speed records that are synthetic or not recipe eval ({NOT_COMPARABLE})",
           "when such records exist"),
    Output("tables/speed.{md,csv,tex}",
           "one row per speed comparison and invocation: what, baseline and fast path (labels), their medians, "
           "ratio with its 95% bootstrap interval, target, whether it is met, device and capability",
           "when family speed records exist"),
    Output("tables/paper_claims.{md,csv}",
           "one row per published claim against a peer (HINet vs MPRNet: MACs fraction, speed-up, PSNR gain; NAFNet vs "
           "HINet MACs) with the published value, the value measured on this machine (MACs by ptflops at 256x256, "
           "interleaved speed-ups with 95% intervals, PSNR gains from checkpoint_eval records or the commands that "
           "make them), each network's parameters and GMACs, the device, threads and git commit",
           "by python -m benchmarks.claims", writer="benchmarks.claims"),
    Output("figures/paper_claims_psnr_vs_macs.png",
           "published SIDD PSNR against GMACs of HINet, HINet 0.5x, MPRNet and NAFNet: published MACs (hollow) and "
           "measured MACs (filled)", "by python -m benchmarks.claims", writer="benchmarks.claims"),
    Output("tables/optuna_<study>.csv", "one row per trial of an Optuna study (parameters, state, value)",
           "by hinet.tune at the end of every worker, or --report-only", writer="hinet.tune"),
    Output("tables/verdicts_<stem>_{test_set,population}.{md,csv,tex}",
           "the verdict of every variant against the family's declared reference (hinet.report.verdicts), for "
           "one estimand (test_set: these test images; population: new scenes): per set, protocol and metric at "
           "the last common validation step, the mean paired difference with its 95% interval, Holm p, TOST "
           "against the margin, minimum detectable effect, seeds needed, the seed/scene/image variance split and "
           "the verdict in words", "per (family, dataset, kind) with per-image results"),
    Output("figures/forest_<stem>_{test_set,population}.png", "forest plot of the verdicts: differences with "
           "intervals, the ±delta margin shaded, verdict colours", "with every verdict table"),
    Output("figures/differences_<stem>_{test_set,population}.png", "paired difference from the reference at "
           "every validation step (95% band, ±delta shaded), * where significant (Holm within the step)",
           "with every verdict table whose runs validated at several steps"),
    Output("tables/<stem>.{md,csv,tex}",
           "one ablation family on one dataset and kind: per (split, protocol, variant) the number of seeds, "
           "mean PSNR with the 95% t-interval half-width over seeds, mean SSIM, params (M) and GMACs, and the "
           "verdict's PSNR difference from the family's reference with its 95% interval and Holm p per estimand",
           "per (family, dataset, kind) with final val/test psnr/ssim"),
    Output("tables/provenance.{md,csv,tex}",
           "which code made the records: per family, recipe kind and git commit, the number of runs and records, "
           "whether the tree was dirty, the torch version and the time span of the writes", "always"),
    Output("figures/ablation_<stem>.png", "final PSNR and SSIM per variant with 95% t-intervals (point plot)",
           "with every ablation table"),
    Output("figures/psnr_vs_macs_<stem>.png",
           "mean PSNR (95% CI) against GMACs per variant; the published points (HINet README tables, conv-only "
           "MACs per 256x256 from complexity.csv) share the axes only for real-data paper/eval runs, otherwise "
           "they get their own, separately labelled panel", "when the runs have macs records"),
    Output("figures/curves_<stem>.png",
           "every train metric (loss, lr, images_per_s, ...) and validation metric (psnr, ssim) against step, "
           "mean over seeds with a 95% band, hue = variant", "per (family, kind) with train/val records at steps"),
    Output("figures/speed.png", "horizontal bars of the speed table's ratios with their 95% bootstrap "
           "intervals and targets, one panel per device", "when family speed records exist"),
    Output("figures/comparison.png", "visual grid: rows = images; columns = input, each variant, ground truth",
           "when <images>/ holds input/ and target/"),
    Output("figures/comparison_<name>.png", "the same grid for <images>/<name>/",
           "per <images>/<name>/ holding input/ and target/"),
    Output("figures/optuna_<study>_{history,importances}.png",
           "objective per trial with the best so far; parameter importances", "by hinet.tune (history: >= 1 "
           "completed trial; importances: >= 2 with a varying parameter)", writer="hinet.tune"),
)


def output_for(path: str | Path, out_dir: str | Path = "results") -> Output | None:
    """The :data:`OUTPUTS` entry that names ``path`` (a file under ``out_dir``), or None."""
    rel = Path(path).relative_to(out_dir).as_posix()
    return next((o for o in OUTPUTS if o.regex().fullmatch(rel)), None)


def speed_report(records: pd.DataFrame, tables: Path, figures: Path) -> list[Path]:
    """``<tables>/speed.{md,csv,tex}`` and ``<figures>/speed.png`` from family 'speed' records."""
    return [*write_table(speed_table(records), tables, "speed", "Speed", SPEED_CAPTION),
            speed_figure(records, figures / "speed.png")]


def build_report(records_dir: str | Path = "results/records", out_dir: str | Path = "results",
                 published_dir: str | Path = "results/published", images_dir: str | Path | None = None
                 ) -> list[Path]:
    """Write every table and figure of :data:`OUTPUTS` (writer hinet.report); returns the paths (sorted).

    ``images_dir`` defaults to ``<out_dir>/images`` when that folder exists.
    """
    records = read_records(records_dir)
    published = load_published(published_dir=published_dir)
    tables, figures = Path(out_dir) / "tables", Path(out_dir) / "figures"
    used = pd.Series(False, index=records.index)
    written: list[Path] = []

    final = final_quality(records)
    runs = run_table(final, records)
    per_image = _per_image(records_dir, records)
    ablation = runs[~runs["family"].isin(NON_ABLATION_FAMILIES)]
    # every val/test psnr/ssim is considered; earlier steps are superseded by the final one by design
    used |= records["metric"].isin(QUALITY) & records["split"].isin(EVAL_SPLITS)
    used |= size_mask(records)
    used |= records["family"].eq(STUDY)  # Optuna studies: hinet.tune writes their trials table and figures
    for (family, dataset, synthetic, recipe), fam in ablation.groupby(["family", "dataset", "synthetic", "recipe"]):
        name = stem(family, dataset, synthetic, recipe)
        title = f"Ablation '{family}' on {dataset}: {kind_label(synthetic, recipe)}"
        verdicts = None
        if per_image is not None:
            machines = records[records["run_id"].isin(set(fam["run_id"]))]
            machines = (f"Runs on {'; '.join(sorted(set(machines['device'])))} with torch "
                        f"{', '.join(sorted(set(machines['torch_version'])))}.")
            mine = per_image[per_image["run_id"].isin(set(fam["run_id"])) & (per_image["dataset"] == dataset)]
            verdicts, paths = _verdicts(mine, reference_of(fam), name, title, recipe, tables, figures, machines)
            written += paths
        table = ablation_table(fam, synthetic, recipe, verdicts)
        written += write_table(table, tables, name, title, ablation_caption(synthetic, recipe))
        written.append(ablation_figure(fam, title, figures / f"ablation_{name}.png"))
        if table["gmacs"].notna().any():
            rows = table.assign(eval=table["split"] + " / " + table["protocol"])
            written.append(macs_figure(rows, title, figures / f"psnr_vs_macs_{name}.png",
                                       paper_points(published, dataset), same_axes=is_paper_kind(synthetic, recipe)))

    curve_mask = (~records["family"].isin(NON_ABLATION_FAMILIES) & records["split"].isin(["train", "val"])
                  & records["step"].notna().astype(bool) & ~size_mask(records))
    used |= curve_mask
    for (family, synthetic, recipe), c in records[curve_mask].groupby(["family", "synthetic", "recipe"]):
        title = f"Training curves '{family}': {kind_label(synthetic, recipe)}"
        written.append(curves_figure(c, title, figures / f"curves_{stem(family, None, synthetic, recipe)}.png"))

    evals = final[final["family"].isin(EVALUATION_FAMILIES)]
    comparable = final[~final["synthetic"] & (final["recipe"] == "eval")]
    written += write_table(published_comparison(comparable, published), tables, "published_comparison",
                           PUBLISHED_COMPARISON_TITLE, PUBLISHED_COMPARISON_CAPTION)
    other = evals[evals["synthetic"] | (evals["recipe"] != "eval")]
    if len(other):
        written += write_table(not_comparable_table(other), tables, "eval_not_comparable", NOT_COMPARABLE_TITLE,
                               NOT_COMPARABLE_CAPTION)

    written += write_table(provenance(records), tables, "provenance", "Provenance of the records",
                           "Per family, recipe kind and git commit of the code that wrote them (git_dirty: the "
                           "checkout had uncommitted changes outside results/ and runs/).")

    speed = records["family"] == SPEED
    used |= speed
    if speed.any():
        written += speed_report(records[speed], tables, figures)

    images = Path(images_dir) if images_dir is not None else Path(out_dir) / "images"
    if images_dir is not None and not images.is_dir():
        raise FileNotFoundError(f"--images {images}: no such folder of comparison images")
    if images.is_dir():
        if (images / "input").is_dir():
            written.append(comparison_grid(images, figures / "comparison.png"))
        else:
            for sub in sorted(p for p in images.iterdir() if (p / "input").is_dir()):
                written.append(comparison_grid(sub, figures / f"comparison_{slug(sub.name)}.png", sub.name))

    if not used.all():
        left = records[~used].groupby(["family", "split", "metric"]).size()
        warnings.warn(f"build_report: {int((~used).sum())} records feed no table or figure: {left.to_dict()}",
                      stacklevel=2)
    return sorted(written)


def provenance(records: pd.DataFrame) -> pd.DataFrame:
    """Per (family, recipe, git commit): runs, records, dirty, torch version(s), first and last write."""
    g = records.groupby(["family", "recipe", "git_commit"], sort=True).agg(
        runs=("run_id", "nunique"), records=("value", "size"), dirty=("git_dirty", "any"),
        torch=("torch_version", lambda s: ", ".join(sorted(set(s)))), first=("time", "min"),
        last=("time", "max")).reset_index()
    for col in ("first", "last"):
        g[col] = g[col].dt.strftime("%Y-%m-%d %H:%M UTC")
    return g


def _per_image(records_dir: str | Path, records: pd.DataFrame) -> pd.DataFrame | None:
    """Every per-image result that belongs with the records (None when there are none), checked against
    the records first (:func:`hinet.report.consistency.check_per_image`)."""
    root = Path(records_dir)
    root = root if root.is_dir() else image_store(root)
    check_per_image(records, root, records_dir)
    if not root.is_dir() or not any(root.rglob("*.parquet")):
        return None
    return read_image_metrics(root)


def _verdicts(per_image: pd.DataFrame, reference: str | None, name: str, title: str, recipe: str, tables: Path,
              figures: Path, machines: str) -> tuple[pd.DataFrame | None, list[Path]]:
    """The verdict tables, forest plots and differences-over-training figures of one ablation block, one of
    each per estimand; returns (the final verdicts of both estimands, the paths). No declared reference in
    the records (written before references were recorded): no verdicts, with a warning."""
    if per_image.empty or per_image["variant"].nunique() < 2:
        return None, []
    if reference is None:
        warnings.warn(f"{name}: the records name no reference variant (written before references were recorded); "
                      "no verdicts: rerun the grid to record it", stacklevel=2)
        return None, []
    final, per_step = family_verdicts(per_image, recipe, reference)
    if final.empty:
        return None, []
    out = []
    for estimand in ESTIMANDS:
        block = final[final["estimand"] == estimand]
        label = f"Verdicts ({estimand}): {title}"
        out += write_table(block[VERDICT_SHOWN], tables, f"verdicts_{name}_{estimand}", label,
                           f"{verdict_caption(recipe, block, estimand)} {machines}")
        out.append(forest_figure(block, label, figures / f"forest_{name}_{estimand}.png"))
        steps = per_step[per_step["estimand"] == estimand] if len(per_step) else per_step
        if len(steps):
            out.append(difference_curves_figure(steps, f"Differences over training ({estimand}): {title}",
                                                figures / f"differences_{name}_{estimand}.png"))
    return final, out


def format_outputs() -> str:
    """:data:`OUTPUTS` as a Markdown table (file, written by, when, what)."""
    return tabulate([(f"`{o.pattern}`", o.writer, o.when, o.what) for o in OUTPUTS],
                    headers=["file", "written by", "when", "what"], tablefmt="github")


def main(argv: list[str] | None = None) -> None:
    """The command line (``python -m hinet.report``); prints the written paths. Errors propagate (see
    ``__main__`` for the one-line error wrapper)."""
    parser = ArgumentParser(prog="python -m hinet.report",
                                     description="Rebuild results/tables and results/figures from records.")
    parser.add_argument("--records", default="results/records", help="JSONL file or folder (searched recursively)")
    parser.add_argument("--out", default="results", help="writes <out>/tables and <out>/figures")
    parser.add_argument("--published", default="results/published", help="folder of published *.csv")
    parser.add_argument("--images", default=None, help="comparison images (default <out>/images if present)")
    parser.add_argument("--list-outputs", action="store_true", help="print every output file and exit")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of user errors")
    args = parser.parse_args(argv)
    if args.list_outputs:
        print(format_outputs())
        return
    check_output(args.out, "--out", folder=True)  # before the records are read: a refused report writes nothing
    for path in build_report(args.records, args.out, args.published, args.images):
        print(path)


def command(argv: list[str] | None = None) -> int:
    """``python -m hinet.report``: :func:`main` with user errors as one line on stderr and exit code 2."""
    return run_command("python -m hinet.report", lambda: main(argv), argv)
