"""Rain13k deraining pairs in MPRNet's layout (the one HINet's Rain13k configs read from disk).

``<root>/train/{input,target}/`` (13,712 pairs) and ``<root>/test/<set>/{input,target}/`` for the five test
sets in :data:`RAIN13K_TEST_SETS`. Input and target files are paired by stem, so ``1.jpg`` pairs with ``1.png``.
Items are ``(rainy, clean, name)``, float32 (3, H, W) RGB in [0, 1], name = the file stem, sorted.
Every test image is its own scene: ``.scene(index)`` is the item name.
Images are not all the same size and some are smaller than 256 px (training pads them, see ``patches``).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..tasks import RAIN13K_TEST_SETS  # the five test sets HINet and MPRNet report, in their table order
from .io import DatasetNotFoundError
from .paired import PairedFiles, pair_folders

__all__ = ["RAIN13K_LAYOUT", "RAIN13K_TEST_SETS", "RAIN13K_URL", "Rain13k"]

RAIN13K_URL = "the Google Drive links in MPRNet's Deraining/Datasets/README.md (https://github.com/swz30/MPRNet)"
RAIN13K_LAYOUT = (
    "  <root>/train/input/*.jpg + <root>/train/target/*.jpg\n"
    "  <root>/test/<Test100|Rain100H|Rain100L|Test2800|Test1200>/input/* + .../target/*"
)


class Rain13k(PairedFiles):
    """One Rain13k split: ``"train"`` or a test set name from :data:`RAIN13K_TEST_SETS`.

    ``.name`` is ``"Rain13k-train"`` for training and the set name (e.g. ``"Rain100H"``) for a test set.

    Raises:
        ValueError: unknown split.
        DatasetNotFoundError: the split's input/ or target/ folder is missing.
        DatasetError: unpaired files.
    """

    def __init__(self, root: str | os.PathLike[str], split: str) -> None:
        if split != "train" and split not in RAIN13K_TEST_SETS:
            raise ValueError(f"Rain13k split must be 'train' or one of {RAIN13K_TEST_SETS}, got {split!r}")
        root = Path(root)
        base = root / "train" if split == "train" else root / "test" / split
        if not ((base / "input").is_dir() and (base / "target").is_dir()):
            raise DatasetNotFoundError.for_dataset(
                f"Rain13k {split}", f"at {base} (input/ and target/)", RAIN13K_LAYOUT, RAIN13K_URL
            )
        name = "Rain13k-train" if split == "train" else split
        super().__init__(pair_folders(base / "input", base / "target"), name=name, root=root)
        self.split = split
