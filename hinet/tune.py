"""Optuna studies over training and architecture hyper-parameters at proxy scale.

``python -m hinet.tune --study S --trials 10`` (or ``nox -s tune -- --study S --trials 10``) runs 10 trials
of study ``S`` on the synthetic denoising proxy (``sidd-proxy``) and then writes its report. A trial
samples learning rate (log-uniform), batch, crop, width, normalised fraction of the encoder channels,
the (left, right) range of normalised encoder levels and the loss; it trains the proxy network with
those (``hinet.train.train``) and returns the mean validation PSNR (dB) over the task's validation
sets at the last iteration (maximised), scored with the task's first validation protocol that has a
fixed PSNR peak (``objective_protocol``: ``denoise/clamped``, ``deblur/official``, ``derain/official``;
``--protocol`` picks another). That PSNR is also reported to the trial after every validation, and
``MedianPruner(n_startup_trials, n_warmup_steps)`` stops trials that fall below the median of earlier
trials at the same iteration.

Storage (``--storage``): default the SQLite file ``<results>/optuna/<study>.db``; any RDB URL
(``sqlite:///path.db``, ``postgresql://user@host/db``, ``mysql://...``); or a path ending in ``.log`` /
``.jsonl``, an Optuna journal file (one append-only file with file locks, usable from many nodes on a
shared file system without a database server). ``--study`` always resumes an existing study of that
name; a study remembers its settings (recipe, iterations, data, search space) and refuses workers
with other ones, so intermediate values stay comparable.

Many workers, one study: ``--workers N`` starts N worker processes (``--gpus all`` or ``--gpus 0,1,2,3``
gives each its own GPU through ``CUDA_VISIBLE_DEVICES``, ``--gpus-per-worker K`` a slot of K), each with
its own sampler seed (``--seed`` + k), and rebuilds the figures when they finish (they run on the grid's
process launcher, :func:`hinet.grid.run_processes`: Ctrl-C stops them all); or start the same command
several times, e.g. in N terminals or as a Slurm
array (``sbatch --array=0-7 --wrap "python -m hinet.tune --study S --storage runs/S.log --trials 10"``);
each process runs ``--trials`` trials (``--total-trials`` caps the study instead). Use a journal file
or PostgreSQL/MySQL across nodes: SQLite suits processes on one host (its locking is unreliable on
NFS). On RDB storages a heartbeat marks trials of killed workers failed and re-queues them once; the
retry resumes the dead trial's run directory from its last checkpoint. Give workers different
``--seed`` values (or none): workers with one seed propose the same first trials. On a multi-GPU node
give each worker its own GPU (``CUDA_VISIBLE_DEVICES=i``); ``--threads`` splits CPU cores. PostgreSQL URLs
need a driver: ``postgresql+psycopg://user@host:5432/db`` (psycopg 3, installed with the dev extras) or
``postgresql+psycopg2://...``; ``tests/test_tune_postgres.py`` runs two workers on a real server.

Watching a study live: ``pip install optuna-dashboard`` (not a dependency of this package), then
``optuna-dashboard <storage-url>`` with the same URL the workers use, e.g. ``optuna-dashboard
sqlite:///results/optuna/sidd-proxy.db`` or ``optuna-dashboard postgresql+psycopg://user@host/db``
(recent versions also take a journal file path), and open http://127.0.0.1:8080/ (``--host``/``--port``
change it). It reads the storage, so it works while workers run, on any machine that reaches it.

Outputs: each trial trains in ``<runs-dir>/optuna-<study>-t<number>``; its trainer writes standard
records as it goes (family ``optuna``, variant ``<study>-t<number>``, recipe ``proxy``, synthetic flag)
to ``<results>/records/optuna.jsonl`` (a pruned trial's rows end at the step where it was pruned), and
the objective takes each validation's PSNR from the trainer's ``on_validation`` hook.
``tune_figures`` writes ``<results>/figures/optuna_<study>_{history,importances}.png``
and ``<results>/tables/optuna_<study>.csv`` (``--report-only`` rebuilds just these).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import optuna
import torch
from optuna.trial import TrialState

from .atomic import check_output
from .config import HINetConfig, preset
from .errors import ArgumentParser, UserError, run_command
from .evaluate import DEFAULT_PROTOCOLS, protocol
from .grid import Child, gpu_slots, parse_gpus, run_processes
from .losses import LOSSES
from .recipes import RECIPES, Recipe, paper_name, proxy_name, with_iters
from .report.figures import tune_figures  # the study's report (table and figures) lives with every figure
from .spec import RunSpec
from .tasks import NATURAL_PHOTOS_SET, STUDY, TASK_NAMES, TASKS
from .train import NonFiniteLossError, train
from .tune_storage import default_storage, open_storage

# Loss weights of the official recipes (PSNR loss 0.5 in GoPro/Rain13k, L1 1.0 in SIDD); Charbonnier
# has no HINet recipe and takes 1.0 as in MPRNet.
LOSS_WEIGHTS = {"psnr": 0.5, "l1": 1.0, "charbonnier": 1.0}


class StudyMismatchError(UserError):
    """An existing study was created with other settings (recipe, iterations, data or search space)."""


# ----------------------------------------------------------------------------------------------- space
@dataclass(frozen=True)
class SearchSpace:
    """What a trial samples. ``lr`` is a (low, high) log-uniform range; the rest are categorical choices.

    ``width`` are channels at the first U-Net level (even, and ``width * ratio`` whole for every
    ``norm_ratio``); ``norm_ratio`` fractions in [0, 1] of encoder channels that are instance-normalised
    (0.5 = the paper's HIN); ``crop`` training crop sides in pixels; ``loss`` names of
    ``hinet.losses.LOSSES``. The normalised level range is sampled over every (left, right) with
    0 <= left <= right < depth of the proxy network (it changes nothing when the ratio is 0).
    """

    lr: tuple[float, float] = (1e-4, 3e-3)
    batch: tuple[int, ...] = (4, 8, 16)
    crop: tuple[int, ...] = (48, 64, 96)
    width: tuple[int, ...] = (8, 12, 16, 24)
    norm_ratio: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    loss: tuple[str, ...] = ("psnr", "l1", "charbonnier")

    def check(self, depth: int, label: Callable[[str], str] = lambda name: f"SearchSpace.{name}") -> None:
        """Raise ``ValueError`` naming the field when a choice cannot build a valid proxy run.

        ``label(field)`` is how the field is named in the message (the command line passes ``--<field>``)."""
        lo, hi = self.lr
        if not 0 < lo <= hi:
            raise ValueError(f"{label('lr')} {lo:g} {hi:g}: expected 0 < low <= high")
        for name in ("batch", "crop", "width", "norm_ratio", "loss"):
            if not getattr(self, name):
                raise ValueError(f"{label(name)}: expected at least one choice")
        if any(b < 1 for b in self.batch):
            raise ValueError(f"{label('batch')}={list(self.batch)}: expected positive batch sizes")
        multiple = 2 ** (depth - 1)
        if any(c < multiple or c % multiple for c in self.crop):
            raise ValueError(f"{label('crop')}={list(self.crop)}: expected multiples of {multiple} (depth {depth})")
        if any(r < 0 or r > 1 for r in self.norm_ratio):
            raise ValueError(f"{label('norm_ratio')}={list(self.norm_ratio)}: expected fractions in [0, 1]")
        for w in self.width:
            bad = [r for r in self.norm_ratio if abs(w * r - round(w * r)) > 1e-9]
            if w < 2 or w % 2 or bad:
                raise ValueError(f"{label('width')}={w}: expected an even width with width * ratio whole "
                                 f"for every norm_ratio (fails for {bad or 'odd width'})")
        unknown = sorted(set(self.loss) - set(LOSSES))
        if unknown:
            raise ValueError(f"{label('loss')}: unknown {', '.join(map(repr, unknown))}; expected some of "
                             f"{sorted(LOSSES)}")

    @staticmethod
    def level_ranges(depth: int) -> list[str]:
        """Every normalised level range of a ``depth``-level network as ``"left-right"`` strings
        (Optuna categoricals hold scalars, not tuples)."""
        return [f"{left}-{right}" for left in range(depth) for right in range(left, depth)]

    def suggest(self, trial: optuna.Trial, depth: int) -> dict:
        """Sample one point: ``{"lr", "batch", "crop", "width", "norm_ratio", "norm_levels", "loss"}``."""
        return {
            "lr": trial.suggest_float("lr", *self.lr, log=True),
            "batch": trial.suggest_categorical("batch", list(self.batch)),
            "crop": trial.suggest_categorical("crop", list(self.crop)),
            "width": trial.suggest_categorical("width", list(self.width)),
            "norm_ratio": trial.suggest_categorical("norm_ratio", list(self.norm_ratio)),
            "norm_levels": trial.suggest_categorical("norm_levels", self.level_ranges(depth)),
            "loss": trial.suggest_categorical("loss", list(self.loss)),
        }


# ----------------------------------------------------------------------------------------------- specs
def base_recipe(name: str, iters: int, *, val_every: int | None = None, val_limit: int | None = None) -> Recipe:
    """The proxy recipe trials start from: the paper recipe's proxy shortened to ``iters`` iterations (so the
    warm-up and validation period scale with it), optionally another validation period / image limit."""
    paper = paper_name(name)
    if paper not in RECIPES or RECIPES[paper].proxy:
        raise ValueError(f"unknown recipe {name!r}; expected a paper recipe or its proxy, one of "
                         f"{sorted(n for n in RECIPES if not RECIPES[n].proxy)} (with or without -proxy)")
    if iters < 1:
        raise ValueError(f"iters={iters}: expected at least 1 iteration per trial")
    r = with_iters(RECIPES[proxy_name(paper)], iters)
    overrides: dict = {}
    if val_every is not None:
        overrides["val_every"] = val_every
    if val_limit is not None:
        overrides["val_limit"] = val_limit
    return replace(r, **overrides)


def base_config(recipe: Recipe) -> HINetConfig:
    """The recipe's published network shrunk to proxy scale (``Recipe.network``)."""
    return recipe.network(preset(recipe.preset))


