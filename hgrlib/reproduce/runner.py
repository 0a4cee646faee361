"""Batch reproduction (what run_all.sh calls): every notebook through papermill, skipping unchanged work.

A notebook is re-run when its own file, its parameters, the hgrlib code (comments and docstrings
aside), a library version, its upstream notebook (01's data preparation) or, for 01, the dataset's
file listing changed, or when an output it wrote is missing or altered; otherwise it is skipped.
Executed notebooks go to results/<dataset>-<profile>/, with an HTML copy beside each (written again from
the executed notebook when missing, as on a fresh clone: it is not committed), and results/manifest.json
lists every table and figure with the notebook and parameters that made it, the commit, the time
and a sha256.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from hgrlib.base.io import read_json, rel_path, write_json, write_text
from hgrlib.base.project import git_commit, os_error, project_dir
from hgrlib.base.provenance import (
    DISPATCHES,
    FEATURE_LIBS,
    TRAINING_LIBS,
    file_sha256,
    library_versions,
    machine_identity,
    package_digest,
)
from hgrlib.config import CLASSES, DATASETS, FOLDS, DataConfig
from hgrlib.data.folds import FOLD_SPECS
from hgrlib.experiment.profiles import PROFILES, results_tag
from hgrlib.reproduce.results_index import (  # results/README.md, manifest.json, README.md's sections
    NOTEBOOK_DIR,
    read_stamps,
    update_readme,
    write_manifest,
)
from hgrlib.reproduce.verify import verify

# every library whose version can change a table or figure: a new version re-runs the notebooks
STAMP_LIBS = tuple(dict.fromkeys(TRAINING_LIBS + FEATURE_LIBS + ("scikit-learn", "scipy", "pandas", "umap-learn", "matplotlib")))


def _sha(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(hashlib.sha256(p).digest())
    return h.hexdigest()


def data_digest(dataset: str, root: str | None) -> bytes:
    """Digest of a real dataset's file listing (names, sizes, mtimes); the synthetic corpus is made from code."""
    if dataset == "synthetic" or not root or not Path(root).exists():
        return f"{dataset}:{root}".encode()
    from hgrlib.data.walk import walk_files

    p = Path(root)
    files = [p] if p.is_file() else walk_files(p)  # through linked folders, as the loaders walk
    return _sha(*(f"{f}:{f.stat().st_size}:{f.stat().st_mtime_ns}".encode() for f in files)).encode()


def execute(nb: Path, out: Path, params: dict, cwd: Path) -> None:
    """Run one notebook with papermill, then render it to HTML beside the executed copy.

    The kernel inherits the environment `run_notebooks` sets (HGRLIB_BATCH=1: progress bars print one line when done,
    hgrlib.base.progress); the executed copy records its paths relative to the project, not this machine's folders."""
    import nbformat
    import papermill as pm

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.running.ipynb")
    pm.execute_notebook(
        str(nb),
        str(tmp),
        parameters=params,
        kernel_name="python3",
        cwd=str(cwd),
        progress_bar=sys.stderr.isatty(),
        kernel_manager_class=_ipc_kernel_manager(),
    )
    done = nbformat.read(tmp, as_version=4)
    done.metadata.papermill.update(input_path=rel_path(nb, cwd), output_path=rel_path(out, cwd))
    nbformat.write(done, tmp)
    tmp.replace(out)
    write_html(out)


def write_html(ipynb: Path) -> Path:
    """The executed notebook as an HTML page beside it, titled after the notebook (readable without Jupyter)."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(ipynb, as_version=4)
    html, _ = HTMLExporter().from_notebook_node(nb, resources={"metadata": {"name": notebook_title(nb, ipynb.stem)}})
    return write_text(ipynb.with_suffix(".html"), html)


def _ipc_kernel_manager():
    """nbclient's kernel manager talking to the kernel over local IPC sockets (in Jupyter's runtime folder),
    not TCP: nothing listens on the network, and the kernel does not warn that TCP is unencrypted."""
    from jupyter_client.manager import AsyncKernelManager

    class IPCKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs):
            super().__init__(transport="ipc", **kwargs)

    return IPCKernelManager


def notebook_problems(ipynb: Path) -> list[str]:
    """What an executed notebook shows that a reader should not see: errors, stderr streams (warnings,
    progress refreshes), this machine's paths; and its HTML lacking a <title>. Empty when clean."""
    import re

    import nbformat

    nb, out = nbformat.read(ipynb, as_version=4), []
    for i, cell in enumerate(nb.cells):
        for o in cell.get("outputs", []):
            if o.output_type == "error":
                out.append(f"cell {i}: error {o.ename}")
            elif o.output_type == "stream" and o.name == "stderr":
                out.append(f"cell {i}: stderr {o.text.strip()[:80]!r}")
            text = json.dumps(o)
            for home in {str(Path.home()), str(project_dir()), sys.prefix} - {"/"}:
                if home in text:
                    out.append(f"cell {i}: shows the path {home}")
    html = ipynb.with_suffix(".html")
    if html.exists():
        m = re.search(r"<title>(.*?)</title>", html.read_text(), flags=re.S)
        if not m or m.group(1).strip() in ("", "Notebook"):
            out.append(f"{html.name}: no title")
    return out


