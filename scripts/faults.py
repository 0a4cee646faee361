#!/usr/bin/env python
"""Faults survived, measured: inflict each fault on the smoke profile and check what the project promises.

Everything happens in a scratch folder (its own corpus, --cache, --runs, --results, --figures), through
the public command line (`hgrlib prep`, `hgrlib train`, `./run_all.sh`), compared with uninterrupted
reference runs made there first. Each fault is tried --trials times at points drawn from its own
random.Random("<--seed>:<fault>"), printed as they are drawn:

  prep-kill      SIGKILL `hgrlib prep` (corpus and cache from nothing); rerun: every clip's arrays as the reference's
  train-kill     SIGKILL `hgrlib train` between its first checkpoint and its result.json; rerun: test metrics and
                 features.npz identical
  notebook-kill  SIGKILL `./run_all.sh --only 02` (its whole process tree, kernel included) once a random number of
                 its runs finished; rerun: every CSV table (but `seconds`) and every run identical
  ro-runs        `hgrlib train` into a read-only runs folder (holding a run killed at a random point)
  ro-results     `./run_all.sh --only 02` into a read-only results folder
                 (both: must fail with a message naming the folder, no traceback, write nothing; rerun identical)
  full-disk-train / full-disk-prep
                 every file write fails with EFBIG from a random point on (RLIMIT_FSIZE 0, SIGXFSZ ignored):
                 must fail (or have finished), and a rerun without the limit must be identical
  corrupt-cache  one per-clip cache file truncated or with a flipped array byte: `hgrlib train` (fresh runs)
                 and `hgrlib prep` must name it, extract it again, and give identical results
  corrupt-result a digit of a test metric in result.json changed: `hgrlib train` must name it and retrain identically

A fault passes when every trial ends as required and no finished work (valid cache files, finished runs, a
checkpoint) was removed or redone except the damaged file itself; otherwise its row says what went wrong and
the script exits 1. Run as root, the read-only faults drop CAP_DAC_OVERRIDE in the child (root ignores modes).

    python scripts/faults.py --trials 2 --markdown --out faults.json
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import hashlib
import itertools
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TRAIN_FLAGS = ["--modalities", "av", "--lam", "0.1", "--epochs", "40"]  # 40 epochs: a window to strike mid-training
TIMEOUT = 900.0  # seconds any one command may take before it counts as hung
POLL = 0.02
ENV = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])), "PYTHONWARNINGS": "ignore"}
_log_numbers = itertools.count(1)


# ----------------------------------------------------------------------------- processes


@dataclass
class Proc:
    """A finished command: exit status, output, duration, and what its strike returned (None: it never struck)."""

    rc: int
    out: str
    err: str
    seconds: float
    struck: object = None

    @property
    def text(self) -> str:
        return self.out + self.err


def tree(pid: int) -> list[int]:
    """pid and its living descendants, found in /proc (whatever session or group they are in)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        out.append(q := todo.pop())
        todo += children.get(q, [])
    return out


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def kill_tree(pid: int) -> None:
    """SIGKILL pid and every descendant (a Jupyter kernel runs in a session of its own, so killpg alone would
    leave it and its training workers running): all are stopped first, so none forks or escapes, then killed."""
    stopped: set[int] = set()
    while new := set(tree(pid)) - stopped:
        for q in new:
            _signal(q, signal.SIGSTOP)
        stopped |= new
    for q in stopped:
        _signal(q, signal.SIGKILL)


def fill_disk(pid: int) -> None:
    """From now on every write that grows a file fails with EFBIG, in pid and its descendants (later children inherit it)."""
    for q in tree(pid):
        try:
            resource.prlimit(q, resource.RLIMIT_FSIZE, (0, 0))
        except ProcessLookupError:
            pass


def ignore_sigxfsz() -> None:
    """preexec_fn: a write past RLIMIT_FSIZE fails with EFBIG instead of killing the process."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def without_dac_override() -> None:
    """preexec_fn: as root, drop the capabilities that let root write into a read-only folder (no-op otherwise)."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP: gone from the bounding set, so from root after exec
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed: cannot make a folder read-only for root")


