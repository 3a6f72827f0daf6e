"""``python -m benchmarks.sidd``: SIDD sRGB denoising on the 1280 validation blocks, or a benchmark submission.

Default protocols ``denoise/official`` (HINet's path: raw float output, peak heuristic, PSNR only) and
``denoise/clamped`` (clamped to [0, 1], peak 1, 3-D SSIM), scored in one pass; when they differ by more than
0.01 dB the command explains the official peak heuristic. Real data: ``ValidationNoisyBlocksSrgb.mat`` and
``ValidationGtBlocksSrgb.mat`` below ``--data``; without it the synthetic stand-in set.

``--submission OUT.mat`` instead denoises ``BenchmarkNoisyBlocksSrgb.mat`` (found below ``--data``) with the
``--weights`` model(s) and writes the file the SIDD server expects (:func:`hinet.data.write_sidd_submission`:
``DenoisedBlocksSrgb`` uint8 (images, blocks, 256, 256, 3) RGB, plus ``TimeMPSrgb`` in seconds per megapixel).

    python -m benchmarks.sidd --data /data --weights HINet-SIDD-1x.pth --json sidd.json
    python -m benchmarks.sidd --data /data --weights HINet-SIDD-1x.pth --submission SubmitSrgb.mat
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from hinet.benchmark import SIDD, build_parser, check_args, run
from hinet.benchmark.submission import submit
from hinet.errors import run_command


def build_sidd_parser() -> argparse.ArgumentParser:
    parser = build_parser(SIDD)
    parser.add_argument("--submission", type=Path, metavar="OUT.mat",
                        help="denoise BenchmarkNoisyBlocksSrgb.mat (below --data) with --weights and write the "
                             "SIDD submission .mat instead of evaluating the validation blocks")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_sidd_parser()
    args = parser.parse_args(argv)
    check_args(parser, args)
    debug_argv = None if argv is None else list(argv)
    if args.submission is None:
        return run_command(parser.prog, lambda: run(SIDD, args), debug_argv)
    if not args.weights or args.data is None:
        parser.error("--submission needs --weights (the model) and --data (holding BenchmarkNoisyBlocksSrgb.mat)")
    unused = [opt for opt, v in (("--protocol", args.protocol), ("--limit", args.limit), ("--json", args.json),
                                 ("--records", args.records != parser.get_default("records") and args.records),
                                 ("--save-images", args.save_images)) if v]
    if unused:
        parser.error(f"{', '.join(unused)} do not apply to --submission (it denoises every benchmark block; "
                     "the benchmark has no public ground truth)")
    return run_command(parser.prog, lambda: submit(args), debug_argv)


if __name__ == "__main__":
    raise SystemExit(main())
