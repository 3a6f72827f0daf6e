"""Which normalisation in the encoder blocks: half instance (the paper), full instance, batch, none,
and the fraction of channels instance-normalised. Ratios 0, 0.5 and 1 are ``none``, ``half_instance`` and
``instance`` (the same networks with the same initial weights), so only 0.25 and 0.75 are variants of their own.

Run: ``nox -s ablate -- --family normalization``.
"""

from dataclasses import replace

from hinet.config import PRESETS

TASK = "denoise"
BASE = PRESETS["sidd-1x"]
REFERENCE = "half_instance"
VARIANTS = {
    "half_instance": BASE,
    "instance": replace(BASE, norm="instance"),
    "batch": replace(BASE, norm="batch"),
    "none": replace(BASE, norm="none"),
    **{f"ratio_{r:g}": replace(BASE, norm_ratio=r) for r in (0.25, 0.75)},
}
