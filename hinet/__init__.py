"""HINet benchmark and ablation suite: the network, checkpoints, losses and complexity counts.

>>> import hinet
>>> model = hinet.HINet(hinet.preset("sidd-0.5x"))
>>> model = hinet.load("HINet-SIDD-1x.pth")  # official checkpoint, architecture inferred

The names below are imported on first use, so that light modules (``hinet.records``, ``hinet.errors``)
can be used without paying for importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"HINet": "arch", "count_parameters": "arch", "load": "checkpoint", "save": "checkpoint",
            "save_official": "checkpoint", "HINetConfig": "config", "PRESETS": "config", "preset": "config",
            "MPRNet": "mprnet", "MPRNetConfig": "mprnet", "MPRNET_PRESETS": "mprnet",
            "NAFNet": "nafnet", "NAFNetConfig": "nafnet", "NAFNET_PRESETS": "nafnet"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'hinet' has no attribute {name!r}")
