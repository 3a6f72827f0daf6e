"""``python -m benchmarks.rain13k``: deraining on the five Rain13k test sets plus their "Average" row.

Default protocol ``derain/official`` (256x256 tiles, uint8, BT.601 Y PSNR and 2-D SSIM); ``--protocol
matlab`` is MPRNet's MATLAB scoring (rounded Y, 'valid' SSIM). The Average row is the mean of the five set
means, as in HINet's Table 3. Real data: ``<root>/test/<set>/{input,target}`` below ``--data``; without it the
synthetic stand-ins. See :mod:`hinet.benchmark` for every option.

    python -m benchmarks.rain13k --data /data --weights HINet-Rain13k.pth
"""

from __future__ import annotations

from collections.abc import Sequence

from hinet.benchmark import RAIN13K
from hinet.benchmark import main as run_main


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(RAIN13K, argv)


if __name__ == "__main__":
    raise SystemExit(main())
