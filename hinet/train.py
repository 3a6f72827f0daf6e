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
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

from . import records as rec
from .arch import count_parameters
from .atomic import atomic_write_text, check_output
from .build import build_model, build_training
from .checkpoint import atomic_save, restore_training_state, save
from .complexity import ptflops_macs
from .data.locate import open_test_sets, open_training_set
from .data.patches import PatchDataset
from .data.prepare import PreparedCrops
from .data.synthetic import SyntheticPairs, synthetic_test_sets
from .data.verify import verify_pairs
from .errors import ArgumentParser, UserError, run_command
from .evaluate import evaluate
from .hardware import describe, resolve_precision
from .image_records import image_store
from .recipes import lr_at
from .recorder import Recorder
from .rundir import CHECKPOINT, DONE, RunConflictError, RunLock, prepare_dir, write_config
from .spec import PreflightError, RunSpec, add_spec_arguments, rec_message, resolve_spec, validation_protocols
from .step import TrainStep


class NonFiniteLossError(UserError, FloatingPointError):
    """The loss became NaN/inf; the last good checkpoint is kept."""


# ----------------------------------------------------------------------------------------------- data
def training_pairs(spec: RunSpec) -> Dataset:
    """The paired training set of the recipe's task: real files under ``spec.data`` or synthetic."""
    if spec.train_crops is not None:  # the official recipes train on offline 512² crops
        return PreparedCrops(spec.train_crops)
    if spec.data is None:
        return SyntheticPairs(spec.recipe.task, "train", size=max(128, spec.recipe.crop), seed=spec.seed)
    return open_training_set(spec.recipe.task, spec.data)


def validation_sets(spec: RunSpec) -> dict[str, Dataset]:
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

# ----------------------------------------------------------------------------------------------- dist
def _dist() -> tuple[int, int, int]:
    """(rank, world, local_rank) from torchrun's environment; initialises the process group."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, 0
    import torch.distributed as dist  # only under torchrun (more than one process)

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
    check_output(image_store(records_path), "--records", folder=True)
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
    model: torch.nn.Module
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
        prepare_dir(run_dir, spec, True)
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

    rank, world, local_rank = _dist()
    dev = _resolve_device(device, local_rank)
    effective = resolve_precision(spec.precision, dev, precision_policy)
    if effective != spec.precision:  # policy "warn": the run is what it really computes
        spec = replace(spec, precision=effective)
    r = spec.recipe
    do_resume = prepare_dir(run_dir, spec, resume)
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
        write_config(run_dir, spec, env)
        if accum > 1:
            print(f"[hinet.train] keeping the recipe's global batch {r.batch_size}: {world} process(es) x "
                  f"{accum} accumulation step(s) x micro-batch {micro}", flush=True)

    net_wrap = None
    if world > 1:
        def net_wrap(model: torch.nn.Module) -> torch.nn.Module:
            return torch.nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda"
                                                             else None)
    parts = build_training(spec, dev, wrap=net_wrap)
    start = restore_training_state(run_dir / CHECKPOINT, parts.model, parts.optimizer, map_location=dev) \
        if do_resume else 0
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
            probe = build_model(spec).eval()  # counted on a CPU copy: the trained model stays where it is
            recorder.model_size(count_parameters(probe), ptflops_macs(probe, (256, 256), spec.model.in_channels))
    return _Run(spec, run_dir, rank, world, dev, parts.model, parts.optimizer, parts.step, loader, accum, start,
                ckpt_every or r.val_every, val_sets, recorder, env, images, images_limit, on_validation, progress)


def _loop(run: _Run) -> None:
    """Steps ``start .. total_iters``: log, validate, then checkpoint, at their periods."""
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
        import torch.distributed as dist  # only under torchrun (more than one process)

        value = value.clone()
        dist.all_reduce(value)
        value /= world
    return float(value)


# ----------------------------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m hinet.train", description=__doc__.split("\n\n")[0],
                       formatter_class=argparse.RawTextHelpFormatter)
    add_spec_arguments(p)
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
