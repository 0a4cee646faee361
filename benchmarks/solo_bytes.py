"""The solo CPU path's bytes: trains a few runs alone (hgrlib.core.train.fit) on random features shaped like a profile's
corpus and writes, per run, its result.json without the timings and run folder, plus the sha256 of weights.pt and
features.npz (in result.json already) and the per-epoch losses. Run it before and after a change to the trainer;
the two folders must be identical (`diff -r`): the committed results were made by solo runs.

    python benchmarks/solo_bytes.py OUT_DIR [--default-epochs 1]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_fit import random_featureset as _random  # noqa: E402

from hgrlib.base.provenance import arrays_sha256  # noqa: E402
from hgrlib.core.train import fit  # noqa: E402
from hgrlib.experiment.profiles import get_profile  # noqa: E402


def random_featureset(p):
    """bench_fit's random features, with every subject showing every emotion (so every fold trains)."""
    fs = _random(p)
    n = len(fs.labels)
    fs.labels = np.arange(n) % 6
    fs.subjects = [f"{(i // 6) % p.synthetic.n_subjects + 1:02d}" for i in range(n)]
    return fs


# seconds, run_dir: timings and place; sha256: result.json's seal (over the seconds too); weights_sha256: weights.pt's
# bytes hold the name of the temporary file torch.save wrote (it has the process id), so the weights' values are
# compared instead (weights_values_sha256)
TIMINGS = ("seconds", "run_dir", "sha256", "weights_sha256")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--default-epochs", type=int, default=1, help="default-profile run's epochs (0: skip it)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    smoke = get_profile("smoke")
    runs = {
        "smoke": (smoke, smoke.config),
        "smoke_semi_cca": (smoke, smoke.config.with_(train={"seed": 1, "fold": 1, "labeled_frac": 0.5}, loss={"lam": 0.1, "corr": "cca"})),
        "smoke_lam0_a": (smoke, smoke.config.with_(model={"modalities": "a"}, loss={"lam": 0.0})),
    }
    if args.default_epochs:
        d = get_profile("default")
        runs["default"] = (d, d.config.with_(train={"epochs": args.default_epochs}))
    for name, (p, cfg) in runs.items():
        fs = random_featureset(p)
        with tempfile.TemporaryDirectory() as tmp:
            r = fit(cfg, fs, tmp, progress=False)
            raw = json.loads((Path(tmp) / "result.json").read_text())
            w = torch.load(Path(tmp) / "weights.pt")
        kept = {k: v for k, v in raw.items() if k not in TIMINGS}
        kept["weights_values_sha256"] = arrays_sha256(*[w[k].numpy() for k in sorted(w)])
        (out / f"{name}.json").write_text(json.dumps(kept, indent=1))
        print(name, r["test"]["confusion"], [h.get("loss") for h in r["history"]], flush=True)


if __name__ == "__main__":
    main()
