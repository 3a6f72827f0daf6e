"""The command line shared by ``python -m benchmarks.sidd | benchmarks.gopro | benchmarks.rain13k``:
options, their checks, and :func:`run` (evaluate, print, write ``--json`` / ``--records`` / images).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import torch

from ..atomic import atomic_write_text, check_output
from ..data.verify import verify_pairs
from ..errors import ArgumentParser, run_command
from ..evaluate import DEFAULT_PROTOCOLS, PROTOCOLS
from ..records import append_records, git_info
from ..tasks import NATURAL_PHOTOS_SET, slug
from .formatting import build_notes, emit, format_table
from .results import DEFAULT_RECORDS, records_for, summary, summary_json
from .scoring import (
    average_rows,
    evaluate_protocols,
    load_method,
    open_sets,
    published_references,
    resolve_device,
    selected_protocols,
)
from .specs import Benchmark


def build_parser(bench: Benchmark) -> argparse.ArgumentParser:
    """The options shared by every benchmark command."""
    names = sorted(PROTOCOLS[bench.task])
    default = ", ".join(DEFAULT_PROTOCOLS[bench.task])
    parser = ArgumentParser(
        prog=f"python -m benchmarks.{bench.name}",
        description=f"{bench.title}: score checkpoint(s) of HINet, MPRNet, NAFNet or your own network (--model), "
                    "or the degraded input without --weights. "
                    "Without --data the SYNTHETIC stand-in sets are used (labelled synthetic everywhere).")
    parser.add_argument("--data", type=Path, help="folder holding the real dataset at any depth "
                        "(absent: synthetic stand-ins)")
    parser.add_argument("--weights", action="append", type=Path, default=[], metavar="CKPT",
                        help="HINet checkpoint (official or ours; repeat for an ensemble). Absent: the degraded "
                             "input is scored (no restoration)")
    parser.add_argument("--model", metavar="NETWORK",
                        help="the network the --weights are for: a name (mprnet-sidd, nafnet-sidd-width64, sidd-1x, "
                             "...) or your own, package.module:callable; absent: read from the checkpoint (ours, or "
                             "an official HINet, MPRNet or NAFNet one)")
    parser.add_argument("--name", help="method label in the table, JSON and records (default: checkpoint stem, "
                                       "'ensemble(a+b)', or 'degraded input')")
    parser.add_argument("--protocol", action="append", choices=names, metavar="NAME",
                        help=f"scoring protocol, repeatable; one of {names} (default: {default})")
    parser.add_argument("--lpips", action="store_true",
                        help="also report LPIPS (AlexNet; weights from `python -m hinet.perceptual --setup`)")
    parser.add_argument("--exact-ssim", action="store_true",
                        help="RGB 3-D SSIM with the official float32 arithmetic (slow; default: fast, <=1.5e-4 off)")
    parser.add_argument("--tta", action="store_true", help="average the 8 dihedral transforms (needs --weights)")
    parser.add_argument("--tlc", action="store_true",
                        help="test-time local converter (Chu et al., ECCV 2022): instance norms take their statistics "
                             "over a sliding window, whole images, no grids (needs --weights); protocols become "
                             "<name>+tlc<base>-<train>")
    parser.add_argument("--tlc-base-size", type=int, metavar="N",
                        help="TLC window in input pixels (default 384, the official HINet-Local setting; with --tlc)")
    parser.add_argument("--tlc-train-size", type=int, metavar="N",
                        help="training crop side the TLC windows are calibrated at (default 256; with --tlc)")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip checking that every test pair exists, decodes and has matching sizes before scoring")
    parser.add_argument("--limit", type=int, help="score only the first N images of each test set")
    parser.add_argument("--device", default="auto", help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--batch-size", type=int, default=1, help="images per forward pass (default 1)")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (default 0)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write a JSON summary")
    parser.add_argument("--records", type=Path, metavar="FILE", default=DEFAULT_RECORDS,
                        help=f"append checkpoint-evaluation records (JSONL) here (default: {DEFAULT_RECORDS})")
    parser.add_argument("--no-records", dest="records", action="store_const", const=None,
                        help="write no records")
    parser.add_argument("--save-images", type=Path, metavar="DIR",
                        help="write input/, target/ and <method>/ PNGs (clamped, 8-bit) for side-by-side viewing")
    parser.add_argument("--synthetic-size", type=int, help="side of the synthetic images (default 128; "
                                                           "only without --data)")
    parser.add_argument("--synthetic-count", type=int, help="images per synthetic set (default 8; "
                                                            "only without --data)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error (also HINET_DEBUG=1)")
    return parser


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Reject option combinations that make no sense (exits with argparse's usage error, status 2)."""
    for opt in ("limit", "batch_size", "synthetic_size", "synthetic_count"):
        value = getattr(args, opt)
        if value is not None and value < 1:
            parser.error(f"--{opt.replace('_', '-')} must be >= 1, got {value}")
    if args.workers < 0:
        parser.error(f"--workers must be >= 0, got {args.workers}")
    if args.protocol and len(set(args.protocol)) != len(args.protocol):
        parser.error(f"--protocol given twice: {args.protocol}")
    if args.tta and not args.weights:
        parser.error("--tta averages a network's predictions over flips/rotations; it needs --weights")
    if not args.tlc and (args.tlc_base_size is not None or args.tlc_train_size is not None):
        parser.error("--tlc-base-size/--tlc-train-size apply only with --tlc")
    if args.tlc:
        if not args.weights:
            parser.error("--tlc converts a network's instance normalisation; it needs --weights")
        args.tlc_base_size = 384 if args.tlc_base_size is None else args.tlc_base_size
        args.tlc_train_size = 256 if args.tlc_train_size is None else args.tlc_train_size
        for opt in ("tlc_base_size", "tlc_train_size"):
            if getattr(args, opt) < 1:
                parser.error(f"--{opt.replace('_', '-')} must be >= 1, got {getattr(args, opt)}")
    if args.data is not None and (args.synthetic_size is not None or args.synthetic_count is not None):
        parser.error("--synthetic-size/--synthetic-count apply only to the synthetic sets (without --data)")
    try:
        device = resolve_device(args.device)
    except RuntimeError as err:
        parser.error(f"--device {args.device!r}: {err}")
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device!r}: CUDA is not available on this machine")
    args.device = device


