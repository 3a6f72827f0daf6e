"""Test-time Local Converter (TLC) for half instance normalisation, with no retraining.

Chu, Chen, Chen, Lu, "Improving Image Restoration by Revisiting Global Information Aggregation", ECCV 2022
(code: megvii-research/tlsc, ``basicsr/models/archs/local_arch.py``). HINet's instance norm takes its mean and
variance over the whole feature map; HINet is trained on 256x256 crops but tested on whole 720x1280 frames,
so at test time the statistics cover far more image than they did in training. TLC replaces each instance
norm, at test time only, by a *local* instance norm whose statistics come from a sliding window about as
large (in image pixels) as ``base_size``: ``to_local(model)`` converts a network, ``to_global`` undoes it,
``is_local`` / ``local_windows`` inspect it.

Semantics (the official ``HINetLocal``; its outputs reproduced to 4e-7, ``tests/test_tlc.py`` requires 1e-4):

* The window of each normalisation layer is derived from the feature size it sees in one calibration forward
  at the training size: ``window = feature_size * base_size // train_size`` per spatial axis (integer
  division). For ``train_size=256`` this is exactly the official window. The official code divides by 256
  for normalisation layers whatever its ``train_size`` argument (its ``LocalInstanceNorm2d`` keeps the
  default ``train_size``), which makes its window scale with the square of the training size; here the
  division is by ``train_size``, so ``base_size`` always means the window in input pixels (at level ``l`` of
  the U-Net ``base_size / 2**l``). The two agree exactly when ``train_size`` is 256.
* Mean and variance are box averages of ``x`` and ``x**2`` over the windows that lie wholly inside the map
  (``H - kh + 1`` by ``W - kw + 1`` of them); pixels nearer the border than half a window take the statistics
  of the nearest such window (the official replicate padding: ``(H - valid) // 2`` rows before, the rest
  after; the same on W). ``eps`` (1e-5) and the affine ``weight``/``bias`` are the layer's own.
* Along an axis where the window is >= the map, the statistics are global along that axis; when it covers
  the whole map the layer runs its ordinary global path (so TLC changes nothing on images no larger than the
  training crop times ``base_size / train_size``).

Arithmetic (hand-written, no library offers a windowed instance norm): the box averages are separable
cumulative sums (one ``cumsum`` per axis, an integral image), O(1) per pixel whatever the window, and run on
any device. Two differences from the official arithmetic, both making it more exact in float32: the input is
first centred on its per-channel global mean (the variance is shift-invariant, and centring removes most of
the cancellation in E[x^2] - E[x]^2), and a variance made slightly negative by rounding is clamped to 0.
Statistics of half-precision inputs (autocast) are computed in float32.

Both formulations of :class:`hinet.blocks.PartialNorm` are kept: ``fused=False`` normalises the slice,
``fused=True`` folds the local statistics and the affine into one scale/shift map; ``set_fused_norm``
switches converted layers as it does the global ones.

Only :class:`hinet.blocks.PartialNorm` layers of kind ``instance`` are converted (HINet's
``norm='half_instance'`` or ``'instance'``); a network without them raises :class:`NoInstanceNormError`
naming the config field. Conversion is test-time only: the state_dict keys and values are unchanged, so
``hinet.save`` of a converted model saves the ordinary network.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from .blocks import PartialNorm
from .errors import UserError
from .fast import InferenceRunner

__all__ = [
    "LocalPartialNorm",
    "NoInstanceNormError",
    "box_mean",
    "is_local",
    "local_mean_var",
    "local_windows",
    "to_global",
    "to_local",
]

Size2 = tuple[int, int]


class NoInstanceNormError(UserError, ValueError):
    """The network has no instance normalisation for TLC to convert (HINetConfig.norm 'none'/'batch')."""


def _pair(value: int | Sequence[int], field: str) -> Size2:
    """``value`` as an (H, W) pair of positive ints; a ValueError naming ``field`` otherwise."""
    pair = (value, value) if isinstance(value, int) and not isinstance(value, bool) else tuple(value) \
        if isinstance(value, (tuple, list)) else None
    if pair is None or len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                                                 for v in pair):
        raise ValueError(f"TLC {field}={value!r}: expected a positive integer or an (H, W) pair of them")
    return pair  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------ statistics
def box_mean(x: torch.Tensor, window: Size2) -> torch.Tensor:
    """Mean over a ``window`` = (kh, kw) box around each pixel of x (N, C, H, W), replicated at the borders.

    Returns (N, C, H', W') with H' = H where kh < H and H' = 1 (the mean over all of H) where kh >= H; the
    same for W; it broadcasts against ``x``. Position p of an axis of length n averages the valid window
    starting at ``clamp(p - (n - kh) // 2, 0, n - kh)`` (the official centring and replicate padding).
    """
    for dim, k in ((2, window[0]), (3, window[1])):
        n = x.shape[dim]
        if k >= n:
            x = x.mean(dim=dim, keepdim=True)
            continue
        s = x.cumsum(dim)  # s[i] = x[0] + ... + x[i]
        valid = n - k + 1
        # window sums over [i, i + k) for i = 0 .. n - k: s[k-1], then s[i+k-1] - s[i-1]
        sums = torch.cat([s.narrow(dim, k - 1, 1), s.narrow(dim, k, valid - 1) - s.narrow(dim, 0, valid - 1)], dim)
        before = (n - valid) // 2
        index = (torch.arange(n, device=x.device) - before).clamp_(0, valid - 1)
        x = sums.index_select(dim, index).div_(k)  # (.., n, ..) along dim
    return x


def local_mean_var(x: torch.Tensor, window: Size2) -> tuple[torch.Tensor, torch.Tensor]:
    """Windowed mean and (biased) variance of each channel of x (N, C, H, W), as broadcastable maps.

    Computed in float32 for half-precision inputs (returned in float32 then); see :func:`box_mean` for the
    window and borders. The variance is >= 0.
    """
    work = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    centre = work.mean(dim=(2, 3), keepdim=True)  # (N, C, 1, 1)
    centred = work - centre
    c = x.shape[1]
    stats = box_mean(torch.cat([centred, centred * centred], dim=1), window)  # (N, 2C, H', W')
    mean_c, mean_sq = stats[:, :c], stats[:, c:]
    var = (mean_sq - mean_c * mean_c).clamp_(min=0)
    return mean_c + centre, var


class LocalPartialNorm(PartialNorm):
    """A :class:`PartialNorm` (kind ``instance``) whose statistics come from a ``window`` = (kh, kw) box.

    Made by :func:`to_local` from a global layer, sharing its ``weight``/``bias`` and ``fused`` flag; same
    state_dict. ``calibrated`` is the (H, W) feature size seen at the training size, ``base_size`` and
    ``train_size`` the (H, W) pairs the window was derived from.
    """

    def __init__(self, total: int, channels: int, window: Size2, *, calibrated: Size2 = (0, 0),
                 base_size: Size2 = (0, 0), train_size: Size2 = (0, 0)):
        super().__init__(total, channels, "instance")
        self.window, self.calibrated = tuple(window), tuple(calibrated)
        self.base_size, self.train_size = tuple(base_size), tuple(train_size)

    @classmethod
    def from_global(cls, norm: PartialNorm, window: Size2, **kw) -> LocalPartialNorm:
        local = cls(norm.total, norm.channels, window, **kw)
        local.weight, local.bias = norm.weight, norm.bias  # shared, not copied
        local.fused = norm.fused
        local.train(norm.training)
        return local

    def to_global(self) -> PartialNorm:
        norm = PartialNorm(self.total, self.channels, "instance")
        norm.weight, norm.bias = self.weight, self.bias
        norm.fused = self.fused
        norm.train(self.training)
        return norm

    def extra_repr(self) -> str:
        return (f"{self.channels} of {self.total} channels, window={self.window}, calibrated={self.calibrated}, "
                f"base_size={self.base_size}, train_size={self.train_size}, fused={self.fused}")

    def covers(self, x: torch.Tensor) -> bool:
        """Whether the window covers the whole (H, W) map of x (then the statistics are global)."""
        return self.window[0] >= x.shape[-2] and self.window[1] >= x.shape[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.covers(x):
            return super().forward(x)
        k = self.channels
        head = x[:, :k]  # (N, k, H, W)
        mean, var = local_mean_var(head, self.window)  # (N, k, H', W') each, H' in {1, H}, W' in {1, W}
        weight, bias = self.weight[:, None, None], self.bias[:, None, None]  # (k, 1, 1)
        if self.fused:
            scale = weight * torch.rsqrt(var + self.eps)
            shift = bias - mean * scale
            normed = torch.addcmul(shift, head, scale)
        else:
            normed = (head - mean) * torch.rsqrt(var + self.eps) * weight + bias
        normed = normed.to(x.dtype)
        if k == self.total:
            return normed
        return torch.cat([normed, x[:, k:]], dim=1)


# ------------------------------------------------------------------------------------------ conversion
def _instance_norms(model: nn.Module) -> list[tuple[str, PartialNorm]]:
    return [(name, m) for name, m in model.named_modules()
            if isinstance(m, PartialNorm) and m.kind == "instance" and not isinstance(m, LocalPartialNorm)]


def _no_instance_norm(model: nn.Module) -> NoInstanceNormError:
    cfg = getattr(model, "cfg", None)
    if cfg is not None and hasattr(cfg, "norm"):
        if cfg.norm in ("none", "batch"):
            found = f"HINetConfig.norm={cfg.norm!r}"
        else:
            found = f"HINetConfig.norm={cfg.norm!r} with norm_ratio={cfg.norm_ratio!r} (no channel normalised)"
        return NoInstanceNormError(f"TLC: {found}: this network has no instance normalisation to convert; "
                                   "expected norm='half_instance' or 'instance' (TLC is for HIN networks)")
    return NoInstanceNormError(f"TLC: {type(model).__name__} has no instance-kind hinet.blocks.PartialNorm layer "
                               "to convert; expected a HINet with norm='half_instance' or 'instance'")


def _replace(model: nn.Module, replacements: dict[int, nn.Module]) -> None:
    """Swap children of ``model`` (at any depth) found by id in ``replacements``."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if id(child) in replacements:
                setattr(parent, name, replacements[id(child)])


def _calibrate(model: nn.Module, norms: list[tuple[str, PartialNorm]], train_size: Size2) -> dict[str, Size2]:
    """Feature size (H, W) each norm sees when ``model`` runs on one zero image of ``train_size``."""
    seen: dict[str, Size2] = {}

    def recorder(name: str):
        def hook(_module: nn.Module, args: tuple) -> None:
            seen.setdefault(name, tuple(args[0].shape[-2:]))
        return hook

    hooks = [m.register_forward_pre_hook(recorder(name)) for name, m in norms]
    param = next(model.parameters())
    cfg = getattr(model, "cfg", None)
    channels = getattr(cfg, "in_channels", 3)
    modes = {m: m.training for m in model.modules()}
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, channels, *train_size, device=param.device, dtype=param.dtype))
    except (RuntimeError, ValueError) as err:  # too small for the deepest norm, or too large to allocate
        depth = getattr(cfg, "depth", None)
        least = f"at least {2 ** depth} (2^depth) and " if depth else ""
        raise ValueError(f"TLC train_size={train_size} (--tlc-train-size): the network cannot be calibrated on a "
                         f"{train_size[0]}x{train_size[1]} image ({' '.join(str(err).split()[:20])}); expected "
                         f"{least}the side of the crops it was trained on") from None
    finally:
        for h in hooks:
            h.remove()
        for m, training in modes.items():
            m.train(training)
    missing = [name for name, _ in norms if name not in seen]
    if missing:
        raise RuntimeError(f"TLC calibration: the layers {missing} did not run in a forward pass")
    return seen


