"""``python -m benchmarks.claims``: the paper's comparisons with its peers, published beside measured.

One row per claim in ``results/published`` (HINet's abstract and README against MPRNet; NAFNet's MACs against
HINet's), with columns ``claim, method, reference_method, task, quantity, published, measured`` plus the interval,
how it was measured, the device and the git commit:

* ``macs_fraction``: MACs of the method / MACs of the reference, both counted by ptflops (pytorch backend, the
  counter NAFNet's tables use) on one ``1x3xSxS`` input (S = ``--size``, 256 as the papers count);
* ``speedup``: the reference's forward time / the method's, the two timed side by side in one run, interleaved
  round by round after a warm-up round, eval mode, fp32, ``torch.inference_mode``; on CUDA with a
  synchronisation and CUDA events around every call. The ratio of medians over ``--repeats`` rounds with its 95%
  bootstrap interval (rounds resampled in pairs);
* ``params`` and ``gmacs``: each network's parameters in millions (``sum(p.numel())``, as MPRNet's authors count)
  and MACs in G (published where a paper states them; NAFNet's 65 G beside HINet's 170.7 G);
* ``psnr_gain_db``: needs the datasets and the official checkpoints, so it is measured from ``checkpoint_eval``
  records when both methods have them (``python -m benchmarks.<dataset> ... --name <method>``; the row says the
  exact commands), else left empty.

Writes ``paper_claims.md`` and ``paper_claims.csv`` under ``--out`` and the figure of PSNR against MACs
(published and measured) under ``--figures``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from hinet.arch import count_parameters
from hinet.atomic import atomic_write_text, check_output, replacing
from hinet.complexity import ptflops_macs
from hinet.errors import ArgumentParser, UserError, run_command
from hinet.evaluate import DEFAULT_PROTOCOLS
from hinet.hardware import describe
from hinet.models import NETWORKS, build_network
from hinet.published import PUBLISHED_DIR, load_published
from hinet.records import git_info, read_records, utc_now
from hinet.report.figures import claims_figure
from hinet.tasks import CHECKPOINT_EVAL

from .speed.timing import ratio_interval, time_interleaved

COLUMNS = ["claim", "method", "reference_method", "task", "quantity", "published", "measured", "measured_low",
           "measured_high", "how", "device", "git_commit", "measured_at"]
QUANTITIES = {"macs_fraction_of_mprnet": "macs_fraction", "speedup_vs_mprnet": "speedup",
              "psnr_gain_vs_mprnet_db": "psnr_gain_db"}


@dataclass(frozen=True)
class Pair:
    """A published comparison: ``method`` (network ``network``) against ``reference`` (``reference_network``) on
    ``task``, scored on ``dataset`` by ``python -m benchmarks.<bench>``."""

    method: str
    network: str
    reference: str
    reference_network: str
    task: str
    dataset: str
    bench: str


#: (published dataset, published method) of a claim -> the networks that stand for them (hinet.models.NETWORKS)
PAIRS = {
    ("SIDD", "HINet"): Pair("HINet", "sidd-1x", "MPRNet", "mprnet-sidd", "denoise", "SIDD", "sidd"),
    ("SIDD", "HINet 0.5x"): Pair("HINet 0.5x", "sidd-0.5x", "MPRNet", "mprnet-sidd", "denoise", "SIDD", "sidd"),
    ("REDS/GoPro", "HINet"): Pair("HINet", "gopro", "MPRNet", "mprnet-gopro", "deblur", "GoPro", "gopro"),
    ("Average", "HINet"): Pair("HINet", "rain13k", "MPRNet", "mprnet-rain13k", "derain", "Average", "rain13k"),
}
NAFNET = Pair("NAFNet", "nafnet-sidd-width64", "HINet", "sidd-1x", "denoise", "SIDD", "sidd")  # NAFNet Tables 6-7
#: network -> (table, method) of its published MACs per 256x256 input (results/published/complexity.csv)
PUBLISHED_GMACS = {"sidd-1x": ("NAFNet Table 6", "HINet"), "mprnet-sidd": ("NAFNet Table 6", "MPRNet"),
                   "mprnet-gopro": ("NAFNet Table 7", "MPRNet (GoPro)"),
                   "nafnet-sidd-width64": ("NAFNet Table 6", "NAFNet")}
#: network -> (table, method) of its published parameter count (millions)
PUBLISHED_PARAMS = {name: ("issues #26 #29", "HINet") for name in ("sidd-1x", "gopro", "rain13k")}


def published_claims(published: pd.DataFrame) -> list[tuple[str, Pair, str, float]]:
    """(claim, pair, quantity, published value) of every claim in the published tables."""
    rows = published[published["metric"].isin(list(QUANTITIES))]
    out = []
    for r in rows.itertuples():
        pair = PAIRS.get((r.dataset, r.method))
        if pair is None:
            raise ValueError(f"{PUBLISHED_DIR}/complexity.csv: claim of {r.method} on {r.dataset} has no network "
                             f"pair in benchmarks.claims.PAIRS")
        out.append((f"{r.table}: {r.method} vs MPRNet on {r.dataset}", pair, QUANTITIES[r.metric], float(r.value)))
    gmacs = published[(published["table"] == "NAFNet Table 6") & (published["metric"] == "gmacs")]
    by_method = dict(zip(gmacs["method"], gmacs["value"]))
    out.append(("NAFNet Tables 6-7: NAFNet vs HINet MACs", NAFNET, "macs_fraction",
                by_method["NAFNet"] / by_method["HINet"]))
    return out


def eval_commands(pair: Pair) -> str:
    """The two commands whose records measure a PSNR gain (the data and the official checkpoints are the user's)."""
    return (f"python -m benchmarks.{pair.bench} --data DIR --weights <{pair.method} checkpoint> --name '{pair.method}'"
            f"; python -m benchmarks.{pair.bench} --data DIR --model {pair.reference_network} --weights "
            f"<{pair.reference} checkpoint> --name {pair.reference}")


def measured_gain(records: pd.DataFrame | None, pair: Pair) -> float | None:
    """PSNR of ``pair.method`` minus ``pair.reference`` on real data (official protocol of the task), from the
    latest checkpoint evaluations; None unless both exist."""
    if records is None or records.empty:
        return None
    protocol = f"{pair.task}/{DEFAULT_PROTOCOLS[pair.task][0]}"  # the official scoring, as published
    sel = records[(records["family"] == CHECKPOINT_EVAL) & (records["recipe"] == "eval") & ~records["synthetic"]
                  & (records["dataset"] == pair.dataset) & (records["protocol"] == protocol)
                  & (records["metric"] == "psnr")]
    values = sel.sort_values("time").groupby("variant")["value"].last()
    if pair.method not in values or pair.reference not in values:
        return None
    return float(values[pair.method] - values[pair.reference])


def measure(claims: list[tuple[str, Pair, str, float]], published: pd.DataFrame, *, size: int, repeats: int,
            device: torch.device, records: pd.DataFrame | None, networks: Mapping[str, Any] = NETWORKS) -> pd.DataFrame:
    """The claims table (:data:`COLUMNS`): counts once per network, times once per pair. ``networks`` maps the
    pairs' network names to configs (the published ones by default)."""
    names = sorted({n for _, p, _, _ in claims for n in (p.network, p.reference_network)})
    counts = {}
    for name in names:
        model = build_network(networks[name]).eval()
        counts[name] = (count_parameters(model), ptflops_macs(model, (size, size)))
    speed: dict[tuple[str, str], tuple[float, float, float] | None] = {}
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0)).to(device)
    for _, pair, quantity, _ in claims:
        key = (pair.network, pair.reference_network)
        if quantity != "speedup" or key in speed:
            continue
        nets = {n: build_network(networks[n]).eval().to(device) for n in key}
        with torch.inference_mode():
            seconds = time_interleaved({n: (lambda m=m: m(x)) for n, m in nets.items()}, rounds=repeats,
                                       device=device)
        ref_s, method_s = seconds[pair.reference_network], seconds[pair.network]
        interval = ratio_interval(ref_s, method_s, paired=True)
        speed[key] = (float(pd.Series(ref_s).median() / pd.Series(method_s).median()), *(interval or (None, None)))
    cap = torch.cuda.get_device_name(device) if device.type == "cuda" else torch.backends.cpu.get_cpu_capability()
    where = (f"{device}: {describe(device)}; capability {cap}; {torch.get_num_threads()} threads; "
             f"input 1x3x{size}x{size}")
    commit, dirty = git_info()
    common = dict(device=where, git_commit=commit + ("+dirty" if dirty else ""), measured_at=utc_now())
    rows = []
    for claim, pair, quantity, value in claims:
        row = dict(claim=claim, method=pair.method, reference_method=pair.reference, task=pair.task,
                   quantity=quantity, published=value, measured=None, measured_low=None, measured_high=None,
                   **common)
        if quantity == "macs_fraction":
            row.update(measured=counts[pair.network][1] / counts[pair.reference_network][1],
                       how=f"ptflops (pytorch backend) at 1x3x{size}x{size}: {counts[pair.network][1] / 1e9:.1f} G / "
                           f"{counts[pair.reference_network][1] / 1e9:.1f} G")
        elif quantity == "speedup":
            ratio, low, high = speed[(pair.network, pair.reference_network)]
            row.update(measured=ratio, measured_low=low, measured_high=high,
                       how=f"median {pair.reference} time / median {pair.method} time, {repeats} interleaved rounds "
                           f"after a warm-up, fp32, eval, inference mode (95% paired bootstrap interval)")
        else:
            row.update(measured=measured_gain(records, pair),
                       how=f"needs data and checkpoints: {eval_commands(pair)} (checkpoint_eval records)")
        rows.append(row)
    gmacs = published[published["metric"] == "gmacs"].set_index(["table", "method"])["value"]
    params_m = published[published["metric"] == "params_m"].set_index(["table", "method"])["value"]
    for name in names:  # the counts of every network: parameters (millions) and GMACs
        pair = next(p for _, p, _, _ in claims if name in (p.network, p.reference_network))
        method = pair.method if name == pair.network else pair.reference
        base = dict(method=method, reference_method="-", task=pair.task, measured_low=None, measured_high=None,
                    **common)
        params = PUBLISHED_PARAMS.get(name)
        rows.append(dict(claim=f"parameters of {name}", quantity="params",
                         published=float(params_m[params]) if params in params_m.index else None,
                         measured=counts[name][0] / 1e6, how="sum(p.numel()) of the network, millions", **base))
        source = PUBLISHED_GMACS.get(name)
        rows.append(dict(claim=f"MACs of {name}", quantity="gmacs",
                         published=float(gmacs[source]) if source in gmacs.index else None,
                         measured=counts[name][1] / 1e9, how=f"ptflops (pytorch backend) at 1x3x{size}x{size}, "
                         f"G; published: {' '.join(source) if source else 'none'}", **base))
    return pd.DataFrame(rows, columns=COLUMNS)


