"""What the device is, and whether a reduced precision is fast on it.

Autocast to bfloat16 pays off only where the hardware multiplies bf16 natively: on x86 CPUs with
AVX512-BF16 or AMX-BF16 (oneDNN then runs bf16 convolutions faster than fp32), and on CUDA GPUs of compute
capability >= 8.0. On a CPU without them (e.g. AVX2 only) oneDNN has no native bf16 kernels and bf16
autocast is many times *slower* than fp32 (the README's speed section states by how much). float16
autocast is a CUDA feature here (tensor cores, capability >= 7.0); on the CPU it is refused.

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

``python -m hinet.hardware`` prints the description and the decisions (the roofline of the CPU's convolutions
is measured by the speed suite: ``python -m benchmarks.speed.roofline``).
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
    "device_fields",
    "device_info",
    "precision_dtype",
    "precision_name",
    "reduced_precision_ok",
    "resolve_precision",
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
def count_noun(n: int, noun: str) -> str:
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
        cores, threads = count_noun(self.cores, "core"), count_noun(self.threads, "thread")
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


def device_fields(device: torch.device | str | None = None) -> dict[str, str | int]:
    """The description a speed figure is stored with: ``hardware`` (:func:`describe`), ``cpu_capability``
    (torch's, e.g. ``AVX2``), on CUDA ``gpu`` (model and compute capability, e.g. ``"NVIDIA H100 (sm_90)"``),
    ``torch_threads``, ``cpu`` (model name) and ``cpu_count`` (logical CPUs of the machine). Call it while the
    thread setting to state is in force: ``hardware`` names the thread count."""
    dev = _as_device(device)
    out: dict[str, str | int] = {"hardware": describe(dev), "cpu_capability": _cpu_capability()}
    if dev.type == "cuda":
        gpu = cuda_info(dev)
        out["gpu"] = f"{gpu.name} (sm_{gpu.capability[0]}{gpu.capability[1]})"
    return {**out, "torch_threads": torch.get_num_threads(), "cpu": cpu_info().model,
            "cpu_count": os.cpu_count() or 1}


# ----------------------------------------------------------------------------------------------- precision
def precision_name(dtype: torch.dtype | str | None) -> str:
    """``"fp32"``, ``"bf16"`` or ``"fp16"`` for a name or a torch dtype (None and float32 are fp32)."""
    if isinstance(dtype, str):
        if dtype not in PRECISIONS:
            raise ValueError(f"dtype={dtype!r}: expected one of {sorted(PRECISIONS)} or a torch dtype")
        return dtype
    if dtype is torch.float32:
        return "fp32"
    for name, value in PRECISIONS.items():
        if dtype is value:
            return name
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


# ----------------------------------------------------------------------------------------------- CLI
def set_threads(threads: int | None) -> None:
    """``--threads N``: torch's intra-op threads (None: leave torch's default); a count below 1 is a user error."""
    if threads is None:
        return
    if threads < 1:
        raise UserError(f"--threads {threads}: expected a positive count")
    torch.set_num_threads(threads)


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog="python -m hinet.hardware", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--json", action="store_true", help="print the device description as JSON")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    p.add_argument("--debug", action="store_true", help="tracebacks for errors")
    a = p.parse_args(argv)

    def body() -> int:
        set_threads(a.threads)
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
        return 0

    return run_command("python -m hinet.hardware", body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