def _drain(stream, log: Path, into: list[bytes]) -> threading.Thread:
    """Read a child's pipe to its end in a thread, into a list and a log file (pipes, not files, for the child:
    a file-size limit would stop it from writing even its error message)."""

    def drain() -> None:
        with open(log, "wb") as fh:
            for chunk in iter(lambda: stream.read1(1 << 16), b""):
                into.append(chunk)
                fh.write(chunk)

    t = threading.Thread(target=drain, daemon=True)
    t.start()
    return t


def run(lab: Lab, cmd: list, name: str, strike=None, preexec=None) -> Proc:
    """Run cmd in its own session (output also to lab/logs), let `strike(p, t0)` inflict a fault, wait for its end."""
    log = lab.root / "logs" / f"{next(_log_numbers):03d}-{name}"
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    p = subprocess.Popen(
        [str(c) for c in cmd],
        cwd=lab.root,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=preexec,
    )
    out, err = [], []
    readers = [_drain(p.stdout, Path(f"{log}.out"), out), _drain(p.stderr, Path(f"{log}.err"), err)]
    struck, hung = None, False
    try:
        struck = strike(p, t0) if strike else None
        p.wait(timeout=max(1.0, TIMEOUT - (time.monotonic() - t0)))
    except subprocess.TimeoutExpired:
        hung = True
    finally:
        if p.poll() is None:
            kill_tree(p.pid)
            p.wait()
    seconds = time.monotonic() - t0
    for r in readers:
        r.join(timeout=30)  # a descendant that outlives the command may hold its pipes open
    text = lambda parts: b"".join(parts).decode(errors="replace")  # noqa: E731
    return Proc(
        p.returncode,
        text(out),
        text(err) + (f"\n[faults.py: killed, still running after {TIMEOUT:.0f} s]" if hung else ""),
        seconds,
        struck,
    )


def wait_for(p: subprocess.Popen, ready) -> bool:
    """Wait until `ready()`; False if the process ended first."""
    while p.poll() is None:
        if ready():
            return True
        time.sleep(POLL)
    return False


def exists(folder: Path, pattern: str, count: int = 1):
    """A `ready` test: at least `count` files under folder match pattern."""
    return lambda: sum(1 for _ in folder.glob(pattern)) >= count


def after(delay: float, act, anchor=None):
    """A strike: `act(pid)` `delay` s after the start, or after `anchor()` first held. It returns the seconds from
    the start at which it struck (None: the process ended first)."""

    def strike(p: subprocess.Popen, t0: float) -> float | None:
        if anchor and not wait_for(p, anchor):
            return None
        end = time.monotonic() + delay
        while p.poll() is None and time.monotonic() < end:
            time.sleep(POLL)
        if p.poll() is not None:
            return None
        act(p.pid)
        return time.monotonic() - t0

    return strike


def hgrlib(*args) -> list:
    return [sys.executable, "-m", "hgrlib.app.cli", *args]


def prep_cmd(data: Path, cache: Path) -> list:
    return hgrlib("prep", "--profile", "smoke", "--root", data, "--cache", cache, "--workers", 2)


# ----------------------------------------------------------------------------- what a command left


