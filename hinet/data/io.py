"""Image file I/O for the dataset readers, and the errors they raise.

Conventions (used by every module in :mod:`hinet.data`):

* An image tensor is ``float32``, **CHW**, **RGB**, values in **[0, 1]**.
* Reading drops an alpha channel, expands palettes and repeats a gray channel three times; 8-bit files are
  divided by 255, 16-bit gray PNGs by 65535 (Pillow reduces 16-bit-per-channel RGB PNGs to 8 bits).
* Writing takes a CHW RGB tensor in [0, 1], clamps it, scales by 255 and **rounds** to ``uint8`` before PNG
  encoding, so ``write_image(read_image(p))`` is lossless for 8-bit files.
* Writes are atomic: the bytes go to a temporary file in the target folder, which is then ``os.replace``-d.

Decoding and encoding use Pillow. (``torchvision.io`` decodes PNGs faster, but
torchvision 0.29 deprecated its image codecs in favour of TorchCodec, and it cannot decode 16-bit gray to
float.) Pillow raises on truncated PNG and JPEG files -- unless some code sets
``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` -- and those errors are re-raised as :class:`DatasetError` naming the
file. Header-only size reads parse the header lazily, without decoding pixels.
"""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..atomic import atomic_write_bytes

__all__ = [
    "IMAGE_EXTENSIONS",
    "DatasetError",
    "DatasetNotFoundError",
    "is_image_file",
    "read_image",
    "read_image_size",
    "to_uint8",
    "write_image",
]

#: File extensions treated as images (compared case-insensitively; SIDD ships ``.PNG``).
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg")


# What Pillow raises on corrupt, truncated or hostile files: OSError ("image file is truncated",
# UnidentifiedImageError), SyntaxError ("broken PNG file"), ValueError, EOFError, struct.error on short headers,
# and DecompressionBombError (an Exception) for absurd declared sizes.
DECODE_ERRORS: tuple[type[BaseException], ...] = (OSError, SyntaxError, ValueError, EOFError, struct.error,
                                                  Image.DecompressionBombError)


class DatasetError(ValueError):
    """A dataset file exists but is unreadable, unpaired or inconsistent. The message names the file(s)."""


class DatasetNotFoundError(FileNotFoundError):
    """A dataset (or one of its required folders/files) is not on disk.

    The message names what was searched, the layout that was expected and where the dataset is published.
    """

    @classmethod
    def for_dataset(cls, title: str, where: str | os.PathLike[str], layout: str, url: str) -> DatasetNotFoundError:
        """Build the standard message: ``<title> not found <where>. Expected layout: ... Published at: <url>``."""
        return cls(f"{title} not found {where}.\nExpected layout:\n{layout}\nPublished at: {url}")


def is_image_file(path: str | os.PathLike[str]) -> bool:
    """True when the file name ends in one of :data:`IMAGE_EXTENSIONS` (any case)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def read_image(path: str | os.PathLike[str]) -> torch.Tensor:
    """Decode a PNG/JPEG file to a float32 tensor of shape (3, H, W), RGB, values in [0, 1].

    Raises:
        FileNotFoundError: the file does not exist.
        DatasetError: the file cannot be decoded (truncated, corrupt, unsupported format).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode.startswith("I"):  # 16-bit (or 32-bit int) gray: scale 0..65535 -> 0..1
                gray = np.asarray(im, dtype=np.float32) / 65535.0
                hwc = np.repeat(np.clip(gray, 0.0, 1.0)[:, :, None], 3, axis=2)
            else:  # L, LA, P, RGBA, CMYK, ...: Pillow's conversion to 8-bit RGB (alpha dropped)
                hwc = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    except DECODE_ERRORS as err:
        raise DatasetError(f"cannot decode image {path}: {err}") from None
    return torch.from_numpy(np.ascontiguousarray(hwc.transpose(2, 0, 1)))  # (H, W, 3) -> (3, H, W)


def read_image_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """Return ``(height, width)`` from the file header only (no pixel decoding).

    Raises:
        FileNotFoundError: the file does not exist.
        DatasetError: the header cannot be parsed.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        with Image.open(path) as im:
            width, height = im.size
    except DECODE_ERRORS as err:  # PIL.UnidentifiedImageError is an OSError
        raise DatasetError(f"cannot read the image header of {path}: {err}") from None
    return height, width


def to_uint8(img: torch.Tensor) -> torch.Tensor:
    """Map a float tensor in [0, 1] (any shape) to uint8 in [0, 255]: clamp, scale by 255, round half to even."""
    if not torch.is_floating_point(img):
        raise TypeError(f"expected a floating-point tensor in [0, 1], got dtype {img.dtype}")
    return img.detach().clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8)


def write_image(path: str | os.PathLike[str], img: torch.Tensor, *, compression_level: int = 3) -> None:
    """Write a CHW RGB tensor in [0, 1] (C = 3, or 1 for gray) as an 8-bit PNG, atomically.

    ``compression_level`` 3 matches the official HINet crop scripts (cv2 PNG compression 3).
    """
    if img.ndim != 3 or img.shape[0] not in (1, 3):
        raise ValueError(f"write_image expects a (3, H, W) or (1, H, W) tensor, got shape {tuple(img.shape)}")
    hwc = to_uint8(img.cpu()).permute(1, 2, 0).numpy()  # (C, H, W) -> (H, W, C) uint8
    pil = Image.fromarray(hwc[:, :, 0] if hwc.shape[2] == 1 else hwc)
    buf = io.BytesIO()
    pil.save(buf, format="PNG", compress_level=compression_level)
    atomic_write_bytes(path, buf.getvalue())
