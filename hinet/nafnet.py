"""NAFNet (Chen, Chu, Zhang, Sun, "Simple Baselines for Image Restoration", ECCV 2022, arXiv:2204.04676), a
comparator.

Written to compute what the official code computes (``megvii-research/NAFNet``:
``basicsr/models/archs/NAFNet_arch.py``, ``LayerNorm2d`` in ``basicsr/models/archs/arch_util.py``), with the
official parameter names so that official BasicSR checkpoints load without renaming. A single-stage U-Net of
nonlinear-activation-free blocks (NAFBlocks): intro conv, per encoder level its blocks then a 2x2 stride-2 conv
doubling the channels, the middle blocks, per decoder level a 1x1 conv and PixelShuffle(2) halving the channels,
addition of the encoder skip and its blocks, an ending conv, plus the input image.

The GoPro networks are evaluated officially with test-time local statistics (``NAFNetLocal``: TLC replaces the
global average pool of the channel attention by a local one; the weights are the same). This module builds the
plain network only; :mod:`hinet.tlc` converts HINet's instance norms, not these pools.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .arch import reset_seeded
from .config import field_error


@dataclass(frozen=True)
class NAFNetConfig:
    """NAFNet hyper-parameters (official constructor: ``NAFNet(img_channel, width, middle_blk_num, enc_blk_nums,
    dec_blk_nums)``).

    Args:
        width: channels at the first level (official ``width``); level i has ``width * 2**i``.
        middle_blocks: NAFBlocks at the lowest resolution (official ``middle_blk_num``).
        enc_blocks: NAFBlocks per encoder level, full resolution first (official ``enc_blk_nums``); its length is
            the number of down-samplings, so input sides are padded to a multiple of ``2**len(enc_blocks)``.
        dec_blocks: NAFBlocks per decoder level, lowest resolution first (official ``dec_blk_nums``); same length.
        in_channels: image channels (official ``img_channel``); the output has the same count.
    """

    width: int = 32
    middle_blocks: int = 12
    enc_blocks: tuple[int, ...] = (2, 2, 4, 8)
    dec_blocks: tuple[int, ...] = (2, 2, 2, 2)
    in_channels: int = 3

    def __post_init__(self) -> None:
        for name in ("width", "middle_blocks", "in_channels"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise field_error(self, name, "expected an integer")
        if self.width < 1:
            raise field_error(self, "width", "expected a positive channel count")
        if self.in_channels < 1:
            raise field_error(self, "in_channels", "expected a positive channel count")
        if self.middle_blocks < 0:
            raise field_error(self, "middle_blocks", "expected 0 or more blocks")
        for name in ("enc_blocks", "dec_blocks"):
            value = getattr(self, name)
            if not isinstance(value, tuple) or not all(
                    isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
                raise field_error(self, name, "expected a tuple of block counts (integers >= 0)")
        if len(self.dec_blocks) != len(self.enc_blocks):
            raise field_error(self, "dec_blocks", f"expected one count per level: {len(self.enc_blocks)} "
                              f"like enc_blocks")

    @property
    def multiple(self) -> int:
        """Input sides are padded to a multiple of this (one factor 2 per down-sampling)."""
        return 2 ** len(self.enc_blocks)


_SIDD = NAFNetConfig()  # options/train/SIDD/NAFNet-width32.yml
_GOPRO = NAFNetConfig(middle_blocks=1, enc_blocks=(1, 1, 1, 28), dec_blocks=(1, 1, 1, 1))  # .../GoPro/NAFNet-width32
NAFNET_PRESETS: dict[str, NAFNetConfig] = {
    "nafnet-sidd-width32": _SIDD,
    "nafnet-sidd-width64": NAFNetConfig(width=64, middle_blocks=12, enc_blocks=(2, 2, 4, 8), dec_blocks=(2, 2, 2, 2)),
    "nafnet-gopro-width32": _GOPRO,
    "nafnet-gopro-width64": NAFNetConfig(width=64, middle_blocks=1, enc_blocks=(1, 1, 1, 28), dec_blocks=(1, 1, 1, 1)),
}


class LayerNorm2d(nn.Module):
    """Layer norm over the channels of each pixel of an (N, C, H, W) map (eps 1e-6), per-channel affine.

    The official code computes the same forward in a hand-written autograd function; plain ops give the same
    values and autograd gives the gradients."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=1, keepdim=True)  # (N, 1, H, W)
        centred = x - mean
        var = centred.square().mean(dim=1, keepdim=True)
        y = centred / (var + self.eps).sqrt()
        return self.weight[:, None, None] * y + self.bias[:, None, None]


def simple_gate(x: torch.Tensor) -> torch.Tensor:
    """SimpleGate: (N, 2C, H, W) -> (N, C, H, W), the first half of the channels times the second."""
    first, second = x.chunk(2, dim=1)
    return first * second


