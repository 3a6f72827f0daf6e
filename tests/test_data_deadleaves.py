"""The dead-leaves generator: one scene per (seed, split, index), values in [0, 1], power-law radii,
disjoint train and test scene streams."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from hinet.data import SyntheticPairs
from hinet.data.deadleaves import DeadLeaves, dead_leaves, power_law_radii, scene_id


def test_a_scene_is_a_pure_function_of_seed_split_and_index() -> None:
    a = dead_leaves(3, "test", 5, 64)
    assert a.dtype == np.float32 and a.shape == (64, 64, 3)
    np.testing.assert_array_equal(a, dead_leaves(3, "test", 5, 64))
    for other in (dead_leaves(3, "test", 6, 64), dead_leaves(4, "test", 5, 64), dead_leaves(3, "train", 5, 64)):
        assert np.abs(other - a).mean() > 0.01  # another scene, another image
    code = ("from hinet.data.deadleaves import dead_leaves; import hashlib; "
            "print(hashlib.sha256(dead_leaves(3, 'test', 5, 64).tobytes()).hexdigest())")
    import hashlib

    other_process = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert other_process.stdout.strip() == hashlib.sha256(a.tobytes()).hexdigest()  # no per-process salt


@pytest.mark.parametrize("size", [8, 64, 128])
def test_values_lie_in_0_1_and_the_frame_is_covered_by_many_leaves(size: int) -> None:
    for k in range(4):
        img = dead_leaves(0, "train", k, size)
        assert img.shape == (size, size, 3) and 0.0 <= img.min() and img.max() <= 1.0
        assert np.isfinite(img).all()
    colours = len(np.unique(np.round(dead_leaves(0, "train", 0, 128, DeadLeaves(blur=(0, 0), gradient=0))
                                     .reshape(-1, 3), 4), axis=0))
    assert colours > 50  # many visible leaves, not a few large ones


def test_radii_follow_the_power_law() -> None:
    rng = np.random.default_rng(0)
    r = power_law_radii(rng, 200_000, 1.0, 1e4, alpha=3.0)
    assert r.min() >= 1.0 and r.max() <= 1e4
    alpha = 1.0 + len(r) / np.log(r / 1.0).sum()  # maximum-likelihood exponent (truncation negligible here)
    assert alpha == pytest.approx(3.0, abs=0.03)
    # the fraction above r0 is (r0 / rmin) ** (1 - alpha): a decade up keeps 1 % of the radii
    assert (r > 10).mean() == pytest.approx(0.01, rel=0.1)
    with pytest.raises(ValueError):
        power_law_radii(rng, 3, 2.0, 1.0)


def test_train_and_test_scenes_are_disjoint() -> None:
    train = SyntheticPairs("denoise", "train", size=32, count=20, seed=0)
    test = SyntheticPairs("denoise", "test", size=32, count=20, seed=0)
    train_ids, test_ids = {train.scene(i) for i in range(20)}, {test.scene(i) for i in range(20)}
    assert len(train_ids) == len(test_ids) == 20 and not train_ids & test_ids
    assert test.scene(3) == scene_id(0, "test", 3) == "deadleaves-test-0-0003"
    cleans = {split: [ds[i][1].numpy() for i in range(20)] for split, ds in (("train", train), ("test", test))}
    for a in cleans["train"]:  # same seed and index, another split: never the same image
        assert all(np.abs(a - b).mean() > 0.01 for b in cleans["test"])