def npz_digest(path: Path, names: tuple[str, ...] | None = None) -> dict[str, str] | None:
    """sha256 (with dtype and shape) of each array in an .npz (or only `names`); None if it cannot be read."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: hashlib.sha256(f"{z[k].dtype}{z[k].shape}".encode() + z[k].tobytes()).hexdigest() for k in sorted(names or z.files)}
    except Exception:  # truncated, not a zip, a missing member: unreadable
        return None


def clip_files(cache: Path, data: Path) -> list[Path]:
    """The per-clip cache files of the corpus at `data` (each cache folder's key.json names its corpus: notebook 02
    puts a second corpus's clips, of the same names, beside them)."""
    folders = [k.parent for k in cache.glob("*/key.json") if json.loads(k.read_text()).get("source") == os.path.normpath(data)]
    return sorted(f for d in folders for f in (d / "clips").glob("*.npz") if not f.name.endswith(".part.npz"))


def cache_digests(cache: Path, data: Path) -> dict[str, dict | None]:
    """Per clip file name, the digest of its audio and faces arrays (not its meta, which holds the media's mtime)."""
    return {f.name: npz_digest(f, ("audio", "faces")) for f in clip_files(cache, data)}


def run_outcome(run_dir: Path) -> dict:
    """A finished run as compared: its result.json 'test' dict and its features.npz arrays."""
    try:
        test = json.loads((run_dir / "result.json").read_text())["test"]
    except (OSError, ValueError, KeyError):
        test = None
    return {"test": test, "features": npz_digest(run_dir / "features.npz")}


def runs_outcomes(runs: Path) -> dict[str, dict]:
    return {f.parent.name: run_outcome(f.parent) for f in sorted(runs.glob("*/result.json"))}


def tables(results: Path) -> dict:
    """Every CSV table the runner wrote, without the wall-clock `seconds` column."""
    import pandas as pd

    return {f.name: pd.read_csv(f).drop(columns=["seconds"], errors="ignore") for f in sorted(results.rglob("*.csv"))}


def mtimes(files) -> dict[str, int]:
    return {str(f): f.stat().st_mtime_ns for f in files if f.exists()}


def redone(before: dict[str, int], spare: str = "") -> list[str]:
    """Files of `before` (path -> mtime) since removed or rewritten, the damaged file `spare` aside."""
    return [p for p, t in before.items() if p != spare and (not Path(p).exists() or Path(p).stat().st_mtime_ns != t)]


def diff(what: str, ref: dict, got: dict) -> list[str]:
    """What differs between two {name: comparable} dicts, as problems."""
    missing = sorted(set(ref) - set(got))
    extra = sorted(set(got) - set(ref))
    changed = sorted(k for k in set(ref) & set(got) if not _same(ref[k], got[k]))
    parts = [
        f"{len(keys)} {label} ({', '.join(keys[:3])})"
        for label, keys in (("missing", missing), ("unexpected", extra), ("differ", changed))
        if keys
    ]
    return [f"{what}: {'; '.join(parts)}"] if parts else []


def _same(a, b) -> bool:
    return a.equals(b) if hasattr(a, "equals") else a == b


def describe_run_diff(ref: dict, got: dict) -> list[str]:
    """How a run's outcome differs from the reference's, as problems."""
    if got == ref:
        return []
    if got["test"] is None:
        return ["no readable result.json"]
    out = [
        f"test metrics differ ({k}: {ref['test'][k]} vs {got['test'].get(k)})"
        for k in sorted(ref["test"])
        if ref["test"][k] != got["test"].get(k)
    ][:2]
    return out + (["features.npz differs"] if got["features"] != ref["features"] else [])


# ----------------------------------------------------------------------------- the scratch lab


class Lab:
    """A scratch folder: the smoke corpus and its feature cache (given, or made by an uninterrupted prep), and the
    reference outcomes of uninterrupted commands, each made once when first needed."""

    def __init__(self, root: str | Path, data: str | Path | None = None, cache: str | Path | None = None) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._data, self._cache = data, cache

    def fresh(self, name: str) -> Path:
        d = self.root / name
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        return d

    @cached_property
    def prep_ref(self) -> dict:
        """An uninterrupted prep from nothing: its duration and every clip's arrays."""
        d = self.fresh("ref-prep")
        p = must(run(self, prep_cmd(d / "data", d / "cache"), "ref-prep"))
        return {"seconds": p.seconds, "cache": cache_digests(d / "cache", d / "data"), "data": d / "data", "cache_dir": d / "cache"}

    @property
    def data(self) -> Path:
        return Path(self._data) if self._data else self.prep_ref["data"]

    @property
    def cache(self) -> Path:
        return Path(self._cache) if self._cache else self.prep_ref["cache_dir"]

    def train_cmd(self, runs: Path, cache: Path | None = None) -> list:
        return hgrlib("train", "--profile", "smoke", "--root", self.data, "--cache", cache or self.cache, "--runs", runs, *TRAIN_FLAGS)

    def notebook_cmd(self, d: Path, runs: Path | None = None) -> list:
        return [
            REPO / "run_all.sh",
            "--profile",
            "smoke",
            "--only",
            "02",
            "--root",
            self.data,
            "--cache",
            self.cache,
            "--runs",
            runs or d / "runs",
            "--results",
            d / "results",
            "--figures",
            d / "figures",
        ]

    @cached_property
    def train_ref(self) -> dict:
        """An uninterrupted `hgrlib train`: its outcome, duration, and `span`, the seconds from its first checkpoint
        to its result.json (the window in which a fault strikes mid-training)."""
        runs = self.fresh("ref-train") / "runs"

        def watch(p: subprocess.Popen, t0: float) -> tuple[float, float] | None:
            times = [time.monotonic() - t0 for pattern in ("*/checkpoint.pt", "*/result.json") if wait_for(p, exists(runs, pattern))]
            return tuple(times) if len(times) == 2 else None

        p = must(run(self, self.train_cmd(runs), "ref-train", strike=watch))
        if p.struck is None:
            raise RuntimeError(f"reference train: no checkpoint.pt or result.json seen under {runs} while it ran")
        (run_dir,) = [f.parent for f in runs.glob("*/result.json")]
        return {"outcome": run_outcome(run_dir), "runs": runs, "seconds": p.seconds, "span": p.struck[1] - p.struck[0]}

    @cached_property
    def notebook_ref(self) -> dict:
        """An uninterrupted `./run_all.sh --profile smoke --only 02`: its tables and its runs."""
        d = self.fresh("ref-notebook")
        must(run(self, self.notebook_cmd(d), "ref-notebook"))
        return {"tables": tables(d / "results"), "runs": runs_outcomes(d / "runs"), "runs_dir": d / "runs"}

    def check_train(self, runs: Path) -> list[str]:
        """Problems of the single run under `runs` against the reference run."""
        found = [f.parent for f in runs.glob("*/result.json")]
        if len(found) != 1:
            return [f"{len(found)} finished runs under {runs}, expected 1"]
        return describe_run_diff(self.train_ref["outcome"], run_outcome(found[0]))


def must(p: Proc) -> Proc:
    if p.rc != 0:
        raise RuntimeError(f"a reference command failed (exit {p.rc}):\n{p.err[-2000:]}")
    return p


# ----------------------------------------------------------------------------- trials and their summary


@dataclass
class Trial:
    """One try of a fault: where it struck, what was not as required, what finished work was lost."""

    point: str
    problems: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    struck: bool = True  # False: the command had finished before the fault could strike


def rc_problems(p: Proc, what: str) -> list[str]:
    return [] if p.rc == 0 else [f"{what} exited {p.rc}: {_last_line(p.err)}"]


def _last_line(text: str, containing: str = "") -> str:
    """The last non-blank line of a command's output (that contains `containing`), shortened."""
    lines = [ln for ln in text.replace("\r", "\n").splitlines() if ln.strip() and containing in ln]
    return lines[-1][:300] if lines else "(no output)"


def trials(name: str, n: int, one, required: str) -> dict:
    """Try `one(i) -> Trial` n times; the fault's row: tried, outcome, data lost, ok, and each trial."""
    done = []
    for i in range(n):
        try:
            t = one(i)
        except Exception as e:  # the harness itself could not complete the trial: a failure, reported as such
            t = Trial("?", [f"{type(e).__name__}: {e}"])
        print(
            f"  {name} trial {i + 1}/{n}: {t.point}: " + ("ok" if not (t.problems or t.lost) else "; ".join(t.problems + t.lost)),
            flush=True,
        )
        done.append(t)
    bad = [f"trial {i + 1}: {p}" for i, t in enumerate(done) for p in t.problems]
    lost = [f"trial {i + 1}: {x}" for i, t in enumerate(done) for x in t.lost]
    early = sum(not t.struck for t in done)
    outcome = f"FAILED: {'; '.join(bad)}" if bad else required + (f" ({early} of {n} finished before the fault struck)" if early else "")
    return {
        "fault": name,
        "tried": n,
        "outcome": outcome,
        "data_lost": "; ".join(lost) or "none",
        "ok": not bad and not lost,
        "trials": [t.__dict__ for t in done],
    }


# ----------------------------------------------------------------------------- the faults


def prep_kill(lab: Lab, rng: random.Random, n: int) -> dict:
    """SIGKILL `hgrlib prep` (corpus and cache from nothing) at a random point; the rerun's cache must equal the reference."""
    ref = lab.prep_ref

    def one(i: int) -> Trial:
        d = lab.fresh(f"prep-kill-{i}")
        delay = rng.uniform(0.05, 0.95) * ref["seconds"]
        first = run(lab, prep_cmd(d / "data", d / "cache"), "prep-kill", after(delay, kill_tree))
        t = Trial(f"SIGKILL {delay:.1f} s after start", struck=first.rc == -signal.SIGKILL)
        damaged = {f for f in clip_files(d / "cache", d / "data") if npz_digest(f) is None}
        kept = mtimes(f for f in clip_files(d / "cache", d / "data") if f not in damaged)
        again = run(lab, prep_cmd(d / "data", d / "cache"), "prep-rerun")
        t.problems = rc_problems(again, "rerun") + diff("cache", ref["cache"], cache_digests(d / "cache", d / "data"))
        t.lost = [f"{len(x)} clip files extracted before the kill were extracted again"] if (x := redone(kept)) else []
        if damaged:
            t.point += f" (left {len(damaged)} unreadable cache files)"
        return t

    return trials("prep-kill", n, one, "resumed, identical")


def train_kill(lab: Lab, rng: random.Random, n: int) -> dict:
    """SIGKILL `hgrlib train` between its first checkpoint and its result.json; the rerun must end with the reference's numbers."""
    ref = lab.train_ref

    def one(i: int) -> Trial:
        runs = lab.fresh(f"train-kill-{i}") / "runs"
        delay = rng.uniform(0, 1) * ref["span"]
        first = run(lab, lab.train_cmd(runs), "train-kill", after(delay, kill_tree, exists(runs, "*/checkpoint.pt")))
        ckpts = list(runs.glob("*/checkpoint.pt"))
        t = Trial(
            f"SIGKILL {delay:.2f} s after the first checkpoint ({'a checkpoint' if ckpts else 'no checkpoint'} left)",
            struck=first.rc == -signal.SIGKILL and bool(ckpts),
        )
        again = run(lab, lab.train_cmd(runs), "train-rerun")
        t.problems = rc_problems(again, "rerun") + lab.check_train(runs)
        t.lost = [f"the checkpoint was discarded: {_last_line(again.err, 'checkpoint')}"] if ckpts and "checkpoint" in again.err else []
        return t

    return trials("train-kill", n, one, "resumed, identical")


def notebook_kill(lab: Lab, rng: random.Random, n: int) -> dict:
    """SIGKILL `./run_all.sh --only 02` and all its processes once a random number of its runs finished (plus up to
    2 s); the rerun's tables and runs must equal the reference's."""
    ref = lab.notebook_ref

    def one(i: int) -> Trial:
        d = lab.fresh(f"notebook-kill-{i}")
        k, delay = rng.randrange(len(ref["runs"])), rng.uniform(0, 2)
        first = run(lab, lab.notebook_cmd(d), "notebook-kill", after(delay, kill_tree, exists(d / "runs", "*/result.json", k)))
        finished = mtimes((d / "runs").glob("*/result.json"))
        t = Trial(
            f"SIGKILL {delay:.1f} s after {k} of {len(ref['runs'])} runs finished ({first.struck or 0:.0f} s in)",
            struck=first.rc == -signal.SIGKILL,
        )
        again = run(lab, lab.notebook_cmd(d), "notebook-rerun")
        t.problems = (
            rc_problems(again, "rerun")
            + diff("tables", ref["tables"], tables(d / "results"))
            + diff("runs", ref["runs"], runs_outcomes(d / "runs"))
        )
        t.lost = [f"{len(x)} runs finished before the kill were trained again"] if (x := redone(finished)) else []
        return t

    return trials("notebook-kill", n, one, "resumed, identical")


@contextlib.contextmanager
def read_only(folder: Path):
    """Folder and every folder in it 0o555 for the duration, then as they were."""
    modes = {p: p.stat().st_mode & 0o7777 for p in [folder, *(p for p in folder.rglob("*") if p.is_dir())]}
    try:
        for p in modes:
            os.chmod(p, 0o555)
        yield
    finally:
        for p, m in modes.items():
            os.chmod(p, m)


def everything(*folders: Path) -> dict[str, int]:
    return mtimes(f for d in folders for f in d.rglob("*"))


def refused(p: Proc, folder: Path, before: dict, after: dict) -> list[str]:
    """Problems of a command that was given a read-only folder: it must fail naming it, cleanly, writing nothing."""
    out = []
    if "[faults.py: killed, still running" in p.err:
        out.append(f"hung instead of failing (killed after {TIMEOUT:.0f} s): {_last_line(p.err.rsplit('[faults.py', 1)[0])}")
    elif p.rc == 0:
        out.append("succeeded although its output folder is read-only")
    elif str(folder) not in p.text:
        out.append(f"failed without naming {folder}: {_last_line(p.err)}")
    elif "Traceback (most recent call last)" in p.err:
        out.append(f"failed naming the folder, but with a Python traceback, not a clear message: {_last_line(p.err)}")
    if after != before:
        out.append(f"changed {len(set(after.items()) ^ set(before.items()))} files while failing")
    return out


def ro_runs(lab: Lab, rng: random.Random, n: int) -> dict:
    """`hgrlib train` into a read-only runs folder (holding this run killed at a random point, maybe not yet begun)."""
    ref = lab.train_ref

    def one(i: int) -> Trial:
        runs = lab.fresh(f"ro-runs-{i}") / "runs"
        runs.mkdir()
        delay = rng.uniform(0, 1) * ref["seconds"]
        run(lab, lab.train_cmd(runs), "ro-runs-killed", after(delay, kill_tree))
        if any(runs.glob("*/result.json")):  # it finished: reading it back needs no writing, not this trial's case
            shutil.rmtree(runs)
            runs.mkdir()
        t = Trial(f"read-only runs folder holding what a run killed {delay:.1f} s in left")
        before = everything(runs)
        with read_only(runs):
            first = run(lab, lab.train_cmd(runs), "ro-runs", preexec=without_dac_override)
        t.problems = refused(first, runs, before, everything(runs))
        again = run(lab, lab.train_cmd(runs), "ro-runs-rerun")
        t.problems += rc_problems(again, "rerun after restoring permissions") + lab.check_train(runs)
        return t

    return trials("ro-runs", n, one, "clear error, rerun identical")


def ro_results(lab: Lab, rng: random.Random, n: int) -> dict:
    """`./run_all.sh --only 02` into a read-only results folder (its runs are cached: the reference's runs folder)."""
    ref = lab.notebook_ref

    def one(i: int) -> Trial:
        d = lab.fresh(f"ro-results-{i}")
        (d / "results").mkdir()
        t = Trial("read-only (empty) results folder from the start")
        before = everything(d, ref["runs_dir"])
        with read_only(d / "results"):
            first = run(lab, lab.notebook_cmd(d, ref["runs_dir"]), "ro-results", preexec=without_dac_override)
        t.problems = refused(first, d / "results", before, everything(d, ref["runs_dir"]))
        again = run(lab, lab.notebook_cmd(d, ref["runs_dir"]), "ro-results-rerun")
        t.problems += rc_problems(again, "rerun after restoring permissions") + diff("tables", ref["tables"], tables(d / "results"))
        return t

    return trials("ro-results", n, one, "clear error, rerun identical")


def full_disk_train(lab: Lab, rng: random.Random, n: int) -> dict:
    """The disk fills (every write fails with EFBIG) at a random point of `hgrlib train`; a rerun without the limit must be identical."""
    ref = lab.train_ref

    def one(i: int) -> Trial:
        runs = lab.fresh(f"full-disk-train-{i}") / "runs"
        delay = rng.uniform(0, 0.9) * ref["span"]
        first = run(lab, lab.train_cmd(runs), "full-disk-train", after(delay, fill_disk, exists(runs, "*/checkpoint.pt")), ignore_sigxfsz)
        t = Trial(f"disk full {delay:.2f} s after the first checkpoint", struck=first.rc != 0)
        if first.rc == 0:  # only right if every write had been done before the disk filled
            t.problems = [f"on a full disk: {p}" for p in lab.check_train(runs)]
        kept = mtimes(runs.glob("*/checkpoint.pt"))
        again = run(lab, lab.train_cmd(runs), "full-disk-train-rerun")
        t.problems += rc_problems(again, "rerun") + lab.check_train(runs)
        t.lost = [f"the checkpoint was discarded: {_last_line(again.err, 'checkpoint')}"] if kept and "checkpoint" in again.err else []
        return t

    return trials("full-disk-train", n, one, "failed, rerun identical")


def full_disk_prep(lab: Lab, rng: random.Random, n: int) -> dict:
    """The disk fills at a random point of `hgrlib prep` from nothing; a rerun without the limit must give the reference cache."""
    ref = lab.prep_ref

    def one(i: int) -> Trial:
        d = lab.fresh(f"full-disk-prep-{i}")
        delay = rng.uniform(0.05, 0.95) * ref["seconds"]
        first = run(lab, prep_cmd(d / "data", d / "cache"), "full-disk-prep", after(delay, fill_disk), ignore_sigxfsz)
        t = Trial(f"disk full {delay:.1f} s after start", struck=first.rc != 0)
        if first.rc == 0:
            t.problems = [f"on a full disk: {p}" for p in diff("cache", ref["cache"], cache_digests(d / "cache", d / "data"))]
        kept = mtimes(f for f in clip_files(d / "cache", d / "data") if npz_digest(f) is not None)
        again = run(lab, prep_cmd(d / "data", d / "cache"), "full-disk-prep-rerun")
        t.problems += rc_problems(again, "rerun") + diff("cache", ref["cache"], cache_digests(d / "cache", d / "data"))
        t.lost = [f"{len(x)} clip files extracted before the disk filled were extracted again"] if (x := redone(kept)) else []
        return t

    return trials("full-disk-prep", n, one, "failed, rerun identical")


def damage_npz(path: Path, rng: random.Random) -> str:
    """Truncate the file, or flip one byte inside one of its arrays' data; says what it did."""
    size = path.stat().st_size
    if rng.random() < 0.5:
        keep = rng.randrange(size)
        os.truncate(path, keep)
        return f"truncated {path.name} to {keep} of {size} bytes"
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(rng.choice(["audio.npy", "faces.npy"]))
    with open(path, "r+b") as fh:
        fh.seek(info.header_offset + 26)
        name_len, extra_len = np.frombuffer(fh.read(4), "<u2")
        start = info.header_offset + 30 + int(name_len) + int(extra_len)  # the member's bytes: the .npy file
        fh.seek(start + 6)
        major = fh.read(1)[0]
        fh.seek(start + 8)
        header = int(np.frombuffer(fh.read(2 if major == 1 else 4), "<u2" if major == 1 else "<u4")[0])
        data = start + (10 if major == 1 else 12) + header
        at = rng.randrange(data, start + info.file_size)
        fh.seek(at)
        byte = fh.read(1)[0]
        fh.seek(at)
        fh.write(bytes([byte ^ rng.randrange(1, 256)]))
    return f"flipped byte {at} ({info.filename} data) of {path.name}"


def corrupt_cache(lab: Lab, rng: random.Random, n: int) -> dict:
    """Damage one per-clip cache file, then `hgrlib train` (fresh runs folder); damage one again, then `hgrlib prep`.
    Each must name the damaged file and extract it again; results and cache identical to the untouched ones."""
    untouched = cache_digests(lab.cache, lab.data)

    def damaged_then(cmd, cache: Path, what: str) -> tuple[str, list[str], list[str]]:
        victim = rng.choice(clip_files(cache, lab.data))
        how = damage_npz(victim, rng)
        others = mtimes(clip_files(cache, lab.data))
        p = run(lab, cmd, what)
        problems = rc_problems(p, what)
        if str(victim) not in p.text:
            problems.append(f"{what} did not name the damaged {victim}")
        problems += diff(f"cache after {what}", untouched, cache_digests(cache, lab.data))
        return (
            f"{how}, then {what}",
            problems,
            [f"{what} re-extracted {len(x)} undamaged clips"] if (x := redone(others, str(victim))) else [],
        )

    def one(i: int) -> Trial:
        d = lab.fresh(f"corrupt-cache-{i}")
        shutil.copytree(lab.cache, d / "cache")  # copy2: the undamaged files keep their times
        p1, problems1, lost1 = damaged_then(lab.train_cmd(d / "runs", d / "cache"), d / "cache", "train")
        problems1 += lab.check_train(d / "runs")
        p2, problems2, lost2 = damaged_then(prep_cmd(lab.data, d / "cache"), d / "cache", "prep")
        return Trial(f"{p1}; {p2}", problems1 + problems2, lost1 + lost2)

    return trials("corrupt-cache", n, one, "reported, re-extracted, identical")


def flip_metric_digit(result_file: Path, rng: random.Random) -> str:
    """Change one digit of one test metric in result.json's text (its checksum left as it was); says which."""
    text = result_file.read_text()
    test = json.loads(text)["test"]
    key = rng.choice(sorted(k for k, v in test.items() if isinstance(v, (int, float)) and not isinstance(v, bool)))
    at = text.index(f'\n    "{key}": ', text.index('\n  "test": {')) + len(f'\n    "{key}": ')
    old = text[at:].split(",")[0].split("\n")[0]
    for _ in range(100):
        j = rng.choice([k for k, c in enumerate(old) if c.isdigit()])
        new = old[:j] + rng.choice([c for c in "0123456789" if c != old[j]]) + old[j + 1 :]
        if json.loads(new) != json.loads(old):
            break
    result_file.write_text(text[:at] + new + text[at + len(old) :])
    return f"test.{key} {old} -> {new}"


def corrupt_result(lab: Lab, rng: random.Random, n: int) -> dict:
    """A digit of a test metric in a finished run's result.json changed; `hgrlib train` must name it and retrain identically."""
    ref = lab.train_ref

    def one(i: int) -> Trial:
        runs = lab.fresh(f"corrupt-result-{i}") / "runs"
        shutil.copytree(ref["runs"], runs)
        (result,) = runs.glob("*/result.json")
        t = Trial(flip_metric_digit(result, rng))
        p = run(lab, lab.train_cmd(runs), "corrupt-result")
        t.problems = rc_problems(p, "train") + ([] if str(result) in p.text else [f"train did not name the altered {result}"])
        t.problems += lab.check_train(runs)
        return t

    return trials("corrupt-result", n, one, "reported, retrained, identical")


FAULTS = {
    "prep-kill": prep_kill,
    "train-kill": train_kill,
    "notebook-kill": notebook_kill,
    "ro-runs": ro_runs,
    "ro-results": ro_results,
    "full-disk-train": full_disk_train,
    "full-disk-prep": full_disk_prep,
    "corrupt-cache": corrupt_cache,
    "corrupt-result": corrupt_result,
}


# ----------------------------------------------------------------------------- command line


def markdown(rows: list[dict]) -> str:
    cell = lambda s: str(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| fault | tried | outcome | data lost |", "|---|---|---|---|"]
    return "\n".join(lines + [f"| {r['fault']} | {r['tried']} | {cell(r['outcome'])} | {cell(r['data_lost'])} |" for r in rows])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=3, help="tries of each fault (default 3)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random points")
    ap.add_argument("--workdir", default=None, help="scratch folder (default: a temporary one, removed if every fault passes)")
    ap.add_argument("--out", default=None, help="write the measured table (and every trial) to this JSON file")
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    ap.add_argument("--only", default="", help=f"comma-separated faults (default all: {', '.join(FAULTS)})")
    a = ap.parse_args(argv)
    names = [x for x in a.only.split(",") if x] or list(FAULTS)
    if unknown := set(names) - set(FAULTS):
        ap.error(f"unknown fault(s) {sorted(unknown)}; choose from {', '.join(FAULTS)}")
    workdir = Path(a.workdir or tempfile.mkdtemp(prefix="hgr-faults-"))
    lab, t0 = Lab(workdir), time.monotonic()
    print(f"scratch folder: {workdir}", flush=True)
    rows = []
    for name in names:
        print(f"{name}:", flush=True)
        try:
            rows.append(FAULTS[name](lab, random.Random(f"{a.seed}:{name}"), a.trials))  # its schedule whatever else runs
        except Exception as e:  # its reference run failed: nothing to compare with
            rows.append({"fault": name, "tried": 0, "outcome": f"FAILED: {type(e).__name__}: {e}", "data_lost": "unknown", "ok": False})
        print(f"  -> {rows[-1]['outcome']}; data lost: {rows[-1]['data_lost']}", flush=True)
    ok = all(r["ok"] for r in rows)
    print(f"\n{sum(r['ok'] for r in rows)} of {len(rows)} faults survived, in {time.monotonic() - t0:.0f} s")
    if a.out:
        Path(a.out).write_text(
            json.dumps({"seed": a.seed, "trials": a.trials, "seconds": time.monotonic() - t0, "faults": rows}, indent=2) + "\n"
        )
    if a.markdown:
        print("\n" + markdown(rows))
    if ok and not a.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    elif not ok:
        print(f"\nlogs of every command: {workdir / 'logs'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
