"""The record store's semantics: atomic batches, one value per identity, per-image results."""

from __future__ import annotations

import errno
import os

import pytest

from hinet.atomic import OutputError
from hinet.image_records import image_store, read_image_metrics, write_image_metrics
from hinet.records import (
    Record,
    append_records,
    read_records,
)

BASE = dict(run_id="r1", family="components", variant="full", dataset="SIDD", split="val", protocol="denoise/clamped",
            metric="psnr", value=30.0, step=10, seed=0, git_commit="abc", git_dirty=False, config_hash="h1",
            device="cpu", torch_version="2", time="2026-01-01T00:00:00+00:00", synthetic=True, recipe="proxy")


def rec(**kw) -> Record:
    return Record(**{**BASE, **kw})


def test_batch_cut_short_by_a_kill_is_never_read_and_is_cut_by_the_next_append(tmp_path):
    path = tmp_path / "r.jsonl"
    append_records(path, [rec(step=1)])
    append_records(path, [rec(step=s) for s in (2, 3, 4)])
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:3]))  # the kill came after 2 of the batch's 3 lines (all complete lines)
    with pytest.warns(UserWarning, match="incomplete last batch"):
        assert read_records(path)["step"].tolist() == [1]
    with pytest.warns(UserWarning, match="incomplete batch"):
        append_records(path, [rec(step=5)])
    assert read_records(path)["step"].tolist() == [1, 5]


