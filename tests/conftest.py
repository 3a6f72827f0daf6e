"""Shared test settings: CPU by default (``HINET_TEST_DEVICE`` picks another), few threads, fixed seeds."""

import os
from pathlib import Path

import pytest
import torch

FIXTURES = Path(__file__).parent / "fixtures"
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def device() -> torch.device:
    return torch.device(os.environ.get("HINET_TEST_DEVICE", "cpu"))


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
