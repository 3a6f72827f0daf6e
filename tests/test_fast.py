"""Fast paths (hinet.fast) give the eager model's numbers: fp32 switches to 1e-4, reduced precision >= 45 dB."""

from __future__ import annotations

import copy
import time

import pytest
import torch

from hinet.arch import HINet
from hinet.blocks import PartialNorm
from hinet.config import PRESETS, scaled
from hinet.evaluate import predict_tiled
from hinet.fast import (
    FastPathUnavailableError,
    fast_train_setup,
    optimize_for_inference,
    set_fused_norm,
    set_inplace_activations,
)
from hinet.losses import MultiStageLoss, make_loss
from hinet.metrics import psnr
from hinet.step import TrainStep

FP32_TOL = 1e-4
MIN_PSNR_DB = 45.0


def tiny_hinet(seed: int = 0, width: int = 4, depth: int = 2) -> HINet:
    torch.manual_seed(seed)
    return HINet(scaled(PRESETS["sidd-1x"], width=width, depth=depth)).eval()


def images(n: int = 2, size: int = 32, seed: int = 1) -> torch.Tensor:
    """SYNTHETIC uniform-noise images, NCHW RGB in [0, 1]."""
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def max_abs(outs: list[torch.Tensor], refs: list[torch.Tensor]) -> float:
    assert len(outs) == len(refs)
    return max((a - b).abs().max().item() for a, b in zip(outs, refs))


@pytest.fixture(scope="module")
def model_and_reference() -> tuple[HINet, torch.Tensor, list[torch.Tensor]]:
    model, x = tiny_hinet(), images()
    with torch.inference_mode():
        ref = [o.clone() for o in model(x)]
    return model, x, ref


# ------------------------------------------------------------------------------------------- PartialNorm
@pytest.mark.parametrize("ratio", [0.25, 0.5, 1.0])
def test_partial_norm_fused_matches_unfused(ratio: float) -> None:
    torch.manual_seed(0)
    total = 16
    norm = PartialNorm(total, round(total * ratio), "instance")
    with torch.no_grad():  # non-trivial affine so a swapped scale/shift would show
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.5, 0.5)
    x = (torch.randn(3, total, 9, 11) * 2 + 1).requires_grad_()
    ref = norm(x)
    grads_ref = torch.autograd.grad(ref.square().sum(), (x, norm.weight, norm.bias))
    norm.fused = True
    out = norm(x)
    grads = torch.autograd.grad(out.square().sum(), (x, norm.weight, norm.bias))
    assert (out - ref).abs().max().item() <= 1e-5
    for g, g_ref in zip(grads, grads_ref):
        assert (g - g_ref).abs().max().item() <= 1e-4 * max(1.0, g_ref.abs().max().item())


def test_set_fused_norm_switches_instance_norms_only() -> None:
    model = HINet(scaled(PRESETS["sidd-1x"], width=4, depth=3))
    norms = [m for m in model.modules() if isinstance(m, PartialNorm)]
    assert set_fused_norm(model) == len(norms) == 6 and all(m.fused for m in norms)
    assert set_fused_norm(model, False) == 6 and not any(m.fused for m in norms)
    from dataclasses import replace

    batch = HINet(replace(scaled(PRESETS["sidd-1x"], width=4, depth=2), norm="batch"))
    assert set_fused_norm(batch) == 0


def test_set_inplace_activations() -> None:
    model = tiny_hinet()
    acts = [m for m in model.modules() if isinstance(m, torch.nn.LeakyReLU)]
    assert set_inplace_activations(model) == len(acts) > 0 and all(m.inplace for m in acts)


# ------------------------------------------------------------------------------------------- inference
FP32_SWITCHES = [(False, False, False), (True, False, False), (False, True, False), (False, False, True),
                 (True, True, True)]


