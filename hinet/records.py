"""Tidy long-format result records: one number per row, stored as append-only JSONL.

A record is one measured number (``metric``, ``value``) plus everything needed to trace it: which run,
variant, data, code version and machine produced it. Files are written with :func:`append_records`,
which is safe for many concurrent writer processes, and read back with :func:`read_records` into a
pandas DataFrame whose columns are :data:`COLUMNS` in that order.

Metric conventions used by the report builder (``hinet.report``): ``psnr`` in dB, ``ssim`` in [0, 1],
``loss`` as logged, ``params`` = parameter count (raw count, not millions), ``macs`` = multiply-accumulates
of one forward pass on the recorded input (raw count, not G), speed metrics such as ``ms_per_iter``.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import math
import numbers
import os
import platform
import socket
import subprocess
import warnings
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


@dataclasses.dataclass(frozen=True)
class Record:
    """One number in long format; see the module docstring for metric units.

    ``time`` is ISO-8601 in UTC (e.g. ``2024-05-01T12:00:00+00:00``); ``step`` is the training iteration
    (None for evaluations of finished checkpoints); ``synthetic`` is True when the data was the synthetic
    default rather than a real dataset; ``recipe`` is e.g. ``proxy``, ``paper``, ``eval`` or ``bench``.
    """

    run_id: str
    family: str
    variant: str
    dataset: str
    split: str
    protocol: str
    metric: str
    value: float
    step: int | None
    seed: int | None
    git_commit: str
    git_dirty: bool
    config_hash: str
    device: str
    torch_version: str
    time: str
    synthetic: bool
    recipe: str

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name in _BOOL_FIELDS:
                if not isinstance(v, bool):
                    raise ValueError(f"Record.{f.name}: expected bool, got {v!r}")
            elif f.name in _OPT_INT_FIELDS:
                # bool is a subclass of int; a True step/seed is always a bug.
                if v is not None and (isinstance(v, bool) or not isinstance(v, numbers.Integral)):
                    raise ValueError(f"Record.{f.name}: expected int or None, got {v!r}")
                if f.name == "step" and v is not None and v < 0:
                    raise ValueError(f"Record.step: expected >= 0, got {v}")
                object.__setattr__(self, f.name, None if v is None else int(v))
            elif f.name == "value":
                if isinstance(v, bool) or not isinstance(v, numbers.Real):
                    raise ValueError(f"Record.value: expected a real number, got {v!r}")
                if not math.isfinite(v):
                    raise ValueError(f"Record.value: expected a finite number, got {v!r} ({self.metric})")
                object.__setattr__(self, "value", float(v))
            elif not isinstance(v, str) or not v:
                raise ValueError(f"Record.{f.name}: expected a non-empty str, got {v!r}")
        try:
            t = datetime.fromisoformat(self.time)
        except ValueError as err:
            raise ValueError(f"Record.time: expected ISO-8601, got {self.time!r}") from err
        if t.utcoffset() is None or t.utcoffset().total_seconds() != 0:
            raise ValueError(f"Record.time: expected a UTC timestamp (+00:00), got {self.time!r}")


COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Record))
_BOOL_FIELDS = frozenset({"git_dirty", "synthetic"})
_OPT_INT_FIELDS = frozenset({"step", "seed"})


def utc_now() -> str:
    """Current time as ISO-8601 UTC with seconds precision."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def git_info(repo_dir: str | Path | None = None) -> tuple[str, bool]:
    """``(commit sha, dirty)`` of the checkout containing ``repo_dir`` (default: this file's checkout).

    Changes under ``results/`` and ``runs/`` (outputs, not code) do not count as dirty. Outside a git
    checkout, without git, or before the first commit the answer is ``("unknown", True)``.
    """
    cwd = Path(repo_dir) if repo_dir is not None else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                             check=True).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--", ":(top)", ":(top,exclude)results", ":(top,exclude)runs"],
            cwd=cwd, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown", True
    return sha, bool(status.strip())


