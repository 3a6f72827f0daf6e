"""Shared code of the benchmark commands ``python -m benchmarks.sidd | benchmarks.gopro | benchmarks.rain13k``.

Each command scores one *method* on a task's standard test sets and prints a table:

* The method is the HINet checkpoint(s) given with ``--weights`` (official or ours; the architecture is read
  from each file by :func:`hinet.load`; several files form an ensemble whose predictions are averaged) or,
  without weights, the **degraded input** itself (no restoration): a meaningful reference row, never an
  untrained network.
* The data is the real dataset found below ``--data`` (:func:`hinet.data.open_test_sets`) or, without it,
  the SYNTHETIC stand-ins of :func:`hinet.data.synthetic_test_sets`. Synthetic results say "synthetic" on
  every printed line (table rules aside), in the JSON and in the records, and no published number is
  printed beside them.
* Every ``--protocol`` (default :data:`hinet.evaluate.DEFAULT_PROTOCOLS`) is scored; protocols that need a
  different inference mode (tiled vs whole image) are run in separate passes.

PSNR is in dB, SSIM in [0, 1]; images are RGB in [0, 1] throughout (see :mod:`hinet.evaluate`).
Outputs: the printed table, ``--json`` (a summary), ``--records`` (tidy :class:`hinet.records.Record`
lines, family ``benchmark``, recipe ``eval``, or ``eval-subset`` when ``--limit`` cut a set short) and
``--save-images`` (PNG folders ``input/``, ``target/``, ``<method>/`` as read by
:func:`hinet.report.comparison_grid`).
"""

from __future__ import annotations

import argparse
import json
import pickle
import re
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

import hinet
from hinet.data import RAIN13K_TEST_SETS, open_test_sets, synthetic_test_sets
from hinet.evaluate import DEFAULT_PROTOCOLS, PROTOCOLS, Protocol, SetResult, default_protocols, evaluate
from hinet.records import Record, append_records, config_hash, environment, git_info, utc_now

SYNTHETIC_NOTE = "synthetic data: not comparable with the published numbers"
DEGRADED_INPUT = "degraded input"
# An output block whose official PSNR exceeds its clamped PSNR by more than this was scored with peak 255
# (+20*log10(255) = 48.13 dB); clamping alone cannot gain that much on a sane output.
_PEAK_JUMP_DB = 40.0
_PEAK_NOTE_THRESHOLD_DB = 0.01


@dataclass(frozen=True)
class Benchmark:
    """One benchmark command.

    Args:
        name: command name (``python -m benchmarks.<name>``), also used in run ids.
        task: key of :data:`hinet.evaluate.PROTOCOLS` and of :func:`hinet.data.open_test_sets`.
        title: printed above the table.
        references: test set -> published methods (``results/published`` ``method`` column) printed beside
            our numbers on real data.
        splits: test set -> ``Record.split`` (default ``test``).
        average: name of an extra row holding the mean of the set means (Rain13k's "Average"), or None.
    """

    name: str
    task: str
    title: str
    references: Mapping[str, tuple[str, ...]]
    splits: Mapping[str, str] = field(default_factory=dict)
    average: str | None = None


SIDD = Benchmark("sidd", "denoise", "SIDD sRGB denoising, validation blocks",
                 {"SIDD": ("HINet", "HINet 0.5x")}, {"SIDD": "val"})
GOPRO = Benchmark("gopro", "deblur", "GoPro deblurring (and HIDE when present)",
                  {"GoPro": ("HINet (paper)", "HINet (README)"), "HIDE": ("HINet",)})
RAIN13K = Benchmark("rain13k", "derain", "Rain13k deraining, five test sets",
                    {name: ("HINet",) for name in (*RAIN13K_TEST_SETS, "Average")}, average="Average")


@dataclass
class Row:
    """Mean metrics of one test set (or of an aggregate such as Rain13k's Average) under one protocol."""

    dataset: str
    protocol: str
    description: str
    count: int  # images scored
    total: int  # images in the full set
    metrics: dict[str, float]
    synthetic: bool
    per_image: dict[str, list[float]] | None = None  # None for aggregate rows
    derived: str | None = None  # how an aggregate row was formed


