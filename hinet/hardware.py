"""What the device is, and whether a reduced precision is fast on it.

Autocast to bfloat16 pays off only where the hardware multiplies bf16 natively: on x86 CPUs with
AVX512-BF16 or AMX-BF16 (oneDNN then runs bf16 convolutions faster than fp32), and on CUDA GPUs of compute
capability >= 8.0. On a CPU without them (e.g. AVX2 only) oneDNN has no native bf16 kernels and bf16
autocast is 10x or more *slower* than fp32 (measured on a 2-core AVX2 AMD EPYC with torch 2.14: a single
3x3 convolution at 1x32x256x256 took 6.5 s in bf16 against 94 ms in fp32). float16 autocast is a CUDA
feature here (tensor cores, capability >= 7.0); on the CPU it is refused.

* :func:`cpu_info` / :func:`cuda_info` / :func:`device_info`: a description of the device (CPU: torch's
  ``torch.backends.cpu.get_cpu_capability()``, the model name, the relevant ``/proc/cpuinfo`` flags,
  physical cores and logical CPUs available to this process, torch's intra-op threads, the clock the kernel
  reports; CUDA: name, compute capability, ``torch.cuda.is_bf16_supported()``).
* :func:`describe`: the same in one line, e.g. ``"CPU AMD EPYC, AVX2, no native bf16, 2 cores, 2 threads"``,
  for every speed record and the README.
* :func:`reduced_precision_ok`: ``(fast?, reason)`` for a device and a dtype.
* :func:`resolve_precision`: the precision to really run: the requested one where it is fast; where not,
  fp32 with one warning (``policy="warn"``), an error (``"error"``), or the requested one anyway
  (``"force"``). fp16 on a CPU is refused under every policy.

``python -m hinet.hardware`` prints the description and the decisions; ``--roofline`` measures the achieved
GFLOP/s of fp32 3x3 convolutions at HINet shapes against the CPU's theoretical peak (hand-written model:
cores x FMA units x SIMD lanes x 2 flops x clock; the FMA unit count is an assumption, 2 by default).
"""

from __future__ import annotations

import json
import os
import platform
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .errors import ArgumentParser, UserError, run_command

__all__ = [
    "CPUInfo",
    "CUDAInfo",
    "PRECISIONS",
    "POLICIES",
    "PrecisionFallbackWarning",
    "PrecisionUnavailableError",
    "cpu_info",
    "cuda_info",
    "describe",
    "device_info",
    "precision_dtype",
    "precision_name",
    "reduced_precision_ok",
    "resolve_precision",
    "theoretical_peak_gflops",
]

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}  # name -> autocast dtype (None: none)
POLICIES = ("warn", "error", "force")
CPUINFO = Path("/proc/cpuinfo")
# /proc/cpuinfo flags that decide the precision question or the SIMD width of the peak
RELEVANT_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_fp16",
                  "hypervisor")
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


class PrecisionUnavailableError(UserError, RuntimeError):
    """A requested reduced precision cannot run (fp16 on CPU) or would be slower (``policy="error"``)."""


class PrecisionFallbackWarning(UserWarning):
    """A reduced precision was requested where it is slower than fp32; fp32 runs instead."""


# ----------------------------------------------------------------------------------------------- description
def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


@dataclass(frozen=True)
class CPUInfo:
    """The CPU this process runs on.

    ``capability``: ``torch.backends.cpu.get_cpu_capability()`` (``"AVX2"``, ``"AVX512"``, ``"DEFAULT"``, ...),
    the widest kernels torch's own CPU code uses. ``flags``: those of :data:`RELEVANT_FLAGS` present in
    ``/proc/cpuinfo`` (sorted; empty where the file is absent: then torch's own checks fill the bf16 ones).
    ``cores``: physical cores among the logical CPUs this process may run on (``logical_cpus``);
    ``threads``: ``torch.get_num_threads()``. ``mhz``: the highest ``cpu MHz`` of those CPUs (the clock the
    kernel reports: current or nominal, never a boost guarantee), None where unknown.
    """

    model: str
    capability: str
    flags: tuple[str, ...]
    cores: int
    logical_cpus: int
    threads: int
    mhz: float | None

    @property
    def native_bf16(self) -> str | None:
        """``"AMX"`` / ``"AVX512-BF16"`` where the CPU multiplies bf16 natively, else None."""
        if "amx_bf16" in self.flags:
            return "AMX"
        if "avx512_bf16" in self.flags:
            return "AVX512-BF16"
        return None

    def describe(self) -> str:
        bf16 = f"bf16 {self.native_bf16}" if self.native_bf16 else "no native bf16"
        cores, threads = _count(self.cores, "core"), _count(self.threads, "thread")
        return f"CPU {self.model}, {self.capability}, {bf16}, {cores}, {threads}"


