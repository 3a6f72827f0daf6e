"""Roofline of the CPU's convolutions: achieved GFLOP/s of fp32 3x3 convolutions at HINet shapes against the
CPU's theoretical peak.

The peak is a hand-written model: cores x FMA units x SIMD lanes x 2 flops x clock (the FMA unit count is an
assumption, 2 by default; the clock is the kernel's ``cpu MHz`` unless ``--mhz`` gives one). Part of the speed
suite, not of the product: the trainer needs only :mod:`hinet.hardware`'s description of the device.

``python -m benchmarks.speed.roofline`` prints the device description, the peak and one line per shape.
"""

from __future__ import annotations

import torch
from torch.utils import benchmark

from hinet.errors import ArgumentParser, UserError, run_command
from hinet.hardware import CPUInfo, count_noun, cpu_info, set_threads


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


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog="python -m benchmarks.speed.roofline", description=__doc__.split("\n\n")[0])
    p.add_argument("--shapes", nargs="+", default=list(DEFAULT_SHAPES), help="CHANNELSxSIDE shapes to measure")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    p.add_argument("--fma-units", type=int, default=2, help="FMA units per core assumed in the peak")
    p.add_argument("--mhz", type=float, default=None, help="clock for the peak (default: /proc/cpuinfo cpu MHz)")
    p.add_argument("--bf16", action="store_true", help="also time bf16 autocast")
    p.add_argument("--min-run-time", type=float, default=1.0, help="seconds of timing per shape")
    p.add_argument("--debug", action="store_true", help="tracebacks for errors")
    a = p.parse_args(argv)

    def body() -> int:
        set_threads(a.threads)
        if a.fma_units < 1:
            raise UserError(f"--fma-units {a.fma_units}: expected a positive count")
        info = cpu_info()
        print(info.describe())
        rows = roofline(tuple(a.shapes), fma_units=a.fma_units, mhz=a.mhz, bf16=a.bf16, min_run_time=a.min_run_time)
        clock = a.mhz if a.mhz is not None else info.mhz
        source = "--mhz" if a.mhz is not None else (
            f"/proc/cpuinfo 'cpu MHz', highest of the {info.logical_cpus} CPUs available; the kernel's "
            f"{'(hypervisor-reported) ' if 'hypervisor' in info.flags else ''}current/nominal clock, not boost")
        print(f"torch.backends.cpu.get_cpu_capability() = {info.capability}; torch {torch.__version__}; "
              f"{count_noun(torch.get_num_threads(), 'thread')}")
        print(f"peak fp32 = {info.cores} cores x {a.fma_units} FMA units x {simd_lanes_fp32(info)} lanes x 2 flops x "
              f"{clock:.1f} MHz ({source}) = {rows[0]['peak_gflops']:.1f} GFLOP/s")
        for r in rows:
            line = (f"  conv3x3 {r['shape']:<24} {r['gflop']:6.2f} GFLOP  {r['seconds'] * 1e3:8.2f} ms  "
                    f"{r['gflops']:7.1f} GFLOP/s  = {100 * r['fraction']:5.1f}% of peak")
            if info.threads < info.cores:
                line += f" ({100 * r['thread_fraction']:.1f}% of the peak of {count_noun(info.threads, 'core')})"
            line += f"; fastest block {r['best_gflops']:.1f} GFLOP/s"
            if "bf16_seconds" in r:
                line += f"  | bf16 autocast {r['bf16_seconds'] * 1e3:8.2f} ms ({r['bf16_speedup']:.2f}x fp32 speed)"
            print(line)
        thread_peak = rows[0]["peak_gflops"] * min(info.threads, info.cores) / info.cores
        if any(r["best_gflops"] > thread_peak for r in rows):
            print(f"note: a block ran above the computed peak of the threads' cores ({thread_peak:.1f} GFLOP/s): the "
                  f"cores ran faster than {clock:.0f} MHz (boost) or have more FMA throughput; give --mhz")
        return 0

    return run_command("python -m benchmarks.speed.roofline", body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
