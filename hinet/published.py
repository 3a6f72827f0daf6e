"""The published numbers of HINet and the methods it compares with, as tidy CSV in ``results/published/``.

Each ``*.csv`` there has exactly the columns :data:`PUBLISHED_COLUMNS` (``table, dataset, method, metric,
value, source``; one number per row, ``value`` a float: PSNR in dB, SSIM in [0, 1], GMACs, ...). The files
are transcribed by hand from the paper (Chen et al., CVPR Workshops 2021), the official README
(megvii-model/HINet) and the follow-up TLC README (megvii-research/tlsc); ``results/published/README.md``
lists the sources. The report (:mod:`hinet.report`) and the benchmark commands (:mod:`hinet.benchmark`)
read them with :func:`load_published`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

PUBLISHED_DIR = Path(__file__).resolve().parents[1] / "results" / "published"
PUBLISHED_COLUMNS = ["table", "dataset", "method", "metric", "value", "source"]


def load_published(dataset: str | None = None, published_dir: str | Path = PUBLISHED_DIR) -> pd.DataFrame:
    """All published numbers (``results/published/*.csv``), optionally for one dataset.

    Columns: table, dataset, method, metric, value (float), source. Raises ValueError on a file whose
    header is not exactly :data:`PUBLISHED_COLUMNS`, a non-numeric value, an empty cell, or an
    unknown ``dataset``; FileNotFoundError when ``published_dir`` holds no ``*.csv``.
    """
    files = sorted(Path(published_dir).glob("*.csv"))
    if not files:
        raise FileNotFoundError(f"load_published: no *.csv files in {published_dir}")
    frames = []
    for f in files:
        df = pd.read_csv(f, dtype=str, keep_default_na=False)
        if list(df.columns) != PUBLISHED_COLUMNS:
            raise ValueError(f"{f}: columns {list(df.columns)}, expected {PUBLISHED_COLUMNS}")
        try:
            df["value"] = pd.to_numeric(df["value"], errors="raise").astype("float64")
        except ValueError as err:
            raise ValueError(f"{f}: non-numeric value: {err}") from err
        empty = df[(df.drop(columns="value") == "").any(axis=1)]
        if len(empty):
            raise ValueError(f"{f}: empty cells in rows {[i + 2 for i in empty.index]} (line numbers)")
        frames.append(df)
    out = pd.concat(frames, ignore_index=True)
    if dataset is not None:
        if dataset not in set(out["dataset"]):
            raise ValueError(f"load_published: unknown dataset {dataset!r}; known: {sorted(set(out['dataset']))}")
        out = out[out["dataset"] == dataset].reset_index(drop=True)
    return out


def paper_points(published: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Published PSNR on ``dataset`` joined with conv-only GMACs per 256x256 (complexity.csv) by method.

    Columns: method, psnr (dB), gmacs. 'HINet (paper)' / 'HINet (README)' take the MACs of 'HINet' (the
    bracket only names the source).
    """
    macs = published[(published["table"] == "A.5 conv-only count") & (published["metric"] == "gmacs")]
    psnr = published[(published["dataset"] == dataset) & (published["metric"] == "psnr")].copy()
    psnr["base"] = psnr["method"].str.split(" (", regex=False).str[0]
    pts = psnr.merge(macs[["method", "value"]].rename(columns={"method": "base", "value": "gmacs"}), on="base")
    return pts.rename(columns={"value": "psnr"})[["method", "psnr", "gmacs"]]
