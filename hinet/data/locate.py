"""Find dataset roots anywhere below a data folder, and open a task's standard test sets.

:func:`locate` walks ``data_dir`` breadth-first (children sorted by name, symlinked folders followed once), so
the **shallowest** folder that carries a dataset's marker wins, ties broken by path order -- deterministic for a
given tree. Markers:

==================  ==========================================================================================
``sidd-val``        ``ValidationNoisyBlocksSrgb.mat`` and ``ValidationGtBlocksSrgb.mat`` in the folder
``sidd-benchmark``  ``BenchmarkNoisyBlocksSrgb.mat`` in the folder
``sidd-medium``     ``Data/<scene>/*_NOISY_SRGB_*`` below the folder
``gopro``           ``{train,test}/<scene>/{blur,sharp}/`` (GOPRO_Large), or a folder whose name contains
                    "gopro" with ``test/{input,target}`` or ``train/{input,target}``
``hide``            a folder whose name contains "hide" with ``test/{input,target}``
``rain13k``         ``test/<Test100|Rain100H|Rain100L|Test2800|Test1200>/input/``, or a folder whose name
                    contains "rain" with ``train/{input,target}``
==================  ==========================================================================================

The flat GoPro and HIDE layouts are identical, so those two are told apart by the folder name (case-insensitive).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

from torch.utils.data import Dataset

from ..tasks import TASK_NAMES
from ..tasks import task as task_entry
from .gopro import GOPRO_LAYOUT, GOPRO_URL, HIDE, HIDE_LAYOUT, HIDE_URL, GoPro, gopro_layout
from .io import DatasetNotFoundError
from .rain13k import RAIN13K_LAYOUT, RAIN13K_TEST_SETS, RAIN13K_URL, Rain13k
from .sidd import SIDD_BENCHMARK_LAYOUT, SIDD_MEDIUM_LAYOUT, SIDD_URL, SIDD_VAL_LAYOUT, SIDDMedium, SIDDValidation

__all__ = ["DATASETS", "TASKS", "DatasetNotFoundError", "locate", "open_test_sets", "open_training_set"]

DatasetKey = Literal["sidd-val", "sidd-medium", "sidd-benchmark", "gopro", "hide", "rain13k"]
Task = Literal["denoise", "deblur", "derain"]
TASKS: tuple[str, ...] = TASK_NAMES  # the task table (hinet.tasks) is the one definition


def _has_pair_dirs(folder: Path) -> bool:
    return (folder / "input").is_dir() and (folder / "target").is_dir()


def _is_sidd_val(d: Path) -> bool:
    return (d / "ValidationNoisyBlocksSrgb.mat").is_file() and (d / "ValidationGtBlocksSrgb.mat").is_file()


def _is_sidd_benchmark(d: Path) -> bool:
    return (d / "BenchmarkNoisyBlocksSrgb.mat").is_file()


def _is_sidd_medium(d: Path) -> bool:
    data = d / "Data"
    if not data.is_dir():
        return False
    for scene in sorted(p for p in data.iterdir() if p.is_dir()):
        if any("_NOISY_SRGB_" in f.name for f in scene.iterdir()):
            return True
    return False


def _is_gopro(d: Path) -> bool:
    if "tree" in (gopro_layout(d, "test"), gopro_layout(d, "train")):
        return True
    return "gopro" in d.name.lower() and (_has_pair_dirs(d / "test") or _has_pair_dirs(d / "train"))


def _is_hide(d: Path) -> bool:
    return "hide" in d.name.lower() and _has_pair_dirs(d / "test")


def _is_rain13k(d: Path) -> bool:
    if any((d / "test" / s / "input").is_dir() for s in RAIN13K_TEST_SETS):
        return True
    return "rain" in d.name.lower() and _has_pair_dirs(d / "train")


# key -> (marker test, title, expected layout, where it is published)
_SPECS: dict[str, tuple[Callable[[Path], bool], str, str, str]] = {
    "sidd-val": (_is_sidd_val, "SIDD validation blocks", SIDD_VAL_LAYOUT, SIDD_URL),
    "sidd-medium": (_is_sidd_medium, "SIDD-Medium sRGB", SIDD_MEDIUM_LAYOUT, SIDD_URL),
    "sidd-benchmark": (_is_sidd_benchmark, "SIDD benchmark blocks", SIDD_BENCHMARK_LAYOUT, SIDD_URL),
    "gopro": (_is_gopro, "GoPro", GOPRO_LAYOUT + "\n  (flat layout: the folder name must contain 'GoPro')", GOPRO_URL),
    "hide": (_is_hide, "HIDE", HIDE_LAYOUT + "\n  (the folder name must contain 'HIDE')", HIDE_URL),
    "rain13k": (_is_rain13k, "Rain13k", RAIN13K_LAYOUT, RAIN13K_URL),
}
DATASETS: tuple[str, ...] = tuple(_SPECS)


def _folders_breadth_first(top: Path) -> Iterator[Path]:
    """Yield ``top`` and every folder below it, shallowest first, siblings sorted by name.

    Hand-written rather than ``os.walk``: os.walk descends into each sub-folder before visiting the next sibling,
    so a deep match could be reported before a shallow one, and it cannot stop at the first shallow match.
    Symlinked folders are followed; each real folder is visited once (no symlink loops).
    """
    seen: set[str] = set()
    queue: deque[Path] = deque([top])
    while queue:
        folder = queue.popleft()
        real = os.path.realpath(folder)
        if real in seen:
            continue
        seen.add(real)
        yield folder
        try:
            children = sorted(e.name for e in os.scandir(folder) if e.is_dir())
        except OSError:  # unreadable folder: nothing below it can be used
            continue
        queue.extend(folder / c for c in children)


def locate(data_dir: str | os.PathLike[str], dataset: DatasetKey | str) -> Path:
    """Return the root folder of ``dataset`` found at any depth below ``data_dir`` (shallowest match first).

    Raises:
        ValueError: unknown dataset key (see :data:`DATASETS`).
        DatasetNotFoundError: no folder carries the marker; the message gives the layout and download source.
    """
    if dataset not in _SPECS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {DATASETS}")
    is_root, title, layout, url = _SPECS[dataset]
    top = Path(data_dir)
    if top.is_dir():
        for folder in _folders_breadth_first(top):
            if is_root(folder):
                return folder
    where = f"at any depth under {top}" if top.is_dir() else f"(data directory {top} does not exist)"
    raise DatasetNotFoundError.for_dataset(title, where, layout, url)


def open_test_sets(task: Task | str, data_dir: str | os.PathLike[str]) -> dict[str, Dataset]:
    """Open the standard test sets of a task from ``data_dir``.

    * ``"denoise"`` -> ``{"SIDD": SIDDValidation}``
    * ``"deblur"``  -> ``{"GoPro": GoPro(split="test"), "HIDE": HIDE}`` (HIDE only when present)
    * ``"derain"``  -> the five Rain13k test sets, each required, in :data:`RAIN13K_TEST_SETS` order

    Raises:
        ValueError: unknown task.
        DatasetNotFoundError: a required set is missing.
    """
    entry = task_entry(task)
    sets: dict[str, Dataset] = {}
    for key in entry.test_keys:
        sets.update(_TEST_SETS[key](locate(data_dir, key)))
    for key in entry.optional_keys:  # e.g. HIDE for deblurring: scored when present
        try:
            root = locate(data_dir, key)
        except DatasetNotFoundError:
            continue
        sets.update(_TEST_SETS[key](root))
    return sets


# locate key -> the test sets found at that root, and the training set (hinet.tasks names the keys)
_TEST_SETS: dict[str, Callable[[Path], dict[str, Dataset]]] = {
    "sidd-val": lambda root: {"SIDD": SIDDValidation(root)},
    "gopro": lambda root: {"GoPro": GoPro(root, "test")},
    "hide": lambda root: {"HIDE": HIDE(root)},
    "rain13k": lambda root: {name: Rain13k(root, name) for name in RAIN13K_TEST_SETS},
}


def open_training_set(task: Task | str, data_dir: str | os.PathLike[str]) -> Dataset:
    """The paired training set of a task, found at any depth under ``data_dir`` (SIDD Medium ``Data/``,
    GoPro ``train``, Rain13k ``train``)."""
    key = task_entry(task).train_key
    readers: dict[str, Callable[[Path], Dataset]] = {
        "sidd-medium": SIDDMedium, "gopro": lambda root: GoPro(root, "train"),
        "rain13k": lambda root: Rain13k(root, "train")}
    return readers[key](locate(data_dir, key))
