"""The run spec: everything that determines a run's numbers, how it is stored, and how a command line makes one.

:class:`RunSpec` is written to a run's ``config.json`` (:meth:`RunSpec.to_dict`) and read back field by field,
each by its declared type (:meth:`RunSpec.from_dict`); its hash guards the run directory. A command line
(``--recipe``, ``--preset``, ``--recipe-set``, ``--model-set``, the fast switches) or a ``--spec`` file resolves
to one (:func:`resolve_spec`).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from .config import PRESETS, HINetConfig, scaled
from .errors import UserError
from .evaluate import default_protocols, parse_protocol
from .fields import apply_overrides, check_stored, vocabulary
from .hardware import PRECISIONS
from .models import NetworkConfig, network, network_from_dict, network_to_dict
from .recipes import RECIPES, Recipe, proxy_name, recipe, with_iters

INITS = ("per-module", "torch")


class PreflightError(UserError, ValueError):
    """Data, an output path or a spec field is unusable; found before the first training step."""


def _require_fields(d: dict, names: list[str], where: str) -> None:
    missing = [name for name in names if name not in d]
    if missing:
        raise ValueError(f"{where}: missing field(s) {missing}; a spec file states every field "
                         f"(write it with RunSpec.to_dict() or copy a run's config.json)")


@dataclass(frozen=True)
class RunSpec:
    """Everything that determines a run's numbers. Its hash guards the run directory."""

    recipe: Recipe
    model: NetworkConfig  # the network actually trained (already shrunk for proxy recipes); hinet.models
    seed: int
    data: str | None = None  # dataset directory; None = the synthetic default
    family: str = "adhoc"
    variant: str = "custom"
    precision: str = field(default="fp32", metadata=vocabulary(PRECISIONS))  # autocast; CUDA only for fp16
    channels_last: bool = False
    train_crops: str | None = None  # folder written by `python -m hinet.data.prepare` (input_crops/gt_crops)
    fused_norm: bool = False  # hinet.fast: one scale/shift instead of slice + norm + concat (same numbers)
    inplace_act: bool = False  # hinet.fast: LeakyReLUs overwrite their input (same numbers, less memory)
    # Test-time evaluations as ``label=protocol`` (hinet.evaluate.parse_protocol), e.g. "grid=deblur/official@64":
    # each validation scores every one, recorded as its own run ``<run id>@<label>`` with variant ``label``
    # (a family comparing test-time statistics of one trained network). Empty: the task's default protocols.
    evaluations: tuple[str, ...] = ()
    # Initial weights: "per-module" (HINet.reset_parameters(seed): a module of the same name and shape starts
    # alike in every variant: common random numbers) or "torch" (the modules' default draws in build order).
    init: str = field(default="per-module", metadata=vocabulary(INITS))
    # The variant the family compares every variant with (ablations/<family>.py REFERENCE); None for ad-hoc runs.
    reference: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"RunSpec.seed={self.seed!r} (--seed): expected a non-negative integer (numpy seeds "
                             f"the data order with it)")
        if self.init not in INITS:
            raise ValueError(f"RunSpec.init={self.init!r}: expected one of {INITS}")

    def to_dict(self) -> dict:
        """Plain JSON of every field (the recipe and the network as their own ``to_dict``)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        return {**out, "recipe": self.recipe.to_dict(), "model": network_to_dict(self.model),
                "evaluations": list(self.evaluations)}

    @classmethod
    def from_dict(cls, d: dict) -> RunSpec:
        """The spec of :meth:`to_dict`'s JSON, checked as the command-line flags are: every field by its
        declared type (a stored ``"csff": "no"`` is an error naming the field, never a truthy string), every
        field present (a missing one is an error naming it, never a dataclass default), and the recipe's frozen fields
        (:data:`FROZEN_RECIPE_FIELDS`) equal to those of the recipe it names."""
        if not isinstance(d, dict):
            raise ValueError(f"expected a JSON object, got {type(d).__name__}")
        _require_fields(d, [f.name for f in fields(cls)], "spec")
        if isinstance(d["recipe"], dict):
            _require_fields(d["recipe"], [f.name for f in fields(Recipe)], "recipe")
        r = Recipe(**check_stored(Recipe, d["recipe"], "recipe"))
        check_frozen_recipe_fields(r)
        m = network_from_dict(d["model"], "model")
        top = check_stored(cls, {k: v for k, v in d.items() if k not in ("recipe", "model")}, "spec")
        return cls(r, m, **top)

    @property
    def synthetic(self) -> bool:
        return self.data is None




def load_spec(path: str | Path) -> RunSpec:
    """Read a run spec (the JSON of :meth:`RunSpec.to_dict`, or a ``config.json`` holding it under
    ``spec``); errors name the file and the field."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise PreflightError(f"{path}: no such run spec file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise PreflightError(f"{path}: not a JSON run spec ({err})") from None
    if isinstance(data, dict) and "spec" in data and "recipe" not in data:
        data = data["spec"]
    try:
        return RunSpec.from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise PreflightError(f"{path}: invalid run spec: {rec_message(err)}") from None