def trial_spec(recipe: Recipe, params: dict, *, seed: int, data: str | None, variant: str):
    """The ``RunSpec`` of one trial: ``params`` (as from :meth:`SearchSpace.suggest`) replaced into the
    proxy recipe and its scaled network. The learning-rate floor keeps the recipe's eta_min / lr ratio."""
    left, right = (int(v) for v in params["norm_levels"].split("-"))
    net = replace(base_config(recipe), width=params["width"], norm_ratio=float(params["norm_ratio"]),
                  norm_levels=(left, right))
    lr = float(params["lr"])
    r = replace(recipe, lr=lr, eta_min=recipe.eta_min / recipe.lr * lr, batch_size=params["batch"],
                crop=params["crop"], loss=params["loss"], loss_weight=LOSS_WEIGHTS[params["loss"]])
    return RunSpec(r, net, seed, data, family=STUDY, variant=variant)


# ----------------------------------------------------------------------------------------------- objective
def objective_protocol(task: str, name: str | None = None) -> str:
    """Full name of the protocol whose PSNR a study maximises, e.g. ``denoise/clamped``.

    Only the task's validation protocols (``hinet.evaluate.DEFAULT_PROTOCOLS``) are logged by training.
    By default the first of them with a fixed peak: ``denoise/official`` reproduces the official SIDD
    heuristic (peak 255 whenever an image's raw float output exceeds 1), which adds 20*log10(255) = 48.13 dB
    to any image a network overshoots on, so a search on it would reward overshooting (an example in the
    README's "From an ablation line to its verdict").
    """
    names = DEFAULT_PROTOCOLS[task]
    if name is None:
        name = next(n for n in names if protocol(task, n).peak != "auto")
    if name not in names:
        raise ValueError(f"--protocol {name!r}: training validates {task} under {list(names)} only")
    return protocol(task, name).name


