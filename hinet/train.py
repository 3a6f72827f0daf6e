"""Training: ``python -m hinet.train --recipe sidd-proxy --run-dir runs/x`` (or ``--spec run.json``, or under torchrun).

A run is a directory::

    config.json            the resolved run spec (recipe, network, seed, data) + environment and git commit
    checkpoints/last.pth   model, optimiser, step (written atomically: temp file, fsync, rename)
    model.pth              the final network in this suite's format (config travels with the weights)
    tensorboard/           TensorBoard event files: train loss, lr, throughput, every validation metric,
                           a few validation images at each validation (``tensorboard --logdir runs``)
    done.json              written last: final validation metrics; a run with it is never repeated

The trainer is the one writer of a run's metrics: it appends tidy records (``hinet.records``) to the
records file as it goes -- train loss/lr/throughput at every log step, every validation's set means, the
model's size at step 0 -- and each validation's per-image metrics as one Parquet file per step beside it.
A resumed run simply writes the rows of the steps it repeats again; the store keeps the latest value of
each identity, so nothing is duplicated. Progress lines on stdout are the human-readable log.

Order of a run: preflight (training data, validation sets and every output path are opened or checked
before the first step, so a mistake costs seconds, not a run; they create nothing, so a refused run leaves
no folder behind), then the loop; at a step that is due for both, the validation runs before the
checkpoint, so a kill between them repeats both on resume and no validation is ever lost (a failing
validation costs at most the steps since the previous checkpoint). One process at a time trains a run
directory: ``<run-dir>/lock`` is held (``flock``) while it trains, and a second process is refused.

Resume is explicit (``--resume``) and exact: the batch of step t is a pure function of (seed, t) and
the optimiser state is checkpointed, so a killed run resumed from its last checkpoint ends with the
same weights as an uninterrupted one (on CPU). Starting into a directory that holds another spec is
refused. Under ``torchrun`` each process takes its share of every global batch (DDP); gradient
accumulation keeps the recipe's global batch when fewer devices are available.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from . import records as rec
from .arch import HINet, count_parameters
from .atomic import atomic_write_text, check_output, ensure_dir, output_error
from .checkpoint import atomic_save, save
from .config import HINetConfig, preset, scaled
from .errors import UserError, run_command
from .evaluate import SetResult, default_protocols, evaluate
from .losses import MultiStageLoss, make_loss
from .recipes import Recipe, lr_at, proxy_name, recipe
from .step import PRECISIONS, TrainStep

INITS = ("per-module", "torch")


class RunConflictError(UserError, RuntimeError):
    """The run directory holds a different run, or a run that needs ``--resume``."""


class NonFiniteLossError(UserError, FloatingPointError):
    """The loss became NaN/inf; the last good checkpoint is kept."""


class PreflightError(UserError, ValueError):
    """Data or an output path is unusable; found before the first training step."""


# RunSpec fields that to_dict() writes only when set, so their absence from a stored spec means the default;
# every other field of a spec file must be present (RunSpec.from_dict).
OMITTED_WHEN_UNSET = ("train_crops", "fused_norm", "inplace_act", "evaluations", "reference")


def _require_fields(d: dict, names: list[str], where: str) -> None:
    missing = [name for name in names if name not in d]
    if missing:
        raise ValueError(f"{where}: missing field(s) {missing}; a spec file states every field "
                         f"(write it with RunSpec.to_dict() or copy a run's config.json)")


@dataclass(frozen=True)
class RunSpec:
    """Everything that determines a run's numbers. Its hash guards the run directory."""

    recipe: Recipe
    model: HINetConfig  # the network actually trained (already shrunk for proxy recipes)
    seed: int
    data: str | None = None  # dataset directory; None = the synthetic default
    family: str = "adhoc"
    variant: str = "custom"
    precision: str = "fp32"  # fp32 | bf16 | fp16 (autocast; CUDA only for fp16)
    channels_last: bool = False
    train_crops: str | None = None  # folder written by `python -m hinet.data.prepare` (input_crops/gt_crops)
    fused_norm: bool = False  # hinet.fast: one scale/shift instead of slice + norm + concat (same numbers)
    inplace_act: bool = False  # hinet.fast: LeakyReLUs overwrite their input (same numbers, less memory)
    # Test-time evaluations as ``label=protocol`` (hinet.evaluate.parse_protocol), e.g. "grid=deblur/official@64":
    # each validation scores every one, recorded as its own run ``<run id>@<label>`` with variant ``label``
    # (a family comparing test-time statistics of one trained network). Empty: the task's default protocols.
    evaluations: tuple[str, ...] = ()
    # Initial weights: "per-module" (HINet.reset_parameters(seed): a module of the same name and shape starts
    # alike in every variant: common random numbers) or "torch" (the modules' default draws in build order).
    init: str = "per-module"
    # The variant the family compares every variant with (ablations/<family>.py REFERENCE); None for ad-hoc runs.
    reference: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"RunSpec.seed={self.seed!r} (--seed): expected a non-negative integer (numpy seeds "
                             f"the data order with it)")
        if self.init not in INITS:
            raise ValueError(f"RunSpec.init={self.init!r}: expected one of {INITS}")

    def to_dict(self) -> dict:
        out = {"recipe": self.recipe.to_dict(), "model": self.model.to_dict(), "seed": self.seed,
               "data": self.data, "family": self.family, "variant": self.variant,
               "precision": self.precision, "channels_last": self.channels_last, "init": self.init}
        for key in OMITTED_WHEN_UNSET:  # only when set: hashes of earlier specs stay valid
            if getattr(self, key):
                out[key] = getattr(self, key)
        return out

    @classmethod
    def from_dict(cls, d: dict) -> RunSpec:
        """The spec of :meth:`to_dict`'s JSON, checked as the command-line flags are: every field by its
        declared type (a stored ``"csff": "no"`` is an error naming the field, never a truthy string), every
        field present (a missing one is an error naming it, never a dataclass default; only the fields of
        :data:`OMITTED_WHEN_UNSET` mean their default when absent), and the recipe's frozen fields
        (:data:`FROZEN_RECIPE_FIELDS`) equal to those of the recipe it names."""
        from dataclasses import fields

        from .fields import check_stored

        if not isinstance(d, dict):
            raise ValueError(f"expected a JSON object, got {type(d).__name__}")
        _require_fields(d, ["recipe", "model", *(f.name for f in fields(cls)
                                                  if f.name not in ("recipe", "model", *OMITTED_WHEN_UNSET))], "spec")
        for key, kind in (("recipe", Recipe), ("model", HINetConfig)):
            if isinstance(d[key], dict):
                _require_fields(d[key], [f.name for f in fields(kind)], key)
        r = Recipe(**check_stored(Recipe, d["recipe"], "recipe"))
        check_frozen_recipe_fields(r)
        m = HINetConfig(**check_stored(HINetConfig, d["model"], "model"))
        top = check_stored(cls, {k: v for k, v in d.items() if k not in ("recipe", "model")}, "spec")
        return cls(r, m, **top)

    @property
    def synthetic(self) -> bool:
        return self.data is None


