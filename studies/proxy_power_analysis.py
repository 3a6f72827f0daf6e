"""Analysis of the proxy power pilots of :mod:`studies.proxy_power` (SYNTHETIC data, proxy scale).

Reads the pilots' per-image PSNR (``SIDD (synthetic)``, protocol ``denoise/official``) and computes, with
:mod:`hinet.stats` (crossed seed x image random effects, MDE at 80% power, two-sided alpha 0.05):

* the variance split of every paired difference ``variant - full`` (seed, image, residual), and how much of
  the image component lies between the three source photographs (one-way ANOVA of the image means by photo,
  method of moments, written here: the nested layout is not in hinet.stats);
* the MDE as measured and as projected for other numbers of seeds and images (same components);
* common initial weights: the seed SD of the pilot with per-module initialisation against the one with
  torch's creation-order initialisation (same seeds, data order and images);
* the verdicts at every validation step of the main pilot (is the ranking settled by the last step?);
* an idle 2-core cost model and, by a rule that looks only at MDE and cost (never at which variant wins),
  the seeds and images of the default grid within the 15-minute budget, and the budget that 0.1 dB needs.

Cost model (stated in the output): an idle run's seconds = start-up + iterations x step time + looks x
images x validation time per image. Step times on an idle machine come from the default grid recorded in
``results/records/components.jsonl`` (its training throughput, 2 runs at a time on 2 cores, eager path),
divided by the measured speed-up of the chosen fast path; start-up and validation are measured now (CPU
seconds on the shared machine) and divided by the contention factor (eager step CPU time now / idle eager
step time). An idle grid of 2 runs at a time takes the makespan of its runs in plan order on 2 slots, plus 30 s
for the grid's start-up and the report.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from hinet import stats as st

DATASET, PROTOCOL, METRIC = "SIDD (synthetic)", "denoise/clamped", "psnr"
# denoise/official scores the unclamped output with the official peak heuristic (peak 255 when the output's max
# exceeds 1, else 1): an image's PSNR jumps by 48 dB when a variant's output crosses 1, so its paired differences
# are dominated by those jumps; it is analysed beside, not used for the choice
OFFICIAL = "denoise/official"
REFERENCE = "full"
VARIANTS = ("full", "no_csff", "no_hin", "no_sam", "single_stage")
TARGET_MDE = 0.1  # dB, the target
BUDGET_S = 15 * 60  # idle 2-core wall seconds of the default `nox -s ablate`
# the grid's own start-up and the report after it: the report took 7.1 CPU s on 8 pilot runs on the shared
# machine (~3 s idle); 30 s leaves room for the main job's larger records
OVERHEAD_S = 30.0
LOOKS = 4  # validations per run of the old default (the recipe's val_every = total // 4)
# validations per run the rule may choose; the last one is the verdict's, and at least one mid-run look stays so
# that every default run shows whether the ranking moved in its second half (verdicts by step)
LOOK_CHOICES = (4, 2)
MEASURED_IMAGES = 64  # what the pilot scored; more images are extrapolated from the components (the synthetic
# test images are independent draws -- random crop, random noise level -- see the photo share in the output)
IMAGE_CHOICES = (8, 16, 32, 64, 128, 256, 512, 1024)
FAST_PATHS_OK = 1e-4  # largest relative loss difference from eager that counts as "the same numbers"


# ----------------------------------------------------------------------------------------------- data
def per_image(root: Path, name: str, protocol: str = PROTOCOL) -> pd.DataFrame:
    """Per-image PSNR of one pilot under ``protocol``: columns run_id, variant, seed, step, image, value."""
    from hinet.image_records import read_image_metrics

    df = read_image_metrics(root / name / "records" / "per_image")
    df = df[(df["dataset"] == DATASET) & (df["protocol"] == protocol) & (df["metric"] == METRIC)]
    out = df[["run_id", "variant", "seed", "step", "image", "value"]].copy()
    out["seed"] = out["seed"].astype(int)
    out["step"] = out["step"].astype(int)
    out["image"] = out["image"].astype(str)
    return out.reset_index(drop=True)


def image_index(image: str) -> int:
    """Index of a synthetic test image id ``synthetic-denoise-test-<index>-<photo>``."""
    return int(image.split("-")[3])


def photo_of(image: str) -> str:
    return image.split("-", 4)[4]


def first_images(df: pd.DataFrame, count: int) -> pd.DataFrame:
    """Rows of the first ``count`` validation images (the images a val_limit of ``count`` scores: item i is a
    pure function of (seed, i), whatever the count)."""
    return df[df["image"].map(image_index) < count]


def photo_share(d: np.ndarray, images: list[str]) -> float:
    """Share of the variance of the image means of ``d`` (S, I) between source photographs (floored at 0)."""
    col = d.mean(axis=0)  # (I,) image means
    photos = np.array([photo_of(x) for x in images])
    groups = [col[photos == p] for p in sorted(set(photos))]
    if len(groups) < 2 or len(col) <= len(groups):
        return math.nan
    grand = col.mean()
    ms_between = sum(len(g) * (g.mean() - grand) ** 2 for g in groups) / (len(groups) - 1)
    ms_within = sum(((g - g.mean()) ** 2).sum() for g in groups) / (len(col) - len(groups))
    n0 = (len(col) - sum(len(g) ** 2 for g in groups) / len(col)) / (len(groups) - 1)
    between = max(ms_between - ms_within, 0.0) / n0
    total = between + ms_within
    return between / total if total > 0 else math.nan


def effects(df: pd.DataFrame, step: int) -> dict[str, tuple[st.PairedEffect, np.ndarray, list[str]]]:
    """Paired effect, difference table (S, I) and image ids of every comparison at ``step``."""
    q = df[df["step"] == step]
    out = {}
    for v in [v for v in VARIANTS if v != REFERENCE and v in set(q["variant"])]:
        design = st.paired_design(q, v, REFERENCE)  # every image its own scene: the crossed seeds x images model
        out[v] = (st.effect_of_design(design, "population", v, REFERENCE), design.d, list(design.images))
    return out


def components_table(df: pd.DataFrame, step: int) -> pd.DataFrame:
    rows = []
    for v, (e, d, images) in effects(df, step).items():
        c = e.components
        share = c.contributions()
        rows.append(dict(variant=v, n_seeds=c.n_seeds, n_images=c.n_scenes, difference=e.difference, se=e.se,
                         sd_seed=math.sqrt(c.seed), sd_image=math.sqrt(c.scene), sd_resid=math.sqrt(c.resid),
                         seed_share=share["seed"], image_share=share["scene"], resid_share=share["resid"],
                         photo_share_of_image_means=photo_share(d, images), mde=st.minimum_detectable_effect(c)))
    return pd.DataFrame(rows)


def mde(comp: st.VarianceComponents, seeds: int, images: int) -> float:
    return st.minimum_detectable_effect(replace(comp, n_seeds=seeds, n_scenes=images))


def official_jumps(clamped: pd.DataFrame, official: pd.DataFrame, step: int) -> dict[str, float]:
    """Per comparison: the share of (seed, image) cells whose official paired difference differs from the
    clamped one by more than 40 dB (exactly one of the two runs scored with peak 255)."""
    a, b = effects(clamped, step), effects(official, step)
    out = {}
    for v in a:
        if v in b and a[v][1].shape == b[v][1].shape and a[v][2] == b[v][2]:
            out[v] = float((np.abs(b[v][1] - a[v][1]) > 40).mean())
    return out


# ----------------------------------------------------------------------------------------------- cost
@dataclass(frozen=True)
class CostModel:
    """Idle 2-core seconds of runs and grids (see the module docstring)."""

    startup_s: float
    val_s_per_image: float
    step_s: dict[str, float]  # per variant, with the fast path of the grid
    contention: float  # CPU time now / idle time, from the eager step

    def run_s(self, variant: str, iters: int, images: int, looks: int = LOOKS) -> float:
        return self.startup_s + iters * self.step_s[variant] + looks * images * self.val_s_per_image

    def grid_s(self, seeds: int, iters: int, images: int, looks: int = LOOKS, parallel: int = 2) -> float:
        """Idle wall seconds of ``nox -s ablate``: the runs in plan order (variant-major) on ``parallel`` slots,
        each run to the slot free first, plus :data:`OVERHEAD_S` (grid start-up, the report)."""
        free = [0.0] * parallel
        for v in VARIANTS:
            for _ in range(seeds):
                k = free.index(min(free))
                free[k] += self.run_s(v, iters, images, looks)
        return max(free) + OVERHEAD_S


def idle_step_s(records: Path) -> dict[str, float]:
    """Idle eager step seconds per variant from the recorded default grid's training throughput (median)."""
    from hinet.records import read_records

    df = read_records(records)
    rate = df[(df["metric"] == "images_per_s") & (df["split"] == "train")].groupby("variant")["value"].median()
    batch = 8
    return {v: batch / float(rate[v]) for v in VARIANTS}


