"""Power study of the proxy-scale ``components`` ablation (SYNTHETIC denoising, proxy scale): which recipe
settings make ``nox -s ablate`` detect small differences per CPU-minute.

Three steps, each a sub-command (``python -m studies.proxy_power <step> --help``):

* ``speed``: CPU time of one proxy training step (the trainer's own :class:`hinet.step.TrainStep`, batch 8 of
  64x64 SYNTHETIC crops, HINet width 16 depth 3) for eager, fused norm + in-place LeakyReLU, and those plus
  channels_last, timed interleaved round by round (so all paths see the same load of a shared machine), and
  the loss of the first steps of each path against eager (the fast paths must keep the numbers).
* ``pilot``: one pilot grid -- the ``components`` family x seeds, exactly the specs of
  :func:`ablations.run.plan` with the recipe fields given on the command line -- run 2 at a time (one thread
  each) into ``runs/proxy_power/<name>/`` (never into ``results/records``). ``--default-init`` trains with
  torch's creation-order initialisation (the trainer before :meth:`hinet.arch.HINet.reset_parameters`) to
  measure what common initial weights buy. Writes ``pilot.json``: settings, wall time, the children's CPU time
  (``resource.getrusage(RUSAGE_CHILDREN)``), load averages and CPU capability.
* ``analyse``: :mod:`studies.proxy_power_analysis` -- variance components, MDE (measured and projected),
  common initial weights, verdicts by step, the idle cost model and the default it implies; writes
  ``runs/proxy_power/analysis.json`` and ``results/tables/proxy_power.md``.

Order: ``speed``, then ``pilot --name crn240 --seeds 0 1 2 3 --iters 240 --val-every 40 --images 64``, ``pilot
--name default240 --seeds 0 1 2 3 --iters 240 --val-every 240 --images 64 --default-init --variants full
no_csff``, then ``analyse``. Under creation-order initialisation no_hin already shares 100% of its initial
weights with full, single_stage 99.7% and no_sam 99.6%, no_csff only 51%: the init comparison needs full and
no_csff alone. The main pilot took about 40 CPU-minutes on the shared 2-core machine.

Cost scaling to an idle 2-core machine: a run's CPU seconds (children's user+sys over runs) are what an idle
core spends on it (one thread per run, 2 runs at a time), so idle grid wall time ~= runs x CPU s per run / 2,
plus the parent's start-up. On a shared machine CPU time is still inflated somewhat (caches, SMT siblings);
the figure is an upper bound of the idle cost.

Choices are made on variance, power and cost only, never on which variant wins.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path("runs/proxy_power")


# ----------------------------------------------------------------------------------------------- speed
def speed(rounds: int, steps: int) -> dict:
    """CPU seconds per proxy training step for each fast-path setting (median and min over rounds) and the
    largest relative loss difference against eager over the first ``steps`` steps."""
    import torch

    from hinet.arch import HINet
    from hinet.config import preset
    from hinet.fast import set_fused_norm, set_inplace_activations
    from hinet.losses import MultiStageLoss, make_loss
    from hinet.recipes import recipe
    from hinet.step import TrainStep

    torch.set_num_threads(1)
    r = recipe("sidd-proxy")
    cfg = r.network(preset(r.preset))
    g = torch.Generator().manual_seed(0)
    batches = [(torch.rand(r.batch_size, 3, r.crop, r.crop, generator=g),
                torch.rand(r.batch_size, 3, r.crop, r.crop, generator=g)) for _ in range(steps)]
    paths = {"eager": {}, "fused+inplace": dict(fused=True, inplace=True),
             "fused+inplace+channels_last": dict(fused=True, inplace=True, channels_last=True)}

    def build(fused=False, inplace=False, channels_last=False):
        model = HINet(cfg).reset_parameters(0).train()
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        set_fused_norm(model, fused)
        set_inplace_activations(model, inplace)
        opt = torch.optim.Adam(model.parameters(), lr=r.lr, betas=r.betas)
        return TrainStep(model, MultiStageLoss(make_loss(r.loss, r.loss_weight)), opt, grad_clip=r.grad_clip,
                         channels_last=channels_last)

    losses = {}
    for name, kw in paths.items():  # same initial weights and batches: the loss curves must agree
        step = build(**kw)
        losses[name] = [float(step([b])) for b in batches]
    times: dict[str, list[float]] = {name: [] for name in paths}
    steppers = {name: build(**kw) for name, kw in paths.items()}
    for _ in range(rounds):
        for name, step in steppers.items():  # interleaved: each round times every path once
            b = batches[0]
            t0 = time.process_time()
            step([b])
            times[name].append(time.process_time() - t0)
    out = {"cpu_capability": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__,
           "threads": torch.get_num_threads(), "rounds": rounds, "paths": {}}
    base = sorted(times["eager"])[len(times["eager"]) // 2]
    for name in paths:
        t = sorted(times[name][1:])  # the first round warms up allocators
        med = t[len(t) // 2]
        rel = max(abs(a - b) / abs(b) for a, b in zip(losses[name], losses["eager"]))
        out["paths"][name] = {"cpu_ms_median": 1e3 * med, "cpu_ms_min": 1e3 * t[0], "speedup_median": base / med,
                              "max_rel_loss_diff": rel}
    out["validation_cpu_ms_per_image"] = 1e3 * validation_cost(steppers["fused+inplace"].net, images=16)
    out["startup_cpu_s"] = startup_cost()
    return out


def validation_cost(model, images: int) -> float:
    """CPU seconds per synthetic 128x128 validation image as the trainer scores it (generation, forward, both
    denoise protocols, PSNR and SSIM), median of 3 passes over ``images`` images of each synthetic set."""
    from hinet.data.synthetic import synthetic_test_sets
    from hinet.evaluate import default_protocols, evaluate

    sets = synthetic_test_sets("denoise", size=128, count=images)
    times = []
    for _ in range(3):
        t0 = time.process_time()
        evaluate(model, sets, default_protocols("denoise"), limit=images, device="cpu", progress=False)
        times.append((time.process_time() - t0) / (images * len(sets)))  # every set scores ``images``
    model.train()
    return sorted(times)[1]


def startup_cost() -> float:
    """CPU seconds of a trainer process that trains 1 step and validates 1 image (imports, preflight, model
    size probe, records): the fixed cost of every run of a grid."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([sys.executable, "-m", "hinet.train", "--recipe", "sidd-proxy", "--iters", "1",
                        "--recipe-set", "val_limit=1", "--run-dir", str(Path(tmp) / "r"), "--no-progress",
                        "--no-tensorboard"], check=True, capture_output=True,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


