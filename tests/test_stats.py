"""Tests of hinet.stats: coverage, Holm, TOST, power, group-sequential error rates and verdict wording.

Simulations are vectorised over replications with fixed numpy seeds, so every test is deterministic. Tolerances
are three binomial standard errors of the simulated rate, sqrt(p (1 - p) / R), unless stated otherwise.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower
from statsmodels.stats.weightstats import ttost_paired

from hinet import stats as A


def _binomial_tol(p: float, reps: int) -> float:
    return 3 * math.sqrt(p * (1 - p) / reps)


def _crossed(rng, reps, s, i, mu, sd_seed, sd_image, sd_resid):
    """(reps, S, I) differences mu + a_s + b_i + e_si."""
    return (mu + sd_seed * rng.standard_normal((reps, s, 1)) + sd_image * rng.standard_normal((reps, 1, i))
            + sd_resid * rng.standard_normal((reps, s, i)))


def _seed_effect(d: np.ndarray) -> A.PairedEffect:
    """The test_set effect of per-seed differences (S,) (one image)."""
    d = np.asarray(d, dtype=float)[:, None]
    design = A.PairedDesign(d, tuple(range(len(d))), ("img",), ("img",))
    return A.effect_of_design(design, "test_set")


def _frame(values: dict[str, np.ndarray], images: bool = True) -> pd.DataFrame:
    """Tidy rows from {variant: (S, I) array}; seeds 0..S-1, images img00.. (set means if images=False)."""
    rows = []
    for v, arr in values.items():
        arr = np.asarray(arr, dtype=float)
        for s in range(arr.shape[0]):
            if images:
                rows += [dict(run_id=f"{v}-s{s}", variant=v, seed=s, image=f"img{i:02d}", value=arr[s, i])
                         for i in range(arr.shape[1])]
            else:
                rows.append(dict(run_id=f"{v}-s{s}", variant=v, seed=s, value=float(arr[s].mean())))
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------ interval
REPS = 2000
COVERAGE_TOL = _binomial_tol(0.95, REPS)  # 0.0146


@pytest.mark.parametrize("s,i,sd_seed,sd_image,sd_resid", [
    (5, 20, 0.10, 0.05, 0.10),   # seed-dominated
    (5, 20, 0.02, 0.10, 0.10),   # image-dominated
    (5, 20, 0.05, 0.05, 0.05),   # balanced
    (3, 40, 0.10, 0.03, 0.10),   # 3 seeds
])
def test_interval_covers_the_true_difference(s, i, sd_seed, sd_image, sd_resid):
    rng = np.random.default_rng(10 + s + i)
    d = _crossed(rng, REPS, s, i, 0.2, sd_seed, sd_image, sd_resid)
    est = A.crossed_estimates(d)
    half = stats.t.ppf(0.975, est["dof"]) * np.sqrt(est["var_mean"])
    coverage = float((np.abs(est["mean"] - 0.2) <= half).mean())
    assert abs(coverage - 0.95) <= COVERAGE_TOL, coverage


def test_interval_with_zero_components_is_conservative_not_short():
    rng = np.random.default_rng(5)
    d = _crossed(rng, REPS, 6, 10, -0.1, 0.0, 0.0, 0.2)  # both floors active often
    est = A.crossed_estimates(d)
    half = stats.t.ppf(0.975, est["dof"]) * np.sqrt(est["var_mean"])
    coverage = float((np.abs(est["mean"] + 0.1) <= half).mean())
    assert 0.95 - COVERAGE_TOL <= coverage <= 0.995, coverage


def test_seed_only_interval_undercovers_when_images_vary():
    """The image term matters: an interval over seed means alone misses the shared image effects."""
    rng = np.random.default_rng(6)
    d = _crossed(rng, REPS, 5, 20, 0.0, 0.02, 0.15, 0.05)
    seed_only = A.seed_level_estimates(d.mean(-1))
    half = stats.t.ppf(0.975, seed_only["dof"]) * np.sqrt(seed_only["var_mean"])
    assert float((np.abs(seed_only["mean"]) <= half).mean()) < 0.8


def test_variance_components_exact_without_residual():
    rng = np.random.default_rng(7)
    a, b = rng.standard_normal(4), rng.standard_normal(6)
    d = 0.3 + a[:, None] + b[None, :]
    est = A.crossed_estimates(d)
    assert est["var_resid"] == pytest.approx(0.0, abs=1e-12)
    assert est["var_seed"] == pytest.approx(a.var(ddof=1))
    assert est["var_scene"] == pytest.approx(b.var(ddof=1))
    assert est["var_mean"] == pytest.approx(a.var(ddof=1) / 4 + b.var(ddof=1) / 6)
    assert est["mean"] == pytest.approx(d.mean())


def test_paired_effect_from_shuffled_frame_matches_array_and_split():
    rng = np.random.default_rng(8)
    ref = rng.normal(30, 1, (4, 7))
    d = _crossed(rng, 1, 4, 7, -0.2, 0.1, 0.1, 0.05)[0]
    df = _frame({"full": ref, "no_csff": ref + d}).sample(frac=1.0, random_state=0)
    e = A.paired_effect(df, "no_csff", "full", estimand="population")  # no scene column: every image its own
    est = A.crossed_estimates(d)
    assert e.difference == pytest.approx(d.mean())
    assert e.se == pytest.approx(math.sqrt(est["var_mean"]))
    assert e.dof == pytest.approx(est["dof"])
    assert (e.n_seeds, e.n_scenes, e.n_images) == (4, 7, 7)
    lo, hi = stats.t.interval(0.95, e.dof, loc=e.difference, scale=e.se)
    assert (e.ci_low, e.ci_high) == pytest.approx((lo, hi))
    assert e.p == pytest.approx(2 * stats.t.sf(abs(e.difference) / e.se, e.dof))
    share = e.components.contributions()
    assert sum(share.values()) == pytest.approx(1.0)
    assert e.components.var_mean() == pytest.approx(e.se ** 2)


def test_set_means_give_the_paired_t_test():
    rng = np.random.default_rng(9)
    ref, var = rng.normal(30, 0.2, (6, 1)), rng.normal(29.9, 0.2, (6, 1))
    df = _frame({"full": ref, "hin_off": var}, images=False)
    e = A.paired_effect(df, "hin_off", "full", estimand="test_set")
    t = stats.ttest_rel(var[:, 0], ref[:, 0])
    assert e.n_images == 0 and e.dof == 5
    no_scenes = A.paired_effect(df, "hin_off", "full", estimand="population")
    assert math.isnan(no_scenes.ci_low) and "population estimand needs per-image values" in no_scenes.note
    assert e.p == pytest.approx(t.pvalue)
    ci = t.confidence_interval(0.95)
    assert (e.ci_low, e.ci_high) == pytest.approx((ci.low, ci.high))


def test_unpaired_seeds_and_missing_images_are_dropped_and_noted():
    rng = np.random.default_rng(11)
    ref, var = rng.normal(30, 1, (4, 5)), rng.normal(30, 1, (4, 5))
    df = _frame({"full": ref, "v": var})
    df = df[~((df["variant"] == "v") & (df["seed"] == 3))]  # seed 3 unpaired
    df = df[~((df["variant"] == "full") & (df["seed"] == 1) & (df["image"] == "img04"))]  # image 4 incomplete
    design = A.paired_design(df, "v", "full")
    assert design.seeds == (0, 1, 2) and design.images == tuple(f"img{i:02d}" for i in range(4))
    np.testing.assert_allclose(design.d, (var - ref)[:3, :4])
    assert "1 unpaired seed" in design.note and "1 image" in design.note


# ------------------------------------------------------------------------------------- scenes and estimands
GOPRO_SCENES = [100] * 9 + [134, 77]  # frames of the 11 GoPro test videos (1111 in all)


def _nested(rng, reps, s, sizes, mu=0.2, sd_seed=0.05, sd_scene=0.3, sd_image=0.2, sd_seed_scene=0.02, sd_resid=0.1):
    """(reps, S, N) differences with images nested in scenes of ``sizes``; returns (d, scenes, truths): the truth
    of ``test_set`` is each replication's mean effect over its fixed images, that of ``population`` is mu."""
    codes = np.repeat(np.arange(len(sizes)), sizes)
    scene = sd_scene * rng.standard_normal((reps, 1, len(sizes)))[..., codes]
    image = sd_image * rng.standard_normal((reps, 1, len(codes)))
    d = (mu + sd_seed * rng.standard_normal((reps, s, 1)) + scene + image
         + sd_seed_scene * rng.standard_normal((reps, s, len(sizes)))[..., codes]
         + sd_resid * rng.standard_normal((reps, s, len(codes))))
    return d, [f"scene{k:03d}" for k in codes], {"test_set": mu + (scene + image).mean(-1)[:, 0], "population": mu}