def cost_model(speed: dict, idle_eager: dict[str, float], path: str) -> CostModel:
    contention = speed["paths"]["eager"]["cpu_ms_median"] / 1e3 / idle_eager[REFERENCE]
    gain = speed["paths"][path]["speedup_median"]
    return CostModel(speed["startup_cpu_s"] / contention, speed["validation_cpu_ms_per_image"] / 1e3 / contention,
                     {v: s / gain for v, s in idle_eager.items()}, contention)


def chosen_fast_path(speed: dict) -> str:
    """The fastest path whose loss curve matches eager within :data:`FAST_PATHS_OK` (relative)."""
    ok = {k: v for k, v in speed["paths"].items() if v["max_rel_loss_diff"] <= FAST_PATHS_OK}
    return max(ok, key=lambda k: ok[k]["speedup_median"])


# ----------------------------------------------------------------------------------------------- choice
def options(comps: dict[str, st.VarianceComponents], model: CostModel, iters: int) -> list[dict]:
    """For every images x looks choice: the most seeds whose idle grid fits :data:`BUDGET_S`, its time and the
    largest MDE over the comparisons."""
    out = []
    for looks in LOOK_CHOICES:
        for images in IMAGE_CHOICES:
            seeds = 2
            while model.grid_s(seeds + 1, iters, images, looks) <= BUDGET_S:
                seeds += 1
            worst = max(mde(c, seeds, images) for c in comps.values())
            out.append(dict(seeds=seeds, images=images, looks=looks, worst_mde=worst,
                            grid_s=model.grid_s(seeds, iters, images, looks)))
    return out