def notebook_title(nb, default: str) -> str:
    """The notebook's first Markdown heading without its #s (the HTML page's title), else `default`."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return default


def run_notebooks(
    profile: str = "default",
    dataset: str = "synthetic",
    root: str | None = None,
    classes: int = 6,
    only: list[str] | None = None,
    jobs: int = 1,
    force: bool = False,
    results_dir: str = "results",
    figures_dir: str = "figures",
    cache_dir: str = "cache",
    runs_dir: str = "runs",
    extra: dict | None = None,
    executor: str = "pool",
    stack: int = 0,
    folds: str = "shipped",
    dispatch: str = "native",
) -> list[dict]:
    """Execute the notebooks in order, `jobs` training runs at a time, grid points trained by `executor`
    (hgrlib.experiment.launch: pool | slurm | submitit-local), `stack` runs per stacked network (0: this machine's
    default, hgrlib.experiment.launch.stack_size), on the subject folds `folds` (DataConfig.folds: shipped | present),
    with the CPU kernels `dispatch` chooses (native: the CPU's best; portable: MKL, oneDNN and ATen pinned to
    their AVX2 paths, hgrlib.base.provenance.PORTABLE_DISPATCH); returns what was done.

    Before any notebook starts, a real dataset is indexed and checked against the folds its runs use
    (hgrlib.experiment.prepare.check_corpus): a DataError with a one-line cause if it cannot be trained."""
    from hgrlib.experiment.launch import stack_size

    if dispatch not in DISPATCHES:
        raise ValueError(f"dispatch={dispatch!r}: choose one of {', '.join(DISPATCHES)}")
    repo = project_dir()
    notebooks = find_notebooks(repo)
    stack = stack_size(stack)
    folds = folds if dataset in FOLD_SPECS else "shipped"  # the synthetic corpus and a manifest have no shipped folds
    tag = results_tag(DataConfig(dataset=dataset, folds=folds), profile)
    from hgrlib.experiment.runs import check_writable

    if only:
        notebooks = [n for n in notebooks if any(n.stem.startswith(o) for o in only)]
    if dataset != "synthetic" and notebooks:  # the synthetic corpus is made by notebook 01
        from hgrlib.experiment.prepare import check_corpus
        from hgrlib.experiment.profiles import get_profile

        cfg = get_profile(profile, dataset, root, classes, folds).config
        cov = check_corpus(cfg.data, cfg.train.n_folds)
        print(f"[data] {cov.summary()}", flush=True)
        if cov.incomplete():
            which = "; ".join(f"fold {k} misses {', '.join(s for s in cov.folds[k] if s not in cov.present)}" for k in cov.incomplete())
            print(
                f"[warn] incomplete shipped folds ({which}): their runs test fewer subjects than published; "
                f"--folds present makes folds from the {len(cov.present)} subjects present",
                flush=True,
            )
    check_writable([repo / results_dir / tag, repo / figures_dir / tag, repo / cache_dir, repo / runs_dir])
    params = {
        "profile": profile,
        "dataset": dataset,
        "root": root,
        "classes": classes,
        "cache_dir": cache_dir,
        "figures_dir": figures_dir,
        "results_dir": results_dir,
        "folds": folds,
        "jobs": max(0, jobs),
    } | (extra or {})
    src = package_digest().encode()  # the library's code (comments and docstrings aside)
    libs = json.dumps(library_versions(STAMP_LIBS)).encode()
    out_dir = repo / results_dir / tag
    upstream = data_digest(dataset, root)
    done: list[dict] = []

    def one(nb: Path, upstream: bytes) -> dict:
        p = params | ({"runs_dir": runs_dir} if nb.stem != "01_data_prep" else {"workers": 2})
        names = notebook_parameters(nb)
        p = {k: v for k, v in p.items() if k in names}  # papermill would inject unknown ones anyway
        # jobs changes no number: not stamped; folds is stamped below, only when not the shipped ones
        stamped = {k: v for k, v in p.items() if k not in ("folds", "jobs")}
        stamp = _sha(
            nb.read_bytes(),
            json.dumps(stamped, sort_keys=True).encode(),
            src,
            upstream,
            libs,
            f"stack={stack}".encode(),
            *([f"folds={folds}".encode()] if folds != "shipped" else []),
            *([f"dispatch={dispatch}".encode()] if dispatch != "native" else []),
        )
        out = out_dir / f"{nb.stem}.ipynb"
        stamp_file = out_dir / f".{nb.stem}.stamp.json"
        why = "forced" if force else _stale(stamp_file, stamp, repo)
        if why is None:
            print(f"[skip] {nb.stem}: unchanged since its last run", flush=True)
            if not out.with_suffix(".html").exists():
                write_html(out)
            return {"notebook": nb.stem, "status": "skipped", "stamp": stamp, "parameters": stamped}
        print(f"[run ] {nb.stem} ({tag}): {why} ...", flush=True)
        prefix, folders = nb.stem.split("_")[0] + "_", (out_dir, repo / figures_dir / tag)
        # outputs are collected from disk below: one the notebook no longer writes must not survive to be stamped again
        remove_outputs(stamp_file, repo, folders, prefix)
        t0 = time.perf_counter()
        execute(nb, out, p, repo)
        sec = time.perf_counter() - t0
        outputs = [
            f for d in folders for f in sorted(d.glob(prefix + "*")) if f.is_file() and f.suffix != ".html"
        ]  # the HTML is derived, written again when missing
        write_json(
            stamp_file,
            {
                "stamp": stamp,
                "parameters": stamped,
                "seconds": sec,
                "commit": git_commit(repo),
                "machine": machine_identity(),  # where it ran: information, not part of the stamp (a fresh clone on another CPU skips)
                "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "outputs": {rel_path(f, repo): file_sha256(f) for f in outputs},
            },
        )
        print(f"[done] {nb.stem} in {sec:.0f} s", flush=True)
        for problem in notebook_problems(out):
            print(f"[warn] {nb.stem}: {problem}", flush=True)
        return {"notebook": nb.stem, "status": "ran", "stamp": stamp, "parameters": stamped, "seconds": sec}

    # -j N parallelises the grid points inside each notebook (its parameter `jobs`), on the subject folds `folds`
    # (its parameter `folds`: in the stamps); notebooks run in order, since later ones read back the runs of earlier ones.
    # The kernels' environment: where they train (not in the stamps: the numbers are the same), in stacks of how
    # many runs (in the stamps: a run's last digits depend on its stack's size), with one-line progress
    # (HGRLIB_BATCH, hgrlib.base.progress) and with the CPU kernels `dispatch` pins (in the stamps and in every run's
    # key: other kernels, other last bits)
    settings = {"HGRLIB_EXECUTOR": executor, "HGRLIB_STACK": str(stack), "HGRLIB_BATCH": "1"}
    settings |= DISPATCHES[dispatch]
    before = {k: os.environ.get(k) for k in settings}
    os.environ.update(settings)
    try:
        rest = list(notebooks)
        if rest and rest[0].stem.startswith("01"):
            first = one(rest.pop(0), upstream)
            done.append(first)
            upstream = first["stamp"].encode()
        elif (out_dir / ".01_data_prep.stamp.json").exists():
            upstream = read_json(out_dir / ".01_data_prep.stamp.json")["stamp"].encode()
        done += [one(nb, upstream) for nb in rest]
    finally:
        for k, v in before.items():
            os.environ.pop(k) if v is None else os.environ.update({k: v})
    from hgrlib.experiment.claims import write_claims

    write_claims(out_dir)  # deterministic from the run tables: written even when every notebook was skipped
    stamps = read_stamps(repo / results_dir)  # read once for the manifest, results/README.md and README.md
    write_manifest(repo, results_dir, figures_dir, stamps)
    if tag == "synthetic-default" and results_dir == "results" and figures_dir == "figures":
        update_readme(repo, tag, stamps=stamps.get(tag, {}))
    return done


class RunnerError(RuntimeError):
    """The runner cannot start: the message says why (one line)."""


def find_notebooks(repo: Path) -> list[Path]:
    """The project's numbered notebooks, or a RunnerError: never a run of zero notebooks reported as success."""
    found = sorted((repo / NOTEBOOK_DIR).glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise RunnerError(
            f"no notebooks in {repo / NOTEBOOK_DIR}: this is not the project folder, and the hgrlib "
            f"imported ({Path(__file__).resolve().parents[1]}) is not inside one; run ./run_all.sh, or "
            f"python -m hgrlib.reproduce.runner from the project folder (the one holding run_all.sh)"
        )
    return found


def _stale(stamp_file: Path, stamp: str, repo: Path) -> str | None:
    """Why a notebook must run again (None: its last run is current and its outputs are as it wrote them)."""
    if not stamp_file.exists():
        return "never run"
    try:
        old = read_json(stamp_file)
    except (OSError, ValueError):
        return f"{stamp_file} unreadable"
    if old.get("stamp") != stamp:
        return "code, parameters, libraries or inputs changed"
    if not old.get("outputs"):
        return "its outputs were not recorded"
    for rel, sha in old["outputs"].items():
        f = repo / rel
        if not f.is_file() or file_sha256(f) != sha:
            return f"{rel} is missing or differs from what it wrote"
    return None


def remove_outputs(stamp_file: Path, repo: Path, folders: tuple[Path, ...], prefix: str) -> list[Path]:
    """Delete the outputs a notebook's last stamp lists, before it runs again; returns them.

    Only files the runner would collect as the notebook's outputs are touched: directly in one of `folders` (its
    results and figures folders), named `prefix`* (so never another notebook's files or a stamp). A stamp that is
    missing or unreadable removes nothing."""
    try:
        listed = read_json(stamp_file).get("outputs") or {}
    except (OSError, ValueError, AttributeError):
        return []
    where = {d.resolve() for d in folders}
    gone = []
    for rel in listed:
        f = repo / rel
        if f.parent.resolve() in where and f.name.startswith(prefix) and f.is_file():
            f.unlink()
            gone.append(f)
    return gone


def notebook_parameters(nb: Path) -> set[str]:
    """The names the notebook's parameters cell defines (papermill's own reading of it)."""
    import papermill as pm

    return set(pm.inspect_notebook(str(nb)))


def notebook_failure(e: Exception, out_dir: Path, since: float) -> list[str]:
    """A few lines for a notebook that failed: which, the cause (the exception's type and message, not the
    stacks of the runner, papermill and the cell), and the partly executed copy that holds the full traceback."""
    partial = sorted((p for p in Path(out_dir).glob(".*.running.ipynb") if p.stat().st_mtime >= since - 1), key=lambda p: p.stat().st_mtime)
    name = partial[-1].name[1 : -len(".running.ipynb")] if partial else "a notebook"
    if hasattr(e, "ename"):  # papermill: the exception raised in a cell
        cause = f"{e.ename}: {e.evalue}" + (f" (in cell [{e.exec_count}])" if getattr(e, "exec_count", None) else "")
    else:  # the kernel died or a cell timed out
        cause = f"{type(e).__name__}: {str(e).strip()}"
    lines = cause.strip().splitlines() or [type(e).__name__]
    out = [f"run_all.sh: {name} failed: {lines[0]}"] + [f"  {ln.strip()}" for ln in lines[1:4]] + (["  …"] if len(lines) > 4 else [])
    if partial:
        try:
            where = partial[-1].resolve().relative_to(Path.cwd().resolve())
        except ValueError:
            where = partial[-1]
        out.append(f"partly executed notebook (with the full traceback): {where}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Run the notebooks through papermill (see run_all.sh).")
    ap.add_argument("--profile", default="default", choices=list(PROFILES))
    ap.add_argument("--dataset", default="synthetic", choices=DATASETS)
    ap.add_argument("--root", default=None)
    ap.add_argument("--classes", type=int, default=6, choices=CLASSES)
    ap.add_argument(
        "--folds",
        default=os.environ.get("HGRLIB_FOLDS") or "shipped",
        choices=FOLDS,
        help="subject folds of ravdess/enterface/baum1s: shipped (hgrlib/data/shipped_folds/*.json; a corpus whose subjects "
        "cannot fill them is refused, naming the missing ones) or present (folds made from the subjects "
        "present, for a partial corpus; not comparable with the published folds). Default: $HGRLIB_FOLDS, else shipped",
    )
    ap.add_argument("--only", default="", help="comma-separated notebook numbers, e.g. 01,02")
    ap.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=0,
        help="training runs in parallel inside each notebook (default 0: one per CPU core, 1 on a GPU machine)",
    )
    ap.add_argument(
        "--executor",
        default="pool",
        choices=["pool", "slurm", "submitit-local"],
        help="where grid points train: pool (this machine, -j at a time), slurm (one submitit job per grid "
        "point; job settings from HGRLIB_SLURM, see hgrlib/experiment/launch.py), submitit-local (submitit's local executor)",
    )
    ap.add_argument(
        "--stack",
        type=int,
        default=0,
        help="training runs of one model shape trained as one stacked network (default 0: this machine's "
        "default, 1 on a CPU, 16 on a GPU; see hgrlib/experiment/launch.py)",
    )
    ap.add_argument(
        "--dispatch",
        default="native",
        choices=list(DISPATCHES),
        help="CPU kernels: native (default: the CPU's best, fastest) or portable (MKL, oneDNN and ATen pinned to their "
        "AVX2 paths, so that CPUs of other instruction sets compute the same bytes; see docs/reproducibility.md)",
    )
    ap.add_argument("--force", action="store_true", help="re-run notebooks even if unchanged")
    ap.add_argument("--results", default="results")
    ap.add_argument("--figures", default="figures")
    ap.add_argument("--cache", default="cache")
    ap.add_argument("--runs", default="runs")
    ap.add_argument(
        "--verify",
        action="store_true",
        help="regenerate everything from nothing in a scratch folder and compare with what is committed: every "
        "table cell by cell on the machine identity that made the results, the claims elsewhere (--tier); exit 1 "
        "when they disagree (commits nothing, changes nothing here)",
    )
    ap.add_argument(
        "--tier",
        default="auto",
        choices=["auto", "exact", "claims"],
        help="--verify: exact (every table cell by cell), claims (each claim's effect and verdict; tables' drift "
        "summarised), or auto (default: exact where the committed run stamps name this machine identity)",
    )
    ap.add_argument("--scratch", default=None, help="--verify: an empty or new folder to regenerate into (default: a temporary one)")
    a = ap.parse_args(argv)
    if a.dataset != "synthetic" and not a.root:
        ap.error(f"--dataset {a.dataset} needs --root PATH (where the dataset lies on your disk)")
    if a.verify:
        return verify(run_notebooks, a.profile, a.dataset, a.root, a.classes, a.jobs, a.scratch, a.results, a.figures, a.tier, a.dispatch)
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    from hgrlib.data.records import DataError

    t0, started = time.perf_counter(), time.time()
    tag = results_tag(DataConfig(dataset=a.dataset, folds=a.folds if a.dataset in FOLD_SPECS else "shipped"), a.profile)
    only = [o for o in a.only.split(",") if o]
    try:
        repo = project_dir()
        names = [n.stem for n in find_notebooks(repo)]
        if only and not any(n.startswith(o) for n in names for o in only):
            raise RunnerError(f"--only {a.only}: no notebook matches (notebooks: {', '.join(names)})")
        if a.root and not os.path.isabs(a.root) and Path.cwd().resolve() != repo:
            a.root = os.path.abspath(a.root)  # the notebooks run in the project folder: a path given from elsewhere
        done = run_notebooks(
            a.profile,
            a.dataset,
            a.root,
            a.classes,
            only,
            a.jobs,
            a.force,
            a.results,
            a.figures,
            a.cache,
            a.runs,
            executor=a.executor,
            stack=a.stack,
            folds=a.folds,
            dispatch=a.dispatch,
        )
    except (DataError, RunnerError, ValueError) as e:  # bad data, no project, a config value rejected: one line each
        lines = str(e).strip().splitlines() or [type(e).__name__]
        print(
            "\n".join([f"run_all.sh: error: {lines[0]}"] + [f"  {ln.strip()}" for ln in lines[1:4]] + (["  …"] if len(lines) > 4 else [])),
            file=sys.stderr,
        )
        return 1
    except OSError as e:
        print(f"run_all.sh: error: {os_error(e)}", file=sys.stderr)
        return 1
    except (PapermillExecutionError, CellTimeoutError, DeadKernelError) as e:
        print("\n".join(notebook_failure(e, project_dir() / a.results / tag, started)), file=sys.stderr)
        return 1
    table = project_dir() / a.results / tag / "02_supervised_table.md"
    ran = sum(d["status"] == "ran" for d in done)
    print(
        f"\nAll notebooks done in {time.perf_counter() - t0:.0f} s ({ran} run, {len(done) - ran} unchanged). "
        f"Executed notebooks: {a.results}/{tag}/, figures: {a.figures}/{tag}/"
    )
    if table.exists():
        print("\n" + table.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
