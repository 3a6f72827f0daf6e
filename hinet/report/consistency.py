"""The per-image results checked against the records before any verdict is drawn from them.

The trainer writes each validation twice: the set means as records and the per-image values as one Parquet
file per (run, step) (``hinet.image_records.image_file``). A verdict pairs the per-image values, so a file that
is missing, empty, labelled with another run or configuration, holds an image twice, or holds other images
than the ones the records' set means were computed from would change a verdict without a word. The report
refuses such files (:class:`PerImageMismatch`, naming the run and the file) and warns, naming the families,
when the records come without any per-image results at all (a records file copied without ``per_image/``),
so the verdict tables never disappear silently.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from ..errors import UserError
from ..image_records import image_file
from ..tasks import EVALUATION_FAMILIES, STUDY

IMAGE_KEY = ("dataset", "split", "protocol", "metric", "image")


class PerImageMismatch(UserError):
    """A per-image file disagrees with the records it belongs to."""


def validated(records: pd.DataFrame) -> pd.DataFrame:
    """The records that state a validation with per-image results: the trainer's set means (split ``val``,
    a step) of every family but the checkpoint evaluations and speed."""
    mask = (records["split"] == "val") & records["step"].notna().astype(bool) & ~records["family"].isin(
        EVALUATION_FAMILIES)
    return records[mask]


def check_per_image(records: pd.DataFrame, root: Path | None, source: str | Path) -> None:
    """Check the per-image files under ``root`` against ``records`` (the current rows, as read by
    ``hinet.records.read_records``); ``source`` names the records in messages.

    For every (run, step) the records say was validated there must be exactly the file
    ``<run>/step-<step>.parquet`` under ``root``, with rows, every row of that run, step and config hash, no image
    twice per (dataset, split, protocol, metric), and per set the mean of its values equal to the recorded
    set mean (the same images, none missing or added). A file in a validated run's folder that no validation
    names is refused too (a copy would be read as more images), unless it belongs to an earlier configuration of
    the run, whose rows the reader drops like superseded records. Without any per-image file a warning names
    the families whose verdict tables are therefore not written.
    """
    expected = validated(records)
    if expected.empty:
        return
    files = sorted(root.rglob("*.parquet")) if root is not None and root.is_dir() else []
    if not files:
        families = sorted(set(expected["family"]) - {STUDY})  # studies draw no verdicts
        if not families:
            return
        warnings.warn(f"{source}: no per-image results (no per_image/ folder with the records, or an empty one); "
                      f"the verdict tables of {families} are not written. Copy the records' per_image/ folder "
                      f"with them", stacklevel=3)
        return
    found: dict[tuple[str, str], list[Path]] = {}
    for path in files:  # <store>/<run>/<step file>; a records folder may hold several stores
        found.setdefault((path.parent.name, path.name), []).append(path)
    wanted = {(run, image_file(".", run, int(step)).name): (run, int(step))
              for run, step in expected[["run_id", "step"]].drop_duplicates().itertuples(index=False)}
    runs = set(expected["run_id"])
    current = expected.groupby("run_id")["config_hash"].last()
    for (run, name), paths in found.items():
        if run in runs and (run, name) not in wanted and not _superseded(paths[0], current[run]):
            raise PerImageMismatch(f"{paths[0]}: a per-image file of run {run!r} that no validation in {source} "
                                   f"names (a copy, or left by a validation killed before its records: resume "
                                   f"the run or remove the file), so its images would count as another step")
        if run in runs and len(paths) > 1:
            raise PerImageMismatch(f"run {run!r}: two per-image files of one validation, {paths[0]} and {paths[1]}; "
                                   f"keep the one that belongs with {source}")
    for key, (run, step) in wanted.items():
        path = found.get(key, [image_file(root, run, step)])[0]
        _check_file(path, run, step, current[run], expected[(expected["run_id"] == run) & (expected["step"] == step)],
                    source)


def _superseded(path: Path, config_hash: str) -> bool:
    """Whether a per-image file belongs to an earlier configuration of its run (the reader keeps only the
    rows of a run's current configuration, as for records: e.g. committed results of an older recipe)."""
    try:
        hashes = set(pq.read_table(path, columns=["config_hash"]).column("config_hash").to_pylist())
    except Exception:  # unreadable or foreign: not a superseded file of ours
        return False
    return bool(hashes) and config_hash not in hashes


def _check_file(path: Path, run: str, step: int, config_hash: str, means: pd.DataFrame, source: str | Path) -> None:
    where = f"run {run!r}, step {step}: {path}"
    if not path.is_file():
        raise PerImageMismatch(f"{where}: missing; {source} records a validation whose per-image results are gone "
                               f"(deleted, or the records were copied without them), so its verdicts would "
                               f"silently lose this run")
    try:
        df = pq.read_table(path).to_pandas()
    except Exception as err:  # pyarrow raises its own types for torn or foreign files
        raise PerImageMismatch(f"{where}: not a readable per-image results file: {err}") from None
    missing = sorted({"run_id", "step", "config_hash", "value", *IMAGE_KEY} - set(df.columns))
    if missing:
        raise PerImageMismatch(f"{where}: lacks the column(s) {missing}")
    if df.empty:
        raise PerImageMismatch(f"{where}: holds no per-image values")
    for column, want in (("run_id", run), ("step", step), ("config_hash", config_hash)):
        found = sorted({str(v) for v in df[column]})
        if found != [str(want)]:
            raise PerImageMismatch(f"{where}: labelled {column} {found}, but the records' run has {want!r} "
                                   f"(a file of another run or configuration)")
    twice = df[df.duplicated(list(IMAGE_KEY), keep=False)]
    if len(twice):
        first = twice.iloc[0]
        times = int((twice["image"] == first["image"]).sum())
        raise PerImageMismatch(f"{where}: image {first['image']!r} appears {times} times for "
                               f"{first['dataset']}/{first['protocol']}/{first['metric']}")
    for row in means.itertuples(index=False):
        values = df.loc[(df["dataset"] == row.dataset) & (df["split"] == row.split) & (df["protocol"] == row.protocol)
                        & (df["metric"] == row.metric), "value"].astype("float64")
        label = f"{row.dataset}/{row.protocol}/{row.metric}"
        if values.empty:
            raise PerImageMismatch(f"{where}: no per-image values of {label}, which the records hold")
        mean = float(values.mean())
        if not math.isclose(mean, float(row.value), rel_tol=1e-9, abs_tol=1e-9):
            raise PerImageMismatch(f"{where}: the {len(values)} images of {label} average {mean:.6g}, the records "
                                   f"state {float(row.value):.6g} (images missing, added or changed)")
