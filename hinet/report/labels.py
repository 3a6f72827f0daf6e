"""Names of the report's kinds and files: which runs may be read against the paper, and their file stems.

"Kind" is the pair (synthetic, recipe) of a run. Only real-data runs at paper scale or evaluations of
real checkpoints (:func:`is_paper_kind`) are ever drawn beside published numbers; every other kind carries
``(not comparable to the paper)`` in its label and ``synthetic``/the recipe in its file stem.
"""

from __future__ import annotations

from ..tasks import PAPER_KINDS, real_name, slug

NOT_COMPARABLE = "not comparable to the paper"


def is_paper_kind(synthetic: bool, recipe: str) -> bool:
    """True for real-data runs at paper scale or evaluations: the only kinds drawn beside paper numbers."""
    return not synthetic and recipe in PAPER_KINDS


def kind_label(synthetic: bool, recipe: str) -> str:
    """Human label of a (synthetic, recipe) kind, e.g. 'synthetic, proxy scale (not comparable to the paper)'."""
    scale = {"proxy": "proxy scale", "paper": "paper recipe", "eval": "evaluation"}.get(recipe, f"{recipe} recipe")
    label = f"{'synthetic' if synthetic else 'real data'}, {scale}"
    return label if is_paper_kind(synthetic, recipe) else f"{label} ({NOT_COMPARABLE})"


def stem(family: str, dataset: str | None, synthetic: bool, recipe: str) -> str:
    """``<family>_<dataset>`` for paper kinds, else ``<family>_<dataset>_[synthetic_]<recipe>``
    (``dataset`` None: the family alone, as for training curves). The dataset goes in by its real name: a
    synthetic stand-in says so once, in ``synthetic_``."""
    out = slug(family) if dataset is None else f"{slug(family)}_{slug(real_name(dataset))}"
    if is_paper_kind(synthetic, recipe):
        return out
    return f"{out}_{'synthetic_' if synthetic else ''}{slug(recipe)}"