def _coverage(d, scenes, truth, estimand):
    est, _ = A._estimates(A.estimand_table(d, scenes, estimand))  # the path paired_effect takes, vectorised
    half = stats.t.ppf(0.975, est["dof"]) * np.sqrt(est["var_mean"])
    return float((np.abs(est["mean"] - truth) <= half).mean())


@pytest.mark.parametrize("estimand", A.ESTIMANDS)
@pytest.mark.parametrize("seeds,sizes", [(4, GOPRO_SCENES), (4, [32] * 40), (4, [1] * 100), (6, [40] * 3)],
                         ids=["gopro-11x100", "sidd-40x32", "one-image-per-scene-100x1", "few-scenes-3x40"])
def test_interval_covers_its_estimand_when_images_come_in_scenes(estimand, seeds, sizes):
    """Coverage of the nominal 95% interval within 0.93-0.97 (effect SD between scenes 0.3 dB, between images
    of a scene 0.2, between seeds 0.05)."""
    rng = np.random.default_rng(1)
    d, scenes, truth = _nested(rng, REPS, seeds, sizes)
    assert 0.93 <= _coverage(d, scenes, truth[estimand], estimand) <= 0.97


@pytest.mark.parametrize("sizes,most", [(GOPRO_SCENES, 0.65), ([32] * 40, 0.85), ([43, 43, 42], 0.5)])
def test_treating_images_of_a_scene_as_independent_undercovers(sizes, most):
    """The interval of images as independent scenes (the model before scenes were recorded) misses new scenes."""
    rng = np.random.default_rng(5)
    d, _, _ = _nested(rng, REPS, 4, sizes)
    as_images = [f"img{i}" for i in range(d.shape[-1])]
    assert _coverage(d, as_images, 0.2, "population") < most


