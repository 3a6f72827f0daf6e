"""``nox -s ablate`` (``python -m ablations``): an ablation grid (family x variants x seeds), then the report.

With no arguments: the ``components`` family on the synthetic denoising default at proxy scale. Examples::

    nox -s ablate -- --family normalization --seeds 0 1 2 3 4
    nox -s ablate -- --family components --dataset sidd --data /data --recipe paper --gpus all
    nox -s ablate -- --family scale --launcher slurm --slurm-partition gpu --gpus-per-run 8

Data flows one way: each variant of the family (``ablations/<family>.py``: the family's base config
with one field replaced) and each seed becomes a complete :class:`hinet.spec.RunSpec` here
(:func:`plan`); :mod:`hinet.grid` hands each spec by value to the trainer, which writes the run's
records; :mod:`hinet.report` reads them. Records go to ``results/records/<family>.jsonl``; a repeated
call skips finished runs and resumes started ones.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

from hinet.atomic import check_output
from hinet.config import HINetConfig
from hinet.errors import ArgumentParser, UserError, run_command
from hinet.evaluate import protocol as get_protocol
from hinet.grid import GridRun, parse_gpus, run_local, run_submitit
from hinet.image_records import image_store, read_image_metrics
from hinet.models import network
from hinet.recipes import proxy_name, with_iters
from hinet.recipes import recipe as get_recipe
from hinet.spec import RunSpec
from hinet.stats import ESTIMANDS, sequential_decisions
from hinet.tasks import DATASETS, TASKS, slug

from . import FAMILIES, family
from .sequential import Budget, Clock, decision_frame, make_plan, probe_run_seconds, write_log

# Seeds of the default grid: what fits 15 minutes of a 2-core machine of the kind developers and CI have
# (AVX2, no native bf16), two runs at a time; the timing behind it is in the README's "Speed" section.
DEFAULT_SEEDS = 3


def results_root(records: Path) -> Path:
    """The results folder a records file belongs to: ``results/records/x.jsonl`` -> ``results``."""
    return records.parent.parent


def images_folder(results: Path, fam: str, dataset: str, recipe_kind: str, synthetic: bool) -> Path:
    """Where the comparison images of a grid go (read by the report's visual grid)."""
    return results / "images" / f"{fam}_{dataset}_{recipe_kind}_{'synthetic' if synthetic else 'real'}"


def plan(fam: str, dataset: str, recipe: str, seeds: list[int], runs_dir: Path, records: Path, *,
         data: str | None = None, device: str = "cpu", iters: int | None = None,
         variants: list[str] | None = None, loader_workers: int = 0, train_crops: str | None = None,
         images: int = 0, images_dir: Path | None = None, val_images: int | None = None,
         models: list[str] | None = None) -> list[GridRun]:
    """The grid as complete run specs (variant-major, then seed). The first seed of each variant writes
    ``images`` comparison images at its final validation (none when 0). ``val_images`` overrides the recipe's
    validation images per set (``val_limit``). ``models`` (methods family only) adds networks by name or as
    ``package.module:callable`` (:func:`hinet.models.network`), each a variant of that name. Every HINet spec has
    the fused norm and in-place activations on, and channels_last for proxy runs on CPU (same numbers up to float
    rounding)."""
    networks = dict(family(fam).VARIANTS)
    if models:
        if fam != "methods":
            raise UserError(f"--model {' '.join(models)}: adds a network to the methods family; the {fam} family "
                            f"varies HINet's own fields (use --family methods)")
        networks.update({name: network(name) for name in models})
    names = list(networks)
    if variants:
        unknown = sorted(set(variants) - set(names))
        if unknown:
            raise UserError(f"--variants: unknown variant(s) {unknown} of family {fam!r}; expected some of {names}")
        names = [n for n in names if n in variants]
    if not seeds:
        raise UserError("--seeds: expected at least one seed")
    if min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds {' '.join(map(str, seeds))}: expected distinct non-negative seeds")
    base = get_recipe(dataset if recipe == "paper" else proxy_name(dataset))
    if iters is not None:
        base = with_iters(base, iters)
    if val_images is not None:
        if val_images < 1:
            raise UserError(f"--val-images {val_images}: expected a positive number of validation images")
        base = replace(base, val_limit=val_images)
    tag = "synthetic" if data is None else "real"
    # fast paths with the same numbers (hinet.fast): fused half instance norm and in-place LeakyReLU always;
    # channels_last where it was measured to help (proxy scale on CPU; results/tables/proxy_power.md)
    channels_last = recipe == "proxy" and device == "cpu"
    options = ("--device", device, "--workers", str(loader_workers))
    treatments = family(fam).evaluations(base.crop) if hasattr(family(fam), "evaluations") else ()
    out = []
    for variant in names:
        net = base.network(networks[variant])
        hinet = isinstance(net, HINetConfig)  # the fast paths are HINet's (hinet.fast)
        for k, seed in enumerate(seeds):
            run_id = f"{fam}-{slug(variant)}-{dataset}-{recipe}-{tag}-s{seed}"
            spec = RunSpec(base, net, seed, data, fam, variant, reference=family(fam).REFERENCE,
                           train_crops=train_crops, fused_norm=hinet, inplace_act=hinet,
                           channels_last=channels_last and hinet, evaluations=treatments)
            shots = images_dir if images and k == 0 else None
            out.append(GridRun(run_id, runs_dir / run_id, spec, records, shots,
                               (*options, "--images-limit", str(images))))
    return out


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="nox -s ablate --", description=__doc__.split("\n\n")[0])
    p.add_argument("--family", default="components", choices=sorted(FAMILIES))
    p.add_argument("--dataset", default=None, choices=sorted(DATASETS),
                   help="default: the family's task (components -> sidd)")
    p.add_argument("--data", default=None, help="dataset directory; absent: the synthetic counterpart")
    p.add_argument("--train-crops", default=None, help="crops folder from `python -m hinet.data.prepare`")
    p.add_argument("--recipe", default="proxy", choices=["proxy", "paper"])
    p.add_argument("--seeds", type=int, nargs="+", default=list(range(DEFAULT_SEEDS)),
                   help=f"default: 0 .. {DEFAULT_SEEDS - 1} (what fits 15 minutes of a 2-core AVX2 CPU at proxy scale)")
    p.add_argument("--variants", nargs="+", default=None, help="subset of the family's variants")
    p.add_argument("--model", action="append", default=None, metavar="NETWORK",
                   help="with --family methods: add a network, by name (mprnet-gopro, nafnet-sidd-width32, ...) or\n"
                        "your own as package.module:callable (importable; see the README); repeatable")
    p.add_argument("--iters", type=int, default=None, help="override the recipe's iterations")
    p.add_argument("--val-images", type=int, default=None, help="override the recipe's validation images per set")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (with --gpus: cuda)")
    p.add_argument("--parallel", type=int, default=None, help="CPU runs at a time (default: 2 on CPU)")
    p.add_argument("--gpus", default=None, help="'all' or ids '0,1,2,3': one run per GPU slot, the rest queued")
    p.add_argument("--gpus-per-run", type=int, default=1, help="GPUs per run (torchrun inside the slot)")
    p.add_argument("--loader-workers", type=int, default=0, help="data-loader processes per run")
    p.add_argument("--runs-dir", default="runs")
    p.add_argument("--records", default=None, help="default: results/records/<family>.jsonl; the report and the\n"
                   "comparison images go to the folder above its folder (results/)")
    p.add_argument("--launcher", default="local", choices=["local", "slurm", "submitit-local"])
    p.add_argument("--slurm-partition", default=None)
    p.add_argument("--slurm-time", type=int, default=72 * 60, help="minutes per job")
    p.add_argument("--no-report", action="store_true")
    p.add_argument("--no-progress", action="store_true", help="no progress bar over the runs")
    p.add_argument("--images", type=int, default=3, help="validation images per variant for the visual grid")
    p.add_argument("--until-verdict", action="store_true",
                   help="sequential seeds: --seeds is the first round; add --round-seeds per round up to\n"
                        "--max-seeds until every variant is significant or equivalent (alpha spending)")
    p.add_argument("--round-seeds", type=int, default=2, help="seeds added per round (with --until-verdict)")
    p.add_argument("--max-seeds", type=int, default=12, help="last planned look (with --until-verdict)")
    p.add_argument("--estimand", default="test_set", choices=list(ESTIMANDS),
                   help="with --until-verdict: what the decisions generalise to: these test images (test_set: only\n"
                        "seeds are random) or new scenes (population; seeds cannot remove the scene term)")
    p.add_argument("--budget", default=None, help="with --until-verdict: stop before a round that would exceed\n"
                   "this wall time (15m, 2h, 900s) or run count (40runs)")
    p.add_argument("--debug", action="store_true", help="show tracebacks of user errors")
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    return run_command("ablate", lambda: _main(a), argv)


