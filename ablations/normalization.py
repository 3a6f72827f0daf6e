"""Which normalisation in the encoder blocks: half instance (the paper), full instance, batch, none,
and the fraction of channels instance-normalised (0 = none ... 1 = full instance).

Run: ``nox -s ablate -- --family normalization``.
"""

from dataclasses import replace

from hinet.config import PRESETS

TASK = "denoise"
BASE = PRESETS["sidd-1x"]
VARIANTS = {
    "half_instance": BASE,
    "instance": replace(BASE, norm="instance"),
    "batch": replace(BASE, norm="batch"),
    "none": replace(BASE, norm="none"),
    **{f"ratio_{r:g}": replace(BASE, norm_ratio=r) for r in (0.0, 0.25, 0.5, 0.75, 1.0)},
}
