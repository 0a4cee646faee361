"""Training-step benchmark: FLOPs, throughput vs this machine's matmul rate, Soft-HGR cost, data wait, jobs vs threads.

    .venv/bin/python benchmarks/bench_train.py [--quick] [--threads 2] [--device cpu|cuda] [--out benchmarks/results_train.json]

On a GPU (`--device cuda`) the step variants are eager fp32, bf16 autocast, torch.compile and both:
the measurements behind TrainConfig.amp / TrainConfig.compile (see benchmarks/README.md).

Every timing is the median of several rounds (the CPU may be shared; see benchmarks/README.md).
FLOPs are counted with torch.utils.flop_counter.FlopCounterMode: convolutions and matrix products
(forward + backward), not elementwise ops (BN, ReLU, the optimiser), so "achieved FLOP/s" is the
rate of useful matmul-like work, comparable to the matmul rate measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hgrlib.config import LossConfig, ModelConfig  # noqa: E402
from hgrlib.core.losses import joint_loss, soft_hgr  # noqa: E402
from hgrlib.core.models import EmotionModel  # noqa: E402
from hgrlib.core.train import Batcher  # noqa: E402
from hgrlib.data.featureset import FeatureSet  # noqa: E402

B, N_CLASSES, FRAMES, FACE = 64, 6, 3, 48
LOSS = LossConfig(lam=0.1)


DEVICE = torch.device("cpu")


def sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def timeit(fn, reps: int, rounds: int, warmup: int = 1) -> float:
    """Median over `rounds` of the mean seconds per call over `reps` calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(rounds):
        sync()
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        sync()
        out.append((time.perf_counter() - t0) / reps)
    return statistics.median(out)


def matmul_rate(n: int, reps: int, rounds: int) -> float:
    a, b = torch.randn(n, n, device=DEVICE), torch.randn(n, n, device=DEVICE)
    return 2 * n**3 / timeit(lambda: a @ b, reps, rounds)


def make_inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    a, v, y = (
        torch.randn(B, 1, 94, 64, generator=g),
        torch.randn(B, FRAMES, 3, FACE, FACE, generator=g),
        torch.randint(0, N_CLASSES, (B,), generator=g),
    )
    return a.to(DEVICE), v.to(DEVICE), y.to(DEVICE)


def nchw_weights(model: torch.nn.Module) -> None:
    """The 2-D convolutions' weights in the default NCHW layout, as the model had them before it chose channels-last."""
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.weight.data = m.weight.data.clone(memory_format=torch.contiguous_format)


def make_step(modalities: str, nchw: bool = False, compile: bool = False, amp: str = "off"):
    """One training step as train.py takes it (autocast on the networks only, losses in fp32), and a fwd+bwd to count FLOPs."""
    from hgrlib.core.runtime import autocast

    torch.manual_seed(0)
    model = EmotionModel(N_CLASSES, 1, FRAMES, ModelConfig(modalities=modalities)).to(DEVICE).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    a, v, y = make_inputs()
    if nchw:
        nchw_weights(model)
    a_in = a if "a" in modalities else None
    v_in = v if "v" in modalities else None
    lab = torch.ones(B, dtype=torch.bool, device=DEVICE)
    forward = torch.compile(model) if compile else model

    def loss_of(fwd):
        with autocast(DEVICE, amp):
            out = fwd(a_in, v_in, y)
        return joint_loss({k: x.float() for k, x in out.items()}, y, lab, LOSS)[0]

    def step():
        loss = loss_of(forward)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def fwd_bwd():
        loss_of(model).backward()

    return step, fwd_bwd


def count_flops(fwd_bwd) -> int:
    with FlopCounterMode(display=False) as fc:
        fwd_bwd()
    return fc.get_total_flops()


def hgr_terms(d: int, n: int):
    """The joint loss's three Soft-HGR terms (f,g), (f,h), (g,h) on (n, d) leaves: forward + backward."""
    g = torch.Generator().manual_seed(1)
    f, gg, h = (torch.randn(n, d, generator=g).to(DEVICE).requires_grad_() for _ in range(3))

    def run():
        loss = -LOSS.lam * (soft_hgr(f, gg) + soft_hgr(f, h) + soft_hgr(gg, h))
        loss.backward()

    return run


