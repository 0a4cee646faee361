"""Which dispatch settings decide a run's last bits on this CPU, and what pinning them costs.

Each setting trains one whole default-profile run (hgrlib.core.train.fit, fold 0, seed 0, one thread) on random
features shaped like the default corpus, in its own process (the variables must be set before torch loads),
and records the sha256 of the run's weights (the tensors' values) and of its features.npz, and its seconds. Settings are interleaved round by round,
so slow drifts of the host's speed hit all of them.

    python benchmarks/bench_portable.py [--rounds 3]

Settings: the CPU's own dispatch; oneDNN capped at AVX2 (`ONEDNN_MAX_CPU_ISA`); MKL's conditional numerical
reproducibility (`MKL_CBWR=COMPATIBLE`); ATen's own kernels at AVX2 (`ATEN_CPU_CAPABILITY`); and the three
pinned together (hgrlib.base.provenance.PORTABLE_DISPATCH), with ATen's level varied under the pin, the one
dispatch choice this machine can still vary once oneDNN and MKL are pinned.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PIN = {"MKL_CBWR": "COMPATIBLE", "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
SETTINGS = {
    "native": {},
    "oneDNN AVX2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    "MKL COMPATIBLE": {"MKL_CBWR": "COMPATIBLE"},
    "ATen avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "pinned (portable)": PIN,
    "pinned, ATen default": PIN | {"ATEN_CPU_CAPABILITY": "default"},
    "pinned, ATen avx512": PIN | {"ATEN_CPU_CAPABILITY": "avx512"},
}
CHILD = """
import json, sys, tempfile, time
sys.path.insert(0, {bench!r})
import torch
torch.set_num_threads(1)
from bench_fit import random_featureset
from hgrlib.experiment.profiles import get_profile
from hgrlib.base.provenance import arrays_sha256, machine_identity
from hgrlib.core.runtime import keep_freed_memory
from hgrlib.core.train import fit
keep_freed_memory()
p = get_profile("default")
fs = random_featureset(p)
cfg = p.config.with_(train={{"fold": 0, "seed": 0, "threads": 1}})
with tempfile.TemporaryDirectory() as tmp:
    t0 = time.perf_counter()
    r = fit(cfg, fs, tmp + "/run", progress=False)
    sec = time.perf_counter() - t0
    state = torch.load(tmp + "/run/weights.pt")
    weights = arrays_sha256(*(state[k].contiguous().numpy() for k in sorted(state)))
print(json.dumps({{"seconds": sec, "weights": weights[:16], "features": r["features_sha256"][:16],
                  "acc": r["test"]["acc"], "machine": machine_identity()}}))
"""


def child(env: dict) -> dict:
    e = {k: v for k, v in os.environ.items() if k not in PIN} | env
    out = subprocess.run([sys.executable, "-c", CHILD.format(bench=str(HERE))], env=e, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=str(HERE / "results_portable.json"))
    args = ap.parse_args()
    runs: dict[str, list[dict]] = {k: [] for k in SETTINGS}
    for rnd in range(args.rounds):
        for name, env in SETTINGS.items():
            runs[name].append(child(env))
            r = runs[name][-1]
            print(f"round {rnd}: {name}: {r['seconds']:.2f} s, weights {r['weights']}, features {r['features']}", flush=True)
    native = runs["native"][0]
    rows = {}
    for name, rs in runs.items():
        secs = [r["seconds"] for r in rs]
        rows[name] = {
            "env": SETTINGS[name],
            "seconds_median": statistics.median(secs),
            "seconds": secs,
            "cost_vs_native": statistics.median(secs) / statistics.median(r["seconds"] for r in runs["native"]),
            "weights_sha256": rs[0]["weights"],
            "same_bytes_every_round": len({(r["weights"], r["features"]) for r in rs}) == 1,
            "same_bytes_as_native": (rs[0]["weights"], rs[0]["features"]) == (native["weights"], native["features"]),
            "same_bytes_as_pinned": (rs[0]["weights"], rs[0]["features"])
            == (runs["pinned (portable)"][0]["weights"], runs["pinned (portable)"][0]["features"]),
            "machine": rs[0]["machine"],
        }
    print(f"\n{'setting':24} {'s per run':>10} {'cost':>6}  same bytes as native / as pinned")
    for name, r in rows.items():
        print(
            f"{name:24} {r['seconds_median']:10.2f} {r['cost_vs_native']:6.2f}  "
            f"{'yes' if r['same_bytes_as_native'] else 'no':>3} / {'yes' if r['same_bytes_as_pinned'] else 'no'}"
        )
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "host": platform.node(),
        "rounds": args.rounds,
        "what": "one whole default-profile run per setting and round (random features, fold 0, seed 0, one thread), each in its own process",
        "settings": rows,
    }
    with tempfile.NamedTemporaryFile("w", dir=Path(args.out).parent, delete=False) as fh:
        json.dump(result, fh, indent=1)
    os.replace(fh.name, args.out)
    print(f"\nwritten {args.out}")


if __name__ == "__main__":
    main()
