"""Metric inputs: values outside [0, 1] are refused naming the argument (except the official unclamped SIDD
path), grayscale (C = 1) inputs, and MATLAB's rgb2gray."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from hinet.evaluate import PROTOCOLS, Protocol, score
from hinet.metrics import RANGE_TOLERANCE, MetricInputError, psnr, rgb2gray, ssim


def _pair(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """SYNTHETIC images, (2, 3, 16, 16) in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(2, 3, 16, 16, generator=g)
    return (target + 0.05 * torch.randn(2, 3, 16, 16, generator=g)).clamp(0, 1), target


def _bad(kind: str, x: torch.Tensor) -> torch.Tensor:
    x = x.clone()
    if kind == "0..255":
        return x * 255.0
    if kind == "-1..1":
        return x * 2.0 - 1.0
    if kind == "over":
        x[0, 0, 0, 0] = 1.0 + 4 * RANGE_TOLERANCE
        return x
    x.view(-1)[3] = {"nan": float("nan"), "inf": float("inf")}[kind]
    return x


METRICS = {
    "psnr": lambda p, t: psnr(p, t),
    "ssim": lambda p, t: ssim(p, t),
    "ssim-matlab": lambda p, t: ssim(p, t, variant="matlab"),
    "ssim-reference": lambda p, t: ssim(p, t, arithmetic="reference"),
    "score-float": lambda p, t: score(p, t, Protocol("test/float")),  # float, unclamped, peak 1
    "psnr-y": lambda p, t: psnr(p, t, y_channel=True),
}
KINDS = ["0..255", "-1..1", "over", "nan", "inf"]


@pytest.mark.parametrize("metric", sorted(METRICS))
@pytest.mark.parametrize("arg", ["pred", "target"])
@pytest.mark.parametrize("kind", KINDS)
def test_out_of_range_inputs_name_the_argument_and_range(metric, arg, kind):
    pred, target = _pair()
    if arg == "pred":
        pred = _bad(kind, pred)
    else:
        target = _bad(kind, target)
    with pytest.raises(MetricInputError) as exc:
        METRICS[metric](pred, target)
    message = str(exc.value)
    assert message.startswith(f"{arg}: ") and "[0, 1]" in message and "\n" not in message, message
    if kind == "0..255":
        assert "divide 0..255 images by 255" in message and re.search(r"values in \[[\d.e-]+, 2\d\d(\.\d+)?\]", message)


def test_small_overshoot_is_tolerated():
    pred, target = _pair()
    pred[0, 0, 0, 0], pred[1, 0, 0, 0] = 1.0 + 0.9 * RANGE_TOLERANCE, -0.9 * RANGE_TOLERANCE
    assert torch.isfinite(psnr(pred, target)).all() and torch.isfinite(ssim(pred, target)).all()


def test_check_range_false_scores_raw_values():
    pred, target = _pair()
    with pytest.raises(MetricInputError):
        psnr(pred * 2, target * 2, peak=2.0)
    assert psnr(pred * 2, target * 2, peak=2.0, check_range=False) == pytest.approx(psnr(pred, target).tolist())


def test_official_sidd_path_scores_unclamped_output_but_checks_the_target():
    pred, target = _pair()
    pred[1] = pred[1] * 1.5  # an unclamped output above 1: the official heuristic switches that image to peak 255
    auto = psnr(pred, target, peak="auto")
    assert float(auto[1]) > 48
    official = PROTOCOLS["denoise"]["official"]
    assert torch.equal(score(pred, target, official)["psnr"], auto)
    assert torch.isfinite(score(pred, target, PROTOCOLS["denoise"]["clamped"])["psnr"]).all()
    with pytest.raises(MetricInputError, match=r"^target: values in \[[\d.e-]+, 2\d\d"):
        score(pred, target * 255, official)
    with pytest.raises(MetricInputError, match=r"^target: "):
        psnr(pred, target * 255, peak="auto")


def test_quantizing_protocols_check_the_target_before_rounding():
    pred, target = _pair()
    with pytest.raises(MetricInputError, match=r"^target: "):
        score(pred, target * 255, PROTOCOLS["deblur"]["official"])  # quantize would clamp it to white and score that
    assert torch.isfinite(score(pred * 255, target, PROTOCOLS["deblur"]["official"])["psnr"]).all()  # pred clamped


@pytest.mark.parametrize("variant", ["official", "matlab"])
def test_gray_input_scores_like_three_equal_channels(variant):
    pred, target = (rgb2gray(x) for x in _pair(3))
    assert pred.shape == (2, 1, 16, 16)
    rgb_pred, rgb_target = pred.expand(-1, 3, -1, -1), target.expand(-1, 3, -1, -1)
    torch.testing.assert_close(ssim(pred, target, variant=variant, dtype=torch.float64),
                               ssim(rgb_pred, rgb_target, variant=variant, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(psnr(pred, target), psnr(rgb_pred, rgb_target), rtol=0, atol=1e-12)


def test_rgb2gray_weights_are_matlabs():
    # MATLAB's rgb2gray keeps the luminance of the NTSC (YIQ) transform: the first row of the inverse of
    # ntsc2rgb's matrix. Derived here independently of the constants in hinet.metrics.
    yiq_to_rgb = np.array([[1.0, 0.956, 0.621], [1.0, -0.272, -0.647], [1.0, -1.106, 1.703]])
    weights = np.linalg.inv(yiq_to_rgb)[0]
    eye = torch.eye(3, dtype=torch.float64).view(3, 3, 1, 1)  # pure R, G, B images
    np.testing.assert_allclose(rgb2gray(eye).flatten().numpy(), weights, rtol=0, atol=1e-15)


@pytest.mark.parametrize(("rgb", "gray"), [  # hand-computed sums of MATLAB's weights times the uint8 values
    ((255, 0, 0), 76),  # 76.2287
    ((0, 255, 0), 150),  # 149.6960
    ((0, 0, 255), 29),  # 29.0753
    ((255, 255, 255), 255),  # 254.99999999999974: rounds to 255 (a truncation would give 254)
    ((1, 1, 1), 1),  # 0.9999999999999991
    ((0, 0, 0), 0),
    ((128, 64, 32), 79),  # 79.4832
    ((10, 200, 90), 131),  # 130.6599
])
def test_rgb2gray_on_uint8_rounds_like_matlab(rgb, gray):
    x = torch.tensor(rgb, dtype=torch.float64).view(1, 3, 1, 1) / 255.0
    assert rgb2gray(x, round_uint8=True).item() * 255.0 == pytest.approx(gray, abs=1e-9)
    assert rgb2gray(x.float(), round_uint8=True).item() * 255.0 == pytest.approx(gray, abs=1e-4)
    unrounded = sum(c * w for c, w in zip(rgb, (0.298936021293775, 0.587043074451121, 0.114020904255103)))
    assert rgb2gray(x).item() * 255.0 == pytest.approx(unrounded, abs=1e-9)


def test_rgb2gray_refuses_non_rgb():
    with pytest.raises(MetricInputError, match="C=3"):
        rgb2gray(torch.zeros(1, 1, 4, 4))
