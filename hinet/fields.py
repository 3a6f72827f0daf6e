"""Command-line overrides ``FIELD=VALUE`` of a frozen config dataclass, parsed by the field's declared type.

``--recipe-set lr=1e-3`` or ``--model-set csff=no`` name a field of :class:`hinet.recipes.Recipe` or
:class:`hinet.config.HINetConfig`; the value is parsed by the field's annotation (resolved with
``typing.get_type_hints``, since the modules use ``from __future__ import annotations``):

======================  ====================================================================
annotation              accepted text
======================  ====================================================================
``bool``                exactly ``true/false/1/0/yes/no/on/off``, any case; nothing else
``int``                 a decimal integer (``48``, ``-3``, ``400_000``)
``float``               a finite decimal number (``2e-4``, ``0.5``; no ``nan``/``inf``)
``str``                 the text as given; a field with a vocabulary takes one of its words only
``X | None``            ``none`` or ``null`` (any case) for None, else as ``X``
``tuple[float, float]`` ``0.9,0.999`` or ``[0.9,0.999]`` or ``(0.9, 0.999)``: exactly that many items
``Literal[...]``        one of the literal values
======================  ====================================================================

Vocabularies of plain ``str`` fields (``HINetConfig.norm``, ``Recipe.task/loss/augment``) are the constants
the dataclasses validate against (:func:`vocabularies`). Every mistake raises :class:`OverrideError`, whose
one-line message names the flag, the field, the value found and what was expected, e.g.
``--model-set csff=maybe: HINetConfig.csff='maybe': expected a bool (true/false, 1/0, yes/no, on/off)``.

:func:`apply_overrides` also builds the new object and, when the dataclass's own validation rejects a field
the user did not set (``lr=-1`` makes ``eta_min <= lr`` fail), says which setting caused it:
``--recipe-set lr=-1: Recipe.eta_min=1e-07: expected 0 <= eta_min <= lr``.

:func:`check_stored` validates a JSON-decoded dict (a config stored in a checkpoint or ``config.json``) by the
same declared types, so that a stored ``"csff": "no"`` is refused rather than read as True.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .errors import UserError

__all__ = ["OverrideError", "StoredFieldError", "apply_overrides", "check_stored", "field_types", "parse_overrides",
           "parse_value", "vocabularies", "vocabulary"]

TRUE_WORDS = ("true", "1", "yes", "on")
FALSE_WORDS = ("false", "0", "no", "off")
NONE_WORDS = ("none", "null")
_INT = re.compile(r"[+-]?\d(_?\d)*")


class OverrideError(UserError, ValueError):
    """A ``FIELD=VALUE`` override names no field, a field that cannot be set, or a value of the wrong kind."""


class StoredFieldError(UserError, ValueError):
    """A stored (JSON) config holds a value that does not fit the field's declared type."""


class _BadValue(ValueError):
    """Internal: ``what was expected`` for a value that does not parse."""


def field_types(cls: type) -> dict[str, Any]:
    """``{field name: resolved annotation}`` of a dataclass, in declaration order."""
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"expected a dataclass type, got {cls!r}")
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def vocabulary(words) -> dict[str, tuple[str, ...]]:
    """Field metadata declaring the fixed word list of a plain ``str`` field:
    ``norm: str = field(default="half_instance", metadata=vocabulary(NORMALIZATIONS))``."""
    return {"vocabulary": tuple(words)}


def vocabularies(cls: type) -> dict[str, tuple[str, ...]]:
    """The word lists that ``cls``'s fields declare (:func:`vocabulary`), by field name."""
    return {f.name: f.metadata["vocabulary"] for f in dataclasses.fields(cls) if "vocabulary" in f.metadata}


def _optional_parts(hint: Any) -> tuple[bool, Any]:
    """(None allowed, the other type) for ``X | None`` / ``Optional[X]``; (False, hint) otherwise."""
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        args = typing.get_args(hint)
        others = [a for a in args if a is not type(None)]
        if len(others) == 1 and len(others) < len(args):
            return True, others[0]
        raise TypeError(f"unsupported union annotation {hint!r} (only X | None)")
    return False, hint