# ----------------------------------------------------------------------------------------------- data
def training_pairs(spec: RunSpec) -> Dataset:
    """The paired training set of the recipe's task: real files under ``spec.data`` or synthetic."""
    from .data.locate import open_training_set
    from .data.synthetic import SyntheticPairs

    if spec.train_crops is not None:  # the official recipes train on offline 512² crops
        from .data.prepare import PreparedCrops

        return PreparedCrops(spec.train_crops)
    if spec.data is None:
        return SyntheticPairs(spec.recipe.task, "train", size=max(128, spec.recipe.crop), seed=spec.seed)
    return open_training_set(spec.recipe.task, spec.data)


def validation_sets(spec: RunSpec) -> dict[str, Dataset]:
    from .data.locate import open_test_sets
    from .data.synthetic import synthetic_test_sets

    if spec.data is None:
        return synthetic_test_sets(spec.recipe.task, size=128, count=spec.recipe.val_limit or 8)
    return open_test_sets(spec.recipe.task, spec.data)


class StepSampler(Sampler[int]):
    """Global sample numbers of steps [start, total) for one process: sample k of the run is drawn
    from pair perm_e[k mod n] with e = k div n (a fresh permutation per pass, seeded by (seed, e)),
    and its crop/transform are seeded by k itself; so the batch of step t is a pure function of
    (seed, t), whatever the number of processes and wherever the run was resumed."""

    def __init__(self, n_pairs: int, batch: int, start: int, total: int, seed: int, rank: int = 0, world: int = 1):
        self.n, self.batch, self.start, self.total = n_pairs, batch, start, total
        self.seed, self.rank, self.world = seed, rank, world
        self._perm: tuple[int, np.ndarray] | None = None

    def _pair(self, k: int) -> int:
        epoch = k // self.n
        if self._perm is None or self._perm[0] != epoch:
            self._perm = (epoch, np.random.default_rng([self.seed, epoch]).permutation(self.n))
        return epoch * self.n + int(self._perm[1][k % self.n])

    def __iter__(self):
        share = self.batch // self.world
        for step in range(self.start, self.total):
            first = step * self.batch + self.rank * share
            for k in range(first, first + share):
                yield self._pair(k)

    def __len__(self) -> int:
        return (self.total - self.start) * (self.batch // self.world)


# ----------------------------------------------------------------------------------------------- run dir
CONFIG, DONE, CHECKPOINT = "config.json", "done.json", Path("checkpoints") / "last.pth"


def load_spec(path: str | Path) -> RunSpec:
    """Read a run spec (the JSON of :meth:`RunSpec.to_dict`, or a ``config.json`` holding it under
    ``spec``); errors name the file and the field."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise PreflightError(f"{path}: no such run spec file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise PreflightError(f"{path}: not a JSON run spec ({err})") from None
    if isinstance(data, dict) and "spec" in data and "recipe" not in data:
        data = data["spec"]
    try:
        return RunSpec.from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise PreflightError(f"{path}: invalid run spec: {rec_message(err)}") from None


def rec_message(err: BaseException) -> str:
    return f"missing field {err}" if isinstance(err, KeyError) else str(err)


def _stored_spec(run_dir: Path) -> dict:
    path = run_dir / CONFIG
    try:
        return json.loads(path.read_text())["spec"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as err:
        raise RunConflictError(f"{path}: unreadable run config ({rec_message(err)}); delete {run_dir} to start "
                               f"the run again") from None


def _prepare_dir(run_dir: Path, spec: RunSpec, resume: bool) -> bool:
    """Validate the run directory. Returns True when a checkpoint should be resumed."""
    ckpt = run_dir / CHECKPOINT
    if (run_dir / CONFIG).exists():
        theirs = rec.config_hash(_stored_spec(run_dir))
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
        import fcntl

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


def _write_config(run_dir: Path, spec: RunSpec, env: dict) -> None:
    body = {"spec": spec.to_dict(), "config_hash": rec.config_hash(spec.to_dict()), **env}
    atomic_write_text(run_dir / CONFIG, json.dumps(body, indent=2, sort_keys=True))


# ----------------------------------------------------------------------------------------------- dist
def _dist() -> tuple[int, int, int]:
    """(rank, world, local_rank) from torchrun's environment; initialises the process group."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, 0
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), world, int(os.environ.get("LOCAL_RANK", "0"))


