"""Sequential seeds of the grid (ablations.sequential): budget parsing, the planned looks, and a grid that stops
before a round its budget cannot pay for."""

from __future__ import annotations

import pandas as pd
import pytest

from ablations import run as ablate
from ablations.sequential import Budget, Clock, decision_frame, make_plan
from hinet.errors import UserError


def test_budget_parses_wall_time_and_run_counts():
    assert Budget.parse("15m") == Budget(seconds=900.0) and Budget.parse("2h") == Budget(seconds=7200.0)
    assert Budget.parse("900s").seconds == 900 and Budget.parse("40runs") == Budget(runs=40)
    assert Budget.parse(None) == Budget()
    for bad in ("15", "fast", "-3m", "10 minutes"):
        with pytest.raises(UserError, match="--budget"):
            Budget.parse(bad)
    clock = Clock(Budget(runs=5))
    assert clock.allows(5, 1e9) and not clock.allows(6, 0.0)


def test_looks_are_fixed_before_the_first_run():
    plan = make_plan(4, 2, 9, "proxy")
    assert plan.looks == (4, 6, 8, 9) and plan.delta == 0.1
    assert make_plan(3, 3, 12, "paper").looks == (3, 6, 9, 12) and make_plan(3, 3, 12, "paper").delta == 0.05
    with pytest.raises(UserError, match="at least 2 seeds"):
        make_plan(1, 2, 8, "proxy")


def test_decisions_read_each_runs_last_step_of_one_protocol():
    rows = [dict(run_id=f"{v}-s{s}", variant=v, seed=s, image=f"i{i}", value=30.0 + i + (step / 10), step=step,
                 metric="psnr", protocol=p, dataset="SIDD (synthetic)")
            for v in ("full", "x") for s in (0, 1) for i in range(3) for step in (10, 20)
            for p in ("denoise/clamped", "denoise/official")]
    frame = decision_frame(pd.DataFrame(rows), "denoise/clamped")
    assert len(frame) == 2 * 2 * 3 and set(frame["value"]) == {32.0, 33.0, 34.0}
    with pytest.raises(UserError, match="no per-image PSNR"):
        decision_frame(pd.DataFrame(rows), "deblur/official")


def test_a_round_the_budget_cannot_pay_for_is_not_started(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = ablate.main(["--until-verdict", "--variants", "full", "no_sam", "--seeds", "0", "1", "--iters", "2",
                        "--budget", "3runs", "--runs-dir", str(tmp_path / "runs"), "--records",
                        str(tmp_path / "results" / "records" / "c.jsonl"), "--no-report", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0 and "budget 3 runs reached before look 1 (4 runs" in out
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("done.json"))
    with pytest.raises(UserError, match="--budget applies only with --until-verdict"):
        ablate._main(ablate.build_parser().parse_args(["--budget", "15m"]))
