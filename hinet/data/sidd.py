"""SIDD (Smartphone Image Denoising Dataset) readers and benchmark submission writers.

Published at https://abdokamel.github.io/sidd/ . Three parts are read:

* :class:`SIDDMedium` -- the SIDD-Medium sRGB training set, ``Data/<scene>/NNNN_{NOISY,GT}_SRGB_01x.PNG``.
* :class:`SIDDValidation` -- the 1280 validation blocks, ``ValidationNoisyBlocksSrgb.mat`` /
  ``ValidationGtBlocksSrgb.mat`` (uint8, shape (40 images, 32 blocks, 256, 256, 3), RGB).
* :class:`SIDDBenchmark` -- the 1280 benchmark blocks without ground truth (``BenchmarkNoisyBlocksSrgb.mat``).

The .mat files are MAT v5/v7 in every peer (read with ``scipy.io.loadmat``); MAT v7.3 (HDF5) is also
accepted and read with h5py. HDF5 stores MATLAB's column-major arrays with the axes reversed, so a
(40, 32, 256, 256, 3) variable appears as (3, 256, 256, 32, 40) and is transposed back here.

Submission formats (see :func:`write_sidd_submission`, :func:`write_sidd_kaggle_csv`):

* The official MATLAB kit (``SIDD_Denoise.m``) saves ``SubmitSrgb.mat`` holding ``DenoisedBlocksSrgb`` (a
  40x32 cell of 256x256x3 blocks) and ``TimeMPSrgb``; Python submitters save the same key as a 5-D
  uint8 array of shape (40, 32, 256, 256, 3). We write the array form, MAT v5, zlib-compressed.
* The benchmark now runs on Kaggle (kaggle.com/competitions/sidd-benchmark-srgb-psnr); the SIDD demo script
  for it writes ``SubmitSrgb.csv`` with columns ``ID`` (0..1279, image-major) and ``BLOCK`` (base64 of the
  block's uint8 bytes, (256, 256, 3) C order, RGB). Format taken from that script as published by users;
  not checked against the server.
"""

from __future__ import annotations

import base64
import csv
import io as _io
import os
import re
from functools import cached_property
from pathlib import Path

import h5py
import numpy as np
import scipy.io
import torch
from torch.utils.data import Dataset

from ..atomic import atomic_write_bytes
from .io import DatasetError, DatasetNotFoundError
from .paired import Pair, PairedFiles

__all__ = [
    "SIDD_URL",
    "SIDD_MEDIUM_LAYOUT",
    "SIDD_VAL_LAYOUT",
    "SIDD_BENCHMARK_LAYOUT",
    "SIDDBenchmark",
    "SIDDMedium",
    "SIDDValidation",
    "read_sidd_blocks",
    "sidd_blocks_shape",
    "write_sidd_kaggle_csv",
    "write_sidd_submission",
]

SIDD_URL = "https://abdokamel.github.io/sidd/"
SIDD_MEDIUM_LAYOUT = (
    "  <root>/Data/<scene>/NNNN_NOISY_SRGB_010.PNG, NNNN_GT_SRGB_010.PNG, ..._011.PNG  (SIDD_Medium_Srgb)"
)
SIDD_VAL_LAYOUT = "  <root>/ValidationNoisyBlocksSrgb.mat and <root>/ValidationGtBlocksSrgb.mat"
SIDD_BENCHMARK_LAYOUT = "  <root>/BenchmarkNoisyBlocksSrgb.mat"

BLOCK_SHAPE = (256, 256, 3)
_EXPECTED = "a uint8 array of shape (images, blocks, 256, 256, 3)"


# ---------------------------------------------------------------------------------------------------------
# .mat block files


def _is_v73(path: Path) -> bool:
    # MAT v7.3 files are HDF5 files with a 512-byte MATLAB user block; h5py finds the signature after it.
    return h5py.is_hdf5(path)