def _resolve_device(device: str, local_rank: int) -> torch.device:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    return dev


def _device_label(dev: torch.device) -> str:
    """The device of a run as recorded: e.g. ``cpu``, ``cuda:0 (CUDA_VISIBLE_DEVICES=3)``."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return f"{dev} (CUDA_VISIBLE_DEVICES={visible})" if dev.type == "cuda" and visible is not None else str(dev)


# ----------------------------------------------------------------------------------------------- records
@dataclass
class Recorder:
    """The one writer of a run's metrics (rank 0): JSONL records, per-image Parquet files, TensorBoard."""

    spec: RunSpec
    run_id: str
    path: Path  # records JSONL
    common: dict[str, Any]
    tensorboard: Any = None  # torch.utils.tensorboard.SummaryWriter or None

    @classmethod
    def open(cls, spec: RunSpec, run_dir: Path, path: Path, run_id: str, env: dict, tensorboard: bool) -> Recorder:
        common = dict(run_id=run_id, family=spec.family, variant=spec.variant, reference=spec.reference,
                      seed=spec.seed,
                      git_commit=env["git_commit"], git_dirty=env["git_dirty"], config_hash=env["config_hash"],
                      device=env["device"], torch_version=torch.__version__, synthetic=spec.synthetic,
                      recipe=spec.recipe.kind)
        writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))
        return cls(spec, run_id, path, common, writer)

    @property
    def dataset(self) -> str:
        return ("synthetic-" + self.spec.recipe.task) if self.spec.synthetic else self.spec.recipe.name

    def _append(self, rows: list[rec.Record]) -> None:
        rec.append_records(self.path, rows)

    def model_size(self, params: int, macs: float) -> None:
        runs = [self.common] + [{**self.common, "run_id": f"{self.run_id}@{label}", "variant": label}
                                for label in evaluation_labels(self.spec).values()]
        self._append([rec.Record(**common, dataset=self.dataset, split="model", protocol="model", metric=k,
                                 value=float(v), step=0, time=rec.utc_now())
                      for common in runs for k, v in (("params", params), ("macs", macs))])

    def train(self, step: int, values: dict[str, float]) -> None:
        now = rec.utc_now()
        self._append([rec.Record(**self.common, dataset=self.dataset, split="train", protocol="train", metric=k,
                                 value=float(v), step=step, time=now) for k, v in values.items()])
        if self.tensorboard is not None:
            for k, v in values.items():
                self.tensorboard.add_scalar(f"train/{k}", v, step)

    def validation(self, step: int, results: list[SetResult], images: list[tuple[str, torch.Tensor]]) -> None:
        """Set means as records, per-image values as one Parquet file, scalars and images to TensorBoard.

        With ``spec.evaluations`` each evaluation is recorded as its own run (``<run id>@<label>``,
        variant ``label``) under the scoring protocol they share (the first evaluation's name): the
        inference treatment is the variant, so the report compares them like the variants of a family."""
        now = rec.utc_now()
        labels = evaluation_labels(self.spec)
        scoring = validation_protocols(self.spec)[0].name if labels else None
        rows, per_image = [], {}
        for res in results:
            common, protocol = self.common, res.protocol
            if labels:
                label, protocol = labels[res.protocol], scoring
                common = {**self.common, "run_id": f"{self.run_id}@{label}", "variant": label}
            image_rows = per_image.setdefault(common["run_id"], (common, []))[1]
            for metric, value in res.metrics.items():
                rows.append(rec.Record(**common, dataset=res.dataset, split="val", protocol=protocol,
                                       metric=metric, value=float(value), step=step, time=now))
                image_rows += [(res.dataset, "val", protocol, metric, name, scene, v)
                               for name, scene, v in zip(res.names, res.scenes, res.per_image[metric])]
        for common, image_rows in per_image.values():
            rec.write_image_metrics(rec.image_store(self.path), common, step, image_rows)
        self._append(rows)  # after the per-image files: a set mean is never recorded without its images
        if self.tensorboard is not None:
            for r in rows:
                self.tensorboard.add_scalar(f"val/{r.dataset}/{r.protocol}/{r.metric}", r.value, step)
            for name, grid in images:  # (3, H, 3W): degraded | restored | ground truth
                self.tensorboard.add_image(f"val_images/{name}", grid, step)
            self.tensorboard.flush()

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()


