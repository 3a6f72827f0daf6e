"""Tests for hinet.report: tables recomputed independently, comparability firewall, files, published CSVs."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from skimage import io as skio

from hinet.records import Record, append_records, read_records
from hinet.report import (
    PUBLISHED_COLUMNS,
    build_report,
    comparison_grid,
    final_quality,
    kind_label,
    load_published,
    main,
    published_comparison,
)

VARIANTS = {"full": 30.0, "no_hin": 29.6, "no_csff": 29.8}  # synthetic proxy-scale PSNR levels (made up)
SEEDS = (0, 1, 2)
BASE = dict(family="components", dataset="SIDD", protocol="hinet", git_commit="abc1234", git_dirty=False,
            config_hash="0123456789ab", device="cpu", torch_version="2.4.0", time="2024-05-01T12:00:00+00:00")


def _rec(run_id, variant, split, metric, value, step, seed, synthetic=True, recipe="proxy", **kw) -> Record:
    return Record(**{**BASE, **kw, "run_id": run_id, "variant": variant, "split": split, "metric": metric,
                     "value": value, "step": step, "seed": seed, "synthetic": synthetic, "recipe": recipe})


INFERENCE = "inference 1x256², width 32, fp32 fast path"
TILING = "peak memory, 1280x720 frame, width 64"
CPU_HARDWARE = "cpu: CPU Test EPYC, AVX2, no native bf16, 2 cores, 2 threads"


def speed_records() -> list[Record]:
    """Speed records as benchmarks.speed writes them: two invocations of an inference and a tiling comparison
    (benchmark-level numbers and per-path ones), a path timed alone, and one benchmark of an older convention."""
    out = []
    for i, (ratio, low, high) in enumerate(((1.25, 1.2, 1.32), (1.4, 1.35, 1.45))):
        common = dict(family="speed", recipe="bench", device=f"{CPU_HARDWARE}; capability AVX2",
                      time=f"2026-12-01T{9 + i:02d}:00:00+00:00")
        inv = f"bench-{i}"
        bench = {("bench_model", "test_forward[w32-fast]", "1x3x256x256"): {
                     "ms_median": 240.0, "ratio": ratio + 0.02, "ratio_median": ratio, "ratio_low": low,
                     "ratio_high": high, "target": 1.3, "baseline_ms_median": 300.0, "fast_ms_median": 240.0},
                 ("bench_model", "test_forward[w32-fast]:eager", "1x3x256x256"): {"ms_median": 300.0},
                 ("bench_model", "test_forward[w32-fast]:fast", "1x3x256x256"): {"ms_median": 240.0},
                 ("bench_tiling", "test_frame_720p", "1x3x720x1280"): {
                     "ratio": 9.5, "ratio_median": 9.5, "target": 2.0, "baseline_peak_mb": 3990.0,
                     "fast_peak_mb": 420.0},
                 ("bench_scoring", "test_per_image_numpy", "64x3x256x256"): {"ms_median": 900.0}}
        labels = {"test_forward[w32-fast]": INFERENCE, "test_forward[w32-fast]:eager": "baseline",
                  "test_forward[w32-fast]:fast": "fast", "test_frame_720p": TILING}  # as the runner stores them
        for (protocol, variant, dataset), metrics in bench.items():
            for metric, value in metrics.items():
                out.append(_rec(f"{inv}/{protocol}::{variant}", variant, "bench", metric, value, None, None,
                                **{**common, "protocol": protocol, "dataset": dataset,
                                   "label": labels.get(variant)}))
    out.append(_rec("bench-old/bench_old::test_old", "test_old", "bench", "ratio", 2.0, None, None,
                    family="speed", recipe="bench", protocol="bench_old", dataset="unspecified", device="cpu"))
    return out


def _write_fixture(root):
    """Synthetic 3 variants x 3 seeds ablation + real/synthetic evals + speed; returns final val PSNR table."""
    rng = np.random.default_rng(0)
    final = {}
    for v, level in VARIANTS.items():
        for s in SEEDS:
            run = f"SIDD-{v}-s{s}"
            ref = dict(reference="full")  # the family's declared reference travels in every record of its runs
            recs = [_rec(run, v, "model", "params", 1000.0 + 10 * len(v), 0, s, protocol="model", **ref),
                    _rec(run, v, "model", "macs", 2e9 + 1e8 * len(v), 0, s, protocol="model", **ref)]
            recs += [_rec(run, v, "train", "lr", 1e-3 * (1 - step / 60), step, s, **ref) for step in (10, 30, 50)]
            recs += [_rec(run, v, "train", "loss", 1.0 / step + rng.normal(0, 0.01), step, s, **ref)
                     for step in (10, 20, 30, 40, 50)]
            for step in (25, 50):
                psnr = level + 0.02 * step + rng.normal(0, 0.1)
                recs += [_rec(run, v, "val", "psnr", psnr, step, s, **ref),
                         _rec(run, v, "val", "ssim", 0.8 + rng.normal(0, 0.01), step, s, **ref)]
                final[(v, s)] = psnr
            append_records(root / "records" / run / "records.jsonl", recs)
    evals = [  # same dataset/method names as the published SIDD table, so a leak would join
        _rec("eval-real", "HINet", "test", "psnr", 39.90, None, None, synthetic=False, recipe="eval",
             family="checkpoint_eval"),
        _rec("eval-real", "HINet", "test", "ssim", 0.957, None, None, synthetic=False, recipe="eval",
             family="checkpoint_eval"),
        _rec("eval-syn", "HINet 0.5x", "test", "psnr", 12.34, None, None, synthetic=True, recipe="eval",
             family="checkpoint_eval"),
        _rec("eval-proxy", "MPRNet", "test", "psnr", 21.5, None, 0, synthetic=False, recipe="proxy",
             family="checkpoint_eval"),
    ]
    append_records(root / "records" / "evals.jsonl", evals)
    append_records(root / "records" / "speed.jsonl", speed_records())
    for folder in ("input", "target", "full", "no_hin"):
        (root / "images" / "run1" / folder).mkdir(parents=True)
        for name in ("a.png", "b.png"):
            skio.imsave(root / "images" / "run1" / folder / name,
                        rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), check_contrast=False)
    return final


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    final = _write_fixture(root)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        paths = build_report(root / "records", root / "out", images_dir=root / "images")
    # every fixture record feeds some output (no "unused records" warning); the fixture has no per-image
    # results, which the report says once instead of dropping the verdict tables silently
    assert [str(w.message) for w in caught if "no per-image results" not in str(w.message)] == []
    assert len(caught) == 1
    return root, final, paths


def test_files_exist(report):
    root, _, paths = report
    out = root / "out"
    stem = "components_SIDD_synthetic_proxy"
    expected = [out / "tables" / f"{t}.{e}" for t in (stem, "published_comparison", "eval_not_comparable", "speed",
                                                       "provenance") for e in ("md", "csv", "tex")]
    expected += [out / "figures" / f"{f}.png" for f in
                 (f"ablation_{stem}", f"psnr_vs_macs_{stem}", "curves_components_synthetic_proxy", "speed",
                  "comparison_run1")]
    assert sorted(expected) == paths
    assert all(p.stat().st_size > 0 for p in paths)


def test_ablation_table_matches_independent_computation(report):
    root, final, _ = report
    table = pd.read_csv(root / "out" / "tables" / "components_SIDD_synthetic_proxy.csv")
    assert table["variant"].tolist() == ["full", "no_csff", "no_hin"]  # reference first
    assert (table["reference"] == "full").all() and table["kind"].str.contains("synthetic").all()
    row = table.set_index("variant").loc["no_hin"]
    x = np.array([final[("no_hin", s)] for s in SEEDS])
    half = stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
    assert row["n_seeds"] == 3
    assert row["psnr_mean"] == pytest.approx(x.mean(), abs=1e-9)
    assert row["psnr_ci95"] == pytest.approx(half, rel=1e-9)
    assert row["params_m"] == pytest.approx((1000 + 10 * len("no_hin")) / 1e6)
    assert row["gmacs"] == pytest.approx((2e9 + 1e8 * len("no_hin")) / 1e9)
    full = table.set_index("variant").loc["full"]
    assert "reference" in full["note"]
    # one statistic per comparison: no second test of its own; without per-image results no verdict columns filled
    assert not {"delta_psnr", "p_value", "n_pairs"} & set(table.columns)
    assert table[["test_set_difference", "population_p_holm"]].isna().all().all()


def test_markdown_says_synthetic_and_not_comparable(report):
    root, _, _ = report
    md = (root / "out" / "tables" / "components_SIDD_synthetic_proxy.md").read_text()
    assert "synthetic, proxy scale (not comparable to the paper)" in md.splitlines()[0]
    tex = (root / "out" / "tables" / "components_SIDD_synthetic_proxy.tex").read_text()
    assert "synthetic" in tex and "no\\_hin" in tex


def test_synthetic_and_proxy_never_reach_published_comparison(report):
    root, _, _ = report
    comp = pd.read_csv(root / "out" / "tables" / "published_comparison.csv")
    assert comp[["dataset", "method", "metric"]].values.tolist() == [["SIDD", "HINet", "psnr"],
                                                                     ["SIDD", "HINet", "ssim"]]
    psnr = comp.set_index("metric").loc["psnr"]
    assert psnr["published"] == 39.99 and psnr["difference"] == pytest.approx(39.90 - 39.99)
    assert not comp["ours"].isin([12.34, 21.5]).any()
    other = pd.read_csv(root / "out" / "tables" / "eval_not_comparable.csv")
    assert sorted(other["mean"]) == [12.34, 21.5] and other["kind"].str.contains("not comparable").all()
    # the function itself refuses synthetic or proxy rows, whatever the caller passes
    recs = read_records(root / "records" / "evals.jsonl")
    with pytest.raises(ValueError, match="eval-proxy|eval-syn"):
        published_comparison(final_quality(recs), load_published())


def test_speed_table_has_one_readable_row_per_comparison(report):
    root, _, _ = report
    speed = pd.read_csv(root / "out" / "tables" / "speed.csv", keep_default_na=False, na_values=[""])
    # 2 invocations x (inference, tiling) + 1 benchmark of an older convention; per-path and ratio-less
    # benchmarks (a path timed alone) have no row
    assert speed["what"].tolist() == [INFERENCE, INFERENCE, TILING, TILING, "bench_old::test_old"]
    first, second, tiled, _, old = (speed.iloc[i] for i in range(5))
    assert (first["baseline"], first["fast"], first["unit"]) == (300.0, 240.0, "ms, median of rounds")
    assert (first["baseline path"], first["fast path"]) == ("eager", "fast")  # the paths the benchmark compared
    assert (tiled["baseline path"], tiled["fast path"]) == ("baseline", "fast")  # no path records: the roles
    assert (first["ratio"], first["ratio_low"], first["ratio_high"], first["target"]) == (1.25, 1.2, 1.32, 1.3)
    assert first["meets target"] == "unclear" and second["meets target"] == "yes"  # 1.2..1.32 straddles 1.3
    assert (first["device"], first["capability"]) == (CPU_HARDWARE, "AVX2")
    assert first["measured"] == "2026-12-01 09:00 UTC" and second["measured"] == "2026-12-01 10:00 UTC"
    assert (tiled["unit"], tiled["ratio"], tiled["meets target"]) == ("MB, peak resident set", 9.5, "yes")
    assert np.isnan(tiled["ratio_low"])  # one round: no interval
    assert (old["device"], old["capability"], old["meets target"]) == ("cpu", "not stated", "-")
    md = (root / "out" / "tables" / "speed.md").read_text()
    assert INFERENCE in md and "test_forward[" not in md  # human labels, not test ids


def test_speed_device_column_round_trips():
    from benchmarks.speed.runner import device_label
    from hinet.report.speed_labels import split_device

    extra = {"device": "cpu", "hardware": "CPU X, AVX2, no native bf16, 2 cores, 1 thread", "cpu_capability": "AVX2"}
    assert split_device(device_label(extra)) == ("cpu: CPU X, AVX2, no native bf16, 2 cores, 1 thread", "AVX2")
    cuda = {"device": "cuda:0", "hardware": "CUDA H", "cpu_capability": "AVX2", "gpu": "H (sm_90)"}
    assert split_device(device_label(cuda)) == ("cuda:0: CUDA H", "H (sm_90)")
    assert split_device(device_label({})) == ("cpu: hardware not stated", "not stated")


def test_kind_label():
    assert kind_label(True, "proxy") == "synthetic, proxy scale (not comparable to the paper)"
    assert kind_label(False, "proxy").startswith("real data, proxy scale (not comparable")
    assert kind_label(False, "eval") == "real data, evaluation"


def test_set_means_alone_give_no_comparison_and_unused_records_are_reported(tmp_path):
    recs = [_rec(f"r-{v}-{s}", v, "val", "psnr", 30.0 + s + (v == "b"), 5, s)
            for v, seeds in (("a", (0, 1)), ("b", (1, 2))) for s in seeds]
    recs.append(_rec("r-a-0", "a", "test", "lr", 1e-3, 5, 0))  # feeds no output: must be reported
    append_records(tmp_path / "r.jsonl", recs)
    with pytest.warns(UserWarning, match=r"1 records feed no table.*'lr'"):
        main(["--records", str(tmp_path / "r.jsonl"), "--out", str(tmp_path / "out")])
    table = pd.read_csv(tmp_path / "out" / "tables" / "components_SIDD_synthetic_proxy.csv").set_index("variant")
    assert list(table["n_seeds"]) == [2, 2] and table["reference"].isna().all()
    assert table[[f"{e}_{c}" for e in ("test_set", "population") for c in ("difference", "p_holm")]].isna().all().all()


def test_comparison_grid_checks_files(tmp_path):
    for folder in ("input", "target", "v1"):
        (tmp_path / folder).mkdir()
        skio.imsave(tmp_path / folder / "x.png", np.zeros((4, 4), np.uint8), check_contrast=False)
    assert comparison_grid(tmp_path, tmp_path / "g.png").stat().st_size > 0
    (tmp_path / "v1" / "x.png").unlink()
    with pytest.raises(ValueError, match="v1"):
        comparison_grid(tmp_path, tmp_path / "g.png")


def test_published_csvs():
    pub = load_published()
    assert list(pub.columns) == PUBLISHED_COLUMNS and (pub["source"].str.len() > 10).all()
    q = pub[pub["metric"].isin(["psnr", "ssim"])]
    assert not q.duplicated(["dataset", "method", "metric"]).any()
    key = pub.set_index(["dataset", "method", "metric"])["value"]
    assert key[("SIDD", "HINet", "psnr")] == 39.99 and key[("GoPro", "HINet (paper)", "psnr")] == 32.71
    assert key[("GoPro", "HINet (README)", "psnr")] == 32.77 and key[("HIDE", "MPRNet", "psnr")] == 30.96
    assert key[("Average", "HINet", "ssim")] == 0.926
    rain = pub[(pub["table"] == "Table 3") & (pub["metric"] == "psnr") & (pub["dataset"] != "Average")]
    avg = rain.groupby("method")["value"].mean()  # the printed Average is the mean over the five sets
    printed = pub[(pub["dataset"] == "Average") & (pub["metric"] == "psnr")].set_index("method")["value"]
    assert (avg - printed.loc[avg.index]).abs().max() < 0.011
    with pytest.raises(ValueError, match="unknown dataset"):
        load_published("Nope")


def test_load_published_rejects_bad_header(tmp_path):
    (tmp_path / "x.csv").write_text("table,dataset,method,metric,value\nT,D,M,psnr,1\n")
    with pytest.raises(ValueError, match="x.csv: columns"):
        load_published(published_dir=tmp_path)


def test_paper_points_share_axes_only_for_real_runs(tmp_path, monkeypatch):
    import hinet.report.figures as report_mod
    from hinet.published import paper_points

    monkeypatch.setattr(report_mod, "save", lambda fig, path: fig)  # keep the figure to inspect its axes
    rows = pd.DataFrame({"variant": ["full", "small"], "gmacs": [2.0, 1.0], "psnr_mean": [30.0, 29.0],
                         "psnr_ci95": [0.1, 0.2], "eval": ["val / hinet"] * 2})
    paper = paper_points(load_published(), "SIDD")
    assert sorted(paper["method"]) == ["HINet", "HINet 0.5x"] and sorted(paper["gmacs"]) == [39.5, 157.6]
    for same_axes in (True, False):
        fig = report_mod.macs_figure(rows, "t", tmp_path / "x.png", paper, same_axes=same_axes)
        labels = [[c.get_label() for c in ax.collections] for ax in fig.axes]
        has_pub = [any(lab.startswith("published") for lab in labs) for labs in labels]
        assert has_pub == ([True] if same_axes else [False, True])
        report_mod.plt.close(fig)


def test_every_written_file_is_named_in_outputs(report):
    from hinet.report import OUTPUTS, output_for

    root, _, paths = report
    found = {p: output_for(p, root / "out") for p in paths}
    assert None not in found.values(), [p for p, o in found.items() if o is None]
    assert output_for(root / "out" / "tables" / "speed.csv", root / "out").pattern == "tables/speed.{md,csv,tex}"
    assert output_for(root / "out" / "figures" / "optuna_s_history.png", root / "out").writer == "hinet.tune"
    assert output_for(root / "out" / "figures" / "unlisted.svg", root / "out") is None
    assert len({o.pattern for o in OUTPUTS}) == len(OUTPUTS)


def test_an_interrupted_figure_or_table_write_keeps_the_previous_file(tmp_path, monkeypatch):
    from hinet.report import figures, tables

    path = tmp_path / "f.png"
    path.write_bytes(b"previous")
    fig = figures.plt.figure()

    def torn(target, **kw):  # writes half a file, then dies
        open(target, "wb").write(b"\x89PNG half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fig, "savefig", torn)
    with pytest.raises(OSError, match=r"f\.png.*No space left"):
        figures.save(fig, path)
    assert path.read_bytes() == b"previous" and sorted(p.name for p in tmp_path.iterdir()) == ["f.png"]
    df = pd.DataFrame({"variant": ["a"], "psnr_mean": [30.0]})
    first = tables.write_table(df, tmp_path, "t", "T", "c")
    monkeypatch.setattr(pd.DataFrame, "to_latex", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("killed")))
    with pytest.raises(RuntimeError, match="killed"):
        tables.write_table(df.assign(psnr_mean=31.0), tmp_path, "t", "T", "c")
    assert "30.00" in first[2].read_text() and "31.0" in first[1].read_text()  # .tex untouched, .csv replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.png", "t.csv", "t.md", "t.tex"]


def test_model_size_records_under_protocol_model_or_legacy_256x256(tmp_path):
    from hinet.report import run_table

    recs = [_rec("r1", "a", "val", "psnr", 30.0, 5, 0), _rec("r2", "b", "val", "psnr", 31.0, 5, 0),
            _rec("r1", "a", "model", "macs", 2e9, 0, 0, protocol="model"),
            _rec("r2", "b", "model", "macs", 3e9, 0, 0, protocol="256x256"),
            _rec("r2", "b", "model", "params", 7.0, 0, 0, protocol="val")]  # not a size protocol
    append_records(tmp_path / "r.jsonl", recs)
    df = read_records(tmp_path / "r.jsonl")
    runs = run_table(final_quality(df), df).set_index("variant")
    assert runs.loc["a", "macs"] == 2e9 and runs.loc["b", "macs"] == 3e9 and runs["params"].isna().all()


def test_module_command_reports_a_missing_records_folder_in_one_line(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}  # this checkout's hinet
    proc = subprocess.run([sys.executable, "-m", "hinet.report", "--records", str(tmp_path / "nope")],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120, env=env)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [f"python -m hinet.report: error: read_records: {tmp_path / 'nope'} "
                                                f"does not exist"]


def test_optuna_studies_stay_out_of_the_ablation_and_evaluation_tables(tmp_path):
    """Trials are no ablation: hinet.tune writes their table and figures; the report draws no verdict from them."""
    recs = [_rec(f"optuna-demo-t{t}", f"demo-t{t}", "val", "psnr", 30.0 + t, 5, 0, family="optuna")
            for t in range(3)]
    append_records(tmp_path / "optuna.jsonl", recs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the trials feed hinet.tune's outputs: no "unused records" warning
        paths = build_report(tmp_path, tmp_path / "out")
    assert [p.name for p in paths if "optuna" in p.name or "eval" in p.name] == []
