"""Tests for hinet.records: validation, JSONL round trip, concurrent appends, git_info."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from hinet.records import (
    COLUMNS,
    Record,
    append_records,
    config_hash,
    environment,
    git_info,
    make_records,
    read_records,
)

COMMON = dict(run_id="SIDD-full-s0-abc1234", family="components", variant="full", dataset="SIDD", split="val",
              protocol="hinet", step=100, seed=0, git_commit="abc1234", git_dirty=False,
              config_hash="0123456789ab", device="cpu", torch_version="2.4.0",
              time="2024-05-01T12:00:00+00:00", synthetic=True, recipe="proxy")


def rec(**kw) -> Record:
    return Record(**{**COMMON, "metric": "psnr", "value": 30.0, **kw})


@pytest.mark.parametrize("field,bad", [
    ("value", "30.0"), ("value", True), ("value", float("nan")), ("value", float("inf")),
    ("step", 1.0), ("step", -1), ("step", True), ("seed", "0"), ("git_dirty", 0), ("synthetic", "yes"),
    ("run_id", ""), ("metric", None), ("time", "yesterday"), ("time", "2024-05-01T12:00:00"),
    ("time", "2024-05-01T12:00:00+02:00"),
])
def test_validation_names_field(field, bad):
    with pytest.raises(ValueError, match=f"Record.{field}"):
        rec(**{field: bad})


def test_value_coerced_to_float_and_none_allowed():
    r = rec(value=31, step=None, seed=None)
    assert isinstance(r.value, float) and r.value == 31.0 and r.step is None


def test_make_records_fills_time_and_rejects_unknown_fields():
    common = {k: v for k, v in COMMON.items() if k != "time"}
    rs = make_records(common, {"psnr": 30.5, "ssim": 0.9}, step=7)
    assert [(r.metric, r.value, r.step) for r in rs] == [("psnr", 30.5, 7), ("ssim", 0.9, 7)]
    assert rs[0].time.endswith("+00:00")
    with pytest.raises(ValueError, match="hostname"):
        make_records({**common, "hostname": "x"}, {"psnr": 1.0})
    with pytest.raises(ValueError, match="missing.*run_id"):
        make_records({k: v for k, v in common.items() if k != "run_id"}, {"psnr": 1.0})


def test_environment_fields():
    env = environment("cuda:1")
    assert env["device"] == "cuda:1" and env["torch_version"] and env["hostname"] and env["python_version"]


def test_config_hash_is_canonical():
    @dataclasses.dataclass
    class Cfg:
        width: int = 64
        levels: tuple = (0, 1)

    h = config_hash(Cfg())
    assert len(h) == 12 and h == config_hash({"levels": [0, 1], "width": 64})
    assert h != config_hash(Cfg(width=32))
    with pytest.raises(ValueError, match="canonical JSON"):
        config_hash({"x": object()})


def test_round_trip_dtypes_and_order(tmp_path):
    rs = [rec(value=30.0 + i, step=i, seed=None if i == 2 else i) for i in range(3)]
    append_records(tmp_path / "a" / "records.jsonl", rs[:2])
    append_records(tmp_path / "b" / "deeper" / "records.jsonl", rs[2:])
    df = read_records(tmp_path)
    assert tuple(df.columns) == COLUMNS
    assert df["value"].dtype == "float64" and df["step"].dtype == "Int64" and df["synthetic"].dtype == bool
    assert str(df["time"].dt.tz) == "UTC"
    back = [Record(**{**row, "time": row["time"].isoformat(), "step": int(row["step"]),
                      "seed": None if pd.isna(row["seed"]) else int(row["seed"])})
            for row in df.to_dict("records")]
    assert back == rs


def test_truncated_last_line_warns_and_is_skipped(tmp_path):
    path = tmp_path / "r.jsonl"
    append_records(path, [rec(step=1)])
    append_records(path, [rec(step=2)])  # a batch of its own: a torn batch is dropped whole (next test)
    full = path.read_bytes()
    path.write_bytes(full[:-20])  # crash in the middle of the second line
    with pytest.warns(UserWarning, match=r"r\.jsonl:2: skipping truncated"):
        df = read_records(path)
    assert df["step"].tolist() == [1]
    # the next append cuts the fragment (with a warning) instead of gluing to it
    with pytest.warns(UserWarning, match="dropping a truncated last line or incomplete batch"):
        append_records(path, [rec(step=3)])
    assert read_records(path)["step"].tolist() == [1, 3]


def test_corrupt_middle_line_raises_with_file_and_line(tmp_path):
    path = tmp_path / "r.jsonl"
    append_records(path, [rec(step=1), rec(step=2)])
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(lines[0] + '{"run_id": "x"\n' + lines[1])
    with pytest.raises(ValueError, match=r"r\.jsonl:2"):
        read_records(path)
    bad = json.loads(lines[0]) | {"value": "high"}
    path.write_text(json.dumps(bad) + "\n" + lines[1])
    with pytest.raises(ValueError, match=r"r\.jsonl:1.*Record.value"):
        read_records(path)


def test_missing_inputs_raise(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_records(tmp_path / "nope.jsonl")
    with pytest.raises(FileNotFoundError, match="no \\*.jsonl"):
        read_records(tmp_path)
    with pytest.raises(ValueError, match="no records"):
        append_records(tmp_path / "r.jsonl", [])


WRITER = textwrap.dedent("""
    import importlib.util, sys, time
    from pathlib import Path
    # load records.py by file path: the hinet package __init__ imports torch, which would dominate run time
    spec = importlib.util.spec_from_file_location("hinet_records", sys.argv[4])
    records = sys.modules["hinet_records"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(records)
    Record, append_records = records.Record, records.append_records
    path, writer, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    common = {common!r}
    ready = Path(path).parent / "ready"
    (ready / str(writer)).touch()
    while len(list(ready.iterdir())) < n:  # start barrier: all writers append at the same time
        time.sleep(0.001)
    for batch in range(50):
        recs = [Record(**{{**common, "run_id": f"w{{writer}}", "metric": "psnr", "value": float(i),
                           "step": batch * 10 + i}}) for i in range(10)]
        append_records(path, recs)
""")


def test_concurrent_writers_never_lose_or_interleave(tmp_path):
    path = tmp_path / "shared" / "records.jsonl"
    (path.parent / "ready").mkdir(parents=True)
    code = WRITER.format(common={k: v for k, v in COMMON.items() if k not in ("run_id", "step")})
    root = Path(__file__).resolve().parents[1]
    module = root / "hinet" / "records.py"
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path), str(w), "3", str(module)]) for w in range(3)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
    lines = path.read_text().splitlines()
    assert len(lines) == 3 * 500
    keys = [(d["run_id"], d["step"]) for d in map(json.loads, lines)]  # every line is valid JSON
    assert sorted(keys) == sorted((f"w{w}", s) for w in range(3) for s in range(500))
    # each batch of 10 is contiguous (one write per batch)
    for start in range(0, len(keys), 10):
        assert len({k[0] for k in keys[start:start + 10]}) == 1
    # the writers really overlapped in time (one after the other would switch exactly twice)
    assert sum(keys[i][0] != keys[i - 10][0] for i in range(10, len(keys), 10)) > 2


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_git_info_clean_dirty_and_outside(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    run = lambda *a: subprocess.run(["git", *a], cwd=repo, check=True, capture_output=True)  # noqa: E731
    run("init", "-q")
    assert git_info(repo) == ("unknown", True)  # no commit yet
    (repo / "code.py").write_text("x = 1\n")
    run("add", "code.py")
    run("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    sha = run("rev-parse", "HEAD").stdout.decode().strip()
    for out in ("results/records", "runs/x"):
        (repo / out).mkdir(parents=True)
        (repo / out / "records.jsonl").write_text("{}\n")
    assert git_info(repo) == (sha, False)
    (repo / "sub").mkdir()
    assert git_info(repo / "sub") == (sha, False)
    (repo / "code.py").write_text("x = 2\n")
    assert git_info(repo) == (sha, True)
    (repo / "code.py").write_text("x = 1\n")
    (repo / "new.py").write_text("")
    assert git_info(repo / "sub") == (sha, True)
    outside = tmp_path / "plain"
    outside.mkdir()
    assert git_info(outside) == ("unknown", True)


def test_compaction_racing_writers_loses_no_row(tmp_path):
    """Real writer processes append while the file is compacted again and again: a writer that opened the
    file before a compaction's rename must write into the new file, never into the replaced one."""
    from hinet.records import compact

    path = tmp_path / "shared" / "records.jsonl"
    (path.parent / "ready").mkdir(parents=True)
    append_records(path, [rec(step=10_000)])
    code = WRITER.format(common={k: v for k, v in COMMON.items() if k not in ("run_id", "step")})
    module = Path(__file__).resolve().parents[1] / "hinet" / "records.py"
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path), str(w), "2", str(module)]) for w in range(2)]
    compactions = 0
    while any(p.poll() is None for p in procs) or compactions == 0:
        compact(path)
        compactions += 1
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    compact(path)
    df = read_records(path, all_versions=True)
    assert len(df) == 1 + 2 * 500, compactions
    assert sorted(zip(df["run_id"], df["step"])) == sorted(
        [(COMMON["run_id"], 10_000)] + [(f"w{w}", s) for w in range(2) for s in range(500)])
