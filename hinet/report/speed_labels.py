"""How the speed table reads speed records: the benchmark's own words, and the ``device`` column read back.

Each benchmark states what it compares (``extra_info["label"]``); the runner (``benchmarks/speed/runner.py``)
stores it as the ``label`` of the benchmark's record, and labels the records of the two compared paths
``baseline`` and ``fast`` (their variant is ``<test id>:<path>``). Renaming a test therefore never relabels the
table. Records written before labels were stored show their test id (``<module>::<test id>``).

The ``device`` column is written by ``benchmarks/speed/runner.py`` (``device_label``) as
``"<device>: <hinet.hardware.describe(device)>; capability <capability>"``, the capability being
``torch.backends.cpu.get_cpu_capability()`` on CPU and the GPU model on CUDA; :func:`split_device` reads it
back. Older records hold the bare device (``cpu``): their capability is ``"not stated"``.
"""

from __future__ import annotations

import pandas as pd

#: Unit of each compared measure (``baseline_<measure>``/``fast_<measure>`` metrics of a speed record).
MEASURES = {"ms_median": "ms, median of rounds", "peak_mb": "MB, peak resident set"}


def comparison_labels(block: pd.DataFrame, paths: pd.DataFrame) -> tuple[str, str, str]:
    """(what, baseline path, fast path) of one benchmark's records ``block``, from the label it stated and the
    ``baseline``/``fast`` labels of its path records ``paths`` (variant ``<test id>:<path>``)."""
    first = block.iloc[0]
    stated = block["label"].dropna() if "label" in block else pd.Series(dtype=object)
    what = str(stated.iloc[0]) if len(stated) else f"{first['protocol']}::{first['variant']}"
    roles = {}
    if "label" in paths:
        for _, row in paths.dropna(subset=["label"]).iterrows():
            roles[row["label"]] = str(row["variant"]).split(":", 1)[1]
    return what, roles.get("baseline", "baseline"), roles.get("fast", "fast")


def split_device(label: str) -> tuple[str, str]:
    """(device with its hardware, capability) of a speed record's ``device``; capability ``"not stated"``
    when the label has none."""
    head, sep, capability = label.rpartition("; capability ")
    return (head, capability) if sep else (label, "not stated")
