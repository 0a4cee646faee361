"""Runs on disk: what a run is keyed by, its folder runs/<hash>/, reading a finished run back (checked), and
the lease that lets one process train it while the others that ask for it wait.

`cached_fit` is how everything trains: a finished run is read back, never redone; an interrupted one
resumes from its checkpoint (hgrlib.train.fit); two processes asking for the same run (notebooks side by
side with -j, SLURM jobs on other nodes sharing runs/) train it once.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile

import torch
import torch.distributed as dist
from filelock import SoftFileLease, Timeout

from hgrlib.config import Config, config_hash
from hgrlib.distributed import world
from hgrlib.io import CorruptFile, read_sealed_json
from hgrlib.provenance import TRAINING_LIBS, code_digest, file_sha256, library_versions
from hgrlib.train import FeatureSet, fit, pick_device, torch_threads

LEASE_SECONDS = 60.0  # a lock not renewed for this long (its holder died, or lost its node) is taken over


def code_version() -> str:
    """Digest of every hgrlib module a run imports (found from train.py's imports) and the shipped splits."""
    return code_digest("hgrlib.train")


def execution_key(cfg: Config) -> str:
    """What besides the config changes a run's numbers: the device type, on the CPU the thread count, and
    under torchrun the number of processes (same training, other summation order and dropout masks).

    Floating-point sums are split differently over 1 or 2 threads; over a run that moves its accuracy
    by a point or two (measured: benchmarks/README.md), so runs with different thread counts are kept apart.
    """
    device = pick_device(cfg.train.device)
    key = device.type if device.type != "cpu" else f"cpu-{cfg.train.threads or torch.get_num_threads()}threads"
    size = world()[1]
    return key if size == 1 else f"{key}-ddp{size}"


def run_key(cfg: Config, fs: FeatureSet) -> dict:
    """Everything that makes a run's numbers: config, data (every feature byte), code, libraries, execution."""
    return cfg.to_dict() | {"data": fs.fingerprint, "code": code_version(), "libs": library_versions(TRAINING_LIBS),
                            "exec": execution_key(cfg)}


def run_dir(cfg: Config, fs: FeatureSet, runs_dir: str = "runs") -> str:
    """The folder of this run: runs_dir/<hash of run_key>."""
    return os.path.join(runs_dir, config_hash(run_key(cfg, fs)))


def read_result(run_dir: str) -> dict | None:
    """A finished run's result, checked (result.json's checksum, and features.npz's against it); None if
    there is none. A damaged one is reported by path and removed, so the run is trained again."""
    result_file = os.path.join(run_dir, "result.json")
    if not os.path.exists(result_file):
        return None
    try:
        result = read_sealed_json(result_file)
        feats = os.path.join(run_dir, "features.npz")
        if not os.path.exists(feats) or file_sha256(feats) != result.get("features_sha256"):
            raise CorruptFile(f"{feats}: missing or does not match its result.json")
    except CorruptFile as e:
        print(f"{e}; training this run again", file=sys.stderr)
        with contextlib.suppress(FileNotFoundError):  # another process may have removed it first
            os.remove(result_file)
        return None
    return result


def check_writable(folders: list) -> None:
    """Make each folder and write a file in it, or raise OSError naming the folder: a read-only or full
    output folder is found before any work (and before waiting on a lock it could never take over)."""
    for d in folders:
        try:
            os.makedirs(d, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=d, prefix=".write-check-"):
                pass
        except OSError as e:
            raise OSError(e.errno, f"{e.strerror} (cannot write there; nothing was run)", str(d)) from e


@contextlib.contextmanager
def run_lock(run_dir: str, lease: float = LEASE_SECONDS, poll: float = 1.0):
    """Hold the run's lease (run_dir/.lock) while training it: filelock's SoftFileLease, a marker file its
    holder renews every lease/3 s from a heartbeat thread. It needs nothing from the file system but
    atomic create and rename (NFS, Lustre: safe across nodes, unlike PID checks or fcntl). A holder that
    dies stops renewing; after `lease` s unrenewed, as measured on each waiter's own clock, a waiter
    takes it over, so a crashed job's lock expires and its run is resumed from the checkpoint."""
    lock = SoftFileLease(os.path.join(run_dir, ".lock"), lease_duration=lease, thread_local=False)
    waited = False
    while True:
        try:
            lock.acquire(timeout=poll)
            break
        except Timeout:
            if not waited:
                print(f"{run_dir}: another process is training this run; waiting for it", file=sys.stderr)
                waited = True
    try:
        yield
    finally:
        lock.release()


def cached_fit(cfg: Config, fs: FeatureSet, runs_dir: str = "runs", progress: bool = True) -> dict:
    """Train `cfg` on `fs` once: read back when finished, resumed when interrupted, trained under the run's
    lease otherwise. Under torchrun every rank calls it; rank 0 holds the lease and decides."""
    key = run_key(cfg, fs)
    folder = os.path.join(runs_dir, config_hash(key))
    rank, size = world()
    if size == 1 and (done := read_result(folder)) is not None:
        return done
    check_writable([folder])
    with run_lock(folder) if rank == 0 else contextlib.nullcontext():
        done = [read_result(folder) if rank == 0 else None]
        if size > 1:
            dist.broadcast_object_list(done, src=0)
        if done[0] is not None:  # finished by whoever held the lease before us
            return done[0]
        with torch_threads(cfg.train.threads):
            return fit(cfg, fs, folder, progress, key=key)