def choose_default(comps: dict[str, st.VarianceComponents], model: CostModel, iters: int) -> dict:
    """The option of :func:`options` with the smallest largest-MDE; within 2% of it, the one with more looks,
    then fewer images (cheaper, less extrapolated). Only variance and cost enter, never which variant wins."""
    opts = options(comps, model, iters)
    best = min(o["worst_mde"] for o in opts)
    near = [o for o in opts if o["worst_mde"] <= 1.02 * best]
    return min(near, key=lambda o: (-o["looks"], o["images"]))


def budget_for(comps: dict[str, st.VarianceComponents], model: CostModel, iters: int) -> dict:
    """The cheapest grid (one validation per run) at which every comparison reaches :data:`TARGET_MDE`: for
    each number of images (64 .. 8192, extrapolated past the pilot's) the seeds that the worst comparison
    needs and the idle 2-core time; ``best`` is the cheapest finite one."""
    rows = []
    for images in (64, 128, 256, 512, 1024, 2048, 4096, 8192):
        need = {v: st.seeds_needed(replace(c, n_scenes=images), TARGET_MDE, max_seeds=5000) for v, c in comps.items()}
        worst = max(need.values())
        grid = model.grid_s(int(worst), iters, images, 1) if math.isfinite(worst) else math.inf
        rows.append(dict(images=images, seeds=worst, grid_s=grid, seeds_needed=need))
    finite = [r for r in rows if math.isfinite(r["grid_s"])]
    return {"rows": rows, "best": min(finite, key=lambda r: r["grid_s"]) if finite else None}


# ----------------------------------------------------------------------------------------------- steps
def steps_table(df: pd.DataFrame) -> pd.DataFrame:
    """Verdicts at every validation step (Holm within a step): difference, MDE and significance per variant,
    and the rank order of the variants' mean differences."""
    table = st.verdicts_by_step(df, REFERENCE, estimand="population", scale="proxy")
    return table[["step", "variant", "difference", "mde", "significant", "var_seed", "verdict"]]


def rank_orders(steps: pd.DataFrame) -> dict[int, list[str]]:
    """Variants (and ``full`` at 0) ordered by mean difference, best first, at every step."""
    out = {}
    for step, block in steps.groupby("step"):
        values = dict(zip(block["variant"], block["difference"])) | {REFERENCE: 0.0}
        out[int(step)] = sorted(values, key=lambda v: -values[v])
    return out