def _main(a: argparse.Namespace) -> int:
    for flag, value, least in (("--parallel", a.parallel, 1), ("--gpus-per-run", a.gpus_per_run, 1),
                               ("--loader-workers", a.loader_workers, 0), ("--images", a.images, 0),
                               ("--slurm-time", a.slurm_time, 1)):
        if value is not None and value < least:
            raise UserError(f"{flag} {value}: expected a number >= {least}")
    if not a.until_verdict and (a.budget is not None):
        raise UserError("--budget applies only with --until-verdict")
    dataset = a.dataset or TASKS[family(a.family).TASK].dataset
    records = Path(a.records or f"results/records/{a.family}.jsonl")
    gpus = parse_gpus(a.gpus, present=a.launcher == "local")
    for flag, path, folder in (("--records", records, False), ("--runs-dir", Path(a.runs_dir), True),
                               ("--records", image_store(records), True)):
        check_output(path, flag, folder=folder)  # before any run: not one failure per run in the grid's logs
    if not a.no_report:
        check_output(results_root(records), "--records (the report's results folder)", folder=True)
    device = "cuda" if gpus else a.device
    shots = images_folder(results_root(records), a.family, dataset, a.recipe, a.data is None)
    grid = dict(data=a.data, device=device, iters=a.iters, loader_workers=a.loader_workers,
                train_crops=a.train_crops, images=a.images, images_dir=shots, val_images=a.val_images, models=a.model)
    if a.until_verdict:
        if a.launcher != "local":
            raise UserError("--until-verdict runs rounds of local runs; use --launcher local")
        failed = _sequential(a, dataset, records, gpus, device, grid)
        if not a.no_report:
            from hinet.report import main as report_main  # heavy: matplotlib/seaborn only when reporting

            report_main(["--records", str(records.parent), "--out", str(results_root(records))])
        return 1 if failed else 0
    runs = plan(a.family, dataset, a.recipe, a.seeds, Path(a.runs_dir), records, variants=a.variants, **grid)
    pending = [r for r in runs if r.status() != "done"]
    print(f"[ablate] {a.family} on {dataset} ({'synthetic' if a.data is None else a.data}), {a.recipe} recipe: "
          f"{len(runs)} runs, {len(runs) - len(pending)} already done", flush=True)
    t0 = time.time()
    if a.launcher == "local":
        results = run_local(pending, parallel=a.parallel or (2 if device == "cpu" else 1), gpus=gpus,
                            gpus_per_run=a.gpus_per_run, progress=not a.no_progress)
    else:
        results = run_submitit(pending, Path(a.runs_dir) / "submitit", cluster="local" if a.launcher ==
                               "submitit-local" else "slurm", gpus=a.gpus_per_run, partition=a.slurm_partition,
                               timeout_min=a.slurm_time, cpus=max(1, a.loader_workers + 1))
    failed = [r.run_id for r, code in results if code != 0]
    print(f"[ablate] finished in {time.time() - t0:.0f} s; {len(failed)} failed {failed if failed else ''}",
          flush=True)
    if not a.no_report:
        from hinet.report import main as report_main  # heavy: as above

        report_main(["--records", str(records.parent), "--out", str(results_root(records))])
    return 1 if failed else 0


