"""MPRNet (Zamir et al., "Multi-Stage Progressive Image Restoration", CVPR 2021, arXiv:2102.02808), a comparator.

Written to compute what the official code computes (``swz30/MPRNet``: ``Denoising/MPRNet.py``; the deblurring and
deraining files differ only in the constructor defaults), with the official parameter names, so that official
checkpoints load without renaming. Three stages:

1. the image is cut into four quarters (at ``int(H/2)``, ``int(W/2)``); one shallow-feature block and one U-Net
   encoder process each quarter; the encoder features are joined left-right and the top and bottom halves decoded;
   a supervised attention module (SAM) gives the stage-1 image and gates the features handed on;
2. the two halves: shallow features fused with the stage-1 SAM features, an encoder with cross-stage feature fusion
   (CSFF) from stage 1, the halves joined top-bottom, decoded as one image, SAM again;
3. full resolution (ORSNet): shallow features fused with the stage-2 SAM features, three original-resolution blocks
   that each add projected stage-2 encoder/decoder features, a 3x3 conv to the image.

Every stage output is residual on the input. Unlike the official forward (which returns ``[final, stage 2, stage
1]``), :meth:`MPRNet.forward` returns ``[stage 1, stage 2, final]``: the final image last, as :class:`hinet.HINet`.

Traps the official code sets and this one keeps: one ``PReLU`` (one parameter) shared by every channel-attention
block, so the official state_dict lists that parameter once per block (``...body.1.weight``), all the same tensor;
no convolution bias by default, and the 1x1 resampling convs and the ORB's closing conv never have one; 1x1 convs in
the SAMs (HINet's SAM uses 3x3).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .arch import reset_seeded
from .config import field_error

MULTIPLE = 8  # two bilinear halvings inside quarters of the image: sides must be multiples of 8


@dataclass(frozen=True)
class MPRNetConfig:
    """MPRNet hyper-parameters; the names are the official constructor's (``MPRNet(in_c, out_c, n_feat, ...)``).

    Args:
        n_feat: channels of the shallow features and of U-Net level 1.
        scale_unetfeats: channels added per U-Net level (levels have n, n+s, n+2s).
        scale_orsnetfeats: channels added in stage 3 (ORSNet works at n+o).
        num_cab: channel-attention blocks per original-resolution block (ORB).
        kernel_size: side of the square convolutions (odd; the SAMs and resampling convs are 1x1 regardless).
        reduction: channel reduction inside channel attention (c -> c // reduction -> c).
        bias: bias in the convolutions that take it from the constructor (the official default: none).
        in_channels: image channels (official ``in_c``; the output has the same count).
    """

    n_feat: int = 80
    scale_unetfeats: int = 48
    scale_orsnetfeats: int = 32
    num_cab: int = 8
    kernel_size: int = 3
    reduction: int = 4
    bias: bool = False
    in_channels: int = 3

    def __post_init__(self) -> None:
        for name in ("n_feat", "scale_unetfeats", "scale_orsnetfeats", "num_cab", "kernel_size", "reduction",
                     "in_channels"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise field_error(self, name, "expected an integer")
        for name in ("n_feat", "num_cab", "kernel_size", "reduction", "in_channels"):
            if getattr(self, name) < 1:
                raise field_error(self, name, "expected a positive integer")
        for name in ("scale_unetfeats", "scale_orsnetfeats"):
            if getattr(self, name) < 0:
                raise field_error(self, name, "expected 0 or more channels")
        if self.kernel_size % 2 == 0:
            raise field_error(self, "kernel_size", "expected an odd size (the convolutions pad kernel_size // 2)")
        if self.reduction > self.n_feat:
            raise field_error(self, "reduction", f"channel attention needs at least one channel: expected at most "
                              f"n_feat={self.n_feat}")
        if not isinstance(self.bias, bool):
            raise field_error(self, "bias", "expected True or False")


MPRNET_PRESETS: dict[str, MPRNetConfig] = {
    "mprnet-sidd": MPRNetConfig(),  # Denoising/MPRNet.py defaults
    "mprnet-gopro": MPRNetConfig(n_feat=96, scale_unetfeats=48, scale_orsnetfeats=32),  # Deblurring/MPRNet.py
    "mprnet-rain13k": MPRNetConfig(n_feat=40, scale_unetfeats=20, scale_orsnetfeats=16),  # Deraining/MPRNet.py
}


def _conv(cin: int, cout: int, kernel_size: int, bias: bool) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size, padding=kernel_size // 2, bias=bias)


class ChannelAttention(nn.Module):
    """Official ``CALayer``: x * sigmoid(1x1 conv(ReLU(1x1 conv(global average of x)))), c -> c // r -> c."""

    def __init__(self, channels: int, reduction: int, bias: bool):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)  # a module, as the official, so that ptflops counts it the same
        self.conv_du = nn.Sequential(nn.Conv2d(channels, channels // reduction, 1, bias=bias), nn.ReLU(),
                                     nn.Conv2d(channels // reduction, channels, 1, bias=bias), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.conv_du(self.avg_pool(x))  # (N, C, 1, 1) weights


class CAB(nn.Module):
    """Channel-attention block: conv, the shared PReLU, conv, channel attention, plus the input."""

    def __init__(self, channels: int, cfg: MPRNetConfig, act: nn.PReLU):
        super().__init__()
        k, bias = cfg.kernel_size, cfg.bias
        self.body = nn.Sequential(_conv(channels, channels, k, bias), act, _conv(channels, channels, k, bias))
        self.CA = ChannelAttention(channels, cfg.reduction, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.CA(self.body(x)) + x


def _cabs(count: int, channels: int, cfg: MPRNetConfig, act: nn.PReLU) -> nn.Sequential:
    return nn.Sequential(*[CAB(channels, cfg, act) for _ in range(count)])


def _bilinear(factor: float) -> nn.Upsample:
    """Bilinear resize by a fixed factor (``align_corners=False``); an ``nn.Upsample`` module, as the official, so
    that module-hook counters (ptflops) count it the same."""
    return nn.Upsample(scale_factor=factor, mode="bilinear", align_corners=False)


class DownSample(nn.Module):
    """Half resolution, then a 1x1 conv (no bias) c -> c + s."""

    def __init__(self, channels: int, step: int):
        super().__init__()
        self.down = nn.Sequential(_bilinear(0.5), nn.Conv2d(channels, channels + step, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(x)


class UpSample(nn.Module):
    """Double resolution, then a 1x1 conv (no bias) c + s -> c; adds ``skip`` when given (official
    ``SkipUpSample``)."""

    def __init__(self, channels: int, step: int):
        super().__init__()
        self.up = nn.Sequential(_bilinear(2.0), nn.Conv2d(channels + step, channels, 1, bias=False))

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        x = self.up(x)
        return x if skip is None else x + skip


def _widths(cfg: MPRNetConfig) -> list[int]:
    return [cfg.n_feat + level * cfg.scale_unetfeats for level in range(3)]


class Encoder(nn.Module):
    """Three levels of two CABs, widths n, n+s, n+2s, bilinear down-sampling between them. With ``csff`` each
    level adds 1x1 projections of the previous stage's encoder and decoder features of that level."""

    def __init__(self, cfg: MPRNetConfig, act: nn.PReLU, csff: bool):
        super().__init__()
        w1, w2, w3 = _widths(cfg)
        self.encoder_level1 = _cabs(2, w1, cfg, act)
        self.encoder_level2 = _cabs(2, w2, cfg, act)
        self.encoder_level3 = _cabs(2, w3, cfg, act)
        self.down12 = DownSample(w1, cfg.scale_unetfeats)
        self.down23 = DownSample(w2, cfg.scale_unetfeats)
        self.csff = csff
        if csff:
            for level, width in enumerate((w1, w2, w3), start=1):
                setattr(self, f"csff_enc{level}", nn.Conv2d(width, width, 1, bias=cfg.bias))
                setattr(self, f"csff_dec{level}", nn.Conv2d(width, width, 1, bias=cfg.bias))

    def forward(self, x: torch.Tensor, prev_enc: list | None = None, prev_dec: list | None = None) -> list:
        """Returns the three levels' features, full resolution first."""
        outs = []
        for level, (blocks, down) in enumerate(zip((self.encoder_level1, self.encoder_level2, self.encoder_level3),
                                                   (self.down12, self.down23, None)), start=1):
            x = blocks(x)
            if self.csff and prev_enc is not None and prev_dec is not None:
                x = (x + getattr(self, f"csff_enc{level}")(prev_enc[level - 1])
                     + getattr(self, f"csff_dec{level}")(prev_dec[level - 1]))
            outs.append(x)
            if down is not None:
                x = down(x)
        return outs


class Decoder(nn.Module):
    """Three levels of two CABs, deepest first; each up-sampling adds the same-level encoder feature passed
    through a CAB (``skip_attn``). Returns the features of levels 1, 2, 3 (full resolution first)."""

    def __init__(self, cfg: MPRNetConfig, act: nn.PReLU):
        super().__init__()
        w1, w2, w3 = _widths(cfg)
        self.decoder_level1 = _cabs(2, w1, cfg, act)
        self.decoder_level2 = _cabs(2, w2, cfg, act)
        self.decoder_level3 = _cabs(2, w3, cfg, act)
        self.skip_attn1 = CAB(w1, cfg, act)
        self.skip_attn2 = CAB(w2, cfg, act)
        self.up21 = UpSample(w1, cfg.scale_unetfeats)
        self.up32 = UpSample(w2, cfg.scale_unetfeats)

    def forward(self, encs: list) -> list:
        enc1, enc2, enc3 = encs
        dec3 = self.decoder_level3(enc3)
        dec2 = self.decoder_level2(self.up32(dec3, self.skip_attn2(enc2)))
        dec1 = self.decoder_level1(self.up21(dec2, self.skip_attn1(enc1)))
        return [dec1, dec2, dec3]


class ORB(nn.Module):
    """Original-resolution block: ``num_cab`` CABs and a conv (never a bias), plus the input."""

    def __init__(self, channels: int, cfg: MPRNetConfig, act: nn.PReLU):
        super().__init__()
        self.body = nn.Sequential(*[CAB(channels, cfg, act) for _ in range(cfg.num_cab)],
                                  _conv(channels, channels, cfg.kernel_size, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + x


class ORSNet(nn.Module):
    """Stage 3 at full resolution, width n+o: after ORB k it adds 1x1 projections (n -> n+o) of the stage-2
    encoder and decoder features of level k, levels 2 and 3 first brought to full resolution (once or twice a
    bilinear x2 and a 1x1 conv)."""

    def __init__(self, cfg: MPRNetConfig, act: nn.PReLU):
        super().__init__()
        n, s, width = cfg.n_feat, cfg.scale_unetfeats, cfg.n_feat + cfg.scale_orsnetfeats
        self.orb1, self.orb2, self.orb3 = (ORB(width, cfg, act) for _ in range(3))
        self.up_enc1, self.up_dec1 = UpSample(n, s), UpSample(n, s)
        self.up_enc2 = nn.Sequential(UpSample(n + s, s), UpSample(n, s))
        self.up_dec2 = nn.Sequential(UpSample(n + s, s), UpSample(n, s))
        for k in (1, 2, 3):
            setattr(self, f"conv_enc{k}", nn.Conv2d(n, width, 1, bias=cfg.bias))
            setattr(self, f"conv_dec{k}", nn.Conv2d(n, width, 1, bias=cfg.bias))

    def forward(self, x: torch.Tensor, encs: list, decs: list) -> torch.Tensor:
        # level k's stage-2 features brought to full resolution (level 1 is already there)
        enc_full = [encs[0], self.up_enc1(encs[1]), self.up_enc2(encs[2])]
        dec_full = [decs[0], self.up_dec1(decs[1]), self.up_dec2(decs[2])]
        for k, orb in enumerate((self.orb1, self.orb2, self.orb3)):
            x = orb(x)
            x = x + getattr(self, f"conv_enc{k + 1}")(enc_full[k]) + getattr(self, f"conv_dec{k + 1}")(dec_full[k])
        return x


class SAM(nn.Module):
    """Supervised attention with 1x1 convs: image = conv2(F) + x; F' = conv1(F) * sigmoid(conv3(image)) + F."""

    def __init__(self, channels: int, image_channels: int, bias: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 1, bias=bias)
        self.conv2 = nn.Conv2d(channels, image_channels, 1, bias=bias)
        self.conv3 = nn.Conv2d(image_channels, channels, 1, bias=bias)

    def forward(self, features: torch.Tensor, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        restored = self.conv2(features) + image
        return self.conv1(features) * torch.sigmoid(self.conv3(restored)) + features, restored


class MPRNet(nn.Module):
    """The MPRNet family; ``MPRNet(MPRNET_PRESETS["mprnet-sidd"])`` is the published denoising network.

    Input: (N, in_channels, H, W), RGB in [0, 1]. H and W need not be multiples of 8: the input is reflect-padded
    at the bottom/right to the next multiple of 8 and every output cropped back, as the official ``demo.py`` does
    (the official network itself requires multiples of 8); reflection needs the padding to be smaller than the
    side, so sides of at least 5. Output: ``[stage 1, stage 2, final]``, three tensors of the input's shape, not
    clamped, the final prediction last.
    """

    def __init__(self, cfg: MPRNetConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or MPRNetConfig()
        n, k, bias, c = cfg.n_feat, cfg.kernel_size, cfg.bias, cfg.in_channels
        act = nn.PReLU()  # one parameter shared by every CAB; deliberately not an attribute of its own (official)
        for stage in (1, 2, 3):
            setattr(self, f"shallow_feat{stage}", nn.Sequential(_conv(c, n, k, bias), CAB(n, cfg, act)))
        self.stage1_encoder = Encoder(cfg, act, csff=False)
        self.stage1_decoder = Decoder(cfg, act)
        self.stage2_encoder = Encoder(cfg, act, csff=True)
        self.stage2_decoder = Decoder(cfg, act)
        self.stage3_orsnet = ORSNet(cfg, act)
        self.sam12 = SAM(n, c, bias)
        self.sam23 = SAM(n, c, bias)
        self.concat12 = _conv(2 * n, n, k, bias)
        self.concat23 = _conv(2 * n, n + cfg.scale_orsnetfeats, k, bias)
        self.tail = _conv(n + cfg.scale_orsnetfeats, c, k, bias)

    def reset_parameters(self, seed: int) -> MPRNet:
        """Per-module seeded re-initialisation, as :meth:`hinet.HINet.reset_parameters` (CPU parameters only)."""
        return reset_seeded(self, seed)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        h, w = image.shape[-2:]
        pad_h, pad_w = (-h) % MULTIPLE, (-w) % MULTIPLE
        if pad_h >= h or pad_w >= w:
            raise ValueError(f"MPRNet: input of {h}x{w} is too small to reflect-pad to a multiple of {MULTIPLE}")
        x3_img = F.pad(image, (0, pad_w, 0, pad_h), mode="reflect") if pad_h or pad_w else image
        top, bottom = x3_img.split_with_sizes(_halves(x3_img.shape[-2]), dim=2)  # (N, C, H/2, W) each
        w_split = _halves(x3_img.shape[-1])
        halves = [top, bottom]
        # Each part runs on its own, as the official forward (batching them would give the same values, but
        # module-hook counters such as ptflops count an nn.Upsample for one sample of a batch only).

        # stage 1: encode the quarters (N, C, H/2, W/2), join their features left|right, decode top and bottom
        enc1 = []
        for half in halves:
            left, right = (self.stage1_encoder(self.shallow_feat1(q)) for q in half.split_with_sizes(w_split, dim=3))
            enc1.append([torch.cat(pair, dim=3) for pair in zip(left, right)])  # 3 levels of (N, c, ., .)
        dec1 = [self.stage1_decoder(enc) for enc in enc1]
        sam1 = [self.sam12(dec[0], half) for dec, half in zip(dec1, halves)]  # (features, image) per half

        # stage 2: the halves with CSFF from stage 1; features joined top/bottom, decoded at full size
        enc2_halves = [self.stage2_encoder(self.concat12(torch.cat([self.shallow_feat2(half), feats], dim=1)), enc, dec)
                       for half, (feats, _), enc, dec in zip(halves, sam1, enc1, dec1)]
        enc2 = [torch.cat(pair, dim=2) for pair in zip(*enc2_halves)]
        dec2 = self.stage2_decoder(enc2)
        sam_feats, img2 = self.sam23(dec2[0], x3_img)

        # stage 3: full resolution
        x3 = self.concat23(torch.cat([self.shallow_feat3(x3_img), sam_feats], dim=1))
        final = self.tail(self.stage3_orsnet(x3, enc2, dec2)) + x3_img
        img1 = torch.cat([img for _, img in sam1], dim=2)
        return [out[..., :h, :w] for out in (img1, img2, final)]


def _halves(side: int) -> list[int]:
    """The official split of a side at int(side / 2)."""
    return [side // 2, side - side // 2]


# ------------------------------------------------------------------------------------------ checkpoints
def is_mprnet_state(state: dict) -> bool:
    """Whether a state_dict (official names, ``module.`` prefixes removed) is an MPRNet's."""
    return "shallow_feat1.0.weight" in state


def infer_config(state: dict[str, torch.Tensor], source: str = "state_dict") -> MPRNetConfig:
    """The :class:`MPRNetConfig` of an official MPRNet state_dict, from its tensor shapes (meta tensors do).
    A state_dict that lacks a tensor the inference reads raises ``ValueError`` naming ``source`` and the key."""

    def shape(key: str) -> torch.Size:
        try:
            return state[key].shape
        except KeyError:
            raise ValueError(f"{source}: no {key!r}; expected an official MPRNet state_dict") from None

    n_feat, in_channels, kernel_size = shape("shallow_feat1.0.weight")[:3]
    # (width, reduced width) of every channel attention; the reduction is the smallest that gives them all
    squeezes = {(v.shape[1], v.shape[0]) for k, v in state.items() if k.endswith("CA.conv_du.0.weight")}
    reduction = next((r for r in range(1, int(n_feat) + 1) if all(c // r == m for c, m in squeezes)), None)
    if reduction is None:
        raise ValueError(f"{source}: the channel-attention widths {sorted(squeezes)} fit no single reduction")
    cabs = {int(m[1]) for key in state if (m := re.match(r"stage3_orsnet\.orb1\.body\.(\d+)\.CA\.", key))}
    return MPRNetConfig(
        n_feat=int(n_feat), in_channels=int(in_channels), kernel_size=int(kernel_size),
        scale_unetfeats=int(shape("stage1_encoder.down12.down.1.weight")[0] - n_feat),
        scale_orsnetfeats=int(shape("concat23.weight")[0] - n_feat),
        num_cab=len(cabs),
        reduction=reduction,
        bias="shallow_feat1.0.bias" in state)