@dataclass(frozen=True)
class CUDAInfo:
    """One CUDA device: ``name``, compute ``capability`` (major, minor), ``bf16`` as
    ``torch.cuda.is_bf16_supported()`` says for it (emulation excluded where torch can tell), ``index``."""

    index: int
    name: str
    capability: tuple[int, int]
    bf16: bool

    def describe(self) -> str:
        major, minor = self.capability
        return f"CUDA {self.name} (sm_{major}{minor}{', bf16' if self.bf16 else ''})"


def _read_cpuinfo() -> str:
    """Text of /proc/cpuinfo, "" where there is none (macOS, Windows)."""
    try:
        return CPUINFO.read_text(errors="replace")
    except OSError:
        return ""


def _cpu_capability() -> str:
    return torch.backends.cpu.get_cpu_capability()


def _available_cpus() -> set[int] | None:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def _parse_cpuinfo(text: str, allowed: set[int] | None) -> list[dict[str, str]]:
    """One dict per logical CPU block of /proc/cpuinfo (keys as written), restricted to ``allowed``."""
    blocks = []
    for chunk in text.strip().split("\n\n"):
        fields = {}
        for line in chunk.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip()] = value.strip()
        if "processor" not in fields:
            continue
        try:
            number = int(fields["processor"])
        except ValueError:
            continue
        if allowed is None or number in allowed:
            blocks.append(fields)
    return blocks


def cpu_info() -> CPUInfo:
    """Describe this process's CPU (see :class:`CPUInfo`); reads /proc/cpuinfo where it exists."""
    allowed = _available_cpus()
    blocks = _parse_cpuinfo(_read_cpuinfo(), allowed)
    logical = len(blocks) or (len(allowed) if allowed else os.cpu_count() or 1)
    model = next((b["model name"] for b in blocks if b.get("model name")), "") or platform.processor() or "unknown"
    flag_words = set()
    for b in blocks:
        flag_words |= set((b.get("flags") or b.get("Features") or "").split())
    flags = {f for f in RELEVANT_FLAGS if f in flag_words}
    if not blocks:  # no /proc/cpuinfo: ask torch (private helpers, present in torch >= 2.1)
        for flag, check in (("avx512_bf16", "_is_avx512_bf16_supported"), ("amx_tile", "_is_amx_tile_supported")):
            if getattr(torch.cpu, check, lambda: False)():
                flags.add(flag)
        if "amx_tile" in flags:
            flags.add("amx_bf16")  # every AMX CPU so far (Sapphire Rapids on) has AMX-BF16
    cores = len({(b.get("physical id", "0"), b["core id"]) for b in blocks if "core id" in b}) or logical
    mhz_values = []
    for b in blocks:
        try:
            mhz_values.append(float(b["cpu MHz"]))
        except (KeyError, ValueError):
            pass
    return CPUInfo(model=" ".join(model.split()), capability=_cpu_capability(), flags=tuple(sorted(flags)),
                   cores=cores, logical_cpus=logical, threads=torch.get_num_threads(),
                   mhz=max(mhz_values) if mhz_values else None)


def cuda_info(device: torch.device | str | int | None = None) -> CUDAInfo:
    """Describe a CUDA device (default: the current one). Raises :class:`UserError` without CUDA."""
    if not torch.cuda.is_available():
        raise UserError(f"device {device}: CUDA is not available to this torch ({torch.__version__})")
    dev = torch.device("cuda", device) if isinstance(device, int) else torch.device(device or "cuda")
    index = dev.index if dev.index is not None else torch.cuda.current_device()
    with torch.cuda.device(index):
        try:
            bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
        except TypeError:  # older torch: no emulation flag
            bf16 = torch.cuda.is_bf16_supported()
    return CUDAInfo(index=index, name=torch.cuda.get_device_name(index),
                    capability=tuple(torch.cuda.get_device_capability(index)), bf16=bool(bf16))


