"""Run an ablation grid (family x variants x seeds), then rebuild the report.

``nox -s ablate`` with no arguments runs the ``components`` family on the synthetic denoising default
at proxy scale with 3 seeds. Examples::

    nox -s ablate -- --family normalization --seeds 0 1 2 3 4
    nox -s ablate -- --family components --dataset sidd --data /data --recipe paper --device cuda
    nox -s ablate -- --family scale --launcher slurm --slurm-partition gpu --gpus-per-run 8

Every run is its own process (``python -m hinet.train``, or ``torchrun`` when a Slurm job has several
GPUs) writing ``<runs>/<run_id>/``; finished runs (``done.json``) are skipped, started ones resumed, so
an interrupted grid continues where it stopped. Records go to ``results/records/<family>.jsonl``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ablations import FAMILIES, family

DATASET_TASK = {"sidd": "denoise", "gopro": "deblur", "rain13k": "derain"}
TASK_DATASET = {v: k for k, v in DATASET_TASK.items()}


@dataclass(frozen=True)
class Run:
    run_id: str
    run_dir: Path
    command: list[str]  # the hinet.train arguments (no interpreter)

    def status(self) -> str:
        if (self.run_dir / "done.json").exists():
            return "done"
        if (self.run_dir / "checkpoints" / "last.pth").exists():
            return "started"
        return "new"


def plan(fam: str, dataset: str, recipe: str, seeds: list[int], runs_dir: Path, records: Path, *,
         data: str | None = None, device: str = "cpu", iters: int | None = None,
         variants: list[str] | None = None, loader_workers: int = 0, train_crops: str | None = None) -> list[Run]:
    """The grid as a list of runs (variant-major, then seed)."""
    names = list(family(fam).VARIANTS)
    if variants:
        unknown = sorted(set(variants) - set(names))
        if unknown:
            raise ValueError(f"unknown variant(s) {unknown} of family {fam!r}; expected some of {names}")
        names = [n for n in names if n in variants]
    recipe_name = dataset if recipe == "paper" else f"{dataset}-proxy"
    tag = "synthetic" if data is None else "real"
    out = []
    for variant in names:
        for seed in seeds:
            run_id = f"{fam}-{variant}-{dataset}-{recipe}-{tag}-s{seed}"
            cmd = ["--recipe", recipe_name, "--family", fam, "--variant", variant, "--seed", str(seed),
                   "--run-dir", str(runs_dir / run_id), "--records", str(records), "--device", device,
                   "--workers", str(loader_workers), "--no-progress"]
            if data is not None:
                cmd += ["--data", data]
            if train_crops is not None:
                cmd += ["--train-crops", train_crops]
            if iters is not None:
                cmd += ["--iters", str(iters)]
            out.append(Run(run_id, runs_dir / run_id, cmd))
    return out


def _train_argv(run: Run) -> list[str]:
    return run.command + (["--resume"] if run.status() == "started" else [])


def run_local(runs: list[Run], parallel: int, threads: int | None = None) -> list[tuple[Run, int]]:
    """Run each pending run as its own process, ``parallel`` at a time; returns (run, exit code)."""
    threads = threads or max(1, (os.cpu_count() or 1) // parallel)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}

    def one(run: Run) -> tuple[Run, int]:
        run.run_dir.mkdir(parents=True, exist_ok=True)
        with open(run.run_dir / "stdout.log", "a") as log:
            code = subprocess.call([sys.executable, "-m", "hinet.train", *_train_argv(run)], env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
        print(f"[ablate] {run.run_id}: {'ok' if code == 0 else f'FAILED (exit {code}), see {run.run_dir}/stdout.log'}",
              flush=True)
        return run, code

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        return list(pool.map(one, runs))


def slurm_job(argv: list[str], gpus: int) -> int:
    """Body of one Slurm job: hinet.train, under torchrun when the job has several GPUs."""
    if gpus > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={gpus}",
               "-m", "hinet.train", *argv]
    else:
        cmd = [sys.executable, "-m", "hinet.train", *argv]
    return subprocess.call(cmd)


def run_submitit(runs: list[Run], folder: Path, *, cluster: str | None, gpus: int, partition: str | None,
                 timeout_min: int, cpus: int) -> list[tuple[Run, int]]:
    """Submit one job per run with submitit (``cluster='local'`` runs them as local processes)."""
    import submitit

    executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
    params = dict(timeout_min=timeout_min, cpus_per_task=cpus, name="hinet-ablate")
    if cluster != "local":
        params.update(gpus_per_node=gpus, tasks_per_node=1, nodes=1)
        if partition:
            params["slurm_partition"] = partition
    executor.update_parameters(**params)
    jobs = [executor.submit(slurm_job, _train_argv(run), gpus) for run in runs]
    print(f"[ablate] submitted {len(jobs)} job(s): {', '.join(str(j.job_id) for j in jobs[:5])}...", flush=True)
    return [(run, job.result()) for run, job in zip(runs, jobs)]


def save_comparison_images(runs: list[Run], out_dir: Path, limit: int = 3) -> Path | None:
    """Each variant's (first seed's) outputs on the first ``limit`` validation images, in the layout the
    report's comparison grid reads: ``<out_dir>/{input,target,<variant>}/<set>__<image>.png``."""
    import json

    from .checkpoint import load
    from .evaluate import default_protocols, evaluate
    from .train import RunSpec, validation_sets

    seen: set[str] = set()
    for run in runs:
        if not (run.run_dir / "done.json").exists():
            continue
        spec = RunSpec.from_dict(json.loads((run.run_dir / "config.json").read_text())["spec"])
        if spec.variant in seen:
            continue
        seen.add(spec.variant)
        first = {k: v for k, v in list(validation_sets(spec).items())[:1]}
        evaluate(load(run.run_dir / "model.pth"), first, default_protocols(spec.recipe.task)[:1], limit=limit,
                 progress=False, save_dir=out_dir, label=spec.variant)
    return out_dir if seen else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--family", default="components", choices=sorted(FAMILIES))
    p.add_argument("--dataset", default=None, choices=sorted(DATASET_TASK),
                   help="default: the family's task (components -> sidd)")
    p.add_argument("--data", default=None, help="dataset directory; absent: the synthetic counterpart")
    p.add_argument("--train-crops", default=None, help="crops folder from `python -m hinet.data.prepare`")
    p.add_argument("--recipe", default="proxy", choices=["proxy", "paper"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--variants", nargs="+", default=None, help="subset of the family's variants")
    p.add_argument("--iters", type=int, default=None, help="override the recipe's iterations")
    p.add_argument("--device", default="cpu")
    p.add_argument("--parallel", type=int, default=None, help="runs at a time (default: 2 on CPU, 1 otherwise)")
    p.add_argument("--loader-workers", type=int, default=0, help="data-loader processes per run")
    p.add_argument("--runs-dir", default="runs")
    p.add_argument("--records", default=None, help="default: results/records/<family>.jsonl")
    p.add_argument("--launcher", default="local", choices=["local", "slurm", "submitit-local"])
    p.add_argument("--gpus-per-run", type=int, default=1)
    p.add_argument("--slurm-partition", default=None)
    p.add_argument("--slurm-time", type=int, default=72 * 60, help="minutes per job")
    p.add_argument("--no-report", action="store_true")
    p.add_argument("--images", type=int, default=3, help="validation images per variant for the visual grid")
    a = p.parse_args(argv)
    dataset = a.dataset or TASK_DATASET[family(a.family).TASK]
    records = Path(a.records or f"results/records/{a.family}.jsonl")
    runs = plan(a.family, dataset, a.recipe, a.seeds, Path(a.runs_dir), records, data=a.data, device=a.device,
                iters=a.iters, variants=a.variants, loader_workers=a.loader_workers, train_crops=a.train_crops)
    pending = [r for r in runs if r.status() != "done"]
    print(f"[ablate] {a.family} on {dataset} ({'synthetic' if a.data is None else a.data}), {a.recipe} recipe: "
          f"{len(runs)} runs, {len(runs) - len(pending)} already done", flush=True)
    t0 = time.time()
    if a.launcher == "local":
        parallel = a.parallel or (2 if a.device == "cpu" else 1)
        results = run_local(pending, parallel)
    else:
        results = run_submitit(pending, Path(a.runs_dir) / "submitit", cluster="local" if a.launcher ==
                               "submitit-local" else "slurm", gpus=a.gpus_per_run, partition=a.slurm_partition,
                               timeout_min=a.slurm_time, cpus=max(1, a.loader_workers + 1))
    failed = [r.run_id for r, code in results if code != 0]
    print(f"[ablate] finished in {time.time() - t0:.0f} s; {len(failed)} failed {failed if failed else ''}")
    if not a.no_report:
        from .report import main as report_main

        kind = "synthetic" if a.data is None else "real"
        if a.images:
            save_comparison_images(runs, Path("results/images") / f"{a.family}_{dataset}_{a.recipe}_{kind}", a.images)
        report_main(["--records", str(records.parent)])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
