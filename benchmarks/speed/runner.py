"""Run the speed benchmarks, store them as records, print ratios against their targets (``nox -s bench``).

``python -m benchmarks.speed [--records PATH] [pytest args]`` runs pytest-benchmark on ``benchmarks/speed/``
(``bench_*.py``; the default test run never collects them), with ``--benchmark-json`` into a temporary file,
then appends one :class:`hinet.records.Record` per number to ``results/records/speed.jsonl``. Speed
records use the columns so (each column has one meaning):

* family ``speed``, recipe ``bench``, split ``bench``; run id ``<invocation>/<module>::<variant>`` (one run
  per benchmark case and per timed path);
* dataset = what one timed call processes, the shape ``NxCxHxW`` of its input (``extra_info["input"]``,
  e.g. ``1x3x256x256``; ``unspecified`` when a benchmark does not say); ``synthetic`` is True (every
  benchmark times synthetic inputs: timings do not depend on image content);
* protocol = how it was measured: the benchmark module (``bench_model``);
* device = where it ran and on what hardware: ``"<device>: <hardware>; capability <capability>"``, from
  ``extra_info`` ``device``, ``hardware`` (:func:`hinet.hardware.describe`) and the capability: the GPU
  model and compute capability on CUDA (``gpu``), else ``torch.backends.cpu.get_cpu_capability()``
  (``cpu_capability``), e.g. ``"cpu: CPU AMD EPYC, AVX2, no native bf16, 2 cores, 2 threads; capability
  AVX2"`` (a Record has no free-text field, so the description lives here; :func:`device_label`; the report
  reads it back with ``hinet.report.speed_labels.split_device``). A benchmark that states no hardware
  gets ``"<device>: hardware not stated"``;
* variant = the benchmark's name (``test_forward[w32-fast]``), or ``<name>:<path>`` for one timed path;
* metrics ``ms_min``/``ms_mean``/``ms_median``/``ms_stddev`` of the timed path; for each path named in
  ``extra_info["paths"]`` its numbers under variant ``<name>:<path>`` (e.g. ``...:eager``, with ``peak_mb``
  where measured); ``ratio`` and ``ratio_median`` (``speedup_*`` keys count as ``ratio``) with the 95%
  interval of ``ratio_median``, ``ratio_low``/``ratio_high``, where computed; ``target`` (the minimum ratio
  the benchmark states in ``extra_info["target"]``, where it has one); ``baseline_<measure>`` and
  ``fast_<measure>`` (e.g. ``baseline_ms_median``): the two compared paths' numbers again under the
  benchmark's own variant, as ``extra_info["compared"]`` names them, so that one run holds a whole
  comparison; and every entry of ``extra_info["metrics"]`` (see :mod:`benchmarks.speed.timing` for these conventions).

Then it prints every ratio next to its target and the benchmark's ``extra_info["label"]`` (:func:`stated`:
each benchmark states its own label and target; one without a label is an error). Ratios only mean something
when both sides ran in the same invocation, which every benchmark here does. Arguments other than
``--records`` go to pytest (e.g. ``-k train``, ``--bench-width64``); with no path among them,
``benchmarks/speed/`` is run. The exit code is pytest's; nothing is recorded when pytest fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from tabulate import tabulate

from hinet import records as rec
from hinet.atomic import ensure_dir
from hinet.errors import ArgumentParser, UserError, run_command

ROOT = Path(__file__).resolve().parents[2]
SUITE = Path(__file__).resolve().parent
DEFAULT_RECORDS = ROOT / "results" / "records" / "speed.jsonl"

def stated(bench: dict) -> tuple[str, float | None]:
    """(label, target) that a benchmark states in ``extra_info``: ``label`` says what it measures or compares
    (required), ``target`` the minimum of its higher-is-better ratio (where it has one). A benchmark without a
    label is an error: renaming a test must not relabel the speed table."""
    extra = bench.get("extra_info", {})
    label = extra.get("label")
    if not isinstance(label, str) or not label:
        raise ValueError(f"benchmark {bench.get('fullname', bench.get('name'))}: no extra_info['label']; every "
                         "speed benchmark states what it measures (benchmarks.speed.timing)")
    target = extra.get("target")
    return label, None if target is None else float(target)


def _module(bench: dict) -> str:
    return Path(bench["fullname"].split("::", 1)[0]).stem


def device_label(extra: dict) -> str:
    """The record's ``device``: ``"<device>: <hardware>; capability <capability>"`` (module docstring)."""
    device = str(extra.get("device", "cpu"))
    capability = extra.get("gpu") if device.startswith("cuda") else extra.get("cpu_capability")
    label = f"{device}: {extra.get('hardware') or 'hardware not stated'}"
    return f"{label}; capability {capability}" if capability else label