def _as_device(device: torch.device | str | None) -> torch.device:
    if device is None:
        return torch.device("cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as err:  # torch lists every device type in its message: too long
        raise UserError(f"device {device!r}: not a torch device; expected e.g. cpu, cuda, cuda:1") from err


def device_info(device: torch.device | str | None = None) -> CPUInfo | CUDAInfo:
    """:class:`CPUInfo` for a CPU device (default), :class:`CUDAInfo` for a CUDA one."""
    dev = _as_device(device)
    if dev.type == "cuda":
        return cuda_info(dev)
    if dev.type != "cpu":
        raise UserError(f"device {dev}: only cpu and cuda devices are described")
    return cpu_info()


def describe(device: torch.device | str | None = None) -> str:
    """One line naming the device, e.g. ``"CPU AMD EPYC, AVX2, no native bf16, 2 cores, 2 threads"`` or
    ``"CUDA NVIDIA H100 80GB HBM3 (sm_90, bf16)"``; state it with every speed figure."""
    return device_info(device).describe()


# ----------------------------------------------------------------------------------------------- precision
def precision_name(dtype: torch.dtype | str | None) -> str:
    """``"fp32"``, ``"bf16"`` or ``"fp16"`` for a name or a torch dtype (None and float32 are fp32)."""
    if isinstance(dtype, str):
        if dtype not in PRECISIONS:
            raise ValueError(f"dtype={dtype!r}: expected one of {sorted(PRECISIONS)} or a torch dtype")
        return dtype
    for name, value in (("fp32", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16)):
        if dtype is value:
            return name
    if dtype is None:
        return "fp32"
    raise ValueError(f"dtype={dtype}: expected None/float32, torch.bfloat16 or torch.float16")


def precision_dtype(name: str) -> torch.dtype | None:
    """The autocast dtype of a precision name (None for fp32: no autocast)."""
    return PRECISIONS[precision_name(name)]


def reduced_precision_ok(device: torch.device | str | None, dtype: torch.dtype | str | None) -> tuple[bool, str]:
    """Whether autocast to ``dtype`` on ``device`` is expected to be faster than fp32, and why.

    fp32 is always ok. CPU: bf16 only with AMX-BF16 or AVX512-BF16 (flags of :func:`cpu_info`); fp16 never.
    CUDA: bf16 where ``torch.cuda.is_bf16_supported()`` (compute capability >= 8.0), fp16 from 7.0 (tensor
    cores). Other device types: no rule, never ok.
    """
    name = precision_name(dtype)
    dev = _as_device(device)
    if name == "fp32":
        return True, "fp32 needs no hardware support"
    if dev.type == "cpu":
        info = cpu_info()
        if name == "fp16":
            return False, (f"float16 autocast needs a CUDA device; {info.describe()} has no fast fp16 "
                           "convolutions (use bf16 or fp32)")
        if info.native_bf16:
            return True, f"{info.describe()}: oneDNN runs bf16 natively ({info.native_bf16})"
        return False, (f"{info.describe()}: no avx512_bf16/amx_bf16, so bf16 autocast has no native kernels and "
                       "is 10x or more slower than fp32")
    if dev.type == "cuda":
        info = cuda_info(dev)
        if name == "bf16":
            if info.bf16:
                return True, f"{info.describe()}: native bf16"
            return False, f"{info.describe()}: bf16 needs compute capability >= 8.0"
        if info.capability >= (7, 0):
            return True, f"{info.describe()}: fp16 tensor cores"
        return False, f"{info.describe()}: no fp16 tensor cores (compute capability < 7.0)"
    return False, f"device {dev}: no rule for reduced precision on {dev.type} devices"


_warned: set[tuple[str, str]] = set()  # (device, precision) pairs already warned about in this process


def resolve_precision(requested: torch.dtype | str | None, device: torch.device | str | None,
                      policy: str = "warn") -> str:
    """The precision to run (``"fp32"``/``"bf16"``/``"fp16"``) when ``requested`` is asked for on ``device``.

    Where :func:`reduced_precision_ok` says no: ``policy="warn"`` returns ``"fp32"`` and emits one
    :class:`PrecisionFallbackWarning` per (device, precision) and process; ``"error"`` raises
    :class:`PrecisionUnavailableError`; ``"force"`` returns the request (to measure how slow it is).
    fp16 on a CPU raises :class:`PrecisionUnavailableError` under every policy.
    """
    if policy not in POLICIES:
        raise ValueError(f"precision policy={policy!r}: expected one of {POLICIES}")
    name = precision_name(requested)
    dev = _as_device(device)
    if name == "fp32":
        return name
    if name == "fp16" and dev.type == "cpu":
        raise PrecisionUnavailableError(f"dtype=float16 autocast needs a CUDA device; the model is on {dev}. "
                                        "Use dtype=torch.bfloat16 on CPU or dtype=None")
    ok, reason = reduced_precision_ok(dev, name)
    if ok or policy == "force":
        return name
    if policy == "error":
        raise PrecisionUnavailableError(f"dtype={name} on {dev}: {reason}; use fp32, or precision policy "
                                        "'force' to run it anyway")
    key = (str(dev), name)
    if key not in _warned:
        _warned.add(key)
        warnings.warn(f"dtype={name} on {dev}: {reason}; running fp32 instead (precision policy 'force' runs "
                      f"{name} anyway, 'error' refuses)", PrecisionFallbackWarning, stacklevel=2)
    return "fp32"


# ----------------------------------------------------------------------------------------------- roofline
def simd_lanes_fp32(info: CPUInfo) -> int:
    """fp32 lanes of one vector FMA: 16 with AVX-512 (avx512f), 8 with AVX2/FMA, 4 otherwise (SSE)."""
    if "avx512f" in info.flags:
        return 16
    if "avx2" in info.flags or "fma" in info.flags:
        return 8
    return 4


def theoretical_peak_gflops(info: CPUInfo, *, fma_units: int = 2, mhz: float | None = None) -> float:
    """fp32 peak in GFLOP/s: cores x ``fma_units`` x lanes x 2 (multiply + add) x clock (``mhz``, default the
    reported ``cpu MHz``). Raises :class:`UserError` when no clock is known."""
    clock = info.mhz if mhz is None else mhz
    if not clock or clock <= 0:
        raise UserError("no CPU clock: /proc/cpuinfo has no 'cpu MHz'; pass --mhz")
    return info.cores * fma_units * simd_lanes_fp32(info) * 2 * clock / 1e3


def conv_gflop(batch: int, cin: int, cout: int, height: int, width: int, kernel: int = 3) -> float:
    """GFLOP of one 'same' convolution on an (N, Cin, H, W) input: 2 x N x Cout x H x W x Cin x k x k
    (multiply-adds counted as 2; the bias's N x Cout x H x W additions are left out)."""
    return 2 * batch * cout * height * width * cin * kernel * kernel / 1e9


def measure_conv(batch: int, cin: int, cout: int, size: int, *, dtype: torch.dtype | None = None,
                 min_run_time: float = 1.0) -> tuple[float, float]:
    """(median, fastest) seconds per call of one 3x3 convolution (bias, padding 1) on a random (N, Cin, size,
    size) fp32 input in [0, 1], under ``torch.inference_mode`` and optional CPU autocast to ``dtype``;
    ``torch.utils.benchmark`` blocks (the fastest block is the least disturbed on a shared machine)."""
    from torch.utils import benchmark

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch, cin, size, size, generator=gen)  # (N, Cin, H, W)
    conv = torch.nn.Conv2d(cin, cout, 3, padding=1).eval()
    amp = dtype is not None

    def run() -> None:
        with torch.inference_mode(), torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=amp):
            conv(x)

    run()  # oneDNN builds its kernel at the first call
    timer = benchmark.Timer(stmt="run()", globals={"run": run}, num_threads=torch.get_num_threads())
    measurement = timer.blocked_autorange(min_run_time=min_run_time)
    return measurement.median, min(measurement.times)