def test_nested_variance_split_matches_statsmodels_mixed_model():
    """The nested ANOVA components equal the REML estimates of a mixed model (balanced, all positive)."""
    import statsmodels.formula.api as smf

    rng = np.random.default_rng(21)
    s, sizes = 5, [6] * 8
    d, scenes, _ = _nested(rng, 1, s, sizes, sd_seed=0.3, sd_scene=0.5, sd_image=0.4, sd_seed_scene=0.3,
                           sd_resid=0.2)
    split = A.variance_split(d[0], scenes)
    long = pd.DataFrame({"y": d[0].ravel(), "seed": np.repeat(np.arange(s), len(scenes)),
                         "scene": np.tile(scenes, s), "image": np.tile(np.arange(len(scenes)), s), "g": 1})
    fit = smf.mixedlm("y ~ 1", long, groups="g", re_formula="0", vc_formula={
        "seed": "0 + C(seed)", "scene": "0 + C(scene)", "image": "0 + C(image)",
        "seed_scene": "0 + C(seed):C(scene)"}).fit(reml=True, method="lbfgs")
    got = dict(zip(fit.model.exog_vc.names, fit.vcomp))
    for key in ("seed", "scene", "image", "seed_scene"):
        assert split[key] == pytest.approx(got[key], rel=0.02), key
    assert split["resid"] == pytest.approx(fit.scale, rel=0.02)


def test_scene_means_weigh_every_scene_alike_and_test_set_every_image():
    d = np.array([[1.0, 2.0, 3.0, 10.0], [1.0, 2.0, 3.0, 10.0]])  # scenes a (3 images) and b (1)
    scenes = ["a", "a", "a", "b"]
    np.testing.assert_allclose(A.estimand_table(d, scenes, "population"), [[2.0, 10.0], [2.0, 10.0]])
    np.testing.assert_allclose(A.estimand_table(d, scenes, "test_set"), [[4.0], [4.0]])
    with pytest.raises(ValueError, match="estimand='scenes'"):
        A.estimand_table(d, scenes, "scenes")