class NAFBlock(nn.Module):
    """Two residual halves, each scaled by a per-channel parameter that starts at zero (``beta``, ``gamma``):
    norm, 1x1 conv c -> 2c, depthwise 3x3, SimpleGate, simplified channel attention (``sca``: global average, 1x1
    conv c -> c, multiply), 1x1 conv; then norm, 1x1 conv c -> 2c, SimpleGate, 1x1 conv. Dropout is the official
    default, rate 0, i.e. none."""

    def __init__(self, c: int):
        super().__init__()
        self.norm1 = LayerNorm2d(c)
        self.conv1 = nn.Conv2d(c, 2 * c, 1)
        self.conv2 = nn.Conv2d(2 * c, 2 * c, 3, padding=1, groups=2 * c)
        self.sca = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, c, 1))
        self.conv3 = nn.Conv2d(c, c, 1)
        self.norm2 = LayerNorm2d(c)
        self.conv4 = nn.Conv2d(c, 2 * c, 1)
        self.conv5 = nn.Conv2d(c, c, 1)
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        x = simple_gate(self.conv2(self.conv1(self.norm1(inp))))
        y = inp + self.conv3(x * self.sca(x)) * self.beta
        x = self.conv5(simple_gate(self.conv4(self.norm2(y))))
        return y + x * self.gamma


class NAFNet(nn.Module):
    """The NAFNet family; ``NAFNet(NAFNET_PRESETS["nafnet-sidd-width64"])`` is the published SIDD network.

    Input: (N, in_channels, H, W), RGB in [0, 1], any H and W: zero-padded at the bottom/right to a multiple of
    ``cfg.multiple`` and cropped back, as the official code. Output: a one-element list ``[final]`` of the input's
    shape, not clamped (a list so that it reads like :class:`hinet.HINet`'s stage outputs, final last).
    """

    def __init__(self, cfg: NAFNetConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or NAFNetConfig()
        self.intro = nn.Conv2d(cfg.in_channels, cfg.width, 3, padding=1)
        self.encoders, self.downs = nn.ModuleList(), nn.ModuleList()
        chan = cfg.width
        for count in cfg.enc_blocks:
            self.encoders.append(nn.Sequential(*[NAFBlock(chan) for _ in range(count)]))
            self.downs.append(nn.Conv2d(chan, 2 * chan, 2, stride=2))
            chan *= 2
        self.middle_blks = nn.Sequential(*[NAFBlock(chan) for _ in range(cfg.middle_blocks)])
        self.ups, self.decoders = nn.ModuleList(), nn.ModuleList()
        for count in cfg.dec_blocks:
            self.ups.append(nn.Sequential(nn.Conv2d(chan, 2 * chan, 1, bias=False), nn.PixelShuffle(2)))
            chan //= 2
            self.decoders.append(nn.Sequential(*[NAFBlock(chan) for _ in range(count)]))
        self.ending = nn.Conv2d(cfg.width, cfg.in_channels, 3, padding=1)

    def reset_parameters(self, seed: int) -> NAFNet:
        """Per-module seeded re-initialisation of the convolutions, as :meth:`hinet.HINet.reset_parameters`
        (CPU parameters only); ``beta``/``gamma`` and the norms keep their constant initial values."""
        return reset_seeded(self, seed)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        h, w = image.shape[-2:]
        m = self.cfg.multiple
        x_img = F.pad(image, (0, (-w) % m, 0, (-h) % m))
        x = self.intro(x_img)
        skips = []
        for blocks, down in zip(self.encoders, self.downs):
            x = blocks(x)
            skips.append(x)
            x = down(x)  # (N, c, H, W) -> (N, 2c, H/2, W/2)
        x = self.middle_blks(x)
        for blocks, up, skip in zip(self.decoders, self.ups, reversed(skips)):
            x = blocks(up(x) + skip)  # up: (N, 2c, H/2, W/2) -> (N, 4c, H/2, W/2) -> (N, c, H, W)
        out = self.ending(x) + x_img
        return [out[..., :h, :w]]


# ------------------------------------------------------------------------------------------ checkpoints
_NAFNET_ROOTS = ("intro.", "encoders.", "middle_blks.", "ups.", "downs.", "decoders.", "ending.")


def is_nafnet_state(state: dict) -> bool:
    """Whether a state_dict (official names, ``module.`` prefixes removed) is a NAFNet's: ``intro``/``ending``
    convs and every key under one of the official module names."""
    return "intro.weight" in state and "ending.weight" in state and all(k.startswith(_NAFNET_ROOTS) for k in state)


def infer_config(state: dict[str, torch.Tensor], source: str = "state_dict") -> NAFNetConfig:
    """The :class:`NAFNetConfig` of an official NAFNet state_dict, from its keys and shapes (meta tensors do)."""
    if "intro.weight" not in state:
        raise ValueError(f"{source}: no 'intro.weight'; expected an official NAFNet state_dict")
    width, in_channels = state["intro.weight"].shape[:2]

    def count(pattern: str) -> set[tuple[int, ...]]:
        return {tuple(int(g) for g in m.groups()) for key in state if (m := re.match(pattern, key))}

    levels = len(count(r"downs\.(\d+)\.weight"))
    enc, dec = count(r"encoders\.(\d+)\.(\d+)\."), count(r"decoders\.(\d+)\.(\d+)\.")
    return NAFNetConfig(
        width=int(width), in_channels=int(in_channels),
        middle_blocks=len(count(r"middle_blks\.(\d+)\.")),
        enc_blocks=tuple(sum(1 for lvl, _ in enc if lvl == i) for i in range(levels)),
        dec_blocks=tuple(sum(1 for lvl, _ in dec if lvl == i) for i in range(len(count(r"ups\.(\d+)\.0\.weight")))))