def soft_hgr_loop(f: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Unbatched baseline: the same statistics accumulated one sample at a time in Python."""
    n = f.shape[0]
    mf, mg = sum(f[i] for i in range(n)) / n, sum(g[i] for i in range(n)) / n
    inner, cf, cg = 0.0, 0.0, 0.0
    for i in range(n):
        fi, gi = f[i] - mf, g[i] - mg
        inner = inner + fi @ gi
        cf = cf + torch.outer(fi, fi)
        cg = cg + torch.outer(gi, gi)
    return inner / n - 0.5 * ((cf / (n - 1)) * (cg / (n - 1))).sum()


def hgr_fb(fn, n: int, d: int):
    g = torch.Generator().manual_seed(2)
    f, gg = (torch.randn(n, d, generator=g).to(DEVICE).requires_grad_() for _ in range(2))

    def run():
        fn(f, gg).backward()

    return run


def data_wait(step, n_clips: int, rounds: int):
    """Time for Batcher to assemble a batch of 64 segments from cached in-memory arrays vs one step."""
    r = np.random.default_rng(0)
    fs = FeatureSet(
        clip_ids=[str(i) for i in range(n_clips)],
        subjects=["01"] * n_clips,
        labels=r.integers(0, 6, n_clips),
        classes=tuple("abcdef"),
        audio=r.normal(size=(n_clips, 6, 1, 94, 64)).astype(np.float16),
        faces=r.integers(0, 256, (n_clips, 6, FRAMES, FACE, FACE, 3), dtype=np.uint8),
        dataset="synthetic",
    )
    train_idx = np.arange(n_clips * 6)
    batcher = Batcher(fs, train_idx, DEVICE)
    order = r.permutation(train_idx)
    k = [0]

    def get():
        i = k[0] % (len(order) // B)
        k[0] += 1
        batcher(order[i * B : (i + 1) * B])

    return timeit(get, 10, rounds)


def step_worker(threads: int, steps: int) -> None:
    """Child process of section (e): time `steps` training steps with `threads` threads, print ms/step."""
    torch.set_num_threads(threads)
    step, _ = make_step("av")
    for _ in range(3):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    print(json.dumps({"ms_per_step": (time.perf_counter() - t0) / steps * 1e3}))


def jobs_vs_threads(cores: int, steps: int) -> dict:
    """Throughput of one process with `cores` threads against `cores` one-thread processes side by side."""

    def launch(threads: int, n: int) -> list[float]:
        cmd = [sys.executable, __file__, "--_worker", str(threads), "--_steps", str(steps)]
        procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(n)]
        return [json.loads(p.communicate()[0].strip().splitlines()[-1])["ms_per_step"] for p in procs]

    one = launch(cores, 1)[0]
    many = launch(1, cores)
    rate_one, rate_many = B / one * 1e3, sum(B / m * 1e3 for m in many)
    return {
        "cores": cores,
        "one_process_ms_per_step": one,
        "per_process_ms_per_step": many,
        "samples_per_s_one_process": rate_one,
        "samples_per_s_parallel": rate_many,
        "speedup": rate_many / rate_one,
    }


def main() -> None:
    global DEVICE
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--out", default=None, help="default: results_train.json (cpu) or results_train_cuda.json beside this file")
    ap.add_argument("--_worker", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--_steps", type=int, default=20, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._worker:
        return step_worker(args._worker, args._steps)
    DEVICE = torch.device(args.device)
    if DEVICE.type == "cuda" and not torch.cuda.is_available():
        sys.exit("bench_train.py: --device cuda asked for, but no CUDA device is available")
    out_file = args.out or str(Path(__file__).with_name("results_train.json" if DEVICE.type == "cpu" else "results_train_cuda.json"))
    torch.set_num_threads(args.threads)
    rounds = 3 if args.quick else 7
    steps = 3 if args.quick else 8
    if DEVICE.type == "cuda":
        steps *= 10
    res: dict = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "torch": torch.__version__,
            "device": torch.cuda.get_device_name() if DEVICE.type == "cuda" else "cpu",
            "threads": torch.get_num_threads(),
            "quick": args.quick,
            "rounds": rounds,
            "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "note": "medians over rounds",
        }
    }
    print(
        f"torch {torch.__version__}, device {res['machine']['device']}, {torch.get_num_threads()} threads, medians of {rounds} rounds, "
        f"load average {res['machine']['load_average_at_start']}"
    )

    # (a) matmul rate
    big = 8192 if DEVICE.type == "cuda" else 2048
    mm = {n: matmul_rate(n, r, rounds) for n, r in ((big, 2 if args.quick else 4), (512, 40))}
    res["matmul_gflops"] = {str(n): v / 1e9 for n, v in mm.items()}
    peak = mm[big]
    print(f"\n(a) fp32 matmul: n={big} {mm[big] / 1e9:.1f} GFLOP/s, n=512 {mm[512] / 1e9:.1f} GFLOP/s")

    # (b) model steps: variants interleaved round by round, each round next to its own matmul timing, so that
    # slowly varying contention hits all of them alike; the ratio to the matmul rate is taken per round
    print(
        f"\n(b) training step, batch {B} (forward, joint loss lam={LOSS.lam}, backward, AdamW); "
        f"median [best] over rounds, ratio per round to the matmul rate measured beside it"
    )
    # (model, variant, NCHW conv weights, flush_denormal, compile, amp); the baseline is the model as built (channels-last weights)
    if DEVICE.type == "cpu":
        variants = [
            ("av", "baseline", False, False, False, "off"),
            ("av", "NCHW weights (before)", True, False, False, "off"),
            ("av", "flush_denormal", False, True, False, "off"),
            ("av", "bf16 autocast", False, False, False, "bf16"),
            ("av", "torch.compile", False, False, True, "off"),
            ("a", "baseline", False, False, False, "off"),
            ("v", "baseline", False, False, False, "off"),
        ]
    else:
        variants = [
            ("av", "baseline", False, False, False, "off"),
            ("av", "bf16 autocast", False, False, False, "bf16"),
            ("av", "torch.compile", False, False, True, "off"),
            ("av", "compile + bf16", False, False, True, "bf16"),
            ("av", "NCHW weights (before)", True, False, False, "off"),
        ]
    built = []
    for mod, name, cl, fd, comp, amp in variants:
        step, fwd_bwd = make_step(mod, cl, comp, amp)
        flops = count_flops(fwd_bwd)
        torch.set_flush_denormal(fd)
        t0 = time.perf_counter()
        for _ in range(3):
            step()  # warm-up (compiles)
        sync()
        warm = time.perf_counter() - t0
        built.append((mod, name, fd, step, flops, warm, [], []))
    a2, b2 = torch.randn(big, big, device=DEVICE), torch.randn(big, big, device=DEVICE)
    for _ in range(rounds):
        for mod, name, fd, step, flops, warm, ts, ratios in built:
            torch.set_flush_denormal(fd)
            sync()
            t0 = time.perf_counter()
            a2 @ b2
            sync()
            t_mm = time.perf_counter() - t0
            t0 = time.perf_counter()
            for _ in range(steps):
                step()
            sync()
            t = (time.perf_counter() - t0) / steps
            ts.append(t)
            ratios.append((flops / t) / (2 * big**3 / t_mm))
    torch.set_flush_denormal(False)
    print(f"{'model':<6}{'variant':<24}{'GFLOP/sample':>13}{'ms/step':>16}{'samples/s':>11}{'GFLOP/s':>9}{'% matmul':>16}{'warm-up s':>11}")
    rows = []
    for mod, name, fd, step, flops, warm, ts, ratios in built:
        t, tmin, q = statistics.median(ts), min(ts), statistics.median(ratios)
        row = {
            "model": mod,
            "variant": name,
            "flops_per_sample": flops / B,
            "ms_per_step": t * 1e3,
            "ms_per_step_best": tmin * 1e3,
            "samples_per_s": B / t,
            "samples_per_s_best": B / tmin,
            "gflops": flops / t / 1e9,
            "frac_of_matmul": q,
            "frac_of_matmul_best": max(ratios),
            "frac_vs_run_matmul": flops / t / peak,
            "warmup_s_3_steps": warm,
        }
        rows.append(row)
        print(
            f"{mod:<6}{name:<24}{flops / B / 1e9:>13.4f}{t * 1e3:>9.1f} [{tmin * 1e3:>4.0f}]{B / t:>11.1f}{flops / t / 1e9:>9.1f}"
            f"{100 * q:>8.1f}% [{100 * max(ratios):.0f}%]{warm:>11.1f}"
        )
    res["steps"] = rows
    base = next(r for r in rows if r["model"] == "av" and r["variant"] == "baseline")
    best = max((r for r in rows if r["model"] == "av"), key=lambda r: r["frac_of_matmul"])
    res["goal_30pct_matmul"] = {
        "baseline_frac": base["frac_of_matmul"],
        "best_variant": best["variant"],
        "best_frac": best["frac_of_matmul"],
        "met": best["frac_of_matmul"] >= 0.30,
    }

    # (c) Soft-HGR share and scaling
    t_hgr = timeit(hgr_terms(64, B), 20, rounds, warmup=3)
    share = t_hgr / (base["ms_per_step"] / 1e3)
    res["hgr_share"] = {"ms_three_terms": t_hgr * 1e3, "ms_step": base["ms_per_step"], "share": share, "met_lt_3pct": share < 0.03}
    print(f"\n(c) Soft-HGR: three terms (d=64, batch {B}) fwd+bwd {t_hgr * 1e3:.3f} ms = {100 * share:.2f}% of the av step (goal < 3%)")
    print(f"{'batch':>6}{'dim':>6}{'batched ms':>12}{'loop ms':>10}{'loop/batched':>14}")
    scaling = []
    grid = [(n, 64) for n in (32, 64, 128, 256, 512, 1024)] + [(256, d) for d in (16, 32, 128, 256, 512)]
    for n, d in grid:
        tb = timeit(hgr_fb(soft_hgr, n, d), 10, rounds, warmup=2)
        tl = timeit(hgr_fb(soft_hgr_loop, n, d), 1, max(1, rounds // 2 if n * d > 65536 else rounds), warmup=1)
        scaling.append({"batch": n, "dim": d, "batched_ms": tb * 1e3, "loop_ms": tl * 1e3, "loop_over_batched": tl / tb})
        print(f"{n:>6}{d:>6}{tb * 1e3:>12.3f}{tl * 1e3:>10.1f}{tl / tb:>14.0f}")
    res["hgr_scaling"] = scaling

    # (d) data wait
    step, _ = make_step("av")
    t_step = timeit(step, steps, rounds, warmup=1)
    t_batch = data_wait(step, 240 if args.quick else 720, rounds)
    res["data_wait"] = {"ms_batch": t_batch * 1e3, "ms_step": t_step * 1e3, "wait_frac": t_batch / (t_batch + t_step)}
    print(
        f"\n(d) Batcher (cached in-memory arrays) {t_batch * 1e3:.2f} ms/batch vs step {t_step * 1e3:.1f} ms: "
        f"the loop waits {100 * t_batch / (t_batch + t_step):.1f}% of its time for data (synchronous, not overlapped)"
    )

    # (e) on the CPU: one process with every core's thread against one single-thread process per core (run_all.sh -j)
    if DEVICE.type == "cpu" and args.threads > 1:
        jt = jobs_vs_threads(args.threads, 10 if args.quick else 30)
        res["jobs_vs_threads"] = jt
        print(
            f"\n(e) 1 process x {jt['cores']} threads: {jt['samples_per_s_one_process']:.0f} samples/s; {jt['cores']} processes x 1 thread: "
            f"{jt['samples_per_s_parallel']:.0f} samples/s in all ({jt['speedup']:.2f}x)"
        )
    Path(out_file).write_text(json.dumps(res, indent=2))
    print(f"\nwrote {out_file}")


if __name__ == "__main__":
    main()