def test_paired_effect_reads_the_scene_column_and_names_the_estimand():
    rng = np.random.default_rng(22)
    d, scenes, _ = _nested(rng, 1, 4, [5] * 6)
    ref = rng.normal(30, 1, d.shape[1:])
    df = _frame({"full": ref, "v": ref + d[0]})
    df["scene"] = df["image"].map(dict(zip([f"img{i:02d}" for i in range(30)], scenes)))
    pop = A.paired_effect(df, "v", "full", estimand="population")
    fixed = A.paired_effect(df, "v", "full", estimand="test_set")
    est = A.crossed_estimates(A.scene_means(d[0], scenes))
    assert (pop.estimand, pop.n_scenes, pop.n_images) == ("population", 6, 30)
    assert pop.se == pytest.approx(math.sqrt(est["var_mean"])) and pop.dof == pytest.approx(est["dof"])
    t = stats.ttest_1samp(d[0].mean(-1), 0)
    assert fixed.p == pytest.approx(t.pvalue) and fixed.dof == 3
    assert pop.difference == pytest.approx(fixed.difference)  # balanced scenes: the same point estimate
    assert pop.se > fixed.se  # new scenes carry the scene term
    one_scene = A.paired_effect(df.assign(scene="all"), "v", "full", estimand="population")
    assert math.isnan(one_scene.ci_low) and "1 scene(s): the population estimand needs at least 2" in one_scene.note
    table = A.verdict_table(df.assign(scene="all"), "full", estimand="population", scale="proxy")
    assert table["verdict"].iloc[0] == "inconclusive on new scenes: 1 scene(s), at least 2 needed"
    clash = df.copy()
    clash.loc[(clash["variant"] == "v") & (clash["image"] == "img00"), "scene"] = "elsewhere"
    with pytest.raises(ValueError, match="image 'img00' is recorded under several scenes"):
        A.paired_effect(clash, "v", "full")


def test_scene_term_says_more_scenes_needed():
    rng = np.random.default_rng(23)
    d, scenes, _ = _nested(rng, 1, 4, [30] * 3, mu=0.0, sd_seed=0.01, sd_scene=0.6, sd_image=0.05,
                           sd_seed_scene=0.01, sd_resid=0.01)
    ref = rng.normal(30, 1, d.shape[1:])
    df = _frame({"full": ref, "v": ref + d[0]})
    df["scene"] = df["image"].map(dict(zip([f"img{i:02d}" for i in range(90)], scenes)))
    pop = A.verdict_table(df, "full", estimand="population", scale="proxy").iloc[0]
    fixed = A.verdict_table(df, "full", estimand="test_set", scale="proxy").iloc[0]
    assert pop["seeds_needed"] == math.inf and "more scenes needed" in pop["verdict"]
    assert pop["n_scenes"] == 3 and pop["var_scene"] > 100 * pop["var_seed"]
    assert "on this test set" in fixed["verdict"] and fixed["seeds_needed"] < math.inf


# ---------------------------------------------------------------------------------- Holm and TOST
def test_holm_matches_statsmodels_and_keeps_nans():
    p = np.array([0.01, 0.04, np.nan, 0.03, 0.2, 0.001])
    ok = ~np.isnan(p)
    expected = multipletests(p[ok], alpha=0.05, method="holm")[1]
    got = A.holm(p)
    np.testing.assert_allclose(got[ok], expected)
    assert np.isnan(got[2])
    np.testing.assert_allclose(got[ok], [0.04, 0.09, 0.09, 0.2, 0.005])  # by hand: sorted 0.001*5, 0.01*4, ...
    np.testing.assert_allclose(A.holm([0.5, 0.6, 0.01]), [1.0, 1.0, 0.03])  # capped at 1
    rng = np.random.default_rng(20)
    for m in (1, 2, 7):
        p = rng.uniform(0, 0.1, m)
        np.testing.assert_allclose(A.holm(p), multipletests(p, method="holm")[1])


@pytest.mark.parametrize("shift,delta", [(0.0, 0.1), (0.05, 0.1), (-0.12, 0.1), (0.02, 0.05)])
def test_tost_matches_statsmodels_ttost_paired_on_seed_means(shift, delta):
    rng = np.random.default_rng(int(1000 * abs(shift)) + 3)
    ref = rng.normal(30, 0.05, 8)
    var = ref + shift + rng.normal(0, 0.04, 8)
    e = _seed_effect(var - ref)
    tost = A.equivalence_test(e, delta)
    p_sm, lower, upper = ttost_paired(var, ref, -delta, delta)
    assert tost.p == pytest.approx(p_sm)
    assert tost.p_lower == pytest.approx(lower[1]) and tost.p_upper == pytest.approx(upper[1])
    lo, hi = e.interval(0.90)
    assert tost.equivalent == (-delta < lo and hi < delta)  # TOST at 0.05 <=> 90% interval inside the margin
    assert (tost.ci_low, tost.ci_high) == pytest.approx((lo, hi))