def validation_psnr(metrics: dict[str, float], proto: str, source: str = "validation") -> float:
    """Mean PSNR (dB) over the validation sets of protocol ``proto`` in the trainer's metrics
    ``{"<set>/<protocol>/<metric>": value}`` (what ``hinet.train.train`` returns and passes to its
    ``on_validation`` hook). The synthetic natural-photograph set (``hinet.tasks.NATURAL_PHOTOS_SET``) is left
    out: it shows transfer from the dead-leaves stand-ins, it is not what a study maximises."""
    suffix = f"/{proto}/psnr"
    values = [v for k, v in metrics.items() if k.endswith(suffix) and not k.startswith(f"{NATURAL_PHOTOS_SET}/")]
    if not values:
        raise ValueError(f"{source}: no validation PSNR of protocol {proto!r} (got {sorted(metrics)})")
    return sum(values) / len(values)


@dataclass(frozen=True)
class Objective:
    """Callable objective: one trial = one proxy training run. See the module docstring."""

    study: str
    recipe: Recipe
    space: SearchSpace
    runs_dir: Path
    records: Path
    seed: int  # training seed, equal for every trial so that differences come from the parameters
    data: str | None = None
    device: str = "cpu"
    protocol: str | None = None  # full protocol name; None = objective_protocol(task)

    def __post_init__(self) -> None:
        task = self.recipe.task
        given = None if self.protocol is None else self.protocol.removeprefix(f"{task}/")
        object.__setattr__(self, "protocol", objective_protocol(task, given))

    def __call__(self, trial: optuna.Trial) -> float:
        params = self.space.suggest(trial, base_config(self.recipe).depth)
        # A heartbeat retry copies the user attributes of the dead trial: reuse and resume its run.
        number = int(trial.user_attrs.get("run_number", trial.number))
        run_id = f"optuna-{self.study}-t{number}"
        run_dir = self.runs_dir / run_id
        worker = f"{socket.gethostname()}:{os.getpid()}"  # which node/process ran it (cluster forensics)
        for key, value in (("run_number", number), ("run_dir", str(run_dir)), ("synthetic", self.data is None),
                           ("worker", worker), ("devices", os.environ.get("CUDA_VISIBLE_DEVICES", "all"))):
            trial.set_user_attr(key, value)
        spec = trial_spec(self.recipe, params, seed=self.seed, data=self.data, variant=f"{self.study}-t{number}")
        resume = (run_dir / "checkpoints" / "last.pth").exists() and not (run_dir / "done.json").exists()
        final = train(spec, run_dir, resume=resume, device=self.device, records_path=self.records,
                      progress=False, run_id=run_id, on_validation=self._reporter(trial), tensorboard=False)
        return validation_psnr(final, self.protocol, f"{run_dir} final validation")

    def _reporter(self, trial: optuna.Trial) -> Callable[[int, dict], None]:
        total = self.recipe.total_iters

        def on_validation(step: int, metrics: dict) -> None:
            # the trainer's own metrics of this validation (it recorded them already): no file is re-read
            value = validation_psnr(metrics, self.protocol, f"validation at step {step}")
            trial.report(value, step)
            # Pruning at the last validation would only throw the finished result away.
            if step < total and trial.should_prune():
                raise optuna.TrialPruned(f"PSNR {value:.3f} dB at step {step} is below the pruner's threshold")

        return on_validation