def check_outputs(args: argparse.Namespace) -> None:
    """Prove every output of the command writable before any work (``hinet.atomic.check_output``)."""
    for flag, path, folder in (("--json", args.json, False), ("--records", args.records, False),
                               ("--save-images", args.save_images, True),
                               ("--submission", getattr(args, "submission", None), False)):
        if path is not None:
            check_output(path, flag, folder=folder)


def run(bench: Benchmark, args: argparse.Namespace) -> int:
    """Evaluate, print the table and notes, write --json/--records; returns the exit status (0).

    Every output path is checked first (creating nothing): an unwritable one never costs an evaluation."""
    check_outputs(args)
    method = load_method(args.weights, args.name, args.model)
    datasets = open_sets(bench, args)
    synthetic = any(bool(getattr(ds, "synthetic", False)) for ds in datasets.values())
    if args.data is not None and not args.no_verify:
        for ds in datasets.values():
            verify_pairs(ds, progress=not args.no_progress)
    tlc = (args.tlc_base_size, args.tlc_train_size) if args.tlc else None
    protocols = selected_protocols(bench, args.protocol, args.exact_ssim, tlc)
    results = evaluate_protocols(method, datasets, protocols, tta=args.tta, limit=args.limit, device=args.device,
                                 batch_size=args.batch_size, workers=args.workers, progress=not args.no_progress,
                                 save_dir=args.save_images, perceptual=args.lpips)
    rows = list(results)
    if bench.average is not None:
        rows += average_rows([r for r in rows if r.dataset != NATURAL_PHOTOS_SET], bench.average)  # stand-ins
    refs = None if synthetic else published_references(bench, rows, ("HINet-Local",) if args.tlc else ())
    data_line = (f"data: SYNTHETIC stand-ins from hinet.data.synthetic ({', '.join(datasets)})" if synthetic
                 else f"data: {Path(args.data).resolve()} ({', '.join(datasets)})")
    title = f"{bench.title}{' (SYNTHETIC data)' if synthetic else ''}"
    emit([title, f"method: {method.describe(args.tta)}", data_line, "",
          format_table(rows, refs, synthetic), "", *build_notes(bench, method, rows, protocols, refs, args)],
         synthetic)
    git = git_info()
    # Both outputs are built (and checked: finite numbers only) before either is written.
    doc = None if args.json is None else summary_json(summary(bench, method, rows, refs, args, git))
    records = None if args.records is None else records_for(bench, method, rows, args, git)
    if doc is not None:
        atomic_write_text(args.json, doc)
        emit([f"wrote {args.json}"], synthetic)
    if records is not None:
        append_records(args.records, records)
        emit([f"appended {len(records)} records to {args.records}"], synthetic)
    if args.save_images is not None:
        emit([f"images: {args.save_images}/{{input,target,{slug(method.name)}*}}/"], synthetic)
    return 0


def main(bench: Benchmark, argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the benchmark (used by the thin per-dataset modules); returns the exit status.

    Usage errors exit through argparse (status 2); a missing/bad dataset, checkpoint or value becomes one
    line ``<prog>: error: ...`` and status 2 (:func:`hinet.errors.run_command`).
    """
    parser = build_parser(bench)
    args = parser.parse_args(argv)
    check_args(parser, args)
    return run_command(parser.prog, lambda: run(bench, args), None if argv is None else list(argv))
