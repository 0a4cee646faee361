"""Where a grid's runs train: in this process, in processes side by side on this machine (-j), or as cluster
jobs through submitit, one job per grid point (`./run_all.sh --executor slurm`).

Whatever the executor, a run is `runs.cached_fit`: the same runs/<hash>/ folder and result.json, so a
notebook reads back what a job trained, and a finished run is never trained again.

    HGRLIB_JOBS       runs side by side on this machine when train_all is given no `jobs` (0: one per core; the
                      notebooks pass their parameter `jobs`, run_all.sh -j, as jobs=S.jobs)
    HGRLIB_EXECUTOR   pool (default: this machine) | slurm | submitit-local (submitit's local executor)
    HGRLIB_STACK      runs trained as one stacked network (hgrlib.core.train_stacked); 0 or unset: AUTO_STACK
    HGRLIB_SLURM      submitit parameters for the jobs, "key=value,...", e.g.
                      "slurm_partition=gpu,timeout_min=60,cpus_per_task=1,gpus_per_node=1,slurm_array_parallelism=64"
"""

from __future__ import annotations

import json
import os
import pickle
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from hgrlib.base.io import atomic
from hgrlib.config import Config
from hgrlib.core.stacked import stack_signature, stackable
from hgrlib.data.featureset import FeatureSet
from hgrlib.experiment.runs import cached_fit, cached_fit_stack, read_result, run_dir

EXECUTORS = ("pool", "slurm", "submitit-local")
# runs per stack when none is asked for; measured in benchmarks/README.md: on the 2-core CPU a stack trains
# no faster per run than runs alone (the convolutions already run near the core's matmul rate), so runs train
# alone there; on an H100 stacks of 16 train 1.8x (default profile) to 2.2x (paper profile) faster per run
AUTO_STACK = {"cpu": 1, "cuda": 16}


