"""What a benchmark command writes: the ``--json`` summary (strict JSON, written atomically) and the
checkpoint-evaluation records (family :data:`CHECKPOINT_EVAL`).
"""

from __future__ import annotations

import argparse
import json
import math
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..evaluate import SetResult
from ..records import Record, config_hash, environment, make_records, utc_now
from ..tasks import CHECKPOINT_EVAL, real_name
from .specs import SYNTHETIC_NOTE, Benchmark, Method, Reference

DEFAULT_RECORDS = Path("results/records") / f"{CHECKPOINT_EVAL}.jsonl"

def summary(bench: Benchmark, method: Method, rows: Sequence[SetResult], refs: Mapping[str, Sequence[Reference]] | None,
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


def records_for(bench: Benchmark, method: Method, rows: Sequence[SetResult], args: argparse.Namespace,
                git: tuple[str, bool]) -> list[Record]:
    """One Record per (row, metric): family :data:`CHECKPOINT_EVAL`, variant = the method, dataset = the
    test set, protocol = the scoring protocol (``+tta8`` with --tta), recipe ``eval``, or ``eval-subset``
    when --limit cut a set short. A non-finite metric raises ValueError naming it."""
    env = environment(args.device)
    run_id = f"{CHECKPOINT_EVAL}-{bench.name}-{utc_now().replace(':', '')}-{uuid.uuid4().hex[:8]}"
    chash = config_hash({"benchmark": bench.name, "method": method.name, "weights": method.weights,
                         "configs": method.configs, "tta": bool(args.tta)})
    out = []
    common = dict(run_id=run_id, family=CHECKPOINT_EVAL, variant=method.name, step=None, seed=None, git_commit=git[0],
                  git_dirty=git[1], config_hash=chash, device=env["device"], torch_version=env["torch_version"])
    for r in rows:
        for metric, value in r.metrics.items():
            _check_finite(value, f"{method.name} on {r.dataset}, {r.protocol}, {metric}")
        out += make_records(common, r.metrics, dataset=r.dataset, split=bench.splits.get(real_name(r.dataset), "test"),
                            protocol=r.protocol + ("+tta8" if args.tta else ""), synthetic=r.synthetic,
                            recipe="eval" if r.count == r.total else "eval-subset")
    return out


def _check_finite(value: Any, where: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where}: value {value} is not finite (e.g. PSNR of an image identical to its target); "
                         f"expected a finite number, nothing was written")


def _check_document(obj: Any, where: str) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            _check_document(v, f"{where}.{k}")
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            _check_document(v, f"{where}[{i}]")
    else:
        _check_finite(obj, where)


def summary_json(doc: dict[str, Any]) -> str:
    """``doc`` (:func:`summary`) as strict JSON text (``allow_nan=False``, indent 2, final newline).

    A NaN or infinity raises ValueError naming the method (checkpoint), test set, protocol and metric
    (e.g. ``json summary of 'sidd': results[0] (SIDD, denoise/official).metrics.psnr: value inf ...``);
    no ``NaN``/``Infinity`` ever reaches a file.
    """
    for i, item in enumerate(doc.get("results", [])):
        _check_document(item, f"json summary of {doc.get('method')!r}: results[{i}] "
                              f"({item.get('dataset')}, {item.get('protocol')})")
    _check_document({k: v for k, v in doc.items() if k != "results"}, f"json summary of {doc.get('method')!r}")
    return json.dumps(doc, indent=2, allow_nan=False) + "\n"
