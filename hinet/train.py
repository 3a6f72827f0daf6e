"""Training: ``python -m hinet.train --recipe sidd-proxy --run-dir runs/x`` (or under torchrun).

A run is a directory::

    config.json       the resolved run spec (recipe, network, seed, data) + environment and git commit
    checkpoints/last.pth   model, optimiser, step (written atomically: temp file, fsync, rename)
    model.pth         the final network in this suite's format (config travels with the weights)
    log.jsonl         one line per log period (loss, lr, images/s) and per validation (metrics)
    done.json         written last: final validation metrics; a run with it is never repeated

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
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from . import records as rec
from .arch import HINet, count_parameters
from .checkpoint import atomic_save, save
from .config import HINetConfig, preset, scaled
from .data.io import DatasetError, DatasetNotFoundError
from .evaluate import default_protocols, evaluate
from .losses import MultiStageLoss, make_loss
from .recipes import Recipe, lr_at, recipe


class RunConflictError(RuntimeError):
    """The run directory holds a different run, or a run that needs ``--resume``."""


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN/inf; the last good checkpoint is kept."""


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

    def to_dict(self) -> dict:
        out = {"recipe": self.recipe.to_dict(), "model": self.model.to_dict(), "seed": self.seed,
               "data": self.data, "family": self.family, "variant": self.variant,
               "precision": self.precision, "channels_last": self.channels_last}
        for key in ("train_crops", "fused_norm", "inplace_act"):  # only when set: existing run hashes stay valid
            if getattr(self, key):
                out[key] = getattr(self, key)
        return out

    @classmethod
    def from_dict(cls, d: dict) -> RunSpec:
        r = dict(d["recipe"])
        r["betas"] = tuple(r["betas"])
        return cls(Recipe(**r), HINetConfig.from_dict(d["model"]), d["seed"], d["data"], d["family"],
                   d["variant"], d["precision"], d["channels_last"], d.get("train_crops"),
                   d.get("fused_norm", False), d.get("inplace_act", False))

    @property
    def synthetic(self) -> bool:
        return self.data is None


# ----------------------------------------------------------------------------------------------- data
def training_pairs(spec: RunSpec) -> Dataset:
    """The paired training set of the recipe's task: real files under ``spec.data`` or synthetic."""
    from .data.locate import locate
    from .data.synthetic import SyntheticPairs

    task = spec.recipe.task
    if spec.train_crops is not None:  # the official recipes train on offline 512² crops
        from .data.prepare import PreparedCrops

        return PreparedCrops(spec.train_crops)
    if spec.data is None:
        return SyntheticPairs(task, "train", size=max(128, spec.recipe.crop), seed=spec.seed)
    from .data.gopro import GoPro
    from .data.rain13k import Rain13k
    from .data.sidd import SIDDMedium

    if task == "denoise":
        return SIDDMedium(locate(spec.data, "sidd-medium"))
    if task == "deblur":
        return GoPro(locate(spec.data, "gopro"), "train")
    return Rain13k(locate(spec.data, "rain13k"), "train")


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
def _prepare_dir(run_dir: Path, spec: RunSpec, resume: bool) -> bool:
    """Create/validate the run directory. Returns True when a checkpoint should be resumed."""
    cfg_path = run_dir / "config.json"
    ckpt = run_dir / "checkpoints" / "last.pth"
    if cfg_path.exists():
        theirs = rec.config_hash(json.loads(cfg_path.read_text())["spec"])
        mine = rec.config_hash(spec.to_dict())
        if theirs != mine:
            raise RunConflictError(f"{run_dir} holds another run (config hash {theirs}, this one {mine}); "
                                   f"choose another --run-dir or delete that directory")
        if ckpt.exists() and not resume and not (run_dir / "done.json").exists():
            raise RunConflictError(f"{run_dir} holds a started run of this spec; pass --resume to continue it")
        return ckpt.exists()
    if resume:
        raise RunConflictError(f"--resume given but {run_dir} holds no run")
    return False


def _write_config(run_dir: Path, spec: RunSpec, env: dict) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    body = {"spec": spec.to_dict(), "config_hash": rec.config_hash(spec.to_dict()), **env}
    tmp = run_dir / "config.json.tmp"
    tmp.write_text(json.dumps(body, indent=2, sort_keys=True))
    os.replace(tmp, run_dir / "config.json")


