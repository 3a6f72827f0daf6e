"""Checkpoint files on disk: atomic saves (full disk, killed saves, umask), safe loads, the trainer's resume file."""

from __future__ import annotations

import errno
import io
import os
import stat
from pathlib import Path

import pytest
import torch

import hinet
from hinet.atomic import OutputError
from hinet.checkpoint import (
    FORMAT,
    CheckpointError,
    atomic_save,
    load_training_state,
    read_checkpoint,
    restore_training_state,
)
from hinet.config import PRESETS, scaled
from hinet.errors import USER_ERRORS, UserError

TINY = scaled(PRESETS["sidd-1x"], width=4, depth=2)


def tiny_model(seed: int = 0) -> hinet.HINet:
    torch.manual_seed(seed)
    return hinet.HINet(TINY)


class _FullDisk:
    """A file object that accepts ``capacity`` bytes, then fails every write with ENOSPC, as a full disk does."""

    def __init__(self, real: io.BufferedWriter, capacity: int) -> None:
        self._real, self._left = real, capacity

    def write(self, data) -> int:
        data = bytes(data)
        if len(data) > self._left:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._left -= len(data)
        return self._real.write(data)

    def flush(self) -> None:
        self._real.flush()

    def fileno(self) -> int:
        return self._real.fileno()

    def __enter__(self) -> _FullDisk:
        return self

    def __exit__(self, *exc) -> None:
        self._real.close()


def _fill_disk_after(monkeypatch, capacity: int) -> None:
    real_fdopen = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda fd, *a, **k: _FullDisk(real_fdopen(fd, *a, **k), capacity))


def test_full_disk_names_the_file_and_keeps_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / "ckpt" / "model.pth"
    hinet.save(tiny_model(0), path)
    before = path.read_bytes()
    _fill_disk_after(monkeypatch, 4096)
    with pytest.raises(OutputError) as exc:
        hinet.save(tiny_model(1), path)
    message = str(exc.value)
    assert message.startswith(f"{path}: cannot write: No space left on device"), message
    assert "unexpected pos" not in message and isinstance(exc.value, UserError)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.pth"]  # no temp file left


def test_full_disk_on_a_training_state(tmp_path, monkeypatch):
    path = tmp_path / "last.pth"
    _fill_disk_after(monkeypatch, 100)
    with pytest.raises(OutputError, match="No space left on device"):
        atomic_save({"model": tiny_model().state_dict(), "optimizer": {}, "step": 1}, path)
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


def test_a_killed_save_leaves_a_temp_file_that_the_next_save_removes(tmp_path):
    path = tmp_path / "model.pth"
    import socket
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()  # the pid of a writer that is gone
    stale = tmp_path / f".model.pth.{socket.gethostname().split('.')[0]}.{dead}-abc123.tmp"
    stale.write_bytes(b"half a checkpoint")  # what a SIGKILL between write and rename leaves
    hinet.save(tiny_model(), path)
    assert not stale.exists() and hinet.load(path).cfg == TINY


def test_saved_files_honour_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_save({"a": torch.ones(2)}, tmp_path / "x.pth")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "x.pth").stat().st_mode) == 0o640


def _model_file(tmp_path: Path, **changes) -> Path:
    model = tiny_model()
    obj = {"format": FORMAT, "config": model.cfg.to_dict(), "state_dict": model.state_dict(), "meta": {}}
    for key, value in changes.items():
        if key == "config":
            obj["config"] = {**obj["config"], **value}
        else:
            obj[key] = value
    path = tmp_path / "bad.pth"
    torch.save(obj, path)
    return path


