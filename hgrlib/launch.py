"""Where a grid's runs train: in this process, in processes side by side on this machine (-j), or as cluster
jobs through submitit, one job per grid point (`./run_all.sh --executor slurm`).

Whatever the executor, a run is `runs.cached_fit`: the same runs/<hash>/ folder and result.json, so a
notebook reads back what a job trained, and a finished run is never trained again.

    HGRLIB_JOBS       runs side by side on this machine (run_all.sh -j; 0: one per core)
    HGRLIB_EXECUTOR   pool (default: this machine) | slurm | submitit-local (submitit's local executor)
    HGRLIB_SLURM      submitit parameters for the jobs, "key=value,...", e.g.
                      "slurm_partition=gpu,timeout_min=60,cpus_per_task=1,gpus_per_node=1,slurm_array_parallelism=64"
"""

from __future__ import annotations

import os
import pickle
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

from hgrlib.config import Config
from hgrlib.runs import cached_fit, read_result, run_dir
from hgrlib.train import FeatureSet

EXECUTORS = ("pool", "slurm", "submitit-local")


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


def run_all(cfgs: list[Config], fs: FeatureSet, runs_dir: str = "runs", progress: bool = True, jobs: int | None = None,
            catch: tuple[type[BaseException], ...] = (), executor: str | None = None) -> list:
    """Fit every config (finished ones are read back from runs/, not redone); results in the order of `cfgs`.

    `jobs` defaults to HGRLIB_JOBS, else 1; 0 means one per core (`resolve_jobs`). Each process gets
    cpu_count // jobs torch threads unless the config pins `train.threads` (the default profile pins 1, so
    its numbers do not depend on `jobs`). `executor` defaults to HGRLIB_EXECUTOR, else "pool".
    A run raising one of `catch` gives its exception in place of its result; the others go on.
    """
    executor = executor or os.environ.get("HGRLIB_EXECUTOR") or "pool"
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; use one of {', '.join(EXECUTORS)}")
    jobs = int(os.environ.get("HGRLIB_JOBS", "1")) if jobs is None else jobs
    if executor != "pool":
        return submit_all(cfgs, fs, runs_dir, executor, resolve_jobs(jobs, fs), catch, progress)
    from tqdm.auto import tqdm

    jobs = min(resolve_jobs(jobs, fs), len(cfgs))
    if jobs <= 1:
        return [_fit_or(c, fs, runs_dir, catch, progress) for c in tqdm(cfgs, desc="runs", unit="run", disable=not progress)]
    threads = max(1, (os.cpu_count() or 1) // jobs)
    fs.fingerprint  # computed once here and sent to the workers with the features
    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn"), initializer=_init_worker, initargs=(fs, threads)) as ex:
        futures = [ex.submit(_fit_in_worker, c, runs_dir, catch) for c in cfgs]
        for _ in tqdm(as_completed(futures), total=len(futures), desc=f"runs ({jobs} jobs)", unit="run", disable=not progress):
            pass
        return [f.result() for f in futures]


def _fit_or(cfg: Config, fs: FeatureSet, runs_dir: str, catch: tuple, progress: bool = False):
    try:
        return cached_fit(cfg, fs, runs_dir, progress=progress)
    except catch as e:
        return e


_worker_fs: list[FeatureSet] = []


def _init_worker(fs: FeatureSet, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    _worker_fs.append(fs)


def _fit_in_worker(cfg: Config, runs_dir: str, catch: tuple):
    return _fit_or(cfg, _worker_fs[0], runs_dir, catch)


def submit_all(cfgs: list[Config], fs: FeatureSet, runs_dir: str, executor: str, parallel: int,
               catch: tuple[type[BaseException], ...] = (), progress: bool = True) -> list:
    """Train the unfinished configs as submitit jobs (a SLURM array: one task per grid point), wait, and
    return every result. The features travel once, as runs_dir/.featuresets/<fingerprint>.pkl (runs_dir
    must be on a file system the jobs share); job logs go to runs_dir/.submitit/."""
    import submitit
    from tqdm.auto import tqdm

    results = [_finished(c, fs, runs_dir, catch) for c in cfgs]  # finished: nothing to submit
    todo = [i for i, r in enumerate(results) if r is None]
    if not todo:
        return results
    fs_file = share_featureset(fs, runs_dir)
    ex = submitit.AutoExecutor(folder=os.path.join(runs_dir, ".submitit", "%j"), cluster="slurm" if executor == "slurm" else "local")
    ex.update_parameters(**({"timeout_min": 120} | slurm_parameters(os.environ.get("HGRLIB_SLURM", ""))))
    chunk = len(todo) if executor == "slurm" else max(1, parallel)  # the local executor starts every job at once
    bar = tqdm(total=len(todo), desc=f"runs ({executor} jobs)", unit="run", disable=not progress)
    for k in range(0, len(todo), chunk):
        part = todo[k : k + chunk]
        jobs = ex.map_array(train_job, [cfgs[i] for i in part], [fs_file] * len(part), [runs_dir] * len(part),
                            [catch] * len(part))
        for _ in submitit.helpers.as_completed(jobs, poll_frequency=1 if executor != "slurm" else 10):
            bar.update()
        for i, job in zip(part, jobs):
            results[i] = job.result()  # a job that failed outside `catch` raises here, with its log's path
    bar.close()
    return results


def _finished(cfg: Config, fs: FeatureSet, runs_dir: str, catch: tuple) -> dict | None:
    try:
        return read_result(run_dir(cfg, fs, runs_dir))
    except catch:  # e.g. a config this machine cannot key (device='cuda' here): its job reports it
        return None


def train_job(cfg: Config, fs_file: str, runs_dir: str, catch: tuple = ()):
    """What one submitit job runs: load the shared features, train (or read back) one config."""
    return _fit_or(cfg, load_shared_featureset(fs_file), runs_dir, catch)


def share_featureset(fs: FeatureSet, runs_dir: str) -> str:
    """Write `fs` once where jobs can read it (atomically; kept and reused while its fingerprint is the same)."""
    path = Path(runs_dir) / ".featuresets" / f"{fs.fingerprint}.pkl"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
        with open(tmp, "wb") as fh:
            pickle.dump(fs, fh, protocol=5)
        os.replace(tmp, path)
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
