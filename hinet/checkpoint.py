"""Checkpoints: load official HINet weights or ours, save ours atomically, export to the official format.

Official checkpoints are ``.pth`` files holding ``{'params': state_dict}`` (BasicSR) or a bare
state_dict, with the module names of ``megvii-model/HINet:basicsr/models/archs/hinet_arch.py``.
:func:`load` also reads the comparators' official checkpoints, told apart by their parameter names: MPRNet's
(``swz30/MPRNet``, ``{'epoch', 'state_dict', 'optimizer'}``, keys ``shallow_feat1...``; see :mod:`hinet.mprnet`)
and NAFNet's (``megvii-research/NAFNet``, BasicSR ``{'params': ...}`` with keys ``intro``, ``encoders`` ...; see
:mod:`hinet.nafnet`).
Ours hold ``{'format': FORMAT, 'config': HINetConfig.to_dict(), 'state_dict': ..., 'meta': {...}}``.
The trainer's resume file (``checkpoints/last.pth``) holds ``{'model': state_dict, 'optimizer': ..., 'step': int}``.

Every file is read with ``torch.load(weights_only=True)`` (tensors and plain containers only; a pickle cannot
run code). A missing, empty, truncated or foreign file, a stored config that does not validate, or weights
holding NaN/inf raise :class:`CheckpointError` (a :class:`hinet.errors.UserError`) with one line naming the
file (and the field or tensor). Saves go through :func:`hinet.atomic.atomic_write`: a kill or a full disk
leaves the previous file intact and names the path.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import torch

from .arch import HINet
from .atomic import atomic_write
from .config import HINetConfig, preset
from .errors import UserError
from .fields import StoredFieldError, check_stored
from .models import FactoryNetwork, NetworkConfig, build_network, network_from_dict, network_to_dict
from .mprnet import MPRNET_PRESETS, MPRNet, MPRNetConfig, is_mprnet_state
from .mprnet import infer_config as infer_mprnet_config
from .nafnet import NAFNET_PRESETS, NAFNet, NAFNetConfig, is_nafnet_state
from .nafnet import infer_config as infer_nafnet_config


class CheckpointError(UserError, ValueError):
    """A checkpoint file is unreadable, corrupt, foreign or does not fit the network; the message names it."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint path does not exist."""


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
            raise CheckpointError(f"{source}: key {key!r} is not part of the official HINet network")
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
        raise CheckpointError(f"{source}: no 'conv_01.weight'; not an official HINet state_dict") from None
    levels = sorted({int(m[1]) for k in state if (m := re.match(r"down_path_1\.(\d+)\.", k))})
    depth = len(levels)
    normed = {lvl: state[f"down_path_1.{lvl}.norm.weight"].shape[0]
              for lvl in levels if f"down_path_1.{lvl}.norm.weight" in state}
    cfg = dict(width=int(width), depth=depth, in_channels=int(in_channels),
               csff="down_path_2.0.csff_enc.weight" in state)
    if normed:
        left, right = min(normed), max(normed)
        if sorted(normed) != list(range(left, right + 1)):
            raise CheckpointError(f"{source}: normalised encoder levels {sorted(normed)} are not a contiguous range")
        fractions = {n / (width * 2**lvl) for lvl, n in normed.items()}
        if len(fractions) != 1:
            raise CheckpointError(f"{source}: normalised fraction differs between levels: {sorted(fractions)}")
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
        state = obj.get("state_dict")
        if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
            raise CheckpointError(f"{source}: no 'state_dict' of tensors beside format {FORMAT!r}")
        return state, stored_config(obj.get("config"), source)
    if isinstance(obj, dict):
        for key in ("params", "params_ema", "state_dict"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(torch.is_tensor(v) for v in obj.values()):
        raise CheckpointError(f"{source}: expected an official HINet, MPRNet or NAFNet checkpoint ({{'params': "
                              f"state_dict}}, {{'state_dict': ...}} or a bare state_dict) or one saved by this suite")
    obj = {k.removeprefix("module."): v for k, v in obj.items()}  # DataParallel/DDP wrappers
    return obj, None


def stored_config(data: Any, source: str) -> NetworkConfig:
    """The network config stored in one of our checkpoints (with its ``arch``: :func:`hinet.models.network_to_dict`;
    without one, a HINet config as the suite first stored them); errors name ``source`` and the field."""
    if isinstance(data, dict) and "arch" in data:
        try:
            return network_from_dict(data, f"{source}: stored config")
        except ValueError as err:
            raise CheckpointError(str(err)) from None
    try:
        return HINetConfig(**check_stored(HINetConfig, data, f"{source}: stored config"))
    except StoredFieldError as err:
        raise CheckpointError(str(err)) from None
    except ValueError as err:  # the config's own validation: "HINetConfig.<field>=<value>: ..."
        raise CheckpointError(f"{source}: stored config: {err}") from None


# ----------------------------------------------------------------------------------------------- reading
def _first_sentence(text: str) -> str:
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return line.split(". ")[0].rstrip(".")


def _load_failure(path: Path, err: BaseException) -> CheckpointError:
    """One line for an exception of ``torch.load``, without torch's advice to retry with weights_only=False."""
    if isinstance(err, EOFError):
        return CheckpointError(f"{path}: truncated checkpoint (the data end early)")
    if isinstance(err, pickle.UnpicklingError):
        detail = str(err.__context__ or err)  # torch puts the unpickler's reason in the context
        found = re.search(r"GLOBAL ([\w.]+)", detail)
        if found:
            return CheckpointError(f"{path}: holds a Python object ({found[1]}) that a safe (weights-only) load "
                                   "refuses; expected tensors in dicts/lists, as torch.save of a state_dict writes")
        return CheckpointError(f"{path}: not a PyTorch checkpoint (cannot be unpickled: {_first_sentence(detail)})")
    if isinstance(err, UnicodeDecodeError):  # torch's legacy reader decodes random leading bytes as text
        return CheckpointError(f"{path}: not a PyTorch checkpoint (neither a zip archive nor a pickle)")
    if isinstance(err, IsADirectoryError):
        return CheckpointError(f"{path}: is a folder; expected a checkpoint file (.pth)")
    if isinstance(err, OSError):  # the file opened fine (read_checkpoint tried): torch seeked to a bogus offset
        return CheckpointError(f"{path}: truncated or corrupt checkpoint (torch.load: {err.strerror or err})")
    reason = _first_sentence(str(err))
    if "weights_only" in reason:
        reason = "torch.load refused it"
    if re.search(r"PytorchStreamReader|zip archive|EOF|corrupt", reason, re.IGNORECASE):
        return CheckpointError(f"{path}: truncated or corrupt checkpoint ({reason})")
    return CheckpointError(f"{path}: cannot load the checkpoint: {reason}")


def read_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with one-line :class:`CheckpointError` messages naming the file."""
    path = Path(path)
    if not path.exists():
        raise CheckpointNotFoundError(f"checkpoint {path} does not exist")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder; expected a checkpoint file (.pth)")
    try:
        with open(path, "rb") as fh:
            if not fh.read(1):
                raise CheckpointError(f"{path}: empty file (0 bytes); expected a checkpoint")
    except OSError as err:
        raise CheckpointError(f"{path}: cannot read: {err.strerror or err}") from None
    try:
        with warnings.catch_warnings():  # foreign pickles make the weights-only unpickler warn before failing
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            return torch.load(path, map_location=map_location, weights_only=True)
    except (OSError, EOFError, pickle.UnpicklingError, RuntimeError, ValueError) as err:
        raise _load_failure(path, err) from None
    except (IndexError, KeyError, TypeError, AttributeError, MemoryError, OverflowError) as err:
        # torch's weights-only unpickler fails on arbitrary bytes with whatever its opcode loop hits
        raise CheckpointError(f"{path}: not a PyTorch checkpoint (cannot be unpickled: "
                              f"{type(err).__name__})") from None


def _tensors(obj: Any, label: str) -> Iterator[tuple[str, torch.Tensor]]:
    """Every tensor inside nested dicts/lists/tuples, with a label such as ``optimizer['state'][3]['exp_avg']``."""
    if torch.is_tensor(obj):
        yield label, obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from _tensors(value, f"{label}[{key!r}]" if label else repr(key))
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield from _tensors(value, f"{label}[{i}]")


def check_finite(obj: Any, source: str, label: str = "") -> None:
    """Raise :class:`CheckpointError` naming ``source`` and the first tensor holding NaN or inf values."""
    for name, t in _tensors(obj, label):
        if (t.is_floating_point() or t.is_complex()) and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise CheckpointError(f"{source}: tensor {name} holds {bad} NaN/inf value(s) of {t.numel()}; the file is "
                                  "damaged or was saved from a run that diverged")


# The comparators, told apart from HINet by their parameter names: (test, network, config class, infer, presets).
_COMPARATORS = [(is_mprnet_state, MPRNet, MPRNetConfig, infer_mprnet_config, MPRNET_PRESETS),
                (is_nafnet_state, NAFNet, NAFNetConfig, infer_nafnet_config, NAFNET_PRESETS)]


def load(path: str | os.PathLike, preset_name: str | None = None, *,
         config: HINetConfig | MPRNetConfig | NAFNetConfig | None = None,
         map_location: str | torch.device = "cpu") -> HINet | MPRNet | NAFNet:
    """Build a ready model (eval mode) from an official HINet, MPRNet or NAFNet checkpoint or one of ours.

    The architecture is taken from ``config``, else the preset (``hinet.PRESETS``, ``MPRNET_PRESETS``,
    ``NAFNET_PRESETS``), else the checkpoint (our stored config, or inferred from an official state_dict's
    shapes). Loading is strict: any missing or unexpected parameter, an unreadable file, an invalid stored
    config or a NaN/inf weight raises a :class:`CheckpointError` (a ``ValueError``;
    :class:`CheckpointNotFoundError`, also a ``FileNotFoundError``, for a missing path) naming the file.
    """
    path = Path(path)
    obj = read_checkpoint(path, map_location)
    state, stored = _unwrap(obj, str(path))
    check_finite(state, str(path))
    official = stored is None
    comparator = next((c for c in _COMPARATORS if c[0](state)), None) if official else None
    if comparator is not None:
        _, network, config_class, infer, presets = comparator
        if config is None and preset_name is not None:
            if preset_name not in presets:
                raise CheckpointError(f"{path}: holds {network.__name__} weights; preset {preset_name!r} is not one of "
                                      f"{sorted(presets)}")
            config = presets[preset_name]
        if config is None:
            try:
                config = infer(state, str(path))
            except ValueError as err:
                raise CheckpointError(str(err) if str(path) in str(err) else f"{path}: {err}") from None
        if not isinstance(config, config_class):
            raise CheckpointError(f"{path}: holds {network.__name__} weights; config must be a "
                                  f"{config_class.__name__}, got {type(config).__name__}")
        return _load_weights(network(config), state, path)
    if config is None and preset_name is not None:
        config = preset(preset_name)
    if config is None:
        config = stored if stored is not None else infer_config(state, str(path))
    if not isinstance(config, HINetConfig):  # an MPRNet, a NAFNet or a user's network
        model = build_network(config)
        if isinstance(model, FactoryNetwork) and not all(k.startswith("net.") for k in state):
            state = {f"net.{k}": v for k, v in state.items()}  # the user's own state_dict of the bare module
        return _load_weights(model, state, path)
    if official:
        state = from_official(state, str(path))
    return _load_weights(HINet(config), state, path)


def _load_weights(model: torch.nn.Module, state: dict[str, torch.Tensor], path: Path) -> torch.nn.Module:
    """Load ``state`` strictly into ``model`` (eval mode); misfits raise naming the file and ``model.cfg``."""
    config = model.cfg
    expected = model.state_dict()
    wrong = [f"{k}: {tuple(v.shape)} vs {tuple(expected[k].shape)}" for k, v in state.items()
             if k in expected and v.shape != expected[k].shape]
    if wrong:
        raise CheckpointError(f"{path}: weights do not fit {config}: shape mismatch (file vs model) {wrong[:4]}")
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{path}: weights do not fit {config}: missing {missing[:6]}"
                         f"{'...' if len(missing) > 6 else ''}, unexpected {unexpected[:6]}"
                         f"{'...' if len(unexpected) > 6 else ''}")
    return model.eval()


class _WriteErrorKeeper:
    """The file object torch.save writes to, keeping the first OSError of a write: torch's zip writer turns it
    into a RuntimeError ("unexpected pos 704 vs 598") that no longer says the disk is full."""

    def __init__(self, fh: IO[bytes]) -> None:
        self._fh, self.error = fh, None

    def write(self, data: bytes) -> int:
        try:
            return self._fh.write(data)
        except OSError as err:
            self.error = self.error or err
            raise

    def flush(self) -> None:
        self._fh.flush()


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """torch.save through :func:`hinet.atomic.atomic_write`: temp file beside ``path``, fsync, rename.

    A kill never leaves a torn file (temp files of killed saves are removed by the next save); the file gets
    the mode the umask allows; a full disk raises :class:`hinet.atomic.OutputError`
    (``<path>: cannot write: No space left on device ...``) and leaves the previous file intact.
    """

    def write(fh: IO[bytes]) -> None:
        keeper = _WriteErrorKeeper(fh)
        try:
            torch.save(obj, keeper)
        except RuntimeError:
            if keeper.error is not None:
                raise keeper.error from None
            raise

    return atomic_write(path, write)


def load_training_state(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read the trainer's resume file ``{'model': state_dict, 'optimizer': state, 'step': int}``, validated.

    Raises :class:`CheckpointError` naming the file when it is unreadable, lacks an entry, or holds NaN/inf.
    """
    path = Path(path)
    state = read_checkpoint(path, map_location)
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a training state {{'model', 'optimizer', 'step'}}, "
                              f"found {type(state).__name__}")
    missing = [k for k in ("model", "optimizer", "step") if k not in state]
    if missing:
        raise CheckpointError(f"{path}: not a training state: no {missing} entry; expected 'model', 'optimizer', "
                              "'step' (as hinet.train writes checkpoints/last.pth)")
    model = state["model"]
    if not isinstance(model, dict) or not model or not all(torch.is_tensor(v) for v in model.values()):
        raise CheckpointError(f"{path}: 'model' is not a state_dict of tensors")
    if not isinstance(state["optimizer"], dict):
        raise CheckpointError(f"{path}: 'optimizer' is not an optimizer state_dict")
    step = state["step"]
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise CheckpointError(f"{path}: 'step' is {step!r}; expected a non-negative integer")
    check_finite(model, str(path), "model")
    check_finite(state["optimizer"], str(path), "optimizer")
    return state


