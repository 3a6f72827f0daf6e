"""The report checks the per-image results against the records before a verdict is drawn from them: one row
per way a per-image file can be out of step with its records. Each is refused with one line naming the run
and the file (exit code 2, nothing written), or, for records without any per-image results, a warning that
names the families whose verdict tables are not written."""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hinet.errors import USAGE
from hinet.image_records import image_file, write_image_metrics
from hinet.records import Record, append_records
from hinet.report import command

RUNS = [(variant, seed) for variant in ("full", "no_sam") for seed in (0, 1)]
STEP, IMAGES = 20, 4


def _family(root: Path) -> Path:
    """2 variants x 2 seeds, one validation of 4 images; the set means are the means of the images."""
    records = root / "records" / "components.jsonl"
    rows = []
    for k, (variant, seed) in enumerate(RUNS):
        run_id = f"components-{variant}-s{seed}"
        common = dict(run_id=run_id, family="components", variant=variant, seed=seed, config_hash=f"h-{run_id}",
                      git_commit="abc", synthetic=True, recipe="proxy")
        values = [30.0 + i + 0.1 * k for i in range(IMAGES)]
        write_image_metrics(records.parent / "per_image", common, STEP,
                            [("SIDD", "val", "denoise/clamped", "psnr", f"img{i}", v) for i, v in enumerate(values)])
        rows.append(Record(**common, reference="full", dataset="SIDD", split="val", protocol="denoise/clamped",
                           metric="psnr", value=sum(values) / IMAGES, step=STEP, git_dirty=False, device="cpu",
                           torch_version="2", time="2026-01-01T00:00:00+00:00"))
    append_records(records, rows)
    return records


def _file(records: Path, variant: str = "full", seed: int = 0) -> Path:
    return image_file(records.parent / "per_image", f"components-{variant}-s{seed}", STEP)


def _rewrite(path: Path, change: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    df = change(pq.read_table(path).to_pandas())
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path)


def _other_run(records: Path) -> None:  # the file of another run copied over this one
    shutil.copyfile(_file(records, "no_sam", 0), _file(records))


def _other_step(records: Path) -> None:  # a copy of the run's file under another step's name
    shutil.copyfile(_file(records), _file(records).with_name("step-00000010.parquet"))


def _second_store(records: Path) -> None:  # the same run and step again in another per_image folder
    copy = records.parent / "old" / "per_image" / _file(records).parent.name / _file(records).name
    copy.parent.mkdir(parents=True)
    shutil.copyfile(_file(records), copy)


ROWS: dict[str, tuple[Callable[[Path], object], list[str]]] = {
    "deleted": (lambda r: _file(r).unlink(), ["components-full-s0", "step-00000020.parquet", "missing"]),
    "empty": (lambda r: _rewrite(_file(r), lambda df: df.iloc[:0]), ["components-full-s0", "holds no per-image"]),
    "torn": (lambda r: _file(r).write_bytes(b"PAR1 torn"), ["components-full-s0", "not a readable"]),
    "labelled-with-another-run": (_other_run, ["components-full-s0", "labelled run_id", "components-no_sam-s0"]),
    "other-config-hash": (lambda r: _rewrite(_file(r), lambda df: df.assign(config_hash="h-old")),
                          ["components-full-s0", "config_hash", "h-old"]),
    "other-step": (lambda r: _rewrite(_file(r), lambda df: df.assign(step=10)), ["components-full-s0", "step"]),
    "duplicated-rows": (lambda r: _rewrite(_file(r), lambda df: pd.concat([df, df])),
                        ["components-full-s0", "'img0'", "2 times"]),
    "an-image-missing": (lambda r: _rewrite(_file(r), lambda df: df.iloc[1:]),
                         ["components-full-s0", "3 images", "average"]),
    "an-image-added": (lambda r: _rewrite(_file(r), lambda df: pd.concat([df, df.iloc[:1].assign(image="extra")])),
                       ["components-full-s0", "5 images", "average"]),
    "a-value-changed": (lambda r: _rewrite(_file(r), lambda df: df.assign(value=df["value"] + 2.58)),
                        ["components-full-s0", "average"]),
    "a-metric-missing": (lambda r: _rewrite(_file(r), lambda df: df.assign(metric="ssim")),
                         ["components-full-s0", "no per-image values of SIDD/denoise/clamped/psnr"]),
    "copied-under-another-step": (_other_step, ["step-00000010.parquet", "no validation", "resume"]),
    "in-two-stores": (_second_store, ["components-full-s0", "two per-image files"]),
}


@pytest.mark.parametrize("name", ROWS)
def test_per_image_out_of_step_with_the_records_is_refused(name, tmp_path, capsys):
    records = _family(tmp_path)
    damage, words = ROWS[name]
    damage(records)
    capsys.readouterr()
    code = command(["--records", str(records.parent), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == USAGE, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("python -m hinet.report: error: "), err
    assert not [w for w in words if w not in lines[0]], (words, lines[0])
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_consistent_per_image_results_give_the_verdict_table(tmp_path):
    records = _family(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert command(["--records", str(records.parent), "--out", str(tmp_path / "out")]) == 0
    assert list((tmp_path / "out" / "tables").glob("verdicts_components_*.csv"))


def test_records_copied_without_per_image_warn_which_verdicts_are_lost(tmp_path):
    records = _family(tmp_path)
    copy = tmp_path / "copy" / "components.jsonl"
    copy.parent.mkdir()
    shutil.copyfile(records, copy)  # the records file alone, as someone might mail it
    with pytest.warns(UserWarning, match=r"no per-image results.*\['components'\].*not written"):
        assert command(["--records", str(copy), "--out", str(tmp_path / "out")]) == 0
    assert not list((tmp_path / "out" / "tables").glob("verdicts_*"))
