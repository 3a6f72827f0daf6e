"""hinet.metrics against the official HINet metric values, MATLAB conventions, scikit-image and numpy."""

import json
import math

import numpy as np
import pytest
import torch
from conftest import FIXTURES
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from benchmarks.speed.bench_scoring import numpy_psnr_ssim, synthetic_blocks, to_tensor
from hinet import metrics
from hinet.evaluate import PROTOCOLS, Protocol, score
from hinet.metrics import MetricInputError, psnr, quantize, ssim, to_y

DATA = FIXTURES / "metrics"


def _nchw(hwc_uint8: np.ndarray) -> torch.Tensor:
    """HWC uint8 RGB -> (1, 3, H, W) float64 in [0, 1]."""
    return torch.from_numpy(hwc_uint8).permute(2, 0, 1)[None].double() / 255.0


@pytest.fixture(scope="module")
def pairs() -> list[dict]:
    """The 5 official-metric pairs (uint8 RGB, noisy pred vs gt) with their official values."""
    arrays = np.load(DATA / "metric_pairs.npz")
    official = json.loads((DATA / "metric_values.json").read_text())["pairs"]
    exact = json.loads((DATA / "ssim_rgb_float64.json").read_text())["pairs"]
    out = []
    for entry, ex in zip(official, exact):
        i = entry["index"]
        assert ex["index"] == i
        out.append({
            **entry, **ex, "pred_u8": arrays[f"pred_{i}"], "gt_u8": arrays[f"gt_{i}"],
            "pred": _nchw(arrays[f"pred_{i}"]), "gt": _nchw(arrays[f"gt_{i}"]),
        })
    return out


def test_psnr_matches_official_values(pairs):
    for p in pairs:
        rgb = score(p["pred"], p["gt"], Protocol("official-rgb", quantize=True, peak="auto"))
        y = score(p["pred"], p["gt"], Protocol("official-y", quantize=True, y_channel=True, peak="auto"))
        assert float(rgb["psnr"][0]) == pytest.approx(p["psnr_rgb"], abs=1e-4), p["index"]
        assert float(y["psnr"][0]) == pytest.approx(p["psnr_y"], abs=1e-4), p["index"]


def test_ssim_y_matches_official_values(pairs):
    for p in pairs:
        for dtype in (torch.float32, torch.float64):
            got = ssim(p["pred"], p["gt"], y_channel=True, dtype=dtype)
            assert float(got[0]) == pytest.approx(p["ssim_y"], abs=1e-5), (p["index"], dtype)


def test_ssim_rgb_matches_official_formula(pairs):
    # Exact value of the official 3-D SSIM formula (its algorithm re-run in float64, see README).
    for p in pairs:
        exact = p["ssim_rgb_float64"]
        assert float(ssim(p["pred"], p["gt"], dtype=torch.float64)[0]) == pytest.approx(exact, abs=1e-12)
        assert float(ssim(p["pred"], p["gt"])[0]) == pytest.approx(exact, abs=1e-6)


def test_ssim_rgb_within_official_float32_rounding(pairs):
    # The official code ran the 3-D window in float32; its rounding moves the score by up to 9.7e-5
    # (pair 4, SSIM 0.985) from the exact value. 1e-5 would need its rounding, not its formula.
    diffs = [abs(float(ssim(p["pred"], p["gt"])[0]) - p["ssim_rgb"]) for p in pairs]
    assert max(diffs) < 1.5e-4
    assert sorted(diffs)[-2] < 1e-5  # all but the near-identical pair agree to 1e-5


def test_ssim_rgb_reference_arithmetic_reproduces_official_values(pairs):
    # arithmetic="reference" repeats the official float32 dense Conv3d: every pair within 1e-5.
    for p in pairs:
        value = float(ssim(p["pred"], p["gt"], arithmetic="reference")[0])
        assert value == pytest.approx(p["ssim_rgb"], abs=1e-5)
    with pytest.raises(ValueError, match="reference"):
        ssim(pairs[0]["pred"], pairs[0]["gt"], y_channel=True, arithmetic="reference")


def test_channel_order_does_not_matter(pairs):
    p = pairs[1]
    bgr_pred, bgr_gt = p["pred"].flip(1), p["gt"].flip(1)
    for variant in ("official", "matlab"):
        assert torch.allclose(ssim(bgr_pred, bgr_gt, variant=variant), ssim(p["pred"], p["gt"], variant=variant))
    assert torch.equal(psnr(bgr_pred, bgr_gt), psnr(p["pred"], p["gt"]))


