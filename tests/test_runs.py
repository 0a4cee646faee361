"""A run is trained once: processes racing for it share the work, a crashed holder's lease expires, a live
holder on another node keeps it (the lease is renewed, not judged by a PID that means nothing there)."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time

import pytest
from filelock import Timeout
from fixtures import random_featureset

from hgrlib.config import Config

CFG = Config().with_(model={"dim": 8, "width": 4}, train={"epochs": 2, "batch_size": 16, "threads": 1})
LEASE = 2.0


def _race(runs_dir: str, log: str) -> None:
    import hgrlib.experiment.runs as runs

    real = runs.fit

    def counted(*a, **k):
        with open(log, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        return real(*a, **k)

    runs.fit = counted
    r = runs.cached_fit(CFG, random_featureset(), runs_dir, progress=False)
    with open(f"{log}.{os.getpid()}", "w") as fh:
        fh.write(repr(r["seconds"]))


@pytest.mark.slow
def test_two_processes_racing_for_one_run_train_it_once(tmp_path):
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_race, args=(str(tmp_path / "runs"), str(tmp_path / "trained"))) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
        assert p.exitcode == 0
    assert len((tmp_path / "trained").read_text().split()) == 1  # one process trained, the other waited
    seconds = {(tmp_path / f"trained.{p.pid}").read_text() for p in procs}
    assert len(seconds) == 1  # both returned the one result.json


def _hold(run_dir: str, host: str, ready: str, hold: float) -> None:
    """Hold the run's lease as a process on node `host` would, then sleep (SIGKILLed, or for `hold` s)."""
    import socket

    socket.gethostname = lambda: host  # filelock records the holder's host; on another host its PID means nothing
    from hgrlib.experiment.runs import run_lock

    with run_lock(run_dir, lease=LEASE):
        open(ready, "w").close()
        time.sleep(hold)


def _start_holder(tmp_path, hold: float):
    ready = tmp_path / "ready"
    p = mp.get_context("spawn").Process(target=_hold, args=(str(tmp_path), "node-b", str(ready), hold))
    p.start()
    while not ready.exists():
        assert p.is_alive(), "the holder died before taking the lease"
        time.sleep(0.05)
    return p


@pytest.mark.slow
def test_a_crashed_holders_lease_expires(tmp_path):
    from hgrlib.experiment.runs import run_lock

    p = _start_holder(tmp_path, hold=600)
    os.kill(p.pid, signal.SIGKILL)  # a job killed on another node: nothing releases its lock
    p.join()
    t0 = time.monotonic()
    with run_lock(str(tmp_path), lease=LEASE, poll=0.2):
        waited = time.monotonic() - t0
    assert LEASE * 0.9 <= waited < LEASE * 5  # taken over once unrenewed for a lease, not before, not never


@pytest.mark.slow
def test_a_live_holder_on_another_node_keeps_the_run(tmp_path):
    from filelock import SoftFileLease

    p = _start_holder(tmp_path, hold=4 * LEASE)
    try:
        lock = SoftFileLease(str(tmp_path / ".lock"), lease_duration=LEASE, thread_local=False)
        with pytest.raises(Timeout):
            lock.acquire(timeout=3 * LEASE)  # longer than a lease: the heartbeat keeps renewing it
    finally:
        p.join()
    assert p.exitcode == 0
