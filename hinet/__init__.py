"""HINet benchmark and ablation suite: the network, checkpoints, losses and complexity counts.

>>> import hinet
>>> model = hinet.HINet(hinet.preset("sidd-0.5x"))
>>> model = hinet.load("HINet-SIDD-1x.pth")  # official checkpoint, architecture inferred
"""

from .arch import HINet, count_parameters
from .checkpoint import load, save, save_official
from .config import PRESETS, HINetConfig, preset

__all__ = ["HINet", "HINetConfig", "PRESETS", "preset", "load", "save", "save_official", "count_parameters"]
