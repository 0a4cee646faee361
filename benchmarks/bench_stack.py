"""Stacked training (hgrlib.core.stacked: torch.func stacks) against runs trained alone: samples/s and share of the matmul rate.

    .venv/bin/python benchmarks/bench_stack.py [--quick] [--device cpu|cuda] [--ks 1 2 4 8 16] [--out FILE]

A step is what training takes per batch: forward, the joint loss (λ = 0.1) of every member, backward and
AdamW (torch's, one per run or member), default profile model, batch 64 per member.

On the CPU every variant runs as one process per core, side by side, each with one thread (how
`./run_all.sh` trains: `-j` = cores), and the samples/s of all processes are added; stacks are also run as
one process with every core's threads. The matmul reference is measured the same way beside them (one
single-thread 2048×2048 fp32 matmul loop per core, side by side), so "% of matmul" is per core. Variants are
interleaved round by round; medians over rounds. On a GPU: one process, the same variants, and a
fp32 matmul (n = 8192) as the reference.
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

import bench_train as bt  # the solo step, its inputs, the FLOP count and sync: one copy, in bench_train.py
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hgrlib.config import ModelConfig  # noqa: E402
from hgrlib.core.losses import joint_loss  # noqa: E402
from hgrlib.core.models import EmotionModel  # noqa: E402
from hgrlib.core.runtime import keep_freed_memory  # noqa: E402
from hgrlib.core.stacked import ModelStack  # noqa: E402

B = bt.B


def stack_step(k: int):
    """One step of a stack of k members on bt.DEVICE (train.train_one_epoch's work for one batch of a
    ModelStack: EmotionModel's forward vmapped through torch.func, each member's loss, one backward, each
    member's torch AdamW): member i on bt.make_inputs(i), so member 0 trains on the solo step's batch."""
    device = bt.DEVICE
    torch.manual_seed(0)
    models = [EmotionModel(bt.N_CLASSES, 1, bt.FRAMES, ModelConfig()).to(device) for _ in range(k)]
    stack = ModelStack(models, [torch.Generator(device=device).manual_seed(i) for i in range(k)])
    opts = [torch.optim.AdamW(stack.member_parameters(i), lr=1e-3, weight_decay=1e-4) for i in range(k)]
    inputs = [bt.make_inputs(i) for i in range(k)]
    lab = torch.ones(B, dtype=torch.bool, device=device)

    def step():
        outs = stack(inputs)
        losses = [joint_loss(o, y, lab, bt.LOSS)[0] for o, (_, _, y) in zip(outs, inputs)]
        for o in opts:
            o.zero_grad(set_to_none=True)
        stack.backward(losses, outs)
        for o in opts:
            o.step()

    return step


def measure(variant: str, device: torch.device, steps: int) -> dict:
    """Seconds per step of `variant` ("solo", "stack<K>" or "matmul"; "+keep": with runtime.keep_freed_memory, as
    training runs now) after warm-up, and samples (or FLOPs) per s."""
    bt.DEVICE = device
    variant, keep = variant.removesuffix("+keep"), variant.endswith("+keep")
    if keep:
        keep_freed_memory()
    if variant == "matmul":
        n = 8192 if device.type == "cuda" else 2048
        x, w = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
        step, per_step = (lambda: x @ w), 2 * n**3
    else:
        k = 1 if variant == "solo" else int(variant.removeprefix("stack"))
        step = bt.make_step("av")[0] if variant == "solo" else stack_step(k)
        per_step = k * B
    for _ in range(3):
        step()
    bt.sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    bt.sync()
    s = (time.perf_counter() - t0) / steps
    return {"s_per_step": s, "rate": per_step / s}


def side_by_side(variant: str, procs: int, threads: int, steps: int) -> float:
    """Summed rate of `procs` processes running `variant` at once with `threads` threads each."""
    cmd = [sys.executable, __file__, "--_worker", variant, "--_threads", str(threads), "--_steps", str(steps)]
    ps = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(procs)]
    return sum(json.loads(p.communicate()[0].strip().splitlines()[-1])["rate"] for p in ps)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--ks", type=int, nargs="+", default=None, help="stack sizes (default 1 2 4 8 16; on a GPU up to 64)")
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", default=None, help="default: results_stack.json (cpu) or results_stack_cuda.json beside this file")
    ap.add_argument("--_worker", default="", help=argparse.SUPPRESS)
    ap.add_argument("--_threads", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--_steps", type=int, default=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    device = torch.device(args.device)
    if args._worker:
        torch.set_num_threads(args._threads)
        print(json.dumps(measure(args._worker, device, args._steps)))
        return
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("bench_stack.py: --device cuda asked for, but no CUDA device is available")
    ks = args.ks or ([1, 2, 4, 8, 16] if device.type == "cpu" else [1, 2, 4, 8, 16, 32, 64])
    rounds = 3 if args.quick else 5
    bt.DEVICE = device
    fps = bt.count_flops(bt.make_step("av")[1]) / B  # convolution and matmul FLOPs per sample, fwd + bwd
    cpu = device.type == "cpu"
    # (variant, processes, threads each); on a GPU one process
    # "solo": runs alone as before keep_freed_memory; "+keep": as training runs now
    plan = [("solo", args.cores, 1), ("solo+keep", args.cores, 1)] + [(f"stack{k}+keep", args.cores, 1) for k in ks]
    if cpu and args.cores > 1:
        plan += [("solo+keep", 1, args.cores)] + [(f"stack{k}+keep", 1, args.cores) for k in ks if k >= 4]
    if not cpu:
        plan = [(v, 1, 1) for v, _, _ in plan]
        torch.backends.cudnn.benchmark = False  # as training runs (no autotuning per shape)
    rates: dict = {p: [] for p in plan}
    ref: list[float] = []
    size = lambda v: 1 if v.startswith("solo") else int(v[5:].removesuffix("+keep"))  # noqa: E731
    steps = lambda v: max(2 if cpu else 20, (10 if cpu else 100) // max(1, size(v) // 2))  # noqa: E731
    for r in range(rounds):
        ref.append(side_by_side("matmul", args.cores, 1, 10) if cpu else measure("matmul", device, 10)["rate"])
        for v, procs, threads in plan:
            rates[(v, procs, threads)].append(side_by_side(v, procs, threads, steps(v)) if cpu else measure(v, device, steps(v))["rate"])
        print(f"round {r + 1}/{rounds} done", file=sys.stderr)
    mm = statistics.median(ref)
    res = {
        "machine": {
            "platform": platform.platform(),
            "torch": torch.__version__,
            "device": torch.cuda.get_device_name() if not cpu else "cpu",
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "cores": args.cores,
            "rounds": rounds,
            "load_average_at_start": list(os.getloadavg()),
        },
        "flops_per_sample": fps,
        "matmul_gflops": mm / 1e9,
        "matmul_reference": "one 1-thread 2048x2048 fp32 matmul loop per core, side by side (summed)" if cpu else "fp32 8192^3",
        "variants": [],
    }
    solo = statistics.median(rates[plan[0]])
    print(f"\n{'variant':<14}{'processes x threads':>20}{'samples/s':>11}{'[best]':>8}{'vs solo':>9}{'% matmul':>10}")
    for (v, procs, threads), rs in rates.items():
        m = statistics.median(rs)
        row = {
            "variant": v,
            "processes": procs,
            "threads": threads,
            "samples_per_s": m,
            "samples_per_s_best": max(rs),
            "samples_per_s_per_core": m / (args.cores if cpu else 1),
            "vs_solo": m / solo,
            "frac_of_matmul": m * fps / mm,
        }
        res["variants"].append(row)
        print(f"{v:<14}{f'{procs} x {threads}':>20}{m:>11.0f}{max(rs):>8.0f}{m / solo:>8.2f}x{100 * m * fps / mm:>9.1f}%")
    print(f"\nmatmul reference: {mm / 1e9:.1f} GFLOP/s ({res['matmul_reference']}); {fps / 1e9:.4f} GFLOP per sample")
    out = args.out or str(Path(__file__).with_name("results_stack.json" if cpu else "results_stack_cuda.json"))
    Path(out).write_text(json.dumps(res, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