# ----------------------------------------------------------------------------------------------- preflight
def preflight(spec: RunSpec, run_dir: Path, records_path: Path, images_dir: Path | None,
              json_path: Path | None = None, verify: bool = True) -> tuple[Dataset, dict[str, Dataset]]:
    """Open the training data and the validation sets, and check every output path, before step 1.

    Returns (training pairs, validation sets). Each set must be non-empty and its first and last item
    must load; with ``verify`` every pair of real data is checked (exists, decodes, sizes match:
    :func:`hinet.data.verify.verify_pairs`). A missing dataset, an empty set, an undecodable file or an
    unwritable output raises a user error naming it.
    """
    check_output(run_dir, "--run-dir", folder=True)
    check_output(run_dir / CHECKPOINT, "--run-dir")
    check_output(records_path, "--records")
    check_output(rec.image_store(records_path), "--records", folder=True)
    if images_dir is not None:
        check_output(images_dir, "--images-dir", folder=True)
    if json_path is not None:
        check_output(json_path, "--json")
    validation_protocols(spec)  # a bad evaluation name fails here, not at the first validation
    pairs = training_pairs(spec)
    sets = validation_sets(spec)
    for name, ds in [("training data", pairs), *sets.items()]:
        if len(ds) == 0:
            raise PreflightError(f"{name}: no image pairs found (data: {spec.data or 'synthetic'})")
        for index in {0, len(ds) - 1}:
            item = ds[index]
            if item[1] is None:
                raise PreflightError(f"{name}: item {index} has no ground truth; cannot train or validate on it")
    if verify and (spec.data is not None or spec.train_crops is not None):
        from .data.verify import verify_pairs

        for ds in [pairs, *sets.values()]:
            verify_pairs(ds, progress=False)
    return pairs, sets


# ----------------------------------------------------------------------------------------------- train
@dataclass
class _Run:
    """Everything the loop needs, built by :func:`_setup`."""

    spec: RunSpec
    run_dir: Path
    rank: int
    world: int
    device: torch.device
    model: HINet
    optimizer: torch.optim.Optimizer
    step_fn: TrainStep
    loader: DataLoader
    accumulation: int
    start: int
    ckpt_every: int
    val_sets: dict[str, Dataset]
    recorder: Recorder | None  # rank 0 only
    env: dict[str, Any]
    images_dir: Path | None = None
    images_limit: int = 0
    on_validation: Callable[[int, dict], None] | None = None
    progress: bool = True
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / CHECKPOINT