def _log(run_dir: Path, line: dict) -> None:
    with open(run_dir / "log.jsonl", "a") as f:
        f.write(json.dumps(line) + "\n")


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


# ----------------------------------------------------------------------------------------------- train
def train(spec: RunSpec, run_dir: str | Path, *, resume: bool = False, device: str = "cpu", workers: int = 0,
          micro_batch: int | None = None, ckpt_every: int | None = None, records_path: str | Path | None = None,
          progress: bool = True, run_id: str | None = None,
          on_validation: Callable[[int, dict], None] | None = None) -> dict:
    """Train one run to completion (or resume it). Returns the final validation metrics
    ``{"<set>/<protocol>/<metric>": value}``. Raises :class:`RunConflictError` / :class:`NonFiniteLossError`.

    ``on_validation(step, metrics)``, if given, runs on rank 0 after each validation has been logged
    (``metrics`` as returned); an exception it raises (e.g. ``optuna.TrialPruned``) ends the run there,
    before that step's checkpoint, and propagates to the caller. None changes nothing."""
    from tqdm import tqdm

    run_dir = Path(run_dir)
    rank, world, local_rank = _dist()
    dev = _resolve_device(device, local_rank)
    r = spec.recipe
    if (run_dir / "done.json").exists():  # finished: never repeated (the spec must still match)
        _prepare_dir(run_dir, spec, True)
        return json.loads((run_dir / "done.json").read_text())["metrics"]
    do_resume = _prepare_dir(run_dir, spec, resume)
    per_process = r.batch_size // world
    if r.batch_size % world:
        raise ValueError(f"global batch {r.batch_size} is not divisible by {world} processes")
    micro = min(micro_batch or per_process, per_process)
    if per_process % micro:
        raise ValueError(f"per-process batch {per_process} is not divisible by micro-batch {micro}")
    accum = per_process // micro
    commit, dirty = rec.git_info()
    env = {"git_commit": commit, "git_dirty": dirty, "torch": torch.__version__, "device": str(dev),
           "world_size": world, "micro_batch": micro, "accumulation": accum}
    if rank == 0:
        _write_config(run_dir, spec, env)
        if accum > 1:
            print(f"[hinet.train] keeping the recipe's global batch {r.batch_size}: {world} process(es) x "
                  f"{accum} accumulation step(s) x micro-batch {micro}")

    torch.manual_seed(spec.seed)  # identical initial weights on every process
    model = HINet(spec.model).to(dev)
    if spec.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if spec.fused_norm or spec.inplace_act:
        from .fast import set_fused_norm, set_inplace_activations

        set_fused_norm(model, spec.fused_norm)
        set_inplace_activations(model, spec.inplace_act)
    opt = torch.optim.Adam(model.parameters(), lr=r.lr, betas=r.betas, weight_decay=r.weight_decay)
    start = 0
    ckpt_path = run_dir / "checkpoints" / "last.pth"
    if do_resume:
        state = torch.load(ckpt_path, map_location=dev, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start = int(state["step"])
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    criterion = MultiStageLoss(make_loss(r.loss, r.loss_weight))

    from .data.patches import PatchDataset

    pairs = training_pairs(spec)
    n = len(pairs)
    epochs = math.ceil(r.total_iters * r.batch_size / n) + 1
    patches = PatchDataset(pairs, r.crop, augment={"none": None}.get(r.augment, r.augment), length=n * epochs,
                           seed=spec.seed, cache=spec.synthetic)
    sampler = StepSampler(n, r.batch_size, start, r.total_iters, spec.seed, rank, world)
    loader = DataLoader(patches, batch_size=micro, sampler=sampler, num_workers=workers,
                        pin_memory=dev.type == "cuda", persistent_workers=False)
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[spec.precision]
    autocast = torch.autocast(dev.type, dtype=dtype) if dtype is not None else nullcontext()
    scaler = torch.amp.GradScaler(dev.type, enabled=spec.precision == "fp16")
    ckpt_every = ckpt_every or r.val_every

    def checkpoint(step: int) -> None:
        if rank == 0:
            atomic_save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step}, ckpt_path)

    def validate(step: int) -> dict:  # rank 0 only
        results = validate_model(model, spec, dev)
        for res in results:
            _log(run_dir, {"step": step, "split": "val", "set": res.dataset, "protocol": res.protocol,
                           **res.metrics})
        metrics = {f"{res.dataset}/{res.protocol}/{k}": v for res in results for k, v in res.metrics.items()}
        if on_validation is not None:  # hook for hyper-parameter search (hinet.tune): report / prune
            on_validation(step, metrics)
        return metrics

    model.train()
    bar = tqdm(total=r.total_iters, initial=start, disable=not progress or rank != 0, desc=spec.variant, unit="it")
    it = iter(loader)
    running = torch.zeros((), device=dev)
    t0, seen, window = time.perf_counter(), 0, 0
    metrics: dict = {}
    for step in range(start, r.total_iters):
        for group in opt.param_groups:
            group["lr"] = lr_at(r, step)
        for j in range(accum):
            degraded, clean, _ = next(it)
            degraded = degraded.to(dev, non_blocking=True)
            clean = clean.to(dev, non_blocking=True)
            if spec.channels_last:
                degraded = degraded.contiguous(memory_format=torch.channels_last)
            sync = net.no_sync() if world > 1 and j < accum - 1 else nullcontext()
            with sync, autocast:
                loss = criterion(net(degraded), clean) / accum
            scaler.scale(loss).backward()
            running += loss.detach()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(model.parameters(), r.grad_clip)
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        seen += r.batch_size
        window += 1
        done = step + 1
        if done % r.log_every == 0 or done == r.total_iters or done % ckpt_every == 0:
            loss_value = _mean_over_processes(running, world) / window  # the only host sync of a step
            running.zero_()
            if not math.isfinite(loss_value):
                raise NonFiniteLossError(f"loss became {loss_value} before step {done}; the last good "
                                         f"checkpoint {ckpt_path} (if any) is kept")
            elapsed = time.perf_counter() - t0
            line = {"step": done, "split": "train", "loss": loss_value, "lr": lr_at(r, step),
                    "images_per_s": seen / elapsed}
            t0, seen, window = time.perf_counter(), 0, 0
            if rank == 0:
                _log(run_dir, line)
            bar.set_postfix(loss=f"{loss_value:.4f}")
        bar.update(1)
        if (done % r.val_every == 0 or done == r.total_iters) and rank == 0:
            metrics = validate(done)
            model.train()
        if done % ckpt_every == 0 or done == r.total_iters:
            checkpoint(done)
    bar.close()
    if rank == 0 and not metrics:  # resumed at the very end
        metrics = validate(r.total_iters)
    if rank == 0:
        save(model, run_dir / "model.pth", meta={"seed": spec.seed, "git_commit": commit})
        _write_records(spec, run_dir, model, records_path, run_id or run_dir.name, str(dev))
        tmp = run_dir / "done.json.tmp"
        tmp.write_text(json.dumps({"metrics": metrics}, indent=2))
        os.replace(tmp, run_dir / "done.json")
    return metrics


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


