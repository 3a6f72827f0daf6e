"""The ablation grid: one process per run, finished runs skipped, started ones resumed; submitit's local
executor stands in for Slurm."""

from pathlib import Path

import pytest

from ablations import FAMILIES
from ablations import run as ablate
from hinet.config import HINetConfig
from hinet.records import read_records


@pytest.mark.parametrize("fam", sorted(FAMILIES))
def test_plan_covers_every_variant_and_seed(tmp_path, fam):
    runs = ablate.plan(fam, "sidd", "proxy", [0, 1], tmp_path, tmp_path / "r.jsonl")
    assert len(runs) == 2 * len(FAMILIES[fam].VARIANTS)
    assert len({r.run_id for r in runs}) == len(runs)
    assert all(r.status() == "new" for r in runs)
    hin = [isinstance(r.spec.model, HINetConfig) for r in runs]  # the fast switches are HINet's (methods: peers)
    assert all((r.spec.fused_norm and r.spec.inplace_act and r.spec.channels_last) == h for r, h in zip(runs, hin))
    gpu = ablate.plan(fam, "sidd", "proxy", [0], tmp_path, tmp_path / "r.jsonl", device="cuda")
    assert not any(r.spec.channels_last for r in gpu)
    assert all(r.spec.fused_norm == isinstance(r.spec.model, HINetConfig) for r in gpu)
    assert all(r.spec.recipe.val_limit == 3 for r in
               ablate.plan(fam, "sidd", "proxy", [0], tmp_path, tmp_path / "r.jsonl", val_images=3))
    with pytest.raises(ValueError, match="unknown variant"):
        ablate.plan(fam, "sidd", "proxy", [0], tmp_path, tmp_path / "r.jsonl", variants=["nope"])


def test_grid_runs_skips_done_and_writes_records(tmp_path, monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    records = tmp_path / "records.jsonl"
    argv = ["--family", "components", "--variants", "full", "single_stage", "--seeds", "0", "--iters", "2",
            "--val-images", "2",
            "--runs-dir", str(tmp_path / "runs"), "--records", str(records), "--no-report",
            "--launcher", "submitit-local"]
    assert ablate.main(argv) == 0
    df = read_records(records)
    assert set(df.variant) == {"full", "single_stage"}
    assert df.synthetic.all() and (df.recipe == "proxy").all()
    assert {"psnr", "loss", "params", "macs"} <= set(df.metric)
    n = len(df)
    runs = ablate.plan("components", "sidd", "proxy", [0], tmp_path / "runs", records, iters=2,
                       variants=["full", "single_stage"], val_images=2)
    assert all(r.status() == "done" for r in runs)
    assert ablate.main(argv[:-2] + ["--launcher", "local", "--parallel", "2"]) == 0  # nothing left to do
    assert len(read_records(records)) == n
