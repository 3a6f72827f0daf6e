"""Image I/O, folder-pair datasets (GoPro, HIDE, Rain13k) and locate(), on tiny trees written to tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from hinet.data import (
    HIDE,
    RAIN13K_TEST_SETS,
    DatasetError,
    DatasetNotFoundError,
    GoPro,
    Rain13k,
    locate,
    open_test_sets,
    read_image,
    read_image_size,
    write_image,
)
from hinet.data.verify import verify_pairs


def rand_img(seed: int, h: int = 10, w: int = 14) -> torch.Tensor:
    """Random 8-bit-exact image, (3, h, w) float32 in [0, 1]."""
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (3, h, w))).float() / 255


def write_pairs(folder: Path, names: list[str], seed: int = 0, ext_in: str = ".png", ext_gt: str = ".png") -> dict:
    """Write input/<name><ext_in> and target/<name><ext_gt>; returns {name: (input, target)} tensors."""
    (folder / "input").mkdir(parents=True, exist_ok=True)
    (folder / "target").mkdir(parents=True, exist_ok=True)
    out = {}
    for i, name in enumerate(names):
        x, y = rand_img(seed + 2 * i), rand_img(seed + 2 * i + 1)
        write_image(folder / "input" / f"{name}{ext_in}", x)
        write_image(folder / "target" / f"{name}{ext_gt}", y)
        out[name] = (x, y)
    return out


# ------------------------------------------------------------------------------------------------ io


def test_image_roundtrip_and_modes(tmp_path: Path) -> None:
    x = rand_img(0)
    write_image(tmp_path / "a.png", x)
    y = read_image(tmp_path / "a.png")
    assert y.dtype == torch.float32 and y.shape == (3, 10, 14)
    torch.testing.assert_close(y, x, rtol=0, atol=0)
    assert read_image_size(tmp_path / "a.png") == (10, 14)
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]

    rgb = (x.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 9, np.uint8)]), "RGBA").save(tmp_path / "rgba.png")
    torch.testing.assert_close(read_image(tmp_path / "rgba.png"), x)  # alpha dropped
    Image.fromarray(rgb[:, :, 1], "L").save(tmp_path / "gray.png")
    gray = read_image(tmp_path / "gray.png")
    assert gray.shape == (3, 10, 14) and torch.equal(gray[0], gray[2])
    torch.testing.assert_close(gray[1], x[1])
    Image.fromarray(np.full((4, 5), 65535, np.uint16)).save(tmp_path / "g16.png")
    torch.testing.assert_close(read_image(tmp_path / "g16.png"), torch.ones(3, 4, 5))
    smooth = np.zeros((16, 24, 3), np.uint8)  # JPEG is lossy: use a smooth image with distinct channels
    smooth[..., 0], smooth[..., 1], smooth[..., 2] = np.linspace(0, 255, 24, dtype=np.uint8), 50, 200
    Image.fromarray(smooth).save(tmp_path / "b.jpg", quality=95)
    expect = torch.from_numpy(smooth).permute(2, 0, 1).float() / 255
    assert (read_image(tmp_path / "b.jpg") - expect).abs().max() < 0.03


def test_truncated_and_missing_image(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png", rand_img(1, 64, 64))
    data = (tmp_path / "a.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="cut.png"):
        read_image(tmp_path / "cut.png")
    (tmp_path / "junk.png").write_bytes(b"\x00not an image")
    with pytest.raises(DatasetError, match="junk.png"):
        read_image_size(tmp_path / "junk.png")
    with pytest.raises(FileNotFoundError, match="nope.png"):
        read_image(tmp_path / "nope.png")


# ------------------------------------------------------------------------------------------------ datasets


def test_gopro_flat_and_tree(tmp_path: Path) -> None:
    flat = tmp_path / "GoPro"
    written = write_pairs(flat / "test", ["GOPR0410_11_00-000002", "GOPR0384_11_00-000001"])
    ds = GoPro(flat)  # split="test"
    assert (ds.name, ds.layout, ds.synthetic, ds.root, len(ds)) == ("GoPro-test", "flat", False, flat, 2)
    assert [ds[i][2] for i in range(2)] == ["GOPR0384_11_00-000001", "GOPR0410_11_00-000002"]
    blur, sharp, name = ds[1]
    torch.testing.assert_close(blur, written[name][0])
    torch.testing.assert_close(sharp, written[name][1])
    assert [ds.scene(i) for i in range(2)] == ["GOPR0384_11_00", "GOPR0410_11_00"]  # the video sequence

    tree = tmp_path / "GOPRO_Large"
    for scene, seed in (("GOPR0881_11_01", 10), ("GOPR0372_07_00", 20)):
        base = tree / "train" / scene
        for sub, off in (("blur", 0), ("blur_gamma", 1), ("sharp", 2)):
            (base / sub).mkdir(parents=True)
            for f in ("000047", "000048"):
                write_image(base / sub / f"{f}.png", rand_img(seed + off + int(f)))
    ds = GoPro(tree, "train")
    assert ds.layout == "tree"
    assert [ds[i][2] for i in range(len(ds))] == [
        "GOPR0372_07_00/000047",
        "GOPR0372_07_00/000048",
        "GOPR0881_11_01/000047",
        "GOPR0881_11_01/000048",
    ]
    assert [ds.scene(i) for i in range(len(ds))] == ["GOPR0372_07_00"] * 2 + ["GOPR0881_11_01"] * 2
    blur, sharp, _ = ds[3]  # blur/ is read, not blur_gamma/
    torch.testing.assert_close(blur, rand_img(10 + 0 + 48))
    torch.testing.assert_close(sharp, rand_img(10 + 2 + 48))

    with pytest.raises(DatasetNotFoundError) as err:
        GoPro(tree, "test")
    msg = str(err.value)
    assert "{train,test}/input" in msg and "<scene>/{blur,blur_gamma,sharp}" in msg
    assert "https://seungjunnah.github.io/Datasets/gopro" in msg
    with pytest.raises(ValueError, match="split"):
        GoPro(flat, "val")


def test_hide_and_rain13k(tmp_path: Path) -> None:
    write_pairs(tmp_path / "HIDE" / "test", ["b", "a", "c"])
    hide = HIDE(tmp_path / "HIDE")
    assert hide.name == "HIDE" and [hide[i][2] for i in range(3)] == ["a", "b", "c"]
    assert [hide.scene(i) for i in range(3)] == ["a", "b", "c"]  # no frame number: each image its own scene
    write_pairs(tmp_path / "HIDE2" / "test", ["seqA_0001", "seqA_0002", "GOPR0862_11_00-000007", "seq-b-12"])
    hide = HIDE(tmp_path / "HIDE2")
    assert {hide[i][2]: hide.scene(i) for i in range(4)} == {
        "GOPR0862_11_00-000007": "GOPR0862_11_00", "seq-b-12": "seq-b", "seqA_0001": "seqA", "seqA_0002": "seqA"}
    with pytest.raises(DatasetNotFoundError, match="https://github.com/joanshen0508/HA_deblur"):
        HIDE(tmp_path)

    rain = tmp_path / "Rain13k"
    written = write_pairs(rain / "test" / "Rain100H", ["norain-2", "norain-10"], ext_in=".jpg", ext_gt=".png")
    write_pairs(rain / "train", ["1", "2", "3"])
    ds = Rain13k(rain, "Rain100H")
    assert ds.name == "Rain100H" and [ds[i][2] for i in range(2)] == ["norain-10", "norain-2"]
    assert [ds.scene(i) for i in range(2)] == ["norain-10", "norain-2"]  # every Rain13k image its own scene
    rainy, clean, name = ds[0]
    torch.testing.assert_close(clean, written[name][1])  # PNG target exact; JPEG input decoded
    assert rainy.shape == clean.shape
    assert len(Rain13k(rain, "train")) == 3 and Rain13k(rain, "train").name == "Rain13k-train"
    with pytest.raises(DatasetNotFoundError) as err:
        Rain13k(rain, "Test100")
    assert "Test100" in str(err.value) and "https://github.com/swz30/MPRNet" in str(err.value)
    with pytest.raises(ValueError, match="Rain100X"):
        Rain13k(rain, "Rain100X")


def test_unpaired_and_size_mismatch(tmp_path: Path) -> None:
    root = tmp_path / "HIDE"
    write_pairs(root / "test", ["a", "b"])
    write_image(root / "test" / "input" / "c.png", rand_img(5))
    with pytest.raises(DatasetError, match=r"unpaired image .*input/c\.png"):
        HIDE(root)
    (root / "test" / "input" / "c.png").unlink()
    write_image(root / "test" / "target" / "z.png", rand_img(5))
    with pytest.raises(DatasetError, match=r"unpaired image .*target/z\.png"):
        HIDE(root)
    (root / "test" / "target" / "z.png").unlink()

    write_image(root / "test" / "target" / "b.png", rand_img(6, 12, 14))  # 12x14 vs 10x14
    ds = HIDE(root)
    ds[0]  # "a" is fine
    with pytest.raises(DatasetError) as err:
        ds[1]
    msg = str(err.value)
    assert "input/b.png" in msg and "target/b.png" in msg and "10x14" in msg and "12x14" in msg
    with pytest.raises(DatasetError, match=r"input/b\.png is 10x14.*target/b\.png is 12x14"):
        verify_pairs(ds, progress=False, decode="header")


# ------------------------------------------------------------------------------------------------ locate


def test_locate_any_depth_shallowest_first(tmp_path: Path) -> None:
    deep = tmp_path / "a" / "b" / "c" / "GoPro"  # depth 4 under tmp_path: the root sits 3 folders down
    write_pairs(deep / "test", ["x"])
    assert locate(tmp_path, "gopro") == deep
    shallow = tmp_path / "z" / "gopro_copy"  # sorts after "a" but is shallower
    write_pairs(shallow / "test", ["y"])
    assert locate(tmp_path, "gopro") == shallow

    with pytest.raises(DatasetNotFoundError) as err:
        locate(tmp_path, "hide")  # the flat layout without "HIDE" in the name is not HIDE
    assert "HIDE" in str(err.value) and "https://github.com/joanshen0508/HA_deblur" in str(err.value)

    sidd = tmp_path / "d1" / "d2" / "SIDD"
    sidd.mkdir(parents=True)
    for key in ("ValidationNoisyBlocksSrgb", "ValidationGtBlocksSrgb"):
        scipy.io.savemat(sidd / f"{key}.mat", {key: np.zeros((1, 2, 256, 256, 3), np.uint8)})
    assert locate(tmp_path, "sidd-val") == sidd
    sets = open_test_sets("denoise", tmp_path)
    assert list(sets) == ["SIDD"] and len(sets["SIDD"]) == 2

    with pytest.raises(DatasetNotFoundError) as err:
        locate(tmp_path, "rain13k")
    msg = str(err.value)
    assert "Rain100H" in msg and "Deraining/Datasets/README.md" in msg and str(tmp_path) in msg
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        locate(tmp_path / "missing", "sidd-val")
    with pytest.raises(ValueError, match="unknown dataset"):
        locate(tmp_path, "imagenet")


def test_open_test_sets(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_pairs(data / "deblur" / "GoPro" / "test", ["g1", "g2"])
    assert list(open_test_sets("deblur", data)) == ["GoPro"]  # HIDE is optional
    write_pairs(data / "deblur" / "HIDE" / "test", ["h1"])
    sets = open_test_sets("deblur", data)
    assert list(sets) == ["GoPro", "HIDE"] and (len(sets["GoPro"]), len(sets["HIDE"])) == (2, 1)

    rain = data / "derain" / "Rain13k"
    for s in RAIN13K_TEST_SETS[:-1]:
        write_pairs(rain / "test" / s, ["1"])
    with pytest.raises(DatasetNotFoundError, match="Test1200"):
        open_test_sets("derain", data)  # each of the five sets is required
    write_pairs(rain / "test" / "Test1200", ["1"])
    sets = open_test_sets("derain", data)
    assert list(sets) == list(RAIN13K_TEST_SETS) and all(d.root == rain for d in sets.values())
    with pytest.raises(ValueError, match="unknown task"):
        open_test_sets("dehaze", data)
