"""Checkpoints: load official HINet weights or ours, save ours atomically, export to the official format.

Official checkpoints are ``.pth`` files holding ``{'params': state_dict}`` (BasicSR) or a bare
state_dict, with the module names of ``megvii-model/HINet:basicsr/models/archs/hinet_arch.py``.
Ours hold ``{'format': FORMAT, 'config': HINetConfig.to_dict(), 'state_dict': ..., 'meta': {...}}``.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

from .arch import HINet
from .config import HINetConfig, preset

FORMAT = "hinet-suite/1"

# (official prefix, our prefix); the official network has exactly two stages joined by SAM (sam12/cat12).
_PREFIXES = [pair for k in (1, 2) for pair in (
    (f"down_path_{k}.", f"stages.{k - 1}.encoder."), (f"up_path_{k}.", f"stages.{k - 1}.decoder."),
    (f"skip_conv_{k}.", f"stages.{k - 1}.skips."), (f"conv_0{k}.", f"stages.{k - 1}.intro."))]
_PREFIXES += [("sam12.", "sams.0."), ("cat12.", "fuses.0."), ("last.", "head.")]


def _rename(key: str, pairs: list[tuple[str, str]]) -> str | None:
    """Replace the key's prefix by its counterpart, or None when no prefix of the table matches."""
    for old, new in pairs:
        if key.startswith(old):
            return new + key[len(old):]
    return None


def from_official(state: dict[str, torch.Tensor], source: str = "state_dict") -> dict[str, torch.Tensor]:
    """Rename an official state_dict's keys to ours; unknown keys raise naming the key and ``source``."""
    out = {}
    for key, value in state.items():
        new = _rename(key, _PREFIXES)
        if new is None:
            raise ValueError(f"{source}: key {key!r} is not part of the official HINet network")
        out[new] = value
    return out


def to_official(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename our state_dict to the official names (only for networks the official code can build)."""
    out = {}
    for key, value in state.items():
        new = _rename(key, [(ours, official) for official, ours in _PREFIXES])
        if new is None or ".extra." in key:
            raise ValueError(f"parameter {key!r} has no counterpart in the official HINet network")
        out[new] = value
    return out


def infer_config(state: dict[str, torch.Tensor], source: str = "state_dict") -> HINetConfig:
    """Infer width, depth, HIN levels and ratio, CSFF from an official state_dict's keys and shapes."""
    try:
        width, in_channels = state["conv_01.weight"].shape[:2]
    except KeyError:
        raise ValueError(f"{source}: no 'conv_01.weight'; not an official HINet state_dict") from None
    levels = sorted({int(m[1]) for k in state if (m := re.match(r"down_path_1\.(\d+)\.", k))})
    depth = len(levels)
    normed = {lvl: state[f"down_path_1.{lvl}.norm.weight"].shape[0]
              for lvl in levels if f"down_path_1.{lvl}.norm.weight" in state}
    cfg = dict(width=int(width), depth=depth, in_channels=int(in_channels),
               csff="down_path_2.0.csff_enc.weight" in state)
    if normed:
        left, right = min(normed), max(normed)
        if sorted(normed) != list(range(left, right + 1)):
            raise ValueError(f"{source}: normalised encoder levels {sorted(normed)} are not a contiguous range")
        fractions = {n / (width * 2**lvl) for lvl, n in normed.items()}
        if len(fractions) != 1:
            raise ValueError(f"{source}: normalised fraction differs between levels: {sorted(fractions)}")
        fraction = fractions.pop()
        batch = f"down_path_1.{left}.norm.running_mean" in state
        kind = "batch" if batch else ("instance" if fraction == 1.0 else "half_instance")
        default = {"batch": 1.0, "instance": 1.0, "half_instance": 0.5}[kind]
        cfg.update(norm=kind, norm_ratio=None if fraction == default else fraction,
                   norm_levels=None if (left, right) == (0, depth - 1) else (left, right))
    else:
        cfg["norm"] = "none"
    return HINetConfig(**cfg)


def _unwrap(obj: Any, source: str) -> tuple[dict[str, torch.Tensor], HINetConfig | None]:
    """Return (state_dict in our names, stored config or None) from a loaded checkpoint object."""
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        return obj["state_dict"], HINetConfig.from_dict(obj["config"])
    if isinstance(obj, dict):
        for key in ("params", "params_ema", "state_dict"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(torch.is_tensor(v) for v in obj.values()):
        raise ValueError(f"{source}: expected an official HINet checkpoint ({{'params': state_dict}} or a "
                         f"bare state_dict) or one saved by this suite")
    obj = {k.removeprefix("module."): v for k, v in obj.items()}  # DataParallel/DDP wrappers
    return obj, None


def load(path: str | os.PathLike, preset_name: str | None = None, *, config: HINetConfig | None = None,
         map_location: str | torch.device = "cpu") -> HINet:
    """Build a ready model (eval mode) from an official HINet checkpoint or one of ours.

    The architecture is taken from ``config``, else the preset, else the checkpoint (our stored config,
    or inferred from an official state_dict's shapes). Loading is strict: any missing or unexpected
    parameter raises a ``ValueError`` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    obj = torch.load(path, map_location=map_location, weights_only=True)
    state, stored = _unwrap(obj, str(path))
    official = stored is None
    if config is None and preset_name is not None:
        config = preset(preset_name)
    if config is None:
        config = stored if stored is not None else infer_config(state, str(path))
    if official:
        state = from_official(state, str(path))
    model = HINet(config)
    expected = model.state_dict()
    wrong = [f"{k}: {tuple(v.shape)} vs {tuple(expected[k].shape)}" for k, v in state.items()
             if k in expected and v.shape != expected[k].shape]
    if wrong:
        raise ValueError(f"{path}: weights do not fit {config}: shape mismatch (file vs model) {wrong[:4]}")
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{path}: weights do not fit {config}: missing {missing[:6]}"
                         f"{'...' if len(missing) > 6 else ''}, unexpected {unexpected[:6]}"
                         f"{'...' if len(unexpected) > 6 else ''}")
    return model.eval()


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """torch.save to a temp file in the same folder, fsync, then rename: a kill never leaves a torn file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save(model: HINet, path: str | os.PathLike, meta: dict | None = None) -> Path:
    """Save in our format (config travels with the weights)."""
    return atomic_save({"format": FORMAT, "config": model.cfg.to_dict(), "state_dict": model.state_dict(),
                        "meta": meta or {}}, path)


def save_official(model: HINet, path: str | os.PathLike) -> Path:
    """Save as ``{'params': state_dict}`` with official key names, loadable by the official code."""
    cfg = model.cfg
    if cfg.stages != 2 or not cfg.sam or not cfg.csff or cfg.norm not in ("half_instance", "none") \
            or cfg.fraction_normalized not in (0.0, 0.5) or cfg.extra_blocks:
        raise ValueError(f"{cfg} cannot be built by the official HINet code; save() it instead")
    return atomic_save({"params": to_official(model.state_dict())}, path)
