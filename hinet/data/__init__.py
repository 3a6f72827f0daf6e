"""Paired dataset readers (SIDD, GoPro, HIDE, Rain13k), the synthetic default, training patches and crop prep.

Every paired dataset yields ``(degraded, clean, name)``: float32 tensors of shape (3, H, W), RGB, values in
[0, 1], and a ``str`` name, in a deterministic sorted order. Each has ``.name``, ``.synthetic`` and ``.root``,
and ``.scene(index) -> str``: the group of images sharing content that item ``index`` belongs to (the reader's
one rule: SIDD source image, GoPro/HIDE video sequence, Rain13k image, synthetic scene or photograph).

>>> from hinet.data import open_test_sets, synthetic_test_sets
>>> sets = open_test_sets("derain", "/data")        # real data, found at any depth below /data
>>> sets = synthetic_test_sets("derain")            # SYNTHETIC stand-ins when nothing is on disk
"""

from .gopro import HIDE, GoPro
from .io import DatasetError, DatasetNotFoundError, read_image, read_image_size, write_image
from .locate import DATASETS, locate, open_test_sets
from .paired import Pair, PairedFiles, pair_folders
from .patches import PatchDataset, dihedral, dihedral_inverse
from .rain13k import RAIN13K_TEST_SETS, Rain13k
from .sidd import SIDDBenchmark, SIDDMedium, SIDDValidation, write_sidd_kaggle_csv, write_sidd_submission
from .synthetic import SyntheticPairs, synthetic_test_sets
from .verify import check_image, verify_pairs

_LAZY_PREPARE = ("PreparedCrops", "crop_positions", "prepare_crops")


def __getattr__(name: str):
    # hinet.data.prepare is imported on first use, so `python -m hinet.data.prepare` does not find it already
    # imported by this package (runpy warns about that).
    if name in _LAZY_PREPARE:
        from . import prepare  # on first use, see above

        return getattr(prepare, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DATASETS",
    "RAIN13K_TEST_SETS",
    "DatasetError",
    "DatasetNotFoundError",
    "GoPro",
    "HIDE",
    "Pair",
    "PairedFiles",
    "PatchDataset",
    "PreparedCrops",
    "Rain13k",
    "SIDDBenchmark",
    "SIDDMedium",
    "SIDDValidation",
    "SyntheticPairs",
    "check_image",
    "crop_positions",
    "dihedral",
    "dihedral_inverse",
    "locate",
    "open_test_sets",
    "pair_folders",
    "prepare_crops",
    "read_image",
    "read_image_size",
    "synthetic_test_sets",
    "verify_pairs",
    "write_image",
    "write_sidd_kaggle_csv",
    "write_sidd_submission",
]
