"""Milliseconds per training step of the default model: eager, graphed (train.graph), stacked (K members),
against the device's fp32 matmul rate (a timed large matmul), with the step's FLOPs (forward + backward,
torch's FlopCounterMode) so each variant's share of that rate shows.

    python benchmarks/bench_step.py [--device cuda] [--quick] [--ks 1 4 16 64] [--out FILE]

Variants (batch 64 per run or member, λ = 0.1, hgr):
  eager       what hgrlib.core.train.train_one_epoch does per step for a run alone: forward, joint_loss (its host
              syncs), backward, the host's finiteness checks, torch's AdamW;
  graphed     hgrlib.core.graphed: forward, loss, backward and the device's non-finite flag replayed from a CUDA
              graph, a fused AdamW told `found_inf`; no host sync. On the CPU the same code without a graph
              ("device_checks": what the graph would replay, run eagerly);
  stacked_K   hgrlib.core.stacked.ModelStack of K members, one step for all K (eager: a stack is not captured in a
              graph yet, so "graphed and stacked" is not measured); ms per step and per member-step.
`--quick`: a batch of 8, K = 1, 2, a 512 matmul, a few steps: the CPU check that the script runs (tests).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_stack  # noqa: E402
import bench_train as bt  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import hgrlib.core.graphed as graphed  # noqa: E402
from hgrlib.config import ModelConfig  # noqa: E402
from hgrlib.core.losses import joint_loss  # noqa: E402
from hgrlib.core.models import EmotionModel  # noqa: E402
from hgrlib.core.train import grads_finite  # noqa: E402


def _model():
    torch.manual_seed(0)
    return EmotionModel(bt.N_CLASSES, 1, bt.FRAMES, ModelConfig()).to(bt.DEVICE).train()


def eager_step():
    model = _model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    a, v, y = bt.make_inputs()
    lab = torch.ones(bt.B, dtype=torch.bool, device=bt.DEVICE)

    def step():
        out = model(a, v, y)
        loss, _ = joint_loss({k: x.float() for k, x in out.items()}, y, lab, bt.LOSS)
        opt.zero_grad(set_to_none=True)
        if bool(torch.isfinite(loss)):
            loss.backward()
        if grads_finite(model.parameters()):
            opt.step()

    def fwd_bwd():
        out = model(a, v, y)
        joint_loss({k: x.float() for k, x in out.items()}, y, lab, bt.LOSS)[0].backward()

    return step, fwd_bwd


def graphed_step():
    model = _model()
    opt = graphed.fused_adamw(model.parameters(), 1e-3, 1e-4)
    a, v, y = bt.make_inputs()
    g = graphed.GraphedStep(model, bt.LOSS, bt.B, graph=bt.DEVICE.type == "cuda")
    nonfinite = torch.zeros((), device=bt.DEVICE)

    def step():
        _, _, bad = g(a, v, y)
        opt.found_inf = bad
        opt.step()
        nonfinite.add_(bad)

    return step


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--ks", type=int, nargs="+", default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    bt.DEVICE = torch.device(args.device)
    if args.quick:
        bt.B = bench_stack.B = 8
    ks = args.ks or ([1, 2] if args.quick else [1, 4, 16, 64])
    reps, rounds = (2, 2) if args.quick else (20, 5)
    n = 512 if args.quick else (8192 if args.device == "cuda" else 2048)
    rate = bt.matmul_rate(n, 2 if args.quick else 10, rounds)
    step, fwd_bwd = eager_step()
    flops = bt.count_flops(fwd_bwd)
    res = {
        "device": torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "batch": bt.B,
        "matmul_n": n,
        "matmul_flops_per_s": rate,
        "step_flops": flops,
        "variants": [],
    }

    def record(name: str, fn, members: int = 1) -> None:
        s = bt.timeit(fn, reps, rounds, warmup=4)  # the graph is captured on the 4th call
        v = {"variant": name, "members": members, "ms_per_step": 1e3 * s, "ms_per_member_step": 1e3 * s / members}
        v["share_of_matmul"] = members * flops / s / rate
        res["variants"].append(v)
        print(
            f"{name:>14}: {v['ms_per_step']:9.2f} ms/step  {v['ms_per_member_step']:8.2f} ms/member  {100 * v['share_of_matmul']:5.1f}% of matmul"
        )

    print(f"{res['device']}: fp32 matmul {rate / 1e12:.2f} TFLOP/s (n={n}); a step {flops / 1e9:.2f} GFLOP (batch {bt.B})")
    record("eager", step)
    record("graphed" if args.device == "cuda" else "device_checks", graphed_step())
    for k in ks:
        record(f"stacked_{k}", bench_stack.stack_step(k), k)
    res["graphed_stacked"] = "not measured: a stack is not captured in a CUDA graph yet (hgrlib.core.graphed)"
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
