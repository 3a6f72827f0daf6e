"""Which encoder levels carry HIN (official ``hin_position_left..right``). The SIDD/Rain13k networks
normalise levels 0..4, the released GoPro/REDS networks only 3..4 (``hin_position_left: 3`` in
megvii-model/HINet ``options/test/GoPro/HINet.yml``); the maintainers attribute the GoPro gain of the
released model over the paper (32.77 vs 32.71 dB) to that position (HINet issues #22 and #26), so the
paper-era setting is not published.

Run: ``nox -s ablate -- --family hin_position --dataset gopro``.
"""

from dataclasses import replace

from hinet.config import PRESETS

TASK = "deblur"
BASE = PRESETS["sidd-1x"]
REFERENCE = "levels_0to4"  # HIN on every encoder level, as the base (the SIDD/Rain13k networks)
# Levels 0..4 of the paper's depth-5 encoder. The proxy recipes train depth 3 and keep a partial range's distance
# from the bottleneck (hinet.config.scaled), so 1..4 and 2..4 would build the 0..4 network there, and 0..0 the
# 0..2 one: only ranges that stay distinct at both scales are variants.
VARIANTS = {f"levels_{left}to{right}": replace(BASE, norm_levels=(left, right))
            for left, right in ((0, 4), (3, 4), (4, 4), (0, 2))}
