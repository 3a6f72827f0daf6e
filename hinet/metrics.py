"""PSNR and SSIM, batched in torch, reproducing the official HINet/BasicSR metric code and MATLAB's.

Every function takes **NCHW float tensors, RGB channel order, values in [0, 1]** (the network's output
space); C = 1 (grayscale, e.g. from :func:`rgb2gray`) is scored as one plane. Results are one float64 value
per image, shape ``(N,)``. Values outside [0, 1] by more than half a uint8 step (:data:`RANGE_TOLERANCE`),
NaN or inf raise :class:`MetricInputError` naming the argument and the range found -- 0..255 floats are the
usual cause. The exception is PSNR's ``peak="auto"``: the official SIDD protocol scores the unclamped output
and its heuristic exists for outputs above 1, so there only the target is checked (``check_range=False``
turns the check off, e.g. to compare two raw network outputs). PSNR is computed in float64; SSIM in
float32 with centred moments by default (``dtype=torch.float64`` for the exact value; see :func:`ssim`).
Batches are processed a cache-sized block of images at a time, so any N works in bounded memory.

Protocols (the number depends on all of these). This module holds the two metrics only; a whole protocol
(rounding, clamping, Y conversion and its rounding, SSIM variant, peak) is applied by the one scoring API,
:func:`hinet.evaluate.score` with a :class:`hinet.evaluate.Protocol`, whose ``describe`` labels them:

- HINet official (``megvii-model/HINet:basicsr/metrics/psnr_ssim.py`` + ``basicsr/test.py``): the output is
  clamped, rounded to uint8 (:func:`quantize`), PSNR in float64 with a peak heuristic, SSIM on RGB as a
  3-D Gaussian window (11x11x11, sigma 1.5, replicate padding, mean over the H x W x 3 volume), and on Y
  as a 2-D Gaussian window with replicate border. Y is BT.601 limited range, float, unrounded.
  SIDD instead scores the raw float output (no rounding), PSNR only.
- MATLAB (MPRNet's evaluation scripts): ``rgb2ycbcr`` on uint8 rounds Y; SSIM is Zhou Wang's
  ``SSIM_index`` (2-D 11x11 Gaussian, sigma 1.5, 'valid' filtering). MATLAB's built-in ``ssim`` on an RGB
  array (MPRNet deblurring) is the 3-D replicate window, i.e. ``variant="official"`` on RGB.

The official code scored BGR arrays; RGB vs BGR does not change any value here: PSNR and the 3-D window
are symmetric in the channel axis, and :func:`to_y` applies the BT.601 weights to the right channels.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Literal

import torch
import torch.nn.functional as F

Peak = float | Literal["auto"]
SsimVariant = Literal["official", "matlab"]

# BT.601 limited range ("studio swing"), as MATLAB rgb2ycbcr and BasicSR's bgr2ycbcr use it:
# Y_255 = 16 + 65.481 R + 128.553 G + 24.966 B for R, G, B in [0, 1].
_Y_WEIGHTS = (65.481, 128.553, 24.966)
_Y_OFFSET = 16.0

# SSIM constants of Wang et al. on the 0..255 scale, as the reference code computes them.
_C1 = (0.01 * 255.0) ** 2
_C2 = (0.03 * 255.0) ** 2
_RADIUS = 5  # 11-tap window
_SIGMA = 1.5

# Cache blocking: images are scored a block at a time so that SSIM's working set (a few padded maps of
# the block) stays near the CPU's L2/L3 cache; on CUDA one block holds far more. Elements per block.
_BLOCK_ELEMS = {"cpu": 1 << 18, "cuda": 1 << 26}


# MATLAB rgb2gray: the luminance row of the inverse of rgb2ntsc's YIQ matrix
# inv([1 0.956 0.621; 1 -0.272 -0.647; 1 -1.106 1.703])[0], as MATLAB documents it.
_GRAY_WEIGHTS = (0.298936021293775, 0.587043074451121, 0.114020904255103)

#: How far outside [0, 1] a float input may stray (rounding of an unclamped output): half a uint8 step.
RANGE_TOLERANCE = 0.5 / 255.0


class MetricInputError(ValueError):
    """A metric got tensors or options it cannot score."""


def require_unit_range(name: str, x: torch.Tensor, *, tolerance: float = RANGE_TOLERANCE, hint: str = "") -> None:
    """Raise :class:`MetricInputError` unless every value of ``x`` is finite and in [-tolerance, 1 + tolerance].

    The message names ``name`` (``pred``/``target``) and the range found, e.g.
    ``target: values in [0, 255]; expected floats in [0, 1] (divide 0..255 images by 255)``.
    """
    lo, hi = (float(v) for v in torch.aminmax(x.detach()))
    if math.isnan(lo) or math.isnan(hi):
        raise MetricInputError(f"{name}: contains NaN; expected floats in [0, 1]{hint}")
    if lo < -tolerance or hi > 1.0 + tolerance:
        raise MetricInputError(f"{name}: values in [{lo:.4g}, {hi:.4g}]; expected floats in [0, 1] "
                               f"(divide 0..255 images by 255{hint})")


def _check_pair(pred: torch.Tensor, target: torch.Tensor, *, y_channel: bool, crop_border: int) -> None:
    for name, t in (("pred", pred), ("target", target)):
        if not isinstance(t, torch.Tensor):
            raise MetricInputError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
        if t.ndim != 4:
            raise MetricInputError(f"{name}: expected NCHW (4-D), got shape {tuple(t.shape)}")
        if not t.is_floating_point():
            raise MetricInputError(f"{name}: expected a float tensor with values in [0, 1], got {t.dtype}")
    if pred.shape[0] == 0:
        raise MetricInputError("pred: empty batch (N=0)")
    if pred.shape != target.shape:
        raise MetricInputError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    if y_channel and pred.shape[1] != 3:
        raise MetricInputError(f"y_channel=True needs 3 RGB channels, got C={pred.shape[1]}")
    if not isinstance(crop_border, int) or crop_border < 0:
        raise MetricInputError(f"crop_border: expected an int >= 0, got {crop_border!r}")
    h, w = pred.shape[-2:]
    if 2 * crop_border >= min(h, w):
        raise MetricInputError(f"crop_border={crop_border} leaves nothing of a {h}x{w} image")


_PRED_HINT = "; clamp the output, or use peak='auto' for the official unclamped SIDD score"


def _check_ranges(pred: torch.Tensor, target: torch.Tensor, *, check_pred: bool) -> None:
    require_unit_range("target", target)
    if check_pred:
        require_unit_range("pred", pred, hint=_PRED_HINT)


def _crop(x: torch.Tensor, crop_border: int) -> torch.Tensor:
    if crop_border == 0:
        return x
    return x[..., crop_border:-crop_border, crop_border:-crop_border]


def to_y(x: torch.Tensor, *, round_uint8: bool = False) -> torch.Tensor:
    """BT.601 limited-range luma of RGB ``x`` (NCHW, [0, 1]) -> ``(N, 1, H, W)`` in [16/255, 235/255].

    Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255, computed in ``x``'s dtype and left unrounded, as
    BasicSR's ``to_y_channel`` does. ``round_uint8=True`` rounds Y to the uint8 grid (half away from
    zero) as MATLAB's ``rgb2ycbcr`` does for uint8 images (MPRNet's deraining protocol).
    """
    if x.ndim != 4 or x.shape[1] != 3:
        raise MetricInputError(f"to_y: expected NCHW RGB with C=3, got shape {tuple(x.shape)}")
    w = torch.tensor(_Y_WEIGHTS, dtype=x.dtype, device=x.device)
    y255 = torch.einsum("c,nchw->nhw", w, x).unsqueeze(1) + _Y_OFFSET  # (N, 1, H, W), 0..255 scale
    if round_uint8:
        y255 = torch.floor(y255 + 0.5)  # MATLAB rounds half away from zero; Y is positive
    return y255 / 255.0


def rgb2gray(x: torch.Tensor, *, round_uint8: bool = False) -> torch.Tensor:
    """MATLAB's ``rgb2gray`` of RGB ``x`` (NCHW, [0, 1]) -> ``(N, 1, H, W)`` in [0, 1].

    Gray = 0.298936021293775 R + 0.587043074451121 G + 0.114020904255103 B (MATLAB's documented weights),
    in ``x``'s dtype. ``round_uint8=True`` gives what ``rgb2gray`` returns for a uint8 image: ``x`` is
    taken on the uint8 grid (rounded to k/255), the weighted sum is formed on 0..255 and rounded half away
    from zero (MATLAB's conversion to uint8), so white stays 255 although the weights sum to 1 - 1e-15.
    Not BT.601 luma (:func:`to_y`): no 16..235 offset and scale.
    """
    if x.ndim != 4 or x.shape[1] != 3:
        raise MetricInputError(f"rgb2gray: expected NCHW RGB with C=3, got shape {tuple(x.shape)}")
    w = torch.tensor(_GRAY_WEIGHTS, dtype=x.dtype, device=x.device)
    if not round_uint8:
        return torch.einsum("c,nchw->nhw", w, x).unsqueeze(1)
    levels = torch.round(x.clamp(0.0, 1.0) * 255.0)  # the uint8 image MATLAB would see
    gray255 = torch.einsum("c,nchw->nhw", w, levels).unsqueeze(1)
    return torch.floor(gray255 + 0.5).clamp_(0.0, 255.0) / 255.0  # gray is >= 0: half away from zero


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Clamp to [0, 1], scale to 0..255, round to integers, scale back: the official ``use_image`` path.

    Mirrors BasicSR's ``tensor2img``: float32 arithmetic, numpy-style round half to even. Returns ``x``'s
    dtype, values k/255.
    """
    q = torch.round(x.float().clamp(0.0, 1.0) * 255.0)
    return q.to(x.dtype) / 255.0


def _blocks(x: torch.Tensor) -> list[slice]:
    """Slices of the batch axis holding about one cache block of elements each (at least one image)."""
    per_image = x[0].numel() if x.shape[0] else 1
    step = max(1, _BLOCK_ELEMS.get(x.device.type, _BLOCK_ELEMS["cuda"]) // per_image)
    return [slice(i, i + step) for i in range(0, x.shape[0], step)]


def _prepare(x: torch.Tensor, crop_border: int, y_channel: bool, round_y: bool) -> torch.Tensor:
    """Crop, copy to float64 and optionally convert to Y: what both metrics score. NCHW, [0, 1].

    Always a new tensor (never a view of the caller's), so callers may modify it in place.
    """
    x = _crop(x, crop_border).to(torch.float64, copy=True)
    return to_y(x, round_uint8=round_y) if y_channel else x


def _auto_peak(pred: torch.Tensor, auto_scale: float) -> torch.Tensor:
    """Official heuristic ``max_value = 1. if img1.max() <= 1 else 255.`` on the arrays it saw.

    The official code looks at pred (its ``img1``) as scored (after crop and Y conversion) on the scale
    it was given: 0..255 for uint8 images (``auto_scale=255``), [0, 1] for raw float output
    (``auto_scale=1``). Returned on our [0, 1] scale, shape (N,).
    """
    seen_max = pred.amax(dim=(1, 2, 3)) * auto_scale
    if auto_scale == 255.0:  # the official code saw integers; k/255 in float is not exact (1/255*255 > 1)
        seen_max = seen_max.round()
    peak_seen = torch.where(seen_max <= 1.0, 1.0, 255.0).to(torch.float64)
    return peak_seen / auto_scale


def psnr(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    y_channel: bool = False,
    crop_border: int = 0,
    peak: Peak = 1.0,
    round_y: bool = False,
    auto_scale: float = 1.0,
    check_range: bool = True,
) -> torch.Tensor:
    """PSNR in dB per image, float64, shape (N,); ``inf`` where pred == target.

    pred, target: NCHW RGB (or C = 1 gray) in [0, 1] (float output is not clamped here; see :func:`quantize`).
        Both are checked to lie in [0, 1] (:func:`require_unit_range`), except pred with ``peak="auto"``
        (the official SIDD protocol scores unclamped output); ``check_range=False`` checks neither.
    peak: signal peak on the [0, 1] scale (1.0 == 255 on uint8), or ``"auto"`` for the official
        heuristic: peak 1 if pred.max() <= 1 per image, else 255, judged on the scale the official code
        saw (``auto_scale``: 1 for raw float output, 255 for uint8 images). On raw float output an image
        with any pixel above 1.0 thus scores about 48 dB too high, exactly as the official SIDD path does.
        (The official Y conversion of float [0, 1] input divides by 255 twice; that is not reproduced:
        with ``y_channel`` the heuristic sees our Y.)
    round_y: round Y to uint8 like MATLAB ``rgb2ycbcr`` (only with ``y_channel``).
    """
    _check_pair(pred, target, y_channel=y_channel, crop_border=crop_border)
    if round_y and not y_channel:
        raise MetricInputError("round_y=True needs y_channel=True")
    if auto_scale not in (1.0, 255.0):
        raise MetricInputError(f"auto_scale: expected 1 or 255, got {auto_scale!r}")
    if not (peak == "auto" or (isinstance(peak, (int, float)) and not isinstance(peak, bool) and peak > 0)):
        raise MetricInputError(f"peak: expected a positive float or 'auto', got {peak!r}")
    if check_range:
        _check_ranges(pred, target, check_pred=peak != "auto")
    mse, peaks = [], []
    for blk in _blocks(pred):  # float64 copies one cache block at a time
        a = _prepare(pred[blk], crop_border, y_channel, round_y)
        b = _prepare(target[blk], crop_border, y_channel, round_y)
        mse.append((a - b).square_().mean(dim=(1, 2, 3)))
        peaks.append(_auto_peak(a, auto_scale) if peak == "auto" else torch.full_like(mse[-1], float(peak)))
    mse_t, peak_t = torch.cat(mse), torch.cat(peaks)
    return 20.0 * torch.log10(peak_t) - 10.0 * torch.log10(mse_t)  # log10(0) = -inf -> +inf dB


@lru_cache(maxsize=1)
def _gaussian_taps() -> tuple[float, ...]:
    """11 normalised Gaussian taps, sigma 1.5 (what cv2.getGaussianKernel(11, 1.5) and fspecial give)."""
    k = torch.arange(-_RADIUS, _RADIUS + 1, dtype=torch.float64)
    g = torch.exp(-0.5 * (k / _SIGMA) ** 2)
    return tuple((g / g.sum()).tolist())


def _channel_mix(channels: int) -> torch.Tensor:
    """(C, C) float64 matrix equal to the 3-D window's 11-tap pass along a replicate-padded channel axis.

    With only C (= 3) channels, the taps that fall off either end land on the edge channel, so the whole
    pass collapses to a C x C weighting: cheaper than filtering a padded axis of C + 10 entries.
    """
    taps = _gaussian_taps()
    mix = torch.zeros(channels, channels, dtype=torch.float64)
    for c in range(channels):
        for k, t in enumerate(taps):
            mix[c, min(max(c + k - _RADIUS, 0), channels - 1)] += t
    return mix


def _filter_axis_into(x: torch.Tensor, dim: int, out: torch.Tensor) -> None:
    """Correlate ``x`` along ``dim`` with the 11 taps into ``out`` ('valid' positions only).

    Written as 11 shifted multiply-adds rather than conv2d: single-channel conv2d on CPU is slow
    (and slower still in float64), while these in-place adds are vectorised and stay in cache.
    """
    taps = _gaussian_taps()
    out_len = out.shape[dim]
    torch.mul(x.narrow(dim, 0, out_len), taps[0], out=out)
    for k in range(1, len(taps)):
        out.add_(x.narrow(dim, k, out_len), alpha=taps[k])


def _replicate_pad_into(x: torch.Tensor, out: torch.Tensor) -> None:
    """Edge-replicate ``x`` (P, H, W) by 5 pixels into ``out`` (P, H + 10, W + 10).

    Same values as ``F.pad(mode="replicate")``, written into a reused buffer instead of a new tensor.
    """
    r = _RADIUS
    out[:, r:-r, r:-r].copy_(x)
    out[:, r:-r, :r].copy_(x[:, :, :1].expand(-1, -1, r))
    out[:, r:-r, -r:].copy_(x[:, :, -1:].expand(-1, -1, r))
    out[:, :r].copy_(out[:, r : r + 1].expand(-1, r, -1))
    out[:, -r:].copy_(out[:, -r - 1 : -r].expand(-1, r, -1))


class _SsimWorkspace:
    """Buffers for one cache block of images, reused across blocks and maps.

    A new multi-megabyte tensor per operation costs page faults that, on CPU, take longer than the
    arithmetic; every step below therefore writes into these buffers (views of them for a short last block).
    """

    def __init__(
        self, n: int, c: int, h: int, w: int, replicate: bool, dtype: torch.dtype, device: torch.device
    ) -> None:
        pad = 2 * _RADIUS if replicate else 0
        oh, ow = h + pad - 2 * _RADIUS, w + pad - 2 * _RADIUS
        kw = {"dtype": dtype, "device": device}
        self.a = torch.empty(n, c, h, w, **kw)  # pred block, 0..255 minus the block's centre
        self.b = torch.empty(n, c, h, w, **kw)  # target block, likewise
        self.tmp = torch.empty(n, c, h, w, **kw)  # a^2 + b^2, then a * b
        self.mixed = torch.empty(n, c, h * w, **kw)  # after the 3-D window's channel pass
        self.padded = torch.empty(n * c, h + pad, w + pad, **kw)
        self.rows = torch.empty(n * c, h + pad, ow, **kw)  # filtered along W
        self.maps = torch.empty(5, n, c, oh, ow, **kw)  # mu_a, mu_b, E[a^2+b^2], E[ab], scratch


def _window_mean_into(
    x: torch.Tensor, out: torch.Tensor, ws: _SsimWorkspace, mix: torch.Tensor | None, replicate: bool
) -> None:
    """Gaussian-weighted local mean of ``x`` (n, C, H, W) into ``out`` (n, C, H', W').

    ``mix`` given: the 3-D window (its channel pass as a C x C matrix). ``replicate``: pad 5 pixels by edge
    replication so H' = H; otherwise 'valid' positions only, H' = H - 10.
    """
    n, c, h, w = x.shape
    if mix is not None:
        mixed = ws.mixed[:n]
        torch.matmul(mix, x.reshape(n, c, h * w), out=mixed)  # (C, C) @ (n, C, H*W)
        x = mixed.view(n, c, h, w)
    planes = x.reshape(n * c, h, w)  # one plane per channel: (n*C, H, W)
    if replicate:
        _replicate_pad_into(planes, ws.padded[: n * c])
        planes = ws.padded[: n * c]
    rows = ws.rows[: n * c]
    _filter_axis_into(planes, 2, rows)
    _filter_axis_into(rows, 1, out.view(n * c, *out.shape[-2:]))


def _ssim_block(
    ws: _SsimWorkspace, n: int, centre: torch.Tensor, mix: torch.Tensor | None, replicate: bool
) -> torch.Tensor:
    """Mean SSIM per image of the first ``n`` images in ``ws.a``, ``ws.b`` -> (n,) float64.

    ``ws.a``, ``ws.b`` hold the images on the 0..255 scale minus ``centre`` (n, 1, 1, 1). The window is
    normalised, so variances and covariance are unchanged by the shift, while the second moments stay
    small: this keeps E[x^2] - E[x]^2 accurate in float32. The means are shifted back for luminance.
    """
    a, b, tmp = ws.a[:n], ws.b[:n], ws.tmp[:n]
    mu_a, mu_b, sum_sq, prod, scratch = ws.maps[:, :n].unbind(0)
    _window_mean_into(a, mu_a, ws, mix, replicate)
    _window_mean_into(b, mu_b, ws, mix, replicate)
    # Only the sums sigma_a^2 + sigma_b^2 and sigma_ab enter SSIM, so filtering a^2 + b^2 instead of a^2
    # and b^2 separately gives the same values with 4 filtered maps instead of 5.
    torch.mul(a, a, out=tmp).addcmul_(b, b)
    _window_mean_into(tmp, sum_sq, ws, mix, replicate)
    torch.mul(a, b, out=tmp)
    _window_mean_into(tmp, prod, ws, mix, replicate)
    # Contrast-structure term from the centred means: (2 sigma_ab + C2) / (sigma_a^2 + sigma_b^2 + C2).
    torch.mul(mu_a, mu_b, out=scratch)
    cs_num = prod.sub_(scratch).mul_(2.0).add_(_C2)
    cs_den = sum_sq.sub_(mu_a.square()).sub_(mu_b.square()).add_(_C2)
    # Luminance term from the true means: (2 mu_a mu_b + C1) / (mu_a^2 + mu_b^2 + C1).
    mu_a.add_(centre)
    mu_b.add_(centre)
    l_num = torch.mul(mu_a, mu_b, out=scratch).mul_(2.0).add_(_C1)
    l_den = mu_a.square_().add_(mu_b.square_()).add_(_C1)
    ssim_map = l_num.mul_(cs_num).div_(l_den.mul_(cs_den))  # (n, C, H', W')
    return ssim_map.mean(dim=(1, 2, 3), dtype=torch.float64)


def ssim(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    y_channel: bool = False,
    crop_border: int = 0,
    variant: SsimVariant = "official",
    round_y: bool = False,
    dtype: torch.dtype = torch.float32,
    arithmetic: Literal["fast", "reference"] = "fast",
    check_range: bool = True,
) -> torch.Tensor:
    """Mean SSIM per image, shape (N,) float64. pred, target: NCHW RGB in [0, 1], or C = 1 (gray).

    Both inputs must lie in [0, 1] (:func:`require_unit_range`; ``check_range=False`` skips the check): the
    constants C1, C2 assume that scale, so 0..255 floats would give a meaningless number.

    On the 0..255 scale with C1 = (0.01*255)^2, C2 = (0.03*255)^2 and the 11-tap Gaussian (sigma 1.5)
    window, cropping ``crop_border`` pixels first, as the reference does.

    variant="official": RGB -> the 3-D window (11x11x11) with replicate padding, averaged over H x W x C
        (HINet's ``_ssim_3d``; also MATLAB's built-in ``ssim`` on RGB arrays). Y -> 2-D window, replicate
        border, full image (HINet's ``_ssim_cly``).
    variant="matlab": 2-D window with 'valid' filtering (Zhou Wang's ``SSIM_index``; BasicSR's ``_ssim``).
        On Y that is MPRNet's deraining SSIM (pass ``round_y=True`` for its uint8 Y). On RGB each channel
        is scored this way and the channel scores averaged, as upstream BasicSR's ``calculate_ssim`` does;
        a C = 1 gray input is Wang's ``SSIM_index`` on that image. Needs at least 11x11 pixels after cropping.
    dtype: arithmetic precision. float32 (default, faster on CPU) centres each image before the
        second moments and agrees with float64 to ~1e-7; float64 gives the exact value of the formula.
        The official code ran its 3-D SSIM in float32 without centring and differs from the exact value
        by up to ~1e-4 on near-identical images (see tests/fixtures/metrics/README.md).
    arithmetic: ``"reference"`` (RGB, variant "official" only) repeats the official arithmetic literally
        -- a dense 11x11x11 float32 Conv3d over the replicate-padded volume, uncentred second moments --
        and so reproduces the official numbers to ~1e-7, at many times the cost of ``"fast"``.
    """
    if arithmetic == "reference":
        if variant != "official" or y_channel:
            raise MetricInputError("arithmetic='reference' exists for the official RGB (3-D) SSIM only; "
                                   "the official Y SSIM ran in float64, which 'fast' with dtype=float64 matches")
        _check_pair(pred, target, y_channel=False, crop_border=crop_border)
        if check_range:
            _check_ranges(pred, target, check_pred=True)
        return torch.stack([_ssim3d_reference(_crop(p, crop_border), _crop(t, crop_border))
                            for p, t in zip(pred, target)])
    if arithmetic != "fast":
        raise MetricInputError(f"arithmetic: expected 'fast' or 'reference', got {arithmetic!r}")
    _check_pair(pred, target, y_channel=y_channel, crop_border=crop_border)
    if check_range:
        _check_ranges(pred, target, check_pred=True)
    if variant not in ("official", "matlab"):
        raise MetricInputError(f"variant: expected 'official' or 'matlab', got {variant!r}")
    if round_y and not y_channel:
        raise MetricInputError("round_y=True needs y_channel=True")
    if dtype not in (torch.float32, torch.float64):
        raise MetricInputError(f"dtype: expected torch.float32 or torch.float64, got {dtype}")
    replicate = variant == "official"
    h, w = (s - 2 * crop_border for s in pred.shape[-2:])
    if not replicate and min(h, w) < 2 * _RADIUS + 1:
        raise MetricInputError(f"variant='matlab' needs at least 11x11 pixels after cropping, got {h}x{w}")
    channels = 1 if y_channel else pred.shape[1]
    mix = _channel_mix(channels).to(pred.device, dtype) if replicate and channels > 1 else None
    blocks = _blocks(pred)
    n_max = len(range(pred.shape[0])[blocks[0]])
    ws = _SsimWorkspace(n_max, channels, h, w, replicate, dtype, pred.device)
    scores = []
    for blk in blocks:
        n = len(range(pred.shape[0])[blk])
        a, b = ws.a[:n], ws.b[:n]
        for src, dst in ((pred, a), (target, b)):
            x = _crop(src[blk], crop_border)
            dst.copy_(to_y(x.to(torch.float64), round_uint8=round_y) if y_channel else x).mul_(255.0)
        centre = (a.mean(dim=(1, 2, 3), keepdim=True) + b.mean(dim=(1, 2, 3), keepdim=True)) / 2
        a.sub_(centre)
        b.sub_(centre)
        scores.append(_ssim_block(ws, n, centre, mix, replicate))
    return torch.cat(scores)


def _ssim3d_reference(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Official ``_ssim_3d`` arithmetic on one (C, H, W) pair in [0, 1]: float32, dense 3-D Gaussian
    (outer product of three 11-tap kernels) via conv3d over the replicate-padded H x W x C volume."""
    g = torch.tensor(_gaussian_taps(), dtype=torch.float64)
    kernel = torch.einsum("i,j,k->ijk", g, g, g).float()[None, None].to(pred.device)  # (1, 1, 11, 11, 11)

    def window(x: torch.Tensor) -> torch.Tensor:
        vol = F.pad(x[None, None], (_RADIUS,) * 6, mode="replicate")  # (1, 1, H+10, W+10, C+10)
        return F.conv3d(vol, kernel)[0, 0]

    # (C, H, W) RGB -> (H, W, C) BGR on 0..255, as the official code held its images
    a, b = ((x.to(torch.float64) * 255.0).flip(0).permute(1, 2, 0).float() for x in (pred, target))
    mu1, mu2 = window(a), window(b)
    s1, s2, s12 = window(a * a) - mu1**2, window(b * b) - mu2**2, window(a * b) - mu1 * mu2
    ssim_map = ((2 * mu1 * mu2 + _C1) * (2 * s12 + _C2)) / ((mu1**2 + mu2**2 + _C1) * (s1 + s2 + _C2))
    return ssim_map.mean().to(torch.float64)
