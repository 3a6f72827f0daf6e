"""pytest options and fixtures of the speed benchmarks; the timing helpers are in :mod:`benchmarks.speed.timing`."""

from __future__ import annotations

import os

import pytest

WIDTH64_ENV = "HINET_BENCH_WIDTH64"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--bench-width64", action="store_true", default=False,
                     help=f"also benchmark the width-64 network at 256x256 (or set {WIDTH64_ENV}=1)")


@pytest.fixture(scope="session")
def width64(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--bench-width64")) or os.environ.get(WIDTH64_ENV, "") not in ("", "0")
