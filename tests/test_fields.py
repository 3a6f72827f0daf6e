"""FIELD=VALUE overrides are parsed by the field's declared type; every mistake is one line naming flag and field."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import pytest

from hinet.arch import HINet
from hinet.config import PRESETS, HINetConfig, scaled
from hinet.errors import UserError
from hinet.fields import (
    OverrideError,
    StoredFieldError,
    apply_overrides,
    check_stored,
    parse_overrides,
    parse_value,
)
from hinet.recipes import Recipe, recipe

TINY = scaled(PRESETS["sidd-1x"], width=4, depth=2)


@dataclass(frozen=True)
class Kinds:
    """Every annotation kind the parser handles, in the string form ``from __future__ import annotations`` gives."""

    flag: bool = False
    count: int = 1
    rate: float = 0.5
    label: str = "a"
    limit: int | None = None
    pair: tuple[float, float] = (0.9, 0.999)
    levels: tuple[int, int] | None = None
    mode: Literal["fast", "exact"] = "fast"


# (field, text, parsed value)
GOOD = [
    *[("flag", t, True) for t in ("true", "TRUE", "True", "1", "yes", "Yes", "on", "ON")],
    *[("flag", t, False) for t in ("false", "False", "0", "no", "NO", "off", "Off", " no ")],
    ("count", "48", 48), ("count", "-3", -3), ("count", "400_000", 400_000), ("count", "+7", 7),
    ("rate", "2e-4", 2e-4), ("rate", "1", 1.0), ("rate", "-0.5", -0.5),
    ("label", "hello world", "hello world"), ("label", "none", "none"),
    ("limit", "none", None), ("limit", "NULL", None), ("limit", "8", 8),
    ("pair", "0.9,0.999", (0.9, 0.999)), ("pair", "[0.9,0.999]", (0.9, 0.999)), ("pair", "(0.9, 0.99)", (0.9, 0.99)),
    ("levels", "3,4", (3, 4)), ("levels", "[0, 1]", (0, 1)), ("levels", "None", None),
    ("mode", "exact", "exact"),
]

# (field, text, words the message must contain)
BAD = [
    ("flag", "maybe", ["bool"]), ("flag", "2", ["bool"]), ("flag", "", ["bool"]), ("flag", "t", ["bool"]),
    ("flag", "none", ["bool"]),
    ("count", "1.5", ["integer"]), ("count", "ten", ["integer"]), ("count", "1e3", ["integer"]),
    ("count", "none", ["integer"]),
    ("rate", "fast", ["finite number"]), ("rate", "nan", ["finite number"]), ("rate", "inf", ["finite number"]),
    ("rate", "-inf", ["finite number"]),
    ("limit", "eight", ["integer or none"]),
    ("pair", "0.9", ["2 comma-separated"]), ("pair", "0.9,0.99,0.999", ["2 comma-separated"]),
    ("pair", "a,b", ["2 comma-separated"]), ("pair", "[]", ["2 comma-separated"]),
    ("levels", "3.5,4", ["integers"]), ("levels", "3", ["2 comma-separated"]),
    ("mode", "slow", ["'fast'", "'exact'"]),
]


@pytest.mark.parametrize(("field", "text", "value"), GOOD)
def test_values_parse_by_declared_type(field, text, value):
    got = parse_overrides(Kinds, [f"{field}={text}"], "--set")[field]
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize(("field", "text", "words"), BAD)
def test_bad_values_name_flag_field_value_and_expectation(field, text, words):
    with pytest.raises(OverrideError) as exc:
        parse_overrides(Kinds, [f"{field}={text}"], "--set")
    message = str(exc.value)
    assert isinstance(exc.value, UserError) and "\n" not in message
    assert message.startswith(f"--set {field}={text}: Kinds.{field}={text.strip()!r}: expected")
    assert all(w in message for w in words), message


@pytest.mark.parametrize(("cls", "item", "words"), [
    (Recipe, "foo=1", ["--recipe-set foo=1", "no field 'foo'", "'crop'", "'lr'"]),
    (Recipe, "crop", ["--recipe-set 'crop'", "FIELD=VALUE"]),
    (Recipe, "=3", ["FIELD=VALUE"]),
    (Recipe, "loss=l2", ["Recipe.loss", "'l2'", "'psnr'", "'l1'", "'charbonnier'"]),
    (Recipe, "task=denoising", ["Recipe.task", "'denoise'", "'deblur'", "'derain'"]),
    (Recipe, "augment=flip", ["Recipe.augment", "'dihedral'", "'sidd'", "'none'"]),
    (Recipe, "betas=0.9", ["Recipe.betas", "2 comma-separated"]),
    (Recipe, "proxy=no-way", ["Recipe.proxy", "bool"]),
    (HINetConfig, "norm=layer", ["--model-set norm=layer", "HINetConfig.norm", "'half_instance'", "'batch'"]),
    (HINetConfig, "csff=maybe", ["HINetConfig.csff", "'maybe'", "bool"]),
    (HINetConfig, "norm_levels=3", ["HINetConfig.norm_levels", "2 comma-separated", "or none"]),
    (HINetConfig, "width=8.0", ["HINetConfig.width", "integer"]),
])
def test_config_fields_refuse_bad_overrides(cls, item, words):
    flag = "--recipe-set" if cls is Recipe else "--model-set"
    with pytest.raises(OverrideError) as exc:
        parse_overrides(cls, [item], flag)
    assert all(w in str(exc.value) for w in words), str(exc.value)


def test_unknown_field_lists_only_settable_fields():
    with pytest.raises(OverrideError) as exc:
        parse_overrides(Recipe, ["lrr=1"], "--recipe-set", frozen=("preset", "proxy", "name"))
    listed = str(exc.value).split("with FIELD one of ")[1]
    assert "'lr'" in listed and "'preset'" not in listed and "'name'" not in listed


@pytest.mark.parametrize("field", ["preset", "proxy", "name"])
def test_frozen_fields_are_refused_with_the_hint(field):
    frozen = {"preset": "choose the network with --preset", "proxy": "pick a -proxy recipe", "name": ""}
    with pytest.raises(OverrideError) as exc:
        apply_overrides(recipe("sidd-proxy"), [f"{field}=x"], "--recipe-set", frozen=frozen)
    message = str(exc.value)
    assert f"Recipe.{field} cannot be overridden" in message and message.startswith(f"--recipe-set {field}=x")
    assert frozen[field] in message


def test_a_field_given_twice_takes_the_later_value_each_checked():
    assert parse_overrides(Recipe, ["crop=48", "crop=64"], "--recipe-set") == {"crop": 64}
    with pytest.raises(OverrideError, match="crop=abc"):
        parse_overrides(Recipe, ["crop=abc", "crop=64"], "--recipe-set")


def test_csff_no_builds_a_network_without_csff():
    cfg = apply_overrides(TINY, ["csff=no"], "--model-set")
    assert cfg.csff is False and TINY.csff is True
    names = [name for name, _ in HINet(cfg).named_modules()]
    assert not [n for n in names if "csff" in n]
    assert [n for n, _ in HINet(TINY).named_modules() if "csff" in n]  # the unmodified network has them
    assert not any(getattr(m, "csff", False) for m in HINet(cfg).modules())


@pytest.mark.parametrize(("text", "expected"), [("off", False), ("0", False), ("on", True), ("yes", True)])
def test_bool_words_reach_the_config(text, expected):
    assert apply_overrides(TINY, [f"sam={text}"], "--model-set").sam is expected


def test_typed_overrides_apply_to_a_recipe():
    r = apply_overrides(recipe("sidd-proxy"), ["crop=48", "betas=[0.8,0.9]", "val_limit=null", "lr=5e-4"],
                        "--recipe-set")
    assert (r.crop, r.betas, r.val_limit, r.lr) == (48, (0.8, 0.9), None, 5e-4)
    assert apply_overrides(r, [], "--recipe-set") is r


@pytest.mark.parametrize(("items", "start", "words"), [
    (["lr=-1"], "--recipe-set lr=-1: ", ["Recipe.lr=", "positive learning rate"]),
    (["crop=48", "lr=-1"], "--recipe-set lr=-1: ", ["Recipe.lr="]),  # the field the user set is blamed
    (["crop=0"], "--recipe-set crop=0: ", ["Recipe.crop=0", "positive integer"]),
    (["val_limit=0"], "--recipe-set val_limit=0: ", ["Recipe.val_limit=0", "positive number"]),
    (["val_limit=-2"], "--recipe-set val_limit=-2: ", ["Recipe.val_limit=-2"]),
    (["total_iters=0"], "--recipe-set total_iters=0: ", ["Recipe.total_iters=0"]),
    (["warmup_iters=500", "crop=32"], "--recipe-set warmup_iters=500: ", ["warmup_iters < total_iters"]),
])
def test_validation_errors_name_the_setting_that_caused_them(items, start, words):
    with pytest.raises(OverrideError) as exc:
        apply_overrides(recipe("sidd-proxy"), items, "--recipe-set")
    message = str(exc.value)
    assert message.startswith(start) and all(w in message for w in words), message


def test_model_validation_blames_the_setting():
    with pytest.raises(OverrideError) as exc:
        apply_overrides(TINY, ["stages=1"], "--model-set")
    assert str(exc.value).startswith("--model-set stages=1: HINetConfig.csff=True")


def test_custom_build_routes_fields_and_keeps_blame():
    def build(cfg, **values):  # as hinet.train does: width/depth through scaled() so that the HIN range follows
        cfg = scaled(cfg, width=values.pop("width", cfg.width), depth=values.pop("depth", cfg.depth))
        return replace(cfg, **values)

    gopro = scaled(PRESETS["gopro"], width=4, depth=5)
    assert apply_overrides(gopro, ["depth=3"], "--model-set", build=build).norm_levels == (1, 2)
    with pytest.raises(OverrideError, match=r"^--model-set width=3: HINetConfig.width=3"):
        apply_overrides(gopro, ["width=3"], "--model-set", build=build)


def test_recipe_refuses_val_limit_zero_and_unknown_loss_directly():
    with pytest.raises(ValueError, match="val_limit"):
        replace(recipe("sidd"), val_limit=0)
    with pytest.raises(ValueError, match="Recipe.loss='l2'"):
        replace(recipe("sidd"), loss="l2")
    assert replace(recipe("sidd"), val_limit=1).val_limit == 1


@pytest.mark.parametrize(("data", "words"), [
    ({"csff": "no"}, ["HINetConfig.csff", "'no'", "bool"]),
    ({"width": 4.5}, ["HINetConfig.width", "4.5", "integer"]),
    ({"width": True}, ["HINetConfig.width", "integer"]),
    ({"norm": "layer"}, ["HINetConfig.norm", "'half_instance'"]),
    ({"norm_levels": [1, 2, 3]}, ["HINetConfig.norm_levels"]),
    ({"wf": 4}, ["no field(s) ['wf']"]),
])
def test_stored_configs_are_checked_by_type(data, words):
    with pytest.raises(StoredFieldError) as exc:
        check_stored(HINetConfig, data, "ckpt.pth: stored config")
    message = str(exc.value)
    assert message.startswith("ckpt.pth: stored config: ") and all(w in message for w in words), message


def test_stored_config_round_trip():
    data = check_stored(HINetConfig, TINY.to_dict(), "x")
    assert HINetConfig(**data) == TINY
    assert check_stored(HINetConfig, {"norm_levels": [3, 4], "relu_slope": 0}, "x") == {
        "norm_levels": (3, 4), "relu_slope": 0.0}


def test_unsupported_annotations_are_a_programming_error():
    with pytest.raises(TypeError):
        parse_value("1", int | str)
    with pytest.raises(TypeError):
        parse_value("1,2", tuple[int, ...])