def test_full_disk_leaves_the_file_as_it_was_and_names_it(tmp_path, monkeypatch):
    path = tmp_path / "r.jsonl"
    append_records(path, [rec(step=1)])
    before = path.read_bytes()
    real_write = os.write

    def full(fd, data):  # the disk fills after part of the batch went out
        real_write(fd, data[: len(data) // 3])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(OutputError, match=r"r\.jsonl.*No space left"):
        append_records(path, [rec(step=s) for s in range(2, 42)])
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert read_records(path)["step"].tolist() == [1]


def test_unwritable_target_is_an_error_naming_the_path(tmp_path):
    (tmp_path / "blocker").write_text("a file where a folder should be")
    with pytest.raises(OutputError, match="blocker"):
        append_records(tmp_path / "blocker" / "r.jsonl", [rec()])


def test_rewritten_identity_keeps_the_latest_value(tmp_path):
    path = tmp_path / "r.jsonl"
    append_records(path, [rec(step=10, value=1.0), rec(step=20, value=2.0), rec(metric="ssim", value=0.5)])
    append_records(path, [rec(step=10, value=1.5, time="2026-01-02T00:00:00+00:00")])  # a resumed run rewrites
    df = read_records(path)
    assert sorted(zip(df["metric"], df["step"], df["value"])) == [("psnr", 10, 1.5), ("psnr", 20, 2.0),
                                                                   ("ssim", 10, 0.5)]
    assert len(read_records(path, all_versions=True)) == 4
    # same second: the later line wins
    append_records(path, [rec(step=20, value=2.5, time="2026-01-02T00:00:00+00:00")])
    append_records(path, [rec(step=20, value=2.75, time="2026-01-02T00:00:00+00:00")])
    assert read_records(path).query("step == 20 and metric == 'psnr'")["value"].tolist() == [2.75]


def test_a_run_with_a_changed_spec_supersedes_all_its_older_rows(tmp_path):
    path = tmp_path / "r.jsonl"
    append_records(path, [rec(step=s, value=float(s)) for s in (10, 20, 30)])  # e.g. the committed results
    append_records(path, [rec(run_id="other", step=30)])
    append_records(path, [rec(step=10, value=9.0, config_hash="h2", time="2026-02-01T00:00:00+00:00")])
    df = read_records(path)
    assert sorted(zip(df["run_id"], df["step"], df["value"])) == [("other", 30, 30.0), ("r1", 10, 9.0)]


def test_per_image_results_round_trip_and_a_rewrite_replaces_the_step(tmp_path):
    root = image_store(tmp_path / "records" / "components.jsonl")
    assert root == tmp_path / "records" / "per_image"
    common = {k: BASE[k] for k in ("run_id", "family", "variant", "seed", "config_hash", "git_commit", "synthetic",
                                   "recipe")}
    rows = [("SIDD", "val", "denoise/clamped", m, f"img{i}", float(i) + (m == "ssim")) for i in range(50)
            for m in ("psnr", "ssim")]
    write_image_metrics(root, common, 10, rows)
    write_image_metrics(root, common, 20, rows)
    write_image_metrics(root, common, 20, [(*r[:5], r[5] + 1.0) for r in rows])  # validation of 20 repeated
    df = read_image_metrics(root)
    assert len(df) == 200
    s20 = df[(df["step"] == 20) & (df["metric"] == "psnr")].sort_values("value")
    assert s20["value"].tolist() == [float(i) + 1.0 for i in range(50)]
    assert s20["image"].tolist() == [f"img{i}" for i in range(50)]
    assert set(df["variant"]) == {"full"} and df["seed"].dtype == "Int64"
    assert not list(root.rglob("*.tmp*"))


def test_per_image_scene_column_and_files_without_it_read_as_scene_equals_image(tmp_path):
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from hinet.image_records import IMAGE_COLUMNS

    assert IMAGE_COLUMNS[IMAGE_COLUMNS.index("image") + 1] == "scene"
    common = {k: BASE[k] for k in ("run_id", "family", "variant", "seed", "config_hash", "git_commit", "synthetic",
                                   "recipe")}
    rows = [("SIDD", "val", "p", "psnr", f"blk{i}", f"{i // 2:04d}", float(i)) for i in range(4)]
    write_image_metrics(tmp_path / "new", common, 1, rows)
    write_image_metrics(tmp_path / "new", common, 2, [r[:5] + r[6:] for r in rows])  # no scene given
    df = read_image_metrics(tmp_path / "new").sort_values(["step", "value"])
    assert df["scene"].tolist() == ["0000", "0000", "0001", "0001", "blk0", "blk1", "blk2", "blk3"]

    old = df[df["step"] == 1].drop(columns=["scene"]).copy()  # a file written before the scene column
    old["time"] = old["time"].map(lambda t: t.isoformat())
    path = tmp_path / "old" / "r1" / "step-00000001.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pandas(pd.DataFrame(old), preserve_index=False), path)
    back = read_image_metrics(tmp_path / "old")
    assert list(back.columns) == list(IMAGE_COLUMNS)
    assert back["scene"].tolist() == back["image"].tolist() == ["blk0", "blk1", "blk2", "blk3"]


def test_per_image_non_finite_values_are_refused(tmp_path):
    common = {k: BASE[k] for k in ("run_id", "family", "variant", "seed", "config_hash", "git_commit", "synthetic",
                                   "recipe")}
    with pytest.raises(ValueError, match="non-finite psnr for image 'b'"):
        write_image_metrics(tmp_path, common, 1, [("S", "val", "p", "psnr", "a", 1.0),
                                                  ("S", "val", "p", "psnr", "b", float("nan"))])
    assert not any(tmp_path.rglob("*.parquet"))


def test_torn_per_image_file_names_the_file(tmp_path):
    bad = tmp_path / "r1" / "step-00000001.parquet"
    bad.parent.mkdir()
    bad.write_bytes(b"PAR1 torn")
    with pytest.raises(ValueError, match="step-00000001.parquet"):
        read_image_metrics(tmp_path)


def test_compact_keeps_exactly_what_the_reader_keeps(tmp_path):
    from hinet.records import compact

    path = tmp_path / "r.jsonl"
    append_records(path, [rec(step=s, value=float(s)) for s in (10, 20)])
    append_records(path, [rec(step=10, value=1.5, time="2026-01-02T00:00:00+00:00"), rec(step=None, seed=None)])
    expected = read_records(path)
    assert compact(path) == (4, 3)
    assert len(read_records(path, all_versions=True)) == 3
    pd_equal = read_records(path).reset_index(drop=True).equals(expected.reset_index(drop=True))
    assert pd_equal


def test_a_compacted_file_of_any_size_is_never_taken_for_a_torn_tail(tmp_path, recwarn):
    """A compacted file is one batch; larger than the 4 MiB tail the next append examines first, it must
    still be recognised as complete (the next append once truncated 10,848 of 24,004 rows)."""
    from hinet.records import compact

    path = tmp_path / "r.jsonl"
    rows = [rec(step=s, run_id=f"run-{s % 7}-" + "x" * 200) for s in range(12_000)]
    append_records(path, rows)
    assert path.stat().st_size > 1 << 22
    assert compact(path) == (12_000, 12_000)
    append_records(path, [rec(step=99_999)])
    assert len(read_records(path)) == 12_001
    assert not [w for w in recwarn if "incomplete" in str(w.message)]


def test_an_incomplete_batch_larger_than_the_tail_window_is_still_cut(tmp_path):
    path = tmp_path / "r.jsonl"
    append_records(path, [rec(step=1)])
    append_records(path, [rec(step=s, run_id="y" * 300) for s in range(2, 14_000)])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 1000])  # killed near the end of a 5 MiB batch
    with pytest.warns(UserWarning, match="incomplete batch"):
        append_records(path, [rec(step=20_000)])
    assert read_records(path)["step"].tolist() == [1, 20_000]


def test_a_per_image_file_without_the_columns_names_the_file(tmp_path):
    import pandas as pd

    good = write_image_metrics(tmp_path, {**BASE, "run_id": "a"}, 1, [("SIDD", "val", "p", "psnr", "x.png", 30.0)])
    bad = good.parent.parent / "b" / "step-00000001.parquet"
    bad.parent.mkdir()
    pd.DataFrame({"value": [1.0]}).to_parquet(bad)
    with pytest.raises(ValueError, match=r"b/step-00000001\.parquet: not a per-image results file.*'image'"):
        read_image_metrics(tmp_path)
