"""The network: every preset and ablation switch builds, runs and trains; switches really change it."""

import json
from dataclasses import replace

import pytest
import torch
from conftest import FIXTURES

from ablations import FAMILIES
from hinet import HINet, HINetConfig, count_parameters
from hinet.config import PRESETS, scaled

TINY = dict(width=4, depth=3)
VARIANTS = {f"preset:{k}": v for k, v in PRESETS.items()}
VARIANTS |= {f"{fam}:{name}": cfg for fam, mod in FAMILIES.items() for name, cfg in mod.VARIANTS.items()
             if isinstance(cfg, HINetConfig)}  # the methods family's peers: tests/test_comparators.py, test_models.py


def tiny(cfg: HINetConfig) -> HINetConfig:
    """Shrink to width 4 (8 for ratio 0.25/0.75, which need width * ratio whole) keeping depth differences."""
    width = 8 if cfg.norm_ratio in (0.25, 0.75) else 4
    return scaled(cfg, width=width, depth=max(1, cfg.depth - 2))


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_forward_backward_odd_size(name):
    torch.manual_seed(0)
    cfg = tiny(VARIANTS[name])
    model = HINet(cfg).train()
    x = torch.rand(2, 3, 13, 19)
    outs = model(x)
    assert len(outs) == cfg.stages
    assert all(o.shape == x.shape for o in outs)
    sum(o.square().mean() for o in outs).backward()
    dangling = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not dangling, f"parameters without a gradient: {dangling}"
    if cfg.norm != "batch":  # batch statistics couple the images of a batch
        model.eval()
        with torch.no_grad():
            alone = model(x[:1])[-1]
            assert torch.allclose(alone, model(x)[-1][:1], atol=1e-5)


def _count(cfg: HINetConfig) -> int:
    with torch.device("meta"):
        return count_parameters(HINet(cfg))


@pytest.mark.parametrize(("preset", "official"), [("sidd-1x", "HINet-SIDD-1x"), ("sidd-0.5x", "HINet-SIDD-0.5x"),
                                                  ("gopro", "HINet-GoPro"), ("rain13k", "HINet-Rain13k")])
def test_parameter_counts_and_keys_match_official(preset, official):
    from hinet.checkpoint import to_official

    ref = json.loads((FIXTURES / "official" / "official_hinet_state_dicts.json").read_text())[official]
    with torch.device("meta"):
        model = HINet(PRESETS[preset])
    assert count_parameters(model) == ref["num_params"]
    ours = {k: list(v.shape) for k, v in to_official(model.state_dict()).items()}
    assert ours == ref["state_dict"]


def test_reference_parameter_counts():
    assert _count(PRESETS["sidd-1x"]) == 88_669_702
    assert _count(PRESETS["sidd-0.5x"]) == 22_176_518


BASE = scaled(PRESETS["sidd-1x"], width=8, depth=3)


def _norm_affine(cfg):
    """Affine parameters of the normalisation layers (what HIN adds to the count)."""
    return sum(2 * round(cfg.width * 2**lvl * cfg.fraction_normalized)
               for lvl in range(cfg.depth) if cfg.normalizes_level(lvl)) * cfg.stages


@pytest.mark.parametrize(("field", "value"), [
    ("norm", "none"), ("norm", "instance"), ("norm_ratio", 0.25), ("norm_levels", (1, 2)),
])
def test_normalisation_switches_change_affine_count(field, value):
    cfg = replace(BASE, **{field: value})
    assert _count(cfg) - _count(BASE) == _norm_affine(cfg) - _norm_affine(BASE) != 0


def test_component_switches_remove_exactly_their_modules():
    w, c = BASE.width, 3
    conv = lambda cin, cout, k=3: cin * cout * k * k + cout  # noqa: E731
    widths = [w * 2**i for i in range(BASE.depth - 1)]
    csff = sum(2 * conv(x, x) for x in widths)
    assert _count(BASE) - _count(replace(BASE, csff=False)) == csff
    sam, head = conv(w, w) + conv(w, c) + conv(c, w), conv(w, c)
    assert _count(BASE) - _count(replace(BASE, sam=False)) == sam - head
    one = replace(BASE, stages=1, csff=False, sam=False)
    assert _count(replace(BASE, stages=3)) - _count(BASE) == _count(BASE) - _count(one)


