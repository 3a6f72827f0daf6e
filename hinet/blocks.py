"""HINet building blocks: the encoder/decoder conv block with (half) normalisation, the up-block and SAM.

All tensors are NCHW feature maps; images are RGB in [0, 1] (the network is residual on them).
Parameter names (``conv_1``, ``identity``, ``norm``, ``csff_enc`` ...) are the official ones so that
official checkpoints map onto these modules by prefix alone.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def conv3x3(cin: int, cout: int, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, padding=1, bias=bias)


class PartialNorm(nn.Module):
    """Normalise the first ``channels`` of the input and pass the rest through (the paper's HIN).

    ``kind='instance'`` is ``InstanceNorm2d(channels, affine=True)`` (official: eps 1e-5, no running
    stats, so train and eval agree); ``kind='batch'`` is ``BatchNorm2d(channels)`` with running stats.
    The parameters are named ``weight``/``bias`` as the official ``norm`` module's.

    ``fused=False`` is the reference formulation (slice, normalise, concatenate). ``fused=True`` folds
    the per-image statistics and the affine of the normalised channels into one scale/shift over all
    channels (identity on the rest), so no half-size copies are made: the same numbers up to float
    rounding (checked in tests). Only instance norm has a fused form.
    """

    eps = 1e-5
    momentum = 0.1

    def __init__(self, total: int, channels: int, kind: str):
        super().__init__()
        if kind not in ("instance", "batch"):
            raise ValueError(f"PartialNorm kind={kind!r}: expected 'instance' or 'batch'")
        self.total, self.channels, self.kind = total, channels, kind
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        if kind == "batch":
            self.register_buffer("running_mean", torch.zeros(channels))
            self.register_buffer("running_var", torch.ones(channels))
        self.fused = False

    def _norm(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "instance":
            return F.instance_norm(x, weight=self.weight, bias=self.bias, eps=self.eps)
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            training=self.training, momentum=self.momentum, eps=self.eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused and self.kind == "instance":
            return self._fused_instance(x)
        if self.channels == self.total:
            return self._norm(x)
        head, tail = x[:, : self.channels], x[:, self.channels :]
        return torch.cat([self._norm(head), tail], dim=1)

    def _fused_instance(self, x: torch.Tensor) -> torch.Tensor:
        n, k = x.shape[0], self.channels
        head = x[:, :k]
        # two passes (mean, then mean squared deviation): same accuracy as var_mean, which is slower on a
        # channels_last slice on CPU
        mean = head.mean(dim=(2, 3))  # (N, k)
        var = (head - mean[:, :, None, None]).square().mean(dim=(2, 3))
        scale = self.weight * torch.rsqrt(var + self.eps)  # (N, k)
        shift = self.bias - mean * scale
        rest = self.total - k
        scale = torch.cat([scale, x.new_ones(n, rest)], dim=1)[:, :, None, None]  # (N, C, 1, 1)
        shift = torch.cat([shift, x.new_zeros(n, rest)], dim=1)[:, :, None, None]
        return torch.addcmul(shift, x, scale)


class ResBlock(nn.Module):
    """Extra residual block (conv3x3 - LeakyReLU - conv3x3 + identity); used by the NTIRE extension."""

    def __init__(self, channels: int, slope: float):
        super().__init__()
        self.conv_1, self.conv_2 = conv3x3(channels, channels), conv3x3(channels, channels)
        self.act = nn.LeakyReLU(slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_2(self.act(self.conv_1(x)))


class ConvBlock(nn.Module):
    """The paper's HIN block (encoder) and ResBlock (decoder): official ``UNetConvBlock``.

    conv_1 -> [normalise the first channels] -> LeakyReLU -> conv_2 -> LeakyReLU, plus a 1x1-conv
    shortcut; then CSFF (stage >= 2 encoders: 3x3 convs of the previous stage's same-level encoder and
    decoder features, added), optional extra residual blocks, and a 4x4 stride-2 conv (no bias) when
    the block down-samples. A down-sampling block returns ``(down, pre_down)``; the pre-down feature
    feeds the skip path and CSFF.
    """

    def __init__(self, cin: int, cout: int, *, slope: float, downsample: bool, norm_kind: str = "none",
                 norm_channels: int = 0, csff: bool = False, extra_blocks: int = 0):
        super().__init__()
        self.identity = nn.Conv2d(cin, cout, kernel_size=1)
        self.conv_1 = conv3x3(cin, cout)
        self.act_1 = nn.LeakyReLU(slope)
        self.conv_2 = conv3x3(cout, cout)
        self.act_2 = nn.LeakyReLU(slope)
        self.norm = PartialNorm(cout, norm_channels, norm_kind) if norm_channels > 0 else None
        if csff:
            self.csff_enc, self.csff_dec = conv3x3(cout, cout), conv3x3(cout, cout)
        self.csff = csff
        self.extra = nn.Sequential(*[ResBlock(cout, slope) for _ in range(extra_blocks)])
        self.downsample = nn.Conv2d(cout, cout, 4, stride=2, padding=1, bias=False) if downsample else None

    def forward(self, x: torch.Tensor, enc: torch.Tensor | None = None, dec: torch.Tensor | None = None):
        out = self.conv_1(x)
        if self.norm is not None:
            out = self.norm(out)
        out = self.act_2(self.conv_2(self.act_1(out)))
        out = out + self.identity(x)
        if self.csff:
            if enc is None or dec is None:
                raise ValueError("a CSFF block needs the previous stage's encoder and decoder features")
            out = out + self.csff_enc(enc) + self.csff_dec(dec)
        out = self.extra(out)
        if self.downsample is not None:
            return self.downsample(out), out
        return out


class UpBlock(nn.Module):
    """Decoder level (official ``UNetUpBlock``): 2x2 transposed conv, concat [up, skip], ConvBlock."""

    def __init__(self, cin: int, cout: int, *, slope: float, extra_blocks: int = 0):
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cout, kernel_size=2, stride=2)
        self.conv_block = ConvBlock(2 * cout, cout, slope=slope, downsample=False, extra_blocks=extra_blocks)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = self.up(x)  # (N, C/2, 2H, 2W)
        return self.conv_block(torch.cat([up, skip], dim=1))  # (N, C, 2H, 2W) -> (N, C/2, 2H, 2W)


class SAM(nn.Module):
    """Supervised attention module: stage image = conv2(F) + input; F' = conv1(F) * sigmoid(conv3(img)) + F."""

    def __init__(self, channels: int, image_channels: int = 3):
        super().__init__()
        self.conv1 = conv3x3(channels, channels)
        self.conv2 = conv3x3(channels, image_channels)
        self.conv3 = conv3x3(image_channels, channels)

    def forward(self, features: torch.Tensor, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        restored = self.conv2(features) + image
        gate = torch.sigmoid(self.conv3(restored))
        return self.conv1(features) * gate + features, restored


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad H and W at the bottom/right up to a multiple (as the follow-up TLC code does)."""
    h, w = x.shape[-2:]
    return F.pad(x, (0, (-w) % multiple, 0, (-h) % multiple))