def _describe(hint: Any, vocabulary: tuple[str, ...] | None = None) -> str:
    """What a value of ``hint`` looks like, for the 'expected ...' part of a message."""
    optional, hint = _optional_parts(hint)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if vocabulary is not None:
        text = f"one of {list(vocabulary)}"
    elif hint is bool:
        text = "a bool (true/false, 1/0, yes/no, on/off)"
    elif hint is int:
        text = "an integer"
    elif hint is float:
        text = "a finite number"
    elif hint is str:
        text = "a string"
    elif origin is typing.Literal:
        text = f"one of {list(args)}"
    elif origin is tuple:
        nouns = {float: "numbers", int: "integers", bool: "bools", str: "strings"}
        kinds = sorted({nouns.get(a, repr(a)) for a in args})
        example = ",".join({float: "0.5", int: "3", bool: "true", str: "x"}.get(a, "?") for a in args)
        text = f"{len(args)} comma-separated {' or '.join(kinds)} (e.g. {example})"
    else:
        text = repr(hint)
    return text + (" or none" if optional else "")


def parse_value(raw: str, hint: Any, vocabulary: tuple[str, ...] | None = None) -> Any:
    """Parse the text ``raw`` as a value of the annotation ``hint``.

    Raises ``ValueError`` whose message is what was expected; ``TypeError`` for an annotation this module
    does not handle (a bug of the caller, not of the user).
    """
    optional, inner = _optional_parts(hint)
    text = raw.strip()
    if optional and text.lower() in NONE_WORDS:
        return None
    try:
        return _parse_plain(text, inner, vocabulary)
    except _BadValue:
        raise _BadValue(_describe(hint, vocabulary)) from None


def _parse_plain(text: str, hint: Any, vocabulary: tuple[str, ...] | None) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is bool:
        low = text.lower()
        if low in TRUE_WORDS:
            return True
        if low in FALSE_WORDS:
            return False
        raise _BadValue
    if hint is int:
        if not _INT.fullmatch(text):
            raise _BadValue
        return int(text)
    if hint is float:
        try:
            value = float(text)
        except ValueError:
            raise _BadValue from None
        if not math.isfinite(value):
            raise _BadValue
        return value
    if hint is str:
        if vocabulary is not None and text not in vocabulary:
            raise _BadValue
        return text
    if origin is typing.Literal:
        for option in args:
            if str(option) == text:
                return option
        raise _BadValue
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            raise TypeError(f"unsupported annotation {hint!r} (variable-length tuple)")
        inner = text
        if len(inner) >= 2 and (inner[0], inner[-1]) in (("[", "]"), ("(", ")")):
            inner = inner[1:-1]
        items = [part.strip() for part in inner.split(",")] if inner.strip() else []
        if len(items) != len(args):
            raise _BadValue
        return tuple(_parse_plain(item, arg, None) for item, arg in zip(items, args))
    raise TypeError(f"unsupported annotation {hint!r}")


def _frozen_map(frozen: Mapping[str, str] | Iterable[str]) -> dict[str, str]:
    if isinstance(frozen, Mapping):
        return dict(frozen)
    return {name: "" for name in frozen}


def parse_overrides(cls: type, items: Iterable[str], flag: str, *,
                    frozen: Mapping[str, str] | Iterable[str] = ()) -> dict[str, Any]:
    """Parse ``["FIELD=VALUE", ...]`` into ``{field: typed value}`` for the dataclass ``cls``.

    Args:
        cls: the dataclass (e.g. ``Recipe``, ``HINetConfig``).
        items: the strings given on the command line, in order.
        flag: the option they came from (``"--recipe-set"``), named in every message.
        frozen: fields that must not be overridden (names, or ``{name: hint}`` with a hint saying how to
            change it instead, e.g. ``{"preset": "choose the network with --preset"}``).

    Raises:
        OverrideError: no ``=``, an unknown field (the message lists the valid ones), a frozen field, or a
            value that does not parse as the field's type. A field given twice takes the later value (as
            repeated command-line options do), each value checked.
    """
    types_ = field_types(cls)
    vocab = vocabularies(cls)
    frozen_ = _frozen_map(frozen)
    name = cls.__name__
    valid = sorted(set(types_) - set(frozen_))
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise OverrideError(f"{flag} {item!r}: expected FIELD=VALUE with FIELD one of {valid}")
        if key not in types_:
            raise OverrideError(f"{flag} {item}: {name} has no field {key!r}; expected FIELD=VALUE with FIELD one of "
                                f"{valid}")
        if key in frozen_:
            hint = frozen_[key]
            raise OverrideError(f"{flag} {item}: {name}.{key} cannot be overridden{'; ' + hint if hint else ''}")
        try:
            out[key] = parse_value(raw, types_[key], vocab.get(key))
        except _BadValue as err:
            raise OverrideError(f"{flag} {item}: {name}.{key}={raw.strip()!r}: expected {err}") from None
    return out


