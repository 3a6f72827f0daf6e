"""Network configuration: one frozen, validated dataclass and the published presets.

An ablation is the base config with one field replaced::

    from dataclasses import replace
    no_csff = replace(PRESETS["sidd-1x"], csff=False)

Field names say what things are; the official constructor's names are given beside them
(``HINet(in_chn, wf, depth, relu_slope, hin_position_left, hin_position_right)``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from .fields import vocabulary

NORMALIZATIONS = ("half_instance", "instance", "batch", "none")


def field_error(obj: Any, field: str, message: str) -> ValueError:
    """``ValueError("<Class>.<field>=<value>: <message>")`` for the validation of a config dataclass."""
    return ValueError(f"{type(obj).__name__}.{field}={getattr(obj, field)!r}: {message}")


@dataclass(frozen=True)
class HINetConfig:
    """HINet hyper-parameters.

    Args:
        width: channels at the first U-Net level (official ``wf``); level i has ``width * 2**i``.
        depth: number of U-Net levels (official ``depth``; 5 = four down- and four up-samplings).
        stages: 1 = a single U-Net with an output head; 2 = the published two-stage network; more
            stages chain further U-Nets with the same SAM/CSFF wiring between consecutive stages.
        in_channels: image channels (official ``in_chn``); the output has the same count.
        norm: normalisation in the encoder blocks. ``half_instance`` (the paper's HIN: instance
            norm with affine on the first ``norm_ratio`` of the channels, default one half),
            ``instance`` (all channels), ``batch`` (BatchNorm on the first ``norm_ratio`` of the
            channels, default all) or ``none``.
        norm_ratio: fraction of channels normalised; ``None`` takes the default of ``norm``.
        norm_levels: inclusive range (left, right) of encoder levels that normalise (official
            ``hin_position_left/right``); ``None`` = every level. Decoders never normalise.
        csff: cross-stage feature fusion into every later stage's encoder.
        sam: supervised attention module between stages. Without it the stage-1 image comes from a
            plain 3x3 conv head (still residual on the input and still supervised) and the raw
            stage-1 decoder features are passed on un-gated.
        extra_blocks: extra residual blocks (conv-LeakyReLU-conv + identity) after every encoder
            and decoder block; 0 in every published network, 1 in the ``ntire`` extension.
        relu_slope: LeakyReLU negative slope (official ``relu_slope``).
    """

    width: int = 64
    depth: int = 5
    stages: int = 2
    in_channels: int = 3
    norm: str = field(default="half_instance", metadata=vocabulary(NORMALIZATIONS))
    norm_ratio: float | None = None
    norm_levels: tuple[int, int] | None = None
    csff: bool = True
    sam: bool = True
    extra_blocks: int = 0
    relu_slope: float = 0.2

    def __post_init__(self) -> None:
        def bad(field: str, message: str) -> ValueError:
            return field_error(self, field, message)

        for name in ("width", "depth", "stages", "in_channels", "extra_blocks"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise bad(name, "expected an integer")
        if self.depth < 1:
            raise bad("depth", "expected at least 1 level")
        if self.stages < 1:
            raise bad("stages", "expected at least 1 stage")
        if self.width < 1:
            raise bad("width", "expected a positive channel count")
        if self.in_channels < 1:
            raise bad("in_channels", "expected a positive channel count")
        if self.extra_blocks < 0:
            raise bad("extra_blocks", "expected 0 or more")
        if self.norm not in NORMALIZATIONS:
            raise bad("norm", f"expected one of {NORMALIZATIONS}")
        if self.norm_ratio is not None:
            if not 0.0 <= self.norm_ratio <= 1.0:
                raise bad("norm_ratio", "expected a fraction in [0, 1]")
            if self.norm == "instance" and self.norm_ratio != 1.0:
                raise bad("norm_ratio", "norm='instance' normalises all channels; use 'half_instance'")
            if self.norm == "none" and self.norm_ratio != 0.0:
                raise bad("norm_ratio", "norm='none' normalises nothing")
        if self.norm_levels is not None:
            if (not isinstance(self.norm_levels, tuple) or len(self.norm_levels) != 2
                    or not all(isinstance(v, int) for v in self.norm_levels)):
                raise bad("norm_levels", "expected a (left, right) tuple of level indices")
            left, right = self.norm_levels
            if not 0 <= left <= right < self.depth:
                raise bad("norm_levels", f"expected 0 <= left <= right < depth={self.depth}")
        scaled = self.width * self.fraction_normalized
        if 0.0 < self.fraction_normalized < 1.0 and abs(scaled - round(scaled)) > 1e-9:
            raise bad("width", f"normalising a fraction {self.fraction_normalized} of the channels needs "
                      f"width * fraction to be whole (an even width for half normalisation)")
        if self.stages == 1 and self.csff:
            raise bad("csff", "cross-stage feature fusion needs stages >= 2")
        if self.csff and self.depth < 2:
            raise bad("csff", "cross-stage feature fusion joins encoder levels above the bottleneck; needs depth >= 2")
        if self.stages == 1 and self.sam:
            raise bad("sam", "the supervised attention module sits between stages; needs stages >= 2")
        if self.relu_slope < 0:
            raise bad("relu_slope", "expected a non-negative slope")

    @property
    def fraction_normalized(self) -> float:
        """Fraction of encoder-block channels that are normalised (0 for ``none``)."""
        default = {"half_instance": 0.5, "instance": 1.0, "batch": 1.0, "none": 0.0}[self.norm]
        return default if self.norm_ratio is None else float(self.norm_ratio)

    def normalizes_level(self, level: int) -> bool:
        """Whether encoder blocks at ``level`` (0 = full resolution) carry a normalisation."""
        if self.fraction_normalized == 0.0:
            return False
        left, right = self.norm_levels if self.norm_levels is not None else (0, self.depth - 1)
        return left <= level <= right

    @property
    def multiple(self) -> int:
        """Input sides are padded to a multiple of this (one factor 2 per down-sampling)."""
        return 2 ** (self.depth - 1)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (tuples become lists)."""
        out = asdict(self)
        if out["norm_levels"] is not None:
            out["norm_levels"] = list(out["norm_levels"])
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HINetConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise a ``ValueError`` naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"HINetConfig: unknown field(s) {unknown}; expected a subset of {sorted(known)}")
        data = dict(data)
        if data.get("norm_levels") is not None:
            data["norm_levels"] = tuple(data["norm_levels"])
        return cls(**data)


