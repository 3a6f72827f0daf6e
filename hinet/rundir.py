"""A run directory: its stored spec, the lock held while it trains, and the rules for starting or resuming it.

    config.json            the resolved run spec + environment and git commit
    checkpoints/last.pth   model, optimiser, step (written atomically: temp file, fsync, rename)
    done.json              written last: final validation metrics; a run with it is never repeated
    lock                   held (``flock``) by the one process that trains the run
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from pathlib import Path

from . import records as rec
from .atomic import atomic_write_text, ensure_dir, output_error
from .errors import UserError
from .spec import RunSpec, rec_message


class RunConflictError(UserError, RuntimeError):
    """The run directory holds a different run, or a run that needs ``--resume``."""


CONFIG, DONE, CHECKPOINT = "config.json", "done.json", Path("checkpoints") / "last.pth"


def stored_spec(run_dir: Path) -> dict:
    path = run_dir / CONFIG
    try:
        return json.loads(path.read_text())["spec"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as err:
        raise RunConflictError(f"{path}: unreadable run config ({rec_message(err)}); delete {run_dir} to start "
                               f"the run again") from None


def prepare_dir(run_dir: Path, spec: RunSpec, resume: bool) -> bool:
    """Validate the run directory. Returns True when a checkpoint should be resumed."""
    ckpt = run_dir / CHECKPOINT
    if (run_dir / CONFIG).exists():
        theirs = rec.config_hash(stored_spec(run_dir))
        mine = rec.config_hash(spec.to_dict())
        if theirs != mine:
            raise RunConflictError(f"{run_dir} holds another run (config hash {theirs}, this one {mine}); "
                                   f"choose another --run-dir or delete that directory")
        if ckpt.exists() and not resume and not (run_dir / DONE).exists():
            raise RunConflictError(f"{run_dir} holds a started run of this spec; pass --resume to continue it")
        return ckpt.exists()
    if resume and ckpt.exists():
        raise RunConflictError(f"{run_dir} has a checkpoint but no {CONFIG}; delete the folder to start again")
    if resume:
        raise RunConflictError(f"--resume {run_dir}: holds no run (no {CONFIG}); check the path, or drop --resume "
                               f"to start a new run there")
    return False


class RunLock:
    """``<run_dir>/lock``, held with ``flock`` by the one process that trains the run (rank 0), released when
    it ends (also by a kill: the kernel drops the lock). A second process is refused with one line."""

    def __init__(self, run_dir: Path):
        self.path, self.fd = run_dir / "lock", None

    def acquire(self) -> None:
        if self.fd is not None:
            return
        ensure_dir(self.path.parent)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as err:
            raise output_error(self.path, err, "cannot create the run's lock") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise RunConflictError(f"{self.path.parent} is being trained by another process ({holder}); wait for "
                                   f"it to end or choose another --run-dir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{socket.gethostname()} pid {os.getpid()}\n".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the flock
            self.fd = None


def write_config(run_dir: Path, spec: RunSpec, env: dict) -> None:
    body = {"spec": spec.to_dict(), "config_hash": rec.config_hash(spec.to_dict()), **env}
    atomic_write_text(run_dir / CONFIG, json.dumps(body, indent=2, sort_keys=True))
