"""GoPro and HIDE deblurring pairs (1280x720 frames).

Two on-disk layouts of GoPro are read:

* **flat** (MPRNet's Google-Drive copy, the one HINet's scripts expect): ``<root>/{train,test}/{input,target}/``
  with the same file names on both sides (e.g. ``GOPR0384_11_00-000001.png``). Item name: the file stem.
* **tree** (the original ``GOPRO_Large`` download): ``<root>/{train,test}/<scene>/{blur,blur_gamma,sharp}/``.
  ``blur`` (linear-averaged frames) is used, not ``blur_gamma``. Item name: ``<scene>/<stem>``.

HIDE is read in MPRNet's flat layout ``<root>/test/{input,target}/`` (HIDE is a test-only set for models trained
on GoPro). Items are ``(blurry, sharp, name)``, float32 (3, H, W) RGB in [0, 1], sorted by name.

Scenes (``.scene(index)``): the video sequence a frame comes from, since frames of one sequence share content.
In the tree layout it is the sequence folder (``<scene>/<stem>`` -> ``<scene>``); in the flat layouts (GoPro and
HIDE) it is :func:`sequence_of` the file stem: the stem without its trailing frame number, i.e. without the last
``-`` or ``_`` and the digits after it (``GOPR0384_11_00-000001`` -> ``GOPR0384_11_00``), or the stem itself
when it does not end in ``-<digits>`` / ``_<digits>`` (each such image its own scene). No naming of HIDE's
files is documented in this project's reference notes, so HIDE uses the same rule.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from .io import DatasetError, DatasetNotFoundError
from .paired import Pair, PairedFiles, pair_folders

__all__ = ["GOPRO_LAYOUT", "GOPRO_URL", "HIDE_LAYOUT", "HIDE_URL", "GoPro", "HIDE", "gopro_layout", "sequence_of"]

GOPRO_URL = "https://seungjunnah.github.io/Datasets/gopro"
HIDE_URL = "https://github.com/joanshen0508/HA_deblur"
GOPRO_LAYOUT = (
    "  <root>/{train,test}/input/*.png + <root>/{train,test}/target/*.png   (flat, MPRNet/HINet copy)\n"
    "  or <root>/{train,test}/<scene>/{blur,blur_gamma,sharp}/*.png        (original GOPRO_Large)"
)
HIDE_LAYOUT = "  <root>/test/input/*.png + <root>/test/target/*.png   (MPRNet's flat HIDE test set)"

Split = Literal["train", "test"]
_FRAME_SUFFIX = re.compile(r"^(?P<sequence>.+)[-_]\d+$")


def sequence_of(stem: str) -> str:
    """The video sequence of a flat-layout file stem: the stem without its trailing ``-<digits>`` or
    ``_<digits>`` frame number (``GOPR0384_11_00-000001`` -> ``GOPR0384_11_00``); the stem itself otherwise."""
    match = _FRAME_SUFFIX.match(stem)
    return match["sequence"] if match else stem


def gopro_layout(root: str | os.PathLike[str], split: str) -> Literal["flat", "tree"] | None:
    """Which GoPro layout ``<root>/<split>`` has: ``"flat"``, ``"tree"`` (any scene with blur/ or sharp/) or None."""
    base = Path(root) / split
    if (base / "input").is_dir() and (base / "target").is_dir():
        return "flat"
    if base.is_dir() and any((s / "blur").is_dir() or (s / "sharp").is_dir() for s in base.iterdir() if s.is_dir()):
        return "tree"
    return None


def _tree_pairs(base: Path) -> list[Pair]:
    pairs: list[Pair] = []
    for scene in sorted(p for p in base.iterdir() if p.is_dir()):
        blur, sharp = scene / "blur", scene / "sharp"
        if not (blur.is_dir() and sharp.is_dir()):
            raise DatasetError(f"GoPro scene folder {scene} must contain both blur/ and sharp/")
        pairs += [Pair(p.degraded, p.clean, f"{scene.name}/{p.name}") for p in pair_folders(blur, sharp)]
    return pairs


class GoPro(PairedFiles):
    """GoPro blurry/sharp pairs (2103 train, 1111 test in the standard split); flat or GOPRO_Large layout.

    Raises:
        DatasetNotFoundError: neither layout is present under ``root/split`` (message gives both layouts + URL).
        DatasetError: unpaired files, a scene without ``blur/`` or ``sharp/``.
    """

    def __init__(self, root: str | os.PathLike[str], split: Split = "test") -> None:
        if split not in ("train", "test"):
            raise ValueError(f"GoPro split must be 'train' or 'test', got {split!r}")
        root = Path(root)
        layout = gopro_layout(root, split)
        if layout == "flat":
            pairs = pair_folders(root / split / "input", root / split / "target")
        elif layout == "tree":
            pairs = _tree_pairs(root / split)
        else:
            raise DatasetNotFoundError.for_dataset(f"GoPro {split} split", f"under {root}", GOPRO_LAYOUT, GOPRO_URL)
        self.layout = layout
        super().__init__(pairs, name=f"GoPro-{split}", root=root)

    def scene_of(self, name: str) -> str:
        """The video sequence: the folder (tree layout) or :func:`sequence_of` the stem (flat layout)."""
        return name.split("/", 1)[0] if self.layout == "tree" else sequence_of(name)


class HIDE(PairedFiles):
    """HIDE test pairs (2025 in the standard set) in MPRNet's flat layout ``<root>/test/{input,target}``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        root = Path(root)
        if not ((root / "test" / "input").is_dir() and (root / "test" / "target").is_dir()):
            raise DatasetNotFoundError.for_dataset("HIDE test set", f"under {root}", HIDE_LAYOUT, HIDE_URL)
        super().__init__(pair_folders(root / "test" / "input", root / "test" / "target"), name="HIDE", root=root)

    def scene_of(self, name: str) -> str:
        """The video sequence: :func:`sequence_of` the file stem (see the module docstring)."""
        return sequence_of(name)
