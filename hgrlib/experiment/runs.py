"""Runs on disk: what a run is keyed by, its folder runs/<hash>/, reading a finished run back (checked), and
the lease that lets one process train it while the others that ask for it wait.

`cached_fit` is how everything trains: a finished run is read back, never redone; an interrupted one
resumes from its checkpoint (hgrlib.core.train.fit); two processes asking for the same run (notebooks side by
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

from hgrlib.base.io import CorruptFile, read_sealed_json
from hgrlib.base.provenance import TRAINING_LIBS, code_digest, file_sha256, library_versions, machine_identity, machine_tag
from hgrlib.config import Config, config_hash
from hgrlib.core.distributed import world
from hgrlib.core.result import RunResult
from hgrlib.core.runtime import pick_device, torch_threads
from hgrlib.core.train import WEIGHTS_FILE, fit
from hgrlib.core.train_stacked import fit_stacked
from hgrlib.data.featureset import FeatureSet

LEASE_SECONDS = 60.0  # a lock not renewed for this long (its holder died, or lost its node) is taken over


def code_version() -> str:
    """Digest of every hgrlib module a run imports (the closure of hgrlib.core.train's imports: the one trainer,
    alone and stacked) and the shipped splits."""
    return code_digest("hgrlib.core.train")


def execution_key(cfg: Config, stack: int = 1) -> str:
    """What besides the config changes a run's numbers: the device (on the CPU its thread count and the machine
    identity, hgrlib.base.provenance.machine_tag; on a GPU its name), under torchrun the number of processes (same
    training, other summation order and dropout masks), and the size of the stack it trained in
    (hgrlib.core.train_stacked: same training, other summation order; measured: a member's bytes depend on the
    stack's size, not on the other members).

    Floating-point sums are split differently over 1 or 2 threads and computed by other kernels on another CPU
    model; over a run either moves its accuracy by points (measured: docs/reproducibility.md), so such runs are
    kept apart: a runs/ folder shared by nodes of different CPUs never mixes their runs in one table.
    """
    device = pick_device(cfg.train.device)
    if device.type == "cpu":
        key = f"cpu-{cfg.train.threads or torch.get_num_threads()}threads-{machine_tag(machine_identity())}"
    else:
        key = f"{device.type}-{torch.cuda.get_device_name(device).replace(' ', '_')}" if device.type == "cuda" else device.type
    size = world()[1]
    key = key if size == 1 else f"{key}-ddp{size}"
    return key if stack == 1 else f"{key}-stack{stack}"


def run_key(cfg: Config, fs: FeatureSet, stack: int = 1) -> dict:
    """Everything that makes a run's numbers: config, data (every feature byte), code, libraries, execution.
    `stack`: 1 for a run trained alone (hgrlib.core.train.fit), else the size of its stack."""
    return cfg.to_dict() | {
        "data": fs.fingerprint,
        "code": code_version(),
        "libs": library_versions(TRAINING_LIBS),
        "exec": execution_key(cfg, stack),
    }


def run_dir(cfg: Config, fs: FeatureSet, runs_dir: str = "runs", stack: int = 1) -> str:
    """The folder of this run: runs_dir/<hash of run_key>."""
    return os.path.join(runs_dir, config_hash(run_key(cfg, fs, stack)))


def read_result(run_dir: str) -> dict | None:
    """A finished run's result, checked (result.json's checksum, and features.npz's and weights.pt's against
    it); None if there is none. A damaged one is reported by path and removed, so the run is trained again."""
    result_file = os.path.join(run_dir, "result.json")
    if not os.path.exists(result_file):
        return None
    try:
        result = read_run_result(result_file)
        feats = os.path.join(run_dir, "features.npz")
        if not os.path.exists(feats) or file_sha256(feats) != result.features_sha256:
            raise CorruptFile(f"{feats}: missing or does not match its result.json")
        weights = os.path.join(run_dir, WEIGHTS_FILE)
        if not os.path.exists(weights) or file_sha256(weights) != result.weights_sha256:
            raise CorruptFile(f"{weights}: missing or does not match its result.json")
    except CorruptFile as e:
        print(f"{e}; training this run again", file=sys.stderr)
        with contextlib.suppress(FileNotFoundError):  # another process may have removed it first
            os.remove(result_file)
        return None
    # callers index it as a dict (the notebooks' tables, launch): the dict result.json holds, its keys in the file's
    # (sorted) order, as before RunResult read it
    return dict(sorted(result.to_dict().items()))


def read_run_result(result_file: str) -> RunResult:
    """result.json as a RunResult (hgrlib.core.result), checked; a file lacking one of its fields is reported as damaged."""
    d = read_sealed_json(result_file)
    try:
        return RunResult.from_dict(d)
    except TypeError as e:  # a required field missing
        raise CorruptFile(f"{result_file}: not a run's result ({e})") from None


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
    folder = run_dir(cfg, fs, runs_dir)
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


def cached_fit_stack(cfgs: list[Config], fs: FeatureSet, runs_dir: str = "runs", progress: bool = True) -> list[dict]:
    """Train distinct configs of one stack signature as one stack (hgrlib.core.train_stacked) once: read back when
    every member has finished, else trained under every member's lease (taken in folder order, so two
    processes asking for overlapping stacks cannot deadlock). A member that had finished is trained again
    with the others (its bytes do not change: same stack size, same numbers) and rewritten atomically."""
    k = len(cfgs)
    keys = [run_key(c, fs, k) for c in cfgs]
    folders = [os.path.join(runs_dir, config_hash(key)) for key in keys]
    if len(set(folders)) != k:
        raise ValueError("cached_fit_stack: the configs of a stack must be distinct")
    done = [read_result(f) for f in folders]
    if all(d is not None for d in done):
        return done
    check_writable(folders)
    with contextlib.ExitStack() as leases:
        for f in sorted(folders):
            leases.enter_context(run_lock(f))
        done = [read_result(f) for f in folders]
        if all(d is not None for d in done):  # finished by whoever held the leases before us
            return done
        with torch_threads(cfgs[0].train.threads):
            return fit_stacked(cfgs, fs, folders, progress, keys=keys)