def test_default_margins_and_bad_margin():
    assert A.default_margin("paper") == 0.05 and A.default_margin("proxy") == 0.1
    with pytest.raises(ValueError, match="unknown scale 'huge'"):
        A.default_margin("huge")
    e = _seed_effect(np.array([0.1, 0.2, 0.0]))
    with pytest.raises(ValueError, match="delta: expected a finite number > 0, got -1"):
        A.equivalence_test(e, -1)


# --------------------------------------------------------------------------------------------- power
@pytest.mark.parametrize("n,sd", [(3, 0.1), (5, 0.08), (12, 0.2)])
def test_mde_matches_ttestpower_one_level(n, sd):
    comp = A.VarianceComponents(sd ** 2, math.nan, math.nan, n, 0)
    es = TTestPower().solve_power(nobs=n, alpha=0.05, power=0.8, alternative="two-sided")
    assert A.minimum_detectable_effect(comp) == pytest.approx(es * sd, rel=1e-6)


@pytest.mark.parametrize("delta,sd", [(0.1, 0.1), (0.05, 0.1), (0.1, 0.03)])
def test_seeds_needed_matches_ttestpower_one_level(delta, sd):
    comp = A.VarianceComponents(sd ** 2, math.nan, math.nan, 3, 0)
    n = TTestPower().solve_power(effect_size=delta / sd, alpha=0.05, power=0.8, alternative="two-sided")
    assert A.seeds_needed(comp, delta) == max(2, math.ceil(n))


def test_power_by_simulation_at_the_mde_crossed():
    comp = A.VarianceComponents(0.05 ** 2, 0.04 ** 2, 0.08 ** 2, 5, 20)
    mde = A.minimum_detectable_effect(comp)
    rng = np.random.default_rng(12)
    d = _crossed(rng, REPS, 5, 20, mde, 0.05, 0.04, 0.08)
    est = A.crossed_estimates(d)
    p = 2 * stats.t.sf(np.abs(est["mean"]) / np.sqrt(est["var_mean"]), est["dof"])
    rejected = float((p < 0.05).mean())
    assert abs(rejected - 0.8) <= _binomial_tol(0.8, REPS) + 0.02  # + 0.02: Satterthwaite df of estimated MS


def test_scene_variance_caps_what_seeds_can_do():
    comp = A.VarianceComponents(0.01 ** 2, 0.3 ** 2, 0.01 ** 2, 4, 10)  # Var(mean) >= 0.009 whatever S
    assert A.seeds_needed(comp, 0.1) == math.inf
    assert A.seeds_needed(comp, 1.0) == 2
    few = A.VarianceComponents(0.1 ** 2, 0.01 ** 2, 0.05 ** 2, 4, 10)
    need = A.seeds_needed(few, 0.1)
    assert A.minimum_detectable_effect(few, int(need)) <= 0.1 < A.minimum_detectable_effect(few, int(need) - 1)


# ---------------------------------------------------------------------------------- group sequential
def test_spending_boundaries_match_published_obrien_fleming_values():
    # Lan-DeMets O'Brien-Fleming spending, 4 equally spaced looks, two-sided 0.05 (one-sided 0.025): the values
    # tabulated by group-sequential software such as the R package gsDesign.
    np.testing.assert_allclose(A.spending_boundaries([0.25, 0.5, 0.75, 1.0], 0.05, sides=2),
                               [4.3326, 2.9631, 2.3590, 2.0141], atol=2e-4)
    np.testing.assert_allclose(A.spending_boundaries([0.25, 0.5, 0.75, 1.0], 0.025, sides=1),
                               [4.3326, 2.9631, 2.3590, 2.0141], atol=2e-4)
    assert A.spending_boundaries([1.0], 0.05, sides=2)[0] == pytest.approx(stats.norm.ppf(0.975))


def test_spending_boundaries_spend_alpha_on_brownian_motion():
    t = np.array([0.3, 0.5, 0.8, 1.0])  # unequal looks
    rng = np.random.default_rng(13)
    reps = 200_000
    z = (rng.standard_normal((reps, 4)) * np.sqrt(np.diff(np.r_[0.0, t]))).cumsum(1) / np.sqrt(t)
    for sides, stat in ((2, np.abs(z)), (1, z)):
        c = A.spending_boundaries(t, 0.05, sides=sides)
        cross = stat >= c
        first = np.where(cross.any(1), cross.argmax(1), -1)
        spent = np.diff(np.r_[0.0, A.obrien_fleming_spending(t, 0.05, sides)])
        for k in range(4):
            assert abs((first == k).mean() - spent[k]) <= _binomial_tol(max(spent[k], 1e-4), reps) + 1e-4
        assert abs(cross.any(1).mean() - 0.05) <= _binomial_tol(0.05, reps)


