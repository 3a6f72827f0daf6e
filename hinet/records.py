"""Tidy long-format result records: one number per row, stored as append-only JSONL.

A record is one measured number (``metric``, ``value``) plus everything needed to trace it: which run,
variant, data, code version (``git_commit``) and machine produced it. Files are written with
:func:`append_records`, which is safe for many concurrent writer processes and writes each batch whole
or not at all, and read back with :func:`read_records` into a pandas DataFrame whose columns are
:data:`COLUMNS` in that order.

Records are idempotent facts. A record's identity is :data:`IDENTITY` (run id, split, dataset,
protocol, metric, step; per-image results add the image) and the store keeps one value per identity:
files are append-only, and the reader keeps the latest written row of each identity and only the rows
of each run's current configuration (:func:`latest`). So a re-run or a resumed run replaces its rows
(the trainer simply writes them again), and results regenerated on a fresh clone supersede the
committed ones without any file being edited.

Per-image results (one value per test image, at every validation) are columnar: one Parquet file per
(run, step) beside the JSONL file (:mod:`hinet.image_records`).

Metric conventions used by the report builder (``hinet.report``): ``psnr`` in dB, ``ssim`` in [0, 1],
``loss`` as logged, ``params`` = parameter count (raw count, not millions), ``macs`` = multiply-accumulates
of one forward pass on a 1x3x256x256 input (raw count, not G; split ``model``, protocol ``model``), speed
metrics such as ``ms_per_iter``. Each column has one meaning: ``dataset`` names data (never a device),
``protocol`` names a scoring protocol (``train`` for training metrics, ``model`` for size counts),
``device`` the device.

Speed records (family ``speed``, split and recipe ``bench``): ``dataset`` = shape ``NxCxHxW`` of what one
timed call processes (synthetic tensors), ``protocol`` = the benchmark module that measured it,
``device`` = where it ran, ``variant`` = benchmark name or ``<name>:<path>``; one run per benchmark case
and timed path (``<invocation>/<module>::<variant>``). Checkpoint evaluations (``python -m
benchmarks.<dataset>``): family ``checkpoint_eval``, recipe ``eval`` (``eval-subset`` with ``--limit``).
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
import sys
import uuid
import warnings
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

# absolute imports: this module is also loaded by file path (tests/test_records.py)
from hinet.atomic import atomic_write_bytes, ensure_dir, output_error
from hinet.errors import ArgumentParser, run_command
from hinet.tasks import RECIPE_KINDS, SPLITS

if TYPE_CHECKING:
    import pandas as pd


@dataclasses.dataclass(frozen=True)
class Record:
    """One number in long format; see the module docstring for metric units.

    ``time`` is ISO-8601 in UTC (e.g. ``2024-05-01T12:00:00+00:00``); ``step`` is the training iteration
    (None for evaluations of finished checkpoints); ``synthetic`` is True when the data was the synthetic
    default rather than a real dataset; ``recipe`` is e.g. ``proxy``, ``paper``, ``eval`` or ``bench``;
    ``reference`` is the variant an ablation family compares every variant with (the family's declared
    ``REFERENCE``, carried by the run spec; None outside ablation families and in records written before it
    was recorded); ``label`` is the writer's own words for what the number measures (speed records: the
    benchmark's stated comparison, and ``baseline``/``fast`` on its compared paths; None elsewhere).
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
    reference: str | None = None
    label: str | None = None

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
            elif f.name in _OPT_STR_FIELDS:
                if v is not None and (not isinstance(v, str) or not v):
                    raise ValueError(f"Record.{f.name}: expected a non-empty str or None, got {v!r}")
            elif f.name == "value":
                if isinstance(v, bool) or not isinstance(v, numbers.Real):
                    raise ValueError(f"Record.value: expected a real number, got {v!r}")
                if not math.isfinite(v):
                    raise ValueError(f"Record.value: expected a finite number, got {v!r} ({self.metric})")
                object.__setattr__(self, "value", float(v))
            elif not isinstance(v, str) or not v:
                raise ValueError(f"Record.{f.name}: expected a non-empty str, got {v!r}")
        if self.recipe not in RECIPE_KINDS:
            raise ValueError(f"Record.recipe: expected one of {RECIPE_KINDS}, got {self.recipe!r}")
        if self.split not in SPLITS:
            raise ValueError(f"Record.split: expected one of {SPLITS}, got {self.split!r}")
        try:
            t = datetime.fromisoformat(self.time)
        except ValueError as err:
            raise ValueError(f"Record.time: expected ISO-8601, got {self.time!r}") from err
        if t.utcoffset() is None or t.utcoffset().total_seconds() != 0:
            raise ValueError(f"Record.time: expected a UTC timestamp (+00:00), got {self.time!r}")


COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Record))
# A record's identity: the store keeps one value per identity (the latest written; see read_records).
IDENTITY: tuple[str, ...] = ("run_id", "split", "dataset", "protocol", "metric", "step")
BATCH_KEY, SIZE_KEY = "_batch", "_n"  # batch framing of a JSONL line (not Record fields)
_BOOL_FIELDS = frozenset({"git_dirty", "synthetic"})
_OPT_INT_FIELDS = frozenset({"step", "seed"})
_OPT_STR_FIELDS = frozenset({"reference", "label"})


def utc_now() -> str:
    """Current time as ISO-8601 UTC with microsecond precision (orders rewrites of the same record)."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


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


def environment(device: Any, *, hardware: bool = False) -> dict[str, Any]:
    """``device``/``torch_version`` (Record fields) plus ``hostname``/``python_version`` (for config.json); with
    ``hardware`` (speed figures) also the device description of :func:`hinet.hardware.device_fields`."""
    import torch  # lazy: reading records must not pay for importing torch

    env = {"device": str(device), "torch_version": torch.__version__,
           "hostname": socket.gethostname(), "python_version": platform.python_version()}
    if hardware:
        from .hardware import device_fields  # lazy: imports torch, as above

        env.update(device_fields(device))
    return env


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
    optional = {f.name for f in dataclasses.fields(Record) if f.default is not dataclasses.MISSING}
    missing = set(COLUMNS) - set(fields) - {"metric", "value"} - optional
    if missing:
        raise ValueError(f"make_records: missing fields {sorted(missing)}")
    if not metrics:
        raise ValueError("make_records: `metrics` is empty")
    return [Record(metric=m, value=v, **fields) for m, v in metrics.items()]


def _encode(records: Iterable[Record]) -> bytes:
    """JSON lines of one batch; every line carries the batch id and size (see :func:`append_records`)."""
    items = list(records)
    for r in items:
        if not isinstance(r, Record):
            raise TypeError(f"append_records: expected Record, got {type(r).__name__}")
    batch = uuid.uuid4().hex[:16]
    lines = [json.dumps({**dataclasses.asdict(r), BATCH_KEY: batch, SIZE_KEY: len(items)}, allow_nan=False,
                        separators=(",", ":")) + "\n" for r in items]
    return "".join(lines).encode()


def _frame(line: dict[str, Any]) -> tuple[str | None, int]:
    """(batch id, batch size) of a parsed line; lines written without framing are batches of one."""
    batch, size = line.pop(BATCH_KEY, None), line.pop(SIZE_KEY, 1)
    return batch, int(size) if isinstance(size, int) and size >= 1 else 1


def _complete_length(raw: bytes, whole: bool = True) -> int | None:
    """Byte length of the longest prefix of ``raw`` that ends with a complete batch.

    The tail of ``raw`` is examined backwards: a torn last line (no newline) or a last batch with fewer
    lines than its declared size (a kill or a full disk in the middle of a write) is not complete. When
    ``raw`` is only the tail of the file (``whole`` False) and the last batch may begin before it (a
    compacted file is one large batch), the answer is None: read more of the file.
    """
    end = len(raw) if raw.endswith(b"\n") else raw.rfind(b"\n") + 1
    if end == 0:
        return 0 if whole else None
    lines = raw[:end].split(b"\n")[:-1]
    first = 0 if whole else 1  # the first line of a tail may be cut anywhere: never judged
    if len(lines) <= first:
        return None  # one line longer than the tail
    try:
        batch, size = _frame(json.loads(lines[-1]))
    except (ValueError, TypeError):
        return end  # a corrupt complete line is reported by the reader, not silently cut
    if batch is None:
        return end
    count = 0
    for line in reversed(lines[first:]):
        try:
            if _frame(json.loads(line))[0] != batch:
                break
        except (ValueError, TypeError):
            break
        count += 1
    if count >= size:
        return end
    if count == len(lines) - first and not whole:
        return None  # the batch may go on before this tail
    return end - sum(len(x) + 1 for x in lines[len(lines) - count:])


def _drop_incomplete_tail(fd: int, path: Path) -> None:
    """Cut a torn last line or an incomplete last batch so the next batch starts clean.

    Called with the exclusive lock held; the fragment is reported, never kept glued to new data.
    """
    size = os.fstat(fd).st_size
    if size == 0:
        return
    chunk = min(size, 1 << 22)  # batches are small, but a compacted file is one batch of any size
    while True:
        start = size - chunk
        raw = os.pread(fd, chunk, start)
        keep = _complete_length(raw, whole=start == 0)
        if keep is not None:
            break
        chunk = min(size, chunk * 4)
    if start + keep < size:
        warnings.warn(f"{path}: dropping a truncated last line or incomplete batch ({size - start - keep} bytes) "
                      f"left by an interrupted write", stacklevel=3)
        os.ftruncate(fd, start + keep)


def _lock_current(path: Path, flags: int, what: str) -> int:
    """Open ``path`` and take its exclusive lock, on the file that ``path`` names once the lock is held.

    :func:`compact` replaces the file (under the lock) by renaming a new one over it; a writer that opened
    the old file before the rename and got the lock after it would write into the replaced file and lose
    its batch. So the lock is taken again on the new file until the locked file is the named one."""
    while True:
        try:
            fd = os.open(path, flags, 0o666)
        except OSError as err:
            raise output_error(path, err, what) from None
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            now = os.stat(path)
        except FileNotFoundError:
            now = None
        held = os.fstat(fd)
        if now is not None and (now.st_ino, now.st_dev) == (held.st_ino, held.st_dev):
            return fd
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def append_records(path: str | Path, records: Iterable[Record]) -> None:
    """Append ``records`` to the JSONL file ``path`` as one atomic batch (creates parent folders).

    Concurrent writers in other processes (also on NFS, where flock is emulated with byte-range locks)
    never lose or interleave lines: the file is opened O_APPEND, locked with an exclusive ``flock``,
    the whole batch goes out in one ``os.write``, then fsync and unlock. Every line carries the batch's id
    and size (keys ``_batch``/``_n``), so a batch cut short by a kill is recognised and never read back as
    data; a write that fails (full disk, quota) is truncated away again and raises
    :class:`hinet.atomic.OutputError` naming the file: either the whole batch is in the file or none of it.
    A :func:`compact` of the same file at the same time never loses the batch: the lock is taken on the file
    the path names once the lock is held, never on a file the compaction replaced.
    """
    path = Path(path)
    data = _encode(records)
    if not data:
        raise ValueError(f"append_records: no records to append to {path}")
    ensure_dir(path.parent)
    fd = _lock_current(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, "cannot append records")
    try:
        try:
            _drop_incomplete_tail(fd, path)
            before = os.fstat(fd).st_size
            try:
                written = os.write(fd, data)
                while written < len(data):  # short writes are rare (disk full, signals); finish under the lock
                    written += os.write(fd, data[written:])
                os.fsync(fd)
            except OSError as err:
                os.ftruncate(fd, before)  # none of the batch: the file is as it was
                raise output_error(path, err, "cannot append records") from None
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
    return _parse(raw, path)


def _parse(raw: bytes, path: Path) -> list[dict[str, Any]]:
    keep = _complete_length(raw)
    if keep < len(raw):
        dropped = raw[keep:].count(b"\n") + (not raw.endswith(b"\n"))
        first = raw[:keep].count(b"\n") + 1
        warnings.warn(f"{path}:{first}: skipping truncated last line(s) or an incomplete last batch "
                      f"({dropped} line(s), interrupted write)", stacklevel=3)
    lines = raw[:keep].split(b"\n")[:-1] if keep else []
    rows = []
    for i, line in enumerate(lines, start=1):
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError(f"expected a JSON object, got {type(row).__name__}")
            _frame(row)
            rows.append(dataclasses.asdict(Record(**row)))
        except (ValueError, TypeError) as err:
            raise ValueError(f"{path}:{i}: not a valid record line: {err}") from err
    return rows


def collect_files(paths_or_dirs: str | Path | Iterable[str | Path], pattern: str, what: str) -> list[Path]:
    items = [paths_or_dirs] if isinstance(paths_or_dirs, str | Path) else list(paths_or_dirs)
    files: list[Path] = []
    for item in map(Path, items):
        if item.is_dir():
            found = sorted(item.rglob(pattern))
            if not found:
                raise FileNotFoundError(f"{what}: no {pattern} files under {item}")
            files += found
        elif item.is_file():
            files.append(item)
        else:
            raise FileNotFoundError(f"{what}: {item} does not exist")
    return files


def latest(df: pd.DataFrame, identity: Iterable[str] = IDENTITY) -> pd.DataFrame:
    """Keep one row per identity: the latest written, and only the run's current configuration.

    Rules (the store's semantics; records are append-only facts):

    1. Per ``run_id``, the ``config_hash`` of the most recently written row is the run's current
       configuration; rows of that run id with another hash (an earlier run of a changed spec, e.g. the
       committed results of an older recipe) are superseded.
    2. Among rows with the same identity (:data:`IDENTITY`: run id, split, dataset, protocol, metric,
       step; plus ``image`` for per-image rows) the one written last wins: by ``time``, then by position
       (file order, then line order). A resumed or re-run run therefore replaces its rows, never
       duplicates them.
    """
    if df.empty:
        return df
    order = df.assign(_pos=range(len(df))).sort_values(["time", "_pos"], kind="stable")
    current = order.groupby("run_id")["config_hash"].transform("last")
    order = order[order["config_hash"] == current]
    kept = order.drop_duplicates(list(identity), keep="last").sort_values("_pos")
    return df.loc[kept.index]


def read_records(paths_or_dirs: str | Path | Iterable[str | Path], *, all_versions: bool = False) -> pd.DataFrame:
    """Read one JSONL file, or every ``*.jsonl`` under folders (recursively), into one DataFrame.

    Columns are :data:`COLUMNS` in order; ``step``/``seed`` are nullable ``Int64``, ``value`` float64,
    ``git_dirty``/``synthetic`` bool, ``time`` datetime64 UTC, the rest ``string``. Superseded rows are
    dropped (see :func:`latest`) unless ``all_versions``; rows keep their order of writing.
    """
    files = collect_files(paths_or_dirs, "*.jsonl", "read_records")
    df = _typed([row for f in files for row in _read_file(f)])
    if not all_versions:
        df = latest(df).reset_index(drop=True)
    return df


def _typed(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Record dicts as the typed DataFrame of :func:`read_records`."""
    import pandas as pd  # lazy: writers (training processes) need not import pandas

    df = pd.DataFrame(rows, columns=list(COLUMNS))
    dtypes = {c: "string" for c in COLUMNS}
    dtypes.update(value="float64", step="Int64", seed="Int64", git_dirty="bool", synthetic="bool")
    del dtypes["time"]
    df = df.astype(dtypes)
    df["time"] = pd.to_datetime(df["time"], utc=True, format="ISO8601")
    return df


def compact(path: str | Path) -> tuple[int, int]:
    """Rewrite the JSONL file ``path`` with only the rows :func:`read_records` keeps (the latest of each
    identity, the current configuration of each run), in their order of writing; atomically, under the
    writers' lock. Returns (rows before, rows after). Superseded rows are facts of earlier runs: compact a
    file when only the current results should travel with it (e.g. before committing regenerated results)."""
    path = Path(path)
    if path.is_dir() or not path.exists():
        raise FileNotFoundError(f"{path}: {'is a folder' if path.is_dir() else 'does not exist'}; "
                                f"expected a JSONL records file")
    fd = _lock_current(path, os.O_RDWR, "cannot compact records")  # write mode: NFS locks
    try:
        with open(fd, "rb", closefd=False) as fh:
            before = _typed(_parse(fh.read(), path))
        kept = latest(before)
        rows = [Record(**{**row, "time": row["time"].isoformat(timespec="microseconds"),
                          **{k: (None if row[k] is None or row[k] != row[k] else int(row[k]))
                             for k in ("step", "seed")}})
                for row in kept.astype(object).where(kept.notna(), None).to_dict("records")]
        # a writer waiting for the lock on the old file takes it again on the new one (_lock_current)
        atomic_write_bytes(path, _encode(rows))
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    return len(before), len(rows)


def main(argv: list[str] | None = None) -> int:
    """``python -m hinet.records --compact FILE...``: keep only the current rows of each file."""
    parser = ArgumentParser(prog="python -m hinet.records", description=compact.__doc__.split("\n\n")[0])
    parser.add_argument("--compact", nargs="+", required=True, metavar="FILE", help="JSONL record files")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = parser.parse_args(argv)

    def body() -> None:
        for item in args.compact:
            n, m = compact(item)
            print(f"{item}: {n} rows -> {m} (superseded rows dropped)")

    return run_command("hinet.records", body, argv)


if __name__ == "__main__":
    sys.exit(main())
