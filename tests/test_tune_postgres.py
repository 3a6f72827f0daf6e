"""hinet.tune on a real PostgreSQL server: two worker processes, one killed mid-trial, its trial retried.

The fixture starts a throw-away cluster (``initdb`` / ``pg_ctl`` of the installed PostgreSQL, e.g. the Debian
``postgresql`` package under ``/usr/lib/postgresql/<version>/bin``) in a temporary directory, listening only on
a Unix socket there, and stops it at teardown, also when the test fails. As root, the server runs as the
``postgres`` user (or ``nobody``), since PostgreSQL refuses to run as root. Skipped only when the server
binaries are absent (``.ci/run`` installs them).

Workers use the library the CLI uses (``open_storage``, ``load_study``, ``Objective``) with a 1 s heartbeat
(the CLI's is 60 s, too slow for a test), on a ``postgresql+psycopg://`` URL.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from hinet import tune
from hinet.records import read_records

ROOT = Path(__file__).resolve().parents[1]
HEARTBEAT = 1  # seconds; a trial silent for 3 heartbeats is stale
DEADLINE = 60  # seconds any wait of this test may take before it fails

optuna.logging.set_verbosity(optuna.logging.WARNING)


def server_binaries() -> Path | None:
    """Directory holding initdb, pg_ctl and createdb: that of initdb on PATH (links resolved), else the
    newest /usr/lib/postgresql/<version>/bin."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).resolve().parent  # Debian links only some tools onto PATH
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3])
                   if Path(p).parts[-3].isdigit() else 0)
    return Path(found[-1]).parent if found else None


