"""pytest options and fixtures of the speed benchmarks; the timing helpers are in :mod:`benchmarks.speed.timing`."""

from __future__ import annotations

import os

import pytest

WIDTH64_ENV = "HINET_BENCH_WIDTH64"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--bench-width64", action="store_true", default=False,
                     help=f"also benchmark the width-64 network at 256x256 (or set {WIDTH64_ENV}=1)")
    parser.addoption("--model", action="append", default=[], metavar="NETWORK",
                     help="also compare this network with HINet (bench_methods): a name (hinet.models.NETWORKS) or "
                          "your own, package.module:callable; repeatable")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``peer``: the networks bench_methods compares with HINet: MPRNet and NAFNet, plus every ``--model``."""
    if "peer" in metafunc.fixturenames:
        peers = ["mprnet-sidd", "nafnet-sidd-width64", *metafunc.config.getoption("--model")]
        metafunc.parametrize("peer", peers, ids=peers)


@pytest.fixture(scope="session")
def width64(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--bench-width64")) or os.environ.get(WIDTH64_ENV, "") not in ("", "0")
