"""Sessions for the HINet suite. ``nox -s tests`` and ``nox -s lint`` run by default.

Every session runs in one shared environment, ``.venv``, built from ``pyproject.toml`` on first use
and rebuilt only when that file changes: torch is several GB, and installing it once per session
would cost minutes of every CI run. Arguments after ``--`` reach pytest or the command.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint"]
ROOT = Path(__file__).parent
VENV = ROOT / ".venv"
PYTHON = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def shared_env(session: nox.Session) -> str:
    """Create or update .venv (editable install with the dev extras) and return its python."""
    stamp = VENV / ".pyproject-sha256"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not PYTHON.exists():
        session.run(sys.executable, "-m", "venv", str(VENV), external=True)
    if not stamp.exists() or stamp.read_text() != digest:
        session.run(str(PYTHON), "-m", "pip", "install", "-q", "-e", ".[dev]", external=True)
        stamp.write_text(digest)
    return str(PYTHON)


def run(session: nox.Session, *args: str) -> None:
    session.run(shared_env(session), *args, external=True)


@nox.session(venv_backend="none")
def tests(session: nox.Session) -> None:
    """Run the CPU test suite (GPU tests are skipped without CUDA)."""
    run(session, "-m", "hinet.perceptual", "--setup")  # LPIPS AlexNet trunk into the local cache, once
    # one pytest worker per core (pytest-xdist); each worker's torch uses one thread (tests/conftest.py)
    run(session, "-m", "pytest", *(session.posargs or ["tests", "-q", "-n", "auto"]))


@nox.session(venv_backend="none")
def lint(session: nox.Session) -> None:
    """Check style with ruff."""
    run(session, "-m", "ruff", "check", *(session.posargs or ["."]))


@nox.session(venv_backend="none", default=False)
def ablate(session: nox.Session) -> None:
    """Run an ablation grid (default: components on synthetic denoising, proxy scale), then the report."""
    run(session, "-m", "ablations", *session.posargs)


@nox.session(venv_backend="none", default=False)
def report(session: nox.Session) -> None:
    """Rebuild every table and figure under results/ from the records."""
    run(session, "-m", "hinet.report", *session.posargs)


@nox.session(venv_backend="none", default=False)
def tune(session: nox.Session) -> None:
    """Run (or resume) an Optuna study on a proxy recipe."""
    run(session, "-m", "hinet.tune", *session.posargs)


@nox.session(venv_backend="none", default=False)
def bench(session: nox.Session) -> None:
    """Run the pytest-benchmark speed suites and store their results as records."""
    run(session, "-m", "benchmarks.speed", *session.posargs)


@nox.session(venv_backend="none", default=False)
def gpu(session: nox.Session) -> None:
    """Run only the GPU-marked tests (needs CUDA)."""
    run(session, "-m", "pytest", "-m", "gpu", *(session.posargs or ["tests", "-q"]))