def write(table: pd.DataFrame, out: Path) -> list[Path]:
    """``paper_claims.csv`` and ``paper_claims.md`` under ``out`` (atomic)."""
    csv, md = out / "paper_claims.csv", out / "paper_claims.md"
    with replacing(csv) as tmp:
        table.to_csv(tmp, index=False)
    shown = table.drop(columns=["how", "device", "git_commit", "measured_at"])
    text = ("# HINet's claims against its peers: published and measured\n\n"
            f"Measured on {table['device'].iloc[0]} at commit {table['git_commit'].iloc[0]} "
            f"({table['measured_at'].iloc[0]}), by `python -m benchmarks.claims`. MACs by ptflops; speed-ups as "
            "ratios of median forward times, interleaved in one run, with 95% intervals; PSNR gains only from "
            "real-data checkpoint evaluations (empty without them; the CSV's `how` column gives the commands).\n\n"
            + shown.to_markdown(index=False, floatfmt=".4g") + "\n")
    atomic_write_text(md, text)
    return [csv, md]


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog="python -m benchmarks.claims", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("results/tables"), help="tables folder (default results/tables)")
    p.add_argument("--figures", type=Path, default=Path("results/figures"),
                   help="figures folder (default results/figures)")
    p.add_argument("--repeats", type=int, default=5, help="timed rounds per network (default 5)")
    p.add_argument("--size", type=int, default=256, help="input side for MACs and timing (default 256, as published)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--records", type=Path, default=Path("results/records"),
                   help="records folder with checkpoint evaluations (for the PSNR gains)")
    p.add_argument("--debug", action="store_true", help="show tracebacks of user errors")
    a = p.parse_args(argv)

    def body() -> int:
        if a.repeats < 2:
            raise UserError(f"--repeats {a.repeats}: expected at least 2 rounds (an interval needs two)")
        if a.size < 8 or a.size % 8:
            raise UserError(f"--size {a.size}: expected a multiple of 8 (MPRNet's input), at least 8")
        device = torch.device(a.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise UserError(f"--device {a.device}: no CUDA device is visible")
        check_output(a.out, "--out", folder=True)
        check_output(a.figures, "--figures", folder=True)
        records = read_records(a.records) if a.records.is_dir() and any(a.records.glob("*.jsonl")) else None
        published = load_published()
        table = measure(published_claims(published), published, size=a.size, repeats=a.repeats, device=device,
                        records=records)
        paths = write(table, a.out)
        paths.append(claims_figure(table, published, a.figures / "paper_claims_psnr_vs_macs.png", a.size))
        print(table.drop(columns=["how", "device", "git_commit", "measured_at"]).to_markdown(index=False,
                                                                                           floatfmt=".4g"))
        print(f"device: {table['device'].iloc[0]}")
        print("wrote " + ", ".join(map(str, paths)))
        return 0

    return run_command("benchmarks.claims", body, argv)


if __name__ == "__main__":
    sys.exit(main())