def resolve_jobs(jobs: int, fs: FeatureSet | None = None) -> int:
    """Training processes to run side by side: `jobs`, or for 0 one per CPU core (one on a GPU machine),
    capped so that the copies of the features each process holds take at most half the free memory."""
    import torch

    if jobs <= 0:
        jobs = 1 if torch.cuda.is_available() else (os.cpu_count() or 1)
    if fs is not None and jobs > 1:
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):  # not Linux: no cap
            return jobs
        per_job = fs.audio.nbytes + fs.faces.nbytes
        jobs = max(1, min(jobs, int(free // 2 // max(per_job, 1))))
    return jobs


def stack_size(stack: int | None = None) -> int:
    """Runs per stack: `stack`, else HGRLIB_STACK, else (0 or unset) this machine's default, AUTO_STACK."""
    import torch

    if stack is None:
        stack = int(os.environ.get("HGRLIB_STACK", "0") or 0)
    if stack < 0:
        raise ValueError(f"stack size must be >= 0 (0: this machine's default), got {stack}")
    return stack or AUTO_STACK["cuda" if torch.cuda.is_available() else "cpu"]


def pack(cfgs: list[Config], stack: int) -> list[list[int]]:
    """Groups of indices into `cfgs` that train together: distinct stackable configs of one stack signature,
    in their order, cut into near-equal stacks of at most `stack` (10 configs, stack 8: 5 + 5); every other
    config alone. Deterministic in `cfgs`: a rerun after an interruption packs, and so keys, the same way."""
    first: dict[str, int] = {}
    for i, c in enumerate(cfgs):
        first.setdefault(_ident(c), i)
    by_sig: dict[tuple, list[int]] = {}
    groups: list[list[int]] = []
    for i in first.values():
        if stack > 1 and stackable(cfgs[i]):
            by_sig.setdefault(stack_signature(cfgs[i]), []).append(i)
        else:
            groups.append([i])
    for members in by_sig.values():
        n = -(-len(members) // stack)
        groups += [list(part) for part in np.array_split(members, n)]
    return groups


def train_all(
    cfgs: list[Config],
    fs: FeatureSet,
    runs_dir: str = "runs",
    progress: bool = True,
    jobs: int | None = None,
    catch: tuple[type[BaseException], ...] = (),
    executor: str | None = None,
    stack: int | None = None,
) -> list:
    """Fit every config (finished ones are read back from runs/, not redone); results in the order of `cfgs`.

    `jobs` defaults to HGRLIB_JOBS, else 1; 0 means one per core (`resolve_jobs`). Each process gets
    cpu_count // jobs torch threads unless the config pins `train.threads` (the default profile pins 1, so
    its numbers do not depend on `jobs`). `executor` defaults to HGRLIB_EXECUTOR, else "pool". `stack`:
    runs trained as one stacked network (`stack_size`, `pack`; hgrlib.core.train_stacked); a stack's runs are
    keyed by its size. A run raising one of `catch` gives its exception in place of its result; the others
    go on (a stack that raises one is trained again run by run).
    """
    executor = executor or os.environ.get("HGRLIB_EXECUTOR") or "pool"
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; use one of {', '.join(EXECUTORS)}")
    jobs = int(os.environ.get("HGRLIB_JOBS", "1")) if jobs is None else jobs
    groups = pack(cfgs, stack_size(stack))
    if executor != "pool":
        done = submit_all([[cfgs[i] for i in g] for g in groups], fs, runs_dir, executor, resolve_jobs(jobs, fs), catch, progress)
    else:
        done = _pool_all([[cfgs[i] for i in g] for g in groups], fs, runs_dir, jobs, catch, progress)
    by_cfg = {_ident(cfgs[i]): r for g, rs in zip(groups, done) for i, r in zip(g, rs)}
    return [by_cfg[_ident(c)] for c in cfgs]


def _ident(c: Config) -> str:
    """A config as a string: equal configs are one grid point."""
    return json.dumps(c.to_dict(), sort_keys=True)


def _pool_all(groups: list[list[Config]], fs: FeatureSet, runs_dir: str, jobs: int, catch: tuple, progress: bool) -> list:
    """Each group's results, the groups trained in this process or in `jobs` processes side by side."""
    from hgrlib.base.progress import bar as progress_bar
    from hgrlib.base.progress import batch

    n_runs = sum(map(len, groups))
    jobs = min(resolve_jobs(jobs, fs), len(groups))
    if jobs <= 1:
        bar = progress_bar(total=n_runs, desc="runs", unit="run", disable=not progress)
        out = []
        for g in groups:
            out.append(fit_group(g, fs, runs_dir, catch, progress and not batch()))  # epoch bars only where watched
            bar.update(len(g))
        bar.close()
        return out
    threads = max(1, (os.cpu_count() or 1) // jobs)
    fs.fingerprint  # computed once here and sent to the workers with the features
    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn"), initializer=_init_worker, initargs=(fs, threads)) as ex:
        futures = {ex.submit(_fit_in_worker, g, runs_dir, catch): len(g) for g in groups}
        with progress_bar(total=n_runs, desc=f"runs ({jobs} jobs)", unit="run", disable=not progress) as bar:
            for f in as_completed(futures):
                bar.update(futures[f])
        return [f.result() for f in futures]


def fit_group(cfgs: list[Config], fs: FeatureSet, runs_dir: str, catch: tuple = (), progress: bool = False) -> list:
    """Train (or read back) a group from `pack`: one config alone, several as one stack. A stack that raises
    one of `catch` is trained again run by run (solo keys), so one failing run does not take the others' down."""
    if len(cfgs) > 1:
        try:
            return cached_fit_stack(cfgs, fs, runs_dir, progress=progress)
        except catch as e:
            print(f"a stack of {len(cfgs)} runs failed ({type(e).__name__}: {e}); training them one by one", file=sys.stderr)
    out = []
    for c in cfgs:
        try:
            out.append(cached_fit(c, fs, runs_dir, progress=progress))
        except catch as e:
            out.append(e)
    return out


_worker_fs: list[FeatureSet] = []


def _init_worker(fs: FeatureSet, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    _worker_fs.append(fs)


def _fit_in_worker(cfgs: list[Config], runs_dir: str, catch: tuple) -> list:
    return fit_group(cfgs, _worker_fs[0], runs_dir, catch)


def submit_all(
    groups: list[list[Config]],
    fs: FeatureSet,
    runs_dir: str,
    executor: str,
    parallel: int,
    catch: tuple[type[BaseException], ...] = (),
    progress: bool = True,
) -> list:
    """Train the unfinished groups as submitit jobs (a SLURM array: one task per group, i.e. per grid point
    when runs are not stacked), wait, and return every group's results. The features travel once, as
    runs_dir/.featuresets/<fingerprint>.pkl (runs_dir must be on a file system the jobs share); job logs go
    to runs_dir/.submitit/."""
    import submitit

    from hgrlib.base.progress import bar as progress_bar

    results = [_finished(g, fs, runs_dir, catch) for g in groups]  # finished: nothing to submit
    todo = [i for i, r in enumerate(results) if r is None]
    if not todo:
        return results
    fs_file = share_featureset(fs, runs_dir)
    ex = submitit.AutoExecutor(folder=os.path.join(runs_dir, ".submitit", "%j"), cluster="slurm" if executor == "slurm" else "local")
    ex.update_parameters(**({"timeout_min": 120} | slurm_parameters(os.environ.get("HGRLIB_SLURM", ""))))
    chunk = len(todo) if executor == "slurm" else max(1, parallel)  # the local executor starts every job at once
    bar = progress_bar(total=sum(len(groups[i]) for i in todo), desc=f"runs ({executor} jobs)", unit="run", disable=not progress)
    for k in range(0, len(todo), chunk):
        part = todo[k : k + chunk]
        jobs = ex.map_array(train_job, [groups[i] for i in part], [fs_file] * len(part), [runs_dir] * len(part), [catch] * len(part))
        sizes = {job.job_id: len(groups[i]) for i, job in zip(part, jobs)}
        for job in submitit.helpers.as_completed(jobs, poll_frequency=1 if executor != "slurm" else 10):
            bar.update(sizes[job.job_id])
        for i, job in zip(part, jobs):
            results[i] = job.result()  # a job that failed outside `catch` raises here, with its log's path
    bar.close()
    return results


def _finished(cfgs: list[Config], fs: FeatureSet, runs_dir: str, catch: tuple) -> list | None:
    """A group's results when all are finished, else None."""
    k = len(cfgs)
    try:
        done = [read_result(run_dir(c, fs, runs_dir, k)) for c in cfgs]
    except catch:  # e.g. a config this machine cannot key (device='cuda' here): its job reports it
        return None
    return done if all(d is not None for d in done) else None


def train_job(cfgs: list[Config], fs_file: str, runs_dir: str, catch: tuple = ()) -> list:
    """What one submitit job runs: load the shared features, train (or read back) one group of configs."""
    return fit_group(cfgs, load_shared_featureset(fs_file), runs_dir, catch)


def share_featureset(fs: FeatureSet, runs_dir: str) -> str:
    """Write `fs` once where jobs can read it (atomically; kept and reused while its fingerprint is the same)."""
    path = Path(runs_dir) / ".featuresets" / f"{fs.fingerprint}.pkl"
    if not path.exists():
        with atomic(path) as tmp, open(tmp, "wb") as fh:
            pickle.dump(fs, fh, protocol=5)
    return str(path)


def load_shared_featureset(path: str) -> FeatureSet:
    """The FeatureSet `share_featureset` wrote, checked against the fingerprint in its name."""
    with open(path, "rb") as fh:
        fs = pickle.load(fh)
    fs.__dict__.pop("fingerprint", None)  # recomputed from the bytes, not trusted from the file
    if fs.fingerprint != Path(path).stem:
        raise ValueError(f"{path}: its features do not match the fingerprint in its name (damaged); delete it and rerun")
    return fs


def slurm_parameters(text: str) -> dict:
    """'key=value,key=value' → submitit parameters (numbers become int or float)."""
    out: dict = {}
    for item in filter(None, (s.strip() for s in text.replace(" ", ",").split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"HGRLIB_SLURM: {item!r} is not key=value (e.g. slurm_partition=gpu,timeout_min=60)")
        for kind in (int, float):
            try:
                value = kind(value)
                break
            except ValueError:
                pass
        out[key] = value
    return out
