"""Offline crop preparation: BasicSR crop positions, the 720x1280 GoPro case, worker pool, CLI, refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from hinet.data import (
    DatasetError,
    Pair,
    PairedFiles,
    PreparedCrops,
    crop_positions,
    prepare_crops,
    read_image,
    write_image,
)
from hinet.data.prepare import main


def noise_img(seed: int, h: int, w: int) -> torch.Tensor:
    """Random 16x16 blocks plus a pixel-level diagonal pattern: every crop offset is distinguishable, and the
    PNGs stay cheap to encode (pure per-pixel noise makes the test several times slower)."""
    blocks = np.random.default_rng(seed).integers(0, 240, (3, -(-h // 16), -(-w // 16)))
    img = np.kron(blocks, np.ones((1, 16, 16), dtype=np.int64))[:, :h, :w]
    img += (np.add.outer(np.arange(h), 2 * np.arange(w)) % 13)[None]
    return torch.from_numpy(img).float() / 255


def test_crop_positions_follow_basicsr() -> None:
    assert crop_positions(720, 512, 256) == [0, 208]  # remainder 208 > 0 -> border crop added
    assert crop_positions(1280, 512, 256) == [0, 256, 512, 768]  # remainder 0 -> nothing added
    assert crop_positions(3000, 512, 384) == [0, 384, 768, 1152, 1536, 1920, 2304, 2488]
    assert crop_positions(512, 512, 384) == [0]
    assert crop_positions(600, 512, 384, thresh_size=100) == [0]  # remainder 88 <= thresh: dropped
    assert crop_positions(600, 512, 384, thresh_size=50) == [0, 88]
    with pytest.raises(ValueError, match="500"):
        crop_positions(500, 512, 256)


@pytest.fixture()
def gopro_frame(tmp_path: Path) -> PairedFiles:
    """One 720x1280 blurry/sharp pair on disk (sharp = random, blurry = 1 - sharp)."""
    sharp = noise_img(0, 720, 1280)
    write_image(tmp_path / "blur.png", 1 - sharp)
    write_image(tmp_path / "sharp.png", sharp)
    return PairedFiles(
        [Pair(tmp_path / "blur.png", tmp_path / "sharp.png", "GOPR0372_07_00/000047")], name="frame", root=tmp_path
    )


def test_prepare_gopro_frame_with_workers(tmp_path: Path, gopro_frame: PairedFiles) -> None:
    out = tmp_path / "crops"
    assert prepare_crops(gopro_frame, out, size=512, stride=256, workers=2) == 8
    names = sorted(p.name for p in (out / "input_crops").iterdir())
    assert names == [f"GOPR0372_07_00-000047_s{i:03d}.png" for i in range(1, 9)]
    assert names == sorted(p.name for p in (out / "gt_crops").iterdir())

    sharp = read_image(tmp_path / "sharp.png")
    offsets = [(top, left) for top in (0, 208) for left in (0, 256, 512, 768)]  # row-major numbering
    crops = PreparedCrops(out)
    assert len(crops) == 8 and crops.name == "crops-crops"
    for i, (top, left) in enumerate(offsets):
        blur_crop, sharp_crop, name = crops[i]
        assert name == f"GOPR0372_07_00-000047_s{i + 1:03d}"
        expect = sharp[:, top : top + 512, left : left + 512]
        torch.testing.assert_close(sharp_crop, expect, rtol=0, atol=0)
        torch.testing.assert_close(blur_crop, 1 - expect, rtol=0, atol=1e-6)

    with pytest.raises(FileExistsError, match="overwrite"):
        prepare_crops(gopro_frame, out, size=512, stride=256)
    (out / "input_crops" / "stale_s001.png").write_bytes(b"old")
    assert prepare_crops(gopro_frame, out, size=640, stride=640, workers=0, overwrite=True) == 2 * 2
    assert not (out / "input_crops" / "stale_s001.png").exists()  # replaced, not mixed


def test_prepare_refuses_small_images_and_leaves_nothing(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png", noise_img(1, 100, 120))
    write_image(tmp_path / "b.png", noise_img(2, 100, 120))
    pairs = PairedFiles([Pair(tmp_path / "a.png", tmp_path / "b.png", "small")], name="s", root=tmp_path)
    with pytest.raises(DatasetError, match=r"'small' \(100x120\).*128-px"):
        prepare_crops(pairs, tmp_path / "out", size=128, stride=64, workers=1)
    assert not (tmp_path / "out" / "input_crops").exists() and not (tmp_path / "out" / "gt_crops").exists()
    with pytest.raises(ValueError, match="stride"):
        prepare_crops(pairs, tmp_path / "out2", size=64, stride=0)


def test_cli_gopro_tree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "downloads" / "GOPRO_Large" / "train"
    for scene in ("GOPR0372_07_00", "GOPR0374_11_00"):
        for sub in ("blur", "sharp"):
            (data / scene / sub).mkdir(parents=True)
            write_image(data / scene / sub / "000001.png", noise_img(len(scene + sub), 512, 768))
    out = tmp_path / "gopro_crops"
    assert main(["gopro", "--data", str(tmp_path), "--out", str(out), "--workers", "2"]) == 0
    assert "GoPro-train: 2 pairs" in capsys.readouterr().out
    names = [PreparedCrops(out)[i][2] for i in range(4)]  # 512x768 -> rows [0] x cols [0, 256]
    assert names == [f"GOPR037{s}_{t}_00-000001_s00{k}" for s, t in (("2", "07"), ("4", "11")) for k in (1, 2)]
    assert main(["gopro", "--data", str(tmp_path), "--out", str(out)]) == 2  # non-empty --out
    assert "not empty" in capsys.readouterr().err
    assert main(["sidd", "--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "https://abdokamel.github.io/sidd/" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["rain13k", "--data", str(tmp_path), "--out", str(out)])