@dataclass(frozen=True)
class Reference:
    """A published number set for one test set and method (metric -> value), with its source."""

    dataset: str
    method: str
    values: dict[str, float]
    source: str


@dataclass
class Method:
    """What is scored: networks (an ensemble when several) or the degraded input."""

    name: str
    models: list[Callable[[torch.Tensor], Sequence[torch.Tensor]]]
    weights: list[str]
    configs: list[dict[str, Any]]

    @property
    def is_baseline(self) -> bool:
        return not self.weights

    def describe(self, tta: bool) -> str:
        if self.is_baseline:
            return f"{DEGRADED_INPUT} (no restoration: the input is scored against the target)"
        kind = "HINet checkpoint" if len(self.weights) == 1 else f"ensemble of {len(self.weights)} HINet checkpoints"
        extra = ", TTA x8 (dihedral)" if tta else ""
        return f"{self.name}: {kind} {', '.join(self.weights)}{extra}"


def degraded_input(x: torch.Tensor) -> list[torch.Tensor]:
    """The identity "model": its prediction is the degraded input (N, C, H, W), unchanged."""
    return [x]


# ----------------------------------------------------------------------------------------------- CLI


def build_parser(bench: Benchmark) -> argparse.ArgumentParser:
    """The options shared by every benchmark command."""
    names = sorted(PROTOCOLS[bench.task])
    default = ", ".join(DEFAULT_PROTOCOLS[bench.task])
    parser = argparse.ArgumentParser(
        prog=f"python -m benchmarks.{bench.name}",
        description=f"{bench.title}: score HINet checkpoint(s), or the degraded input without --weights. "
                    "Without --data the SYNTHETIC stand-in sets are used (labelled synthetic everywhere).")
    parser.add_argument("--data", type=Path, help="folder holding the real dataset at any depth "
                        "(absent: synthetic stand-ins)")
    parser.add_argument("--weights", action="append", type=Path, default=[], metavar="CKPT",
                        help="HINet checkpoint (official or ours; repeat for an ensemble). Absent: the degraded "
                             "input is scored (no restoration)")
    parser.add_argument("--name", help="method label in the table, JSON and records (default: checkpoint stem, "
                                       "'ensemble(a+b)', or 'degraded input')")
    parser.add_argument("--protocol", action="append", choices=names, metavar="NAME",
                        help=f"scoring protocol, repeatable; one of {names} (default: {default})")
    parser.add_argument("--lpips", action="store_true",
                        help="also report LPIPS (AlexNet; weights from `python -m hinet.perceptual --setup`)")
    parser.add_argument("--exact-ssim", action="store_true",
                        help="RGB 3-D SSIM with the official float32 arithmetic (slow; default: fast, <=1.5e-4 off)")
    parser.add_argument("--tta", action="store_true", help="average the 8 dihedral transforms (needs --weights)")
    parser.add_argument("--limit", type=int, help="score only the first N images of each test set")
    parser.add_argument("--device", default="auto", help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--batch-size", type=int, default=1, help="images per forward pass (default 1)")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (default 0)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write a JSON summary")
    parser.add_argument("--records", type=Path, metavar="FILE", default=Path("results/records/benchmark.jsonl"),
                        help="append tidy records (JSONL) here (default: results/records/benchmark.jsonl)")
    parser.add_argument("--no-records", dest="records", action="store_const", const=None,
                        help="write no records")
    parser.add_argument("--save-images", type=Path, metavar="DIR",
                        help="write input/, target/ and <method>/ PNGs (clamped, 8-bit) for side-by-side viewing")
    parser.add_argument("--synthetic-size", type=int, help="side of the synthetic images (default 128; "
                                                           "only without --data)")
    parser.add_argument("--synthetic-count", type=int, help="images per synthetic set (default 8; "
                                                            "only without --data)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
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
    if args.data is not None and (args.synthetic_size is not None or args.synthetic_count is not None):
        parser.error("--synthetic-size/--synthetic-count apply only to the synthetic sets (without --data)")
    try:
        device = resolve_device(args.device)
    except RuntimeError as err:
        parser.error(f"--device {args.device!r}: {err}")
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device!r}: CUDA is not available on this machine")
    args.device = device


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; anything else is parsed by torch (RuntimeError if invalid)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def load_method(weights: Sequence[Path], name: str | None) -> Method:
    """Load checkpoints (eval mode, CPU) into a :class:`Method`; no weights -> the degraded input."""
    if not weights:
        return Method(name or DEGRADED_INPUT, [degraded_input], [], [])
    models = []
    for path in weights:
        try:
            models.append(hinet.load(path))
        except (pickle.UnpicklingError, EOFError, RuntimeError) as err:  # torch.load on a non-checkpoint file
            raise ValueError(f"{path}: cannot be read as a torch checkpoint: {err}") from err
    stems = [Path(p).stem for p in weights]
    default = stems[0] if len(stems) == 1 else f"ensemble({'+'.join(stems)})"
    return Method(name or default, models, [str(Path(p).resolve()) for p in weights],
                  [m.cfg.to_dict() for m in models])