# ----------------------------------------------------------------------------------------------- main
def longer_training(root: Path, name: str, model: CostModel, choice: dict, main_table: pd.DataFrame) -> dict | None:
    """The comparisons of pilot ``name`` (a longer schedule): their components at its last step, the seeds a
    grid of that length fits in the budget with the chosen images and validations, and the MDE there, beside
    the chosen default's. None without at least 2 paired seeds."""
    if not (root / name / "records" / "per_image").is_dir():
        return None
    df = per_image(root, name)
    final = int(df["step"].max())
    effs = {v: e for v, (e, _, _) in effects(df, final).items() if e.n_seeds >= 2}
    if not effs:
        return None
    iters = final
    seeds = 2
    while model.grid_s(seeds + 1, iters, choice["images"], choice["looks"]) <= BUDGET_S:
        seeds += 1
    rows = []
    for v, e in effs.items():
        c = e.components
        base = main_table.set_index("variant").loc[v]
        rows.append(dict(variant=v, n_seeds=c.n_seeds, difference=e.difference, sd_seed=math.sqrt(c.seed),
                         sd_image=math.sqrt(c.scene), sd_seed_short=base.sd_seed, sd_image_short=base.sd_image,
                         seeds_in_budget=seeds, mde_in_budget=mde(c, seeds, choice["images"])))
    return {"name": name, "iters": iters, "rows": rows}


def seed_ms_ratio(main: dict, base: dict) -> dict[str, dict[str, float]]:
    """Per comparison in both pilots: the ratio of the seed mean squares (per-module / creation-order init) with
    its 95% F interval (same seeds and images in both, so the residual parts match in expectation)."""
    from scipy import stats

    out = {}
    for v in base:
        if v not in main:
            continue
        a = st.crossed_estimates(main[v][1])
        b = st.crossed_estimates(base[v][1])
        df1, df2 = main[v][1].shape[0] - 1, base[v][1].shape[0] - 1
        ratio = float(a["ms_seed"] / b["ms_seed"])
        out[v] = {"ratio": ratio, "low": ratio / stats.f.ppf(0.975, df1, df2),
                  "high": ratio / stats.f.ppf(0.025, df1, df2), "df": [df1, df2]}
    return out


def what_each_choice_bought(comps: dict[str, st.VarianceComponents], model: CostModel, eager: CostModel,
                            choice: dict, baseline: list[dict] | None) -> dict:
    """The largest MDE (dB) over the comparisons with each choice undone in turn, beside the chosen default's."""
    s, i, looks = choice["seeds"], choice["images"], choice["looks"]

    def worst(seeds: int, images: int, cs=comps) -> float:
        return max(mde(c, seeds, images) for c in cs.values())

    def fit(m: CostModel, images: int, n_looks: int) -> int:
        n = 2
        while m.grid_s(n + 1, 240, images, n_looks) <= BUDGET_S:
            n += 1
        return n

    out = {"chosen": worst(s, i), "old_default": worst(3, 8),
           "eager_instead_of_fast_paths": {"seeds": fit(eager, i, looks), "worst_mde": worst(fit(eager, i, looks), i)},
           "8_images_instead": {"seeds": fit(model, 8, looks), "worst_mde": worst(fit(model, 8, looks), 8)},
           "3_seeds_instead": worst(3, i)}
    if baseline:
        base = {row["variant"]: row["sd_seed"] ** 2 for row in baseline}
        undone = {v: replace(c, seed=base.get(v, c.seed)) for v, c in comps.items()}
        out["creation_order_init_instead"] = {v: mde(undone[v], s, i) for v in base if v in comps}
        out["creation_order_init_chosen"] = {v: mde(comps[v], s, i) for v in base if v in comps}
    return out


