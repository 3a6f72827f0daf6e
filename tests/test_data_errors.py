"""Bad dataset files give one line naming the file: .mat (v5, v7.3), images (also from DataLoader workers), and
verify_pairs() before a run. Tiny files in the published layouts, written to tmp_path."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
import torch
from test_data_folders import write_pairs
from test_data_sidd import save_mat_v73
from torch.utils.data import DataLoader

from hinet.data import DatasetError, GoPro, PatchDataset, SIDDBenchmark, SIDDValidation, SyntheticPairs
from hinet.data.verify import check_image, verify_pairs
from hinet.errors import one_line

NOISY, GT = "ValidationNoisyBlocksSrgb", "ValidationGtBlocksSrgb"


def _blocks(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (1, 2, 256, 256, 3), dtype=np.uint8)


def _write_val(root: Path, version: str) -> None:
    for key, seed in ((NOISY, 1), (GT, 2)):
        path = root / f"{key}.mat"
        if version == "v7.3":
            save_mat_v73(path, {key: _blocks(seed)})
        else:
            scipy.io.savemat(path, {key: _blocks(seed)}, do_compression=version == "v5-zlib")


def _open_and_read(root: Path) -> None:
    ds = SIDDValidation(root)
    ds.load()


@pytest.mark.parametrize("version", ["v5", "v5-zlib", "v7.3"])
@pytest.mark.parametrize("damage", ["100 bytes", "half", "last 1000 bytes cut", "empty"])
def test_a_damaged_mat_file_is_one_line_naming_it(tmp_path, version, damage):
    _write_val(tmp_path, version)
    path = tmp_path / f"{GT}.mat"
    data = path.read_bytes()
    cut = {"100 bytes": 100, "half": len(data) // 2, "last 1000 bytes cut": len(data) - 1000, "empty": 0}[damage]
    path.write_bytes(data[:cut])
    with pytest.raises(DatasetError) as exc:
        _open_and_read(tmp_path)
    message = one_line(exc.value)
    assert str(path) in message and str(exc.value) == message, message


def test_random_bytes_named_mat(tmp_path):
    _write_val(tmp_path, "v5")
    path = tmp_path / f"{NOISY}.mat"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(DatasetError, match="is not a readable MAT file"):
        _open_and_read(tmp_path)


def test_a_v73_struct_says_what_was_found(tmp_path):
    _write_val(tmp_path, "v7.3")
    path = tmp_path / f"{GT}.mat"
    path.unlink()
    save_mat_v73(path, {"other": np.zeros((2, 2), np.uint8)})
    with h5py.File(path, "r+") as f:
        group = f.create_group(GT)
        group.create_dataset("blocks", data=np.zeros(3))
    with pytest.raises(DatasetError) as exc:
        SIDDValidation(tmp_path)
    message = str(exc.value)
    assert str(path) in message and "MATLAB struct" in message and "['blocks']" in message, message
    assert "no variable" not in message


def test_a_v73_cell_array_says_what_was_found(tmp_path):
    save_mat_v73(tmp_path / "BenchmarkNoisyBlocksSrgb.mat", {"x": np.zeros((2, 2), np.uint8)})
    with h5py.File(tmp_path / "BenchmarkNoisyBlocksSrgb.mat", "r+") as f:
        refs = f.create_dataset("BenchmarkNoisyBlocksSrgb", (2,), dtype=h5py.ref_dtype)
        refs[0] = f["x"].ref
    with pytest.raises(DatasetError, match="cell array"):
        SIDDBenchmark(tmp_path)


def _gopro(tmp_path: Path, n: int = 3) -> Path:
    root = tmp_path / "GoPro"
    write_pairs(root / "test", [f"{i:03d}" for i in range(n)])
    return root


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_a_truncated_image_read_in_a_worker_process_names_the_file(tmp_path):
    root = _gopro(tmp_path, 4)
    bad = root / "test" / "target" / "002.png"
    _truncate(bad)
    loader = DataLoader(GoPro(root, "test"), batch_size=1, num_workers=2)
    with pytest.raises(DatasetError) as exc:
        for _ in loader:
            pass
    assert "Original Traceback" in str(exc.value)  # it really came from a worker, wrapped with its traceback
    message = one_line(exc.value)
    assert message.startswith(f"cannot decode image {bad}: "), message
    assert "Traceback" not in message and "DatasetError" not in message


@pytest.mark.parametrize("decode", ["check", "full", "header"])
def test_verify_pairs_accepts_a_good_set(tmp_path, decode):
    assert verify_pairs(GoPro(_gopro(tmp_path), "test"), progress=False, decode=decode) == 3


def _jpeg_set(tmp_path: Path) -> Path:
    root = tmp_path / "GoPro"
    write_pairs(root / "test", ["a", "b"], ext_in=".jpg")
    return root


# (set builder, damage(root) -> bad path, decode modes that must find it, words)
def _truncated_png(root):
    bad = root / "test" / "input" / "001.png"
    _truncate(bad)
    return bad


def _missing_iend_png(root):  # pixel data complete, the file still ends early
    bad = root / "test" / "target" / "000.png"
    bad.write_bytes(bad.read_bytes()[:-12])
    return bad


def _flipped_byte_png(root):
    bad = root / "test" / "target" / "002.png"
    data = bytearray(bad.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    return bad


def _truncated_jpeg(root):
    bad = root / "test" / "input" / "b.jpg"
    _truncate(bad, 0.8)
    return bad


def _empty(root):
    bad = root / "test" / "input" / "000.png"
    bad.write_bytes(b"")
    return bad


def _deleted(root):
    bad = root / "test" / "target" / "001.png"
    bad.unlink()
    return bad


DAMAGES = [
    (_gopro, _truncated_png, ("check", "full"), ["cannot decode image"]),
    (_gopro, _missing_iend_png, ("check",), ["cannot decode image", "truncated"]),
    (_gopro, _flipped_byte_png, ("check", "full"), ["cannot decode image"]),
    (_jpeg_set, _truncated_jpeg, ("check", "full"), ["cannot decode image", "truncated"]),
    (_gopro, _empty, ("check", "full", "header"), ["cannot decode image"]),
    (_gopro, _deleted, ("check", "full", "header"), ["not found"]),
]


@pytest.mark.parametrize(("make", "damage", "modes", "words"), DAMAGES, ids=[d[1].__name__ for d in DAMAGES])
def test_verify_pairs_names_the_bad_file(tmp_path, make, damage, modes, words):
    root = make(tmp_path)
    ds = GoPro(root, "test")
    bad = damage(root)
    for decode in modes:
        with pytest.raises(DatasetError) as exc:
            verify_pairs(ds, progress=False, decode=decode)
        message = str(exc.value)
        assert str(bad) in message and all(w.lower() in message.lower() for w in words) and "\n" not in message, (
            decode, message)


def test_header_mode_misses_what_check_mode_finds(tmp_path):
    root = _gopro(tmp_path)
    ds = GoPro(root, "test")
    _truncated_png(root)
    assert verify_pairs(ds, progress=False, decode="header") == 3
    with pytest.raises(DatasetError):
        verify_pairs(ds, progress=False)


def test_verify_pairs_reports_size_mismatch_and_counts_the_rest(tmp_path):
    root = _gopro(tmp_path, 4)
    from hinet.data import write_image

    write_image(root / "test" / "target" / "001.png", torch.zeros(3, 12, 14))
    _truncate(root / "test" / "input" / "003.png")
    with pytest.raises(DatasetError) as exc:
        verify_pairs(GoPro(root, "test"), progress=False)
    message = str(exc.value)
    assert message.startswith("size mismatch in pair '001'") and "10x14" in message and "12x14" in message
    assert message.endswith("(and 1 more problem(s) in GoPro-test)")


def test_verify_pairs_follows_patch_datasets_and_passes_synthetic_sets(tmp_path):
    root = _gopro(tmp_path)
    ds = GoPro(root, "test")
    _truncated_png(root)
    with pytest.raises(DatasetError, match="001.png"):
        verify_pairs(PatchDataset(ds, 8), progress=False)
    assert verify_pairs(SyntheticPairs("denoise", "test", count=2, size=16), progress=False) == 2


def test_verify_pairs_reads_sidd_blocks_whole(tmp_path):
    _write_val(tmp_path, "v5")
    assert verify_pairs(SIDDValidation(tmp_path), progress=False) == 2
    _truncate(tmp_path / f"{NOISY}.mat", 0.7)
    with pytest.raises(DatasetError, match=NOISY):
        verify_pairs(SIDDValidation(tmp_path), progress=False)


def test_big_sets_show_a_progress_bar(tmp_path, capsys):
    root = tmp_path / "GoPro"
    write_pairs(root / "test", [f"{i:03d}" for i in range(50)])
    assert verify_pairs(GoPro(root, "test")) == 50
    assert "verify GoPro-test" in capsys.readouterr().err
    verify_pairs(GoPro(root, "test"), progress=False)
    assert "verify" not in capsys.readouterr().err


def test_check_image_returns_height_width(tmp_path):
    root = _jpeg_set(tmp_path)
    for decode in ("check", "full", "header"):
        assert check_image(root / "test" / "input" / "a.jpg", decode) == (10, 14)
    with pytest.raises(ValueError, match="decode"):
        check_image(root / "test" / "input" / "a.jpg", "all")