def test_psnr_equals_skimage(pairs):
    for p in pairs:
        ref = peak_signal_noise_ratio(p["gt_u8"], p["pred_u8"], data_range=255)
        assert float(psnr(p["pred"], p["gt"])[0]) == pytest.approx(ref, abs=1e-10)


def test_matlab_ssim_on_uint8_y_equals_skimage_gaussian(pairs):
    # skimage's gaussian_weights=True uses Wang's 11-tap sigma-1.5 window and crops 5 pixels ('valid').
    for p in pairs:
        y_pred = to_y(p["pred"], round_uint8=True)[0, 0].numpy() * 255
        y_gt = to_y(p["gt"], round_uint8=True)[0, 0].numpy() * 255
        ref = structural_similarity(
            y_pred, y_gt, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
        )
        ours = ssim(p["pred"], p["gt"], y_channel=True, round_y=True, variant="matlab", dtype=torch.float64)
        assert float(ours[0]) == pytest.approx(ref, abs=1e-10)
        assert float(ssim(p["pred"], p["gt"], y_channel=True, round_y=True, variant="matlab")[0]) == (
            pytest.approx(ref, abs=1e-6)
        )


def test_numpy_reference_agrees_with_batched_torch():
    pred, gt = synthetic_blocks(n=4, size=64, seed=1)
    ref = np.array([numpy_psnr_ssim(p, g) for p, g in zip(pred, gt)])
    p64 = torch.from_numpy(pred).permute(0, 3, 1, 2).double() / 255
    g64 = torch.from_numpy(gt).permute(0, 3, 1, 2).double() / 255
    assert np.allclose(psnr(p64, g64).numpy(), ref[:, 0], atol=1e-10, rtol=0)
    assert np.allclose(ssim(p64, g64, dtype=torch.float64).numpy(), ref[:, 1], atol=1e-12, rtol=0)
    # what the benchmark times: float32 inputs, default float32 SSIM
    p32, g32 = to_tensor(pred), to_tensor(gt)
    assert np.allclose(psnr(p32, g32).numpy(), ref[:, 0], atol=1e-4, rtol=0)
    assert np.allclose(ssim(p32, g32).numpy(), ref[:, 1], atol=1e-6, rtol=0)


def test_batch_blocks_equal_single_images(monkeypatch):
    torch.manual_seed(0)
    pred = torch.rand(5, 3, 20, 24)  # synthetic
    gt = (pred + 0.1 * torch.randn_like(pred)).clamp(0, 1)
    float_rgb = Protocol("float-rgb")  # no rounding, peak 1, 3-D SSIM
    whole = score(pred, gt, float_rgb)
    monkeypatch.setitem(metrics._BLOCK_ELEMS, "cpu", 2 * 3 * 20 * 24)  # blocks of 2, 2, 1 images
    blocked = score(pred, gt, float_rgb)
    single = [score(pred[i : i + 1], gt[i : i + 1], float_rgb) for i in range(5)]
    for key in ("psnr", "ssim"):
        assert torch.allclose(whole[key], blocked[key], rtol=0, atol=1e-12)
        assert torch.allclose(whole[key], torch.cat([s[key] for s in single]), rtol=0, atol=1e-12)


def test_inputs_are_not_modified():
    torch.manual_seed(0)
    pred, gt = torch.rand(2, 3, 16, 16, dtype=torch.float64), torch.rand(2, 3, 16, 16, dtype=torch.float64)
    before = (pred.clone(), gt.clone())
    for y in (False, True):
        ssim(pred, gt, y_channel=y, dtype=torch.float64)
        psnr(pred, gt, y_channel=y)
    assert torch.equal(pred, before[0]) and torch.equal(gt, before[1])