DEFAULT_SHAPES = ("32x256", "64x256", "64x128", "128x64")  # channels x side: HINet width 32, levels 1-3 at 256


def roofline(shapes: tuple[str, ...] = DEFAULT_SHAPES, *, fma_units: int = 2, mhz: float | None = None,
             bf16: bool = False, min_run_time: float = 1.0) -> list[dict]:
    """Measure each ``"CxS"`` shape (1 x C x S x S -> C channels, 3x3) and return one dict per shape:
    ``shape, gflop, seconds`` (median), ``gflops``, ``peak_gflops``, ``fraction`` (of the all-cores peak),
    ``thread_fraction`` (of the peak of the min(threads, cores) cores torch's threads can use), ``best_gflops``
    (the fastest block), and ``bf16_seconds``, ``bf16_speedup`` with ``bf16``."""
    info = cpu_info()
    peak = theoretical_peak_gflops(info, fma_units=fma_units, mhz=mhz)
    thread_peak = peak * min(info.threads, info.cores) / info.cores
    rows = []
    for shape in shapes:
        try:
            channels, side = (int(v) for v in shape.lower().split("x"))
        except ValueError:
            raise UserError(f"--shapes {shape!r}: expected CHANNELSxSIDE, e.g. 32x256") from None
        if channels < 1 or side < 1:
            raise UserError(f"--shapes {shape!r}: expected positive channels and side")
        seconds, fastest = measure_conv(1, channels, channels, side, min_run_time=min_run_time)
        gflop = conv_gflop(1, channels, channels, side, side)
        row = {"shape": f"1x{channels}x{side}x{side} -> {channels}", "gflop": gflop, "seconds": seconds,
               "gflops": gflop / seconds, "peak_gflops": peak, "fraction": gflop / seconds / peak,
               "thread_fraction": gflop / seconds / thread_peak, "best_gflops": gflop / fastest}
        if bf16:
            row["bf16_seconds"] = measure_conv(1, channels, channels, side, dtype=torch.bfloat16,
                                               min_run_time=min_run_time)[0]
            row["bf16_speedup"] = seconds / row["bf16_seconds"]
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog="python -m hinet.hardware", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--json", action="store_true", help="print the device description as JSON")
    p.add_argument("--roofline", action="store_true", help="measure fp32 3x3 convolution GFLOP/s against the peak")
    p.add_argument("--shapes", nargs="+", default=list(DEFAULT_SHAPES), help="CHANNELSxSIDE shapes to measure")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    p.add_argument("--fma-units", type=int, default=2, help="FMA units per core assumed in the peak")
    p.add_argument("--mhz", type=float, default=None, help="clock for the peak (default: /proc/cpuinfo cpu MHz)")
    p.add_argument("--bf16", action="store_true", help="with --roofline: also time bf16 autocast")
    p.add_argument("--min-run-time", type=float, default=1.0, help="seconds of timing per shape")
    p.add_argument("--debug", action="store_true", help="tracebacks for errors")
    a = p.parse_args(argv)

    def body() -> int:
        if a.threads is not None:
            if a.threads < 1:
                raise UserError(f"--threads {a.threads}: expected a positive count")
            torch.set_num_threads(a.threads)
        try:
            info = device_info(a.device)
        except UserError as err:  # "device cuda: ..." -> "--device cuda: ...": the option the user gave
            raise UserError(f"--{err}" if str(err).startswith("device ") else str(err)) from None
        if a.json:
            print(json.dumps({"describe": info.describe(), **asdict(info)}))
        else:
            print(info.describe())
            for name in ("bf16", "fp16"):
                ok, reason = reduced_precision_ok(a.device, name)
                print(f"  {name}: {'fast' if ok else 'not faster than fp32'}: {reason}")
        if not a.roofline:
            return 0
        if not isinstance(info, CPUInfo):
            raise UserError(f"--roofline measures the CPU only, not --device {a.device}")
        if a.fma_units < 1:
            raise UserError(f"--fma-units {a.fma_units}: expected a positive count")
        rows = roofline(tuple(a.shapes), fma_units=a.fma_units, mhz=a.mhz, bf16=a.bf16, min_run_time=a.min_run_time)
        clock = a.mhz if a.mhz is not None else info.mhz
        source = "--mhz" if a.mhz is not None else (
            f"/proc/cpuinfo 'cpu MHz', highest of the {info.logical_cpus} CPUs available; the kernel's "
            f"{'(hypervisor-reported) ' if 'hypervisor' in info.flags else ''}current/nominal clock, not boost")
        print(f"torch.backends.cpu.get_cpu_capability() = {info.capability}; torch {torch.__version__}; "
              f"{_count(torch.get_num_threads(), 'thread')}")
        print(f"peak fp32 = {info.cores} cores x {a.fma_units} FMA units x {simd_lanes_fp32(info)} lanes x 2 flops x "
              f"{clock:.1f} MHz ({source}) = {rows[0]['peak_gflops']:.1f} GFLOP/s")
        for r in rows:
            line = (f"  conv3x3 {r['shape']:<24} {r['gflop']:6.2f} GFLOP  {r['seconds'] * 1e3:8.2f} ms  "
                    f"{r['gflops']:7.1f} GFLOP/s  = {100 * r['fraction']:5.1f}% of peak")
            if info.threads < info.cores:
                line += f" ({100 * r['thread_fraction']:.1f}% of the peak of {_count(info.threads, 'core')})"
            line += f"; fastest block {r['best_gflops']:.1f} GFLOP/s"
            if "bf16_seconds" in r:
                line += f"  | bf16 autocast {r['bf16_seconds'] * 1e3:8.2f} ms ({r['bf16_speedup']:.2f}x fp32 speed)"
            print(line)
        thread_peak = rows[0]["peak_gflops"] * min(info.threads, info.cores) / info.cores
        if any(r["best_gflops"] > thread_peak for r in rows):
            print(f"note: a block ran above the computed peak of the threads' cores ({thread_peak:.1f} GFLOP/s): the "
                  f"cores ran faster than {clock:.0f} MHz (boost) or have more FMA throughput; give --mhz")
        return 0

    return run_command("python -m hinet.hardware", body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