def load_study(name: str, storage: optuna.storages.BaseStorage, *, settings: dict | None = None,
               sampler: optuna.samplers.BaseSampler | None = None,
               pruner: optuna.pruners.BasePruner | None = None) -> optuna.Study:
    """Create or resume the maximising study ``name``. With ``settings`` the study's stored settings
    must equal them (stored on first use); otherwise :class:`StudyMismatchError`."""
    # Optuna logs "A new study created" / "Using an existing study" at INFO on stderr; a refused study must
    # end in its one error line, so these two lines are not shown (trial results still are).
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(max(verbosity, optuna.logging.WARNING))
    try:  # loading first writes nothing: a refused worker leaves the storage as it was
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
    except KeyError:
        study = optuna.create_study(storage=storage, study_name=name, direction="maximize", load_if_exists=True,
                                    sampler=sampler, pruner=pruner)
    finally:
        optuna.logging.set_verbosity(verbosity)
    if settings is not None:
        stored = study.user_attrs.get("settings")
        if stored is None:
            study.set_user_attr("settings", settings)
        elif stored != settings:
            diff = "; ".join(f"{key}: stored {old!r}, given {new!r}" for key, old, new in differences(stored, settings))
            raise StudyMismatchError(f"study {name!r} was created with other settings ({diff}); resume it with "
                                     f"the stored ones or use another --study name")
    return study


