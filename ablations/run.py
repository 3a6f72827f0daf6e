"""``nox -s ablate`` (``python -m ablations``): an ablation grid (family x variants x seeds), then the report.

With no arguments: the ``components`` family on the synthetic denoising default at proxy scale. Examples::

    nox -s ablate -- --family normalization --seeds 0 1 2 3 4
    nox -s ablate -- --family components --dataset sidd --data /data --recipe paper --gpus all
    nox -s ablate -- --family scale --launcher slurm --slurm-partition gpu --gpus-per-run 8

Data flows one way: each variant of the family (``ablations/<family>.py``: the family's base config
with one field replaced) and each seed becomes a complete :class:`hinet.train.RunSpec` here
(:func:`plan`); :mod:`hinet.grid` hands each spec by value to the trainer, which writes the run's
records; :mod:`hinet.report` reads them. Records go to ``results/records/<family>.jsonl``; a repeated
call skips finished runs and resumes started ones.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from hinet.errors import UserError, run_command
from hinet.grid import GridRun, parse_gpus, run_local, run_submitit
from hinet.recipes import recipe as get_recipe
from hinet.tasks import DATASETS, TASKS
from hinet.train import RunSpec, with_iters

from . import FAMILIES, family


def results_root(records: Path) -> Path:
    """The results folder a records file belongs to: ``results/records/x.jsonl`` -> ``results``."""
    return records.parent.parent


def images_folder(results: Path, fam: str, dataset: str, recipe_kind: str, synthetic: bool) -> Path:
    """Where the comparison images of a grid go (read by the report's visual grid)."""
    return results / "images" / f"{fam}_{dataset}_{recipe_kind}_{'synthetic' if synthetic else 'real'}"


def plan(fam: str, dataset: str, recipe: str, seeds: list[int], runs_dir: Path, records: Path, *,
         data: str | None = None, device: str = "cpu", iters: int | None = None,
         variants: list[str] | None = None, loader_workers: int = 0, train_crops: str | None = None,
         images: int = 0, images_dir: Path | None = None) -> list[GridRun]:
    """The grid as complete run specs (variant-major, then seed). The first seed of each variant writes
    ``images`` comparison images at its final validation (none when 0)."""
    names = list(family(fam).VARIANTS)
    if variants:
        unknown = sorted(set(variants) - set(names))
        if unknown:
            raise UserError(f"--variants: unknown variant(s) {unknown} of family {fam!r}; expected some of {names}")
        names = [n for n in names if n in variants]
    if not seeds:
        raise UserError("--seeds: expected at least one seed")
    base = get_recipe(dataset if recipe == "paper" else f"{dataset}-proxy")
    if iters is not None:
        base = with_iters(base, iters)
    tag = "synthetic" if data is None else "real"
    options = ("--device", device, "--workers", str(loader_workers))
    out = []
    for variant in names:
        net = base.network(family(fam).VARIANTS[variant])
        for k, seed in enumerate(seeds):
            run_id = f"{fam}-{variant}-{dataset}-{recipe}-{tag}-s{seed}"
            spec = RunSpec(base, net, seed, data, fam, variant, train_crops=train_crops)
            shots = images_dir if images and k == 0 else None
            out.append(GridRun(run_id, runs_dir / run_id, spec, records, shots,
                               (*options, "--images-limit", str(images))))
    return out


def build_parser() -> argparse.ArgumentParser:
    from hinet.errors import ArgumentParser  # usage errors in one line

    p = ArgumentParser(prog="nox -s ablate --", description=__doc__.split("\n\n")[0])
    p.add_argument("--family", default="components", choices=sorted(FAMILIES))
    p.add_argument("--dataset", default=None, choices=sorted(DATASETS),
                   help="default: the family's task (components -> sidd)")
    p.add_argument("--data", default=None, help="dataset directory; absent: the synthetic counterpart")
    p.add_argument("--train-crops", default=None, help="crops folder from `python -m hinet.data.prepare`")
    p.add_argument("--recipe", default="proxy", choices=["proxy", "paper"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--variants", nargs="+", default=None, help="subset of the family's variants")
    p.add_argument("--iters", type=int, default=None, help="override the recipe's iterations")
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
    dataset = a.dataset or TASKS[family(a.family).TASK].dataset
    records = Path(a.records or f"results/records/{a.family}.jsonl")
    gpus = parse_gpus(a.gpus)
    device = "cuda" if gpus else a.device
    shots = images_folder(results_root(records), a.family, dataset, a.recipe, a.data is None)
    runs = plan(a.family, dataset, a.recipe, a.seeds, Path(a.runs_dir), records, data=a.data, device=device,
                iters=a.iters, variants=a.variants, loader_workers=a.loader_workers, train_crops=a.train_crops,
                images=a.images, images_dir=shots)
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
        from hinet.report import main as report_main

        report_main(["--records", str(records.parent), "--out", str(results_root(records))])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
