"""hinet.tlc (Test-time Local Converter): the official HINetLocal numbers, window semantics, fused norm,
conversion round trip and errors, and TLC protocols in hinet.evaluate."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from hinet.arch import HINet
from hinet.blocks import PartialNorm
from hinet.checkpoint import from_official, infer_config
from hinet.config import HINetConfig
from hinet.data import synthetic_test_sets
from hinet.errors import UserError
from hinet.evaluate import PROTOCOLS, evaluate, predict, score, with_tlc
from hinet.fast import optimize_for_inference, set_fused_norm
from hinet.tlc import LocalPartialNorm, NoInstanceNormError, box_mean, is_local, local_windows, to_global, to_local

FIXTURE = Path(__file__).parent / "fixtures" / "tlc" / "official_tlc_wf4.pt"
TINY = HINetConfig(width=4, depth=3)  # HIN on levels 0..2; 3 U-Net levels, maps /1, /2, /4


def tiny(seed: int = 0, cfg: HINetConfig = TINY) -> HINet:
    """A tiny random HINet whose norms have a non-trivial affine."""
    torch.manual_seed(seed)
    model = HINet(cfg).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, PartialNorm):
                m.weight.normal_(1.0, 0.3)
                m.bias.normal_(0.0, 0.2)
    return model


def image(h: int, w: int, n: int = 1, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed))


def max_diff(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    assert len(a) == len(b)
    return max((x - y).abs().max().item() for x, y in zip(a, b))


# ------------------------------------------------------------------------------------------ official numbers
@pytest.fixture(scope="module")
def official() -> dict:
    return torch.load(FIXTURE, weights_only=True)


def official_model(data: dict, levels_key: str) -> HINet:
    left, right = data["levels"][levels_key]
    keep = tuple(f"down_path_{k}.{lvl}.norm." for k in (1, 2) for lvl in range(left, right + 1))
    params = {k: v.float() for k, v in data["params_float16"].items() if ".norm." not in k or k.startswith(keep)}
    model = HINet(infer_config(params, "fixture"))
    model.load_state_dict(from_official(params, "fixture"))
    assert model.cfg.norm_levels == (None if (left, right) == (0, 4) else (left, right))
    return model.eval()


def test_fixture_stays_small() -> None:
    assert FIXTURE.stat().st_size < 2_000_000


@pytest.mark.parametrize("case", [0, 1, 2], ids=["base80-hin0to4", "base40-hin3to4", "base384-hin0to4"])
@pytest.mark.parametrize("fused", [False, True], ids=["plain", "fused"])
def test_to_local_reproduces_official_hinet_local(official: dict, case: int, fused: bool) -> None:
    spec = official["cases"][case]
    x = official["input_uint8"].float() / 255
    model = official_model(official, spec["params"])
    with torch.no_grad():
        plain = model(x)
    assert max_diff(plain, official["outputs_global"][spec["params"]]) <= 1e-4
    local = to_local(model, spec["base_size"], spec["train_size"])
    assert [list(w) for w in local_windows(local).values()] == spec["window_sizes"]
    if fused:
        assert set_fused_norm(local) == len(spec["window_sizes"])
    with torch.no_grad():
        out = local(x)
    assert len(out) == 2
    assert max_diff(out, spec["outputs_local"]) <= 1e-4
    if spec["base_size"] < 384:  # the comparison can tell TLC from global statistics
        assert max_diff(official["outputs_global"][spec["params"]], spec["outputs_local"]) > 5e-4


# ------------------------------------------------------------------------------------------ window semantics
def naive_local_norm(x: torch.Tensor, channels: int, window: tuple[int, int], weight: torch.Tensor,
                     bias: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Per-pixel loop in float64: each pixel takes the mean/var of the window the official code assigns it
    (the valid window nearest to being centred on it: rows [i, i + kh) with i = clamp(p - (kh - 1) // 2, 0,
    H - kh), kh = min(window, H); the same on W)."""
    x64 = x.double()
    out = x64.clone()
    _, _, h, w = x.shape
    kh, kw = min(window[0], h), min(window[1], w)
    for p in range(h):
        i = min(max(p - (kh - 1) // 2, 0), h - kh)
        for q in range(w):
            j = min(max(q - (kw - 1) // 2, 0), w - kw)
            patch = x64[:, :channels, i:i + kh, j:j + kw]  # (N, k, kh, kw)
            mean = patch.mean(dim=(2, 3))
            var = patch.var(dim=(2, 3), unbiased=False)
            out[:, :channels, p, q] = ((x64[:, :channels, p, q] - mean) / torch.sqrt(var + eps) * weight.double()
                                       + bias.double())
    return out


@pytest.mark.parametrize("window", [(3, 4), (2, 2), (7, 2), (9, 5), (5, 11)])
@pytest.mark.parametrize("fused", [False, True])
def test_local_norm_equals_a_naive_per_pixel_window(window: tuple[int, int], fused: bool) -> None:
    torch.manual_seed(3)
    x = torch.randn(2, 6, 7, 9) * 2 + 3  # (N, C, H, W); windows (7, 2) and (9, 5) cover H, (5, 11) covers W
    norm = LocalPartialNorm(6, 4, window)
    with torch.no_grad():
        norm.weight.normal_(1, 0.3)
        norm.bias.normal_(0, 0.3)
    norm.fused = fused
    with torch.no_grad():
        out = norm(x)
    expected = naive_local_norm(x, 4, window, norm.weight, norm.bias)
    torch.testing.assert_close(out.double(), expected, rtol=0, atol=2e-5)
    assert torch.equal(out[:, 4:], x[:, 4:])  # the other half passes through


def test_box_mean_valid_part_equals_avg_pool2d() -> None:
    x = torch.randn(2, 3, 17, 23, generator=torch.Generator().manual_seed(0))
    for kh, kw in [(4, 6), (5, 5), (1, 3)]:
        got = box_mean(x, (kh, kw))
        ref = F.avg_pool2d(x, (kh, kw), stride=1)  # the windows that lie wholly inside the map
        top, left = (kh - 1) // 2, (kw - 1) // 2
        torch.testing.assert_close(got[..., top:top + ref.shape[-2], left:left + ref.shape[-1]], ref,
                                   rtol=0, atol=1e-5)
        assert torch.equal(got[..., 0, :], got[..., top, :])  # rows above the first valid centre replicate it


def test_window_covering_the_map_gives_the_global_network() -> None:
    model = tiny()
    x = image(48, 64, n=2)
    local = to_local(model, 384, 256)  # windows 384, 192, 96 >= maps 48x64, 24x32, 12x16
    assert is_local(local) and not is_local(model)
    with torch.no_grad():
        assert max_diff(local(x), model(x)) <= 1e-6


def test_window_smaller_than_the_map_changes_the_output() -> None:
    model = tiny()
    x = image(48, 64, n=2)
    local = to_local(model, 40, 256)  # windows 40, 20, 10 < maps 48x64, 24x32, 12x16
    assert list(local_windows(local).values()) == [(40, 40), (20, 20), (10, 10)] * 2
    with torch.no_grad():
        out, ref = local(x), model(x)
    assert max_diff(out, ref) > 1e-3
    with torch.no_grad():  # batch items are normalised independently
        assert max_diff([o[1:] for o in out], local(x[1:])) <= 1e-5


def test_windows_follow_base_size_in_input_pixels_for_other_train_sizes() -> None:
    local = to_local(tiny(), base_size=(96, 144), train_size=(64, 96))  # 1.5x a 64x96 crop
    assert list(local_windows(local).values()) == [(96, 144), (48, 72), (24, 36)] * 2
    norm = next(m for m in local.modules() if isinstance(m, LocalPartialNorm))
    assert norm.calibrated == (64, 96) and norm.base_size == (96, 144) and norm.train_size == (64, 96)


def test_fused_norm_before_or_after_conversion_and_channels_last_runner() -> None:
    model = tiny()
    x = image(40, 56)
    ref_local = to_local(model, 32, 256)
    with torch.no_grad():
        ref = ref_local(x)
    fused_first = tiny()
    set_fused_norm(fused_first)
    converted = to_local(fused_first, 32, 256)
    assert all(m.fused for m in converted.modules() if isinstance(m, LocalPartialNorm))
    runner = to_local(optimize_for_inference(model), 32, 256)  # channels_last, fused, in-place activations
    assert is_local(runner) and not is_local(model)
    with torch.no_grad():
        assert max_diff(converted(x), ref) <= 1e-5
        assert max_diff(runner(x), ref) <= 1e-5
        set_fused_norm(ref_local, False)
        assert max_diff(ref_local(x), ref) == 0.0


def test_bfloat16_autocast_statistics_in_float32() -> None:
    local = to_local(tiny(), 32, 256)
    x = image(40, 56)
    with torch.no_grad():
        ref = local(x)[-1]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = local(x)[-1].float()
    assert torch.isfinite(low).all() and (low - ref).abs().max().item() < 0.05


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_to_local_on_cuda_matches_cpu() -> None:
    model = tiny()
    x = image(40, 56)
    with torch.no_grad():
        cpu = to_local(model, 32, 256)(x)
        cuda = to_local(model.cuda(), 32, 256)(x.cuda())
    assert max_diff([c.cpu() for c in cuda], cpu) <= 1e-4


# ------------------------------------------------------------------------------------------ conversion
def test_to_local_copies_by_default_and_round_trips() -> None:
    model = tiny()
    keys = list(model.state_dict())
    local = to_local(model, 32, 256)
    assert local is not model and not is_local(model) and list(local.state_dict()) == keys
    for (k, a), b in zip(model.state_dict().items(), local.state_dict().values()):
        assert torch.equal(a, b), k
    back = to_global(local)
    assert is_local(local) and not is_local(back) and not local_windows(back)
    x = image(40, 56)
    with torch.no_grad():
        assert max_diff(back(x), model(x)) == 0.0
        again = to_local(local, 64, 256)  # re-conversion starts from the global layers
        assert list(local_windows(again).values())[0] == (64, 64)
    same = to_local(model, 32, 256, inplace=True)
    assert same is model and is_local(model)


@pytest.mark.parametrize(("cfg", "field"), [
    (HINetConfig(width=4, depth=3, norm="none"), "HINetConfig.norm='none'"),
    (HINetConfig(width=4, depth=3, norm="batch"), "HINetConfig.norm='batch'"),
    (HINetConfig(width=4, depth=3, norm_ratio=0.0), "norm_ratio=0.0"),
])
def test_network_without_instance_norm_is_a_user_error(cfg: HINetConfig, field: str) -> None:
    with pytest.raises(NoInstanceNormError, match=field) as err:
        to_local(HINet(cfg), 384, 256)
    assert isinstance(err.value, UserError) and isinstance(err.value, ValueError)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"base_size": 0}, "base_size=0"),
    ({"base_size": True}, "base_size=True"),
    ({"base_size": (384,)}, r"base_size=\(384,\)"),
    ({"train_size": -1}, "train_size=-1"),
    ({"base_size": 8}, "window of"),
])
def test_bad_sizes_are_named(kwargs: dict, match: str) -> None:
    cfg = HINetConfig(width=4, depth=5)  # level 4 sees 16x16 at 256: 16 * 8 // 256 = 0
    with pytest.raises(ValueError, match=match):
        to_local(HINet(cfg), **kwargs)