def differences(stored, given, prefix: str = "") -> list[tuple[str, object, object]]:
    """``(dotted key, stored, given)`` for every leaf where two settings differ (nested dicts walked), so that a
    mismatch names ``recipe.total_iters`` rather than printing both recipes."""
    if isinstance(stored, dict) and isinstance(given, dict):
        out = []
        for key in sorted(set(stored) | set(given), key=str):
            out += differences(stored.get(key), given.get(key), f"{prefix}{key}.")
        return out
    return [] if stored == given else [(prefix.rstrip("."), stored, given)]


def summary(study: optuna.Study) -> str:
    """One line: trial counts per state and the best trial."""
    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    line = f"study {study.study_name}: " + ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items()))
    try:
        best = study.best_trial
    except ValueError:  # no completed trial yet
        return line
    return line + f"; best trial {best.number}: {best.value:.3f} dB with {best.params}"


# ----------------------------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> optuna.Study:
    p = ArgumentParser(prog="python -m hinet.tune", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                                epilog="See the module docstring (python -c 'import hinet.tune; help(hinet.tune)').")
    p.add_argument("--study", default=None, help="study name (default: the recipe name); resumed when it exists")
    p.add_argument("--storage", default=None,
                   help="RDB URL or journal file (*.log/*.jsonl); default sqlite:///<results>/optuna/<study>.db")
    p.add_argument("--trials", type=int, default=None, help="trials this worker runs (default 10 without "
                   "--total-trials/--timeout)")
    p.add_argument("--total-trials", type=int, default=None, help="stop once the study holds this many "
                   "finished (complete or pruned) trials, counted over all workers")
    p.add_argument("--timeout", type=float, default=None, help="seconds after which this worker starts no trial")
    p.add_argument("--task", default=None, choices=TASK_NAMES, help="picks the recipe (denoise -> sidd-proxy)")
    p.add_argument("--recipe", default=None, help="paper recipe or its proxy (default: sidd-proxy)")
    p.add_argument("--iters", type=int, default=200, help="training iterations per trial")
    p.add_argument("--val-every", type=int, default=None, help="validation/report period (default: iters/4)")
    p.add_argument("--val-limit", type=int, default=None, help="images per validation set (default: the proxy's 8)")
    p.add_argument("--data", default=None, help="dataset directory (default: the synthetic counterpart)")
    p.add_argument("--protocol", default=None, help="validation protocol to maximise (default: see objective_protocol)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads of this worker")
    p.add_argument("--seed", type=int, default=None, help="sampler seed (default: random; differ per worker)")
    p.add_argument("--train-seed", type=int, default=None, help="training seed of every trial (default: recipe's)")
    p.add_argument("--startup-trials", type=int, default=5, help="MedianPruner n_startup_trials")
    p.add_argument("--warmup-steps", type=int, default=None, help="MedianPruner n_warmup_steps (default: iters/2)")
    space = SearchSpace()
    p.add_argument("--lr", type=float, nargs=2, default=list(space.lr), metavar=("LOW", "HIGH"),
                   help="log-uniform learning-rate range")
    p.add_argument("--batch", type=int, nargs="+", default=list(space.batch), help="batch choices")
    p.add_argument("--crop", type=int, nargs="+", default=list(space.crop), help="training crop choices")
    p.add_argument("--width", type=int, nargs="+", default=list(space.width), help="network width choices")
    p.add_argument("--norm-ratio", type=float, nargs="+", default=list(space.norm_ratio),
                   help="normalised channel fraction choices")
    p.add_argument("--loss", nargs="+", default=list(space.loss), help="loss choices")
    p.add_argument("--runs-dir", default="runs")
    p.add_argument("--results", default="results", help="root of records/, figures/, tables/, optuna/")
    p.add_argument("--records", default=None, help="records JSONL (default: <results>/records/optuna.jsonl)")
    p.add_argument("--report-only", action="store_true", help="only rebuild the figures and CSV of --study")
    p.add_argument("--debug", action="store_true", help="show tracebacks of user errors (also HINET_DEBUG=1)")
    a = p.parse_args(argv)

    def flagged(flag: str, call: Callable):
        try:
            return call()
        except UserError:
            raise
        except ValueError as err:
            raise UserError(f"{flag}: {err}") from None

    if a.recipe is not None:
        task = flagged(f"--recipe {a.recipe!r}", lambda: base_recipe(a.recipe, 1)).task
        if a.task and task != a.task:
            raise UserError(f"--recipe {a.recipe!r} is a {task} recipe, not --task {a.task}")
    recipe_name = a.recipe or proxy_name(TASKS[a.task].dataset if a.task else "sidd")
    name = a.study or proxy_name(paper_name(recipe_name))
    results = Path(a.results)
    if a.report_only:
        storage = open_storage(a.storage or default_storage(results, name))
        try:
            study = optuna.load_study(study_name=name, storage=storage)
        except KeyError:
            raise UserError(f"--study {name!r}: no such study in {a.storage or default_storage(results, name)}") \
                from None
        for path in tune_figures(study, results):
            print(f"[hinet.tune] wrote {path}")
        print(f"[hinet.tune] {summary(study)}")
        return study

    # Every setting is checked before the storage is opened (or created) and before any run folder exists.
    if a.iters < 1:
        raise UserError(f"--iters {a.iters}: expected at least 1 training iteration per trial")
    recipe = flagged("--val-every/--val-limit", lambda: base_recipe(recipe_name, a.iters, val_every=a.val_every,
                                                                    val_limit=a.val_limit))
    space = SearchSpace(tuple(a.lr), tuple(a.batch), tuple(a.crop), tuple(a.width), tuple(a.norm_ratio),
                        tuple(a.loss))
    space.check(base_config(recipe).depth, label=lambda field: "--" + field.replace("_", "-"))
    seed = recipe.seed if a.train_seed is None else a.train_seed
    proto = objective_protocol(recipe.task, a.protocol)
    for flag, value in (("--trials", a.trials), ("--total-trials", a.total_trials), ("--threads", a.threads)):
        if value is not None and value < 1:
            raise UserError(f"{flag} {value}: expected a positive number")
    for flag, value in (("--seed", a.seed), ("--train-seed", a.train_seed)):
        if value is not None and value < 0:
            raise UserError(f"{flag} {value}: expected a non-negative seed")
    for flag, path, folder in (("--results", results, True), ("--runs-dir", Path(a.runs_dir), True),
                               ("--records", a.records and Path(a.records), False)):
        if path:
            check_output(path, flag, folder=folder)
    storage = open_storage(a.storage or default_storage(results, name))
    settings = {"recipe": recipe.to_dict(), "space": asdict(space), "data": a.data, "train_seed": seed,
                "protocol": proto}
    warmup = a.iters // 2 if a.warmup_steps is None else a.warmup_steps
    study = load_study(name, storage, settings=json.loads(json.dumps(settings)),
                       sampler=optuna.samplers.TPESampler(seed=a.seed),
                       pruner=optuna.pruners.MedianPruner(n_startup_trials=a.startup_trials, n_warmup_steps=warmup))
    if a.threads:
        torch.set_num_threads(a.threads)
    records = Path(a.records or results / "records" / "optuna.jsonl")
    objective = Objective(name, recipe, space, Path(a.runs_dir), records, seed, a.data, a.device, proto)
    callbacks = []
    if a.total_trials is not None:
        callbacks.append(optuna.study.MaxTrialsCallback(a.total_trials, states=(TrialState.COMPLETE,
                                                                                 TrialState.PRUNED)))
    n_trials = a.trials
    if n_trials is None and a.total_trials is None and a.timeout is None:
        n_trials = 10
    # A diverging learning rate is a result (the trial fails), not a reason to stop the worker.
    study.optimize(objective, n_trials=n_trials, timeout=a.timeout, catch=(NonFiniteLossError,),
                   callbacks=callbacks, gc_after_trial=True)
    for path in tune_figures(study, results):
        print(f"[hinet.tune] wrote {path}")
    print(f"[hinet.tune] {summary(study)}")
    return study