def train(spec: RunSpec, run_dir: str | Path, *, resume: bool = False, device: str = "cpu", workers: int = 0,
          micro_batch: int | None = None, ckpt_every: int | None = None, records_path: str | Path | None = None,
          progress: bool = True, run_id: str | None = None,
          on_validation: Callable[[int, dict], None] | None = None, images_dir: str | Path | None = None,
          images_limit: int = 3, tensorboard: bool = True, verify: bool = True,
          precision_policy: str = "error") -> dict:
    """Train one run to completion (or resume it). Returns the final validation metrics
    ``{"<set>/<protocol>/<metric>": value}``. Raises :class:`RunConflictError`, :class:`NonFiniteLossError`,
    :class:`PreflightError` or a data/output error naming the file (all :class:`hinet.errors.UserError` or
    ValueError/OSError subclasses with one-line messages).

    ``records_path`` defaults to ``<run_dir>/records.jsonl``; ``run_id`` to the run directory's name.
    ``verify`` checks every file pair of real data before the first step (``hinet.data.verify``).
    ``precision_policy`` (``hinet.hardware.resolve_precision``): a reduced precision that would be slower
    than fp32 on the device is refused (``error``), replaced by fp32 in the spec (``warn``) or run (``force``).
    ``images_dir``: the final validation also writes the first ``images_limit`` images of the first
    validation set (input, target, and this run's output under ``<images_dir>/<variant>/``) for the report's
    visual comparison grid. ``on_validation(step, metrics)``, if given, runs on rank 0 after each validation
    has been recorded; an exception it raises (e.g. ``optuna.TrialPruned``) ends the run there (the last
    checkpoint is the previous one) and propagates to the caller.
    """
    run_dir = Path(run_dir)
    if (run_dir / DONE).exists():  # finished: never repeated (the spec must still match)
        _prepare_dir(run_dir, spec, True)
        try:
            return json.loads((run_dir / DONE).read_text())["metrics"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise RunConflictError(f"{run_dir / DONE}: unreadable ({rec_message(err)}); delete it to "
                                   f"validate the run again") from None
    lock = RunLock(run_dir)
    try:
        if run_dir.is_dir() and int(os.environ.get("RANK", "0")) == 0:
            lock.acquire()  # an existing run directory: refuse a second trainer before anything else
        run = _setup(spec, run_dir, resume=resume, device=device, workers=workers, micro_batch=micro_batch,
                     ckpt_every=ckpt_every, records_path=records_path, run_id=run_id, tensorboard=tensorboard,
                     images_dir=images_dir, images_limit=images_limit, on_validation=on_validation,
                     progress=progress, verify=verify, precision_policy=precision_policy, lock=lock)
        try:
            _loop(run)
            return _finish(run)
        finally:
            if run.recorder is not None:
                run.recorder.close()
    finally:
        lock.release()


def _setup(spec: RunSpec, run_dir: Path, *, resume: bool, device: str, workers: int, micro_batch: int | None,
           ckpt_every: int | None, records_path: str | Path | None, run_id: str | None, tensorboard: bool,
           images_dir: str | Path | None, images_limit: int, on_validation, progress: bool, verify: bool,
           precision_policy: str, lock: RunLock) -> _Run:
    """Validate the run directory, run the preflight, build the model, optimiser, data and recorder."""
    from .data.patches import PatchDataset
    from .hardware import describe, resolve_precision

    rank, world, local_rank = _dist()
    dev = _resolve_device(device, local_rank)
    effective = resolve_precision(spec.precision, dev, precision_policy)
    if effective != spec.precision:  # policy "warn": the run is what it really computes
        spec = replace(spec, precision=effective)
    r = spec.recipe
    do_resume = _prepare_dir(run_dir, spec, resume)
    if r.batch_size % world:
        raise PreflightError(f"global batch {r.batch_size} is not divisible by {world} processes")
    per_process = r.batch_size // world
    micro = min(micro_batch or per_process, per_process)
    if micro < 1 or per_process % micro:
        raise PreflightError(f"--micro-batch {micro_batch}: expected a divisor of the per-process batch "
                             f"{per_process}")
    accum = per_process // micro
    records_path = Path(records_path) if records_path is not None else run_dir / "records.jsonl"
    images = Path(images_dir) if images_dir is not None else None
    pairs, val_sets = preflight(spec, run_dir, records_path, images if rank == 0 else None, verify=verify)
    commit, dirty = rec.git_info()
    hardware = describe(dev)
    # the device as every record states it, with the hardware (CPU kind and capability: numbers differ by machine)
    env = {"git_commit": commit, "git_dirty": dirty, "torch": torch.__version__,
           "device": f"{_device_label(dev)}: {hardware}", "world_size": world, "micro_batch": micro,
           "accumulation": accum, "config_hash": rec.config_hash(spec.to_dict()), "hardware": hardware}
    if rank == 0:
        lock.acquire()  # the first thing a run creates: a refused run leaves no folder behind
        _write_config(run_dir, spec, env)
        if accum > 1:
            print(f"[hinet.train] keeping the recipe's global batch {r.batch_size}: {world} process(es) x "
                  f"{accum} accumulation step(s) x micro-batch {micro}", flush=True)

    torch.manual_seed(spec.seed)  # identical initial weights on every process (and across variants' shapes)
    model = HINet(spec.model)
    if spec.init == "per-module":
        model.reset_parameters(spec.seed)  # same weights per module name in every variant
    model = model.to(dev)
    if spec.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if spec.fused_norm or spec.inplace_act:
        from .fast import set_fused_norm, set_inplace_activations

        set_fused_norm(model, spec.fused_norm)
        set_inplace_activations(model, spec.inplace_act)
    opt = torch.optim.Adam(model.parameters(), lr=r.lr, betas=r.betas, weight_decay=r.weight_decay)
    start = 0
    if do_resume:
        from .checkpoint import restore_training_state

        start = restore_training_state(run_dir / CHECKPOINT, model, opt, map_location=dev)
    net: Any = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    criterion = MultiStageLoss(make_loss(r.loss, r.loss_weight))
    step_fn = TrainStep(net, criterion, opt, grad_clip=r.grad_clip, precision=spec.precision,
                        channels_last=spec.channels_last)
    n = len(pairs)
    epochs = math.ceil(r.total_iters * r.batch_size / n) + 1
    patches = PatchDataset(pairs, r.crop, augment={"none": None}.get(r.augment, r.augment), length=n * epochs,
                           seed=spec.seed, cache=spec.synthetic)
    sampler = StepSampler(n, r.batch_size, start, r.total_iters, spec.seed, rank, world)
    loader = DataLoader(patches, batch_size=micro, sampler=sampler, num_workers=workers,
                        pin_memory=dev.type == "cuda", persistent_workers=False)
    recorder = None
    if rank == 0:
        recorder = Recorder.open(spec, run_dir, records_path, run_id or run_dir.name, env, tensorboard)
        if start == 0:
            from .complexity import ptflops_macs

            probe = HINet(spec.model).eval()  # counted on a CPU copy: the trained model stays where it is
            recorder.model_size(count_parameters(probe), ptflops_macs(probe, (256, 256), spec.model.in_channels))
    return _Run(spec, run_dir, rank, world, dev, model, opt, step_fn, loader, accum, start,
                ckpt_every or r.val_every, val_sets, recorder, env, images, images_limit, on_validation, progress)


def _loop(run: _Run) -> None:
    """Steps ``start .. total_iters``: log, validate, then checkpoint, at their periods."""
    from tqdm import tqdm

    r = run.spec.recipe
    bar = tqdm(total=r.total_iters, initial=run.start, disable=not run.progress or run.rank != 0,
               desc=run.spec.variant, unit="it")
    it = iter(run.loader)
    running = torch.zeros((), device=run.device)
    t0, seen, window = time.perf_counter(), 0, 0
    run.model.train()
    for step in range(run.start, r.total_iters):
        for group in run.optimizer.param_groups:
            group["lr"] = lr_at(r, step)
        micro = [(d, c) for d, c, _ in (next(it) for _ in range(run.accumulation))]
        running += run.step_fn(micro)
        seen += r.batch_size
        window += 1
        done = step + 1
        last = done == r.total_iters
        ckpt_due = done % run.ckpt_every == 0 or last
        if done % r.log_every == 0 or ckpt_due:
            loss_value = _mean_over_processes(running, run.world) / window  # the only host sync of a step
            running.zero_()
            if not math.isfinite(loss_value):
                raise NonFiniteLossError(f"loss became {loss_value} before step {done}; the last good "
                                         f"checkpoint {run.checkpoint_path} (if any) is kept")
            values = {"loss": loss_value, "lr": lr_at(r, step), "images_per_s": seen / (time.perf_counter() - t0)}
            t0, seen, window = time.perf_counter(), 0, 0
            if run.recorder is not None:
                run.recorder.train(done, values)
                if not run.progress:
                    print(f"[train] {run.spec.variant} step {done}/{r.total_iters} loss {loss_value:.5f} "
                          f"lr {values['lr']:.3g} {values['images_per_s']:.1f} img/s", flush=True)
            bar.set_postfix(loss=f"{loss_value:.4f}")
        bar.update(1)
        if (done % r.val_every == 0 or last) and run.rank == 0:
            run.metrics = _validate(run, done, final=last)
            run.model.train()
        if ckpt_due:
            _checkpoint(run, done)  # after the validation of the same step: resume never skips a validation
    bar.close()


def _checkpoint(run: _Run, step: int) -> None:
    if run.rank == 0:
        atomic_save({"model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(), "step": step},
                    run.checkpoint_path)


def evaluation_labels(spec: RunSpec) -> dict[str, str]:
    """``{protocol name: label}`` of ``spec.evaluations`` (empty without them)."""
    from .evaluate import parse_protocol

    out = {}
    for item in spec.evaluations:
        label, sep, text = item.partition("=")
        if not sep or not label:
            raise PreflightError(f"evaluations: {item!r}: expected label=<task>/<protocol>")
        out[parse_protocol(text).name] = label
    return out


def validation_protocols(spec: RunSpec) -> list:
    """The protocols every validation scores: ``spec.evaluations`` or the task's defaults."""
    from .evaluate import parse_protocol

    if spec.evaluations:
        evaluation_labels(spec)  # validates the labels
        protocols = [parse_protocol(item.partition("=")[2]) for item in spec.evaluations]
        scoring = {(p.quantize, p.clamp, p.y_channel, p.y_round, p.ssim, p.peak) for p in protocols}
        if len(scoring) > 1:
            raise PreflightError(f"evaluations {list(spec.evaluations)}: the treatments must share one scoring "
                                 f"(clamp/uint8/Y/SSIM/peak) and differ only in inference (tiling, TLC)")
        return protocols
    return default_protocols(spec.recipe.task)


def _validate(run: _Run, step: int, final: bool) -> dict:
    """Score the validation sets (rank 0), record them, call the hook; returns the flat metrics."""
    save_dir = run.images_dir if final and run.images_dir is not None and run.images_limit > 0 else None
    protocols = validation_protocols(run.spec)
    modes: dict[tuple, list] = {}
    for p in protocols:  # one evaluate() per inference mode (tiling, TLC)
        modes.setdefault(p.mode, []).append(p)
    results = []
    for k, group in enumerate(modes.values()):
        results += evaluate(run.model, run.val_sets, group, limit=run.spec.recipe.val_limit, device=run.device,
                            progress=False, save_dir=save_dir if k == 0 else None, save_limit=run.images_limit,
                            label=run.spec.variant)
    images = _tensorboard_images(run) if run.recorder is not None and run.recorder.tensorboard is not None else []
    assert run.recorder is not None
    run.recorder.validation(step, results, images)
    metrics = {f"{res.dataset}/{res.protocol}/{k}": v for res in results for k, v in res.metrics.items()}
    print(f"[val] {run.spec.variant} step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()),
          flush=True)
    if run.on_validation is not None:  # hook for hyper-parameter search (hinet.tune): report / prune
        run.on_validation(step, metrics)
    return metrics


def _tensorboard_images(run: _Run, count: int = 2) -> list[tuple[str, torch.Tensor]]:
    """(name, CHW grid in [0,1]) for the first ``count`` images of the first validation set."""
    name, ds = next(iter(run.val_sets.items()))
    out = []
    with torch.inference_mode():
        run.model.eval()
        for index in range(min(count, len(ds))):
            degraded, clean, image = ds[index]
            pred = run.model(degraded[None].to(run.device))[-1][0].float().clamp(0, 1).cpu()
            out.append((f"{name}/{image}", torch.cat([degraded, pred, clean], dim=-1)))  # (3, H, 3W)
    return out


def _finish(run: _Run) -> dict:
    """Validate if the run was resumed at its very end, save the final network, write done.json."""
    if run.rank != 0:
        return {}
    r = run.spec.recipe
    if not run.metrics:  # resumed after the final checkpoint (e.g. killed during the final validation)
        run.metrics = _validate(run, r.total_iters, final=True)
    save(run.model, run.run_dir / "model.pth", meta={"seed": run.spec.seed, "git_commit": run.env["git_commit"]})
    atomic_write_text(run.run_dir / DONE, json.dumps({"metrics": run.metrics}, indent=2, allow_nan=False))
    return run.metrics


def _mean_over_processes(value: torch.Tensor, world: int) -> float:
    if world > 1:
        import torch.distributed as dist

        value = value.clone()
        dist.all_reduce(value)
        value /= world
    return float(value)


def validate_model(model: torch.nn.Module, spec: RunSpec, device) -> list:
    """Score the model on the recipe's validation sets under the task's default protocols."""
    return evaluate(model, validation_sets(spec), default_protocols(spec.recipe.task), limit=spec.recipe.val_limit,
                    device=device, progress=False)


# ----------------------------------------------------------------------------------------------- CLI
# Recipe fields that --recipe-set may not change, and what to use instead: the network is built from the
# preset before the overrides apply, and a proxy run must never be labelled paper (or the reverse).
FROZEN_RECIPE_FIELDS = {"name": "choose the recipe with --recipe",
                        "preset": "choose the network with --preset",
                        "proxy": "choose a paper recipe or its -proxy with --recipe"}


def check_frozen_recipe_fields(r: Recipe) -> None:
    """A spec's recipe is a known recipe, and its :data:`FROZEN_RECIPE_FIELDS` are that recipe's (a proxy
    run is never labelled paper, the network's preset never relabelled)."""
    from .recipes import RECIPES

    if r.name not in RECIPES:
        raise ValueError(f"recipe.name={r.name!r}: unknown recipe; expected one of {sorted(RECIPES)}")
    named = RECIPES[r.name]
    for key in FROZEN_RECIPE_FIELDS:
        if getattr(r, key) != getattr(named, key):
            raise ValueError(f"recipe.{key}={getattr(r, key)!r}: the recipe {r.name!r} has {key}="
                             f"{getattr(named, key)!r}; {FROZEN_RECIPE_FIELDS[key]}")


def _scaled_build(cfg: HINetConfig, **values) -> HINetConfig:
    """width/depth go through scaled() so that a partial HIN range follows the depth; then the rest."""
    width, depth = values.pop("width", cfg.width), values.pop("depth", cfg.depth)
    return replace(scaled(cfg, width=width, depth=depth), **values)


def with_iters(r: Recipe, iters: int) -> Recipe:
    """The recipe shortened (or lengthened) to ``iters`` steps, keeping warm-up and validation inside it."""
    if iters < 1:
        raise UserError(f"--iters {iters}: expected a positive number of training steps")
    return replace(r, total_iters=iters, warmup_iters=min(r.warmup_iters, iters - 1), val_every=min(r.val_every, iters))


def spec_from_args(a: argparse.Namespace) -> RunSpec:
    """The run spec of an ad-hoc command line (recipe, preset, overrides, seed, data, fast switches).

    Overrides are parsed by each field's declared type (``csff=no`` is False; see :mod:`hinet.fields`)."""
    from .recipes import RECIPES

    if a.recipe not in RECIPES:
        raise UserError(f"--recipe {a.recipe!r}: unknown recipe; expected one of {sorted(RECIPES)}")
    r = recipe(a.recipe)
    if a.iters is not None:
        r = with_iters(r, a.iters)
    from .config import PRESETS
    from .fields import apply_overrides

    name = a.preset or r.preset
    if name not in PRESETS:
        raise UserError(f"--preset {name!r}: unknown network preset; expected one of {sorted(PRESETS)}")
    cfg = preset(name)
    r = apply_overrides(r, a.recipe_set, "--recipe-set", frozen=FROZEN_RECIPE_FIELDS)
    net = apply_overrides(r.network(cfg), a.model_set, "--model-set", build=_scaled_build)
    return RunSpec(r, net, r.seed if a.seed is None else a.seed, a.data, "adhoc", name, a.precision,
                   a.channels_last, a.train_crops, a.fused_norm, a.inplace_act)


SPEC_FLAGS = ("recipe", "preset", "seed", "data", "train_crops", "iters", "precision", "channels_last", "fused_norm",
              "inplace_act", "recipe_set", "model_set")


def build_parser() -> argparse.ArgumentParser:
    from .errors import ArgumentParser  # usage errors in one line

    p = ArgumentParser(prog="python -m hinet.train", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--spec", default=None, help="a complete run spec (JSON of RunSpec.to_dict()); excludes the\n"
                   "spec flags below (--recipe ... --model-set)")
    p.add_argument("--recipe", default=None, help="recipe name (hinet.recipes.RECIPES; default sidd-proxy)")
    p.add_argument("--preset", default=None, help="network preset (default: the recipe's)")
    p.add_argument("--seed", type=int, default=None, help="default: the recipe's official seed")
    p.add_argument("--data", default=None, help="dataset directory (default: the synthetic counterpart)")
    p.add_argument("--train-crops", default=None,
                   help="train on crops prepared by `python -m hinet.data.prepare` (as the official recipes did)")
    p.add_argument("--iters", type=int, default=None, help="override the recipe's total iterations")
    p.add_argument("--precision", default=None, choices=sorted(PRECISIONS))
    p.add_argument("--channels-last", action="store_true", default=None)
    p.add_argument("--fused-norm", action="store_true", default=None,
                   help="fused half instance norm (same numbers, faster)")
    p.add_argument("--inplace-act", action="store_true", default=None,
                   help="in-place LeakyReLU (same numbers, less memory)")
    p.add_argument("--recipe-set", action="append", default=None, metavar="FIELD=VALUE",
                   help="override a recipe field, parsed by its type, e.g. --recipe-set crop=48; repeatable")
    p.add_argument("--model-set", action="append", default=None, metavar="FIELD=VALUE",
                   help="override a network field after proxy scaling, e.g. --model-set csff=false; repeatable")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--run-id", default=None, help="run id in the records (default: the run directory's name)")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last checkpoint")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 or auto")
    p.add_argument("--workers", type=int, default=0, help="data-loader worker processes")
    p.add_argument("--micro-batch", type=int, default=None, help="per-step micro-batch (accumulates to the recipe's)")
    p.add_argument("--ckpt-every", type=int, default=None, help="checkpoint period (default: validation period)")
    p.add_argument("--records", default=None, help="records JSONL to append to (default: <run-dir>/records.jsonl)")
    p.add_argument("--images-dir", default=None, help="the final validation writes comparison images here")
    p.add_argument("--images-limit", type=int, default=3, help="images written to --images-dir")
    p.add_argument("--no-tensorboard", action="store_true", help="write no TensorBoard event files")
    p.add_argument("--no-verify", action="store_true",
                   help="skip checking every training and validation pair (exists, decodes, sizes) before step 1")
    p.add_argument("--precision-policy", default="error", choices=["error", "warn", "force"],
                   help="when --precision bf16/fp16 would be slower than fp32 on this device: refuse (default),\n"
                        "warn and train in fp32 (recorded as fp32), or force it")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--debug", action="store_true", help="show tracebacks of user errors")
    return p


def resolve_spec(a: argparse.Namespace) -> RunSpec:
    if a.spec is not None:
        given = [f"--{k.replace('_', '-')}" for k in SPEC_FLAGS if getattr(a, k) not in (None, [])]
        if given:
            raise UserError(f"--spec {a.spec}: the spec is complete; drop {', '.join(given)}")
        return load_spec(a.spec)
    a.recipe = a.recipe or proxy_name("sidd")
    a.precision = a.precision or "fp32"
    for k in ("channels_last", "fused_norm", "inplace_act"):
        setattr(a, k, bool(getattr(a, k)))
    a.recipe_set, a.model_set = a.recipe_set or [], a.model_set or []
    return spec_from_args(a)


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)

    def body() -> int:
        for flag, value, least in (("--workers", a.workers, 0), ("--ckpt-every", a.ckpt_every, 1),
                                   ("--micro-batch", a.micro_batch, 1), ("--images-limit", a.images_limit, 0)):
            if value is not None and value < least:
                raise UserError(f"{flag} {value}: expected a number >= {least}")
        spec = resolve_spec(a)
        metrics = train(spec, a.run_dir, resume=a.resume, device=a.device, workers=a.workers,
                        micro_batch=a.micro_batch, ckpt_every=a.ckpt_every, records_path=a.records,
                        progress=not a.no_progress, run_id=a.run_id, images_dir=a.images_dir,
                        images_limit=a.images_limit, tensorboard=not a.no_tensorboard, verify=not a.no_verify,
                        precision_policy=a.precision_policy)
        if int(os.environ.get("RANK", "0")) == 0:
            print(json.dumps(metrics, indent=2, allow_nan=False))
        return 0

    return run_command("hinet.train", body, argv)


if __name__ == "__main__":
    sys.exit(main())
