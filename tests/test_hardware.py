"""hinet.hardware: device description and the reduced-precision policy, on faked CPUs and on this machine.

The faked CPUs replace /proc/cpuinfo, torch's CPU capability and the affinity mask: an AVX2-only AMD EPYC
(no native bf16: bf16 must fall back to fp32) and an AVX-512 Xeon with AMX (bf16 runs).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from benchmarks.speed import roofline
from hinet import hardware
from hinet.fast import FastPathUnavailableError, optimize_for_inference
from hinet.hardware import PrecisionFallbackWarning, PrecisionUnavailableError
from hinet.step import TrainStep


def cpuinfo_text(model: str, flags: str, cores: list[int], mhz: list[float]) -> str:
    """/proc/cpuinfo as Linux writes it: one block per logical CPU (``cores[i]`` = core id of CPU i)."""
    blocks = []
    for number, (core, clock) in enumerate(zip(cores, mhz)):
        blocks.append(f"processor\t: {number}\nvendor_id\t: x\nmodel name\t: {model}\ncpu MHz\t\t: {clock:.3f}\n"
                      f"physical id\t: 0\ncore id\t\t: {core}\nflags\t\t: fpu sse sse2 {flags}\n")
    return "\n".join(blocks) + "\n"


AVX2_EPYC = cpuinfo_text("AMD EPYC 7B13 64-Core Processor", "avx f16c fma avx2 hypervisor", [0, 1],
                         [2450.0, 2450.0])
AMX_XEON = cpuinfo_text("Intel(R) Xeon(R) Platinum 8480+",
                        "avx fma avx2 avx512f avx512bw avx512_bf16 amx_tile amx_bf16",
                        [0, 0, 1, 1], [2000.0, 3800.0, 2100.0, 2000.0])  # 2 cores with 2 hyperthreads each


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch):
    monkeypatch.setattr(hardware, "_warned", set())


def fake_cpu(monkeypatch, text: str, capability: str, cpus: set[int] | None = None) -> None:
    monkeypatch.setattr(hardware, "_read_cpuinfo", lambda: text)
    monkeypatch.setattr(hardware, "_cpu_capability", lambda: capability)
    monkeypatch.setattr(hardware, "_available_cpus", lambda: cpus)


@pytest.fixture
def avx2(monkeypatch):
    fake_cpu(monkeypatch, AVX2_EPYC, "AVX2", {0, 1})


@pytest.fixture
def amx(monkeypatch):
    fake_cpu(monkeypatch, AMX_XEON, "AVX512", {0, 1, 2, 3})


class TwoStage(nn.Module):
    """A stand-in network returning a list of NCHW stage outputs, as HINet does."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        return [y, y + x]


# ----------------------------------------------------------------------------------------------- description
def test_avx2_cpu_is_described_and_bf16_falls_back(avx2):
    info = hardware.cpu_info()
    assert (info.model, info.capability, info.cores, info.logical_cpus, info.mhz) == (
        "AMD EPYC 7B13 64-Core Processor", "AVX2", 2, 2, 2450.0)
    assert info.flags == ("avx2", "fma", "hypervisor") and info.native_bf16 is None
    assert hardware.describe() == (f"CPU AMD EPYC 7B13 64-Core Processor, AVX2, no native bf16, 2 cores, "
                                   f"{torch.get_num_threads()} thread{'s' if torch.get_num_threads() != 1 else ''}")
    ok, reason = hardware.reduced_precision_ok("cpu", torch.bfloat16)
    assert not ok and "avx512_bf16" in reason and "AVX2" in reason
    assert hardware.reduced_precision_ok("cpu", None) == (True, "fp32 needs no hardware support")
    with pytest.warns(PrecisionFallbackWarning, match="dtype=bf16 on cpu.*running fp32"):
        assert hardware.resolve_precision("bf16", "cpu") == "fp32"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per process: the second request is silent
        assert hardware.resolve_precision(torch.bfloat16, torch.device("cpu")) == "fp32"
    with pytest.raises(PrecisionUnavailableError, match="dtype=bf16 on cpu.*'force'"):
        hardware.resolve_precision("bf16", "cpu", policy="error")
    assert hardware.resolve_precision("bf16", "cpu", policy="force") == "bf16"


