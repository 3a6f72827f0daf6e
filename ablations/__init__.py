"""Declarative ablation families. Each module defines ``TASK`` (the dataset it is meant for), ``BASE``
(a published preset), ``VARIANTS`` (name -> config, each the base with one field replaced; ``methods``: other
networks, ``hinet.models``) and ``REFERENCE``
(the variant every other one is compared with; it builds the same network as ``BASE``). No two variants of a
family build the same network (``tests/test_families.py``). A family that compares test-time treatments of one
network instead defines ``evaluations(crop)`` and names its reference treatment (see ``test_time``). The
reference travels in every run spec and record; the report and the sequential seeds read it from there.
Variant names are join keys in the results: never rename one once results exist.

``FAMILIES`` is written out by hand on purpose (no folder scanning)."""

from . import components, hin_position, methods, normalization, scale, test_time

FAMILIES = {m.__name__.rsplit(".", 1)[-1]: m for m in (components, normalization, hin_position, scale, test_time,
                                                    methods)}


def family(name: str):
    """The family module by name; unknown names list the valid ones."""
    if name not in FAMILIES:
        raise ValueError(f"unknown ablation family {name!r}; expected one of {sorted(FAMILIES)}")
    return FAMILIES[name]