@pytest.mark.parametrize("channels_last,fused_norm,inplace_act", FP32_SWITCHES)
def test_fp32_paths_match_eager(model_and_reference, channels_last: bool, fused_norm: bool, inplace_act: bool) -> None:
    model, x, ref = model_and_reference
    runner = optimize_for_inference(model, channels_last=channels_last, fused_norm=fused_norm, inplace_act=inplace_act)
    out = runner(x)
    assert [o.dtype for o in out] == [torch.float32] * 2
    assert all(o.is_contiguous() for o in out)
    assert max_abs(out, ref) <= FP32_TOL


def test_runner_leaves_the_model_alone_unless_inplace(model_and_reference) -> None:
    model, x, _ = model_and_reference
    optimize_for_inference(model)(x)
    assert not any(m.fused for m in model.modules() if isinstance(m, PartialNorm))
    assert not any(m.inplace for m in model.modules() if isinstance(m, torch.nn.LeakyReLU))
    assert all(p.requires_grad for p in model.parameters())
    conv = model.stages[0].intro.weight
    assert conv.is_contiguous()
    other = copy.deepcopy(model)
    runner = optimize_for_inference(other, inplace=True)
    assert runner.model is other and all(m.fused for m in other.modules() if isinstance(m, PartialNorm))


def test_runner_is_a_drop_in_model_for_tiled_prediction(model_and_reference) -> None:
    model, _, _ = model_and_reference
    image = images(1, 48, seed=3)
    with torch.inference_mode():
        ref = predict_tiled(model, image, tile=32, batch=4)
    out = predict_tiled(optimize_for_inference(model), image, tile=32, batch=4)
    assert (out - ref).abs().max().item() <= FP32_TOL


def test_bf16_autocast_on_cpu_is_close(model_and_reference) -> None:
    model, x, ref = model_and_reference
    # numerics only: "force" runs bf16 also where it is slower (AVX2-only CPUs fall back to fp32 by default)
    runner = optimize_for_inference(model, dtype="bf16", precision_policy="force")
    assert runner.dtype == torch.bfloat16
    out = runner(x)
    assert out[-1].dtype == torch.float32
    assert (out[-1] - ref[-1]).abs().max().item() > 0  # really ran in reduced precision
    assert psnr(out[-1], ref[-1], check_range=False).min().item() >= MIN_PSNR_DB  # raw outputs, not images


@pytest.mark.slow
def test_compiled_path_matches_eager(model_and_reference) -> None:
    """torch.compile (inductor, C++ on CPU, freezing): ~15 s of compilation on a 2-core CPU."""
    model, x, ref = model_and_reference
    runner = optimize_for_inference(model, compile=True)
    start = time.perf_counter()
    out = runner(x)
    compile_s = time.perf_counter() - start
    assert runner.compiled and max_abs(out, ref) <= FP32_TOL
    assert max_abs(runner(x), ref) <= FP32_TOL  # the cached graph, second call
    print(f"compile + first call: {compile_s:.1f} s")


def test_bad_options_are_refused(model_and_reference, monkeypatch) -> None:
    model, x, _ = model_and_reference
    with pytest.raises(FastPathUnavailableError, match="float16.*CUDA"):
        optimize_for_inference(model, dtype=torch.float16)
    with pytest.raises(ValueError, match="dtype='int8'"):
        optimize_for_inference(model, dtype="int8")
    with pytest.raises(ValueError, match="NCHW"):
        optimize_for_inference(model)(x[0])
    from torch._inductor import config as inductor_config

    monkeypatch.setattr(inductor_config.cpp, "cxx", ("no-such-compiler-xyz",))
    with pytest.raises(FastPathUnavailableError, match="compile=True"):
        optimize_for_inference(model, compile=True)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [None, torch.float16, torch.bfloat16])
def test_cuda_paths(dtype) -> None:
    model, x = tiny_hinet(), images()
    with torch.inference_mode():
        ref = model.cuda()(x.cuda())
    out = optimize_for_inference(model, dtype=dtype, precision_policy="force")(x)  # numerics, on any GPU
    assert out[-1].device.type == "cuda" and out[-1].dtype == torch.float32
    if dtype is None:
        assert max_abs(out, ref) <= FP32_TOL
    else:
        assert psnr(out[-1], ref[-1], check_range=False).min().item() >= MIN_PSNR_DB  # raw outputs, not images


