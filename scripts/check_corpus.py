"""Is the synthetic corpus byte-for-byte deterministic? Generate a profile's corpus twice from nothing
(1 worker, then 2), compare every file byte for byte, print what differs; exit 1 on any difference.

    python scripts/check_corpus.py [--profile default] [--keep DIR]

To make latent nondeterminism show up every time rather than by chance, the 1-worker run is held to
one CPU (an encoder whose output follows the number of cores then differs) and the 2-worker run's
processes start with their heap filled with 0x55 (glibc's MALLOC_PERTURB_: a read of uninitialised
memory then differs). Last, the complete corpus is verified against corpus.json, and timed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hgrlib.data.synthetic import generate_corpus  # noqa: E402
from hgrlib.experiment.profiles import PROFILES  # noqa: E402


def generate(folder: Path, cfg, workers: int) -> float:
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_setaffinity") else None
    env = os.environ.get("MALLOC_PERTURB_")
    t0 = time.perf_counter()
    try:
        if workers == 1 and cpus:
            os.sched_setaffinity(0, {min(cpus)})
        if workers > 1:
            os.environ["MALLOC_PERTURB_"] = "170"  # read by the spawned workers, not by this process
        generate_corpus(folder, cfg, workers=workers, progress=False)
    finally:
        if cpus:
            os.sched_setaffinity(0, cpus)
        os.environ.pop("MALLOC_PERTURB_", None)
        if env is not None:
            os.environ["MALLOC_PERTURB_"] = env
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="default", choices=sorted(PROFILES))
    ap.add_argument("--keep", default=None, help="write the two corpora to DIR/w1 and DIR/w2 and keep them")
    args = ap.parse_args()
    cfg = PROFILES[args.profile].synthetic
    with tempfile.TemporaryDirectory(prefix="check_corpus_") as tmp:
        base = Path(args.keep or tmp)
        a, b = base / "w1", base / "w2"
        for d in (a, b):
            if d.exists() and any(d.iterdir()):
                sys.exit(f"{d}: not empty; the check generates from nothing")
        t0 = time.perf_counter()
        times = [generate(a, cfg, 1), generate(b, cfg, 2)]
        names = sorted({p.relative_to(d).as_posix() for d in (a, b) for p in d.rglob("*") if p.is_file()})
        differ = [f for f in names if not ((a / f).is_file() and (b / f).is_file() and (a / f).read_bytes() == (b / f).read_bytes())]
        t1 = time.perf_counter()
        report = generate_corpus(a, cfg, workers=1, progress=False)
        t_verify = time.perf_counter() - t1
        print(
            f"profile {args.profile}: {len(names)} files, {len(names) - len(differ)} identical, "
            f"{len(differ)} differing; generated in {times[0]:.1f} s (1 worker) and {times[1]:.1f} s (2 workers), "
            f"{time.perf_counter() - t0:.1f} s in all"
        )
        for f in differ:
            print(f"  differs: {f}")
        print(f"verify a complete corpus: {report.verified} files checked by sha256 in {t_verify:.2f} s ({report.generated} regenerated)")
        return 1 if differ or report.generated else 0


if __name__ == "__main__":
    sys.exit(main())