def test_amx_cpu_runs_bf16(amx):
    info = hardware.cpu_info()
    assert (info.capability, info.cores, info.logical_cpus, info.mhz) == ("AVX512", 2, 4, 3800.0)
    assert info.native_bf16 == "AMX"
    assert hardware.describe().startswith("CPU Intel(R) Xeon(R) Platinum 8480+, AVX512, bf16 AMX, 2 cores, ")
    ok, reason = hardware.reduced_precision_ok("cpu", "bf16")
    assert ok and "AMX" in reason
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for policy in hardware.POLICIES:
            assert hardware.resolve_precision("bf16", "cpu", policy=policy) == "bf16"


def test_avx512_bf16_without_amx_and_the_affinity_mask(monkeypatch):
    text = AMX_XEON.replace(" amx_tile amx_bf16", "")
    fake_cpu(monkeypatch, text, "AVX512", {2, 3})  # this process may run on CPUs 2 and 3: one core
    info = hardware.cpu_info()
    assert (info.native_bf16, info.cores, info.logical_cpus, info.mhz) == ("AVX512-BF16", 1, 2, 2100.0)
    assert hardware.reduced_precision_ok("cpu", "bf16")[0]


def test_without_proc_cpuinfo_torch_decides_the_bf16_flags(monkeypatch):
    fake_cpu(monkeypatch, "", "AVX512", None)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    info = hardware.cpu_info()
    assert info.native_bf16 == "AVX512-BF16" and info.mhz is None and info.cores == info.logical_cpus >= 1
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    assert not hardware.reduced_precision_ok("cpu", "bf16")[0]


@pytest.mark.parametrize("fake", ["avx2", "amx"])
@pytest.mark.parametrize("policy", hardware.POLICIES)
def test_fp16_on_cpu_is_refused_under_every_policy(fake, policy, request):
    request.getfixturevalue(fake)
    assert not hardware.reduced_precision_ok("cpu", "fp16")[0]
    with pytest.raises(PrecisionUnavailableError, match="float16 autocast needs a CUDA device"):
        hardware.resolve_precision(torch.float16, "cpu", policy=policy)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="precision policy='maybe'"):
        hardware.resolve_precision("bf16", "cpu", policy="maybe")
    with pytest.raises(ValueError, match="dtype='int8'"):
        hardware.resolve_precision("int8", "cpu")
    with pytest.raises(ValueError, match="dtype=torch.float64"):
        hardware.reduced_precision_ok("cpu", torch.float64)
    with pytest.raises(hardware.UserError, match="device 'gpu0'"):
        hardware.describe("gpu0")


def test_this_machine():
    """The real /proc/cpuinfo and torch: the description agrees with what torch and the file say."""
    info = hardware.cpu_info()
    assert info.capability == torch.backends.cpu.get_cpu_capability()
    assert info.threads == torch.get_num_threads() and 1 <= info.cores <= info.logical_cpus
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    words = set(text.split())
    if text:
        native = bool(words & {"avx512_bf16", "amx_bf16"})
        assert info.native_bf16 is not None if native else info.native_bf16 is None
        assert info.mhz is not None and info.mhz > 0
    else:
        native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    ok, reason = hardware.reduced_precision_ok("cpu", "bf16")
    assert ok == native, reason
    line = hardware.describe()
    assert line.startswith("CPU ") and info.capability in line and f"{info.threads} thread" in line


@pytest.mark.gpu
def test_this_gpu():
    info = hardware.cuda_info()
    assert info.capability == torch.cuda.get_device_capability()
    assert hardware.reduced_precision_ok("cuda", "bf16")[0] == info.bf16
    assert hardware.reduced_precision_ok("cuda", "fp16")[0] == (info.capability >= (7, 0))
    assert hardware.describe("cuda").startswith(f"CUDA {torch.cuda.get_device_name()}")


# ----------------------------------------------------------------------------------------------- roofline
def test_conv_flops_agree_with_torchs_flop_counter():
    from torch.utils.flop_counter import FlopCounterMode

    conv, x = nn.Conv2d(32, 16, 3, padding=1, bias=False), torch.rand(2, 32, 24, 20)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        conv(x)
    assert roofline.conv_gflop(2, 32, 16, 24, 20) * 1e9 == counter.get_total_flops()


