"""SIDD readers: .mat blocks (v5 and v7.3), SIDD-Medium folders, submission writers. Files live in tmp_path."""

from __future__ import annotations

import base64
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
import torch

from hinet.data import (
    DatasetError,
    DatasetNotFoundError,
    SIDDBenchmark,
    SIDDMedium,
    SIDDValidation,
    write_image,
    write_sidd_kaggle_csv,
    write_sidd_submission,
)
from hinet.data.verify import verify_pairs

IMAGES, BLOCKS = 2, 3  # tiny stand-in for the real 40 x 32


def blocks(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (IMAGES, BLOCKS, 256, 256, 3), dtype=np.uint8)


def save_mat_v73(path: Path, variables: dict[str, np.ndarray]) -> None:
    """Write a MATLAB v7.3-style file: HDF5 with a 512-byte MATLAB user block, arrays stored column-major.

    MATLAB writes an (N, B, H, W, C) array so that HDF5 readers see the axes reversed, (C, W, H, B, N);
    writing ``arr.transpose()`` (all axes reversed) reproduces that.
    """
    with h5py.File(path, "w", userblock_size=512) as f:
        for key, arr in variables.items():
            ds = f.create_dataset(key, data=arr.transpose())
            ds.attrs["MATLAB_class"] = np.bytes_(str(arr.dtype))
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: test HDF5 schema 1.00 ."
    with open(path, "r+b") as f:
        f.write(header.ljust(116) + b"\x00" * 8 + b"\x00\x02" + b"IM")


@pytest.fixture(scope="module")
def val_arrays() -> tuple[np.ndarray, np.ndarray]:
    return blocks(1), blocks(2)


