"""Run many training runs: one process per run, queued over CPU slots or GPUs, with a progress bar.

The grid knows nothing about ablation families: it takes complete run specs (:class:`GridRun`, each a
:class:`hinet.spec.RunSpec` with its run directory and records file) and hands each one by value to
``python -m hinet.train --spec <run_dir>/spec.json``. Finished runs (``done.json``) are skipped, started
ones (a checkpoint) resumed, so an interrupted grid continues where it stopped.

Devices: on CPU, ``parallel`` runs share the cores (``OMP_NUM_THREADS`` = cores / parallel each). With
``gpus`` (e.g. ``["0", "1", "2", "3"]``) the GPUs are cut into slots of ``gpus_per_run``; each run gets
one slot through ``CUDA_VISIBLE_DEVICES`` and the rest wait in the queue; a slot of several GPUs runs
the trainer under ``torchrun --nproc-per-node K`` (the trainer keeps the recipe's global batch). The
device set of a run is in its ``config.json`` and in every record's ``device`` field.

Ctrl-C (or SIGTERM) stops the children (SIGINT, then SIGKILL after a grace period): each run keeps its
last checkpoint, written atomically, and the next call resumes it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from .atomic import atomic_write_text, ensure_dir
from .errors import UserError
from .rundir import CHECKPOINT, DONE
from .spec import RunSpec

TRAIN_ENTRY: tuple[str, ...] = ("-m", "hinet.train")
GRACE_S = 30.0


@dataclass(frozen=True)
class GridRun:
    """One run of a grid: its id, directory, complete spec and where its records go."""

    run_id: str
    run_dir: Path
    spec: RunSpec
    records: Path
    images_dir: Path | None = None  # the final validation writes comparison images here
    options: tuple[str, ...] = ()  # further hinet.train flags that do not change the numbers (device, workers)

    @property
    def spec_path(self) -> Path:
        return self.run_dir / "spec.json"

    def status(self) -> str:
        """``done`` (done.json), ``started`` (a checkpoint) or ``new``."""
        if (self.run_dir / DONE).exists():
            return "done"
        if (self.run_dir / CHECKPOINT).exists():
            return "started"
        return "new"

    def train_args(self) -> list[str]:
        """The hinet.train arguments of this run (after writing its spec file with :meth:`write_spec`)."""
        args = ["--spec", str(self.spec_path), "--run-dir", str(self.run_dir), "--run-id", self.run_id,
                "--records", str(self.records), "--no-progress", *self.options]
        if self.images_dir is not None:
            args += ["--images-dir", str(self.images_dir)]
        return args + (["--resume"] if self.status() == "started" else [])

    def write_spec(self) -> Path:
        ensure_dir(self.run_dir)
        return atomic_write_text(self.spec_path, json.dumps(self.spec.to_dict(), indent=2, sort_keys=True))


def parse_gpus(text: str | None, available: int | None = None, *, present: bool = True) -> list[str]:
    """``all`` -> every visible GPU id; ``0,1,3`` -> those ids; None/empty -> [] (CPU).

    With ``present`` (runs on this machine) every id must name a visible CUDA device, so that a wrong id is
    one line before the grid starts, not a traceback in the log of every run."""
    if not text:
        return []
    if text != "all":
        ids = [part.strip() for part in text.split(",")]
        if not all(part.isdigit() for part in ids) or len(set(ids)) != len(ids):
            raise UserError(f"--gpus {text!r}: expected 'all' or distinct GPU ids separated by commas, e.g. 0,1,2")
        if not present:
            return ids
    if available is None:
        available = torch.cuda.device_count()
    if available == 0:
        raise UserError(f"--gpus {text}: no CUDA device is visible on this machine")
    if text == "all":
        return [str(i) for i in range(available)]
    absent = [i for i in ids if int(i) >= available]
    if absent:
        raise UserError(f"--gpus {text}: no GPU {', '.join(absent)} on this machine; it has {available} "
                        f"(ids 0..{available - 1})")
    return ids


def gpu_slots(gpus: Sequence[str], per_run: int) -> list[tuple[str, ...]]:
    """Cut ``gpus`` into slots of ``per_run`` GPUs each (left-over GPUs stay idle, with a note)."""
    if per_run < 1:
        raise UserError(f"--gpus-per-run {per_run}: expected a positive number")
    if len(gpus) < per_run:
        raise UserError(f"--gpus-per-run {per_run}: only {len(gpus)} GPU(s) given ({','.join(gpus) or 'none'})")
    slots = [tuple(gpus[i:i + per_run]) for i in range(0, len(gpus) - per_run + 1, per_run)]
    left = len(gpus) - per_run * len(slots)
    if left:
        print(f"[grid] {left} GPU(s) left idle: {len(gpus)} is not a multiple of --gpus-per-run {per_run}",
              flush=True)
    return slots


def command(run: GridRun, slot: tuple[str, ...], entry: Sequence[str] = TRAIN_ENTRY) -> list[str]:
    """The command line of ``run`` in ``slot``: the trainer, under torchrun when the slot has several GPUs."""
    if len(slot) > 1:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={len(slot)}",
                *entry, *run.train_args()]
    return [sys.executable, *entry, *run.train_args()]


@dataclass
class _Progress:
    """One bar over the runs (done, running, failed, elapsed, ETA from the finished runs' durations).

    On a terminal a tqdm bar; otherwise (a log file, CI) one plain line per finished run."""

    total: int
    enabled: bool
    slots: int = 1
    tag: str = "grid"
    done: int = 0
    failed: int = 0
    running: int = 0
    started: float = field(default_factory=time.time)
    durations: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.tty = self.enabled and sys.stderr.isatty()
        self.bar = tqdm(total=self.total, desc=f"[{self.tag}] runs", unit="run", disable=not self.tty,
                        bar_format="{desc}: {n}/{total} |{bar}| {elapsed} {postfix}")
        self._show()

    def eta(self) -> float | None:
        """Seconds left: mean duration of the finished runs x runs left / parallel slots."""
        if not self.durations:
            return None
        left = self.total - len(self.durations)
        return sum(self.durations) / len(self.durations) * math.ceil(left / self.slots)

    def line(self) -> str:
        eta = self.eta()
        return (f"{len(self.durations)}/{self.total} finished: done {self.done}, running {self.running}, failed "
                f"{self.failed}; elapsed {_clock(time.time() - self.started)}"
                + (f", ETA {_clock(eta)}" if eta is not None else ""))

    def _show(self) -> None:
        eta = self.eta()
        self.bar.set_postfix_str(f"done {self.done}, running {self.running}, failed {self.failed}"
                                 + (f", ETA {_clock(eta)}" if eta is not None else ""))

    def start(self) -> None:
        with self.lock:
            self.running += 1
            self._show()

    def finish(self, ok: bool, seconds: float) -> None:
        with self.lock:
            self.running -= 1
            self.done += ok
            self.failed += not ok
            self.durations.append(seconds)
            self._show()
            self.bar.update(1)
            if self.enabled and not self.tty:
                print(f"[{self.tag}] {self.line()}", flush=True)

    def write(self, text: str) -> None:
        self.bar.write(text) if self.tty else print(text, flush=True)

    def close(self) -> None:
        self.bar.close()


def _clock(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d}"


@dataclass(frozen=True)
class Child:
    """One process to start: its name in messages, its command line and its log (None: it writes to this
    process's stdout and stderr)."""

    name: str
    argv: list[str]
    log: Path | None = None


def run_local(runs: Sequence[GridRun], *, parallel: int = 1, gpus: Sequence[str] = (), gpus_per_run: int = 1,
              threads: int | None = None, entry: Sequence[str] = TRAIN_ENTRY, progress: bool = True,
              ) -> list[tuple[GridRun, int]]:
    """Run each run as its own process; returns ``(run, exit code)`` in the order given.

    CPU: ``parallel`` at a time, ``threads`` intra-op threads each (default cores / parallel). GPUs: one
    run per slot of ``gpus_per_run`` GPUs (``parallel`` is ignored). Each child's output goes to
    ``<run_dir>/stdout.log``.
    """
    slots: list[tuple[str, ...]] = gpu_slots(list(gpus), gpus_per_run) if gpus else [()] * max(1, parallel)

    def job(run: GridRun) -> Callable[[tuple[str, ...]], Child]:
        def start(slot: tuple[str, ...]) -> Child:
            run.write_spec()  # at start: --resume follows the run's status then
            return Child(run.run_id, command(run, slot, entry), run.run_dir / "stdout.log")
        return start

    codes = run_processes([job(run) for run in runs], slots, threads=threads, progress=progress)
    return list(zip(runs, codes))


def run_processes(jobs: Sequence[Callable[[tuple[str, ...]], Child]], slots: Sequence[tuple[str, ...]], *,
                  threads: int | None = None, progress: bool = True, tag: str = "grid") -> list[int]:
    """The project's process launcher: start each job's :class:`Child` in a free slot, one at a time per
    slot, and return the exit codes in the order given (-1: never started).

    ``jobs[i](slot)`` prepares job i and returns its process; ``slot`` holds the GPU ids it gets through
    ``CUDA_VISIBLE_DEVICES`` (``()``: CPU). Every child gets ``threads`` intra-op threads (default cores /
    slots). ``tag`` heads the messages. Ctrl-C stops the children (:func:`_stop`) and is raised again.
    """
    slots = list(slots) or [()]
    threads = threads or max(1, (os.cpu_count() or 1) // len(slots))
    base_env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    free: queue.Queue[tuple[str, ...]] = queue.Queue()
    for slot in slots:
        free.put(slot)
    todo: queue.Queue[int] = queue.Queue()
    for i in range(len(jobs)):
        todo.put(i)
    codes: dict[int, int] = {}
    children: dict[int, subprocess.Popen] = {}
    stopping = threading.Event()
    bar = _Progress(len(jobs), progress, len(slots), tag)

    def worker() -> None:
        while not stopping.is_set():
            try:
                i = todo.get_nowait()
            except queue.Empty:
                return
            slot = free.get()
            env = dict(base_env)
            if slot:
                env["CUDA_VISIBLE_DEVICES"] = ",".join(slot)
            child = jobs[i](slot)
            t0 = time.time()
            bar.start()
            with open(child.log, "a") if child.log else contextlib.nullcontext() as log:
                proc = subprocess.Popen(child.argv, env=env, stdout=log, stderr=subprocess.STDOUT if log else None,
                                        start_new_session=True)  # Ctrl-C reaches the launcher, which stops children
                children[i] = proc
                codes[i] = proc.wait()
            del children[i]
            free.put(slot)
            bar.finish(codes[i] == 0, time.time() - t0)
            if codes[i] != 0 and not stopping.is_set():
                bar.write(f"[{tag}] {child.name}: FAILED (exit {codes[i]})"
                          + (f", see {child.log}" if child.log else ""))

    pool = [threading.Thread(target=worker, daemon=True) for _ in slots]
    for t in pool:
        t.start()
    try:
        while any(t.is_alive() for t in pool):
            for t in pool:
                t.join(timeout=0.2)
    except KeyboardInterrupt:
        stopping.set()
        _stop(list(children.values()), tag)
        bar.close()
        raise
    bar.close()
    return [codes.get(i, -1) for i in range(len(jobs))]


def _stop(procs: list[subprocess.Popen], tag: str = "grid") -> None:
    """SIGINT every child's process group, wait up to :data:`GRACE_S`, then SIGKILL what is left."""
    for p in procs:
        try:
            os.killpg(p.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
    deadline = time.time() + GRACE_S
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    print(f"[{tag}] interrupted: stopped {len(procs)} run(s); their last checkpoints are kept, run the same "
          f"command again to resume", file=sys.stderr, flush=True)


def slurm_job(argv: list[str], gpus: int) -> int:
    """Body of one Slurm job: hinet.train, under torchrun when the job has several GPUs."""
    if gpus > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={gpus}",
               *TRAIN_ENTRY, *argv]
    else:
        cmd = [sys.executable, *TRAIN_ENTRY, *argv]
    return subprocess.call(cmd)


def run_submitit(runs: Sequence[GridRun], folder: Path, *, cluster: str | None, gpus: int, partition: str | None,
                 timeout_min: int, cpus: int) -> list[tuple[GridRun, int]]:
    """Submit one job per run with submitit (``cluster='local'`` runs them as local processes)."""
    import submitit  # heavy: only --launcher submitit* grids need submitit

    executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
    params = dict(timeout_min=timeout_min, cpus_per_task=cpus, name="hinet-grid")
    if cluster != "local":
        params.update(gpus_per_node=gpus, tasks_per_node=1, nodes=1)
        if partition:
            params["slurm_partition"] = partition
    executor.update_parameters(**params)
    for run in runs:
        run.write_spec()
    jobs = [executor.submit(slurm_job, run.train_args(), gpus) for run in runs]
    print(f"[grid] submitted {len(jobs)} job(s): {', '.join(str(j.job_id) for j in jobs[:5])}...", flush=True)
    return [(run, job.result()) for run, job in zip(runs, jobs)]