def launch_workers(argv: list[str], workers: int, gpus: list[str], gpus_per_worker: int = 1) -> int:
    """Start ``workers`` worker processes of one study (``python -m hinet.tune <argv>``) on the grid's process
    launcher (:func:`hinet.grid.run_processes`: Ctrl-C stops them as it stops a grid), each with its own sampler
    seed and, with ``gpus``, its own GPU slot through ``CUDA_VISIBLE_DEVICES`` (``--device cuda`` unless
    ``argv`` names a device; more workers than slots share the slots round-robin); wait for them, then rebuild
    the study's figures once. Returns the first non-zero exit code of a worker, else 0."""
    slots = gpu_slots(gpus, gpus_per_worker) if gpus else []
    if slots and len(slots) < workers:
        print(f"[hinet.tune] {workers} workers on {len(slots)} GPU slot(s): slots are shared round-robin", flush=True)
    base = [sys.executable, "-m", "hinet.tune", *argv]
    if slots and "--device" not in argv:
        base += ["--device", "cuda"]
    seed = int(argv[argv.index("--seed") + 1]) if "--seed" in argv else None

    def worker(k: int) -> Callable[[tuple[str, ...]], Child]:
        cmd = list(base)
        if seed is not None:
            cmd[cmd.index("--seed") + 1] = str(seed + k)  # workers with one seed would propose the same trials
        return lambda slot: Child(f"worker {k}", cmd)

    # one launcher slot per worker, so that all of them run at once (GPU slots reused round-robin)
    codes = run_processes([worker(k) for k in range(workers)],
                          [slots[k % len(slots)] if slots else () for k in range(workers)],
                          progress=False, tag="hinet.tune")
    try:
        main([x for x in argv if x != "--report-only"] + ["--report-only"])
    except UserError as err:  # e.g. every worker failed before the study existed: their exit codes say so
        print(f"[hinet.tune] no report: {err}", file=sys.stderr, flush=True)
    return next((c for c in codes if c != 0), 0)