def server_user() -> str | None:
    """The user the server runs as: None (this user) unless root, then ``postgres`` or ``nobody``."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    pytest.skip("running as root and neither a 'postgres' nor a 'nobody' user exists to run PostgreSQL as")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """``postgresql+psycopg://`` URL of a fresh database on a throw-away server (stopped at teardown)."""
    bindir = server_binaries()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or in /usr/lib/postgresql/*/bin; "
                    "install them, e.g. apt-get install postgresql")
    user = server_user()
    # Not pytest's tmp_path: its parents are private to root, and the server user must reach the directory.
    # The socket path must stay short (Unix sockets allow ~107 bytes).
    root = Path(tempfile.mkdtemp(prefix="hinet-pg-"))
    data, log = root / "data", root / "server.log"
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)

    def as_server(*cmd: str, timeout: float = DEADLINE) -> subprocess.CompletedProcess:
        return subprocess.run([str(bindir / cmd[0]), *cmd[1:]], user=user, capture_output=True, text=True,
                              timeout=timeout, cwd=root)

    started = False
    try:
        done = as_server("initdb", "-D", str(data), "-U", "hinet", "--auth=trust", "-E", "UTF8", "--no-sync")
        assert done.returncode == 0, f"initdb failed:\n{done.stdout}\n{done.stderr}"
        options = f"-k {root} -c listen_addresses='' -c fsync=off -c full_page_writes=off"
        done = as_server("pg_ctl", "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "30", "start")
        started = True
        assert done.returncode == 0, f"pg_ctl start failed:\n{done.stdout}\n{done.stderr}\n" + (
            log.read_text() if log.exists() else "")
        done = as_server("createdb", "-h", str(root), "-U", "hinet", "hinet_test")
        assert done.returncode == 0, f"createdb failed:\n{done.stderr}"
        yield f"postgresql+psycopg://hinet@/hinet_test?host={root}"
    finally:
        if started:
            as_server("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "-t", "30", "stop")
        shutil.rmtree(root, ignore_errors=True)


# One worker process: the tiny denoising proxy of tests/test_tune.py, 4 iterations validated every step.
# The victim writes its pid to a marker file when it validates step 2 of its first trial (step 1's checkpoint
# is on disk then) and sleeps there until it is killed. The survivor runs trials until a retried trial has
# completed (or DEADLINE passes) and stops then.
WORKER = r"""
import json, os, sys, time
from dataclasses import asdict
from pathlib import Path
import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState
from hinet import tune

url, role, out, heartbeat, deadline = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
optuna.logging.set_verbosity(optuna.logging.WARNING)
recipe = tune.base_recipe("sidd-proxy", 4, val_every=1, val_limit=2)
space = tune.SearchSpace(crop=(32,), width=(4, 8), batch=(2,))
objective = tune.Objective("pg", recipe, space, out / "runs", out / "records.jsonl", seed=0)
settings = json.loads(json.dumps({"recipe": recipe.to_dict(), "space": asdict(space)}))
study = tune.load_study("pg", tune.open_storage(url, heartbeat=heartbeat), settings=settings,
                        sampler=optuna.samplers.TPESampler(seed=0 if role == "victim" else 1))
if role == "victim":
    original = tune.Objective._reporter

    def hanging(self, trial):
        report = original(self, trial)

        def on_validation(step, metrics):
            report(step, metrics)
            if step == 2:
                (out / "victim.tmp").write_text(str(os.getpid()))
                os.replace(out / "victim.tmp", out / "victim.pid")  # never seen half-written
                time.sleep(600)

        return on_validation

    tune.Objective._reporter = hanging
    study.optimize(objective, n_trials=1)
    sys.exit("victim: was not killed")

def stop_after_retry(study, trial):
    if trial.state == TrialState.COMPLETE and RetryHeartbeatStaleTrialCallback.retried_trial_number(trial) is not None:
        study.stop()

study.optimize(objective, timeout=deadline, callbacks=[stop_after_retry])
"""


def start_worker(url: str, role: str, out: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", WORKER, url, role, str(out), str(HEARTBEAT), str(DEADLINE)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def val_steps(records: Path, run_id: str) -> list[int]:
    """Every validation the trainer recorded for the run (all versions: a repeated step counts twice)."""
    from hinet.records import read_records

    df = read_records(records, all_versions=True)
    df = df[(df["run_id"] == run_id) & (df["split"] == "val") & (df["protocol"] == "denoise/clamped")
            & (df["metric"] == "psnr") & (df["dataset"] == "SIDD (synthetic)")]  # one row per validation
    return df["step"].tolist()


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")  # the retry callback's helpers
def test_killed_worker_trial_is_retried_and_every_trial_counted(postgres_url, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    victim = start_worker(postgres_url, "victim", out)
    survivor = start_worker(postgres_url, "survivor", out)
    try:
        marker = out / "victim.pid"
        deadline = time.monotonic() + DEADLINE
        while not marker.exists():
            if victim.poll() is not None:
                pytest.fail(f"the victim worker exited ({victim.returncode}) before its trial hung:\n"
                            f"{victim.communicate()[1]}")
            if time.monotonic() > deadline:
                pytest.fail("the victim worker never reached step 2 of its trial")
            time.sleep(0.1)
        assert int(marker.read_text()) == victim.pid
        os.kill(victim.pid, signal.SIGKILL)  # mid-trial: RUNNING in the database, heartbeat stops
        victim.wait(timeout=10)
        assert victim.returncode == -signal.SIGKILL
        _, err = survivor.communicate(timeout=DEADLINE + 30)
        assert survivor.returncode == 0, err
        assert "Traceback" not in err, err
    finally:
        for worker in (victim, survivor):
            if worker.poll() is None:
                worker.kill()
                worker.communicate()

    study = optuna.load_study(study_name="pg", storage=tune.open_storage(postgres_url, heartbeat=HEARTBEAT))
    trials = study.get_trials()
    assert [t.number for t in trials] == list(range(len(trials)))  # every trial counted, none lost
    states = [t.state for t in trials]
    assert states.count(TrialState.FAIL) == 1 and states.count(TrialState.COMPLETE) == len(trials) - 1, states
    dead = next(t for t in trials if t.state == TrialState.FAIL)
    assert dead.user_attrs["worker"].endswith(f":{victim.pid}")
    assert set(dead.intermediate_values) == {1, 2}  # reported to PostgreSQL before the kill
    retries = [t for t in trials if RetryHeartbeatStaleTrialCallback.retried_trial_number(t) is not None]
    assert len(retries) == 1, [t.system_attrs for t in trials]
    retry = retries[0]
    assert RetryHeartbeatStaleTrialCallback.retried_trial_number(retry) == dead.number
    assert RetryHeartbeatStaleTrialCallback.retry_history(retry) == [dead.number]
    assert retry.state == TrialState.COMPLETE and retry.params == dead.params
    assert retry.user_attrs["worker"].endswith(f":{survivor.pid}")
    # the retry resumed the dead trial's run from its last checkpoint: step 2's checkpoint comes after step 2's
    # validation, which the kill interrupted, so step 2 is trained and validated again (no validation is lost)
    run_dir = out / "runs" / f"optuna-pg-t{dead.number}"
    assert retry.user_attrs["run_dir"] == str(run_dir)
    assert val_steps(out / "records.jsonl", f"optuna-pg-t{dead.number}") == [1, 2, 2, 3, 4]
    own = [t for t in trials if t.state == TrialState.COMPLETE and t is not retry]
    assert own and all(t.user_attrs["worker"].endswith(f":{survivor.pid}") for t in own)  # ran alongside
    assert min(t.datetime_start for t in own) < retry.datetime_start
    records = read_records(out / "records.jsonl")
    # one run's records per completed trial; the retry's under the dead trial's run (no duplicate run)
    assert set(records["variant"]) == {f"pg-t{t.user_attrs['run_number']}" for t in trials
                                       if t.state == TrialState.COMPLETE}
    assert records.groupby("variant")["run_id"].nunique().eq(1).all()
    assert f"{len(trials) - 1} complete, 1 fail" in tune.summary(study)