# ------------------------------------------------------------------------------------------- training
def test_fast_train_step_matches_eager_step() -> None:
    """One SGD step (so the parameter change is the clipped gradient itself) with and without fast switches,
    through the trainer's own step function (hinet.step.TrainStep)."""
    x, y = images(2, 32, seed=4), images(2, 32, seed=5)
    results = []
    for fast in (False, True):
        model = tiny_hinet().train()
        net = fast_train_setup(model) if fast else model
        opt = torch.optim.SGD(model.parameters(), lr=1.0)
        step = TrainStep(net, MultiStageLoss(make_loss("l1")), opt, grad_clip=0.01, precision="fp32",
                         channels_last=fast)
        loss = step([(x, y)])
        assert loss.requires_grad is False and all(p.grad is None for p in model.parameters())
        results.append((loss.item(), [p.detach().clone() for p in model.parameters()]))
    (loss_ref, params_ref), (loss_fast, params_fast) = results
    assert loss_fast == pytest.approx(loss_ref, abs=1e-6)
    assert max((a - b).abs().max().item() for a, b in zip(params_fast, params_ref)) <= 1e-6
    moved = max((a - b).abs().max().item() for a, b in zip(params_ref, tiny_hinet().parameters()))
    assert moved > 1e-4  # the step did change the weights


# ------------------------------------------------------------------------------------------- speed records
TINY_BENCH = '''
import time


def test_tiny_ratio(benchmark):
    benchmark.pedantic(time.sleep, args=(0.001,), rounds=3, iterations=1)
    benchmark.extra_info.update(label="a tiny ratio", device="cuda:1", input="2x3x8x8", torch_version="x", ratio=3.0,
                                ratio_median=2.5,
                                ratio_low=2.0, ratio_high=2.8, hardware="CUDA Fake GPU (sm_90, bf16)",
                                gpu="Fake GPU (sm_90)", cpu_capability="AVX2",
                                paths={"eager": {"ms_min": 3.0, "ms_median": 3.1, "ms_mean": 3.2, "rounds": 3},
                                       "fast": {"ms_min": 1.0, "ms_median": 1.24, "ms_mean": 1.3, "rounds": 3}},
                                compared={"baseline": "eager", "fast": "fast", "measure": "ms_median"},
                                metrics={"peak_mb": 12.5})


def test_batched_torch(benchmark):
    benchmark.pedantic(time.sleep, args=(0.001,), rounds=2, iterations=1)
    benchmark.extra_info.update(speedup_batched_vs_per_image=4.0, label="batched vs per image", target=5.0)


def test_unlabelled(benchmark):
    benchmark.pedantic(time.sleep, args=(0.001,), rounds=1, iterations=1)
'''


