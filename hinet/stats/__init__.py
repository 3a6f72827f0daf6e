"""Statistics for ablation comparisons: effects with intervals, Holm, equivalence, power, sequential seeds, verdicts.

An ablation should end in a verdict per variant ("costs 0.25 dB [0.14, 0.36] on new scenes (Holm p = 0.003)",
"equivalent within ±0.1 dB on this test set", "inconclusive on new scenes: more scenes needed"), not in a table
of p-values. This package computes them.

Input: a tidy per-image DataFrame with columns ``run_id``, ``variant``, ``seed`` (int), ``image`` (str id),
``scene`` (str id of the group of test images the image belongs to: a SIDD source photograph, a GoPro video)
and ``value`` (float, e.g. PSNR in dB), already filtered by the caller to one dataset, protocol, metric and
training step (:func:`verdicts_by_step` takes a ``step`` column too). Without a ``scene`` column every image is
its own scene; without an ``image`` column each (variant, seed) has one value (set means).

Design (common random numbers): every variant is trained with the same seeds (same data order, crops and
per-module initial weights) and scored on the same test images, so the differences
``d[s, i] = variant[s, i] - reference[s, i]`` are paired by (seed, image). Images are nested in scenes:

    d[s, i] = mu + a_s + c_j + b_i + (ac)_sj + e_si        (j = scene of image i)

with independent seed effects a_s (training randomness), scene effects c_j, image-within-scene effects b_i, a
seed-by-scene interaction and a seed-by-image residual.

**Two estimands** (:data:`ESTIMANDS`), named in every verdict:

* ``test_set``: the test images are fixed, as in a published benchmark number. The target is the mean
  difference over these images, in expectation over training randomness; only seeds are random. The per-seed
  means over all images are independent draws around it, so the interval is the paired t interval over seeds
  (S - 1 df). More seeds always narrow it.
* ``population``: new scenes, and new images within scenes, drawn like these ones; seeds, scenes and images are
  random. The target is mu. The per-seed scene means (every scene weighs the same) form a crossed seeds x scenes
  table without replication, whose grand mean has variance ``var_seed / S + var_scene / J + var_resid / (S J)``
  (``var_scene`` holds the image-within-scene variance divided by the images per scene). Its components come from
  the ANOVA mean squares (E MS_seed = resid + J var_seed, E MS_scene = resid + S var_scene, E MS_resid = resid),
  each floored at zero; the interval is a t interval with Satterthwaite degrees of freedom for that combination
  of mean squares. In a balanced design this equals the nested ANOVA of the whole table (Var(mean) S J I =
  MS_seed + MS_scene - MS_seed x scene). Seeds cannot remove the scene term: when it alone keeps the interval
  wider than the margin the verdict says "more scenes needed". With one image per scene this is the crossed
  seeds x images model.

One job per module: :mod:`.estimands` (the estimands, their tables, margins), :mod:`.anova` (variance
components, :func:`variance_split`), :mod:`.paired` (paired designs, effects, TOST, Holm), :mod:`.power` (MDE,
seeds needed), :mod:`.verdicts` (verdict words and tables), :mod:`.sequential` (group-sequential seeds).

Written by hand (numpy/scipy underneath): the crossed and nested ANOVA variance components and their
Satterthwaite df, the power solve, the group-sequential boundaries and decision rule, the verdicts, and Holm's
adjustment (statsmodels' calls ``gc.collect()`` on every call). statsmodels is the reference in the tests
(``multipletests``, ``ttost_paired``, ``TTestPower``, ``MixedLM``).
"""

from __future__ import annotations

from .anova import VarianceComponents, _estimates, crossed_estimates, seed_level_estimates, variance_split
from .estimands import (
    DEFAULT_MARGINS,
    ESTIMAND_WORDS,
    ESTIMANDS,
    check_estimand,
    default_margin,
    estimand_table,
    scene_means,
)
from .paired import (
    REQUIRED_COLUMNS,
    Equivalence,
    PairedDesign,
    PairedEffect,
    effect_of_design,
    equivalence_test,
    holm,
    paired_design,
    paired_effect,
)
from .power import minimum_detectable_effect, power_two_sided, seeds_needed
from .sequential import (
    SEQUENTIAL_COLUMNS,
    SequentialPlan,
    _t_bound,
    look_statistics,
    obrien_fleming_spending,
    sequential_decide,
    sequential_decisions,
    spending_boundaries,
)
from .verdicts import VERDICT_COLUMNS, verdict_table, verdict_text, verdicts_by_step

__all__ = [
    "DEFAULT_MARGINS", "ESTIMANDS", "ESTIMAND_WORDS", "Equivalence", "PairedDesign", "PairedEffect",
    "REQUIRED_COLUMNS", "SEQUENTIAL_COLUMNS", "SequentialPlan", "VERDICT_COLUMNS", "VarianceComponents",
    "_estimates", "_t_bound", "check_estimand", "crossed_estimates", "default_margin", "effect_of_design",
    "equivalence_test", "estimand_table", "holm", "look_statistics", "minimum_detectable_effect",
    "obrien_fleming_spending", "paired_design", "paired_effect", "power_two_sided", "scene_means",
    "seed_level_estimates", "seeds_needed", "sequential_decide", "sequential_decisions", "spending_boundaries",
    "variance_split", "verdict_table", "verdict_text", "verdicts_by_step",
]
