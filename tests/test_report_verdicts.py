"""The report's verdicts from per-image records: a constructed family with a known loss, a known null and a
noisy variant; the verdict table, forest plot and differences-over-training figure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hinet.image_records import write_image_metrics
from hinet.records import Record, append_records
from hinet.report import build_report, output_for

# "baseline" sorts before the declared reference "full": the report must read the reference from the records
VARIANTS = {"full": 0.0, "no_csff": -1.0, "no_sam": 0.0, "no_hin": -0.3, "baseline": 0.0}
STEM = "components_SIDD_synthetic_proxy"
SEEDS, IMAGES, STEPS = (0, 1, 2, 3), 24, (10, 20)


def _family(root, rng):
    records = root / "records" / "components.jsonl"
    rows = []
    for variant, effect in VARIANTS.items():
        for seed in SEEDS:
            run_id = f"components-{variant}-s{seed}"
            common = dict(run_id=run_id, family="components", variant=variant, seed=seed, config_hash=f"h-{run_id}",
                          git_commit="abc", synthetic=True, recipe="proxy")
            seed_noise = rng.normal(0, 0.5 if variant == "no_hin" else 0.005)
            for step in STEPS:
                base = 30 + np.linspace(-1, 1, IMAGES)  # image difficulty, shared by every run (paired)
                value = base + (effect * step / STEPS[-1]) + seed_noise + rng.normal(0, 0.01, IMAGES)
                # the official SIDD protocol: +48 dB on the images whose output crossed 1.0 (an artefact)
                official = value + 48.0 * (rng.random(IMAGES) < 0.5)
                images = [("SIDD (synthetic)", "val", protocol, "psnr", f"img{i}", float(v))
                          for protocol, values in (("denoise/clamped", value), ("denoise/official", official))
                          for i, v in enumerate(values)]
                write_image_metrics(records.parent / "per_image", common, step, images)
                rows += [Record(**common, reference="full", dataset="SIDD (synthetic)", split="val", protocol=protocol,
                                metric="psnr", value=float(values.mean()), step=step, git_dirty=False, device="cpu",
                                torch_version="2", time="2026-01-01T00:00:00+00:00")
                         for protocol, values in (("denoise/clamped", value), ("denoise/official", official))]
    append_records(records, rows)
    return records


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("verdicts")
    records = _family(root, np.random.default_rng(0))
    written = build_report(records.parent, root / "out")
    return root / "out", written


@pytest.mark.parametrize("estimand", ["test_set", "population"])
def test_verdict_table_reaches_the_known_answers(report, estimand):
    out, written = report
    table = pd.read_csv(out / "tables" / f"verdicts_{STEM}_{estimand}.csv")
    row = table.set_index("variant")
    assert set(row.index) == {"no_csff", "no_sam", "no_hin", "baseline"} and (row["reference"] == "full").all()
    assert (row["estimand"] == estimand).all() and set(row["protocol"]) == {"denoise/clamped"}  # no official
    assert (row["step"] == 20).all()  # the last common validation step, named in the table
    assert row.loc["no_csff", "verdict"].startswith("costs 1.00 dB")
    assert row.loc["no_csff", "ci_low"] < -1.0 < row.loc["no_csff", "ci_high"]
    assert row.loc["no_sam", "verdict"].startswith("equivalent within ±0.1 dB")
    assert row.loc["no_hin", "verdict"].startswith("inconclusive")  # seed noise 0.5 dB with 4 seeds
    assert row.loc["no_hin", "var_seed"] > 100 * row.loc["no_sam", "var_seed"]
    assert row.loc["no_hin", "seeds_needed"] > 4
    words = {"test_set": "on this test set", "population": "on new scenes"}[estimand]
    assert all(words in v for v in row["verdict"])
    md = (out / "tables" / f"verdicts_{STEM}_{estimand}.md").read_text()
    assert "synthetic, proxy scale (not comparable to the paper)" in md and "minimum detectable" in md
    assert f"estimand {estimand}" in md and "peak heuristic" in md


def test_ablation_table_shows_the_verdicts_statistic_and_no_other(report):
    out, _ = report
    table = pd.read_csv(out / "tables" / f"{STEM}.csv").set_index(["protocol", "variant"])
    assert not {"delta_psnr", "p_value", "n_pairs"} & set(table.columns)
    for estimand in ("test_set", "population"):
        verdicts = pd.read_csv(out / "tables" / f"verdicts_{STEM}_{estimand}.csv").set_index("variant")
        for variant, v in verdicts.iterrows():
            row = table.loc[("denoise/clamped", variant)]
            for col in ("difference", "ci_low", "ci_high", "p_holm"):
                assert row[f"{estimand}_{col}"] == pytest.approx(v[col], rel=1e-12), (estimand, variant, col)
    official = table.loc["denoise/official"]
    assert official["population_p_holm"].isna().all() and official["note"].str.contains("peak heuristic").all()
    assert official["psnr_mean"].notna().all()  # its means stay, labelled


def test_forest_and_difference_figures_are_written_and_named(report):
    out, written = report
    for name in ("forest", "differences"):
        for estimand in ("test_set", "population"):
            path = out / "figures" / f"{name}_{STEM}_{estimand}.png"
            assert path in written and path.stat().st_size > 10_000
            assert output_for(path, out) is not None


def test_each_validation_set_gets_its_own_verdicts(tmp_path):
    """Runs validated on two sets: each set's ablation table and verdict tables hold that set's comparisons only."""
    records = tmp_path / "records" / "components.jsonl"
    rows, sets = [], {"SIDD (synthetic)": 0.0, "natural photographs (synthetic)": 5.0}
    for variant in ("full", "no_sam"):
        for seed in (0, 1, 2):
            run_id = f"components-{variant}-s{seed}"
            common = dict(run_id=run_id, family="components", variant=variant, seed=seed, config_hash=f"h-{run_id}",
                          git_commit="abc", synthetic=True, recipe="proxy")
            images = []
            for name, level in sets.items():
                values = 30 + level + np.linspace(-1, 1, 6) + 0.01 * seed
                images += [(name, "val", "denoise/clamped", "psnr", f"img{i}", f"{name}-{i // 2}", float(v))
                           for i, v in enumerate(values)]
                rows.append(Record(**common, reference="full", dataset=name, split="val", protocol="denoise/clamped",
                                   metric="psnr", value=float(values.mean()), step=10, git_dirty=False, device="cpu",
                                   torch_version="2", time="2026-01-01T00:00:00+00:00"))
            write_image_metrics(records.parent / "per_image", common, 10, images)
    append_records(records, rows)
    build_report(records.parent, tmp_path / "out")
    for name, stem in (("SIDD (synthetic)", "SIDD"),
                       ("natural photographs (synthetic)", "natural-photographs")):
        for estimand in ("test_set", "population"):
            out = tmp_path / "out" / "tables" / f"verdicts_components_{stem}_synthetic_proxy_{estimand}.csv"
            table = pd.read_csv(out)
            assert list(table["set"]) == [name] and list(table["n_scenes"]) == [3]
