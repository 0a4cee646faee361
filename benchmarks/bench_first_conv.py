"""The audio network's first convolution (1 input channel, 3×3, stride 2, padding 1): formulations compared.

    .venv/bin/python benchmarks/bench_first_conv.py [--quick] [--out benchmarks/results_first_conv.json]

(--quick took 10 min on the shared 2-core CPU; a full run is about 2.5× that.)

oneDNN's weight gradient for a 1-input-channel convolution is slow. Every formulation below computes
exactly F.conv2d(x, weight, stride=2, padding=1, groups=G) with one input channel per group:

* conv2d / conv2d channels_last: the baseline (nn.Conv2d's call) and with both tensors channels_last;
* F.unfold + matmul: im2col by F.unfold (B, 9·G, P), then (w, 9) @ patches per group;
* slices + matmul: the 9 shifted stride-2 slices of the padded input stacked (B, G, 9, Ho, Wo), then
  torch.matmul(weight (G, w, 9), patches) → (B, G, w, P), already in NCHW order;
* Tensor.unfold + matmul: the same patches as a strided view of the padded input (two Tensor.unfold
  calls) copied once (`first_conv`, the fastest with the weight gradient alone, the training case);
* conv fwd, matmul grad: F.conv2d forward with a custom backward that takes the weight gradient from
  the slices (one matmul) and the input gradient from conv_transpose2d.

Solo: x (B, 1, 94, 64), weight (w, 1, 3, 3). Stacked: K members, x (B, K, 94, 64) (member k's batch in
channel k), weight (K·w, 1, 3, 3), groups=K, output (B, K·w, 47, 32). Timings: forward + backward
(weight gradient only, and weight + input gradient), median [best] over rounds. Each round is one fresh
process per (threads, allocator) in turn, every variant timed in it one after the other. The allocator is
glibc malloc as is ("default") or told to keep large freed blocks ("tuned", see ALLOCATORS): by default
every step's fresh multi-MB buffers page-fault again, and that, not the arithmetic, is where most of the
convolution's time goes (oneDNN's reorders of the output and its gradient).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor


def patches(x: Tensor) -> Tensor:
    """(B, G, H, W) → (B, G, 9, Ho, Wo): the 3×3 stride-2 windows of the zero-padded input, tap-major (kh, kw)."""
    ho, wo = (x.shape[2] - 1) // 2 + 1, (x.shape[3] - 1) // 2 + 1
    xp = F.pad(x, (1, 1, 1, 1))
    return torch.stack([xp[:, :, i : i + 2 * ho - 1 : 2, j : j + 2 * wo - 1 : 2] for i in range(3) for j in range(3)], dim=2)


def first_conv(x: Tensor, weight: Tensor, groups: int = 1) -> Tensor:
    """F.conv2d(x, weight, stride=2, padding=1, groups=groups) for one input channel per group, as one batched matmul.

    x (B, G, H, W), weight (G·w, 1, 3, 3) → (B, G·w, Ho, Wo); group g's output channels are [g·w, (g+1)·w).
    The 3×3 windows are a strided view of the padded input (copied once into (B, G, 9, Ho·Wo)); same values
    (to float rounding) and gradients as the convolution.
    """
    b = x.shape[0]
    win = F.pad(x, (1, 1, 1, 1)).unfold(2, 3, 2).unfold(3, 3, 2)  # (B, G, Ho, Wo, 3, 3), a view
    ho, wo = win.shape[2:4]
    p = win.permute(0, 1, 4, 5, 2, 3).reshape(b, groups, 9, ho * wo)
    return torch.matmul(weight.view(groups, -1, 9), p).view(b, -1, ho, wo)  # (B, G, w, Ho·Wo) → NCHW


def check_first_conv(device: str = "cpu", input_grad: bool = True) -> dict:
    """first_conv against F.conv2d, solo and stacked (K = 4, 3): max relative difference of output and gradients.

    TF32 is off for the check (cuDNN would otherwise round the reference to 10 mantissa bits on a GPU).
    """
    res = {}
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        for k, w in ((1, 16), (4, 16), (3, 8)):
            res[f"K={k} w={w}"] = check_case(k, w, device, input_grad)
    assert all(v < 1e-5 for r in res.values() for v in r.values()), res
    return res


def check_case(k: int, w: int, device: str, input_grad: bool) -> dict:
    """One self-check case: batch 8, K groups of w output channels."""
    g = torch.Generator().manual_seed(k)
    x = torch.randn(8, k, 94, 64, generator=g).to(device).requires_grad_(input_grad)
    wt = torch.randn(k * w, 1, 3, 3, generator=g).to(device).requires_grad_()
    grad = torch.randn(8, k * w, 47, 32, generator=g).to(device)
    outs = {name: f(x, wt, k) for name, f in (("ref", conv), ("new", first_conv))}
    grads = {name: torch.autograd.grad(o, [wt, x] if input_grad else [wt], grad) for name, o in outs.items()}
    res = {"out": rel(outs["new"], outs["ref"]), "grad_w": rel(grads["new"][0], grads["ref"][0])}
    if input_grad:
        res["grad_x"] = rel(grads["new"][1], grads["ref"][1])
    return res


def rel(a: Tensor, b: Tensor) -> float:
    """max |a − b| / max |b|."""
    return ((a - b).abs().max() / b.abs().max()).item()


def conv(x: Tensor, weight: Tensor, groups: int) -> Tensor:
    return F.conv2d(x, weight, stride=2, padding=1, groups=groups)


def conv_channels_last(x: Tensor, weight: Tensor, groups: int) -> Tensor:
    cl = torch.channels_last
    return F.conv2d(x.contiguous(memory_format=cl), weight.contiguous(memory_format=cl), stride=2, padding=1, groups=groups)


def unfold_matmul(x: Tensor, weight: Tensor, groups: int) -> Tensor:
    b, _, h, w = x.shape
    ho, wo = (h - 1) // 2 + 1, (w - 1) // 2 + 1
    cols = F.unfold(x, 3, padding=1, stride=2).view(b, groups, 9, ho * wo)  # channel-major: group g's 9 taps together
    return torch.matmul(weight.view(groups, -1, 9), cols).view(b, -1, ho, wo)


def slices_matmul(x: Tensor, weight: Tensor, groups: int) -> Tensor:
    b = x.shape[0]
    p = patches(x)
    ho, wo = p.shape[-2:]
    return torch.matmul(weight.view(groups, -1, 9), p.view(b, groups, 9, ho * wo)).view(b, -1, ho, wo)


class _ConvMatmulGrad(torch.autograd.Function):
    """Forward by F.conv2d; backward: weight gradient by one matmul against the patches, input gradient by conv_transpose2d."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, groups: int) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.groups = groups
        return conv(x, weight, groups)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        b, g = x.shape[:2]
        p = patches(x).view(b, g, 9, -1)
        gw = torch.matmul(grad.reshape(b, g, -1, p.shape[-1]), p.transpose(2, 3)).sum(0).view_as(weight)
        gx = None
        if ctx.needs_input_grad[0]:
            gx = F.conv_transpose2d(grad, weight, stride=2, padding=1, output_padding=(1 - x.shape[2] % 2, 1 - x.shape[3] % 2), groups=g)
        return gx, gw, None


