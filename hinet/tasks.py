"""The task table and the suite's vocabularies, each defined once.

A task (denoise, deblur, derain) fixes its dataset (the recipe's name and ``--dataset`` value), where
its training data is found (a :func:`hinet.data.locate.locate` key), its test sets, its default
scoring protocols (the paper's first) and its synthetic stand-in. Every module that needs one of these
reads it from :data:`TASKS` instead of keeping its own list or if-chain.

Vocabularies: :data:`RECIPE_KINDS` (what produced a record; only ``paper`` and ``eval`` numbers on real
data are ever put beside published ones) and :data:`SPLITS` (what a record measures). Records refuse
values outside them, so a typo cannot cross the rule that keeps synthetic and proxy numbers away from
the paper's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import UserError


@dataclass(frozen=True)
class Task:
    """One restoration task.

    Args:
        name: ``denoise`` / ``deblur`` / ``derain`` (keys of ``hinet.evaluate.PROTOCOLS``).
        dataset: the dataset the paper trains on, also its recipe's name: ``sidd`` / ``gopro`` / ``rain13k``.
        title: printed name of that dataset.
        train_key: :func:`hinet.data.locate.locate` key of the training data.
        test_keys: locate keys of the required test sets (``hinet.data.locate.open_test_sets`` opens them).
        optional_keys: locate keys of test sets opened only when present (HIDE for deblurring).
        protocols: default scoring protocols, the one of the paper's numbers first.
        synthetic_sets: names of the synthetic test sets: the stand-ins of the task's test sets (dead-leaves
            scenes), then :data:`NATURAL_PHOTOS_SET` (the same degradations on natural photographs).
    """

    name: str
    dataset: str
    title: str
    train_key: str
    test_keys: tuple[str, ...]
    optional_keys: tuple[str, ...]
    protocols: tuple[str, ...]
    synthetic_sets: tuple[str, ...]


SYNTHETIC_SUFFIX = " (synthetic)"  # ends the name of every synthetic stand-in set


def synthetic_name(name: str) -> str:
    """``SIDD`` -> ``SIDD (synthetic)``: the name of a set's synthetic stand-in."""
    return name + SYNTHETIC_SUFFIX


def real_name(name: str) -> str:
    """``SIDD (synthetic)`` -> ``SIDD`` (a real set's name is its own)."""
    return name.removesuffix(SYNTHETIC_SUFFIX)


def slug(text: str) -> str:
    """A file-name-safe form of ``text``: runs of other characters than ``[A-Za-z0-9_.-]`` become ``-``
    (``ensemble(a+b)`` -> ``ensemble-a-b``; an empty result is ``output``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "output"


RAIN13K_TEST_SETS: tuple[str, ...] = ("Test100", "Rain100H", "Rain100L", "Test2800", "Test1200")
# The synthetic test set of every task whose clean images are crops of held-out photographs (hinet.data.synthetic)
NATURAL_PHOTOS_SET = synthetic_name("natural photographs")

TASKS: dict[str, Task] = {
    t.name: t for t in (
        Task("denoise", "sidd", "SIDD", "sidd-medium", ("sidd-val",), (), ("official", "clamped"),
             (synthetic_name("SIDD"), NATURAL_PHOTOS_SET)),
        Task("deblur", "gopro", "GoPro", "gopro", ("gopro",), ("hide",), ("official",),
             (synthetic_name("GoPro"), NATURAL_PHOTOS_SET)),
        Task("derain", "rain13k", "Rain13k", "rain13k", ("rain13k",), (), ("official",),
             (*map(synthetic_name, RAIN13K_TEST_SETS), NATURAL_PHOTOS_SET)),
    )
}
TASK_NAMES: tuple[str, ...] = tuple(TASKS)
DATASETS: dict[str, Task] = {t.dataset: t for t in TASKS.values()}

RECIPE_KINDS: tuple[str, ...] = ("paper", "proxy", "eval", "eval-subset", "bench")
# Record families that are not ablation families (no verdicts): evaluations of finished checkpoints by the
# benchmark commands, the speed suite, and Optuna studies (which keep their own trials table and figures).
CHECKPOINT_EVAL, SPEED, STUDY = "checkpoint_eval", "speed", "optuna"
EVALUATION_FAMILIES: tuple[str, ...] = (CHECKPOINT_EVAL, SPEED)  # no training runs, no per-image validations
NON_ABLATION_FAMILIES: tuple[str, ...] = (*EVALUATION_FAMILIES, STUDY)
PAPER_KINDS: tuple[str, ...] = ("paper", "eval")  # the only kinds whose real-data numbers meet published ones
SPLITS: tuple[str, ...] = ("train", "val", "test", "model", "bench")


def task(name: str) -> Task:
    """The task called ``name``; an unknown name is a user error listing the valid ones."""
    if name not in TASKS:
        raise UserError(f"unknown task {name!r}; expected one of {TASK_NAMES}")
    return TASKS[name]
