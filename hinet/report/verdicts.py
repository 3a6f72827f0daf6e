"""Verdicts of ablation families from per-image results: tables, forest plot, differences over training.

For each ablation family on one dataset and kind, and each validation set, protocol and metric with
per-image results (``hinet.records.read_image_metrics``), every variant is compared with the family's
reference (``full``, else the alphabetically first) by :func:`hinet.ablation_stats.verdict_table`: the mean
paired difference over seeds x images with its 95% interval (crossed seed/image variance components),
Holm across the family's comparisons, TOST against the margin, the minimum detectable effect at 80% power and
the seeds needed to detect the margin, and a verdict in words.

Margins: PSNR as :data:`hinet.ablation_stats.DEFAULT_MARGINS` (0.05 dB at paper scale, 0.1 dB at proxy
scale); SSIM :data:`SSIM_MARGINS` (our choice: 0.001 at paper scale, 0.002 at proxy scale, about the SSIM
change that accompanies the PSNR margins on these tasks).

The final-step table reports the last validation step that every run of the block reached (named in its
``step`` column); the same comparison at every validation step feeds the differences-over-training figure,
which marks the steps where a difference is significant (Holm within the step).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..ablation_stats import default_margin, verdict_table, verdicts_by_step

SSIM_MARGINS = {"paper": 0.001, "proxy": 0.002}
METRIC_UNITS = {"psnr": "dB", "ssim": ""}
VERDICT_SHOWN = ["set", "protocol", "metric", "variant", "reference", "step", "difference", "ci_low", "ci_high",
                 "p_holm", "delta", "tost_p", "equivalent", "mde", "seeds_needed", "n_seeds", "n_images", "var_seed",
                 "var_image", "verdict"]


def scale_of(recipe: str) -> str:
    """``paper`` for paper-scale training and evaluations, else ``proxy``."""
    return "paper" if recipe in ("paper", "eval") else "proxy"


def margin(metric: str, scale: str) -> float:
    return default_margin(scale) if metric == "psnr" else SSIM_MARGINS[scale]


def reference_of(variants) -> str:
    names = sorted(set(variants))
    return "full" if "full" in names else names[0]


def _blocks(per_image: pd.DataFrame):
    """(set, protocol, metric) blocks of one family's per-image rows (psnr and ssim only)."""
    q = per_image[per_image["metric"].isin(list(METRIC_UNITS)) & per_image["split"].isin(["val", "test"])]
    yield from q.groupby(["dataset", "protocol", "metric"], sort=True)


def _last_common_step(block: pd.DataFrame) -> int | None:
    steps = block.dropna(subset=["step"]).groupby("run_id")["step"].max()
    return None if steps.empty else int(steps.min())


def family_verdicts(per_image: pd.DataFrame, recipe: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(final-step verdicts, verdicts at every step) of one family/dataset/kind's per-image rows.

    The final table has :data:`VERDICT_SHOWN` columns plus the rest of ``verdict_table``'s; the per-step
    table has a ``set``/``protocol``/``metric`` and ``step`` column per row.
    """
    scale = scale_of(recipe)
    finals, steps = [], []
    for (name, protocol, metric), block in _blocks(per_image):
        ref = reference_of(block["variant"])
        if block["variant"].nunique() < 2:
            continue
        kw = dict(reference=ref, delta=margin(metric, scale), unit=METRIC_UNITS[metric])
        last = _last_common_step(block)
        at = block if last is None else block[block["step"] == last]
        frame = at[["run_id", "variant", "seed", "image", "value"]]
        table = verdict_table(frame, step=last, **kw)
        finals.append(table.assign(set=name, protocol=protocol, metric=metric))
        if last is not None and block["step"].nunique() > 1:
            every = block[["run_id", "variant", "seed", "image", "value", "step"]]
            steps.append(verdicts_by_step(every, **kw).assign(set=name, protocol=protocol, metric=metric))
    final = pd.concat(finals, ignore_index=True) if finals else pd.DataFrame(columns=VERDICT_SHOWN)
    per_step = pd.concat(steps, ignore_index=True) if steps else pd.DataFrame()
    if len(final):
        final = final[[*VERDICT_SHOWN, *[c for c in final.columns if c not in VERDICT_SHOWN]]]
    return final, per_step


def verdict_caption(recipe: str, final: pd.DataFrame) -> str:
    scale = scale_of(recipe)
    mde = final[final["metric"] == "psnr"]["mde"] if len(final) else pd.Series(dtype=float)
    worst = f" Largest minimum detectable PSNR effect: {mde.max():.3f} dB." if len(mde) and np.isfinite(
        mde.max()) else ""
    return (f"Each variant against the reference at the step named in the table: mean paired difference over "
            f"seeds x images with its 95% interval (crossed seed/image variance components, Satterthwaite df), "
            f"Holm-adjusted p across the family, TOST against the margin delta ({scale} scale: "
            f"{margin('psnr', scale):g} dB PSNR, {margin('ssim', scale):g} SSIM), minimum detectable effect (mde) at "
            f"80% power and alpha 0.05, seeds needed to detect delta with these images, variance components of the "
            f"paired differences (var_seed: training randomness; var_image: the finite test set) and the verdict."
            + worst)