def test_speed_turns_a_real_benchmark_report_into_records(tmp_path) -> None:
    """Runs pytest-benchmark for real on a tiny module (sleep-based timings) and converts its JSON."""
    import json

    from benchmarks.speed.runner import records_from_json, run_pytest, summary_rows
    from hinet.records import append_records, read_records

    bench = tmp_path / "bench_scoring.py"  # named like a real module: its protocol is bench_scoring
    bench.write_text(TINY_BENCH)
    report = tmp_path / "report.json"
    assert run_pytest([str(bench), "-q"], report) == 0
    data = json.loads(report.read_text())
    with pytest.raises(ValueError, match=r"test_unlabelled: no extra_info\['label'\]"):
        records_from_json(data, run_id="bench-test", git=("abc", False))
    data["benchmarks"] = [b for b in data["benchmarks"] if b["name"] != "test_unlabelled"]
    records = records_from_json(data, run_id="bench-test", git=("abc", False))
    append_records(tmp_path / "speed.jsonl", records)
    df = read_records(tmp_path / "speed.jsonl")
    assert set(df["family"]) == {"speed"} and set(df["recipe"]) == {"bench"} and df["synthetic"].all()
    got = {(v, m): x for v, m, x in zip(df["variant"], df["metric"], df["value"])}
    columns = {v: (d, dev) for v, d, dev in zip(df["variant"], df["dataset"], df["device"])}
    # dataset = the timed input, device = where and on what hardware (the GPU's capability on CUDA)
    assert columns["test_tiny_ratio"] == ("2x3x8x8", "cuda:1: CUDA Fake GPU (sm_90, bf16); capability Fake GPU (sm_90)")
    assert columns["test_batched_torch"] == ("unspecified", "cpu: hardware not stated")
    cases = ("test_tiny_ratio", "test_tiny_ratio:eager", "test_tiny_ratio:fast", "test_batched_torch")
    runs = {f"bench-test/bench_scoring::{v}" for v in cases}
    assert set(df["run_id"]) == runs  # one run per benchmark case and timed path
    assert got[("test_tiny_ratio", "ratio")] == 3.0 and got[("test_tiny_ratio", "peak_mb")] == 12.5
    assert got[("test_tiny_ratio:eager", "ms_median")] == 3.1 and ("test_tiny_ratio:eager", "rounds") not in got
    assert got[("test_tiny_ratio", "ms_min")] >= 1.0  # slept 1 ms per round
    assert got[("test_batched_torch", "ratio")] == 4.0
    assert (got[("test_tiny_ratio", "ratio_low")], got[("test_tiny_ratio", "ratio_high")]) == (2.0, 2.8)
    # the compared paths' numbers again under the benchmark's own variant; the target where one applies
    assert (got[("test_tiny_ratio", "baseline_ms_median")], got[("test_tiny_ratio", "fast_ms_median")]) == (3.1, 1.24)
    assert got[("test_batched_torch", "target")] == 5.0 and ("test_tiny_ratio", "target") not in got
    # the benchmark's own words travel with its records: its label, and the roles of its compared paths
    labels = dict(zip(df["variant"], df["label"]))
    assert labels["test_tiny_ratio"] == "a tiny ratio" and labels["test_batched_torch"] == "batched vs per image"
    assert (labels["test_tiny_ratio:eager"], labels["test_tiny_ratio:fast"]) == ("baseline", "fast")
    rows = {r["benchmark"]: r for r in summary_rows(data)}
    assert rows["bench_scoring::test_batched_torch"]["verdict"] == "MISSES"  # 4 < target 5
    assert rows["bench_scoring::test_tiny_ratio"]["verdict"] == "-"  # no target
    with pytest.raises(ValueError, match="benchmarks"):
        records_from_json({"not": "a report"}, run_id="x")


def test_ratio_interval_brackets_the_ratio_of_medians() -> None:
    from benchmarks.speed.timing import ratio_info, ratio_interval

    baseline = [1.0, 1.1, 1.05, 1.3, 1.0, 1.2]  # seconds, interleaved with fast round by round
    fast = [0.8, 0.9, 0.82, 1.0, 0.81, 0.95]
    info = ratio_info(baseline, fast, paired=True)
    assert info["ratio"] == pytest.approx(1.0 / 0.8) and info["ratio_median"] == pytest.approx(1.075 / 0.86)
    assert info["ratio_low"] <= info["ratio_median"] <= info["ratio_high"]
    assert info["ratio_low"] < info["ratio_high"]  # the rounds vary, so does the ratio
    paired, unpaired = ratio_interval(baseline, fast, paired=True), ratio_interval(baseline, fast, paired=False)
    assert unpaired[1] - unpaired[0] >= paired[1] - paired[0]  # pairing removes the shared load
    assert ratio_interval([1.0], [0.5, 0.6], paired=False) is None  # one round: no interval
    assert "ratio_low" not in ratio_info([1.0], [0.5], paired=True)
    with pytest.raises(ValueError, match="paired"):
        ratio_interval([1.0, 2.0], [1.0, 2.0, 3.0], paired=True)
