"""Scoring checkpoints on the published test sets: the library behind ``python -m benchmarks.sidd |
benchmarks.gopro | benchmarks.rain13k`` (those modules only pick a :class:`Benchmark` and call
:func:`~hinet.benchmark.cli.main`).

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
Outputs: the printed table, ``--json`` (a summary; strict JSON written atomically, a non-finite value is an
error naming the method, set, protocol and metric), ``--records`` (tidy :class:`hinet.records.Record`
lines, family ``checkpoint_eval``, recipe ``eval``, or ``eval-subset`` when ``--limit`` cut a set short;
default ``results/records/checkpoint_eval.jsonl``) and ``--save-images`` (PNG folders ``input/``,
``target/``, ``<method>/`` as read by :func:`hinet.report.comparison_grid`).

Modules: :mod:`~hinet.benchmark.specs` (what is scored), :mod:`~hinet.benchmark.scoring` (loading,
protocols, evaluation, averages, published references), :mod:`~hinet.benchmark.formatting` (table and
notes), :mod:`~hinet.benchmark.results` (JSON summary and records), :mod:`~hinet.benchmark.cli` (options
and the run), :mod:`~hinet.benchmark.submission` (the SIDD server submission).
"""

from __future__ import annotations

from .cli import build_parser, check_args, main, run
from .results import CHECKPOINT_EVAL, DEFAULT_RECORDS, records_for, summary, summary_json
from .scoring import load_method, published_references, selected_protocols
from .specs import GOPRO, RAIN13K, SIDD, Benchmark, Method, Reference

__all__ = ["CHECKPOINT_EVAL", "DEFAULT_RECORDS", "GOPRO", "RAIN13K", "SIDD", "Benchmark", "Method", "Reference",
           "build_parser", "check_args", "load_method", "main", "published_references", "records_for",
           "run", "selected_protocols", "summary", "summary_json"]