SIDD_1X = HINetConfig()
PRESETS: dict[str, HINetConfig] = {
    # Denoising: HIN on every encoder level (options/train/SIDD/HINet.yml).
    "sidd-1x": SIDD_1X,
    "sidd-0.5x": replace(SIDD_1X, width=32),
    # Deblurring: HIN only on the two deepest levels (hin_position_left 3).
    "gopro": replace(SIDD_1X, norm_levels=(3, 4)),
    "reds": replace(SIDD_1X, norm_levels=(3, 4)),
    "rain13k": SIDD_1X,
    # NTIRE 2021 deblur extension ("deeper, wider"): our reading is twice the width plus one extra
    # residual block per encoder/decoder level, with the deblur HIN range. The exact recipe is not
    # published: the maintainers describe it only as "deeper, wider, ensemble, test-time augmentation"
    # (megvii-model/HINet issue #5; paper section 4.4).
    "ntire": replace(SIDD_1X, width=128, norm_levels=(3, 4), extra_blocks=1),
}


def preset(name: str) -> HINetConfig:
    """Look up a published variant by name; unknown names list the valid ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}") from None


def scaled(cfg: HINetConfig, width: int, depth: int | None = None) -> HINetConfig:
    """The same network at another width/depth (proxy scale). A partial HIN range keeps its distance
    from the bottleneck, so GoPro's levels 3..4 of 5 become 1..2 of 3."""
    depth = cfg.depth if depth is None else depth
    levels = cfg.norm_levels
    if levels is not None:
        shift = cfg.depth - depth
        levels = (max(0, levels[0] - shift), max(0, levels[1] - shift))
    return replace(cfg, width=width, depth=depth, norm_levels=levels,
                   csff=cfg.csff and depth >= 2)