_BLAMED = re.compile(r"^(\w+)\.(\w+)=")


def apply_overrides(obj: Any, items: Iterable[str], flag: str, *,
                    frozen: Mapping[str, str] | Iterable[str] = (),
                    build: Callable[..., Any] | None = None) -> Any:
    """A copy of the dataclass instance ``obj`` with the overrides ``items`` applied and validated.

    ``build(obj, **values)`` makes the new object (default ``dataclasses.replace``; pass another to route some
    fields through a helper, e.g. width/depth through ``hinet.config.scaled``). A ``ValueError`` of the
    dataclass's validation becomes an :class:`OverrideError` that starts with the setting(s) that caused it:
    the item of the blamed field if the user set that field, else every item given.
    """
    items = list(items)
    values = parse_overrides(type(obj), items, flag, frozen=frozen)
    if not values:
        return obj
    try:
        return (build or dataclasses.replace)(obj, **values)
    except OverrideError:
        raise
    except ValueError as err:
        message = str(err)
        match = _BLAMED.match(message)
        by_field = {item.partition("=")[0].strip(): item for item in items}
        if match and match[2] in by_field:
            cause = by_field[match[2]]
        else:
            cause = ", ".join(items)
        raise OverrideError(f"{flag} {cause}: {message}") from None


def _check_json(value: Any, hint: Any, vocabulary: tuple[str, ...] | None) -> Any:
    optional, inner = _optional_parts(hint)
    if value is None:
        if optional:
            return None
        raise _BadValue(_describe(hint, vocabulary))
    origin, args = typing.get_origin(inner), typing.get_args(inner)
    ok = True
    if inner is bool:
        ok = isinstance(value, bool)
    elif inner is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif inner is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        value = float(value) if ok else value
    elif inner is str:
        ok = isinstance(value, str) and (vocabulary is None or value in vocabulary)
    elif origin is typing.Literal:
        ok = value in args
    elif origin is tuple and len(args) == 2 and args[1] is Ellipsis:  # tuple[X, ...]: any length
        ok = isinstance(value, (list, tuple))
        if ok:
            try:
                value = tuple(_check_json(v, args[0], None) for v in value)
            except _BadValue:
                ok = False
    elif origin is tuple:
        ok = isinstance(value, (list, tuple)) and len(value) == len(args)
        if ok:
            try:
                value = tuple(_check_json(v, a, None) for v, a in zip(value, args))
            except _BadValue:
                ok = False
    else:
        raise TypeError(f"unsupported annotation {inner!r}")
    if not ok:
        raise _BadValue(_describe(hint, vocabulary))
    return value


def check_stored(cls: type, data: Any, source: str) -> dict[str, Any]:
    """Validate a JSON-decoded dict for ``cls(**data)`` by the declared field types; lists become tuples.

    ``source`` (a file name, ``"<file>: stored config"``) starts every message. Unknown fields, a non-dict and
    values of the wrong kind (``"csff": "no"``, ``"width": 4.5``) raise :class:`StoredFieldError`. Missing
    fields are left to the dataclass's defaults.
    """
    name = cls.__name__
    if not isinstance(data, dict):
        raise StoredFieldError(f"{source}: expected a {name} as a JSON object, found {type(data).__name__}")
    types_, vocab = field_types(cls), vocabularies(cls)
    unknown = sorted(set(data) - set(types_))
    if unknown:
        raise StoredFieldError(f"{source}: {name} has no field(s) {unknown}; expected a subset of {sorted(types_)}")
    out = {}
    for key, value in data.items():
        try:
            out[key] = _check_json(value, types_[key], vocab.get(key))
        except _BadValue as err:
            raise StoredFieldError(f"{source}: {name}.{key}: found {value!r}, expected {err}") from None
    return out
