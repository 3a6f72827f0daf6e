"""Verdicts of ablation families from per-image results: tables, forest plot, differences over training.

For each ablation family on one dataset and kind, and each validation set, protocol and metric with
per-image results (``hinet.image_records.read_image_metrics``), every variant is compared with the family's
declared reference (``REFERENCE`` in ``ablations/<family>.py``, carried by the run spec into every record)
by :func:`hinet.stats.verdict_table`, once per estimand (:data:`hinet.stats.ESTIMANDS`:
``test_set``, these test images; ``population``, new scenes): the mean paired difference with its 95%
interval, Holm across the family's comparisons, TOST against the margin, the minimum detectable effect at 80%
power, the seeds needed to detect the margin, the nested variance split and a verdict in words.

Margins: PSNR as :data:`hinet.stats.DEFAULT_MARGINS` (0.05 dB at paper scale, 0.1 dB at proxy
scale); SSIM :data:`SSIM_MARGINS` (our choice: 0.001 at paper scale, 0.002 at proxy scale, about the SSIM
change that accompanies the PSNR margins on these tasks).

A protocol whose numbers an artefact dominates gets no verdicts (:func:`verdict_protocol`): the official SIDD
PSNR (``peak="auto"``) scores an output whose maximum exceeds 1.0 with peak 255, adding about 48 dB to such
an image, so its paired differences measure which images crossed 1.0, not restoration quality. Its means stay
in the ablation table, labelled.

The final-step table reports the last validation step that every run of the block reached (named in its
``step`` column); the same comparison at every validation step feeds the differences-over-training figure,
which marks the steps where a difference is significant (Holm within the step).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..evaluate import parse_protocol
from ..stats import ESTIMAND_WORDS, ESTIMANDS, default_margin, verdict_table, verdicts_by_step

SSIM_MARGINS = {"paper": 0.001, "proxy": 0.002}
METRIC_UNITS = {"psnr": "dB", "ssim": ""}
VERDICT_SHOWN = ["set", "protocol", "metric", "variant", "reference", "estimand", "step", "difference", "ci_low",
                 "ci_high", "p_holm", "delta", "tost_p", "equivalent", "mde", "seeds_needed", "n_seeds", "n_scenes",
                 "n_images", "var_seed", "var_scene", "var_image", "verdict"]
NO_VERDICT = ("no verdicts: the official SIDD peak heuristic scores an output above 1.0 with peak 255 (+48 dB), "
              "which dominates the paired differences")


def scale_of(recipe: str) -> str:
    """``paper`` for paper-scale training and evaluations, else ``proxy``."""
    return "paper" if recipe in ("paper", "eval") else "proxy"


def margin(metric: str, scale: str) -> float:
    return default_margin(scale) if metric == "psnr" else SSIM_MARGINS[scale]


def verdict_protocol(protocol: str) -> bool:
    """Whether a protocol's numbers can carry verdicts (not those of the official SIDD peak heuristic)."""
    try:
        return parse_protocol(protocol).peak != "auto"
    except ValueError:  # a name this code does not know (older records): its numbers are plain
        return True


def reference_of(block: pd.DataFrame) -> str | None:
    """The declared reference of a block's runs (its ``reference`` column); None when the records carry none
    (written before references were recorded); several is an error naming them."""
    refs = sorted(set(block["reference"].dropna())) if "reference" in block else []
    if len(refs) > 1:
        raise ValueError(f"verdicts: the runs of one family block name several references {refs}: "
                         f"{sorted(block['run_id'].unique())[:4]}...")
    return refs[0] if refs else None


def _blocks(per_image: pd.DataFrame):
    """(set, protocol, metric) blocks of one family's per-image rows (psnr and ssim only)."""
    q = per_image[per_image["metric"].isin(list(METRIC_UNITS)) & per_image["split"].isin(["val", "test"])]
    yield from q.groupby(["dataset", "protocol", "metric"], sort=True)


def _last_common_step(block: pd.DataFrame) -> int | None:
    steps = block.dropna(subset=["step"]).groupby("run_id")["step"].max()
    return None if steps.empty else int(steps.min())


def family_verdicts(per_image: pd.DataFrame, recipe: str, reference: str
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(final-step verdicts, verdicts at every step) of one family/dataset/kind's per-image rows against the
    family's ``reference``, one block of rows per estimand (``estimand`` column).

    The final table has :data:`VERDICT_SHOWN` columns plus the rest of ``verdict_table``'s; the per-step
    table has a ``set``/``protocol``/``metric`` and ``step`` column per row.
    """
    scale = scale_of(recipe)
    finals, steps = [], []
    columns = ["run_id", "variant", "seed", "image", "scene", "value"]  # hinet.image_records.IMAGE_COLUMNS
    for (name, protocol, metric), block in _blocks(per_image):
        if block["variant"].nunique() < 2 or not verdict_protocol(protocol) or reference not in set(block["variant"]):
            continue
        last = _last_common_step(block)
        at = block if last is None else block[block["step"] == last]
        for estimand in ESTIMANDS:
            kw = dict(reference=reference, estimand=estimand, delta=margin(metric, scale), unit=METRIC_UNITS[metric])
            table = verdict_table(at[columns], step=last, **kw)
            finals.append(table.assign(set=name, protocol=protocol, metric=metric))
            if last is not None and block["step"].nunique() > 1:
                every = block[[*columns, "step"]]
                steps.append(verdicts_by_step(every, **kw).assign(set=name, protocol=protocol, metric=metric))
    final = pd.concat(finals, ignore_index=True) if finals else pd.DataFrame(columns=VERDICT_SHOWN)
    per_step = pd.concat(steps, ignore_index=True) if steps else pd.DataFrame()
    if len(final):
        final = final[[*VERDICT_SHOWN, *[c for c in final.columns if c not in VERDICT_SHOWN]]]
    return final, per_step


def verdict_caption(recipe: str, final: pd.DataFrame, estimand: str) -> str:
    scale = scale_of(recipe)
    mde = final[final["metric"] == "psnr"]["mde"] if len(final) else pd.Series(dtype=float)
    worst = f" Largest minimum detectable PSNR effect: {mde.max():.3f} dB." if len(mde) and np.isfinite(
        mde.max()) else ""
    what = ("estimand test_set: the test images are fixed, only training randomness counts (a paired t interval "
            "over the seeds' mean differences)" if estimand == "test_set" else
            "estimand population: new scenes and new images within scenes, drawn like these ones (seeds x scenes "
            "crossed ANOVA of the per-scene mean differences, Satterthwaite df)")
    return (f"Each variant against the family's reference at the step named in the table, {what}; verdicts read "
            f"'{ESTIMAND_WORDS[estimand]}'. Mean paired difference with its 95% interval, Holm-adjusted p across "
            f"the family, TOST against the margin delta ({scale} scale: {margin('psnr', scale):g} dB PSNR, "
            f"{margin('ssim', scale):g} SSIM), minimum detectable effect (mde) at 80% power and alpha 0.05, seeds "
            f"needed to detect delta with these scenes, and the nested variance split of the paired differences "
            f"(var_seed: training randomness; var_scene: between scenes; var_image: between images of a scene). "
            f"Protocols with the official SIDD peak heuristic get no verdicts ({NO_VERDICT.split(': ', 1)[1]})."
            + worst + " Another machine draws other training noise: what carries over is the interval, not the "
            "point estimate.")