def _says_v73(path: Path) -> bool:
    """True when the 116-byte MATLAB text header announces a v7.3 (HDF5) file."""
    with open(path, "rb") as f:
        return f.read(116).startswith(b"MATLAB 7.3")


def _open_v73(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except OSError as err:  # h5py: "Unable to synchronously open file (truncated file: eof = ...)"
        raise DatasetError(f"{path}: truncated or corrupt MAT v7.3 (HDF5) file: {_h5_reason(err)}") from None


def _h5_reason(err: OSError) -> str:
    text = str(err)
    inner = re.search(r"\((.*)\)", text)  # h5py puts HDF5's own reason in parentheses
    return inner[1] if inner else text


def _v73_dataset(f: h5py.File, path: Path, key: str) -> h5py.Dataset:
    if key not in f:
        raise DatasetError(f"{path}: no variable {key!r} (found {sorted(f.keys())}); expected {_EXPECTED}")
    node = f[key]
    if isinstance(node, h5py.Group):
        raise DatasetError(f"{path}: variable {key!r} is a MATLAB struct (an HDF5 group holding "
                           f"{sorted(node.keys())}); expected {_EXPECTED}")
    if not isinstance(node, h5py.Dataset):
        raise DatasetError(f"{path}: variable {key!r} is a {type(node).__name__}; expected {_EXPECTED}")
    if h5py.check_dtype(ref=node.dtype) is not None:
        raise DatasetError(f"{path}: variable {key!r} is a MATLAB cell array (HDF5 object references); "
                           f"expected {_EXPECTED}")
    return node


def sidd_blocks_shape(path: str | os.PathLike[str], key: str) -> tuple[int, int, int, int, int]:
    """Validate a SIDD block file from its header and return the MATLAB-order shape (N, B, 256, 256, 3).

    Raises:
        FileNotFoundError: the file is missing.
        DatasetError: the file is not a (complete) MAT file, lacks ``key``, or the variable is not a uint8 array
            (N, B, 256, 256, 3) (a struct or cell array is named as such).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SIDD block file not found: {path}")
    if _is_v73(path):
        with _open_v73(path) as f:
            ds = _v73_dataset(f, path, key)
            shape, dtype = tuple(reversed(ds.shape)), str(ds.dtype)
    else:
        if _says_v73(path):
            raise DatasetError(f"{path}: the header announces MAT v7.3 but no HDF5 data follow (truncated file, "
                               f"{path.stat().st_size} bytes)")
        size = path.stat().st_size
        if size < 128:
            raise DatasetError(f"{path} is not a MAT file: {size} bytes, shorter than the 128-byte MAT header")
        try:
            variables = scipy.io.whosmat(str(path))
        except Exception as err:  # scipy's reader raises IndexError, ValueError, struct.error... on bad bytes
            raise DatasetError(f"{path} is not a readable MAT file ({type(err).__name__}: {err})") from None
        found = {name: (tuple(shape), cls) for name, shape, cls in variables}
        if key not in found:
            raise DatasetError(f"{path}: no variable {key!r} (found {sorted(found)}); expected {_EXPECTED}")
        shape, dtype = found[key]
    if dtype != "uint8" or len(shape) != 5 or tuple(shape[2:]) != BLOCK_SHAPE:
        raise DatasetError(f"{path}: variable {key!r} is {dtype} of shape {shape}; expected {_EXPECTED}")
    return shape  # type: ignore[return-value]


def read_sidd_blocks(path: str | os.PathLike[str], key: str) -> np.ndarray:
    """Load a SIDD block variable as a C-contiguous uint8 array (N, B, 256, 256, 3), RGB, values 0..255.

    Raises:
        FileNotFoundError: the file is missing.
        DatasetError: as :func:`sidd_blocks_shape`, or the pixel data are truncated or undecodable.
    """
    path = Path(path)
    shape = sidd_blocks_shape(path, key)
    if _is_v73(path):
        with _open_v73(path) as f:
            try:
                # HDF5 axes are MATLAB's reversed: (3, 256, 256, B, N) -> transpose all axes -> (N, B, 256, 256, 3)
                data = np.ascontiguousarray(_v73_dataset(f, path, key)[()].transpose())
            except OSError as err:
                raise DatasetError(f"{path}: cannot read variable {key!r}: {_h5_reason(err)}") from None
    else:
        try:
            data = np.ascontiguousarray(scipy.io.loadmat(str(path), variable_names=[key])[key])
        except Exception as err:  # e.g. truncated data: "could not read bytes", zlib errors
            raise DatasetError(f"{path}: cannot read variable {key!r} ({type(err).__name__}: {err})") from None
    if data.shape != tuple(shape) or data.dtype != np.uint8:
        raise DatasetError(f"{path}: variable {key!r} decoded as {data.dtype} {data.shape}; expected {_EXPECTED}")
    return data


def _block_to_tensor(block: np.ndarray) -> torch.Tensor:
    # (256, 256, 3) uint8 HWC -> (3, 256, 256) float32 in [0, 1]
    return torch.from_numpy(np.ascontiguousarray(block)).permute(2, 0, 1).to(torch.float32).div_(255.0)


def _require_file(root: Path, filename: str, title: str, layout: str) -> Path:
    path = root / filename
    if not path.is_file():
        raise DatasetNotFoundError.for_dataset(title, f"at {path}", layout, SIDD_URL)
    return path


def _block_scene(index: int, blocks: int, count: int, title: str) -> str:
    """Scene of block ``index``: its source image ``index // blocks`` as 4 digits (``"0007"`` for image 7);
    the 32 blocks of one image share its content, so they are one scene."""
    if not 0 <= index < count:
        raise IndexError(f"{title} index {index} out of range [0, {count})")
    return f"{index // blocks:04d}"


class SIDDValidation(Dataset):
    """SIDD sRGB validation blocks: 40 images x 32 blocks = 1280 items of 256x256.

    Items ``(noisy, gt, name)``: float32 (3, 256, 256) RGB in [0, 1]; name ``ValidationBlocksSrgb_{k}`` with
    ``k = image * blocks + block`` (the naming of HINet's val lmdb); :meth:`scene` is the image, ``"0007"``
    for image 7 (its blocks share content). Keys, shapes and dtypes are checked from the
    file headers at construction; the pixel arrays (about 250 MB per file) are loaded once, on first access
    (call :meth:`load` before forking DataLoader workers to share them).
    """

    synthetic = False
    NOISY, GT = "ValidationNoisyBlocksSrgb", "ValidationGtBlocksSrgb"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root: Path | None = Path(root)
        self.name = "SIDD-val"
        self.noisy_path = _require_file(self.root, f"{self.NOISY}.mat", "SIDD validation", SIDD_VAL_LAYOUT)
        self.gt_path = _require_file(self.root, f"{self.GT}.mat", "SIDD validation", SIDD_VAL_LAYOUT)
        shape_noisy = sidd_blocks_shape(self.noisy_path, self.NOISY)
        shape_gt = sidd_blocks_shape(self.gt_path, self.GT)
        if shape_noisy != shape_gt:
            raise DatasetError(
                f"SIDD validation shape mismatch: {self.noisy_path} holds {shape_noisy}, "
                f"{self.gt_path} holds {shape_gt}"
            )
        self.images, self.blocks = shape_noisy[0], shape_noisy[1]

    @cached_property
    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return read_sidd_blocks(self.noisy_path, self.NOISY), read_sidd_blocks(self.gt_path, self.GT)

    def load(self) -> None:
        """Load both block arrays now (otherwise done on the first item access)."""
        _ = self._arrays

    def __len__(self) -> int:
        return self.images * self.blocks

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, str]:
        if not 0 <= index < len(self):
            raise IndexError(f"SIDD validation index {index} out of range [0, {len(self)})")
        image, block = divmod(index, self.blocks)
        noisy, gt = self._arrays
        name = f"ValidationBlocksSrgb_{index}"
        return _block_to_tensor(noisy[image, block]), _block_to_tensor(gt[image, block]), name

    def scene(self, index: int) -> str:
        """The source image of block ``index`` (``"0007"`` for image 7, blocks ``7 * blocks`` onwards)."""
        return _block_scene(index, self.blocks, len(self), "SIDD validation")


class SIDDBenchmark(Dataset):
    """SIDD sRGB benchmark blocks (no public ground truth): 1280 items of 256x256.

    Items ``(noisy, None, name)``: ``clean`` is **None**, so the default DataLoader collate cannot batch them;
    iterate the dataset directly or pass ``collate_fn=list``. Name ``BenchmarkBlocksSrgb_{k}``,
    ``k = image * blocks + block``; :meth:`scene` is the image, as for :class:`SIDDValidation`.
    Write results with :func:`write_sidd_submission`.
    """

    synthetic = False
    NOISY = "BenchmarkNoisyBlocksSrgb"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root: Path | None = Path(root)
        self.name = "SIDD-benchmark"
        self.noisy_path = _require_file(self.root, f"{self.NOISY}.mat", "SIDD benchmark", SIDD_BENCHMARK_LAYOUT)
        shape = sidd_blocks_shape(self.noisy_path, self.NOISY)
        self.images, self.blocks = shape[0], shape[1]

    @cached_property
    def _noisy(self) -> np.ndarray:
        return read_sidd_blocks(self.noisy_path, self.NOISY)

    def load(self) -> None:
        """Load the block array now (otherwise done on the first item access)."""
        _ = self._noisy

    def __len__(self) -> int:
        return self.images * self.blocks

    def __getitem__(self, index: int) -> tuple[torch.Tensor, None, str]:
        if not 0 <= index < len(self):
            raise IndexError(f"SIDD benchmark index {index} out of range [0, {len(self)})")
        image, block = divmod(index, self.blocks)
        return _block_to_tensor(self._noisy[image, block]), None, f"BenchmarkBlocksSrgb_{index}"

    def scene(self, index: int) -> str:
        """The source image of block ``index`` (``"0007"`` for image 7)."""
        return _block_scene(index, self.blocks, len(self), "SIDD benchmark")


# ---------------------------------------------------------------------------------------------------------
# SIDD-Medium sRGB folders


class SIDDMedium(PairedFiles):
    """SIDD-Medium sRGB training pairs (320 pairs of 12-16 MP images in the full set).

    Every ``Data/<scene>/*_NOISY_SRGB_*.PNG`` is paired with the file whose name has ``NOISY`` replaced by
    ``GT``. Item names drop ``_NOISY`` (e.g. ``0001_SRGB_010``) -- the names HINet's crop script gives the
    crops of both sides. Scenes and files are sorted by name.

    Raises:
        DatasetNotFoundError: ``<root>/Data`` is missing or holds no scene folders.
        DatasetError: an image without its twin, or an image that is neither NOISY_SRGB nor GT_SRGB.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        root = Path(root)
        data = root / "Data"
        scenes = sorted(p for p in data.iterdir() if p.is_dir()) if data.is_dir() else []
        if not scenes:
            raise DatasetNotFoundError.for_dataset("SIDD-Medium sRGB", f"at {data}", SIDD_MEDIUM_LAYOUT, SIDD_URL)
        pairs: list[Pair] = []
        for scene in scenes:
            files = {p.name: p for p in scene.iterdir() if p.is_file() and p.suffix.lower() == ".png"}
            for fname in sorted(files):  # every image must be one side of a NOISY/GT pair
                if "_NOISY_SRGB_" not in fname and "_GT_SRGB_" not in fname:
                    raise DatasetError(
                        f"unexpected image {files[fname]} in a SIDD scene folder: "
                        "names must contain _NOISY_SRGB_ or _GT_SRGB_"
                    )
            noisy = [f for f in sorted(files) if "_NOISY_SRGB_" in f]
            for fname in noisy:
                twin = fname.replace("_NOISY_SRGB_", "_GT_SRGB_")
                if twin not in files:
                    raise DatasetError(f"unpaired SIDD image {files[fname]}: expected its twin {scene / twin}")
                pairs.append(Pair(files[fname], files[twin], Path(fname.replace("_NOISY", "")).stem))
            for fname in sorted(files):
                twin = fname.replace("_GT_SRGB_", "_NOISY_SRGB_")
                if "_GT_SRGB_" in fname and twin not in files:
                    raise DatasetError(f"unpaired SIDD image {files[fname]}: expected its twin {scene / twin}")
        if not pairs:
            raise DatasetNotFoundError.for_dataset(
                "SIDD-Medium sRGB images", f"in the scene folders of {data}", SIDD_MEDIUM_LAYOUT, SIDD_URL
            )
        super().__init__(pairs, name="SIDD-Medium", root=root)


# ---------------------------------------------------------------------------------------------------------
# submission writers


def _blocks_uint8(blocks: np.ndarray | torch.Tensor) -> np.ndarray:
    """(N, B, 256, 256, 3) uint8, or float in [0, 1] (clipped, x255, rounded) -> C-contiguous uint8."""
    arr = blocks.detach().cpu().numpy() if isinstance(blocks, torch.Tensor) else np.asarray(blocks)
    if arr.ndim != 5 or arr.shape[2:] != BLOCK_SHAPE:
        raise ValueError(f"SIDD blocks must have shape (images, blocks, 256, 256, 3), got {arr.shape}")
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise ValueError("SIDD blocks contain NaN or infinite values")
        return np.round(np.clip(arr, 0.0, 1.0) * 255.0).astype(np.uint8)
    raise ValueError(f"SIDD blocks must be uint8 (0..255) or float (0..1), got dtype {arr.dtype}")


def write_sidd_submission(
    path: str | os.PathLike[str], blocks: np.ndarray | torch.Tensor, *, time_mp: float | None = None
) -> Path:
    """Write denoised SIDD blocks as the ``.mat`` the SIDD server expects, atomically.

    Args:
        path: output file, conventionally ``SubmitSrgb.mat``.
        blocks: (images, blocks, 256, 256, 3) RGB, uint8 0..255 or float 0..1 (clipped, then rounded to uint8).
        time_mp: optional seconds per megapixel, stored as ``TimeMPSrgb`` as the MATLAB kit does.

    The file holds ``DenoisedBlocksSrgb`` (uint8, same 5-D layout), MAT v5 with zlib compression.
    """
    path = Path(path)
    variables: dict[str, object] = {"DenoisedBlocksSrgb": _blocks_uint8(blocks)}
    if time_mp is not None:
        variables["TimeMPSrgb"] = float(time_mp)
    buf = _io.BytesIO()
    scipy.io.savemat(buf, variables, do_compression=True)
    atomic_write_bytes(path, buf.getvalue())
    return path


def write_sidd_kaggle_csv(path: str | os.PathLike[str], blocks: np.ndarray | torch.Tensor) -> Path:
    """Write the Kaggle form of a SIDD sRGB submission (``ID,BLOCK`` CSV), atomically.

    ``ID`` runs 0..N*B-1 in image-major order (``k = image * blocks + block``); ``BLOCK`` is the base64 of the
    block's (256, 256, 3) uint8 RGB bytes in C order. ``blocks`` as in :func:`write_sidd_submission`.
    """
    path = Path(path)
    arr = _blocks_uint8(blocks)
    flat = arr.reshape(-1, *BLOCK_SHAPE)  # (N*B, 256, 256, 3), image-major
    text = _io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["ID", "BLOCK"])
    for k, block in enumerate(flat):
        writer.writerow([k, base64.b64encode(block.tobytes()).decode("ascii")])
    atomic_write_bytes(path, text.getvalue().encode("ascii"))
    return path
