"""``python -m benchmarks.gopro``: GoPro (and HIDE, when present) deblurring benchmark.

Default protocol ``deblur/official`` (256x256 tiles on the official grid, uint8, RGB PSNR and 3-D SSIM);
``--protocol full`` / ``--protocol matlab`` score whole images in a second pass. Real data is found below
``--data`` (flat ``GoPro/test/{input,target}`` or ``GOPRO_Large``; HIDE in ``HIDE/test/{input,target}``);
without ``--data`` the synthetic stand-in set is used. See :mod:`hinet.benchmark` for every option.

    python -m benchmarks.gopro --data /data --weights HINet-GoPro.pth --json gopro.json
"""

from __future__ import annotations

from collections.abc import Sequence

from hinet.benchmark import GOPRO
from hinet.benchmark import main as run_main


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(GOPRO, argv)


if __name__ == "__main__":
    raise SystemExit(main())
