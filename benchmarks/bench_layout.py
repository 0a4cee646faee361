"""Channels-last convolution weights (as hgrlib.core.models builds them) against the default NCHW layout, in the real training loop: ms per
step of `train_one_epoch` on the Batcher's batches, and seconds per whole run (hgrlib.core.train.fit: training,
validation every epoch, test, features.npz), the two layouts interleaved in one one-thread process, on random
features shaped like the default profile's corpus (accuracies mean nothing here, only time).

    python benchmarks/bench_layout.py [--rounds 4]

The layouts are interleaved round by round in one process, so slow drifts of the host's speed hit both.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import bench_train as bt  # noqa: E402  nchw_weights: one copy, in bench_train.py
from bench_fit import random_featureset  # noqa: E402

from hgrlib.core import models  # noqa: E402
from hgrlib.core.runtime import autocast, keep_freed_memory  # noqa: E402
from hgrlib.core.train import fit, setup_run, train_one_epoch  # noqa: E402
from hgrlib.experiment.profiles import get_profile  # noqa: E402

AS_BUILT = models.conv_block


def nchw_block(c_in: int, c_out: int) -> torch.nn.Sequential:
    """models.conv_block with its weight in the default NCHW layout, as the model had it before. (`clone` with
    the format, not `contiguous()`: a one-channel channels-last weight is contiguous both ways, keeps its
    channels-last strides, and alone puts the whole audio branch into that layout.)"""
    block = AS_BUILT(c_in, c_out)
    bt.nchw_weights(block)
    return block


LAYOUTS = {"NCHW weights (before)": nchw_block, "channels-last weights (as built)": AS_BUILT}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--steps", type=int, default=40, help="steps per round in the step timing")
    ap.add_argument("--out", default=str(Path(__file__).with_name("results_layout.json")))
    args = ap.parse_args()
    torch.set_num_threads(1)
    keep_freed_memory()
    p = get_profile("default")
    fs = random_featureset(p)
    cfg = p.config.with_(train={"fold": 0, "seed": 0})
    cpu = torch.device("cpu")
    step_ms: dict[str, list[float]] = {k: [] for k in LAYOUTS}
    run_s: dict[str, list[float]] = {k: [] for k in LAYOUTS}
    loops = {}
    for name, block in LAYOUTS.items():
        models.conv_block = block
        r = setup_run(cfg, fs, cpu)
        opt = torch.optim.AdamW(r.model.parameters(), lr=cfg.train.lr)
        loops[name] = (r, opt, torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.train.lr, total_steps=100_000))
    with tempfile.TemporaryDirectory() as tmp:
        fit(cfg, fs, f"{tmp}/warm", progress=False)  # first-run imports (torch._dynamo, by the optimiser) out of the timings
        for rnd in range(args.rounds):
            for name, block in LAYOUTS.items():
                r, opt, sched = loops[name]
                batches = r.batches(rnd)[: args.steps]
                t0 = time.perf_counter()
                train_one_epoch(r.model, r.model, opt, sched, r.batcher, batches, cfg.loss, autocast(cpu, "off"))
                step_ms[name].append((time.perf_counter() - t0) / len(batches) * 1e3)
                models.conv_block = block
                t0 = time.perf_counter()
                fit(cfg, fs, f"{tmp}/{rnd}-{block.__name__}", progress=False)
                run_s[name].append(time.perf_counter() - t0)
                print(f"round {rnd}: {name}: {step_ms[name][-1]:.1f} ms per step, {run_s[name][-1]:.2f} s per run", flush=True)
    models.conv_block = AS_BUILT
    med_step = {k: statistics.median(v) for k, v in step_ms.items()}
    med_run = {k: statistics.median(v) for k, v in run_s.items()}
    (a, b) = LAYOUTS
    print(
        f"\ndefault profile ({cfg.train.epochs} epochs, batch {cfg.train.batch_size}), one thread, median of {args.rounds} rounds [best]:"
    )
    for k in LAYOUTS:
        print(f"  {k}: {med_step[k]:.1f} ms per step [{min(step_ms[k]):.1f}], {med_run[k]:.2f} s per run [{min(run_s[k]):.2f}]")
    print(f"  channels-last speed-up: step {med_step[a] / med_step[b]:.2f}x, whole run {med_run[a] / med_run[b]:.2f}x")
    out = {
        "machine": {
            "platform": platform.platform(),
            "torch": torch.__version__,
            "threads": 1,
            "isa": torch.backends.cpu.get_cpu_capability(),
        },
        "ms_per_step": step_ms,
        "seconds_per_run": run_s,
        "speedup_step": med_step[a] / med_step[b],
        "speedup_run": med_run[a] / med_run[b],
    }
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
