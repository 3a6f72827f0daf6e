"""What a benchmark command prints: the results table (GitHub Markdown), the notes below it (protocols,
published sources, --limit/TTA/ensemble caveats, the SIDD peak heuristic) and :func:`emit`, which marks
every line of a synthetic run.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping, Sequence

from tabulate import tabulate

from ..evaluate import Protocol, SetResult
from .specs import SYNTHETIC_NOTE, Benchmark, Method, Reference

# An output block whose official PSNR exceeds its clamped PSNR by more than this was scored with peak 255
# (+20*log10(255) = 48.13 dB); clamping alone cannot gain that much on a sane output.
_PEAK_JUMP_DB = 40.0
_PEAK_NOTE_THRESHOLD_DB = 0.01


def _fmt(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def format_table(rows: Sequence[SetResult], refs: Mapping[str, Sequence[Reference]] | None, synthetic: bool) -> str:
    """GitHub-markdown table: one line per (set, protocol), or per (set, protocol, published method) on real
    data, with ``diff = ours - published``."""
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


def sidd_peak_note(rows: Sequence[SetResult]) -> list[str]:
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
            f"than {_PEAK_JUMP_DB:g} dB higher under official). 'clamped' clamps to [0, 1] and always uses peak 1.")
    return notes


def build_notes(bench: Benchmark, method: Method, rows: Sequence[SetResult], protocols: Sequence[Protocol],
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


def emit(lines: Sequence[str], synthetic: bool) -> None:
    """Print lines; on synthetic data every line that is not a table rule says "synthetic"."""
    for text in lines:
        for line in text.splitlines() or [""]:
            is_rule = not re.search(r"[A-Za-z0-9]", line)
            if synthetic and not is_rule and "synthetic" not in line.lower():
                line = f"[synthetic] {line}"
            print(line)