@pytest.mark.parametrize(("config", "field"), [
    ({"width": -4}, "width"),
    ({"csff": "no"}, "csff"),
    ({"norm": "layer"}, "norm"),
    ({"norm_levels": [0, 9]}, "norm_levels"),
    ({"wf": 4}, "wf"),
])
def test_an_invalid_stored_config_names_file_and_field(tmp_path, config, field):
    path = _model_file(tmp_path, config=config)
    with pytest.raises(CheckpointError) as exc:
        hinet.load(path)
    message = str(exc.value)
    assert str(path) in message and field in message and "stored config" in message, message


def test_non_finite_weights_name_the_checkpoint_and_the_tensor(tmp_path):
    model = tiny_model()
    state = model.state_dict()
    first, second = [k for k, v in state.items() if v.is_floating_point()][3:5]
    state[first][0] = float("nan")
    state[second].view(-1)[0] = float("inf")
    path = tmp_path / "nan.pth"
    torch.save({"format": FORMAT, "config": model.cfg.to_dict(), "state_dict": state, "meta": {}}, path)
    with pytest.raises(CheckpointError) as exc:
        hinet.load(path)
    message = str(exc.value)
    assert str(path) in message and repr(first) in message and "NaN/inf" in message and second not in message


def test_unsafe_pickles_are_refused_without_the_weights_only_advice(tmp_path):
    import numpy as np

    path = tmp_path / "numpy.pth"
    torch.save({"params": {"w": np.ones(3)}}, path)  # a numpy array needs a global the safe loader refuses
    with pytest.raises(CheckpointError) as exc:
        read_checkpoint(path)
    message = str(exc.value)
    assert str(path) in message and "numpy" in message and "weights_only=False" not in message
    assert "weights_only` set to `False" not in message and "\n" not in message


def _training_state(tmp_path: Path, **changes) -> Path:
    model = tiny_model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.rand(1, 3, 8, 8))[-1].mean().backward()
    opt.step()
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": 7, **changes}
    path = tmp_path / "checkpoints" / "last.pth"
    atomic_save(state, path)
    return path


def test_resume_state_round_trip(tmp_path):
    path = _training_state(tmp_path)
    model = tiny_model(5)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    assert restore_training_state(path, model, opt) == 7
    saved = load_training_state(path)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), saved["model"].values()))
    assert opt.state_dict()["state"][0]["step"] == saved["optimizer"]["state"][0]["step"]


@pytest.mark.parametrize(("damage", "words"), [
    ("truncate", ["truncated or corrupt"]),
    ("empty", ["empty file"]),
    ("garbage", ["not a PyTorch checkpoint"]),
    ("no-step", ["'step'"]),
    ("negative-step", ["'step' is -1"]),
    ("nan-optimizer", ["optimizer", "NaN/inf"]),
    ("list", ["expected a training state"]),
])
def test_a_damaged_resume_file_is_one_line_naming_it(tmp_path, damage, words):
    path = _training_state(tmp_path)
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "garbage":
        path.write_bytes(os.urandom(200))
    elif damage == "no-step":
        state = torch.load(path, weights_only=True)
        del state["step"]
        torch.save(state, path)
    elif damage == "negative-step":
        state = torch.load(path, weights_only=True)
        torch.save({**state, "step": -1}, path)
    elif damage == "nan-optimizer":
        state = torch.load(path, weights_only=True)
        state["optimizer"]["state"][0]["exp_avg"].view(-1)[0] = float("nan")
        torch.save(state, path)
    elif damage == "list":
        torch.save([1, 2], path)
    with pytest.raises(CheckpointError) as exc:
        load_training_state(path)
    message = str(exc.value)
    assert str(path) in message and "\n" not in message and all(w in message for w in words), message
    assert isinstance(exc.value, USER_ERRORS)


def test_a_resume_file_of_another_network_names_the_file(tmp_path):
    path = _training_state(tmp_path)
    other = hinet.HINet(scaled(PRESETS["sidd-1x"], width=6, depth=2))
    with pytest.raises(CheckpointError, match=r"last\.pth: the saved model does not fit this run's network"):
        restore_training_state(path, other, torch.optim.Adam(other.parameters()))