def _write_records(spec: RunSpec, run_dir: Path, model: HINet, path, run_id: str, device: str) -> None:
    """Turn the run's log into tidy records (train loss curve, validation curves, params and MACs)."""
    from .complexity import ptflops_macs

    path = Path(path) if path is not None else run_dir / "records.jsonl"
    stored = json.loads((run_dir / "config.json").read_text())
    common = dict(run_id=run_id, family=spec.family, variant=spec.variant, seed=spec.seed,
                  git_commit=stored["git_commit"], git_dirty=stored["git_dirty"],
                  config_hash=stored["config_hash"], device=device, torch_version=torch.__version__,
                  synthetic=spec.synthetic, recipe="proxy" if spec.recipe.proxy else "paper", time=rec.utc_now())
    dataset = "synthetic-" + spec.recipe.task if spec.synthetic else spec.recipe.name
    out = []
    for line in map(json.loads, (run_dir / "log.jsonl").read_text().splitlines()):
        if line["split"] == "train":
            for key in ("loss", "lr", "images_per_s"):
                out.append(rec.Record(**common, dataset=dataset, split="train", protocol="train",
                                      metric=key, value=float(line[key]), step=line["step"]))
        else:
            for key in ("psnr", "ssim"):
                if key in line:
                    out.append(rec.Record(**common, dataset=line["set"], split="val", protocol=line["protocol"],
                                          metric=key, value=float(line[key]), step=line["step"]))
    macs = ptflops_macs(model.cpu().eval(), (256, 256), spec.model.in_channels)
    for key, value in (("params", count_parameters(model)), ("macs", macs)):
        out.append(rec.Record(**common, dataset=dataset, split="model", protocol="256x256", metric=key,
                              value=float(value), step=0))
    rec.append_records(path, out)