def test_a_callable_that_is_no_module_is_rejected() -> None:
    with pytest.raises(ValueError, match="nn.Module or a hinet.fast.InferenceRunner"):
        to_local(lambda x: [x])


# ------------------------------------------------------------------------------------------ protocols
def test_with_tlc_names_and_describes_the_protocol() -> None:
    base = PROTOCOLS["deblur"]["full"]
    proto = with_tlc(base, 384, 256)
    assert proto.name == "deblur/full+tlc384-256" and proto.tlc == (384, 256)
    assert "TLC base 384/train 256" in proto.describe() and "TLC" not in base.describe()
    assert with_tlc(proto, 128, 256).name == "deblur/full+tlc128-256"
    assert with_tlc(proto, None) == base
    assert proto.inference == base.inference and proto.mode != base.mode
    with pytest.raises(ValueError, match="base_size=0"):
        with_tlc(base, 0)
    with pytest.raises(ValueError, match="tlc="):
        type(base)("x/y", tlc=(384,))


def test_evaluate_applies_tlc_and_composes_with_tta_and_ensembles() -> None:
    sets = {k: v for k, v in synthetic_test_sets("deblur", size=32, count=1).items() if k == "GoPro (synthetic)"}
    models = [tiny(0), tiny(1)]
    proto = with_tlc(PROTOCOLS["deblur"]["full"], 24, 64)  # windows 24, 12, 6 < maps 32, 16, 8: a cheap calibration
    (r,) = evaluate(models, sets, [proto], tta=True, progress=False)
    degraded, clean, _ = sets["GoPro (synthetic)"][0]
    with torch.no_grad():
        expected = score(predict([to_local(m, 24, 64) for m in models], degraded[None], tta=True), clean[None], proto)
        plain = score(predict(models, degraded[None], tta=True), clean[None], proto)
    assert r.protocol == "deblur/full+tlc24-64" and "TLC base 24/train 64" in r.description
    assert r.metrics["psnr"] == pytest.approx(float(expected["psnr"][0]), abs=1e-9)
    assert abs(r.metrics["psnr"] - float(plain["psnr"][0])) > 1e-4
    assert not any(is_local(m) for m in models)  # the models passed in are not converted


def test_evaluate_rejects_tlc_and_plain_protocols_together() -> None:
    sets = synthetic_test_sets("deblur", size=32, count=1)
    full = PROTOCOLS["deblur"]["full"]
    with pytest.raises(ValueError, match="different inference modes"):
        evaluate(tiny(), sets, [full, with_tlc(full)], progress=False)


def test_published_tlc_rows_match_the_gains_printed_beside_them() -> None:
    from hinet.report import load_published

    key = load_published().set_index(["dataset", "method", "metric"])["value"]
    # the TLC README prints HINet-Local as "33.08 (+0.37)" and "30.66 (+0.33)" over HINet 32.71 / 30.33
    assert key[("GoPro", "HINet-Local", "psnr")] - key[("GoPro", "HINet (paper)", "psnr")] == pytest.approx(0.37)
    assert key[("HIDE", "HINet-Local", "psnr")] - key[("HIDE", "HINet", "psnr")] == pytest.approx(0.33)