@pytest.mark.parametrize("version", ["v5", "v7.3"])
def test_validation_blocks(tmp_path: Path, val_arrays, version: str) -> None:
    noisy, gt = val_arrays
    if version == "v5":
        scipy.io.savemat(tmp_path / "ValidationNoisyBlocksSrgb.mat", {"ValidationNoisyBlocksSrgb": noisy})
        scipy.io.savemat(tmp_path / "ValidationGtBlocksSrgb.mat", {"ValidationGtBlocksSrgb": gt})
    else:
        save_mat_v73(tmp_path / "ValidationNoisyBlocksSrgb.mat", {"ValidationNoisyBlocksSrgb": noisy})
        save_mat_v73(tmp_path / "ValidationGtBlocksSrgb.mat", {"ValidationGtBlocksSrgb": gt})
        assert h5py.is_hdf5(tmp_path / "ValidationGtBlocksSrgb.mat")
    ds = SIDDValidation(tmp_path)
    assert (len(ds), ds.name, ds.synthetic, ds.root) == (IMAGES * BLOCKS, "SIDD-val", False, tmp_path)
    names = [ds[k][2] for k in range(len(ds))]
    assert names == [f"ValidationBlocksSrgb_{k}" for k in range(IMAGES * BLOCKS)]
    assert [ds.scene(k) for k in range(len(ds))] == ["0000"] * BLOCKS + ["0001"] * BLOCKS  # the source image
    x, y, _ = ds[4]  # k = 4 -> image 1, block 1
    assert x.dtype == torch.float32 and x.shape == (3, 256, 256)
    torch.testing.assert_close(x, torch.from_numpy(noisy[1, 1]).permute(2, 0, 1).float() / 255)
    torch.testing.assert_close(y, torch.from_numpy(gt[1, 1]).permute(2, 0, 1).float() / 255)
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_validation_bad_files(tmp_path: Path, val_arrays) -> None:
    noisy, gt = val_arrays
    with pytest.raises(DatasetNotFoundError) as err:
        SIDDValidation(tmp_path)
    assert "ValidationNoisyBlocksSrgb.mat" in str(err.value) and "https://abdokamel.github.io/sidd/" in str(err.value)

    scipy.io.savemat(tmp_path / "ValidationNoisyBlocksSrgb.mat", {"Noisy": noisy})  # wrong key
    scipy.io.savemat(tmp_path / "ValidationGtBlocksSrgb.mat", {"ValidationGtBlocksSrgb": gt})
    with pytest.raises(DatasetError, match=r"ValidationNoisyBlocksSrgb\.mat.*'ValidationNoisyBlocksSrgb'.*256, 256, 3"):
        SIDDValidation(tmp_path)

    scipy.io.savemat(tmp_path / "ValidationNoisyBlocksSrgb.mat", {"ValidationNoisyBlocksSrgb": noisy[:, :, :128]})
    with pytest.raises(DatasetError, match=r"\(2, 3, 128, 256, 3\)"):
        SIDDValidation(tmp_path)

    scipy.io.savemat(tmp_path / "ValidationNoisyBlocksSrgb.mat", {"ValidationNoisyBlocksSrgb": noisy / 255.0})
    with pytest.raises(DatasetError, match="double"):
        SIDDValidation(tmp_path)

    save_mat_v73(tmp_path / "ValidationNoisyBlocksSrgb.mat", {"Other": noisy})
    with pytest.raises(DatasetError, match=r"no variable 'ValidationNoisyBlocksSrgb'.*Other"):
        SIDDValidation(tmp_path)

    (tmp_path / "ValidationNoisyBlocksSrgb.mat").write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(DatasetError, match="ValidationNoisyBlocksSrgb.mat"):
        SIDDValidation(tmp_path)
    (tmp_path / "ValidationNoisyBlocksSrgb.mat").write_bytes(b"")
    with pytest.raises(DatasetError, match="ValidationNoisyBlocksSrgb.mat"):
        SIDDValidation(tmp_path)

    # header fine, pixel data cut off: detected when the arrays are loaded (first item access)
    scipy.io.savemat(tmp_path / "ValidationNoisyBlocksSrgb.mat", {"ValidationNoisyBlocksSrgb": noisy})
    data = (tmp_path / "ValidationNoisyBlocksSrgb.mat").read_bytes()
    (tmp_path / "ValidationNoisyBlocksSrgb.mat").write_bytes(data[: len(data) // 2])
    ds = SIDDValidation(tmp_path)
    with pytest.raises(DatasetError, match="ValidationNoisyBlocksSrgb.mat"):
        ds[0]


def test_benchmark_and_submission(tmp_path: Path) -> None:
    noisy = blocks(3)
    scipy.io.savemat(tmp_path / "BenchmarkNoisyBlocksSrgb.mat", {"BenchmarkNoisyBlocksSrgb": noisy})
    ds = SIDDBenchmark(tmp_path)
    x, clean, name = ds[5]
    assert clean is None and name == "BenchmarkBlocksSrgb_5"
    assert ds.scene(5) == "0001" and ds.scene(2) == "0000"  # 3 blocks per image: block 5 is image 1's
    with pytest.raises(IndexError):
        ds.scene(len(ds))
    torch.testing.assert_close(x, torch.from_numpy(noisy[1, 2]).permute(2, 0, 1).float() / 255)

    out = write_sidd_submission(tmp_path / "SubmitSrgb.mat", noisy, time_mp=0.5)
    mat = scipy.io.loadmat(out)
    assert mat["DenoisedBlocksSrgb"].dtype == np.uint8
    np.testing.assert_array_equal(mat["DenoisedBlocksSrgb"], noisy)
    assert mat["TimeMPSrgb"].item() == 0.5
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]

    # float input in [0, 1]: clipped and rounded to the nearest uint8 level
    as_float = noisy.astype(np.float32) / 255.0
    as_float[0, 0, 0, 0] = [1.7, -0.2, 0.5]
    mat = scipy.io.loadmat(write_sidd_submission(tmp_path / "f.mat", torch.from_numpy(as_float)))
    np.testing.assert_array_equal(mat["DenoisedBlocksSrgb"][0, 0, 0, 0], [255, 0, 128])
    np.testing.assert_array_equal(mat["DenoisedBlocksSrgb"][1], noisy[1])

    with pytest.raises(ValueError, match="shape"):
        write_sidd_submission(tmp_path / "bad.mat", noisy[:, :, :100])
    with pytest.raises(ValueError, match="dtype"):
        write_sidd_submission(tmp_path / "bad.mat", noisy.astype(np.int32))

    # each BLOCK field is 262,144 base64 chars, above the csv module's default field limit: split by hand
    lines = write_sidd_kaggle_csv(tmp_path / "SubmitSrgb.csv", noisy).read_text().splitlines()
    rows = [line.split(",") for line in lines]
    assert rows[0] == ["ID", "BLOCK"] and len(rows) == 1 + IMAGES * BLOCKS
    block4 = np.frombuffer(base64.b64decode(rows[1 + 4][1]), dtype=np.uint8).reshape(256, 256, 3)
    assert rows[1 + 4][0] == "4"
    np.testing.assert_array_equal(block4, noisy[1, 1])


def _write_scene(scene: Path, inst: str, rng: np.random.Generator) -> dict[str, torch.Tensor]:
    scene.mkdir(parents=True)
    out = {}
    for cap in ("010", "011"):
        for kind in ("NOISY", "GT"):
            img = torch.from_numpy(rng.integers(0, 256, (3, 12, 16))).float() / 255
            write_image(scene / f"{inst}_{kind}_SRGB_{cap}.PNG", img)
            out[f"{inst}_{kind}_{cap}"] = img
    return out


def test_sidd_medium(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    data = tmp_path / "SIDD_Medium_Srgb" / "Data"
    written = _write_scene(data / "0002_001_S6_00100_00060_3200_L", "0002", rng)
    written |= _write_scene(data / "0001_001_GP_00100_00060_5500_N", "0001", rng)
    ds = SIDDMedium(tmp_path / "SIDD_Medium_Srgb")
    assert [ds[i][2] for i in range(len(ds))] == ["0001_SRGB_010", "0001_SRGB_011", "0002_SRGB_010", "0002_SRGB_011"]
    noisy, gt, _ = ds[3]
    torch.testing.assert_close(noisy, written["0002_NOISY_011"])
    torch.testing.assert_close(gt, written["0002_GT_011"])
    verify_pairs(ds, progress=False, decode="header")

    lonely = data / "0001_001_GP_00100_00060_5500_N" / "0001_GT_SRGB_010.PNG"
    lonely.rename(lonely.with_name("0001_GT_SRGB_012.PNG"))
    with pytest.raises(DatasetError, match=r"0001_NOISY_SRGB_010\.PNG.*0001_GT_SRGB_010\.PNG"):
        SIDDMedium(tmp_path / "SIDD_Medium_Srgb")

    with pytest.raises(DatasetNotFoundError, match="Data/<scene>"):
        SIDDMedium(tmp_path)
