"""Optuna studies (hinet.tune): storages, resume, concurrent worker processes, pruning, retries, report.

Every trial really trains a tiny proxy network (4 iterations, 32-pixel crops, width 4/8, 2 validation
images, synthetic denoising data) on the CPU.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import matplotlib.image as mpimg
import optuna
import pytest
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from hinet import tune
from hinet.errors import UserError
from hinet.records import read_records

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--iters", "4", "--val-limit", "2", "--crop", "32", "--width", "4", "8", "--batch", "2", "4",
        "--device", "cpu", "--threads", "1"]
SPACE = tune.SearchSpace(crop=(32,), width=(4, 8), batch=(2,))

optuna.logging.set_verbosity(optuna.logging.WARNING)


def tiny_objective(tmp_path: Path, study: str, *, iters: int = 4, val_every: int = 1) -> tune.Objective:
    recipe = tune.base_recipe("sidd-proxy", iters, val_every=val_every, val_limit=2)
    return tune.Objective(study, recipe, SPACE, tmp_path / "runs", tmp_path / "records.jsonl", seed=0)


def val_steps(records: Path, run_id: str) -> list[int]:
    """Every validation the trainer recorded for the run (all versions: a repeated step counts twice)."""
    df = read_records(records, all_versions=True)
    df = df[(df["run_id"] == run_id) & (df["split"] == "val") & (df["protocol"] == "denoise/clamped")
            & (df["metric"] == "psnr") & (df["dataset"] == "SIDD (synthetic)")]  # one row per validation
    return df["step"].tolist()


def recorded_psnr(records: Path, run_id: str, step: int) -> float:
    """Mean denoise/clamped PSNR over the validation sets but the natural photographs, as recorded by the
    trainer at ``step`` (what the objective maximises)."""
    from hinet.tasks import NATURAL_PHOTOS_SET

    df = read_records(records)
    df = df[(df["run_id"] == run_id) & (df["split"] == "val") & (df["protocol"] == "denoise/clamped")
            & (df["metric"] == "psnr") & (df["step"] == step) & (df["dataset"] != NATURAL_PHOTOS_SET)]
    assert len(df) >= 1
    return float(df["value"].mean())


# ----------------------------------------------------------------------------------------------- CLI study
@pytest.fixture(scope="module")
def cli_study(tmp_path_factory) -> tuple[Path, list[str]]:
    """A 3-trial study run through the CLI on the default SQLite storage."""
    tmp = tmp_path_factory.mktemp("tune")
    args = ["--study", "s", "--runs-dir", str(tmp / "runs"), "--results", str(tmp / "results"), *TINY]
    tune.main([*args, "--trials", "3", "--seed", "0"])
    return tmp, args


def test_cli_study_completes_on_sqlite_with_records_and_report(cli_study):
    tmp, _ = cli_study
    db = tmp / "results" / "optuna" / "s.db"
    assert db.is_file()
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{db}")
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    records_path = tmp / "results" / "records" / "optuna.jsonl"
    for t in trials:  # objective = final denoise/clamped PSNR as the trainer recorded it
        run_dir = tmp / "runs" / f"optuna-s-t{t.number}"
        assert t.user_attrs["run_dir"] == str(run_dir) and (run_dir / "done.json").is_file()
        assert t.value == pytest.approx(recorded_psnr(records_path, f"optuna-s-t{t.number}", 4))
        assert set(t.intermediate_values) == {2, 4}  # the proxy validates twice: at iters/2 and at the end
    records = read_records(tmp / "results" / "records" / "optuna.jsonl")
    assert set(records["variant"]) == {"s-t0", "s-t1", "s-t2"}
    assert set(records["family"]) == {"optuna"} and set(records["recipe"]) == {"proxy"}
    assert records["synthetic"].all()
    for name in ("history", "importances"):
        png = tmp / "results" / "figures" / f"optuna_s_{name}.png"
        assert mpimg.imread(png).shape[0] > 100
    import pandas as pd

    table = pd.read_csv(tmp / "results" / "tables" / "optuna_s.csv")
    assert len(table) == 3 and {"params_lr", "params_width", "params_norm_levels", "value"} <= set(table.columns)


def test_cli_resume_adds_trials_and_refuses_other_settings(cli_study):
    tmp, args = cli_study
    tune.main([*args, "--trials", "1"])
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp / 'results' / 'optuna' / 's.db'}")
    assert len(optuna.get_all_study_names(study._storage)) == 1
    assert [t.number for t in study.trials] == [0, 1, 2, 3]
    assert study.trials[3].state == TrialState.COMPLETE
    with pytest.raises(tune.StudyMismatchError, match="other settings"):
        tune.main([*args, "--trials", "1", "--iters", "5"])


def test_report_only_rebuilds_the_report(cli_study, capsys):
    tmp, args = cli_study
    png = tmp / "results" / "figures" / "optuna_s_history.png"
    png.unlink()
    tune.main(["--report-only", "--study", "s", "--results", str(tmp / "results")])
    assert png.is_file() and "best trial" in capsys.readouterr().out
    with pytest.raises(UserError, match="--study 'missing': no such study"):
        tune.main(["--report-only", "--study", "missing", "--results", str(tmp / "results")])


# ----------------------------------------------------------------------------------------------- workers
@pytest.mark.slow
def test_two_worker_processes_per_storage_share_one_study(tmp_path):
    """Two real worker processes on one SQLite file and two on one journal file, all four at once."""
    urls = {"sqlite": f"sqlite:///{tmp_path / 'study.db'}", "journal": str(tmp_path / "study.log")}
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    workers = []
    for kind, url in urls.items():
        for seed in range(2):
            cmd = [sys.executable, "-m", "hinet.tune", "--study", "w", "--storage", url, "--trials", "2",
                   "--seed", str(seed), "--runs-dir", str(tmp_path / kind / "runs"),
                   "--results", str(tmp_path / kind / "results"), *TINY]
            workers.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE, text=True))
    outputs = [w.communicate(timeout=240) for w in workers]
    for w, (_, err) in zip(workers, outputs):
        assert w.returncode == 0, err
        assert "Traceback" not in err and " failed " not in err, err
    for kind, url in urls.items():
        trials = optuna.load_study(study_name="w", storage=tune.open_storage(url)).get_trials()
        assert sorted(t.number for t in trials) == [0, 1, 2, 3], kind
        assert all(t.state == TrialState.COMPLETE for t in trials), kind
        by_worker: dict[str, int] = {}
        for t in trials:
            by_worker[t.user_attrs["worker"]] = by_worker.get(t.user_attrs["worker"], 0) + 1
        assert sorted(by_worker.values()) == [2, 2], kind  # both processes ran their share
        assert len({t.user_attrs["run_dir"] for t in trials}) == 4, kind
        records = read_records(tmp_path / kind / "results" / "records" / "optuna.jsonl")
        assert set(records["variant"]) == {f"w-t{i}" for i in range(4)}, kind


# ----------------------------------------------------------------------------------------------- pruning
def _study_with_reference(tmp_path: Path, name: str, iters: int) -> optuna.Study:
    """A study whose one completed reference trial scored an unreachable 99 dB at every step."""
    study = tune.load_study(name, tune.open_storage(f"sqlite:///{tmp_path / 'p.db'}"),
                            pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0))
    study.add_trial(optuna.trial.create_trial(value=99.0, intermediate_values={s: 99.0 for s in range(1, iters + 1)}))
    return study


def test_median_pruner_stops_a_trial_below_the_median(tmp_path):
    study = _study_with_reference(tmp_path, "p", 4)
    study.optimize(tiny_objective(tmp_path, "p"), n_trials=1)
    trial = study.trials[1]
    assert trial.state == TrialState.PRUNED
    run_dir = tmp_path / "runs" / "optuna-p-t1"
    # reported through train()'s on_validation hook at the first validation, then stopped there
    assert trial.intermediate_values == {1: pytest.approx(recorded_psnr(tmp_path / "records.jsonl", "optuna-p-t1",
                                                                        1))}
    assert val_steps(tmp_path / "records.jsonl", "optuna-p-t1") == [1] and not (run_dir / "done.json").exists()


def test_last_validation_is_reported_but_never_pruned(tmp_path):
    study = _study_with_reference(tmp_path, "q", 1)
    study.optimize(tiny_objective(tmp_path, "q", iters=1), n_trials=1)
    trial = study.trials[1]
    assert trial.state == TrialState.COMPLETE and set(trial.intermediate_values) == {1}
    assert trial.value < 99.0  # below the median, yet kept


# ----------------------------------------------------------------------------------------------- retries
class Crash(RuntimeError):
    pass


def test_retried_trial_resumes_the_dead_trials_run(tmp_path, monkeypatch):
    study = tune.load_study("r", tune.open_storage(f"sqlite:///{tmp_path / 'r.db'}"))
    objective = tiny_objective(tmp_path, "r")
    original = tune.Objective._reporter

    def crashing(self, trial):
        report = original(self, trial)

        def on_validation(step, metrics):
            report(step, metrics)
            if step == 2:  # dies after validating step 2, before its checkpoint (written after the validation)
                raise Crash

        return on_validation

    monkeypatch.setattr(tune.Objective, "_reporter", crashing)
    study.optimize(objective, n_trials=1, catch=(Crash,))
    monkeypatch.setattr(tune.Objective, "_reporter", original)
    dead = study.trials[0]
    assert dead.state == TrialState.FAIL
    # what the RDB heartbeat does to a stale trial: re-queue it with its params and user attributes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        RetryHeartbeatStaleTrialCallback(max_retry=1, inherit_intermediate_values=True)(study, dead)
    study.optimize(objective, n_trials=1)  # inherits steps 1-2, validates 2 again, then 3 and 4
    retry = study.trials[1]
    run_dir = tmp_path / "runs" / "optuna-r-t0"
    assert retry.state == TrialState.COMPLETE and retry.params == dead.params
    assert retry.user_attrs["run_dir"] == str(run_dir) and not (tmp_path / "runs" / "optuna-r-t1").exists()
    assert val_steps(tmp_path / "records.jsonl", "optuna-r-t0") == [1, 2, 2, 3, 4]  # resumed from step 1's checkpoint
    assert set(retry.intermediate_values) == {1, 2, 3, 4}
    assert set(read_records(tmp_path / "records.jsonl")["variant"]) == {"r-t0"}


# ----------------------------------------------------------------------------------------------- units
def test_trial_spec_replaces_recipe_and_network_fields():
    recipe = tune.base_recipe("gopro", 8, val_limit=2)
    params = {"lr": 5e-4, "batch": 4, "crop": 48, "width": 12, "norm_ratio": 0.25, "norm_levels": "1-2",
              "loss": "l1"}
    spec = tune.trial_spec(recipe, params, seed=3, data=None, variant="x-t0")
    assert spec.recipe == replace(recipe, lr=5e-4, eta_min=recipe.eta_min / recipe.lr * 5e-4, batch_size=4, crop=48,
                                  loss="l1", loss_weight=1.0)
    assert spec.recipe.proxy and spec.recipe.total_iters == 8 and spec.recipe.task == "deblur"
    assert spec.model == replace(tune.base_config(recipe), width=12, norm_ratio=0.25, norm_levels=(1, 2))
    assert (spec.family, spec.variant, spec.seed, spec.synthetic) == ("optuna", "x-t0", 3, True)


def test_search_space_checks_and_level_ranges():
    assert tune.SearchSpace.level_ranges(3) == ["0-0", "0-1", "0-2", "1-1", "1-2", "2-2"]
    tune.SearchSpace().check(3)
    with pytest.raises(ValueError, match="width=6"):
        tune.SearchSpace(width=(6,)).check(3)  # 6 * 0.25 is not whole
    with pytest.raises(ValueError, match="crop"):
        tune.SearchSpace(crop=(30,)).check(3)
    with pytest.raises(ValueError, match="loss"):
        tune.SearchSpace(loss=("mse",)).check(3)
    with pytest.raises(ValueError, match="lr"):
        tune.SearchSpace(lr=(1e-3, 1e-4)).check(3)


def test_objective_protocol_avoids_the_auto_peak():
    assert tune.objective_protocol("denoise") == "denoise/clamped"
    assert tune.objective_protocol("deblur") == "deblur/official"
    assert tune.objective_protocol("denoise", "official") == "denoise/official"
    with pytest.raises(ValueError, match="matlab"):
        tune.objective_protocol("derain", "matlab")


def test_storage_and_recipe_arguments_are_checked(tmp_path):
    assert isinstance(tune.open_storage(str(tmp_path / "j" / "x.log")), optuna.storages.JournalStorage)
    with pytest.raises(ValueError, match="journal file"):
        tune.open_storage(str(tmp_path / "x.db"))
    with pytest.raises(ValueError, match="unknown recipe"):
        tune.base_recipe("nope", 4)


def test_figures_with_too_few_trials_are_skipped_with_a_note(tmp_path, capsys):
    study = optuna.create_study(direction="maximize", study_name="few")
    assert tune.tune_figures(study, tmp_path) == [tmp_path / "tables" / "optuna_few.csv"]
    dist = {"lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)}
    study.add_trial(optuna.trial.create_trial(value=20.0, params={"lr": 1e-3}, distributions=dist))
    paths = tune.tune_figures(study, tmp_path)
    assert [p.name for p in paths] == ["optuna_few.csv", "optuna_few_history.png"]
    study.add_trial(optuna.trial.create_trial(value=21.0, params={"lr": 1e-3}, distributions=dist))
    assert len(tune.tune_figures(study, tmp_path)) == 2  # two trials, but no parameter varies
    out = capsys.readouterr().out
    assert "optuna_few_importances.png skipped" in out and "no completed trial" in out
    study.add_trial(optuna.trial.create_trial(value=22.0, params={"lr": 3e-3}, distributions=dist))
    assert (tmp_path / "figures" / "optuna_few_importances.png") in tune.tune_figures(study, tmp_path)


def test_workers_get_their_own_gpu_slot_and_seed(tmp_path):
    """--workers 2 --gpus 0,1: two real worker processes, each started with its own CUDA_VISIBLE_DEVICES
    (they train on the CPU here: --device cpu), one study, then one report."""
    argv = ["--study", "g", "--runs-dir", str(tmp_path / "runs"), "--results", str(tmp_path / "results"), *TINY,
            "--trials", "1", "--seed", "3"]
    assert tune.cli([*argv, "--workers", "2", "--gpus", "0,1"]) == 0
    study = optuna.load_study(study_name="g", storage=f"sqlite:///{tmp_path / 'results' / 'optuna' / 'g.db'}")
    trials = study.get_trials()
    assert len(trials) == 2 and {t.user_attrs["devices"] for t in trials} == {"0", "1"}
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # two processes
    assert (tmp_path / "results" / "tables" / "optuna_g.csv").is_file()


def test_the_objective_leaves_the_natural_photographs_out():
    from hinet.tasks import NATURAL_PHOTOS_SET
    from hinet.tune import validation_psnr

    metrics = {"SIDD (synthetic)/denoise/clamped/psnr": 30.0, f"{NATURAL_PHOTOS_SET}/denoise/clamped/psnr": 20.0,
               "SIDD (synthetic)/denoise/clamped/ssim": 0.9}
    assert validation_psnr(metrics, "denoise/clamped") == 30.0