# ----------------------------------------------------------------------------------------------- CLI
def _overrides(items: list[str], cls, flag: str) -> dict:
    """Parse FIELD=VALUE pairs (VALUE as JSON, else a string); unknown fields exit naming them."""
    from dataclasses import fields

    known = {f.name for f in fields(cls)}
    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or key not in known:
            raise SystemExit(f"{flag} {item!r}: expected FIELD=VALUE with FIELD one of {sorted(known)}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out[key] = tuple(value) if isinstance(value, list) else value
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--recipe", default="sidd-proxy", help="recipe name (hinet.recipes.RECIPES)")
    p.add_argument("--preset", default=None, help="network preset (default: the recipe's)")
    p.add_argument("--family", default=None, help="ablation family to take --variant from")
    p.add_argument("--variant", default=None, help="variant name inside --family")
    p.add_argument("--seed", type=int, default=None, help="default: the recipe's official seed")
    p.add_argument("--data", default=None, help="dataset directory (default: the synthetic counterpart)")
    p.add_argument("--train-crops", default=None,
                   help="train on crops prepared by `python -m hinet.data.prepare` (as the official recipes did)")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last checkpoint")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 or auto")
    p.add_argument("--workers", type=int, default=0, help="data-loader worker processes")
    p.add_argument("--micro-batch", type=int, default=None, help="per-step micro-batch (accumulates to the recipe's)")
    p.add_argument("--iters", type=int, default=None, help="override the recipe's total iterations")
    p.add_argument("--ckpt-every", type=int, default=None, help="checkpoint period (default: validation period)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--fused-norm", action="store_true", help="fused half instance norm (same numbers, faster)")
    p.add_argument("--inplace-act", action="store_true", help="in-place LeakyReLU (same numbers, less memory)")
    p.add_argument("--recipe-set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a recipe field (JSON value), e.g. --recipe-set crop=48; repeatable")
    p.add_argument("--model-set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a network field after proxy scaling, e.g. --model-set width=8; repeatable")
    p.add_argument("--records", default=None, help="records JSONL to append to (default: <run-dir>/records.jsonl)")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    r = recipe(a.recipe)
    if a.iters is not None:
        r = replace(r, total_iters=a.iters, warmup_iters=min(r.warmup_iters, a.iters - 1),
                    val_every=min(r.val_every, a.iters))
    if a.family:
        from ablations import family

        variants = family(a.family).VARIANTS
        if a.variant not in variants:
            raise SystemExit(f"unknown variant {a.variant!r} of family {a.family!r}; "
                             f"expected one of {sorted(variants)}")
        cfg, fam, var = variants[a.variant], a.family, a.variant
    else:
        cfg, fam, var = preset(a.preset or r.preset), "adhoc", a.preset or r.preset
    try:
        r = replace(r, **_overrides(a.recipe_set, Recipe, "--recipe-set"))
    except (TypeError, ValueError) as err:
        raise SystemExit(f"hinet.train: --recipe-set: {err}") from None
    net = r.network(cfg)
    model_set = _overrides(a.model_set, HINetConfig, "--model-set")
    try:  # width/depth go through scaled() so that a partial HIN range follows the depth
        net = scaled(net, width=model_set.pop("width", net.width), depth=model_set.pop("depth", net.depth))
        net = replace(net, **model_set)
    except ValueError as err:
        raise SystemExit(f"hinet.train: --model-set: {err}") from None
    spec = RunSpec(r, net, r.seed if a.seed is None else a.seed, a.data, fam, var, a.precision,
                   a.channels_last, a.train_crops, a.fused_norm, a.inplace_act)
    try:
        metrics = train(spec, a.run_dir, resume=a.resume, device=a.device, workers=a.workers,
                        micro_batch=a.micro_batch, ckpt_every=a.ckpt_every, records_path=a.records,
                        progress=not a.no_progress)
    except (RunConflictError, NonFiniteLossError, DatasetError, DatasetNotFoundError) as err:
        raise SystemExit(f"hinet.train: {err}") from None
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(metrics, indent=2))
    return metrics


if __name__ == "__main__":
    main()