def cli(argv: list[str] | None = None) -> int:
    """``python -m hinet.tune``: ``--workers N`` (and ``--gpus all|0,1,..``, ``--gpus-per-worker K``) start N
    worker processes of the study; otherwise this process is the one worker (:func:`main`)."""
    pre = ArgumentParser(prog="python -m hinet.tune", add_help=False)
    pre.add_argument("--workers", type=int, default=1)
    pre.add_argument("--gpus", default=None)
    pre.add_argument("--gpus-per-worker", type=int, default=1)
    known, rest = pre.parse_known_args(sys.argv[1:] if argv is None else argv)

    def body() -> int:  # user errors: one line, exit code 2 (hinet.errors.run_command)
        if known.workers < 1:
            raise UserError(f"--workers {known.workers}: expected a positive number")
        if known.gpus_per_worker < 1:
            raise UserError(f"--gpus-per-worker {known.gpus_per_worker}: expected a positive number")
        if known.workers == 1 and not known.gpus:
            main(rest)
            return 0
        # the ids must name GPUs of this machine, unless the workers train on the CPU (--device cpu), read as
        # the workers' own parser reads it
        on = ArgumentParser(prog="python -m hinet.tune", add_help=False)
        on.add_argument("--device", default=None)
        gpus = parse_gpus(known.gpus, present=on.parse_known_args(rest)[0].device != "cpu")
        return launch_workers(rest, known.workers, gpus, known.gpus_per_worker)

    return run_command("hinet.tune", body, rest)


command = cli  # the name every command of the suite exposes for in-process calls


if __name__ == "__main__":
    sys.exit(cli())
