"""Official checkpoints load into outputs identical to the official code's; saving round-trips."""

import pytest
import torch
from conftest import FIXTURES

import hinet
from hinet.checkpoint import infer_config, save_official
from hinet.config import PRESETS, scaled

OFFICIAL = FIXTURES / "official"
OUTPUTS = torch.load(OFFICIAL / "official_forward_outputs_wf4.pt", weights_only=True)


@pytest.mark.parametrize("tag", ["hin0to4", "hin3to4"])
def test_official_checkpoint_reproduces_official_outputs(tag):
    model = hinet.load(OFFICIAL / f"official_format_wf4_{tag}.pth")
    assert model.cfg.width == 4 and model.cfg.depth == 5
    assert model.cfg.norm_levels == (None if tag == "hin0to4" else (3, 4))
    ref = OUTPUTS[tag]
    with torch.no_grad():
        out1, out2 = model(ref["input"])
    assert (out1 - ref["out_stage1"]).abs().max() < 1e-5
    assert (out2 - ref["out_stage2"]).abs().max() < 1e-5


def test_bare_state_dict_and_module_prefix(tmp_path):
    params = torch.load(OFFICIAL / "official_format_wf4_hin0to4.pth", weights_only=True)["params"]
    torch.save({"module." + k: v for k, v in params.items()}, tmp_path / "bare.pth")
    model = hinet.load(tmp_path / "bare.pth")
    with torch.no_grad():
        assert torch.equal(model(OUTPUTS["hin0to4"]["input"])[1],
                           hinet.load(OFFICIAL / "official_format_wf4_hin0to4.pth")(OUTPUTS["hin0to4"]["input"])[1])


@pytest.mark.parametrize("tag", ["hin0to4", "hin3to4"])
def test_official_round_trip(tmp_path, tag):
    src = OFFICIAL / f"official_format_wf4_{tag}.pth"
    model = hinet.load(src)
    save_official(model, tmp_path / "back.pth")
    original = torch.load(src, weights_only=True)["params"]
    back = torch.load(tmp_path / "back.pth", weights_only=True)["params"]
    assert back.keys() == original.keys()
    assert all(torch.equal(back[k], original[k]) for k in original)


def test_our_format_keeps_config(tmp_path):
    cfg = scaled(PRESETS["ntire"], width=4, depth=3)
    model = hinet.HINet(cfg)
    hinet.save(model, tmp_path / "ours.pth", meta={"seed": 3})
    loaded = hinet.load(tmp_path / "ours.pth")
    assert loaded.cfg == cfg
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    with pytest.raises(ValueError, match="official"):
        save_official(model, tmp_path / "x.pth")  # extra blocks have no official counterpart


def test_preset_mismatch_names_the_file(tmp_path):
    src = OFFICIAL / "official_format_wf4_hin0to4.pth"
    with pytest.raises(ValueError, match="official_format_wf4_hin0to4.pth"):
        hinet.load(src, "gopro")


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        hinet.load(tmp_path / "missing.pth")
    torch.save({"params": {"encoder.weight": torch.zeros(1)}}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="other.pth"):
        hinet.load(tmp_path / "other.pth")
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="list.pth"):
        hinet.load(tmp_path / "list.pth")


def test_infer_config_from_official_key_list():
    import json

    ref = json.loads((OFFICIAL / "official_hinet_state_dicts.json").read_text())
    for name, preset in [("HINet-SIDD-1x", "sidd-1x"), ("HINet-SIDD-0.5x", "sidd-0.5x"),
                         ("HINet-GoPro", "gopro"), ("HINet-Rain13k", "rain13k")]:
        shapes = {k: torch.empty(v, device="meta") for k, v in ref[name]["state_dict"].items()}
        assert infer_config(shapes) == PRESETS[preset]