def conv_fwd_matmul_grad(x: Tensor, weight: Tensor, groups: int) -> Tensor:
    return _ConvMatmulGrad.apply(x, weight, groups)


VARIANTS = {
    "conv2d (baseline)": conv,
    "conv2d channels_last": conv_channels_last,
    "F.unfold + matmul": unfold_matmul,
    "slices + matmul": slices_matmul,
    "Tensor.unfold + matmul (first_conv)": first_conv,
    "conv fwd, matmul grad": conv_fwd_matmul_grad,
}


# glibc malloc returns freed blocks over 128 KiB to the OS (mmap / trim), so every fresh activation buffer
# page-faults again; "tuned" keeps them in the heap. Set before the process starts (or by mallopt at startup).
ALLOCATORS = {
    "default": {},
    "tuned": {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(4 << 30), "MALLOC_TOP_PAD_": str(64 << 20)},
}


def case(b: int, k: int, w: int, input_grad: bool, seed: int = 0):
    """Inputs, weight and upstream gradient for one case."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, k, 94, 64, generator=g).requires_grad_(input_grad)
    weight = torch.randn(k * w, 1, 3, 3, generator=g).requires_grad_()
    return x, weight, torch.randn(b, k * w, 47, 32, generator=g)


def step(fn, x: Tensor, weight: Tensor, grad: Tensor, k: int) -> tuple[Tensor, ...]:
    """Forward + backward; returns the output and the gradients asked for."""
    out = fn(x, weight, k)
    grads = torch.autograd.grad(out, [weight, x] if x.requires_grad else [weight], grad)
    return (out, *grads)


def time_case(b: int, k: int, w: int, input_grad: bool, reps: int) -> dict:
    """One round of one case: every variant warmed up, then ms per call (mean of `reps`), plus differences to the baseline."""
    x, weight, grad = case(b, k, w, input_grad)
    ref = step(conv, x, weight, grad, k)
    res = {}
    for name, fn in VARIANTS.items():
        diffs = [rel(a, r) for a, r in zip(step(fn, x, weight, grad, k), ref)]
        t0 = time.perf_counter()
        for _ in range(reps):
            step(fn, x, weight, grad, k)
        res[name] = {"ms": (time.perf_counter() - t0) / reps * 1e3, "diffs": diffs}
    return res


def child_round(threads: int, cases: list[tuple], reps: int) -> list[dict]:
    """Everything one child process measures in one round."""
    torch.set_num_threads(threads)
    return [{"case": list(c), "variants": time_case(*c, reps)} for c in cases]


def run_child(threads: int, allocator: str, quick: bool) -> list[dict]:
    """This script in a fresh process (so that the allocator's environment applies), one round."""
    cmd = [sys.executable, __file__, "--child", str(threads)] + (["--quick"] if quick else [])
    out = subprocess.run(cmd, env={**os.environ, **ALLOCATORS[allocator]}, capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def aggregate(rounds: dict[tuple, list[list[dict]]]) -> list[dict]:
    """Per (threads, allocator, case, variant): ms median [best] over rounds, speedup vs conv2d with the default
    allocator (median of per-round ratios), differences to the baseline."""
    rows = []
    for (threads, allocator), per_round in rounds.items():
        base_rounds = rounds[(threads, "default")]
        for i, entry in enumerate(per_round[0]):
            b, k, w, input_grad = entry["case"]
            for name in entry["variants"]:
                ms = [r[i]["variants"][name]["ms"] for r in per_round]
                base = [r[i]["variants"]["conv2d (baseline)"]["ms"] for r in base_rounds]
                d = entry["variants"][name]["diffs"]
                rows.append(
                    {
                        "threads": threads,
                        "allocator": allocator,
                        "B": b,
                        "K": k,
                        "w": w,
                        "input_grad": input_grad,
                        "variant": name,
                        "ms_median": statistics.median(ms),
                        "ms_best": min(ms),
                        "speedup": statistics.median(x / y for x, y in zip(base, ms)),
                        "rel_diff_out": d[0],
                        "rel_diff_grad_w": d[1],
                        "rel_diff_grad_x": d[2] if input_grad else None,
                    }
                )
    return rows


def table(rows: list[dict]) -> str:
    out = [
        "| threads | allocator | B | K | w | grad x | variant | ms median [best] | speedup vs conv2d, default alloc. | rel. diff out / grad w / grad x |",
        "|---:|---|---:|---:|---:|---|---|---:|---:|---|",
    ]
    for r in rows:
        d = f"{r['rel_diff_out']:.0e} / {r['rel_diff_grad_w']:.0e}" + (f" / {r['rel_diff_grad_x']:.0e}" if r["input_grad"] else "")
        out.append(
            f"| {r['threads']} | {r['allocator']} | {r['B']} | {r['K']} | {r['w']} | {'yes' if r['input_grad'] else 'no'} | {r['variant']} | "
            f"{r['ms_median']:.2f} [{r['ms_best']:.2f}] | {r['speedup']:.2f}× | {d} |"
        )
    return "\n".join(out)


def cases(quick: bool) -> list[tuple]:
    """(B, K, w, input_grad): solo default and paper-sized (B, w) cases, then stacked K members (K = 1 is the solo default)."""
    shapes = [(64, 1, 16), (128, 1, 32)] + [(64, k, 16) for k in ((4, 16) if quick else (2, 4, 8, 16))]
    return [(*s, ig) for s in shapes for ig in (False, True)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 rounds, stacked K = 4, 16 only")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("results_first_conv.json"))
    ap.add_argument("--child", type=int, metavar="THREADS", help=argparse.SUPPRESS)
    args = ap.parse_args()
    reps = 2 if args.quick else 3
    if args.child:
        print(json.dumps(child_round(args.child, cases(args.quick), reps)))
        return
    res = {"check": check_first_conv(), "load_avg_start": os.getloadavg(), "torch": torch.__version__, "allocators": ALLOCATORS}
    rounds: dict[tuple, list] = {(th, a): [] for th in (1, 2) for a in ALLOCATORS}
    for _ in range(3 if args.quick else 5):
        for key, per_round in rounds.items():
            per_round.append(run_child(*key, args.quick))
    res["rounds"], res["rows"] = len(rounds[(1, "default")]), aggregate(rounds)
    args.out.write_text(json.dumps(res, indent=1) + "\n")
    print("first_conv vs F.conv2d (max rel. diff):", res["check"])
    print(table(res["rows"]))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
