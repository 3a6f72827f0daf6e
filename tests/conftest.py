"""Shared test settings: CPU, few threads; tests marked ``gpu`` are skipped without CUDA."""

import contextlib
import importlib
import io
import os
import subprocess
from pathlib import Path

import pytest
import torch

FIXTURES = Path(__file__).parent / "fixtures"
# two threads, or one per pytest-xdist worker (a worker per core: ``nox -s tests`` runs ``-n auto``)
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else min(2, os.cpu_count() or 1))


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def in_process(module: str, argv: list[str], entry: str = "main") -> subprocess.CompletedProcess:
    """``python -m <module> <argv>`` run in this process: the module's ``entry(argv)`` (what its ``__main__`` calls:
    ``main``, or ``command`` where that wraps user errors into one line) with stdout/stderr captured, on
    one torch thread (as the tests' real processes run, ``OMP_NUM_THREADS=1``). It saves a process start (torch,
    pandas and the rest imported again) per command; tests of kills, locks, signals and process pools keep real
    processes."""
    main = getattr(importlib.import_module(module), entry)
    out, err, threads = io.StringIO(), io.StringIO(), torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    except SystemExit as stop:  # argparse usage errors
        code = stop.code if isinstance(stop.code, int) else 1
    finally:
        torch.set_num_threads(threads)
    return subprocess.CompletedProcess([module, *argv], code or 0, out.getvalue(), err.getvalue())