@pytest.mark.parametrize("images,sd", [(1, (0.1, 0.0, 0.0)), (20, (0.1, 0.05, 0.1)), (20, (0.02, 0.1, 0.1))])
def test_sequential_type_one_error_and_power(images, sd):
    """Per-comparison error rates of the boundaries used by sequential_decide, with t statistics."""
    reps = 4000
    plan = A.SequentialPlan((3, 6, 9, 12), delta=0.1)
    rng = np.random.default_rng(14 + images)
    tol = _binomial_tol(0.05, reps)  # 0.0103

    def rates(mu):
        st = A.look_statistics(_crossed(rng, reps, 12, images, mu, *sd), plan, 3)
        tb = A._t_bound(plan.efficacy_bounds(), st["dof"], 2)
        sig = (np.abs(st["mean"]) / st["se"] >= tb).any(-1).mean()
        te = A._t_bound(plan.equivalence_bounds(), st["dof"], 1)
        eq = ((st["mean"] + te * st["se"] < 0.1) & (st["mean"] - te * st["se"] > -0.1)).any(-1).mean()
        fixed = 2 * stats.t.sf(np.abs(st["mean"][:, -1]) / st["se"][:, -1], st["dof"][:, -1]) < 0.05
        return sig, eq, fixed.mean()

    sig0, eq0, _ = rates(0.0)
    assert sig0 <= 0.05 + tol  # false significance
    sig_d, eq_d, fixed_d = rates(0.1)
    assert eq_d <= 0.05 + tol  # false equivalence at the margin
    assert sig_d >= fixed_d - 0.05 and sig_d > 0.6  # O'Brien-Fleming costs little power
    assert eq0 > 0.6  # a true zero is shown equivalent most of the time


def test_sequential_decide_family_wise_error_with_holm_reallocation():
    reps = 400
    plan = A.SequentialPlan((3, 6, 9), delta=0.1)
    rng = np.random.default_rng(15)
    d = _crossed(rng, reps * 3, 9, 1, 0.0, 0.1, 0.0, 0.0).reshape(reps, 3, 9, 1)
    any_false = 0
    for r in range(reps):
        out = A.sequential_decide({f"v{j}": d[r, j] for j in range(3)}, plan, 2)
        any_false += bool(out["significant"].any())
    assert any_false / reps <= 0.05 + _binomial_tol(0.05, reps)


def test_single_look_is_holm_on_t_tests():
    rng = np.random.default_rng(16)
    plan = A.SequentialPlan((6,), delta=0.1)
    diffs = {"a": rng.normal(0.25, 0.1, (6, 1)), "b": rng.normal(0.08, 0.1, (6, 1)), "c": rng.normal(0, 0.1, (6, 1))}
    out = A.sequential_decide(diffs, plan, 0).set_index("variant")
    p = [stats.ttest_1samp(diffs[v][:, 0], 0).pvalue for v in "abc"]
    holm = multipletests(p, 0.05, "holm")[0]
    assert list(out.loc[list("abc"), "significant"]) == list(holm)


def test_holm_reallocation_rejects_what_bonferroni_would_not():
    plan = A.SequentialPlan((8,), delta=0.05)
    x = np.linspace(-1, 1, 8)[:, None] * 0.1
    se = x.std(ddof=1) / math.sqrt(8)
    diffs = {"big": x + 1.0, "borderline": x + 2.6 * se}  # t = 2.6 on 7 df: p = 0.035, between alpha/2 and alpha
    assert 0.025 < stats.ttest_1samp(diffs["borderline"][:, 0], 0).pvalue < 0.05
    out = A.sequential_decide(diffs, plan, 0).set_index("variant")
    assert out.loc["big", "significant"] and out.loc["borderline", "significant"]
    solo = A.sequential_decide({"borderline": diffs["borderline"], "other": x}, plan, 0).set_index("variant")
    assert not solo.loc["borderline", "significant"]