def analyse(root: Path, main: str, baseline: str | None, json_path: Path, md_path: Path,
            longer: str | None = "crn480") -> dict:
    from hinet.atomic import atomic_write_text

    info = json.loads((root / main / "pilot.json").read_text())
    speed = json.loads((root / "speed.json").read_text())
    df = per_image(root, main)
    final = int(df["step"].max())
    table = components_table(df, final)
    comps = {v: e.components for v, (e, _, _) in effects(df, final).items()}
    eight = components_table(first_images(df, 8), final)  # the old default's 8 images, same runs
    official = per_image(root, main, OFFICIAL)
    jumps = official.merge(df, on=["run_id", "step", "image"], suffixes=("", "_clamped"))
    jump_share = float(((jumps["value"] - jumps["value_clamped"]) > 40).mean())
    path = chosen_fast_path(speed)
    idle_eager = idle_step_s(Path("results/records/components.jsonl"))
    model = cost_model(speed, idle_eager, path)
    pilot_model = cost_model(speed, idle_eager, "fused+inplace")
    predicted_cpu = model.contention * info["seeds"].__len__() * sum(
        pilot_model.run_s(v, info["iters"], info["images"], info["iters"] // info["val_every"]) for v in VARIANTS)
    choice = choose_default(comps, model, info["iters"])
    budget = budget_for(comps, model, info["iters"])
    old_model = cost_model(speed, idle_eager, "eager")
    result = {
        "pilot": info, "speed": speed, "fast_path": path, "final_step": final,
        "components": table.to_dict("records"), "components_first8": eight.to_dict("records"),
        "official_components": components_table(official, final).to_dict("records"),
        "official_jumps": official_jumps(df, official, final),
        "official_peak255_share": jump_share,
        "cost_model": {"startup_s": model.startup_s, "val_s_per_image": model.val_s_per_image,
                       "step_s": model.step_s, "contention": model.contention,
                       "pilot_cpu_predicted_s": predicted_cpu, "pilot_cpu_measured_s": info["children_cpu_s"]},
        "old_default": {"seeds": 3, "images": 8, "grid_s": old_model.grid_s(3, 240, 8),
                        "mde": {v: mde(c, 3, 8) for v, c in comps.items()}},
        "options": options(comps, model, info["iters"]), "choice": choice,
        "choice_mde": {v: mde(c, choice["seeds"], choice["images"]) for v, c in comps.items()},
        "budget_for_target": budget,
        "projection": {v: {f"S{s}_I{i}": mde(c, s, i) for s in (3, 4, 6, 8, 10, 12, 16, 24, 32)
                           for i in IMAGE_CHOICES} for v, c in comps.items()},
    }
    result["longer"] = longer_training(root, longer, model, choice, table) if longer else None
    steps = steps_table(df)
    result["steps"] = steps.to_dict("records")
    result["rank_orders"] = rank_orders(steps)
    if baseline is not None and (root / baseline / "records" / "per_image").is_dir():
        base = per_image(root, baseline)
        done = json.loads((root / baseline / "pilot.json").read_text()) if (root / baseline / "pilot.json").exists() \
            else {"note": "stopped before its pilot.json was written"}
        final_base = int(base["step"].max())
        result["baseline_pilot"] = {"name": baseline, "iters": final_base, **done}
        result["baseline_components"] = components_table(base, final_base).to_dict("records")
        result["init_ratio"] = seed_ms_ratio(effects(df, final), effects(base, final_base))
    result["bought"] = what_each_choice_bought(comps, model, old_model, choice, result.get("baseline_components"))
    atomic_write_text(json_path, json.dumps(result, indent=2, default=_json_default))
    text = markdown(result)
    atomic_write_text(md_path, text)
    print(text)
    return result


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.bool_):
        return bool(o)
    raise TypeError(type(o))


# ----------------------------------------------------------------------------------------------- markdown
def _f(x: float, digits: int = 2) -> str:
    return "inf" if isinstance(x, float) and math.isinf(x) else f"{x:.{digits}f}"


def markdown(r: dict) -> str:
    p, sp, cm, ch = r["pilot"], r["speed"], r["cost_model"], r["choice"]
    comp = pd.DataFrame(r["components"]).set_index("variant")
    lines = [
        "# Proxy power study of the components ablation: synthetic, proxy scale (not comparable to the paper)",
        "",
        "Generated by `python -m studies.proxy_power analyse` from the pilot grids of "
        "`python -m studies.proxy_power pilot` (runs under `runs/proxy_power/`); per-image PSNR of "
        f"`{DATASET}` under `{PROTOCOL}`, paired differences `variant - full`, crossed seed x image random "
        "effects (`hinet.stats`), MDE at 80% power, two-sided alpha 0.05. Seeds, images and training "
        "length were chosen on variance, power and cost only, never on which variant wins.",
        "",
        f"CPU: {sp['cpu_capability']} (torch.backends.cpu.get_cpu_capability()), torch {sp['torch']}, one thread "
        f"per run, {p['cores']} cores shared with other jobs (load average {p['loadavg_start'][0]:.1f} at the "
        f"start of the main pilot, {p['loadavg_end'][0]:.1f} at its end).",
        "",
        "## Fast paths (one proxy training step, batch 8 of 64x64, width 16, depth 3; CPU time on the shared "
        "machine, interleaved rounds)",
        "",
        "| path | CPU ms (median) | speed-up | max relative loss difference from eager (4 steps) |",
        "|---|---|---|---|",
    ]
    for name, v in sp["paths"].items():
        lines.append(f"| {name} | {v['cpu_ms_median']:.0f} | {v['speedup_median']:.2f}x | "
                     f"{v['max_rel_loss_diff']:.1e} |")
    lines += ["", f"Chosen for proxy grids: **{r['fast_path']}** (fastest with the same numbers). On the shared "
              f"machine validation costs {sp['validation_cpu_ms_per_image']:.0f} CPU ms per 128x128 image (both "
              f"protocols) and a run's start-up {sp['startup_cpu_s']:.1f} CPU s (idle: divide by the contention "
              "factor below).", ""]
    s, i = int(comp["n_seeds"].iloc[0]), int(comp["n_images"].iloc[0])
    lines += [
        f"## Variance split (main pilot `{p['name']}`: {s} seeds x {i} images, {p['iters']} iterations, "
        f"step {r['final_step']}, per-module initialisation)",
        "",
        "SDs in dB. Shares are of Var(mean difference) at the pilot's seeds and images. The photo column is the "
        "share of the image means' variance lying between the 3 source photographs (the test images are random "
        "128x128 crops with random noise levels of chelsea and the two motorcycle views: more crops lower the "
        "within-photo part, never the between-photo part).",
        "",
        "| comparison | difference | SD seed | SD image | SD resid | seed share | image share | resid share | "
        "between photos | MDE |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for v, row in comp.iterrows():
        lines.append(f"| {v} - full | {row.difference:+.3f} | {row.sd_seed:.3f} | {row.sd_image:.3f} | "
                     f"{row.sd_resid:.3f} | {row.seed_share:.2f} | {row.image_share:.2f} | {row.resid_share:.2f} | "
                     f"{_f(row.photo_share_of_image_means)} | {row.mde:.3f} |")
    eight = pd.DataFrame(r["components_first8"]).set_index("variant")
    lines += ["", "Same runs scored on their first 8 images only (the old default's set): SD seed "
              + ", ".join(f"{v} {row.sd_seed:.3f}" for v, row in eight.iterrows()) + "; MDE "
              + ", ".join(f"{v} {row.mde:.3f}" for v, row in eight.iterrows()) + ".", ""]
    off = pd.DataFrame(r["official_components"]).set_index("variant")
    share = 100 * r["official_peak255_share"]
    lines += [f"Under `{OFFICIAL}` (unclamped output, official peak heuristic) {share:.0f}% of the image scores "
              "use peak 255 (+48 dB) because the output's maximum exceeds 1; the paired difference of a (seed, "
              "image) cell jumps by about 48 dB where exactly one of the two runs does: "
              + ", ".join(f"{v} {100 * x:.0f}%" for v, x in r["official_jumps"].items()) + " of the cells. SD image "
              + ", ".join(f"{v} {row.sd_image:.1f}" for v, row in off.iterrows())
              + " dB, SD seed " + ", ".join(f"{v} {row.sd_seed:.1f}" for v, row in off.iterrows())
              + " dB, MDE " + ", ".join(f"{v} {row.mde:.1f}" for v, row in off.iterrows())
              + f" dB. The choice below uses `{PROTOCOL}`.", ""]
    lines += ["## MDE (dB) projected from these components", "",
              "| comparison | " + " | ".join(f"{s} seeds x {i} img" for s, i in
                                             ((3, 8), (3, 64), (8, 8), (8, 64), (ch['seeds'], ch['images']),
                                              (16, 64), (32, 64))) + " |",
              "|---|" + "---|" * 7]
    for v in comp.index:
        proj = r["projection"][v]

        def at(s, i, proj=proj):
            return proj.get(f"S{s}_I{i}", math.nan)
        cells = [at(3, 8), at(3, 64), at(8, 8), at(8, 64), r["choice_mde"][v], at(16, 64), at(32, 64)]
        lines.append(f"| {v} - full | " + " | ".join(_f(x) for x in cells) + " |")
    if r.get("baseline_components"):
        base = pd.DataFrame(r["baseline_components"]).set_index("variant")
        bp = r["baseline_pilot"]
        lines += ["", f"## Common initial weights (pilot `{bp['name']}`: torch's creation-order initialisation, same "
                  f"seeds, data order and images, {bp['iters']} iterations)", "",
                  "| comparison | SD seed, per-module init | SD seed, creation-order init | MDE per-module | "
                  "MDE creation-order |", "|---|---|---|---|---|"]
        for v, row in base.iterrows():
            if v in comp.index:
                lines.append(f"| {v} - full | {comp.loc[v, 'sd_seed']:.3f} | {row.sd_seed:.3f} | "
                             f"{comp.loc[v, 'mde']:.3f} | {row.mde:.3f} |")
    if r.get("init_ratio"):
        lines += ["", "Seed mean square ratio, per-module / creation-order init (95% F interval): "
                  + ", ".join(f"{v} {x['ratio']:.2f} [{x['low']:.2f}, {x['high']:.2f}]"
                              for v, x in r["init_ratio"].items())
                  + ". With 4 seeds a side the interval is wide: the reduction is an estimate, not a demonstrated "
                  "effect. Per-module init is kept because it removes a source of variance by construction (the "
                  "other variants already shared 99.6-100% of their initial weights with full) at no cost."]
    if r.get("longer"):
        lo = r["longer"]
        lines += ["", f"## Longer training (pilot `{lo['name']}`: {lo['iters']} iterations, per-module init)", "",
                  f"| comparison | seeds | difference | SD seed ({lo['iters']} it) | SD seed ({p['iters']} it) | "
                  f"SD image ({lo['iters']} it) | SD image ({p['iters']} it) | MDE of a {lo['iters']}-iteration "
                  f"grid in the budget | MDE of the chosen {p['iters']}-iteration grid |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for row in lo["rows"]:
            lines.append(f"| {row['variant']} - full | {row['n_seeds']} | {row['difference']:+.3f} | "
                         f"{row['sd_seed']:.3f} | {row['sd_seed_short']:.3f} | {row['sd_image']:.3f} | "
                         f"{row['sd_image_short']:.3f} | {row['mde_in_budget']:.2f} ({row['seeds_in_budget']} seeds) "
                         f"| {r['choice_mde'][row['variant']]:.2f} ({ch['seeds']} seeds) |")
        n = min(row["n_seeds"] for row in lo["rows"])
        lines += ["", f"Only the comparison with the largest MDE at {p['iters']} iterations was run longer, with {n} "
                  f"paired seeds ({n - 1} df for its seed variance). The default keeps {p['iters']} iterations: the "
                  "other comparisons were not measured at the longer schedule, and a seed SD from so few seeds "
                  "cannot justify halving the seeds of the whole family. A longer-schedule pilot of every variant "
                  "with at least 4 seeds is the next measurement."]
    lines += ["", f"## Training length: verdicts at every validation step of `{p['name']}` (Holm within a step)", "",
              "Difference (MDE) in dB; intermediate steps are points of the same cosine schedule, not shorter runs.",
              "", "| step | " + " | ".join(v for v in VARIANTS if v != REFERENCE) + " | order, best first |",
              "|---|" + "---|" * len(VARIANTS)]
    steps = pd.DataFrame(r["steps"])
    for step, block in steps.groupby("step"):
        cells = []
        for v in VARIANTS:
            if v == REFERENCE:
                continue
            b = block[block["variant"] == v]
            cells.append("" if b.empty else f"{b.difference.iloc[0]:+.2f} ({b.mde.iloc[0]:.2f})"
                         + ("*" if b.significant.iloc[0] else ""))
        order = " > ".join(r["rank_orders"][int(step)] if int(step) in r["rank_orders"]
                           else r["rank_orders"][str(int(step))])
        lines.append(f"| {int(step)} | " + " | ".join(cells) + f" | {order} |")
    orders = {int(k): v for k, v in r["rank_orders"].items()}
    last = orders[max(orders)]
    same = [k for k in sorted(orders) if orders[k] == last]
    sign = {k: all((b.difference > 0) == (f > 0) for b, f in zip(
        steps[steps["step"] == k].sort_values("variant").itertuples(),
        steps[steps["step"] == max(orders)].sort_values("variant")["difference"])) for k in sorted(orders)}
    lines += ["", "`*`: significant after Holm at that step. The order of all five equals the final one at steps "
              + ", ".join(map(str, same)) + "; every difference has its final sign at steps "
              + ", ".join(str(k) for k, ok in sign.items() if ok) + "."
              + (" Early in the schedule (high learning rate) some signs differ from the end's, so the verdicts are "
                 "read at the last step only." if not all(sign.values()) else ""), ""]
    old, bud = r["old_default"], r["budget_for_target"]
    worst_var = max(r["choice_mde"], key=lambda v: r["choice_mde"][v])
    lines += [
        "## Cost and the default",
        "",
        f"Idle 2-core cost model: start-up {cm['startup_s']:.1f} s, validation {1e3 * cm['val_s_per_image']:.0f} ms "
        "per image, step " + ", ".join(f"{v} {1e3 * t:.0f} ms" for v, t in cm["step_s"].items())
        + f" (with {r['fast_path']}); contention factor of this shared machine {cm['contention']:.2f} (eager "
        f"step CPU time now / idle). The model predicts {cm['pilot_cpu_predicted_s']:.0f} CPU s for the main "
        f"pilot; measured {cm['pilot_cpu_measured_s']:.0f} CPU s ({p['runs']} runs, wall {p['wall_s']:.0f} s "
        "shared).",
        "",
        f"Old default (3 seeds x 8 images, eager): idle grid {old['grid_s'] / 60:.1f} min, MDE "
        + ", ".join(f"{v} {x:.2f}" for v, x in old["mde"].items()) + " dB (these components).",
        "",
        f"Rule: within {BUDGET_S // 60} idle minutes and {p['iters']} iterations, for each number of images "
        f"({list(IMAGE_CHOICES)}; past {MEASURED_IMAGES} extrapolated from the components) and validations per "
        f"run ({list(LOOK_CHOICES)}), take the most seeds that fit; choose the option with the smallest largest "
        "MDE (within 2% of it: more validations, then fewer images).",
        "",
        "| validations | images | seeds | idle min | largest MDE |",
        "|---|---|---|---|---|",
    ]
    for o in r["options"]:
        if o["images"] in (8, 64, 256, 512, 1024) or o == ch:
            mark = " **(chosen)**" if o == ch else ""
            lines.append(f"| {o['looks']} | {o['images']} | {o['seeds']} | {o['grid_s'] / 60:.1f} | "
                         f"{o['worst_mde']:.2f}{mark} |")
    lines += [
        "",
        f"Chosen: **{ch['seeds']} seeds x {ch['images']} images, {ch['looks']} validation(s) per run**, idle grid "
        f"{ch['grid_s'] / 60:.1f} min; MDE " + ", ".join(f"{v} {x:.2f}" for v, x in r["choice_mde"].items()) + " dB.",
        "",
    ]
    b = r["bought"]
    lines += [f"What each choice bought (largest MDE over the comparisons, dB; chosen default {b['chosen']:.2f}): "
              f"the old default 3 seeds x 8 images {b['old_default']:.2f}; 3 seeds instead of "
              f"{ch['seeds']} {b['3_seeds_instead']:.2f}; 8 images instead of {ch['images']} (then "
              f"{b['8_images_instead']['seeds']} seeds fit) {b['8_images_instead']['worst_mde']:.2f}; the eager "
              f"path instead of the fast paths (then {b['eager_instead_of_fast_paths']['seeds']} seeds fit) "
              f"{b['eager_instead_of_fast_paths']['worst_mde']:.2f}."]
    if "creation_order_init_instead" in b:
        undone, kept = b["creation_order_init_instead"], b["creation_order_init_chosen"]
        lines[-1] += (" Creation-order init instead of per-module init, with its measured seed SD: "
                      + ", ".join(f"{v} {undone[v]:.2f} (chosen {kept[v]:.2f})" for v in undone) + ".")
    lines.append("")
    if ch["worst_mde"] <= TARGET_MDE:
        lines.append(f"Every comparison reaches an MDE of at most {TARGET_MDE} dB within the budget.")
    else:
        best = bud["best"]
        lines += [f"The target of {TARGET_MDE} dB for every comparison is **not** reached within {BUDGET_S // 60} "
                  f"minutes: the largest MDE is {ch['worst_mde']:.2f} dB ({worst_var}). Grids that reach it (one "
                  "validation per run, seeds for the worst comparison):", "",
                  "| images | seeds | idle 2-core hours |", "|---|---|---|"]
        for row in bud["rows"]:
            lines.append(f"| {row['images']} | {_f(float(row['seeds']), 0)} | {_f(row['grid_s'] / 3600, 1)} |")
        if best is not None:
            lines += ["", f"Cheapest: {best['images']} images x {int(best['seeds'])} seeds, "
                      f"{best['grid_s'] / 3600:.1f} idle 2-core hours ({best['grid_s'] / BUDGET_S:.0f}x the budget)."]
    lines.append("")
    return "\n".join(lines)
