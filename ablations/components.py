"""Which parts of HINet matter: half instance normalisation, CSFF, SAM and the second stage.

Run: ``nox -s ablate`` (synthetic denoising, proxy scale) or
``nox -s ablate -- --family components --dataset sidd --data DIR --recipe paper``.
"""

from dataclasses import replace

from hinet.config import PRESETS

TASK = "denoise"
BASE = PRESETS["sidd-1x"]
REFERENCE = "full"
VARIANTS = {
    "full": BASE,
    "no_hin": replace(BASE, norm="none"),
    "no_csff": replace(BASE, csff=False),
    "no_sam": replace(BASE, sam=False),
    "single_stage": replace(BASE, stages=1, csff=False, sam=False),
}