def _compared(bench: dict) -> dict[str, float]:
    """``baseline_<measure>``/``fast_<measure>`` from ``extra_info["compared"]`` and ``extra_info["paths"]``."""
    extra = bench.get("extra_info", {})
    compared = extra.get("compared")
    if not compared:
        return {}
    measure, paths, out = compared["measure"], extra.get("paths", {}), {}
    for role in ("baseline", "fast"):
        path = compared[role]
        if measure not in paths.get(path, {}):
            raise ValueError(f"benchmark {bench['name']}: compared {role} path {path!r} has no {measure!r} in "
                             f"extra_info['paths'] (paths: {sorted(paths)})")
        out[f"{role}_{measure}"] = float(paths[path][measure])
    return out


def _ratios(extra: dict) -> dict[str, float]:
    """``ratio``/``ratio_median`` (and its interval ``ratio_low``/``ratio_high``) of a benchmark;
    ``speedup_*`` keys (older bench_scoring) are its ``ratio``."""
    out = {k: float(extra[k]) for k in ("ratio", "ratio_median", "ratio_low", "ratio_high") if k in extra}
    speedups = [k for k in extra if k.startswith("speedup")]
    if len(speedups) > 1:
        raise ValueError(f"several speed-up keys {speedups}; expected at most one")
    if speedups and "ratio" not in out:
        out["ratio"] = float(extra[speedups[0]])
    return out


def records_from_json(data: dict, *, run_id: str, git: tuple[str, bool] | None = None) -> list[rec.Record]:
    """One Record per number of a pytest-benchmark JSON report (see the module docstring).

    ``run_id`` names the invocation; each record's run id is ``<run_id>/<module>::<variant>``: every
    benchmark case and every timed path of it is a run of its own, so that no two numbers of one
    invocation share (run_id, split, dataset, protocol, metric, step).
    """
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise ValueError("not a pytest-benchmark JSON report: expected a 'benchmarks' list")
    commit, dirty = git if git is not None else rec.git_info(ROOT)
    now = rec.utc_now()
    out: list[rec.Record] = []
    for bench in data["benchmarks"]:
        extra = bench.get("extra_info", {})
        device = device_label(extra)
        common = dict(family="speed", dataset=str(extra.get("input", "unspecified")), split="bench",
                      protocol=_module(bench), step=None, seed=None, git_commit=commit, git_dirty=dirty,
                      config_hash=rec.config_hash({"benchmark": bench["fullname"], "params": bench.get("params")}),
                      device=device, torch_version=str(extra.get("torch_version", "unknown")), time=now,
                      synthetic=True, recipe="bench")
        name, stats = bench["name"], bench["stats"]
        timed = {f"ms_{k}": 1e3 * float(stats[k]) for k in ("min", "mean", "median", "stddev")}
        timed.update(_ratios(extra))
        target = stated(bench)[1]
        if target is not None:
            timed["target"] = target
        timed.update(_compared(bench))
        timed.update({k: float(v) for k, v in extra.get("metrics", {}).items()})
        out += rec.make_records(common, timed, variant=name, run_id=f"{run_id}/{_module(bench)}::{name}",
                                label=stated(bench)[0])
        roles = {path: role for role, path in extra.get("compared", {}).items() if role in ("baseline", "fast")}
        for path, numbers in extra.get("paths", {}).items():
            values = {k: float(v) for k, v in numbers.items() if k != "rounds"}
            variant = f"{name}:{path}"
            out += rec.make_records(common, values, variant=variant, run_id=f"{run_id}/{_module(bench)}::{variant}",
                                    label=roles.get(path))
    return out