def test_sequential_decisions_on_a_frame():
    rng = np.random.default_rng(17)
    s, i = 9, 6
    ref = rng.normal(30, 1, (s, i))
    values = {"full": ref,
              "no_csff": ref - 0.5 + rng.normal(0, 1e-4, (s, i)),  # clear loss
              "sam_off": ref + rng.normal(0, 1e-4, (s, i)),  # clearly within +-0.1
              "hin_off": ref + 0.05 + rng.normal(0, 0.3, (s, 1)) + rng.normal(0, 0.05, (s, i))}  # noisy
    df = _frame(values)
    plan = A.SequentialPlan((3, 6, 9), delta=0.1)
    first = A.sequential_decisions(df[df["seed"] < 3], plan, 0, "full", estimand="population").set_index("variant")
    assert list(first.columns) == [c for c in A.SEQUENTIAL_COLUMNS if c != "variant"]
    assert first.loc["no_csff", "decision"] == "significant" and first.loc["no_csff", "difference"] < 0
    assert first.loc["sam_off", "decision"] == "equivalent"
    assert first.loc["hin_off", "decision"] == "continue"
    assert first.loc["hin_off", "n_scenes"] == i and (first["estimand"] == "population").all()
    # stopped variants get no more seeds; the decided ones keep their look-0 verdict at the last look
    later = df[(df["seed"] < 3) | df["variant"].isin(["full", "hin_off"])]
    last = A.sequential_decisions(later, plan, 2, "full", estimand="population").set_index("variant")
    assert last.loc["no_csff", "significant_look"] == 0 and last.loc["sam_off", "equivalent_look"] == 0
    assert last.loc["hin_off", "decision"] in ("inconclusive", "significant", "equivalent")
    assert last.loc["hin_off", "n_seeds"] == 9
    with pytest.raises(ValueError, match="'hin_off': 6 paired seed"):
        A.sequential_decisions(later[later["seed"] < 6], plan, 2, "full", estimand="population")


# ------------------------------------------------------------------------------------------- verdicts
def _family_frame():
    rng = np.random.default_rng(18)
    s, i = 5, 12
    ref = rng.normal(30, 1, (s, i))
    seed_noise = rng.normal(0, 1, (s, 1))
    return _frame({
        "full": ref,
        "no_csff": ref - 0.25 + 0.03 * seed_noise + rng.normal(0, 0.02, (s, i)),
        "wider": ref + 0.30 + 0.03 * seed_noise + rng.normal(0, 0.02, (s, i)),
        "sam_off": ref + 0.005 * seed_noise + rng.normal(0, 0.01, (s, i)),
        "hin_off": ref - 0.05 + 0.15 * seed_noise + rng.normal(0, 0.02, (s, i)),
    })


def test_verdict_table_wording_and_columns():
    df = _family_frame().assign(step=4000)
    table = A.verdict_table(df, "full", estimand="population", scale="proxy")
    assert list(table.columns) == list(A.VERDICT_COLUMNS)
    t = table.set_index("variant")
    assert set(t.index) == {"no_csff", "wider", "sam_off", "hin_off"} and (t["step"] == 4000).all()
    np.testing.assert_allclose(t["p_holm"], multipletests(t["p"], method="holm")[1])
    loss = t.loc["no_csff"]
    m = re.fullmatch(r"costs (\d\.\d\d) dB \[(\d\.\d\d), (\d\.\d\d)\] on new scenes "
                     r"\(Holm p (?:= \d\.\d{3}|< 0\.001)\)", loss["verdict"])
    assert m, loss["verdict"]
    assert float(m[1]) == pytest.approx(-loss["difference"], abs=0.006)
    assert (float(m[2]), float(m[3])) == pytest.approx((-loss["ci_high"], -loss["ci_low"]), abs=0.006)
    assert 0.2 < -loss["difference"] < 0.3
    gain = t.loc["wider"]
    assert gain["significant"] and 0.25 < gain["difference"] < 0.35
    expected = f"gains {gain['difference']:.2f} dB [{gain['ci_low']:.2f}, {gain['ci_high']:.2f}] on new scenes (Holm p"
    assert gain["verdict"].startswith(expected)
    assert t.loc["sam_off", "verdict"].startswith("equivalent within ±0.1 dB on new scenes (TOST p")
    assert t.loc["sam_off", "equivalent"] and not t.loc["sam_off", "significant"]
    hin = t.loc["hin_off"]
    assert not hin["significant"] and not hin["equivalent"]
    need = int(hin["seeds_needed"])
    assert need > 5 and hin["verdict"].startswith(f"inconclusive on new scenes: about {need} seeds needed")
    assert hin["seed_share"] > 0.9 and hin["n_seeds"] == 5 and hin["n_images"] == 12
    assert (t["delta"] == 0.1).all() and (t["mde"] > 0).all()