def open_sets(bench: Benchmark, args: argparse.Namespace) -> dict[str, Dataset]:
    """Real test sets below ``--data``, else the synthetic stand-ins (names end in ' (synthetic)')."""
    if args.data is not None:
        return open_test_sets(bench.task, args.data)
    kw = {k: v for k, v in (("size", args.synthetic_size), ("count", args.synthetic_count)) if v is not None}
    return synthetic_test_sets(bench.task, **kw)


def selected_protocols(bench: Benchmark, names: Sequence[str] | None, exact_ssim: bool = False) -> list[Protocol]:
    """The protocols to score; ``exact_ssim`` switches RGB 3-D SSIM to the official float32 arithmetic."""
    protos = [PROTOCOLS[bench.task][n] for n in names] if names else default_protocols(bench.task)
    if exact_ssim:
        protos = [replace(p, ssim_arithmetic="reference") if p.ssim == "official" and not p.y_channel else p
                  for p in protos]
    return protos


# ------------------------------------------------------------------------------------------ evaluation


def slug(text: str) -> str:
    """A file-name-safe form of a label ('ensemble(a+b)' -> 'ensemble-a-b')."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "output"


def evaluate_protocols(method: Method, datasets: dict[str, Dataset], protocols: Sequence[Protocol], *,
                       tta: bool, limit: int | None, device: torch.device, batch_size: int, workers: int,
                       progress: bool, save_dir: Path | None, perceptual: bool = False) -> list[SetResult]:
    """:func:`hinet.evaluate.evaluate` once per inference mode; results ordered by (set, protocol) as given.

    With several inference modes the saved prediction folders are ``<method>__tiled256`` /
    ``<method>__full-image`` so that the passes do not overwrite each other.
    """
    groups: dict[tuple, list[Protocol]] = {}
    for p in protocols:
        groups.setdefault(p.inference, []).append(p)
    results: list[SetResult] = []
    for (tiled, tile), group in groups.items():
        label = slug(method.name)
        if len(groups) > 1:
            label += f"__tiled{tile}" if tiled else "__full-image"
        for ds in datasets.values():
            if workers and hasattr(ds, "load"):
                ds.load()  # SIDD: load the .mat arrays once before the workers fork
        results += evaluate(method.models, datasets, group, tta=tta, limit=limit, device=device,
                            batch_size=batch_size, progress=progress, save_dir=save_dir, label=label,
                            workers=workers, perceptual=perceptual)
    set_order = {name: i for i, name in enumerate(datasets)}
    proto_order = {p.name: i for i, p in enumerate(protocols)}
    return sorted(results, key=lambda r: (set_order[r.dataset], proto_order[r.protocol]))


def to_rows(results: Sequence[SetResult], datasets: Mapping[str, Dataset]) -> list[Row]:
    return [Row(r.dataset, r.protocol, r.description, r.count, len(datasets[r.dataset]), dict(r.metrics),
                r.synthetic, r.per_image) for r in results]


def average_rows(rows: Sequence[Row], name: str) -> list[Row]:
    """Per protocol, the mean over test sets of the set means (how Table 3's "Average" is formed)."""
    out = []
    for proto in dict.fromkeys(r.protocol for r in rows):
        group = [r for r in rows if r.protocol == proto]
        keys = [k for k in group[0].metrics if all(k in r.metrics for r in group)]
        synthetic = any(r.synthetic for r in group)
        label = f"{name} (synthetic)" if synthetic else name
        means = {k: sum(r.metrics[k] for r in group) / len(group) for k in keys}
        out.append(Row(label, proto, group[0].description, sum(r.count for r in group),
                       sum(r.total for r in group), means, synthetic,
                       derived=f"mean of the {len(group)} set means"))
    return out


def published_references(bench: Benchmark, rows: Sequence[Row]) -> dict[str, list[Reference]]:
    """test set -> the published numbers of :attr:`Benchmark.references` (real data only).

    Raises ValueError when ``results/published`` lacks a number the benchmark is meant to show.
    """
    from hinet.report import load_published  # lazy: pulls in matplotlib/seaborn

    published = load_published()
    out: dict[str, list[Reference]] = {}
    for dataset in dict.fromkeys(r.dataset for r in rows):
        refs = []
        for method in bench.references.get(dataset, ()):
            sel = published[(published["dataset"] == dataset) & (published["method"] == method)
                            & published["metric"].isin(["psnr", "ssim"])]
            if sel.empty:
                raise ValueError(f"results/published has no psnr/ssim of {method!r} on {dataset!r}")
            refs.append(Reference(dataset, method, dict(zip(sel["metric"], sel["value"].astype(float))),
                                  "; ".join(dict.fromkeys(sel["source"]))))
        out[dataset] = refs
    return out


# ---------------------------------------------------------------------------------------------- output


def _fmt(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def format_table(rows: Sequence[Row], refs: Mapping[str, Sequence[Reference]] | None, synthetic: bool) -> str:
    """GitHub-markdown table: one line per (set, protocol), or per (set, protocol, published method) on real
    data, with ``diff = ours - published``."""
    from tabulate import tabulate

    with_lpips = any("lpips" in r.metrics for r in rows)
    headers = ["synthetic test set" if synthetic else "test set", "protocol", "images", "PSNR", "SSIM"]
    headers += ["LPIPS"] if with_lpips else []
    if refs is not None:
        headers += ["published", "pub. PSNR", "PSNR diff", "pub. SSIM", "SSIM diff"]
    lines = []
    for r in rows:
        ours = [r.dataset, r.protocol, str(r.count) if r.count == r.total else f"{r.count} of {r.total}",
                _fmt(r.metrics.get("psnr"), ".2f"), _fmt(r.metrics.get("ssim"), ".4f")]
        ours += [_fmt(r.metrics.get("lpips"), ".4f")] if with_lpips else []
        if refs is None:
            lines.append(ours)
            continue
        for ref in refs.get(r.dataset) or [None]:
            if ref is None:
                lines.append(ours + [""] * 5)
                continue
            cells = [ref.method]
            for metric, diff_spec in (("psnr", "+.2f"), ("ssim", "+.4f")):
                pub, mine = ref.values.get(metric), r.metrics.get(metric)
                cells += [_fmt(pub, "g"), _fmt(None if pub is None or mine is None else mine - pub, diff_spec)]
            lines.append(ours + cells)
    return tabulate(lines, headers=headers, tablefmt="github", disable_numparse=True)


def sidd_peak_note(rows: Sequence[Row]) -> list[str]:
    """Explain official vs clamped when they differ by more than 0.01 dB on a set (the official peak heuristic)."""
    notes = []
    for dataset in dict.fromkeys(r.dataset for r in rows):
        by_proto = {r.protocol: r for r in rows if r.dataset == dataset}
        off, clamped = by_proto.get("denoise/official"), by_proto.get("denoise/clamped")
        if off is None or clamped is None:
            continue
        gap = off.metrics["psnr"] - clamped.metrics["psnr"]
        if abs(gap) <= _PEAK_NOTE_THRESHOLD_DB:
            continue
        jumped = sum(o - c > _PEAK_JUMP_DB for o, c in zip(off.per_image["psnr"], clamped.per_image["psnr"]))
        notes.append(
            f"{dataset}: official and clamped PSNR differ by {gap:+.2f} dB. The official SIDD path scores the raw, "
            f"unclamped output and picks the PSNR peak per block: 1 when the block's output max <= 1.0, else 255, "
            f"which adds 20*log10(255) = 48.13 dB to that block ({jumped} of {off.count} blocks here score more "
            f"than {_PEAK_JUMP_DB:g} dB higher under official). 'clamped' clamps to [0, 1] and always uses peak 1; "
            f"see hinet-reference C.1.")
    return notes


def build_notes(bench: Benchmark, method: Method, rows: Sequence[Row], protocols: Sequence[Protocol],
                refs: Mapping[str, Sequence[Reference]] | None, args: argparse.Namespace) -> list[str]:
    synthetic = refs is None
    notes = ["protocols:"] + [f"  {p.describe()}" for p in protocols]
    if synthetic:
        notes.append(SYNTHETIC_NOTE)
    else:
        notes.append("published = numbers from results/published/*.csv; diff = ours - published. They were "
                     "scored with the authors' own protocol; sources:")
        seen = dict.fromkeys((ref.method, ref.dataset, ref.source) for rs in refs.values() for ref in rs)
        notes += [f"  {m} on {d}: {s}" for m, d, s in seen]
    if any(r.count < r.total for r in rows):
        notes.append(f"--limit {args.limit}: only the first {args.limit} images of each set were scored"
                     + ("" if synthetic else "; the published numbers cover the full sets"))
    if args.tta or len(method.weights) > 1:
        notes.append("TTA/ensemble: predictions averaged over "
                     + " and ".join(filter(None, ["the 8 dihedral transforms" if args.tta else "",
                                                  f"{len(method.weights)} checkpoints" if len(method.weights) > 1
                                                  else ""]))
                     + ("" if synthetic else "; the published numbers are single-model, single-pass"))
    if bench.task == "denoise":
        notes += sidd_peak_note(rows)
    return notes


def summary(bench: Benchmark, method: Method, rows: Sequence[Row], refs: Mapping[str, Sequence[Reference]] | None,
            args: argparse.Namespace, git: tuple[str, bool]) -> dict[str, Any]:
    """The ``--json`` document (plain JSON types only)."""
    synthetic = refs is None
    results = []
    for r in rows:
        item: dict[str, Any] = {"dataset": r.dataset, "protocol": r.protocol, "description": r.description,
                                "count": r.count, "total": r.total, "synthetic": r.synthetic, "metrics": r.metrics}
        if r.derived:
            item["derived"] = r.derived
        if not synthetic:
            item["published"] = [
                {"method": ref.method, "values": ref.values, "source": ref.source,
                 "difference": {k: r.metrics[k] - v for k, v in ref.values.items() if k in r.metrics}}
                for ref in refs.get(r.dataset, [])]
        results.append(item)
    doc: dict[str, Any] = {
        "benchmark": bench.name, "task": bench.task, "synthetic": synthetic,
        "data": None if args.data is None else str(Path(args.data).resolve()),
        "method": method.name, "baseline": method.is_baseline, "weights": method.weights,
        "tta": bool(args.tta), "limit": args.limit, "device": str(args.device),
        "git_commit": git[0], "git_dirty": git[1], "time": utc_now(), "results": results}
    if synthetic:
        doc["note"] = SYNTHETIC_NOTE
    return doc


def records_for(bench: Benchmark, method: Method, rows: Sequence[Row], args: argparse.Namespace,
                git: tuple[str, bool]) -> list[Record]:
    """One Record per (row, metric); recipe ``eval``, or ``eval-subset`` when --limit cut a set short."""
    env = environment(args.device)
    run_id = f"benchmark-{bench.name}-{utc_now().replace(':', '')}-{uuid.uuid4().hex[:8]}"
    chash = config_hash({"benchmark": bench.name, "method": method.name, "weights": method.weights,
                         "configs": method.configs, "tta": bool(args.tta)})
    out = []
    for r in rows:
        base = r.dataset.removesuffix(" (synthetic)")
        for metric, value in r.metrics.items():
            out.append(Record(
                run_id=run_id, family="benchmark", variant=method.name, dataset=r.dataset,
                split=bench.splits.get(base, "test"), protocol=r.protocol + ("+tta8" if args.tta else ""),
                metric=metric, value=value, step=None, seed=None, git_commit=git[0], git_dirty=git[1],
                config_hash=chash, device=env["device"], torch_version=env["torch_version"], time=utc_now(),
                synthetic=r.synthetic, recipe="eval" if r.count == r.total else "eval-subset"))
    return out


def emit(lines: Sequence[str], synthetic: bool) -> None:
    """Print lines; on synthetic data every line that is not a table rule says "synthetic"."""
    for text in lines:
        for line in text.splitlines() or [""]:
            is_rule = not re.search(r"[A-Za-z0-9]", line)
            if synthetic and not is_rule and "synthetic" not in line.lower():
                line = f"[synthetic] {line}"
            print(line)


# ------------------------------------------------------------------------------------------------ main


def run(bench: Benchmark, args: argparse.Namespace) -> int:
    """Evaluate, print the table and notes, write --json/--records; returns the exit status (0)."""
    method = load_method(args.weights, args.name)
    datasets = open_sets(bench, args)
    synthetic = any(bool(getattr(ds, "synthetic", False)) for ds in datasets.values())
    protocols = selected_protocols(bench, args.protocol, args.exact_ssim)
    results = evaluate_protocols(method, datasets, protocols, tta=args.tta, limit=args.limit, device=args.device,
                                 batch_size=args.batch_size, workers=args.workers, progress=not args.no_progress,
                                 save_dir=args.save_images, perceptual=args.lpips)
    rows = to_rows(results, datasets)
    if bench.average is not None:
        rows += average_rows(rows, bench.average)
    refs = None if synthetic else published_references(bench, rows)
    data_line = (f"data: SYNTHETIC stand-ins from hinet.data.synthetic ({', '.join(datasets)})" if synthetic
                 else f"data: {Path(args.data).resolve()} ({', '.join(datasets)})")
    title = f"{bench.title}{' (SYNTHETIC data)' if synthetic else ''}"
    emit([title, f"method: {method.describe(args.tta)}", data_line, "",
          format_table(rows, refs, synthetic), "", *build_notes(bench, method, rows, protocols, refs, args)],
         synthetic)
    git = git_info()
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary(bench, method, rows, refs, args, git), indent=2) + "\n")
        emit([f"wrote {args.json}"], synthetic)
    if args.records is not None:
        records = records_for(bench, method, rows, args, git)
        append_records(args.records, records)
        emit([f"appended {len(records)} records to {args.records}"], synthetic)
    if args.save_images is not None:
        emit([f"images: {args.save_images}/{{input,target,{slug(method.name)}*}}/"], synthetic)
    return 0


def guarded(prog: str, action: Callable[[], int]) -> int:
    """Run ``action``; a missing/bad dataset, checkpoint or input becomes a one-paragraph error and status 2."""
    try:
        return action()
    except (FileNotFoundError, ValueError) as err:  # DatasetNotFoundError / DatasetError are among these
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2


def main(bench: Benchmark, argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the benchmark (used by the thin per-dataset modules)."""
    parser = build_parser(bench)
    args = parser.parse_args(argv)
    check_args(parser, args)
    return guarded(parser.prog, lambda: run(bench, args))