def summary_rows(data: dict) -> list[dict[str, Any]]:
    """Every benchmark with a ratio or a target: ratio (of minima), ratio of medians, target, verdict."""
    rows = []
    for bench in data["benchmarks"]:
        key = f"{_module(bench)}::{bench['name']}"
        (label, target), ratios = stated(bench), _ratios(bench.get("extra_info", {}))
        if not ratios and target is None:
            continue
        ratio = ratios.get("ratio")
        verdict = "-" if target is None or ratio is None else ("meets" if ratio >= target else "MISSES")
        paths = bench.get("extra_info", {}).get("paths", {})
        times = ", ".join(f"{p} {v['ms_min']:.1f} ms" for p, v in paths.items() if "ms_min" in v)
        interval = (f"{ratios['ratio_low']:.2f}-{ratios['ratio_high']:.2f}" if "ratio_low" in ratios else None)
        rows.append({"benchmark": key, "ratio": ratio, "ratio (medians)": ratios.get("ratio_median"),
                     "95% interval (medians)": interval, "target": None if target is None else f">= {target:g}",
                     "verdict": verdict, "compares": label, "timed paths (min)": times})
    return rows


def _has_path(args: list[str]) -> bool:
    return any(not a.startswith("-") and Path(a.split("::", 1)[0]).exists() for a in args)


def run_pytest(pytest_args: list[str], json_path: Path) -> int:
    """pytest-benchmark over ``benchmarks/speed/`` (unless a path is given) with the JSON report at ``json_path``."""
    cmd = [sys.executable, "-m", "pytest", "-o", "python_files=bench_*.py", "-p", "no:cacheprovider",
           f"--benchmark-json={json_path}", *pytest_args]
    if not _has_path(pytest_args):
        cmd.append(str(SUITE))
    # a clean pytest: not a worker of the caller's pytest-xdist session (pytest-benchmark turns itself off there)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_XDIST", "PYTEST_CURRENT_TEST"))}
    return subprocess.run(cmd, cwd=ROOT, check=False, env=env).returncode


def check_records_path(path: Path) -> None:
    """Raise a user error naming ``path`` when records cannot be appended there (a folder, or a file in the
    way of its folder); the folder is created."""
    if path.is_dir():
        raise UserError(f"--records {path}: is a folder; expected a JSONL file path")
    ensure_dir(path.parent)


def command(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.speed``: :func:`main` with user errors as one line and exit code 2."""
    return run_command("python -m benchmarks.speed", lambda: main(argv), [] if argv is None else argv)


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m benchmarks.speed", description=__doc__.split("\n\n")[0],
                                     allow_abbrev=False)
    parser.add_argument("--records", type=Path, default=DEFAULT_RECORDS, help=f"JSONL to append to ({DEFAULT_RECORDS})")
    args, pytest_args = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    check_records_path(args.records)  # before the (long) benchmarks, not after them
    fd, name = tempfile.mkstemp(prefix="hinet-bench-", suffix=".json")
    os.close(fd)
    json_path = Path(name)
    try:
        code = run_pytest(pytest_args, json_path)
        if code != 0:
            print(f"benchmarks.speed: pytest exited with {code}; no records written", file=sys.stderr)
            return code
        data = json.loads(json_path.read_text())
    finally:
        json_path.unlink(missing_ok=True)
    run_id = f"bench-{rec.utc_now().replace(':', '').replace('+0000', 'Z')}-{uuid.uuid4().hex[:6]}"
    out = records_from_json(data, run_id=run_id)
    if not out:
        print("benchmarks.speed: no benchmark ran; no records written", file=sys.stderr)
        return 5
    rec.append_records(args.records, out)
    machine = data.get("machine_info", {})
    print(f"\n{len(out)} records ({run_id}) appended to {args.records}")
    print(f"machine: {machine.get('cpu', {}).get('brand_raw', '?')}, {os.cpu_count()} logical cores, "
          f"python {machine.get('python_version', '?')}")
    rows = summary_rows(data)
    if rows:
        print(tabulate(rows, headers="keys", floatfmt=".2f", missingval="-"))
    return 0
