"""SYNTHETIC default data: determinism, dead-leaves scenes, held-out photographs, degradation properties,
test-set stand-ins (the dead-leaves generator itself: tests/test_data_deadleaves.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hinet.data import RAIN13K_TEST_SETS, SyntheticPairs, synthetic_test_sets
from hinet.data.deadleaves import dead_leaves, scene_id
from hinet.data.synthetic import TEST_PHOTOS, TRAIN_PHOTOS, _photo, camera_shake_kernel
from hinet.tasks import NATURAL_PHOTOS_SET

TASKS = ("denoise", "deblur", "derain")


@pytest.mark.parametrize("task", TASKS)
def test_items_deterministic_and_labelled(task: str) -> None:
    a = SyntheticPairs(task, "train", size=48, count=4, seed=7)
    b = SyntheticPairs(task, "train", size=48, count=4, seed=7)
    c = SyntheticPairs(task, "train", size=48, count=4, seed=8)
    assert a.synthetic and a.root is None and a.name == f"synthetic-{task}-train" and len(a) == 4
    for i in range(4):
        (da, ca, na), (db, cb, nb) = a[i], b[i]
        assert torch.equal(da, db) and torch.equal(ca, cb) and na == nb
        assert na == f"synthetic-{task}-train-{i:04d}-deadleaves" and a.scene(i) == scene_id(7, "train", i)
        torch.testing.assert_close(ca, torch.from_numpy(dead_leaves(7, "train", i, 48).copy()).permute(2, 0, 1))
        assert da.dtype == torch.float32 and da.shape == ca.shape == (3, 48, 48)
        assert 0 <= float(da.min()) and float(da.max()) <= 1
        assert not torch.equal(da, ca)  # degraded differs from clean
    assert not torch.equal(a[0][0], c[0][0])  # another seed, another item
    with pytest.raises(IndexError):
        a[4]


def test_train_and_test_photos_are_disjoint() -> None:
    assert not set(TRAIN_PHOTOS) & set(TEST_PHOTOS)
    train = SyntheticPairs("denoise", "train", size=64, count=10, source="photos")
    test = SyntheticPairs("denoise", "test", size=64, count=6, source="photos")
    assert {train.describe(i)["source"] for i in range(10)} == set(TRAIN_PHOTOS)
    assert {test.describe(i)["source"] for i in range(6)} == set(TEST_PHOTOS)
    assert [test.scene(i) for i in range(6)] == [test.describe(i)["source"] for i in range(6)]  # the photograph
    assert test[0][2] == f"synthetic-denoise-test-0000-{test.scene(0)}"
    for i in range(6):  # the clean image really is the declared crop of a held-out photo
        info, clean = test.describe(i), test[i][1]
        crop = _photo(info["source"])[info["top"] : info["top"] + 64, info["left"] : info["left"] + 64]
        torch.testing.assert_close(clean, torch.from_numpy(crop.copy()).permute(2, 0, 1))


def test_noise_is_signal_dependent() -> None:
    ds = SyntheticPairs("denoise", "test", size=256, count=3, seed=1)
    for i in range(3):
        noisy, clean, _ = ds[i]
        info = ds.describe(i)
        inside = (clean > 0.1) & (clean < 0.9)  # away from clipping
        measured = float(((noisy - clean)[inside] ** 2).mean())
        expected = float((info["a"] * clean[inside] + info["b"]).mean()) + 1 / (12 * 255**2)  # + quantisation
        assert measured == pytest.approx(expected, rel=0.15)
    dark, bright = ds[0][1] < 0.3, ds[0][1] > 0.7  # heteroscedastic: brighter pixels are noisier
    residual = ds[0][0] - ds[0][1]
    assert residual[bright].var() > residual[dark].var()


def test_blur_kernel_and_blur() -> None:
    rng = np.random.default_rng(0)
    for size in (7, 15, 21):
        k = camera_shake_kernel(rng, size)
        assert k.shape == (size, size) and k.min() >= 0 and k.sum() == pytest.approx(1, abs=1e-5)
        assert (k > 0).sum() > 3  # a trajectory, not a single point
    with pytest.raises(ValueError):
        camera_shake_kernel(rng, 8)
    blurry, sharp, _ = SyntheticPairs("deblur", "test", size=96, count=1)[0]

    def gradient_energy(x: torch.Tensor) -> float:
        return float((x[:, :, 1:] - x[:, :, :-1]).abs().mean() + (x[:, 1:] - x[:, :-1]).abs().mean())

    assert gradient_energy(blurry) < 0.8 * gradient_energy(sharp)
    assert abs(float(blurry.mean() - sharp.mean())) < 0.02  # a normalised kernel keeps the brightness


def test_rain_brightens_and_levels_differ() -> None:
    heavy = SyntheticPairs("derain", "test", size=96, count=4, rain_level="heavy")
    light = SyntheticPairs("derain", "test", size=96, count=4, rain_level="light")
    added = {}
    for name, ds in (("heavy", heavy), ("light", light)):
        diffs = [ds[i][0] - ds[i][1] for i in range(4)]
        assert all(float(d.min()) >= -1 / 255 - 1e-6 for d in diffs)  # screen blend only brightens
        added[name] = float(torch.stack(diffs).mean())
    assert added["heavy"] > 2 * added["light"] > 0
    with pytest.raises(ValueError, match="rain_level"):
        SyntheticPairs("denoise", "test", rain_level="heavy")


def test_synthetic_test_sets() -> None:
    assert NATURAL_PHOTOS_SET == "natural photographs (synthetic)"
    assert list(synthetic_test_sets("denoise", count=2)) == ["SIDD (synthetic)", NATURAL_PHOTOS_SET]
    assert list(synthetic_test_sets("deblur", count=2)) == ["GoPro (synthetic)", NATURAL_PHOTOS_SET]
    default = synthetic_test_sets("denoise", count=128)  # the natural set: a quarter, one crop per photo at least
    assert [len(ds) for ds in default.values()] == [128, 32]
    assert len(synthetic_test_sets("denoise", count=2)[NATURAL_PHOTOS_SET]) == 3
    sets = synthetic_test_sets("derain", size=32, count=2, natural_count=5)
    assert list(sets) == [*(f"{s} (synthetic)" for s in RAIN13K_TEST_SETS), NATURAL_PHOTOS_SET]
    firsts = []
    for key, ds in sets.items():
        assert ds.synthetic and ds.name == key and ds.split == "test"
        assert (len(ds), ds.source) == ((5, "photos") if key == NATURAL_PHOTOS_SET else (2, "deadleaves"))
        firsts.append(ds[0][0])
    assert not torch.equal(firsts[0], firsts[3])  # Test100 and Test2800 are both "medium" but differ
    scenes = [[ds.scene(i) for i in range(len(ds))] for ds in sets.values()]
    assert all(len(set(s)) == len(s) for s in scenes[:-1])  # dead leaves: every image its own scene
    assert scenes[-1] == [TEST_PHOTOS[i % 3] for i in range(5)]  # photographs: crops of 3 held-out photographs
    with pytest.raises(ValueError, match="unknown synthetic task"):
        synthetic_test_sets("dehaze")


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="crop size"):
        SyntheticPairs("denoise", "test", size=400, source="photos")  # chelsea is 300 px high
    assert SyntheticPairs("denoise", "test", size=400, count=1)[0][1].shape == (3, 400, 400)  # dead leaves: any
    with pytest.raises(ValueError, match="dead-leaves size"):
        SyntheticPairs("denoise", "test", size=4)
    with pytest.raises(ValueError, match="source"):
        SyntheticPairs("denoise", "test", source="fractal")
    with pytest.raises(ValueError, match="split"):
        SyntheticPairs("denoise", "val")
    with pytest.raises(ValueError, match="count"):
        SyntheticPairs("denoise", "test", count=0)
