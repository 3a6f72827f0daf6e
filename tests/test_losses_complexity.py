"""Losses against closed forms, and MAC counts cross-checked between ptflops and torch's counter."""

import math

import pytest
import torch

from hinet import HINet
from hinet.complexity import complexity, conv_macs
from hinet.config import PRESETS, scaled
from hinet.losses import CharbonnierLoss, L1Loss, MultiStageLoss, PSNRLoss, make_loss


def test_psnr_loss_is_minus_weighted_mean_psnr():
    gt = torch.rand(3, 3, 8, 8)
    pred = gt + 0.1 * torch.randn_like(gt)
    mse = ((pred - gt) ** 2).mean(dim=(1, 2, 3))
    psnr = 10 * torch.log10(1 / (mse + 1e-8))
    assert torch.allclose(PSNRLoss(0.5)(pred, gt), -0.5 * psnr.mean(), atol=1e-5)


def test_l1_and_charbonnier():
    a, b = torch.zeros(1, 1, 2, 2), torch.tensor([[[[1.0, -1.0], [0.0, 2.0]]]])
    assert L1Loss()(a, b).item() == pytest.approx(1.0)
    expected = (2 * math.sqrt(1 + 1e-6) + math.sqrt(1e-6) + math.sqrt(4 + 1e-6)) / 4
    assert CharbonnierLoss()(a, b).item() == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="unknown loss"):
        make_loss("ssim")


def test_multi_stage_weights():
    gt = torch.zeros(1, 3, 4, 4)
    outs = [torch.ones_like(gt), 2 * torch.ones_like(gt)]
    assert MultiStageLoss(L1Loss())(outs, gt).item() == pytest.approx(3.0)
    assert MultiStageLoss(L1Loss(), (0.25, 1.0))(outs, gt).item() == pytest.approx(2.25)
    with pytest.raises(ValueError, match="stage_weights"):
        MultiStageLoss(L1Loss(), (1.0,))(outs, gt)


@pytest.mark.parametrize("name", ["sidd-1x", "gopro", "ntire"])
def test_ptflops_agrees_with_torch_counter(name):
    cfg = scaled(PRESETS[name], width=8, depth=3)
    c = complexity(cfg, (32, 48))
    assert c.conv_macs > 0
    # ptflops adds norms, activations and biases to the convolutions: a little more, never less
    assert c.conv_macs <= c.macs <= 1.03 * c.conv_macs


def test_conv_macs_closed_form_for_one_conv():
    cfg = scaled(PRESETS["sidd-1x"], width=4, depth=1)
    cfg = type(cfg)(**{**cfg.to_dict(), "stages": 1, "sam": False, "csff": False, "norm_levels": None})
    model = HINet(cfg)
    h, w = 8, 8
    # intro 3->4 (3x3), block: conv_1 4->4 3x3, conv_2 4->4 3x3, identity 4->4 1x1, head 4->3 3x3
    expected = h * w * (3 * 4 * 9 + 4 * 4 * 9 * 2 + 4 * 4 + 4 * 3 * 9)
    assert conv_macs(model, (h, w)) == expected


def test_reference_conv_macs_of_the_published_networks():
    # conv-only MACs at 1x3x256x256 of the official networks (counted on megvii-model/HINet hinet_arch.py):
    # 157.6 G for width 64, a quarter of that for width 32
    for name, giga in (("sidd-1x", 157.6), ("sidd-0.5x", 39.5)):
        with torch.device("meta"):
            model = HINet(PRESETS[name])
        assert round(conv_macs(model, (256, 256)) / 1e9, 1) == giga
