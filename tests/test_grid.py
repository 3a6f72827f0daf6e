"""The grid runner: GPU slots through CUDA_VISIBLE_DEVICES (checked by real child processes that report the
variable they received), torchrun for multi-GPU slots, the progress bar, and Ctrl-C stopping children."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from hinet.config import preset
from hinet.errors import UserError
from hinet.grid import GridRun, command, gpu_slots, parse_gpus, run_local
from hinet.recipes import recipe
from hinet.spec import RunSpec

ROOT = Path(__file__).resolve().parents[1]

REPORTER = textwrap.dedent("""
    # Stands in for hinet.train: records the environment it was started with, holds its slot a moment.
    import json, os, sys, time
    args = sys.argv[1:]
    run_dir = args[args.index("--run-dir") + 1]
    rank = os.environ.get("LOCAL_RANK", "0")
    with open(os.path.join(run_dir, f"env-{rank}.json"), "w") as f:
        json.dump({"visible": os.environ.get("CUDA_VISIBLE_DEVICES"), "world": os.environ.get("WORLD_SIZE"),
                   "threads": os.environ.get("OMP_NUM_THREADS"), "start": time.time(), "args": args}, f)
    time.sleep(float(os.environ.get("HOLD_S", "0.3")))
""")


def grid_runs(tmp_path: Path, n: int) -> list[GridRun]:
    r = recipe("sidd-proxy")
    spec = RunSpec(r, r.network(preset(r.preset)), 0)
    return [GridRun(f"run{i}", tmp_path / f"run{i}", spec, tmp_path / "records.jsonl") for i in range(n)]


def test_parse_gpus_and_slots():
    assert parse_gpus(None) == [] and parse_gpus("all", available=3) == ["0", "1", "2"]
    assert parse_gpus("0, 2,5", available=6) == ["0", "2", "5"]
    assert parse_gpus("0,7", present=False) == ["0", "7"]  # Slurm: the ids name another machine's GPUs
    with pytest.raises(UserError, match=r"--gpus 0,5: no GPU 5 on this machine; it has 2"):
        parse_gpus("0,5", available=2)
    with pytest.raises(UserError, match=r"--gpus 0,1: no CUDA device is visible"):
        parse_gpus("0,1", available=0)
    for bad in ("0,0", "x", "1;2"):
        with pytest.raises(UserError, match="--gpus"):
            parse_gpus(bad)
    with pytest.raises(UserError, match="no CUDA device"):
        parse_gpus("all", available=0)
    assert gpu_slots(["0", "1", "2", "3"], 1) == [("0",), ("1",), ("2",), ("3",)]
    assert gpu_slots(["0", "1", "2", "3", "4"], 2) == [("0", "1"), ("2", "3")]
    with pytest.raises(UserError, match="only 1 GPU"):
        gpu_slots(["0"], 2)


def test_each_run_gets_its_own_gpu_and_the_rest_queue(tmp_path):
    script = tmp_path / "reporter.py"
    script.write_text(REPORTER)
    runs = grid_runs(tmp_path, 6)
    results = run_local(runs, gpus=["0", "1", "3"], entry=[str(script)], progress=False)
    assert [code for _, code in results] == [0] * 6
    envs = [json.loads((r.run_dir / "env-0.json").read_text()) for r in runs]
    assert sorted(e["visible"] for e in envs) == ["0", "0", "1", "1", "3", "3"]
    assert all(e["args"][e["args"].index("--spec") + 1] == str(r.spec_path) for e, r in zip(envs, runs))
    assert all(RunSpec.from_dict(json.loads(r.spec_path.read_text())) == r.spec for r in runs)
    # never two runs on one GPU at the same time: runs sharing a GPU start at least HOLD_S apart
    for gpu in ("0", "1", "3"):
        starts = sorted(e["start"] for e in envs if e["visible"] == gpu)
        assert starts[1] - starts[0] >= 0.25


def test_multi_gpu_slots_run_under_torchrun(tmp_path):
    script = tmp_path / "reporter.py"
    script.write_text(REPORTER)
    runs = grid_runs(tmp_path, 2)
    assert command(runs[0], ("0", "1"), [str(script)])[1:4] == ["-m", "torch.distributed.run", "--standalone"]
    results = run_local(runs, gpus=["0", "1", "2", "3"], gpus_per_run=2, entry=[str(script)], progress=False)
    assert [code for _, code in results] == [0, 0]
    for r in runs:
        envs = [json.loads((r.run_dir / f"env-{k}.json").read_text()) for k in (0, 1)]
        assert {e["world"] for e in envs} == {"2"} and len({e["visible"] for e in envs}) == 1
    assert sorted(json.loads((r.run_dir / "env-0.json").read_text())["visible"] for r in runs) == ["0,1", "2,3"]


def test_cpu_runs_share_the_cores(tmp_path):
    script = tmp_path / "reporter.py"
    script.write_text(REPORTER)
    runs = grid_runs(tmp_path, 2)
    run_local(runs, parallel=2, threads=3, entry=[str(script)], progress=False)
    envs = [json.loads((r.run_dir / "env-0.json").read_text()) for r in runs]
    assert {e["threads"] for e in envs} == {"3"} and {e["visible"] for e in envs} == {None}


def test_ctrl_c_stops_the_children_and_the_next_call_resumes(tmp_path):
    """A real grid of real training runs, interrupted with SIGINT; then run again to completion."""
    records = tmp_path / "records.jsonl"
    argv = [sys.executable, "-m", "ablations", "--variants", "full", "--seeds", "0", "1", "--iters", "80",
            "--val-images", "2",
            "--runs-dir", str(tmp_path / "runs"), "--records", str(records), "--no-report", "--images", "0",
            "--no-progress", "--parallel", "2"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # as from a terminal: SIGINT at its default even where this test runs as a background job (which ignores it, and
    # a Python started with SIGINT ignored never raises KeyboardInterrupt)
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    ckpts = [tmp_path / "runs" / f"components-full-sidd-proxy-synthetic-s{s}" / "checkpoints" / "last.pth"
             for s in (0, 1)]
    deadline = time.time() + 240
    while not all(c.exists() for c in ckpts) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert all(c.exists() for c in ckpts), "the runs did not reach their first checkpoint"
    assert proc.poll() is None, "the grid finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err
    assert not any((c.parent.parent / "done.json").exists() for c in ckpts)
    import torch

    steps = [torch.load(c, weights_only=True)["step"] for c in ckpts]  # intact checkpoints
    assert all(0 < s < 80 for s in steps)
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert all((c.parent.parent / "done.json").exists() for c in ckpts)
    from hinet.records import read_records

    df = read_records(records)
    for seed in (0, 1):  # every logged step once, although the steps after the checkpoint were trained twice
        loss = df[(df["metric"] == "loss") & (df["seed"] == seed)]
        assert sorted(loss["step"]) == list(range(20, 81, 20))
