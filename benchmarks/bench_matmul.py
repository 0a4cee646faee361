"""fp32 matmul rate of this machine: the reference that the other benchmarks' "% of matmul" divides by.

    .venv/bin/python benchmarks/bench_matmul.py [--quick] [--out benchmarks/results_matmul.json]

torch.matmul of n×n float32 for 1 and 2 threads and n = 1024, 2048, 4096, warm, every variant timed
once per round in turn (interleaved, so slowly varying load hits all alike), median and best round.
Backends: the default (aten → MKL sgemm), oneDNN's fp32 matmul (mkldnn_linear on oneDNN tensors) and,
for reference only, bf16 inputs (not fp32). The machine's FMA peak is derived from a small C kernel
(16 independent AVX-512 FMA chains, compiled with the system `cc` if there is one) and a chain of
dependent integer adds that measures the clock (1 add per cycle).

Other scripts import the reference without running anything:

    sys.path.insert(0, str(Path(__file__).parent)); import bench_matmul; bench_matmul.matmul_reference(2)
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import os
import platform
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import torch

REF_N = 2048
SECONDS_PER_ROUND = 0.3  # per variant; n = 4096 runs once per round regardless


def gflops_rounds(fn, n: int, rounds: int, warmup: int = 2) -> list[float]:
    """GFLOP/s of `fn` (one n×n×n product per call) in each of `rounds` timed blocks."""
    for _ in range(warmup):
        fn()
    flop = 2 * n**3
    t0 = time.perf_counter()
    fn()
    reps = max(1, round(SECONDS_PER_ROUND / (time.perf_counter() - t0)))
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        out.append(flop * reps / (time.perf_counter() - t0) / 1e9)
    return out


def matmul_reference(threads: int, n: int = REF_N, rounds: int = 5) -> float:
    """Median fp32 GFLOP/s of torch.matmul (n×n, default backend) with `threads` threads; restores the thread count."""
    prev = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(n, n), torch.randn(n, n)
        return statistics.median(gflops_rounds(lambda: torch.matmul(a, b), n, rounds))
    finally:
        torch.set_num_threads(prev)


def backends(n: int) -> dict:
    """name → (callable computing one n×n product, max relative difference to the default fp32 result)."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
    ref = a @ b
    a_dnn, bt_dnn = a.to_mkldnn(), b.t().contiguous().to_mkldnn()
    a16, b16 = a.bfloat16(), b.bfloat16()
    fns = {
        "default (MKL)": lambda: torch.matmul(a, b),
        "oneDNN fp32": lambda: torch._C._nn.mkldnn_linear(a_dnn, bt_dnn),
        "bf16 inputs (not fp32)": lambda: torch.matmul(a16, b16),
    }
    return {k: (f, rel_diff(f(), ref)) for k, f in fns.items()}


def rel_diff(out: torch.Tensor, ref: torch.Tensor) -> float:
    """max |out − ref| / max |ref|."""
    out = out.to_dense() if out.is_mkldnn else out
    return ((out.float() - ref).abs().max() / ref.abs().max()).item()


def measure(sizes: list[int], thread_counts: list[int], rounds: int) -> list[dict]:
    """Every (backend, threads, n) once per round, interleaved; median and best GFLOP/s."""
    variants = {n: backends(n) for n in sizes}
    keys = [(name, th, n) for th in thread_counts for n in sizes for name in variants[n] if n == REF_N or "bf16" not in name]
    samples: dict[tuple, list[float]] = {k: [] for k in keys}
    for r in range(rounds):
        for name, th, n in keys:
            torch.set_num_threads(th)
            samples[(name, th, n)] += gflops_rounds(variants[n][name][0], n, 1, warmup=2 if r == 0 else 0)
    return [
        {
            "backend": name,
            "threads": th,
            "n": n,
            "gflops_median": statistics.median(samples[(name, th, n)]),
            "gflops_best": max(samples[(name, th, n)]),
            "rounds": samples[(name, th, n)],
            "max_rel_diff": variants[n][name][1],
        }
        for name, th, n in keys
    ]


