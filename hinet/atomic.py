"""Writes that a kill, a crash or a full disk can interrupt without losing the previous file.

Every file the suite writes whole (checkpoints, ``config.json``, ``done.json``, ``--json`` summaries,
report tables and figures, per-image result files) goes through :func:`atomic_write`: the new content is
written to a temp file beside the target (``.<name>.<host>.<pid>-<random>.tmp<suffix>``), flushed and fsynced,
given the mode the umask allows, then renamed over the target.
A reader sees the old file or the new one, never a torn one. Temp files left by an interrupted earlier
write (a SIGKILL between write and rename) are removed by the next write of the same target, or of any
file in the same folder when their writer was a process of this host that is gone; a temp file whose
writer is still alive (another worker writing the same report) is left alone.

Failures name the path: an unwritable folder or a full disk raises :class:`OutputError` (a
:class:`hinet.errors.UserError`), whose message says which file could not be written and why, and the
previous file is left as it was.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from .errors import UserError


class OutputError(UserError, OSError):
    """An output file or folder could not be written (permissions, full disk, a file in the way)."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def output_error(path: str | os.PathLike, err: OSError, what: str = "cannot write") -> OutputError:
    """An :class:`OutputError` naming ``path`` and the reason (``No space left on device``, ...)."""
    reason = os.strerror(err.errno) if err.errno else str(err)
    if err.errno == errno.ENOSPC:
        reason += " (the previous file, if any, is intact)"
    return OutputError(f"{path}: {what}: {reason}")


STALE_AFTER_S = 3600.0  # a temp file of another host (shared file system) is stale after this


def _tag() -> str:
    """``<host>.<pid>-<random>``: who is writing a temp file (so no writer removes a live one)."""
    return f"{socket.gethostname().split('.')[0]}.{os.getpid()}-{os.urandom(4).hex()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_stale(tmp: Path, name: str) -> bool:
    """A temp file is stale when its writer is gone: a dead pid on this host, or (another host, or a name
    without a writer tag) older than :data:`STALE_AFTER_S`."""
    # ".<name>.<host>.<pid>-<rand>.tmp<suffix>" (replacing) or ".<name>.<host>.<pid>-<rand>.<mkstemp>.tmp"
    # (atomic_write): the writer's tag is what follows the target's name, whatever comes after it
    tag = re.match(r"(?P<host>[^.]+)\.(?P<pid>\d+)-[0-9a-f]+\.", tmp.name[len(name) + 2:])
    if tag is not None and tag["host"] == socket.gethostname().split(".")[0]:
        return not _alive(int(tag["pid"]))
    try:
        return time.time() - tmp.stat().st_mtime > STALE_AFTER_S
    except OSError:
        return False


def stale_temp_files(path: str | os.PathLike) -> list[Path]:
    """Temp files that earlier, interrupted writes of ``path`` left behind (never a live writer's)."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    return sorted(p for p in path.parent.glob(f".{path.name}.*.tmp*") if _is_stale(p, path.name))


_TAGGED = re.compile(r"^\..+\.(?P<host>[^.]+)\.(?P<pid>\d+)-[0-9a-f]{8}\.(?:[A-Za-z0-9_]+\.tmp|tmp)")


def dead_writer_temp_files(folder: str | os.PathLike) -> list[Path]:
    """Temp files in ``folder`` of any target whose writer was a process of this host that is gone: a kill
    during the write of another file (the per-image file of another step, an earlier checkpoint) is cleaned
    by the next write into the folder, not only by the next write of the same file."""
    host = socket.gethostname().split(".")[0]
    out = []
    for tmp in Path(folder).glob(".*.tmp*"):
        m = _TAGGED.match(tmp.name)
        if m is not None and m["host"] == host and not _alive(int(m["pid"])):
            out.append(tmp)
    return sorted(out)


def _remove_stale(path: Path) -> None:
    for old in {*stale_temp_files(path), *dead_writer_temp_files(path.parent)}:
        with contextlib.suppress(OSError):
            old.unlink()


def ensure_dir(folder: str | os.PathLike) -> Path:
    """``mkdir -p`` with a clear :class:`OutputError` naming the folder."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise output_error(folder, err, "cannot create folder") from None
    return folder


def check_output(path: str | os.PathLike, flag: str | None = None, *, folder: bool = False) -> Path:
    """Prove, before any work and creating nothing, that ``path`` can be written: as a file (written whole
    or appended to) or, with ``folder``, as a folder to fill. A folder where a file is expected (or the
    reverse), a file in the way of a folder to create, or a folder without write permission raises
    :class:`OutputError` naming ``flag`` and the path. Commands call it for every output before they start,
    so a refused command leaves nothing behind and finished work is never lost to an unwritable output."""
    path = Path(path)
    label = f"{flag} {path}" if flag else str(path)
    if path.is_dir() and not folder:
        raise OutputError(f"{label}: is a folder; expected a file name")
    if path.exists() and not path.is_dir():
        if folder:
            raise OutputError(f"{label}: is a file; expected a folder")
        if not os.access(path, os.W_OK):
            raise OutputError(f"{label}: cannot write: Permission denied")
    where = path if folder and path.is_dir() else path.parent
    while not where.exists() and where != where.parent:  # the folders that the write would create
        where = where.parent
    if not where.is_dir():
        raise OutputError(f"{label}: cannot create folder: {where} is a file")
    if not os.access(where, os.W_OK | os.X_OK):
        raise OutputError(f"{label}: cannot write into {where}: Permission denied")
    return path


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], object]) -> Path:
    """Write ``path`` atomically: ``write(fh)`` fills a temp file in the same folder (:func:`replacing`), then
    rename. Returns ``path``. On any failure the temp file is removed, the previous ``path`` is untouched and an
    OSError becomes :class:`OutputError` naming ``path``."""
    with replacing(path) as tmp, os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "wb") as fh:
        write(fh)
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda fh: fh.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda fh: fh.write(text.encode()))


@contextlib.contextmanager
def replacing(path: str | os.PathLike) -> Iterator[Path]:
    """The one atomic-write primitive: yields a temp path in ``path``'s folder for the caller to write (by name:
    matplotlib, pandas, pyarrow; or through :func:`atomic_write`); on a clean exit it is fsynced, given the mode
    the umask allows and renamed over ``path`` (the rename made durable too), on an error removed."""
    path = Path(path)
    ensure_dir(path.parent)
    _remove_stale(path)  # earlier writes killed before their rename
    tmp = path.parent / f".{path.name}.{_tag()}.tmp{path.suffix}"
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OutputError):
            raise
        raise output_error(path, err) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
