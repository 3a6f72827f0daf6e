"""Which encoder levels carry HIN (official ``hin_position_left..right``). The SIDD/Rain13k networks
normalise levels 0..4, the released GoPro/REDS networks only 3..4; the paper-era GoPro setting is not
published (hinet-reference A.4).

Run: ``nox -s ablate -- --family hin_position --dataset gopro``.
"""

from dataclasses import replace

from hinet.config import PRESETS

TASK = "deblur"
BASE = PRESETS["sidd-1x"]
VARIANTS = {f"levels_{left}to{right}": replace(BASE, norm_levels=(left, right))
            for left, right in ((0, 4), (1, 4), (2, 4), (3, 4), (4, 4), (0, 2), (0, 0))}