def rec_message(err: BaseException) -> str:
    return f"missing field {err}" if isinstance(err, KeyError) else str(err)



def evaluation_labels(spec: RunSpec) -> dict[str, str]:
    """``{protocol name: label}`` of ``spec.evaluations`` (empty without them)."""
    out = {}
    for item in spec.evaluations:
        label, sep, text = item.partition("=")
        if not sep or not label:
            raise PreflightError(f"evaluations: {item!r}: expected label=<task>/<protocol>")
        out[parse_protocol(text).name] = label
    return out


def validation_protocols(spec: RunSpec) -> list:
    """The protocols every validation scores: ``spec.evaluations`` or the task's defaults."""
    if spec.evaluations:
        evaluation_labels(spec)  # validates the labels
        protocols = [parse_protocol(item.partition("=")[2]) for item in spec.evaluations]
        scoring = {(p.quantize, p.clamp, p.y_channel, p.y_round, p.ssim, p.peak) for p in protocols}
        if len(scoring) > 1:
            raise PreflightError(f"evaluations {list(spec.evaluations)}: the treatments must share one scoring "
                                 f"(clamp/uint8/Y/SSIM/peak) and differ only in inference (tiling, TLC)")
        return protocols
    return default_protocols(spec.recipe.task)


# Recipe fields that --recipe-set may not change, and what to use instead: the network is built from the
# preset before the overrides apply, and a proxy run must never be labelled paper (or the reverse).
FROZEN_RECIPE_FIELDS = {"name": "choose the recipe with --recipe",
                        "preset": "choose the network with --model (or --preset)",
                        "proxy": "choose a paper recipe or its -proxy with --recipe"}


def check_frozen_recipe_fields(r: Recipe) -> None:
    """A spec's recipe is a known recipe, and its :data:`FROZEN_RECIPE_FIELDS` are that recipe's (a proxy
    run is never labelled paper, the network's preset never relabelled)."""
    if r.name not in RECIPES:
        raise ValueError(f"recipe.name={r.name!r}: unknown recipe; expected one of {sorted(RECIPES)}")
    named = RECIPES[r.name]
    for key in FROZEN_RECIPE_FIELDS:
        if getattr(r, key) != getattr(named, key):
            raise ValueError(f"recipe.{key}={getattr(r, key)!r}: the recipe {r.name!r} has {key}="
                             f"{getattr(named, key)!r}; {FROZEN_RECIPE_FIELDS[key]}")


def _scaled_build(cfg: HINetConfig, **values) -> HINetConfig:
    """width/depth go through scaled() so that a partial HIN range follows the depth; then the rest."""
    width, depth = values.pop("width", cfg.width), values.pop("depth", cfg.depth)
    return replace(scaled(cfg, width=width, depth=depth), **values)