def _sequential(a: argparse.Namespace, dataset: str, records: Path, gpus: list[str], device: str, grid: dict
                ) -> list[str]:
    """Rounds of seeds until every variant has a verdict (see :mod:`ablations.sequential`); returns failed runs."""
    seeds = sorted(a.seeds)
    if seeds != list(range(seeds[0], seeds[0] + len(seeds))):
        raise UserError(f"--seeds {a.seeds}: with --until-verdict the seeds are consecutive (the first look)")
    budget = Budget.parse(a.budget)
    scale = "paper" if a.recipe == "paper" else "proxy"
    seq = make_plan(len(seeds), a.round_seeds, a.max_seeds, scale)
    all_seeds = list(range(seeds[0], seeds[0] + seq.looks[-1]))
    names = list(a.variants or [*family(a.family).VARIANTS, *(a.model or [])])
    reference = family(a.family).REFERENCE
    if reference not in names:
        raise UserError(f"--until-verdict: the family's reference {reference!r} must be among --variants {names}")
    task = TASKS[family(a.family).TASK]
    proto = next(get_protocol(task.name, n) for n in task.protocols if get_protocol(task.name, n).peak != "auto").name
    parallel = len(gpus) // a.gpus_per_run if gpus else (a.parallel or 2)
    first = plan(a.family, dataset, a.recipe, all_seeds[:1], Path(a.runs_dir), records, variants=[reference], **grid)
    threads = max(1, (os.cpu_count() or 1) // parallel)
    per_run = probe_run_seconds(first[0].spec, threads) if device == "cpu" else None
    if per_run is not None:
        rounds = [len(names) * seq.looks[0]] + [len(names) * (b - a_) for a_, b in zip(seq.looks, seq.looks[1:])]
        total = sum(math.ceil(n / parallel) for n in rounds) * per_run
        print(f"[ablate] sequential seeds: looks at {list(seq.looks)} seeds, margin ±{seq.delta:g} dB, protocol "
              f"{proto}; estimated {per_run / 60:.1f} min per run ({threads} thread(s)), first round ~"
              f"{math.ceil(rounds[0] / parallel) * per_run / 60:.1f} min, at most ~{total / 60:.1f} min if no "
              f"variant is decided early; budget {budget.describe()}", flush=True)
    clock, decided, logs, failed = Clock(budget), {}, [], []
    stopped = "planned looks used up (undecided variants are inconclusive)"
    for k, n in enumerate(seq.looks):
        active = [v for v in names if v == reference or v not in decided]
        runs = plan(a.family, dataset, a.recipe, all_seeds[:n], Path(a.runs_dir), records, variants=active, **grid)
        pending = [r for r in runs if r.status() != "done"]
        need = math.ceil(len(pending) / parallel) * (per_run or 0.0)
        if pending and not clock.allows(len(pending), need):
            stopped = (f"budget {budget.describe()} reached before look {k + 1} ({len(pending)} runs, "
                       f"~{need / 60:.1f} min)")
            break
        t0 = time.time()
        results = run_local(pending, parallel=parallel, gpus=gpus, gpus_per_run=a.gpus_per_run,
                            progress=not a.no_progress)
        clock.runs += len(pending)
        failed += [r.run_id for r, code in results if code != 0]
        if failed:
            stopped = f"runs failed: {failed}"
            break
        if pending and per_run is not None:  # calibrate the estimate on the runs just finished
            per_run = (time.time() - t0) / math.ceil(len(pending) / parallel)
        ids = {r.run_id for v in names for r in plan(a.family, dataset, a.recipe, all_seeds[:n], Path(a.runs_dir),
                                                          records, variants=[v], **grid)}
        per_image = read_image_metrics(image_store(records))
        frame = decision_frame(per_image[per_image["run_id"].isin(ids)], proto)
        dec = sequential_decisions(frame, seq, k, reference, estimand=a.estimand).assign(look=k + 1)
        logs.append(dec)
        for _, row in dec.iterrows():
            if row["decision"] in ("significant", "equivalent"):
                decided.setdefault(row["variant"], row["decision"])
        print(f"[ablate] look {k + 1}/{len(seq.looks)} ({n} seeds): "
              + ", ".join(f"{r['variant']} {r['decision']}" for _, r in dec.iterrows()), flush=True)
        if all(v in decided for v in names if v != reference):
            stopped = f"every variant decided at look {k + 1}"
            break
    if logs:
        stem = results_root(records) / "tables" / f"sequential_{a.family}_{dataset}_{a.recipe}"
        for path in write_log(logs, seq, budget, stem, proto, stopped):
            print(f"[ablate] wrote {path}", flush=True)
    print(f"[ablate] sequential seeds stopped: {stopped}", flush=True)
    return failed


if __name__ == "__main__":
    sys.exit(main())
