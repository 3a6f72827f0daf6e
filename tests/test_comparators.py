"""MPRNet and NAFNet: official checkpoints load through hinet.load and give the official code's outputs.

The fixtures come from the official code (tests/fixtures/comparators/generate.py; see its README).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import hinet
from hinet.arch import count_parameters
from hinet.checkpoint import CheckpointError
from hinet.mprnet import MPRNET_PRESETS, MPRNet, MPRNetConfig
from hinet.mprnet import infer_config as infer_mprnet
from hinet.nafnet import NAFNET_PRESETS, NAFNet, NAFNetConfig
from hinet.nafnet import infer_config as infer_nafnet

FIXTURES = Path(__file__).parent / "fixtures" / "comparators"
OUTPUTS = torch.load(FIXTURES / "official_outputs.pt", weights_only=True)
FULL = json.loads((FIXTURES / "official_full_size.json").read_text())
TOL = 1e-4


def _max_diff(ours: list[torch.Tensor], theirs: list[torch.Tensor]) -> float:
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert a.shape == b.shape
    return max(float((a - b).abs().max()) for a, b in zip(ours, theirs))


@pytest.mark.parametrize("variant", ["sidd", "gopro", "rain13k"])
def test_mprnet_official_checkpoint_gives_official_outputs_final_last(variant):
    model = hinet.load(FIXTURES / f"mprnet_{variant}.pth")
    assert isinstance(model, MPRNet) and not model.training
    ref = OUTPUTS[f"mprnet_{variant}"]
    assert model.cfg == MPRNetConfig(**ref["kwargs"])
    with torch.no_grad():
        for x, official in zip(ref["inputs"], ref["outputs"]):  # square and non-square
            ours = model(x)
            assert _max_diff(ours, official[::-1]) < TOL  # official: [final, stage 2, stage 1]
        # a size that is not a multiple of 8: reflect-padded and cropped back, as the official demo.py
        ours = model(ref["demo_input"])
        assert ours[-1].shape == ref["demo_input"].shape
        assert _max_diff(ours, ref["demo_output"][::-1]) < TOL


@pytest.mark.parametrize("variant", ["sidd", "gopro"])
def test_nafnet_official_checkpoint_gives_official_outputs(variant):
    model = hinet.load(FIXTURES / f"nafnet_{variant}.pth")
    assert isinstance(model, NAFNet) and not model.training
    ref = OUTPUTS[f"nafnet_{variant}"]
    k = ref["kwargs"]
    assert model.cfg == NAFNetConfig(width=k["width"], middle_blocks=k["middle_blk_num"],
                                     enc_blocks=tuple(k["enc_blk_nums"]), dec_blocks=tuple(k["dec_blk_nums"]))
    with torch.no_grad():
        for x, official in zip(ref["inputs"], ref["outputs"]):  # square, non-square, not a multiple of 16
            ours = model(x)
            assert len(ours) == 1
            assert _max_diff(ours, [official]) < TOL


@pytest.mark.parametrize("name", ["mprnet-sidd", "mprnet-gopro", "mprnet-rain13k",
                                  "nafnet-sidd-width32", "nafnet-sidd-width64"])
def test_full_size_presets_have_the_official_keys_shapes_and_parameter_count(name):
    ref = FULL[name]
    presets = {**MPRNET_PRESETS, **NAFNET_PRESETS}
    network = MPRNet if name.startswith("mprnet") else NAFNet
    with torch.device("meta"):
        model = network(presets[name])
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == ref["state_dict"]
    assert count_parameters(model) == ref["params"]
    # and the shapes alone give back the preset
    shapes = {k: torch.empty(v, device="meta") for k, v in ref["state_dict"].items()}
    infer = infer_mprnet if network is MPRNet else infer_nafnet
    assert infer(shapes) == presets[name]


def test_mprnet_parameter_counts_match_the_published_table():
    with torch.device("meta"):
        counts = {name: count_parameters(MPRNet(cfg)) for name, cfg in MPRNET_PRESETS.items()}
    assert {k: round(v / 1e6, 2) for k, v in counts.items()} == \
        {"mprnet-sidd": 15.74, "mprnet-gopro": 20.13, "mprnet-rain13k": 3.64}


def test_mprnet_shares_one_prelu():
    model = MPRNet(MPRNetConfig(n_feat=4, scale_unetfeats=2, scale_orsnetfeats=2))
    prelus = {id(m) for m in model.modules() if isinstance(m, torch.nn.PReLU)}
    assert len(prelus) == 1


@pytest.mark.parametrize("size", [(13, 21), (8, 8), (17, 9)])
def test_mprnet_pads_and_crops_back(size):
    model = MPRNet(MPRNetConfig(n_feat=4, scale_unetfeats=2, scale_orsnetfeats=2, num_cab=1)).eval()
    with torch.no_grad():
        outs = model(torch.rand(2, 3, *size))
    assert [o.shape for o in outs] == [torch.Size([2, 3, *size])] * 3


def test_mprnet_too_small_input_is_refused():
    model = MPRNet(MPRNetConfig(n_feat=4, scale_unetfeats=2, scale_orsnetfeats=2, num_cab=1)).eval()
    with pytest.raises(ValueError, match="too small"):
        model(torch.rand(1, 3, 4, 16))


def test_nafnet_layer_norm_gradients_match_the_official_formula():
    from hinet.nafnet import LayerNorm2d

    torch.manual_seed(0)
    norm = LayerNorm2d(5)
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
    x = torch.randn(2, 5, 3, 4, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(lambda t: norm.double()(t), (x,))
    expected = torch.nn.functional.layer_norm(x.permute(0, 2, 3, 1), (5,), norm.weight, norm.bias, eps=1e-6)
    assert torch.allclose(norm(x), expected.permute(0, 3, 1, 2))


MPRNET_BAD = [("n_feat", 0), ("n_feat", 2.5), ("scale_unetfeats", -1), ("scale_orsnetfeats", -2), ("num_cab", 0),
              ("kernel_size", 4), ("reduction", 0), ("reduction", 100), ("bias", 1), ("in_channels", 0)]
NAFNET_BAD = [("width", 0), ("middle_blocks", -1), ("enc_blocks", [1, 1]), ("enc_blocks", (1, -1)),
              ("dec_blocks", (1,)), ("in_channels", True)]


@pytest.mark.parametrize("field, value", MPRNET_BAD)
def test_mprnet_config_validation_names_the_field(field, value):
    with pytest.raises(ValueError, match=rf"^MPRNetConfig\.{field}="):
        replace(MPRNetConfig(), **{field: value})


@pytest.mark.parametrize("field, value", NAFNET_BAD)
def test_nafnet_config_validation_names_the_field(field, value):
    with pytest.raises(ValueError, match=rf"^NAFNetConfig\.{field}="):
        replace(NAFNetConfig(enc_blocks=(1, 1), dec_blocks=(1, 1)), **{field: value})


def _one_line(err: pytest.ExceptionInfo, path: Path) -> str:
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    return message


def test_truncated_and_foreign_comparator_checkpoints_raise_one_line(tmp_path):
    state = torch.load(FIXTURES / "mprnet_sidd.pth", weights_only=True)["state_dict"]
    missing = tmp_path / "mprnet_missing_key.pth"
    torch.save({"state_dict": {k: v for k, v in state.items() if not k.startswith("tail.")}}, missing)
    with pytest.raises(CheckpointError) as err:
        hinet.load(missing)
    assert "tail.weight" in _one_line(err, missing)

    params = torch.load(FIXTURES / "nafnet_sidd.pth", weights_only=True)["params"]
    wrong = tmp_path / "nafnet_wrong_shape.pth"
    params = dict(params, **{"ending.weight": torch.zeros(3, 5, 3, 3)})
    torch.save({"params": params}, wrong)
    with pytest.raises(CheckpointError) as err:
        hinet.load(wrong)
    assert "ending.weight" in _one_line(err, wrong)

    cut = tmp_path / "cut.pth"
    cut.write_bytes((FIXTURES / "mprnet_rain13k.pth").read_bytes()[:5000])
    with pytest.raises(CheckpointError) as err:
        hinet.load(cut)
    _one_line(err, cut)

    unknown = tmp_path / "unknown.pth"
    torch.save({"params": {"body.weight": torch.zeros(2)}}, unknown)
    with pytest.raises(CheckpointError) as err:
        hinet.load(unknown)
    _one_line(err, unknown)


def test_comparator_presets_and_configs_through_load(tmp_path):
    src = FIXTURES / "mprnet_rain13k.pth"
    with pytest.raises(CheckpointError, match="holds MPRNet weights; preset 'sidd-1x'"):
        hinet.load(src, "sidd-1x")
    with pytest.raises(CheckpointError, match="config must be a MPRNetConfig"):
        hinet.load(src, config=NAFNetConfig())
    with pytest.raises(CheckpointError, match="weights do not fit"):
        hinet.load(src, "mprnet-rain13k")  # full-size preset, small weights
    model = hinet.load(src, config=MPRNetConfig(**OUTPUTS["mprnet_rain13k"]["kwargs"]))
    assert isinstance(model, MPRNet)


def test_reset_parameters_is_seeded_per_module():
    cfg = NAFNetConfig(width=4, middle_blocks=1, enc_blocks=(1,), dec_blocks=(1,))
    a, b = NAFNet(cfg).reset_parameters(3), NAFNet(cfg).reset_parameters(3)
    assert all(torch.equal(a.state_dict()[k], v) for k, v in b.state_dict().items())
    m = MPRNet(MPRNetConfig(n_feat=4, scale_unetfeats=2, scale_orsnetfeats=2, num_cab=1))
    assert m.reset_parameters(1) is m


def test_exports():
    assert hinet.MPRNet is MPRNet and hinet.NAFNet is NAFNet
    assert hinet.MPRNetConfig is MPRNetConfig and hinet.NAFNetConfig is NAFNetConfig


def test_complexity_counters_count_both_networks():
    from hinet.complexity import conv_macs, ptflops_macs

    mpr = MPRNet(MPRNetConfig(n_feat=4, scale_unetfeats=2, scale_orsnetfeats=2, num_cab=1)).eval()
    naf = NAFNet(NAFNetConfig(width=4, middle_blocks=1, enc_blocks=(1,), dec_blocks=(1,))).eval()
    for model in (mpr, naf):
        assert ptflops_macs(model, (32, 32)) > conv_macs(model, (32, 32)) > 0
    with pytest.raises(RuntimeError, match="too small"):
        ptflops_macs(mpr, (3, 3))