def spec_from_args(a: argparse.Namespace) -> RunSpec:
    """The run spec of an ad-hoc command line (recipe, preset, overrides, seed, data, fast switches).

    Overrides are parsed by each field's declared type (``csff=no`` is False; see :mod:`hinet.fields`)."""
    if a.recipe not in RECIPES:
        raise UserError(f"--recipe {a.recipe!r}: unknown recipe; expected one of {sorted(RECIPES)}")
    r = recipe(a.recipe)
    if a.iters is not None:
        r = with_iters(r, a.iters)
    if a.preset is not None and a.model is not None:
        raise UserError(f"--preset {a.preset} --model {a.model}: give one (--model takes any network, presets too)")
    if a.preset is not None and a.preset not in PRESETS:
        raise UserError(f"--preset {a.preset!r}: unknown network preset; expected one of {sorted(PRESETS)}")
    name = a.model or a.preset or r.preset
    cfg = network(name)
    r = apply_overrides(r, a.recipe_set, "--recipe-set", frozen=FROZEN_RECIPE_FIELDS)
    net = apply_overrides(r.network(cfg), a.model_set, "--model-set",
                          build=_scaled_build if isinstance(cfg, HINetConfig) else None)
    return RunSpec(r, net, r.seed if a.seed is None else a.seed, a.data, "adhoc", name, a.precision,
                   a.channels_last, a.train_crops, a.fused_norm, a.inplace_act)


SPEC_FLAGS = ("recipe", "preset", "model", "seed", "data", "train_crops", "iters", "precision", "channels_last",
              "fused_norm", "inplace_act", "recipe_set", "model_set")



def add_spec_arguments(p: argparse.ArgumentParser) -> None:
    """The flags that make a run spec (:data:`SPEC_FLAGS`), as ``hinet.train`` and the grid take them."""
    p.add_argument("--spec", default=None, help="a complete run spec (JSON of RunSpec.to_dict()); excludes the\n"
                   "spec flags below (--recipe ... --model-set)")
    p.add_argument("--recipe", default=None, help="recipe name (hinet.recipes.RECIPES; default sidd-proxy)")
    p.add_argument("--preset", default=None, help="HINet preset (default: the recipe's)")
    p.add_argument("--model", default=None, metavar="NETWORK",
                   help="the network instead of the recipe's HINet: a name (hinet.models.NETWORKS: sidd-1x,\n"
                        "mprnet-sidd, nafnet-sidd-width64, ...) or your own, package.module:callable (an\n"
                        "importable callable returning an nn.Module; see the README)")
    p.add_argument("--seed", type=int, default=None, help="default: the recipe's official seed")
    p.add_argument("--data", default=None, help="dataset directory (default: the synthetic counterpart)")
    p.add_argument("--train-crops", default=None,
                   help="train on crops prepared by `python -m hinet.data.prepare` (as the official recipes did)")
    p.add_argument("--iters", type=int, default=None, help="shorten (or lengthen) the recipe to this many steps")
    p.add_argument("--precision", default=None, choices=sorted(PRECISIONS))
    p.add_argument("--channels-last", action="store_true", default=None)
    p.add_argument("--fused-norm", action="store_true", default=None,
                   help="fused half instance norm (same numbers, faster)")
    p.add_argument("--inplace-act", action="store_true", default=None,
                   help="in-place LeakyReLU (same numbers, less memory)")
    p.add_argument("--recipe-set", action="append", default=None, metavar="FIELD=VALUE",
                   help="override a recipe field, parsed by its type, e.g. --recipe-set crop=48; repeatable")
    p.add_argument("--model-set", action="append", default=None, metavar="FIELD=VALUE",
                   help="override a network field after proxy scaling, e.g. --model-set csff=false; repeatable")


def resolve_spec(a: argparse.Namespace) -> RunSpec:
    """The run spec of parsed :func:`add_spec_arguments` flags: the ``--spec`` file, or the flags' spec."""
    if a.spec is not None:
        given = [f"--{k.replace('_', '-')}" for k in SPEC_FLAGS if getattr(a, k) not in (None, [])]
        if given:
            raise UserError(f"--spec {a.spec}: the spec is complete; drop {', '.join(given)}")
        return load_spec(a.spec)
    a.recipe = a.recipe or proxy_name("sidd")
    a.precision = a.precision or "fp32"
    for k in ("channels_last", "fused_norm", "inplace_act"):
        setattr(a, k, bool(getattr(a, k)))
    a.recipe_set, a.model_set = a.recipe_set or [], a.model_set or []
    return spec_from_args(a)


