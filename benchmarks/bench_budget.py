"""What a finished grid cost against what this machine could do: the convolution and matmul FLOPs of every run
in a runs folder (training steps forward + backward; validation every epoch, test and features.npz forward),
the time they need at the fp32 matmul rate of bench_matmul.py, and the time the runs took (result.json's
`seconds`). Reads the runs, trains nothing.

    python benchmarks/bench_budget.py runs [--cores 2]
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import bench_train as bt  # noqa: E402  count_flops: one copy, in bench_train.py

from hgrlib.config import Config  # noqa: E402
from hgrlib.core.losses import joint_loss  # noqa: E402
from hgrlib.core.models import EmotionModel  # noqa: E402


@functools.cache
def flops_per_sample(cfg_json: str) -> tuple[float, float]:
    """(training forward + joint loss + backward, evaluation forward) FLOPs per segment of a config's model."""
    cfg = Config.from_dict(json.loads(cfg_json))
    f, b = cfg.features, 8
    model = EmotionModel(6, 3 if f.deltas else 1, f.frames_per_segment, cfg.model)
    a = torch.randn(b, 3 if f.deltas else 1, f.n_mels, f.segment_frames) if "a" in cfg.model.modalities else None
    v = torch.randn(b, f.frames_per_segment, 3, f.face_size, f.face_size) if "v" in cfg.model.modalities else None
    y = torch.arange(b) % 6
    train = bt.count_flops(lambda: joint_loss(model(a, v, y), y, torch.ones(b, dtype=torch.bool), cfg.loss)[0].backward())
    model.eval()
    with torch.no_grad():
        ev = bt.count_flops(lambda: model(a, v))
    return train / b, ev / b


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", help="a runs folder (runs/<hash>/result.json)")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--matmul", default=str(Path(__file__).with_name("results_matmul.json")))
    args = ap.parse_args()
    mm = json.loads(Path(args.matmul).read_text())
    per_core = next(m["gflops_median"] for m in mm["matmul"] if m["threads"] == 1 and m["n"] == 2048 and "MKL" in m["backend"]) * 1e9
    peak = mm["theoretical_peak"]["1"]["gflops"] * 1e9
    train_f = eval_f = seconds = 0.0
    n = 0
    for res_file in sorted(Path(args.runs).glob("*/result.json")):
        r = json.loads(res_file.read_text())
        cfg = r["config"]
        tr, ev = flops_per_sample(json.dumps(cfg, sort_keys=True))
        with np.load(res_file.with_name("features.npz")) as z:
            parts = z["part"]
        s = cfg["features"]["n_segments"]
        n_val, n_all = int((parts == "val").sum()) * s, len(parts) * s
        train_f += tr * r["steps"] * cfg["train"]["batch_size"]
        eval_f += ev * (cfg["train"]["epochs"] * n_val + r["n_test_segments"] + n_all)
        seconds += r["seconds"]
        n += 1
    total = train_f + eval_f
    rate = args.cores * per_core
    print(f"{n} runs: {train_f / 1e12:.1f} TFLOP training, {eval_f / 1e12:.1f} TFLOP evaluation, {total / 1e12:.1f} TFLOP in all")
    print(f"at the fp32 matmul rate ({args.cores} x {per_core / 1e9:.1f} GFLOP/s, one thread per core): {total / rate:.0f} s")
    print(f"at the theoretical peak ({args.cores} x {peak / 1e9:.1f} GFLOP/s): {total / (args.cores * peak):.0f} s")
    print(f"the runs took {seconds:.0f} s of one-thread time ({seconds / args.cores:.0f} s on {args.cores} cores side by side): ")
    print(f"{100 * total / (seconds * per_core):.1f}% of the matmul rate per core")
    out = {
        "runs": n,
        "train_tflop": train_f / 1e12,
        "eval_tflop": eval_f / 1e12,
        "matmul_gflops_per_core": per_core / 1e9,
        "seconds_at_matmul_rate": total / rate,
        "seconds_at_peak": total / (args.cores * peak),
        "run_seconds": seconds,
        "share_of_matmul": total / (seconds * per_core),
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