PEAK_C = r"""
#include <immintrin.h>
#include <stdint.h>
uint64_t add_chain(uint64_t n) {  /* 8 dependent 1-cycle adds per iteration */
    uint64_t x = 0;
    for (uint64_t i = 0; i < n; i++)
        __asm__ volatile("add $1,%0\n\tadd $1,%0\n\tadd $1,%0\n\tadd $1,%0\n\tadd $1,%0\n\tadd $1,%0\n\tadd $1,%0\n\tadd $1,%0" : "+r"(x));
    return x;
}
float fma_chains(uint64_t n) {  /* 16 independent chains of 16-lane fp32 FMAs: 512 FLOPs per iteration */
    __m512 m = _mm512_set1_ps(1.0000001f), c = _mm512_set1_ps(1e-7f), a[16];
    for (int k = 0; k < 16; k++) a[k] = _mm512_set1_ps((float)k);
    for (uint64_t i = 0; i < n; i++)
        #pragma GCC unroll 16
        for (int k = 0; k < 16; k++) a[k] = _mm512_fmadd_ps(a[k], m, c);
    __m512 s = a[0];
    for (int k = 1; k < 16; k++) s = _mm512_add_ps(s, a[k]);
    return _mm512_reduce_add_ps(s);
}
"""


def load_peak_kernels() -> ctypes.CDLL | None:
    """Compile PEAK_C with the system C compiler; None where there is none or the CPU lacks AVX-512."""
    if "avx512f" not in cpu_flags():
        return None
    so = Path(tempfile.mkdtemp()) / "peak.so"
    src = so.with_suffix(".c")
    src.write_text(PEAK_C)
    try:
        subprocess.run(["cc", "-O3", "-mavx512f", "-shared", "-fPIC", str(src), "-o", str(so)], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    lib = ctypes.CDLL(str(so))
    lib.add_chain.argtypes, lib.add_chain.restype = [ctypes.c_uint64], ctypes.c_uint64
    lib.fma_chains.argtypes, lib.fma_chains.restype = [ctypes.c_uint64], ctypes.c_float
    return lib


def timed_parallel(fn, n: int, threads: int) -> float:
    """Wall seconds for `threads` Python threads each calling fn(n) (ctypes releases the GIL)."""
    ts = [threading.Thread(target=fn, args=(n,)) for _ in range(threads)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return time.perf_counter() - t0


def fma_peak(lib: ctypes.CDLL, thread_counts: list[int], rounds: int) -> dict:
    """Clock (GHz) and FMA GFLOP/s per thread count, measured side by side each round; FLOPs/cycle per core = per-round ratio."""
    n_add, n_fma = 50_000_000, 20_000_000
    ghz, peak = [], {th: [] for th in thread_counts}
    for _ in range(rounds):
        ghz.append(8 * n_add / timed_parallel(lib.add_chain, n_add, 1) / 1e9)
        for th in thread_counts:
            peak[th].append(th * 512 * n_fma / timed_parallel(lib.fma_chains, n_fma, th) / 1e9)
    return {
        "clock_ghz": {"median": statistics.median(ghz), "best": max(ghz)},
        "flops_per_cycle_per_core": statistics.median(p / g for p, g in zip(peak[1], ghz)),
        "fma_gflops": {str(th): {"median": statistics.median(v), "best": max(v)} for th, v in peak.items()},
    }


def cpu_flags() -> set[str]:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return next((set(line.split(":", 1)[1].split()) for line in text.splitlines() if line.startswith("flags")), set())


def machine() -> dict:
    """CPU model, ISA flags, nominal clock, torch's ISA and its BLAS / oneDNN build lines."""
    info = dict(line.split(":", 1) for line in Path("/proc/cpuinfo").read_text().splitlines() if ":" in line)
    info = {k.strip(): v.strip() for k, v in info.items()}
    flags = cpu_flags()
    config = torch.__config__.show().replace(", ", "\n").splitlines()
    return {
        "model_name": info.get("model name", platform.processor()),
        "cpu_family": info.get("cpu family"),
        "model": info.get("model"),
        "cpus": os.cpu_count(),
        "nominal_mhz": float(info.get("cpu MHz", "nan")),
        "flags": {f: f in flags for f in ("fma", "avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16")},
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "blas_lines": [
            ln.strip(" -") for ln in config if any(s in ln for s in ("Math Kernel", "MKL-DNN", "CPU capability", "BLAS_INFO", "USE_MKL"))
        ],
    }


def theoretical_peak(fma: dict | None, cores: int) -> dict:
    """cores × clock × fp32 FLOPs/cycle, both measured (the clock is the best round: the least contended)."""
    if fma is None:
        return {"gflops": None, "how": "not derived: no C compiler or no AVX-512 to measure FLOPs/cycle"}
    fpc, ghz = 2 ** round(math.log2(fma["flops_per_cycle_per_core"])), fma["clock_ghz"]["best"]  # SIMD widths × FMA units: a power of 2
    return {
        "gflops": cores * ghz * fpc,
        "flops_per_cycle": fpc,
        "ghz": ghz,
        "how": f"{cores} core(s) × {ghz:.2f} GHz × {fpc} fp32 FLOPs/cycle (clock: dependent-add chain, best round; "
        f"FLOPs/cycle: AVX-512 FMA kernel ÷ clock, median round, to a power of 2)",
    }


def table(rows: list[dict]) -> str:
    out = ["| backend | threads | n | GFLOP/s median | best | max rel. diff vs default |", "|---|---:|---:|---:|---:|---:|"]
    out += [
        f"| {r['backend']} | {r['threads']} | {r['n']} | {r['gflops_median']:.1f} | {r['gflops_best']:.1f} | {r['max_rel_diff']:.1e} |"
        for r in rows
    ]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="n = 1024, 2048 only, 3 rounds")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("results_matmul.json"))
    args = ap.parse_args()
    sizes, rounds, threads = ([1024, 2048], 3, [1, 2]) if args.quick else ([1024, 2048, 4096], 7, [1, 2])
    m = machine()
    lib = load_peak_kernels()
    fma = fma_peak(lib, threads, 3 if args.quick else 5) if lib else None
    rows = measure(sizes, threads, rounds)
    res = {
        "machine": m,
        "load_avg_start": os.getloadavg(),
        "rounds": rounds,
        "fma": fma,
        "theoretical_peak": {str(th): theoretical_peak(fma, th) for th in threads},
        "matmul": rows,
        "reference": {
            str(th): next(r["gflops_median"] for r in rows if r["backend"] == "default (MKL)" and r["threads"] == th and r["n"] == REF_N)
            for th in threads
        },
    }
    args.out.write_text(json.dumps(res, indent=1) + "\n")
    print(
        f"{m['model_name']} (family {m['cpu_family']} model {m['model']}), {m['cpus']} CPUs, torch {m['torch']}, ISA {m['cpu_capability']}"
    )
    print("flags:", ", ".join(f"{k}={'yes' if v else 'no'}" for k, v in m["flags"].items()))
    print("\n".join(m["blas_lines"]))
    if fma:
        print(
            f"clock {fma['clock_ghz']['median']:.2f} GHz [best {fma['clock_ghz']['best']:.2f}] (nominal {m['nominal_mhz'] / 1e3:.2f}), "
            f"{fma['flops_per_cycle_per_core']:.1f} fp32 FLOPs/cycle/core; FMA kernel "
            + ", ".join(f"{k} thr {v['median']:.0f} [{v['best']:.0f}] GFLOP/s" for k, v in fma["fma_gflops"].items())
        )
    for th, p in res["theoretical_peak"].items():
        print(f"theoretical peak, {th} thread(s): " + (f"{p['gflops']:.0f} GFLOP/s = {p['how']}" if p["gflops"] else p["how"]))
    print("\n" + table(rows))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