def to_local(model: nn.Module | InferenceRunner, base_size: int | Sequence[int] = 384,
             train_size: int | Sequence[int] = 256, *, inplace: bool = False) -> nn.Module | InferenceRunner:
    """The network with every instance-normalised half converted to windowed (local) statistics.

    Args:
        model: a HINet (any ``nn.Module`` whose instance normalisation is :class:`hinet.blocks.PartialNorm`),
            or a :class:`hinet.fast.InferenceRunner` (a new runner around a converted copy of its model is
            returned; a compiled one is compiled again). A model already converted is first restored to
            global statistics, then converted with the new sizes.
        base_size: the window in input pixels, an int or (H, W); official default 384 = 1.5 x 256
            (``options/test/GoPro/HINetLocal-GoPro.yml``). Must give every layer a window of at least 1.
        train_size: the training crop side, int or (H, W); the calibration forward runs one zero image of
            this size (batch 1, on the model's device and dtype, in eval mode, without gradients).
        inplace: convert ``model`` itself (its modules are replaced) instead of a deep copy (default).

    Returns:
        the converted copy (or ``model`` when ``inplace``). Parameters are shared between each converted
        layer and the global one it replaces; the state_dict is unchanged.

    Raises:
        NoInstanceNormError (a UserError and ValueError): no instance normalisation (``HINetConfig.norm``
        'none' or 'batch', or ``norm_ratio`` 0). ValueError: bad ``base_size``/``train_size``, or a window
        of 0 pixels.
    """
    base, train = _pair(base_size, "base_size"), _pair(train_size, "train_size")
    if isinstance(model, InferenceRunner):
        net = to_local(model.model, base, train, inplace=inplace)
        fn = torch.compile(net, dynamic=False, options={"freezing": True}) if model.compiled else net
        return InferenceRunner(net, fn, channels_last=model.channels_last, dtype=model.dtype,
                               compiled=model.compiled)
    if not isinstance(model, nn.Module):
        raise ValueError(f"TLC converts an nn.Module or a hinet.fast.InferenceRunner, got {type(model).__name__}")
    net = model if inplace else copy.deepcopy(model)
    if is_local(net):
        to_global(net, inplace=True)
    norms = _instance_norms(net)
    if not norms:
        raise _no_instance_norm(net)
    sizes = _calibrate(net, norms, train)
    replacements: dict[int, nn.Module] = {}
    for name, norm in norms:
        feat = sizes[name]
        window = (feat[0] * base[0] // train[0], feat[1] * base[1] // train[1])
        if min(window) < 1:
            raise ValueError(f"TLC base_size={base_size!r}: gives layer {name} (a {feat[0]}x{feat[1]} feature map "
                             f"at train_size {train}) a window of {window}; expected a base_size large enough "
                             f"for a window of at least 1 pixel")
        replacements[id(norm)] = LocalPartialNorm.from_global(norm, window, calibrated=feat, base_size=base,
                                                              train_size=train)
    _replace(net, replacements)
    return net


def to_global(model: nn.Module, *, inplace: bool = False) -> nn.Module:
    """Undo :func:`to_local`: every :class:`LocalPartialNorm` back to a global PartialNorm (same parameters).

    A copy unless ``inplace``; a model with no local layer is returned unchanged (copied unless ``inplace``).
    """
    net = model if inplace else copy.deepcopy(model)
    _replace(net, {id(m): m.to_global() for m in net.modules() if isinstance(m, LocalPartialNorm)})
    return net


def is_local(model: nn.Module | InferenceRunner) -> bool:
    """Whether any normalisation layer of the model takes local (TLC) statistics."""
    module = model.model if isinstance(model, InferenceRunner) else model
    return any(isinstance(m, LocalPartialNorm) for m in module.modules())


def local_windows(model: nn.Module | InferenceRunner) -> dict[str, Size2]:
    """``{module name: (kh, kw)}`` of every converted layer, in module order (stage 1 levels, then stage 2)."""
    module = model.model if isinstance(model, InferenceRunner) else model
    return {name: m.window for name, m in module.named_modules() if isinstance(m, LocalPartialNorm)}
