"""The proxy power study's analysis (studies/proxy_power_analysis.py): photo share, the budget rule, the
cheapest grid for the target. Synthetic inputs only; no training."""

import numpy as np
import pytest

from hinet.stats import VarianceComponents
from studies import proxy_power_analysis as pa

MODEL = pa.CostModel(startup_s=3.0, val_s_per_image=0.03, contention=1.0,
                     step_s={"full": 0.14, "no_csff": 0.13, "no_hin": 0.14, "no_sam": 0.14, "single_stage": 0.07})


def _images(n: int) -> list[str]:
    photos = ("chelsea", "motorcycle_left", "motorcycle_right")
    return [f"synthetic-denoise-test-{i:04d}-{photos[i % 3]}" for i in range(n)]


def test_image_ids_parse():
    assert pa.image_index("synthetic-denoise-test-0012-motorcycle_left") == 12
    assert pa.photo_of("synthetic-denoise-test-0012-motorcycle_left") == "motorcycle_left"


def test_photo_share_separates_photo_effects_from_image_noise():
    rng = np.random.default_rng(0)
    images = _images(60)
    by_photo = np.array([{"chelsea": -2.0, "motorcycle_left": 0.0, "motorcycle_right": 2.0}[pa.photo_of(x)]
                         for x in images])
    d = by_photo[None, :] + 0.05 * rng.standard_normal((4, 60))
    assert pa.photo_share(d, images) > 0.95
    d = rng.standard_normal((4, 60))
    assert pa.photo_share(d, images) < 0.2


def test_budget_rule_buys_images_against_image_noise_and_seeds_against_seed_noise():
    seed_noisy = {"a": VarianceComponents(seed=0.2, scene=0.001, resid=0.01, n_seeds=4, n_scenes=64)}
    image_noisy = {"a": VarianceComponents(seed=0.001, scene=2.0, resid=0.01, n_seeds=4, n_scenes=64)}
    few = pa.choose_default(seed_noisy, MODEL, 240)
    many = pa.choose_default(image_noisy, MODEL, 240)
    assert few["images"] < many["images"] and few["seeds"] > many["seeds"]
    for choice in (few, many):
        assert choice["grid_s"] <= pa.BUDGET_S
        assert MODEL.grid_s(choice["seeds"] + 1, 240, choice["images"], choice["looks"]) > pa.BUDGET_S


def test_cheapest_grid_for_the_target_reaches_it():
    comps = {"a": VarianceComponents(seed=0.04, scene=0.5, resid=0.1, n_seeds=4, n_scenes=64)}
    out = pa.budget_for(comps, MODEL, 240)
    best = out["best"]
    assert best is not None and np.isfinite(best["grid_s"])
    assert pa.mde(comps["a"], int(best["seeds"]), best["images"]) <= pa.TARGET_MDE
    assert pa.mde(comps["a"], int(best["seeds"]) - 1, best["images"]) > pa.TARGET_MDE
    assert best["grid_s"] == min(r["grid_s"] for r in out["rows"])
    # with 64 images the image term alone exceeds the target: no number of seeds reaches it
    assert out["rows"][0]["images"] == 64 and out["rows"][0]["seeds"] == pytest.approx(float("inf"))
