"""Whole runs alone (hgrlib.core.train.fit) against stacked (hgrlib.core.train_stacked.fit_stacked), on random features
shaped like a profile's corpus: seconds per run (training, validation every epoch, test, features.npz), and
what notebook 02's grid (4 conditions x folds x seeds, the profile's epochs) would take at that rate.

    python benchmarks/bench_fit.py --profile paper --device cuda --stacks 1 16 32 --epochs 1

Stack size 1 means runs trained alone, one after the other. Needs no media, Jupyter or OpenCV: the features
are random (shapes and dtypes of the profile's cache), so accuracies mean nothing here, only time.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hgrlib.core.train import fit  # noqa: E402
from hgrlib.core.train_stacked import fit_stacked  # noqa: E402
from hgrlib.data.featureset import FeatureSet  # noqa: E402
from hgrlib.experiment.profiles import get_profile  # noqa: E402


def random_featureset(profile) -> FeatureSet:
    """Random features with the shapes of `profile`'s synthetic corpus (clips, segments, channels, sizes)."""
    syn, f = profile.synthetic, profile.config.features
    n, s = syn.n_subjects * 6 * syn.clips_per_emotion, f.n_segments
    r = np.random.default_rng(0)
    labels = r.integers(0, 6, n)
    audio = r.standard_normal((n, s, 3 if f.deltas else 1, f.n_mels, f.segment_frames), dtype=np.float32).astype(np.float16)
    faces = r.integers(0, 256, (n, s, f.frames_per_segment, f.face_size, f.face_size, 3), dtype=np.uint8)
    return FeatureSet(
        [f"c{i}" for i in range(n)],
        [f"{i % syn.n_subjects + 1:02d}" for i in range(n)],
        labels,
        ("anger", "disgust", "fear", "happiness", "sadness", "surprise"),
        audio,
        faces,
        "synthetic",
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="default")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--stacks", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--solo-runs", type=int, default=2, help="runs trained alone for stack size 1")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    p = get_profile(args.profile)
    cfg = p.config.with_(train={"epochs": args.epochs, "device": args.device})
    t0 = time.perf_counter()
    fs = random_featureset(p)
    print(
        f"{args.profile}: {len(fs.clip_ids)} clips x {fs.n_segments} segments, audio {fs.audio.shape[2:]}, "
        f"faces {fs.faces.shape[2:]}; made in {time.perf_counter() - t0:.0f} s",
        flush=True,
    )
    n_folds = cfg.train.n_folds
    grid_runs = 4 * n_folds * len(p.seeds)
    rows = []
    for k in args.stacks:
        n = args.solo_runs if k == 1 else k
        cfgs = [cfg.with_(train={"seed": i, "fold": i % n_folds}) for i in range(n)]
        tmp = tempfile.mkdtemp(prefix="bench_fit_")
        t0 = time.perf_counter()
        if k == 1:
            for i, c in enumerate(cfgs):
                fit(c, fs, f"{tmp}/{i}", progress=False)
        else:
            fit_stacked(cfgs, fs, [f"{tmp}/{i}" for i in range(n)], progress=False)
        per_run_epoch = (time.perf_counter() - t0) / n / args.epochs
        shutil.rmtree(tmp)
        grid_min = grid_runs * p.config.train.epochs * per_run_epoch / 60
        rows.append(
            {
                "stack": k,
                "runs": n,
                "s_per_run_epoch": per_run_epoch,
                "notebook02_grid_runs": grid_runs,
                "notebook02_training_min": grid_min,
            }
        )
        print(
            f"stack {k:>3} ({n} runs, {args.epochs} epoch(s)): {per_run_epoch:.2f} s per run-epoch; notebook 02's "
            f"{grid_runs} runs x {p.config.train.epochs} epochs: ~{grid_min:.0f} min of training",
            flush=True,
        )
    res = {
        "machine": {
            "platform": platform.platform(),
            "torch": torch.__version__,
            "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
            "threads": torch.get_num_threads(),
        },
        "profile": args.profile,
        "epochs": args.epochs,
        "rows": rows,
    }
    out = args.out or str(Path(__file__).with_name(f"results_fit_{args.profile}_{args.device}.json"))
    Path(out).write_text(json.dumps(res, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