def test_theoretical_peak(avx2, monkeypatch):
    info = hardware.cpu_info()
    assert roofline.theoretical_peak_gflops(info) == pytest.approx(2 * 2 * 8 * 2 * 2.45)
    assert roofline.theoretical_peak_gflops(info, fma_units=1, mhz=1000) == pytest.approx(2 * 8 * 2 * 1.0)
    fake_cpu(monkeypatch, AMX_XEON, "AVX512", {0, 1, 2, 3})
    assert roofline.theoretical_peak_gflops(hardware.cpu_info()) == pytest.approx(2 * 2 * 16 * 2 * 3.8)
    fake_cpu(monkeypatch, AVX2_EPYC.replace("cpu MHz", "bogus"), "AVX2", {0, 1})
    with pytest.raises(hardware.UserError, match="cpu MHz"):
        roofline.theoretical_peak_gflops(hardware.cpu_info())


def test_cli_prints_description_and_roofline(capsys):
    assert roofline.main(["--shapes", "4x16", "--min-run-time", "0.01"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == hardware.describe()
    assert f"get_cpu_capability() = {torch.backends.cpu.get_cpu_capability()}" in out
    assert "MHz (/proc/cpuinfo 'cpu MHz'" in out or "MHz (--mhz)" in out
    assert "conv3x3 1x4x16x16 -> 4" in out and "% of peak" in out and "fastest block" in out


@pytest.mark.parametrize("main, argv, message", [(hardware.main, ["--device", "tpu9"], "device 'tpu9'"),
                                                 (roofline.main, ["--shapes", "4by16"], "--shapes '4by16'"),
                                                 (hardware.main, ["--threads", "0"], "--threads 0"),
                                                 (roofline.main, ["--threads", "0"], "--threads 0")])
def test_cli_errors_are_one_line(main, argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    prog = "hinet.hardware" if main is hardware.main else "benchmarks.speed.roofline"
    assert len(err.splitlines()) == 1 and message in err and err.startswith(f"python -m {prog}: error:")


# ----------------------------------------------------------------------------------------------- hinet.fast
def test_inference_falls_back_on_avx2_and_runs_bf16_on_amx(avx2, monkeypatch):
    model, x = TwoStage(), torch.rand(1, 3, 8, 8)
    with pytest.warns(PrecisionFallbackWarning):
        runner = optimize_for_inference(model, dtype="bf16")
    assert runner.dtype is None and runner(x)[-1].dtype == torch.float32
    with pytest.raises(FastPathUnavailableError, match="dtype=bf16 on cpu"):
        optimize_for_inference(model, dtype="bf16", precision_policy="error")
    assert optimize_for_inference(model, dtype="bf16", precision_policy="force").dtype == torch.bfloat16
    fake_cpu(monkeypatch, AMX_XEON, "AVX512", {0, 1, 2, 3})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert optimize_for_inference(model, dtype=torch.bfloat16).dtype == torch.bfloat16


def test_training_step_runs_the_precision_resolved_for_the_device(avx2, monkeypatch):
    """The caller resolves the precision (hinet.hardware.resolve_precision); TrainStep runs what it is given."""
    model = TwoStage()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def loss(outputs, target):
        return sum((o - target).abs().mean() for o in outputs)

    with pytest.warns(PrecisionFallbackWarning):
        precision = hardware.resolve_precision("bf16", "cpu")
    assert precision == "fp32"
    step = TrainStep(model, loss, opt, grad_clip=1.0, precision=precision)
    assert step.dtype is None and step([(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))]).dtype == torch.float32
    with pytest.raises(PrecisionUnavailableError, match="float16"):
        hardware.resolve_precision("fp16", "cpu")
    with pytest.raises(PrecisionUnavailableError, match="dtype=bf16 on cpu"):
        hardware.resolve_precision("bf16", "cpu", "error")  # what the speed suite asks: never a silent fp32
    fake_cpu(monkeypatch, AMX_XEON, "AVX512", {0, 1, 2, 3})
    precision = hardware.resolve_precision("bf16", "cpu")
    assert TrainStep(model, loss, opt, grad_clip=1.0, precision=precision).dtype == torch.bfloat16
    assert TrainStep(model, loss, opt, grad_clip=1.0, precision="fp32").dtype is None  # an explicit fp32 stays fp32