def restore_training_state(path: str | os.PathLike, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                           map_location: str | torch.device = "cpu") -> int:
    """Load the resume file into ``model`` and ``optimizer``; returns the step to continue from.

    A state that does not fit the network or optimizer (another config in the same run folder) raises
    :class:`CheckpointError` naming the file and the first keys that differ.
    """
    path = Path(path)
    state = load_training_state(path, map_location)
    missing, unexpected = [], []
    expected = model.state_dict()
    wrong = [f"{k}: {tuple(v.shape)} vs {tuple(expected[k].shape)}" for k, v in state["model"].items()
             if k in expected and v.shape != expected[k].shape]
    if not wrong:
        missing = sorted(set(expected) - set(state["model"]))
        unexpected = sorted(set(state["model"]) - set(expected))
    if wrong or missing or unexpected:
        detail = f"shape mismatch (file vs model) {wrong[:4]}" if wrong else \
            f"missing {missing[:6]}, unexpected {unexpected[:6]}"
        raise CheckpointError(f"{path}: the saved model does not fit this run's network: {detail}")
    model.load_state_dict(state["model"])
    try:
        optimizer.load_state_dict(state["optimizer"])
    except (ValueError, KeyError, RuntimeError) as err:
        raise CheckpointError(f"{path}: the saved optimizer state does not fit: {_first_sentence(str(err))}") from None
    return int(state["step"])


def save(model: torch.nn.Module, path: str | os.PathLike, meta: dict | None = None) -> Path:
    """Save in our format: the network's config (with its ``arch``) travels with the weights."""
    return atomic_save({"format": FORMAT, "config": network_to_dict(model.cfg), "state_dict": model.state_dict(),
                        "meta": meta or {}}, path)


def save_official(model: HINet, path: str | os.PathLike) -> Path:
    """Save as ``{'params': state_dict}`` with official key names, loadable by the official code."""
    cfg = model.cfg
    if cfg.stages != 2 or not cfg.sam or not cfg.csff or cfg.norm not in ("half_instance", "none") \
            or cfg.fraction_normalized not in (0.0, 0.5) or cfg.extra_blocks:
        raise ValueError(f"{cfg} cannot be built by the official HINet code; save() it instead")
    return atomic_save({"params": to_official(model.state_dict())}, path)