def test_verdict_text_cases():
    pop, fixed = dict(estimand="population"), dict(estimand="test_set")
    assert A.verdict_text(0.02, 0.01, 0.03, 0.004, True, True, 0.05, 3, 10, **pop).endswith(
        "within the ±0.05 dB margin")
    assert A.verdict_text(-0.1, -0.3, 0.1, 1.0, False, False, 0.05, math.inf, 4, **pop, n_scenes=3) == (
        "inconclusive on new scenes: more scenes needed; more seeds cannot resolve ±0.05 dB with these 3 scenes "
        "(-0.100 dB [-0.300, 0.100])")
    assert "4 seeds give 80% power" in A.verdict_text(0.04, -0.01, 0.09, 0.2, False, False, 0.1, 3, 4, **fixed)
    assert A.verdict_text(-0.01, -0.02, 0.0, 0.01, True, False, 0.1, 3, 4, unit="", higher_is_better=False,
                          **fixed).startswith("gains 0.01 [0.00, 0.02] on this test set")
    assert A.verdict_text(0.1, math.nan, math.nan, math.nan, False, False, 0.1, math.nan, 1, **fixed) == (
        "inconclusive on this test set: 1 paired seed(s), at least 2 needed")
    assert A.verdict_text(0.1, math.nan, math.nan, math.nan, False, False, 0.1, math.nan, 4, **pop, n_scenes=1) == (
        "inconclusive on new scenes: 1 scene(s), at least 2 needed")
    with pytest.raises(ValueError, match="estimand='fixed'"):
        A.verdict_text(0.1, 0.0, 0.2, 0.01, True, False, 0.1, 3, 4, estimand="fixed")


def test_verdicts_by_step_marks_the_significant_steps():
    rng = np.random.default_rng(19)
    ref = rng.normal(30, 1, (4, 6))
    early = _frame({"full": ref, "v": ref + rng.normal(0, 0.2, (4, 6))}).assign(step=1000)
    late = _frame({"full": ref, "v": ref - 0.4 + rng.normal(0, 0.02, (4, 6))}).assign(step=2000)
    out = A.verdicts_by_step(pd.concat([late, early]), "full", estimand="population", delta=0.05)
    assert list(out["step"]) == [1000, 2000]
    assert list(out["significant"]) == [False, True]


def test_bad_input_is_one_clear_error():
    df = _family_frame()
    with pytest.raises(ValueError, match=r"missing column\(s\) \['seed'\]"):
        A.verdict_table(df.drop(columns="seed"), "full", estimand="test_set", scale="paper")
    with pytest.raises(ValueError, match="reference variant 'base' not found"):
        A.verdict_table(df, "base", estimand="test_set", scale="paper")
    with pytest.raises(ValueError, match="several values for"):
        A.verdict_table(pd.concat([df, df.iloc[:1]]), "full", estimand="test_set", scale="paper")
    bad = df.copy()
    bad.loc[3, "value"] = np.inf
    with pytest.raises(ValueError, match="column value has 1 non-finite"):
        A.verdict_table(bad, "full", estimand="test_set", scale="paper")
    with pytest.raises(ValueError, match="give delta or scale"):
        A.verdict_table(df, "full", estimand="test_set")
    two_runs = df.copy()
    two_runs.loc[0, "run_id"] = "other"
    with pytest.raises(ValueError, match="comes from several runs"):
        A.verdict_table(two_runs, "full", estimand="test_set", scale="paper")
    missing_seed = df.assign(seed=df["seed"].astype(float))
    missing_seed.loc[5, "seed"] = np.nan
    with pytest.raises(ValueError, match="column seed holds nan; expected integers"):
        A.verdict_table(missing_seed, "full", estimand="test_set", scale="paper")
    kw = dict(estimand="test_set", scale="paper")
    as_float = A.verdict_table(df.assign(seed=df["seed"].astype(float)), "full", **kw)
    pd.testing.assert_frame_equal(as_float, A.verdict_table(df, "full", **kw))
    with pytest.raises(ValueError, match="SequentialPlan.looks"):
        A.SequentialPlan((1, 3), delta=0.1)
