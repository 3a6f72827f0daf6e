"""HINet: Half Instance Normalization Network (Chen et al., "HINet: Half Instance Normalization Network
for Image Restoration", CVPRW 2021, arXiv:2105.06086).

Reads like the paper's Fig. 2: each stage is a U-Net (``UNet``) whose encoder blocks carry half
instance normalisation; between consecutive stages a supervised attention module (SAM) produces the
stage's restored image and gates the features handed on, and cross-stage feature fusion (CSFF) adds
the previous stage's encoder and decoder features into the next stage's encoder. Every stage output
is residual on the input image. ``forward`` returns the list of stage outputs, the last one final.

``HINet.reset_parameters(seed)`` re-initialises every module from a generator seeded by (seed, the module's
qualified name), so that two variants of an ablation start with the same weights in every module they share
(common random numbers: the paired differences then carry less initialisation noise).
"""

from __future__ import annotations

import hashlib

import torch
from torch import nn

from .blocks import SAM, ConvBlock, UpBlock, conv3x3, pad_to_multiple
from .config import HINetConfig


class UNet(nn.Module):
    """One stage: intro conv (official ``conv_0k``), encoder (``down_path_k``), skip convs
    (``skip_conv_k``) and decoder (``up_path_k``). Level i has ``width * 2**i`` channels."""

    def __init__(self, cfg: HINetConfig, csff: bool):
        super().__init__()
        widths = [cfg.width * 2**i for i in range(cfg.depth)]
        norm_kind = "batch" if cfg.norm == "batch" else "instance"
        self.intro = conv3x3(cfg.in_channels, cfg.width)
        self.encoder = nn.ModuleList()
        for level, cout in enumerate(widths):
            bottom = level == cfg.depth - 1
            norm_channels = round(cout * cfg.fraction_normalized) if cfg.normalizes_level(level) else 0
            self.encoder.append(ConvBlock(
                widths[max(level - 1, 0)], cout, slope=cfg.relu_slope, downsample=not bottom,
                norm_kind=norm_kind, norm_channels=norm_channels, csff=csff and not bottom,
                extra_blocks=cfg.extra_blocks))
        # Decoder step k serves level depth-2-k (deepest first), as in the reference.
        levels_up = list(reversed(range(cfg.depth - 1)))
        self.decoder = nn.ModuleList(
            UpBlock(widths[i + 1], widths[i], slope=cfg.relu_slope, extra_blocks=cfg.extra_blocks)
            for i in levels_up)
        self.skips = nn.ModuleList(conv3x3(widths[i], widths[i]) for i in levels_up)

    def forward(self, x: torch.Tensor, prev: tuple[list, list] | None = None):
        """x: (N, width, H, W) after the intro/fusion. prev: the previous stage's (encs, decs) for CSFF.
        Returns (full-resolution features, encs, decs); encs[i] is level i's pre-down feature and
        decs[k] the output of decoder step k (decs[-1] is at full resolution)."""
        encs: list[torch.Tensor] = []
        for level, block in enumerate(self.encoder):
            if block.downsample is None:
                x = block(x)
            else:
                csff = (prev[0][level], prev[1][-level - 1]) if block.csff else (None, None)
                x, pre_down = block(x, *csff)
                encs.append(pre_down)
        decs: list[torch.Tensor] = []
        for k, (up, skip) in enumerate(zip(self.decoder, self.skips)):
            x = up(x, skip(encs[-k - 1]))
            decs.append(x)
        return x, encs, decs


class HINet(nn.Module):
    """The HINet family; ``HINet(HINetConfig())`` is the published SIDD-1x / Rain13k network.

    Input: (N, in_channels, H, W) RGB in [0, 1], any H and W (padded internally to a multiple of
    ``2**(depth-1)`` and cropped back). Output: a list of ``stages`` tensors of the input's shape,
    the restored image after each stage (not clamped); the last is the final prediction.
    """

    def __init__(self, cfg: HINetConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or HINetConfig()
        self.stages = nn.ModuleList(UNet(cfg, csff=cfg.csff and s > 0) for s in range(cfg.stages))
        between = range(cfg.stages - 1)
        if cfg.sam:  # official ``sam12``
            self.sams = nn.ModuleList(SAM(cfg.width, cfg.in_channels) for _ in between)
        else:  # plain image head so that every stage is still supervised
            self.aux_heads = nn.ModuleList(conv3x3(cfg.width, cfg.in_channels) for _ in between)
        # official ``cat12``: 1x1 conv fusing [intro(image), features handed on] for stage s >= 1
        self.fuses = nn.ModuleList(nn.Conv2d(2 * cfg.width, cfg.width, kernel_size=1) for _ in between)
        self.head = conv3x3(cfg.width, cfg.in_channels)  # official ``last``

    def reset_parameters(self, seed: int) -> HINet:
        """Re-initialise every module that has ``reset_parameters`` (convolutions here; the normalisation
        weights are constants) with torch's own default distributions, drawing from the CPU generator seeded by
        :func:`module_seed` of (``seed``, the module's qualified name, e.g. ``stages.1.encoder.0.conv_1``);
        modules in ``named_modules`` order. A module of the same name and shape thus gets the same weights in
        every configuration, whatever other modules exist. The global RNG state is left as it was. Call it on
        CPU parameters (before ``.to(device)``). Returns the model itself (chainable, like ``.to``)."""
        return reset_seeded(self, seed)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        h, w = image.shape[-2:]
        x_img = pad_to_multiple(image, self.cfg.multiple)
        outputs, prev, handed_on = [], None, None
        for s, stage in enumerate(self.stages):
            x = stage.intro(x_img)
            if s > 0:
                x = self.fuses[s - 1](torch.cat([x, handed_on], dim=1))  # (N, 2w, H, W) -> (N, w, H, W)
            feats, encs, decs = stage(x, prev if self.cfg.csff else None)
            if s == len(self.stages) - 1:
                outputs.append(self.head(feats) + x_img)
            elif self.cfg.sam:
                handed_on, restored = self.sams[s](feats, x_img)
                outputs.append(restored)
            else:
                handed_on = feats
                outputs.append(self.aux_heads[s](feats) + x_img)
            prev = (encs, decs)
        return [out[..., :h, :w] for out in outputs]


def reset_seeded(model: nn.Module, seed: int) -> nn.Module:
    """Re-initialise every sub-module of ``model`` that has ``reset_parameters`` from the CPU generator seeded by
    :func:`module_seed` (``seed``, the module's qualified name), in ``named_modules`` order (a module shared by
    several parents is reset once, under its first name); the global RNG state is left as it was. The
    parameters must be on the CPU. Returns ``model``. Used by :meth:`HINet.reset_parameters` and the comparators."""
    owner = type(model).__name__
    for name, module in model.named_modules():
        reset = getattr(module, "reset_parameters", None)
        if module is model or not callable(reset):
            continue
        on_cpu = all(p.device.type == "cpu" for p in module.parameters(recurse=False))
        if not on_cpu:
            raise ValueError(f"{owner}.reset_parameters: module {name!r} is not on the CPU; call it before "
                             "moving the model to a device")
        with torch.random.fork_rng(devices=[]):  # restores the CPU generator afterwards
            torch.default_generator.manual_seed(module_seed(seed, name))
            reset()
    return model


def module_seed(seed: int, name: str) -> int:
    """A 63-bit generator seed from a run seed (any int) and a module's qualified name (stable across processes
    and Python versions: BLAKE2b of ``"<seed>/<name>"``)."""
    digest = hashlib.blake2b(f"{int(seed)}/{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
