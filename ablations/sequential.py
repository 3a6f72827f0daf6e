"""Sequential seeds for ``nox -s ablate -- --until-verdict``: run seeds in rounds until every variant has a verdict.

Round k trains the seeds ``looks[k-1] .. looks[k]-1`` of the reference and of every variant still undecided,
then applies the group-sequential procedure of :func:`hinet.stats.sequential_decisions` (Lan-DeMets
O'Brien-Fleming alpha spending over the planned looks; Holm-like across the family for the efficacy claims;
TOST with its own spending for equivalence). A variant that is declared significant or equivalent gets no
more seeds; the grid stops when every variant is decided, when the planned looks are used up (the undecided
ones are then "inconclusive"), or when the budget (wall time or a number of runs) would be exceeded by the
next round. The looks are fixed before the first run (``--seeds`` = the first look, ``--round-seeds`` per
later round, ``--max-seeds``), as the procedure requires; finished runs are reused, so a second call
continues where the first stopped.

The decisions use the verdict protocol of the task (the first default protocol with a fixed PSNR peak,
e.g. ``denoise/clamped``) and PSNR on each run's last validation step, per validation set. Every look's
decisions go to ``<results>/tables/sequential_<family>_<dataset>_<recipe>.{md,csv}`` with the plan.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from hinet.atomic import atomic_write_text, replacing
from hinet.build import build_training
from hinet.errors import UserError
from hinet.stats import ESTIMAND_WORDS, SequentialPlan, default_margin


@dataclass(frozen=True)
class Budget:
    """A wall-time (seconds) or run-count limit; ``None`` fields are unlimited."""

    seconds: float | None = None
    runs: int | None = None

    @classmethod
    def parse(cls, text: str | None) -> Budget:
        """``15m``, ``2h``, ``900s`` or ``40runs``."""
        if not text:
            return cls()
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|m|h|runs?)\s*", text)
        if not m:
            raise UserError(f"--budget {text!r}: expected a wall time like 15m, 2h, 900s or a run count like 40runs")
        value, unit = float(m[1]), m[2]
        if unit.startswith("run"):
            return cls(runs=int(value))
        return cls(seconds=value * {"s": 1, "m": 60, "h": 3600}[unit])

    def describe(self) -> str:
        parts = ([f"{self.seconds / 60:.1f} min"] if self.seconds is not None else []) + (
            [f"{self.runs} runs"] if self.runs is not None else [])
        return " and ".join(parts) or "unlimited"


def make_plan(first: int, per_round: int, max_seeds: int, scale: str) -> SequentialPlan:
    if first < 2:
        raise UserError(f"--seeds: the first look needs at least 2 seeds, got {first}")
    if per_round < 1 or max_seeds < first:
        raise UserError(f"--round-seeds {per_round} / --max-seeds {max_seeds}: expected >= 1 and >= the first "
                        f"look ({first})")
    looks = list(range(first, max_seeds + 1, per_round))
    if looks[-1] != max_seeds:
        looks.append(max_seeds)
    return SequentialPlan(tuple(looks), delta=default_margin(scale))


def decision_frame(per_image: pd.DataFrame, protocol: str) -> pd.DataFrame:
    """Per-image PSNR of each run at its last validation step under ``protocol`` (one validation set:
    the first in name order), in the columns :func:`sequential_decisions` reads."""
    q = per_image[(per_image["metric"] == "psnr") & (per_image["protocol"] == protocol)]
    if q.empty:
        raise UserError(f"sequential seeds: no per-image PSNR of protocol {protocol!r} recorded yet")
    first_set = sorted(q["dataset"].unique())[0]
    q = q[q["dataset"] == first_set]
    last = q.groupby("run_id")["step"].transform("max")
    return q[q["step"] == last][["run_id", "variant", "seed", "image", *(["scene"] if "scene" in q else []), "value"]]


def write_log(rows: list[pd.DataFrame], plan: SequentialPlan, budget: Budget, path_stem: Path, protocol: str,
              stopped: str) -> list[Path]:
    """The decisions of every look so far, with the plan, as ``.md`` and ``.csv`` (atomic)."""
    table = pd.concat(rows, ignore_index=True)
    csv, md = path_stem.with_suffix(".csv"), path_stem.with_suffix(".md")
    with replacing(csv) as tmp:
        table.to_csv(tmp, index=False)
    estimand = ", ".join(sorted(set(table["estimand"])))
    shown = table[["look", "n_seeds", "variant", "difference", "se", "t", "efficacy_t_bound", "equivalence_t_bound",
                   "decision"]]
    atomic_write_text(md, (
        f"# Sequential seeds: {path_stem.name}\n\n"
        f"Group-sequential procedure (hinet.stats): planned looks at {list(plan.looks)} seeds, "
        f"Lan-DeMets O'Brien-Fleming alpha spending (alpha {plan.alpha}, two-sided, Holm-like across variants) "
        f"for 'significant', TOST with its own spending against ±{plan.delta:g} dB for 'equivalent'; estimand "
        f"{estimand} ({', '.join(ESTIMAND_WORDS[e] for e in sorted(set(table['estimand'])))}); protocol "
        f"{protocol}, PSNR at each run's last validation step. Budget: {budget.describe()}. Stopped: {stopped}. "
        f"The fixed-sample verdict table of the report is descriptive after sequential stopping; these decisions "
        f"are the ones with the stated error rates.\n\n"
        + shown.to_markdown(index=False, floatfmt=".4g") + "\n"))
    return [md, csv]


class Clock:
    """Elapsed time and runs of a sequential grid, against its budget."""

    def __init__(self, budget: Budget) -> None:
        self.budget, self.start, self.runs = budget, time.time(), 0

    def allows(self, runs: int, seconds: float) -> bool:
        if self.budget.runs is not None and self.runs + runs > self.budget.runs:
            return False
        return self.budget.seconds is None or time.time() - self.start + seconds <= self.budget.seconds


def probe_run_seconds(spec, threads: int, rounds: int = 3) -> float:
    """Estimated wall time of one run of ``spec`` on ``threads`` threads: a few timed training steps (the trainer's
    own, :func:`hinet.build.build_training`, fast switches included) on random tensors of the recipe's batch and
    crop, times the iterations, plus 15% for validation and start-up. An estimate for planning, printed as such."""
    r = spec.recipe
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        step = build_training(spec).step
        batch = (torch.rand(r.batch_size, 3, r.crop, r.crop), torch.rand(r.batch_size, 3, r.crop, r.crop))
        float(step([batch]))  # warm-up
        t0 = time.perf_counter()
        for _ in range(rounds):
            float(step([batch]))
        per_step = (time.perf_counter() - t0) / rounds
    finally:
        torch.set_num_threads(old)
    return per_step * r.total_iters * 1.15