def test_batch_norm_differs_from_instance_norm_in_eval():
    torch.manual_seed(0)
    x = torch.rand(1, 3, 16, 16)
    inst = HINet(replace(BASE, norm="half_instance")).eval()
    batch = HINet(replace(BASE, norm="batch", norm_ratio=0.5)).eval()
    batch.load_state_dict(inst.state_dict(), strict=False)  # same weights; only the norm differs
    assert not torch.allclose(inst(x)[-1], batch(x)[-1])


@pytest.mark.parametrize(("field", "value"), [("csff", False), ("sam", False), ("norm", "none"),
                                              ("norm", "instance"), ("norm_ratio", 0.25), ("extra_blocks", 1)])
def test_switch_changes_the_output(field, value):
    torch.manual_seed(0)
    x = torch.rand(1, 3, 16, 16)
    base = HINet(BASE).eval()
    other = HINet(replace(BASE, **{field: value})).eval()
    mine = other.state_dict()
    shared = {k: v for k, v in base.state_dict().items() if k in mine and mine[k].shape == v.shape}
    other.load_state_dict(shared, strict=False)  # shared weights equal, the rest random
    with torch.no_grad():
        assert not torch.allclose(base(x)[-1], other(x)[-1], atol=1e-6)


def test_width_and_depth_change_the_network():
    assert _count(replace(BASE, width=16)) > _count(BASE)
    assert _count(replace(BASE, depth=4)) > _count(BASE)
    assert _count(replace(BASE, extra_blocks=1)) > _count(BASE)


@pytest.mark.parametrize(("kwargs", "field"), [
    (dict(width=5), "width"), (dict(stages=1), "csff"), (dict(stages=1, csff=False), "sam"),
    (dict(norm_levels=(0, 5)), "norm_levels"), (dict(norm_levels=(3, 1)), "norm_levels"),
    (dict(depth=0), "depth"), (dict(norm="group"), "norm"), (dict(norm_ratio=1.5), "norm_ratio"),
    (dict(stages=0), "stages"), (dict(depth=1, sam=True), "csff"), (dict(extra_blocks=-1), "extra_blocks"),
    (dict(norm="instance", norm_ratio=0.5), "norm_ratio"), (dict(width=8.0), "width"),
])
def test_invalid_configs_raise_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=rf"HINetConfig\.{field}="):
        HINetConfig(**kwargs)


def test_config_dict_round_trip_and_unknown_keys():
    cfg = PRESETS["gopro"]
    assert HINetConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match="unknown field"):
        HINetConfig.from_dict({"wf": 64})


@pytest.mark.parametrize("size", [(16, 16), (17, 31), (5, 9)])
def test_padding_crops_back(size):
    model = HINet(BASE).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, *size))
    assert out[-1].shape[-2:] == size


def test_reset_parameters_gives_shared_modules_the_same_weights_in_every_variant():
    from hinet.arch import module_seed

    cfg = replace(BASE, width=4, depth=2)
    variants = [cfg, replace(cfg, csff=False), replace(cfg, sam=False), replace(cfg, norm="none"),
                replace(cfg, stages=1, csff=False, sam=False)]
    state = torch.random.get_rng_state()
    models = [HINet(v) for v in variants]
    for m in models:
        assert m.reset_parameters(7) is m
    torch.random.set_rng_state(state)
    full = models[0].state_dict()
    shared = 0
    for other in models[1:]:
        for key, value in other.state_dict().items():
            if key in full and full[key].shape == value.shape:
                assert torch.equal(full[key], value), key
                shared += 1
    assert shared > 0
    # another seed changes every convolution; the draw is torch's default one from the named seed
    again = HINet(cfg)
    again.reset_parameters(8)
    conv = "stages.1.encoder.0.conv_1"
    assert not torch.equal(again.state_dict()[conv + ".weight"], full[conv + ".weight"])
    reference = torch.nn.Conv2d(4, 4, 3, padding=1)
    torch.manual_seed(module_seed(7, conv))
    reference.reset_parameters()
    assert torch.equal(reference.weight, full[conv + ".weight"]) and torch.equal(reference.bias, full[conv + ".bias"])


def test_reset_parameters_leaves_the_global_generator_alone():
    model = HINet(replace(BASE, width=4, depth=2))
    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    model.reset_parameters(0)
    assert torch.equal(torch.rand(4), expected)