def test_identical_images():
    x = torch.rand(2, 3, 16, 16)  # synthetic
    assert torch.isinf(psnr(x, x)).all() and (psnr(x, x) > 0).all()
    assert torch.allclose(ssim(x, x), torch.ones(2, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(ssim(x, x, variant="matlab", dtype=torch.float64), torch.ones(2, dtype=torch.float64))


def test_ssim_symmetric_and_crop_border():
    torch.manual_seed(1)
    a, b = torch.rand(2, 3, 30, 30), torch.rand(2, 3, 30, 30)  # synthetic
    assert torch.allclose(ssim(a, b), ssim(b, a), atol=1e-7)
    cropped = ssim(a[..., 4:-4, 4:-4], b[..., 4:-4, 4:-4], variant="matlab")
    assert torch.allclose(ssim(a, b, crop_border=4, variant="matlab"), cropped, atol=1e-12)
    assert torch.equal(psnr(a, b, crop_border=4), psnr(a[..., 4:-4, 4:-4], b[..., 4:-4, 4:-4]))


def test_matlab_rgb_is_mean_of_channel_scores():
    torch.manual_seed(2)
    a, b = torch.rand(1, 3, 24, 24), torch.rand(1, 3, 24, 24)  # synthetic
    per_channel = [ssim(a[:, c : c + 1], b[:, c : c + 1], variant="matlab") for c in range(3)]
    assert torch.allclose(ssim(a, b, variant="matlab"), sum(per_channel) / 3, atol=1e-9)


def test_auto_peak_float_path_scores_overshoot_with_255():
    # Official float path (use_image: false): any pred pixel above 1 switches that image's peak to 255.
    gt = torch.full((2, 3, 8, 8), 0.5)  # synthetic
    pred = gt + 0.01
    pred[1, 0, 0, 0] = 1.02
    auto, fixed = psnr(pred, gt, peak="auto"), psnr(pred, gt, peak=1.0, check_range=False)
    assert auto[0] == pytest.approx(float(fixed[0]), abs=1e-12)
    assert float(auto[1] - fixed[1]) == pytest.approx(20 * math.log10(255), abs=1e-9)


def test_auto_peak_uint8_path_is_255_except_near_black():
    gt = torch.zeros(2, 3, 8, 8)  # synthetic
    pred = torch.full_like(gt, 3 / 255)
    pred[1] = 1 / 255  # uint8 image whose max is 1: the official heuristic picks peak 1 on 0..255 data
    auto = psnr(pred, gt, peak="auto", auto_scale=255.0)
    fixed = psnr(pred, gt, peak=1.0)
    assert auto[0] == pytest.approx(float(fixed[0]), abs=1e-12)
    assert float(fixed[1] - auto[1]) == pytest.approx(20 * math.log10(255), abs=1e-9)


def test_quantize_matches_basicsr_tensor2img():
    torch.manual_seed(3)
    x = torch.rand(1000) * 1.4 - 0.2  # synthetic, with out-of-range values
    ref = np.round(np.clip(x.numpy(), 0, 1) * np.float32(255.0))  # float32, round half to even
    assert np.array_equal(quantize(x).numpy() * 255, ref.astype(np.float32) * np.float32(255) / 255)
    assert torch.equal(quantize(torch.tensor([-0.5, 0.0, 1.0, 2.0])), torch.tensor([0.0, 0.0, 1.0, 1.0]))


def test_to_y_limited_range_and_matlab_rounding():
    rgb = torch.tensor([[0, 0, 0], [1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=torch.float64)
    x = rgb.T.reshape(1, 3, 1, 5)
    y = to_y(x)[0, 0, 0] * 255
    assert torch.allclose(y, torch.tensor([16.0, 235.0, 81.481, 144.553, 40.966], dtype=torch.float64))
    # MATLAB rgb2ycbcr(uint8): black 16, white 235, red 81, green 145, blue 41
    assert to_y(x, round_uint8=True)[0, 0, 0].mul(255).round().tolist() == [16, 235, 81, 145, 41]
    assert to_y(x).shape == (1, 1, 1, 5)


def test_score_keys():
    x = torch.rand(1, 3, 16, 16)  # synthetic
    out = score(x, x.flip(-1), PROTOCOLS["derain"]["matlab"])
    assert set(out) == {"psnr", "ssim"} and all(v.dtype == torch.float64 and v.shape == (1,) for v in out.values())
    manual = ssim(quantize(x), quantize(x.flip(-1)), y_channel=True, variant="matlab", round_y=True)
    assert torch.equal(out["ssim"], manual)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda a, b: psnr(a, b[..., :8]), "shapes differ"),
        (lambda a, b: psnr(a[0], b[0]), "NCHW"),
        (lambda a, b: ssim((a * 255).to(torch.uint8), b), "float tensor"),
        (lambda a, b: ssim(a[:, :1], b[:, :1], y_channel=True), "3 RGB channels"),
        (lambda a, b: psnr(a, b, crop_border=8), "leaves nothing"),
        (lambda a, b: ssim(a, b, variant="matlab"), "at least 11x11"),
        (lambda a, b: ssim(a, b, variant="gaussian"), "variant"),
        (lambda a, b: psnr(a, b, peak=0), "peak"),
        (lambda a, b: psnr(a, b, peak="max"), "peak"),
        (lambda a, b: psnr(a, b, round_y=True), "round_y"),
        (lambda a, b: ssim(a, b, dtype=torch.float16), "dtype"),
        (lambda a, b: psnr(a[:0], b[:0]), "empty"),
    ],
)
def test_bad_input_raises(call, message):
    a, b = torch.rand(2, 3, 10, 16), torch.rand(2, 3, 10, 16)
    with pytest.raises(MetricInputError, match=message):
        call(a, b)