def config_hash(obj: Any) -> str:
    """First 12 hex chars of sha256 over canonical JSON (sorted keys, no spaces) of a dataclass or dict."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = dataclasses.asdict(obj)
    if not isinstance(obj, Mapping):
        raise ValueError(f"config_hash: expected a dataclass instance or dict, got {type(obj).__name__}")

    def _default(o: Any) -> Any:
        if isinstance(o, Path):
            return o.as_posix()
        raise TypeError(f"not JSON-serialisable: {type(o).__name__}")

    try:
        text = json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False, default=_default)
    except (TypeError, ValueError) as err:
        raise ValueError(f"config_hash: cannot encode config as canonical JSON: {err}") from err
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def environment(device: Any) -> dict[str, str]:
    """``device``/``torch_version`` (Record fields) plus ``hostname``/``python_version`` (for config.json)."""
    import torch  # lazy: reading records must not pay for importing torch

    return {"device": str(device), "torch_version": torch.__version__,
            "hostname": socket.gethostname(), "python_version": platform.python_version()}


def make_records(common: Mapping[str, Any], metrics: Mapping[str, float], **kw: Any) -> list[Record]:
    """One Record per ``metrics`` item; fields come from ``common`` updated by ``kw``.

    ``time`` defaults to now (UTC). Unknown or missing fields raise ValueError.
    """
    fields = {"time": utc_now(), **common, **kw}
    unknown = set(fields) - set(COLUMNS)
    if unknown:
        raise ValueError(f"make_records: unknown fields {sorted(unknown)}; Record fields are {COLUMNS}")
    if "metric" in fields or "value" in fields:
        raise ValueError("make_records: pass metric/value through `metrics`, not `common`/kw")
    missing = set(COLUMNS) - set(fields) - {"metric", "value"}
    if missing:
        raise ValueError(f"make_records: missing fields {sorted(missing)}")
    if not metrics:
        raise ValueError("make_records: `metrics` is empty")
    return [Record(metric=m, value=v, **fields) for m, v in metrics.items()]


def _encode(records: Iterable[Record]) -> bytes:
    lines = []
    for r in records:
        if not isinstance(r, Record):
            raise TypeError(f"append_records: expected Record, got {type(r).__name__}")
        lines.append(json.dumps(dataclasses.asdict(r), allow_nan=False, separators=(",", ":")) + "\n")
    return "".join(lines).encode()


def _drop_partial_tail(fd: int, path: Path) -> None:
    """Cut a crash-truncated last line (no trailing newline) so the next batch starts on a fresh line.

    Called with the exclusive lock held; the fragment is reported, never kept glued to new data.
    """
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    pos = size
    while pos > 0:  # scan backwards in chunks for the last newline
        start = max(0, pos - 65536)
        idx = os.pread(fd, pos - start, start).rfind(b"\n")
        if idx >= 0:
            pos = start + idx + 1
            break
        pos = start
    warnings.warn(f"{path}: dropping a truncated last line ({size - pos} bytes) left by an interrupted write",
                  stacklevel=3)
    os.ftruncate(fd, pos)


def append_records(path: str | Path, records: Iterable[Record]) -> None:
    """Append ``records`` to the JSONL file ``path`` as one atomic batch (creates parent folders).

    Concurrent writers in other processes (also on NFS, where flock is emulated with byte-range locks)
    never lose or interleave lines: the file is opened O_APPEND, locked with an exclusive ``flock``,
    the whole batch goes out in one ``os.write``, then fsync and unlock.
    """
    path = Path(path)
    data = _encode(records)
    if not data:
        raise ValueError(f"append_records: no records to append to {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            _drop_partial_tail(fd, path)
            written = os.write(fd, data)
            while written < len(data):  # short writes are rare (disk full, signals); finish under the lock
                written += os.write(fd, data[written:])
            os.fsync(fd)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _read_file(path: Path) -> list[dict[str, Any]]:
    with open(path, "rb") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_SH)  # never read a batch half-written by a locked writer
        try:
            raw = fh.read()
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    lines = raw.split(b"\n")
    complete = raw.endswith(b"\n") or not raw
    if complete:
        lines = lines[:-1]
    rows = []
    for i, line in enumerate(lines, start=1):
        try:
            rows.append(dataclasses.asdict(Record(**json.loads(line))))
        except (ValueError, TypeError) as err:
            if i == len(lines) and not complete:
                warnings.warn(f"{path}:{i}: skipping truncated last line (interrupted write): {err}",
                              stacklevel=3)
                continue
            raise ValueError(f"{path}:{i}: not a valid record line: {err}") from err
    return rows


def read_records(paths_or_dirs: str | Path | Iterable[str | Path]) -> pd.DataFrame:
    """Read one JSONL file, or every ``*.jsonl`` under folders (recursively), into one DataFrame.

    Columns are :data:`COLUMNS` in order; ``step``/``seed`` are nullable ``Int64``, ``value`` float64,
    ``git_dirty``/``synthetic`` bool, ``time`` datetime64 UTC, the rest ``string``.
    """
    import pandas as pd  # lazy: writers (training processes) need not import pandas

    items = [paths_or_dirs] if isinstance(paths_or_dirs, str | Path) else list(paths_or_dirs)
    files: list[Path] = []
    for item in map(Path, items):
        if item.is_dir():
            found = sorted(item.rglob("*.jsonl"))
            if not found:
                raise FileNotFoundError(f"read_records: no *.jsonl files under {item}")
            files += found
        elif item.is_file():
            files.append(item)
        else:
            raise FileNotFoundError(f"read_records: {item} does not exist")
    rows = [row for f in files for row in _read_file(f)]
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    dtypes = {c: "string" for c in COLUMNS}
    dtypes.update(value="float64", step="Int64", seed="Int64", git_dirty="bool", synthetic="bool")
    del dtypes["time"]
    df = df.astype(dtypes)
    df["time"] = pd.to_datetime(df["time"], utc=True, format="ISO8601")
    return df
