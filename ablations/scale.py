"""Width, depth and extra residual blocks, up to the NTIRE 2021 extension (twice as wide plus one
extra residual block per encoder/decoder level; our reading of "deeper, wider").

Run: ``nox -s ablate -- --family scale``.
"""

from dataclasses import replace

from hinet.config import PRESETS

TASK = "denoise"
BASE = PRESETS["sidd-1x"]
REFERENCE = "width_x1"
VARIANTS = {
    "width_x0.5": replace(BASE, width=BASE.width // 2),
    "width_x1": BASE,
    "width_x2": replace(BASE, width=BASE.width * 2),
    "depth_4": replace(BASE, depth=4),
    "depth_6": replace(BASE, depth=6),
    "extra_blocks_1": replace(BASE, extra_blocks=1),
    "ntire": PRESETS["ntire"],
}
