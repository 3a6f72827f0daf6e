"""Per-image results: one value per test image at every validation, stored columnar beside the records.

One Parquet file per (run, step) under :func:`image_store` (``per_image/`` beside a records JSONL file), written
whole and atomically by :func:`write_image_metrics` and read by :func:`read_image_metrics`, which keeps the
latest row of each identity plus image as :func:`hinet.records.latest` does for the records.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .atomic import replacing
from .records import IDENTITY, collect_files, latest, utc_now

IMAGE_COLUMNS: tuple[str, ...] = ("run_id", "family", "variant", "seed", "dataset", "split", "protocol", "metric",
                                  "step", "image", "scene", "value", "config_hash", "git_commit", "synthetic",
                                  "recipe", "time")
IMAGE_DIR = "per_image"


def image_store(records_path: str | Path) -> Path:
    """Folder of the per-image results that belong with the records file ``records_path``:
    ``<records_path's folder>/per_image``."""
    return Path(records_path).parent / IMAGE_DIR


def image_file(root: str | Path, run_id: str, step: int | None) -> Path:
    """``<root>/<run_id>/step-<step, 8 digits>.parquet`` (``eval.parquet`` for a checkpoint evaluation)."""
    name = "eval.parquet" if step is None else f"step-{int(step):08d}.parquet"
    return Path(root) / run_id / name


def write_image_metrics(root: str | Path, common: Mapping[str, Any], step: int | None,
                        rows: Iterable[tuple]) -> Path:
    """Write one validation's (or evaluation's) per-image metrics of one run as a Parquet file.

    ``common`` holds run_id, family, variant, seed, config_hash, git_commit, synthetic, recipe;
    ``rows`` are ``(dataset, split, protocol, metric, image, scene, value)``, the scene being the group of
    images sharing content that the image belongs to (``hinet.evaluate.SetResult.scenes``); a row
    ``(dataset, split, protocol, metric, image, value)`` without one is its own scene (scene = image). The
    file is one (run, step) and is replaced whole and atomically, so a repeated validation of the same step
    supersedes the earlier one.
    Columnar and dictionary-encoded, so a file of a whole test set stays small.
    """
    rows = [(*r[:5], r[4], r[5]) if len(r) == 6 else tuple(r) for r in rows]  # no scene: the image's own
    frame = pd.DataFrame(rows, columns=["dataset", "split", "protocol", "metric", "image", "scene", "value"])
    if frame.empty:
        raise ValueError(f"write_image_metrics: no per-image values for run {common.get('run_id')!r}")
    values = frame["value"].astype("float64")
    if not values.map(math.isfinite).all():
        bad = frame[~values.map(math.isfinite)].iloc[0]
        raise ValueError(f"write_image_metrics: non-finite {bad['metric']} for image {bad['image']!r} "
                         f"({bad['dataset']}, {bad['protocol']}) of run {common.get('run_id')!r}")
    for key in ("run_id", "family", "variant", "seed", "config_hash", "git_commit", "synthetic", "recipe"):
        frame[key] = common[key]
    frame["step"] = step
    frame["time"] = utc_now()
    frame = frame[list(IMAGE_COLUMNS)].astype({"seed": "Int64", "step": "Int64", "synthetic": "bool"})
    table = pa.Table.from_pandas(frame, preserve_index=False)
    path = image_file(root, str(common["run_id"]), step)
    with replacing(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return path


def read_image_metrics(paths_or_dirs: str | Path | Iterable[str | Path]) -> pd.DataFrame:
    """Every per-image result under the given folders (``*.parquet``, recursively) as one DataFrame with
    columns :data:`IMAGE_COLUMNS`; superseded rows dropped as in :func:`latest` (identity + image). Files
    written before the ``scene`` column existed read with scene = image (every image its own scene)."""
    files = collect_files(paths_or_dirs, "*.parquet", "read_image_metrics")
    frames = []
    for f in files:
        try:
            frames.append(pq.read_table(f).to_pandas())
        except Exception as err:  # pyarrow raises its own types for torn or foreign files
            raise ValueError(f"{f}: not a readable per-image results file: {err}") from None
        frame = frames[-1]
        if "scene" not in frame.columns and "image" in frame.columns:  # written before scenes were recorded
            frame["scene"] = frame["image"]
        missing = set(IMAGE_COLUMNS) - set(frame.columns)
        if missing:
            raise ValueError(f"{f}: not a per-image results file: lacks the column(s) {sorted(missing)}")
    df = pd.concat(frames, ignore_index=True)
    df = df[list(IMAGE_COLUMNS)]
    df["time"] = pd.to_datetime(df["time"], utc=True, format="ISO8601")
    return latest(df, (*IDENTITY, "image")).reset_index(drop=True)