# ----------------------------------------------------------------------------------------------- pilot
def pilot_runs(name: str, seeds: list[int], iters: int, val_every: int, images: int,
               variants: list[str] | None = None):
    """The components grid of :func:`ablations.run.plan` with the pilot's recipe fields, under ``ROOT/name``."""
    from ablations.run import plan

    folder = ROOT / name
    records = folder / "records" / "components.jsonl"
    runs = plan("components", "sidd", "proxy", seeds, folder / "runs", records, variants=variants)
    out = []
    for run in runs:
        r = replace(run.spec.recipe, total_iters=iters, val_every=val_every, val_limit=images,
                    warmup_iters=min(run.spec.recipe.warmup_iters, iters - 1))
        # fused norm and in-place LeakyReLU as in plan(); channels_last off, as the pilots of
        # results/tables/proxy_power.md ran (the same numbers up to float rounding, see `speed`)
        spec = replace(run.spec, recipe=r, fused_norm=True, inplace_act=True, channels_last=False)
        out.append(replace(run, spec=spec, images_dir=None, options=("--device", "cpu", "--no-tensorboard")))
    return out, folder, records


def pilot(name: str, seeds: list[int], iters: int, val_every: int, images: int, default_init: bool,
          parallel: int, variants: list[str] | None = None, seed_major: bool = False) -> dict:
    from hinet.atomic import atomic_write_text
    from hinet.grid import TRAIN_ENTRY, run_local

    runs, folder, _ = pilot_runs(name, seeds, iters, val_every, images, variants)
    if seed_major:  # pairs complete one seed after another, so a pilot stopped early still has paired seeds
        runs = sorted(runs, key=lambda r: r.spec.seed)
    entry = ("-m", "studies.proxy_power", "_train-default-init") if default_init else TRAIN_ENTRY
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load0, t0 = os.getloadavg(), time.time()
    results = run_local(runs, parallel=parallel, threads=1, entry=entry, progress=False)
    wall = time.time() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    failed = [r.run_id for r, code in results if code != 0]
    import torch

    info = {"name": name, "seeds": seeds, "variants": variants or "all", "iters": iters, "val_every": val_every,
            "images": images, "default_init": default_init, "parallel": parallel, "runs": len(runs), "failed": failed,
            "wall_s": wall, "children_cpu_s": cpu, "cpu_s_per_run": cpu / max(1, len(runs)),
            "loadavg_start": load0, "loadavg_end": os.getloadavg(), "cpu_capability":
            torch.backends.cpu.get_cpu_capability(), "cores": os.cpu_count(),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    atomic_write_text(folder / "pilot.json", json.dumps(info, indent=2))
    return info


def train_default_init(argv: list[str]) -> int:
    """``hinet.train`` with torch's creation-order initialisation instead of the per-module one (pilot only)."""
    from hinet import arch, train

    arch.HINet.reset_parameters = lambda self, seed: self  # measurement harness: the trainer's previous init
    return train.main(argv)


# ----------------------------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m studies.proxy_power", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("speed", help="CPU time per proxy training step, eager vs fast paths")
    s.add_argument("--rounds", type=int, default=15)
    s.add_argument("--steps", type=int, default=4, help="steps whose losses are compared with eager")
    s.add_argument("--out", type=Path, default=ROOT / "speed.json")
    g = sub.add_parser("pilot", help="run one pilot grid into runs/proxy_power/<name>")
    g.add_argument("--name", required=True)
    g.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    g.add_argument("--iters", type=int, default=240)
    g.add_argument("--val-every", type=int, default=40)
    g.add_argument("--images", type=int, default=64, help="synthetic validation images (recipe val_limit)")
    g.add_argument("--default-init", action="store_true", help="torch's creation-order init (no common weights)")
    g.add_argument("--parallel", type=int, default=2)
    g.add_argument("--variants", nargs="+", default=None, help="subset of the components variants")
    g.add_argument("--seed-major", action="store_true", help="run seed by seed (default: variant by variant)")
    a = sub.add_parser("analyse", help="variance components, MDE, verdicts and the budget, from finished pilots")
    a.add_argument("--main", default="crn240", help="the pilot of the chosen recipe (per-module init)")
    a.add_argument("--baseline", default="default240", help="the same grid with creation-order init")
    a.add_argument("--json", type=Path, default=ROOT / "analysis.json")
    a.add_argument("--markdown", type=Path, default=Path("results/tables/proxy_power.md"))
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_train-default-init"]:
        return train_default_init(argv[1:])
    from hinet.errors import run_command

    a = build_parser().parse_args(argv)

    def body() -> int:
        if a.command == "speed":
            from hinet.atomic import atomic_write_text

            out = speed(a.rounds, a.steps)
            atomic_write_text(a.out, json.dumps(out, indent=2))
            print(json.dumps(out, indent=2))
        elif a.command == "pilot":
            print(json.dumps(pilot(a.name, a.seeds, a.iters, a.val_every, a.images, a.default_init, a.parallel,
                                   a.variants, a.seed_major),
                             indent=2))
        else:
            from .proxy_power_analysis import analyse

            analyse(ROOT, a.main, a.baseline, a.json, a.markdown)
        return 0

    return run_command("proxy_power", body, argv)


if __name__ == "__main__":
    sys.exit(main())
