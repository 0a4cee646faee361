"""Every notebook, executed through the batch runner with the smoke profile, into temporary folders."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pandas as pd
import pytest

from hgrlib.reproduce import runner

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("smoke")
    kw = dict(
        profile="smoke",
        dataset="synthetic",
        root=str(base / "corpus"),
        results_dir=str(base / "results"),
        figures_dir=str(base / "figures"),
        cache_dir=str(base / "cache"),
        runs_dir=str(base / "runs"),
    )
    first = runner.run_notebooks(**kw)
    return base, kw, first


def test_every_notebook_runs_and_writes_its_outputs(smoke_run):
    base, _, first = smoke_run
    notebooks = sorted(p.stem for p in Path("notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert [d["notebook"] for d in first] == notebooks and all(d["status"] == "ran" for d in first)
    out = base / "results" / "synthetic-smoke"
    for nb in notebooks:
        assert (out / f"{nb}.ipynb").exists() and (out / f"{nb}.html").exists()
    table = pd.read_csv(out / "02_supervised_table.csv")
    assert list(table["condition"]) == ["audio only (CE)", "visual only (CE)", "fusion (CE)", "fusion (CE + Soft-HGR)"]
    assert (table["runs"] == 6).all()  # every fold (3) x every seed (2) of the smoke profile
    runs = pd.read_csv(out / "02_supervised_runs.csv")
    assert sorted(set(zip(runs["fold"], runs["seed"]))) == [(f, s) for f in range(3) for s in (0, 1)]
    claims = pd.read_csv(out / "claims.csv")
    assert (claims["verdict"] != "not run").all(), claims[claims["verdict"] == "not run"][["claim", "reason"]]
    for name in (
        "05_score_spread.csv",
        "02_replication_runs.csv",
        "04_label_free.csv",
        "07_tuning.csv",
        "06_silhouettes.csv",
        "07_baselines_table.csv",
        "07_protocols_table.csv",
        "03_semi_supervised_table.csv",
        "04_ablation_table.csv",
    ):
        assert len(pd.read_csv(out / name)) > 0, name
    for fig in (
        "01_examples.png",
        "02_confusion.png",
        "02_training_curves.png",
        "02_accuracy.png",
        "03_semi_supervised.png",
        "04_ablation_heatmap.png",
        "05_seed_cka.png",
        "05_factor_probes.png",
        "06_umap.png",
        "06_tsne.png",
        "07_minibatch_heatmaps.png",
        "07_protocols.png",
    ):
        assert (base / "figures" / "synthetic-smoke" / fig).stat().st_size > 1000


def test_manifest_lists_every_output_with_its_hash(smoke_run):
    base, _, _ = smoke_run
    manifest = json.loads((base / "results" / "manifest.json").read_text())
    files = {e["file"]: e for e in manifest}
    assert any(f.endswith("02_supervised_table.csv") for f in files)
    for f, e in files.items():
        p = Path(f) if Path(f).is_absolute() else Path.cwd() / f
        assert hashlib.sha256(p.read_bytes()).hexdigest() == e["sha256"]
        assert e["notebook"] and e["parameters"]["profile"] == "smoke"


def test_rerun_skips_unchanged_notebooks(smoke_run):
    base, kw, _ = smoke_run
    manifest = base / "results" / "manifest.json"
    before = manifest.read_text()
    for f in (base / "results").rglob("*.csv"):  # as on a fresh clone: file times are checkout times
        os.utime(f, (1, 1))
    html = base / "results" / "synthetic-smoke" / "02_supervised.html"
    html.unlink()  # as on a fresh clone: the HTML copies are not committed
    again = runner.run_notebooks(**kw)
    assert all(d["status"] == "skipped" for d in again)
    assert "<title>02 · Supervised" in html.read_text()  # written again from the executed notebook
    assert manifest.read_text() == before  # times and commits come from the stamps: a no-op run changes nothing


def test_another_cpu_skips_every_notebook_and_stamps_say_where_they_ran(smoke_run, monkeypatch, request):
    """The machine is information in a stamp, not part of it: on another CPU (simulated) every notebook is still
    current, and the manifest is unchanged; a pinned dispatch is part of it (other kernels, other numbers)."""
    from hgrlib.base import provenance
    from hgrlib.base.io import read_json

    base, kw, _ = smoke_run
    out = base / "results" / "synthetic-smoke"
    here = provenance.machine_identity()
    assert {read_json(f)["machine"]["cpu"] for f in out.glob(".*.stamp.json")} == {here["cpu"]}
    manifest = (base / "results" / "manifest.json").read_text()
    request.addfinalizer(provenance._machine_identity.cache_clear)
    monkeypatch.setattr(
        provenance, "_cpuinfo", lambda: {"vendor_id": "GenuineIntel", "cpu family": "6", "model": "207", "flags": "avx2 fma"}
    )
    provenance._machine_identity.cache_clear()
    assert all(d["status"] == "skipped" for d in runner.run_notebooks(**kw))
    assert (base / "results" / "manifest.json").read_text() == manifest
    monkeypatch.undo()
    provenance._machine_identity.cache_clear()
    with pytest.raises(ValueError, match="dispatch='avx9'"):
        runner.run_notebooks(**kw, only=["08"], dispatch="avx9")
    # pinned kernels: other features and runs (keyed apart), so notebook 01 and what follows it run again
    pinned = runner.run_notebooks(**kw, only=["01", "08"], dispatch="portable")
    assert [d["status"] for d in pinned] == ["ran", "ran"]
    assert read_json(out / ".08_predict.stamp.json")["machine"]["dispatch_env"] == provenance.PORTABLE_DISPATCH
    assert not any(os.environ.get(k) for k in provenance.PORTABLE_DISPATCH)  # the runner's own environment is restored
    assert [d["status"] for d in runner.run_notebooks(**kw, only=["01", "08"])] == ["ran", "ran"]  # native again: other stamps
    assert all(d["status"] == "skipped" for d in runner.run_notebooks(**kw))  # and every notebook is current again


def test_committed_notebooks_are_stripped_and_parameterized():
    for nb in Path("notebooks").glob("*.ipynb"):
        cells = json.loads(nb.read_text())["cells"]
        assert all(not c.get("outputs") and not c.get("execution_count") for c in cells if c["cell_type"] == "code"), nb
        assert any("parameters" in c.get("metadata", {}).get("tags", []) for c in cells), nb


def test_notebooks_match_their_text_sources():
    """Each notebook and its text source are a jupytext pair (notebooks/jupytext.toml) that agree: the same
    cells (jupytext's comparison), the .py exactly as jupytext writes the notebook (what a save in JupyterLab
    writes to it), and the .ipynb exactly as scripts/sync_notebooks.py builds it from the .py alone (bytes: as
    JupyterLab saves it, tests/test_lab.py)."""
    import importlib.util

    import jupytext
    from jupytext.compare import compare_notebooks
    from jupytext.config import load_jupytext_config

    spec = importlib.util.spec_from_file_location("sync_notebooks", "scripts/sync_notebooks.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    notebooks = sorted(Path("notebooks").glob("[0-9][0-9]_*.ipynb"))
    sources = sorted(Path("notebooks/src").glob("*.py"))
    assert [s.stem for s in sources] == [nb.stem for nb in notebooks]
    for nb, src in zip(notebooks, sources):
        hint = f"python scripts/sync_notebooks.py {src}"
        assert mod.pair(nb) == mod.pair(src) == (src.resolve(), nb.resolve()), "notebooks/jupytext.toml pairs them"
        config = load_jupytext_config(str(src))
        compare_notebooks(jupytext.read(src, config=config), jupytext.read(nb), fmt="py:percent")  # says which cell
        assert jupytext.writes(jupytext.read(nb), fmt="py:percent", config=config) == src.read_text(), f"{src}: {hint}"
        assert mod.notebook_text(src).encode() == nb.read_bytes(), f"{nb}: {hint}"


def test_an_edited_output_makes_its_notebook_run_again(smoke_run):
    base, kw, _ = smoke_run
    table = base / "results" / "synthetic-smoke" / "01_class_counts.csv"
    original = table.read_text()
    table.write_text(original.replace("6", "7"))  # a hand-edited number
    again = runner.run_notebooks(**kw, only=["01"])
    assert again[0]["status"] == "ran" and table.read_text() == original
    assert all(d["status"] == "skipped" for d in runner.run_notebooks(**kw))  # 01's inputs did not change: nothing downstream runs


def test_a_rerun_removes_the_outputs_its_notebook_no_longer_writes(tmp_path, monkeypatch):
    """A notebook that runs again (here --force) first loses the outputs its last stamp lists: a table it no longer
    writes is not left behind to be stamped as current. A stamp listing other notebooks' files or paths outside its
    folders deletes nothing there. Papermill is simulated: nothing trains."""
    import nbformat

    repo = tmp_path / "repo"
    nb = repo / "notebooks" / "02_supervised.ipynb"
    nb.parent.mkdir(parents=True)
    nbformat.write(nbformat.v4.new_notebook(), nb)
    writes = iter([["02_old_table.csv", "02_kept.csv"], ["02_new_table.csv", "02_kept.csv"]])  # the table renamed

    def execute(nb, out, params, cwd):  # papermill's run: the notebook's tables, then its executed copy
        for name in next(writes):
            (out.parent / name).write_text(name)
        nbformat.write(nbformat.v4.new_notebook(), out)

    monkeypatch.setattr(runner, "project_dir", lambda: repo)
    monkeypatch.setattr(runner, "find_notebooks", lambda repo: [nb])
    monkeypatch.setattr(runner, "notebook_parameters", lambda nb: set())
    monkeypatch.setattr(runner, "execute", execute)
    out, prefix = repo / "results" / "synthetic-smoke", "results/synthetic-smoke/"
    assert runner.run_notebooks("smoke")[0]["status"] == "ran"
    stamp_file = out / ".02_supervised.stamp.json"
    assert sorted(json.loads(stamp_file.read_text())["outputs"]) == [
        prefix + f for f in ("02_kept.csv", "02_old_table.csv", "02_supervised.ipynb")
    ]
    others = [out / "03_other.csv", out / ".03_other.stamp.json", tmp_path / "outside.txt"]
    for f in others:
        f.write_text("not 02's")
    stamp = json.loads(stamp_file.read_text())
    stamp["outputs"] |= {
        "results/synthetic-smoke/03_other.csv": "x",
        "results/synthetic-smoke/.03_other.stamp.json": "x",
        "../outside.txt": "x",
    }
    stamp_file.write_text(json.dumps(stamp))

    assert runner.run_notebooks("smoke", force=True)[0]["status"] == "ran"
    assert not (out / "02_old_table.csv").exists()
    assert sorted(json.loads(stamp_file.read_text())["outputs"]) == [
        prefix + f for f in ("02_kept.csv", "02_new_table.csv", "02_supervised.ipynb")
    ]
    assert all(f.read_text() == "not 02's" for f in others)


def test_verify_compares_every_table_cell_by_cell(smoke_run, tmp_path, monkeypatch, capsys):
    import shutil

    from hgrlib.reproduce import verify

    base, kw, _ = smoke_run
    committed = base / "results"
    edits = {}

    def regenerate(profile, dataset, root, classes, only, jobs, force, results_dir, figures_dir, cache_dir, runs_dir, dispatch):
        assert force and root.startswith(str(tmp_path)) and cache_dir.startswith(str(tmp_path))  # from nothing, elsewhere
        shutil.copytree(committed, results_dir)
        shutil.copytree(base / "figures", figures_dir)
        for name, (old, new) in edits.items():
            f = Path(results_dir) / "synthetic-smoke" / name
            f.write_text(f.read_text().replace(old, new, 1))

    args = dict(profile="smoke", results_dir=str(committed), figures_dir=str(base / "figures"))
    assert verify.verify(regenerate, scratch=str(tmp_path / "a"), **args) == 0
    runs = (committed / "synthetic-smoke" / "02_supervised_runs.csv").read_text().splitlines()
    seconds = runs[1].split(",")[-1]
    edits["02_supervised_runs.csv"] = ("," + seconds, ",12345.6")  # wall-clock time: not compared
    assert verify.verify(regenerate, scratch=str(tmp_path / "b"), **args) == 0
    assert "DIFF" not in capsys.readouterr().out
    acc = (committed / "synthetic-smoke" / "02_supervised_table.csv").read_text().splitlines()[1].split(",")[2]
    edits["02_supervised_table.csv"] = (acc, "99.9 ± 0.0")
    assert verify.verify(regenerate, scratch=str(tmp_path / "c"), **args) == 1
    diffs = [line for line in capsys.readouterr().out.splitlines() if "DIFF" in line]
    assert len(diffs) == 1 and "02_supervised_table.csv row 1" in diffs[0] and "99.9 ± 0.0" in diffs[0]
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "old").write_text("x")
    assert verify.verify(regenerate, scratch=str(tmp_path / "d"), **args) == 2  # never into a folder holding something


def test_notebook_02_grid_launches_through_submitit_local_executor(smoke_run, tmp_path):
    """The grid of notebook 02 as submitit jobs (its local executor; SLURM on a cluster): the same runs table."""
    base, kw, _ = smoke_run
    alt = kw | {"runs_dir": str(tmp_path / "runs"), "results_dir": str(tmp_path / "results"), "figures_dir": str(tmp_path / "figures")}
    done = runner.run_notebooks(**alt, only=["02"], jobs=2, executor="submitit-local")
    assert [d["status"] for d in done] == ["ran"]
    assert any((tmp_path / "runs" / ".submitit").iterdir())  # the jobs' folders: submitit trained them
    pool, jobs = (
        pd.read_csv(d / "synthetic-smoke" / "02_supervised_runs.csv").drop(columns="seconds")
        for d in (base / "results", tmp_path / "results")
    )
    pd.testing.assert_frame_equal(pool, jobs)


def test_notebook_02_with_stacked_runs_gives_the_same_table(smoke_run, tmp_path):
    """`--stack 4`: notebook 02's grid trained as stacks of up to 4 runs (keyed apart by stack size, so the
    notebook runs again), with the same scores as the runs trained alone (members match to float tolerance)."""
    base, kw, _ = smoke_run
    alt = kw | {"runs_dir": str(tmp_path / "runs"), "results_dir": str(tmp_path / "results"), "figures_dir": str(tmp_path / "figures")}
    done = runner.run_notebooks(**alt, only=["02"], stack=4)
    assert [d["status"] for d in done] == ["ran"]
    assert done[0]["stamp"] != json.loads((base / "results" / "synthetic-smoke" / ".02_supervised.stamp.json").read_text())["stamp"]
    sizes = {json.loads(f.read_text())["stack_size"] for f in (tmp_path / "runs").glob("*/result.json")}
    assert sizes == {3, 4}  # smoke: 6 runs per unimodal condition (3 + 3), 12 fusion runs (4 + 4 + 4)
    alone, stacked = (pd.read_csv(d / "synthetic-smoke" / "02_supervised_runs.csv") for d in (base / "results", tmp_path / "results"))
    for col in ("acc", "uar"):
        assert (alone[col] - stacked[col]).abs().max() < 1e-9, col


def test_executed_notebooks_read_clean(smoke_run):
    """No errors, no stderr (warnings, progress refreshes), no machine paths, a titled HTML page."""
    base, _, _ = smoke_run
    executed = sorted((base / "results" / "synthetic-smoke").glob("*.ipynb"))
    assert executed
    for nb in executed:
        assert runner.notebook_problems(nb) == [], nb.name


def test_committed_executed_notebooks_read_clean():
    executed = sorted(Path("results").glob("*/*.ipynb"))
    assert executed
    for nb in executed:
        assert runner.notebook_problems(nb) == [], nb
