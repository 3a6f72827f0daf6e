"""Dihedral transforms and PatchDataset: inverse roundtrip, paired-crop alignment, padding, determinism."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from hinet.data import DatasetError, PatchDataset, dihedral, dihedral_inverse
from hinet.data.patches import _draw_transform, pad_to


class ListPairs(Dataset):
    """In-memory paired dataset that counts item reads."""

    def __init__(self, items: list[tuple[torch.Tensor, torch.Tensor | None, str]]) -> None:
        self.items, self.reads = items, 0
        self.name, self.synthetic, self.root = "list", True, None

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        self.reads += 1
        return self.items[i]


def ramp(h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).random((3, h, w), dtype=np.float32))


def test_dihedral_roundtrip_and_group() -> None:
    x = torch.arange(2 * 3 * 5 * 7, dtype=torch.float32).reshape(2, 3, 5, 7)  # non-square NCHW
    outs = []
    for k in range(8):
        y = dihedral(x, k)
        assert y.shape[-2:] == ((5, 7) if k % 2 == 0 else (7, 5))
        torch.testing.assert_close(dihedral_inverse(y, k), x, rtol=0, atol=0)
        outs.append(y)
    square = torch.arange(16.0).reshape(4, 4)
    assert len({tuple(dihedral(square, k).flatten().tolist()) for k in range(8)}) == 8  # all distinct
    torch.testing.assert_close(dihedral(x, 4), x.flip(-1))  # k >= 4 flips W first ...
    torch.testing.assert_close(dihedral(x, 1), torch.rot90(x, 1, (-2, -1)))  # ... then rot90 by k % 4
    torch.testing.assert_close(dihedral(x, 5), torch.rot90(x.flip(-1), 1, (-2, -1)))
    torch.testing.assert_close(dihedral(x, 6), x.flip(-2))  # W-flip + 180 degrees = vertical flip
    with pytest.raises(ValueError):
        dihedral(x, 8)


def test_augment_modes_draw_the_right_transforms() -> None:
    rng = np.random.default_rng(0)
    counts = {mode: Counter(_draw_transform(mode, rng) for _ in range(4000)) for mode in ("dihedral", "sidd", "flips")}
    assert set(counts["dihedral"]) == set(range(8)) and min(counts["dihedral"].values()) > 400
    assert set(counts["flips"]) == {0, 2, 4, 6}  # flips only, no quarter turns
    assert 0.45 < counts["sidd"][0] / 4000 < 0.55 and set(counts["sidd"]) == set(range(8))
    assert _draw_transform(None, rng) == 0


def test_crop_alignment_and_determinism() -> None:
    items = [(ramp(40, 50, s), None, f"img{s}") for s in range(3)]
    items = [(1.0 - c, c, n) for c, _, n in items]  # degraded = 1 - clean: any misalignment shows up
    pairs = ListPairs(items)
    ds = PatchDataset(pairs, 16, augment="dihedral", length=10, seed=3)
    assert len(ds) == 10 and ds.name == "list-patches16" and ds.synthetic
    for i in range(10):
        d, c, name = ds[i]
        assert d.shape == c.shape == (3, 16, 16) and name == f"img{i % 3}"
        torch.testing.assert_close(d, 1.0 - c, rtol=0, atol=0)
    same = [(c.clone(), c, n) for _, c, n in items]  # clean == degraded stays equal
    for i in range(6):
        d, c, _ = PatchDataset(ListPairs(same), 16, seed=1)[i % 3]
        assert torch.equal(d, c)

    first = [ds[i][1] for i in range(10)]
    again = PatchDataset(ListPairs(items), 16, augment="dihedral", length=10, seed=3)
    assert all(torch.equal(a, again[i][1]) for i, a in enumerate(first))  # pure function of (seed, epoch, i)
    again.set_epoch(1)
    assert sum(torch.equal(a, again[i][1]) for i, a in enumerate(first)) < 3  # new epoch, new crops
    with pytest.raises(IndexError):
        ds[10]


def test_small_images_are_mirror_padded() -> None:
    x = ramp(5, 6)
    padded = pad_to(x, 8)
    assert padded.shape == (3, 8, 8)
    torch.testing.assert_close(padded[:, :5, :6], x)
    torch.testing.assert_close(padded[:, 5, :6], x[:, 4])  # cv2 BORDER_REFLECT repeats the edge row
    torch.testing.assert_close(padded[:, :5, 6:8], x[:, :, [5, 4]])
    assert pad_to(ramp(3, 3), 10).shape == (3, 10, 10)  # pads larger than the image work
    ds = PatchDataset(ListPairs([(1 - x, x, "tiny")]), 8, augment=None)
    d, c, _ = ds[0]
    assert c.shape == (3, 8, 8)
    torch.testing.assert_close(c, padded, rtol=0, atol=0)
    torch.testing.assert_close(d, 1 - padded)


def test_cache_and_errors() -> None:
    pairs = ListPairs([(ramp(20, 20, s), ramp(20, 20, s), f"i{s}") for s in range(2)])
    ds = PatchDataset(pairs, 8, length=12, cache=True)
    for i in range(12):
        ds[i]
    assert pairs.reads == 2
    with pytest.raises(DatasetError, match="no clean image"):
        PatchDataset(ListPairs([(ramp(8, 8), None, "bench")]), 4)[0]
    with pytest.raises(DatasetError, match="equal sizes"):
        PatchDataset(ListPairs([(ramp(8, 8), ramp(8, 9), "odd")]), 4)[0]
    with pytest.raises(ValueError, match="augment"):
        PatchDataset(pairs, 8, augment="rot45")
