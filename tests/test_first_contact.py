"""Real data, first contact: a bad root or a partial download is one clear line from ./run_all.sh before any
notebook starts; folds are checked against the subjects present (refused by default, made from them with
--folds present); a failing notebook is a few lines; the runner finds the project from anywhere."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import nbformat
import numpy as np
import pytest
from fixtures import link_children, make_ravdess_fixture, random_featureset
from papermill.exceptions import PapermillExecutionError

from hgrlib.base.project import project_dir
from hgrlib.config import Config, DataConfig, TrainConfig
from hgrlib.data.folds import fold_problems, subject_folds
from hgrlib.data.records import EMOTIONS6, DataError
from hgrlib.data.splits import make_split
from hgrlib.experiment.prepare import (
    Coverage,
    check_corpus,
    fold_seed_runs,
    seeded_runs,
)
from hgrlib.experiment.profiles import get_profile
from hgrlib.reproduce import runner

REPO = Path(__file__).resolve().parent.parent
PRESENT = [f"{a:02d}" for a in range(1, 7)]  # 6 of RAVDESS's 24 actors unpacked


@pytest.fixture(scope="module")
def partial(tmp_path_factory) -> Path:
    """A partial RAVDESS download, actors 01..06, their folders linked into place."""
    base = tmp_path_factory.mktemp("partial")
    store = make_ravdess_fixture(base / "store", actors=range(1, 7), emotions=EMOTIONS6, audio_only_actors=())
    return link_children(store, base / "RAVDESS")


def env_is_current() -> bool:
    """run_all.sh installs first when pyproject.toml changed since the last install (minutes, many lines)."""
    stamp = REPO / ".venv" / ".hgrlib-install-stamp"
    want = hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest()[:16]
    return stamp.is_file() and stamp.read_text().strip() == want


def run_all(*args: str, tmp: Path) -> subprocess.CompletedProcess:
    if not env_is_current():
        pytest.skip("the virtualenv is not current: run_all.sh would install first")
    out = ["--results", str(tmp / "results"), "--figures", str(tmp / "figures"), "--cache", str(tmp / "cache"), "--runs", str(tmp / "runs")]
    return subprocess.run([str(REPO / "run_all.sh"), "--profile", "smoke", *args, *out], capture_output=True, text=True, timeout=300)


def lines(p: subprocess.CompletedProcess) -> list[str]:
    return [ln for ln in (p.stdout + p.stderr).splitlines() if ln.strip()]


# --------------------------------------------------------------------------- run_all.sh: one clear line


@pytest.mark.slow
def test_bad_root_through_run_all_is_one_line(tmp_path):
    p = run_all("--dataset", "ravdess", "--root", str(tmp_path / "nowhere"), tmp=tmp_path)
    assert p.returncode == 1
    assert lines(p) == [
        f"run_all.sh: error: {tmp_path / 'nowhere'}: dataset folder not found (dataset='ravdess'); give the path where it lies on your disk"
    ]
    assert not (tmp_path / "results").exists()  # checked before anything is written


@pytest.mark.slow
def test_root_without_clips_through_run_all_is_a_few_lines(tmp_path):
    for i in range(30):
        (tmp_path / "data" / f"clip{i}.mp4").parent.mkdir(exist_ok=True)
        (tmp_path / "data" / f"clip{i}.mp4").write_bytes(b"")
    p = run_all("--dataset", "ravdess", "--root", str(tmp_path / "data"), tmp=tmp_path)
    out = lines(p)
    assert p.returncode == 1 and len(out) <= 5 and "Traceback" not in p.stderr
    assert out[0].startswith(f"run_all.sh: error: {tmp_path / 'data'}: no usable RAVDESS clips")


@pytest.mark.slow
def test_partial_corpus_through_run_all_is_refused_naming_the_missing_subjects(partial, tmp_path):
    p = run_all("--dataset", "ravdess", "--root", str(partial), tmp=tmp_path)
    out = lines(p)
    assert p.returncode == 1 and len(out) == 1 and "Traceback" not in p.stderr
    msg = out[0]
    assert msg.startswith("run_all.sh: error: ravdess: 2 of the 6 shipped folds cannot be trained")
    assert "fold 2: its test subjects 07, 10, 18, 21 are all absent" in msg
    assert "18 of its 24 subjects are missing from the corpus: 07, 08, 09, 10, 11, 12, 13" in msg
    assert "--folds present" in msg
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_runner_from_another_folder_finds_the_project(tmp_path):
    p = subprocess.run(
        [sys.executable, "-m", "hgrlib.reproduce.runner", "--only", "99"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert p.returncode == 1 and "no notebook matches (notebooks: 01_data_prep, 02_supervised" in p.stderr
    assert "All notebooks done" not in p.stdout


def test_runner_without_a_project_refuses(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner, "project_dir", lambda: tmp_path)
    assert runner.main(["--profile", "smoke"]) == 1
    out, err = capsys.readouterr()
    assert err.startswith(f"run_all.sh: error: no notebooks in {tmp_path / 'notebooks'}") and "All notebooks" not in out
    with pytest.raises(runner.RunnerError):
        runner.run_notebooks("smoke", results_dir=str(tmp_path / "r"))
    assert not (tmp_path / "r").exists()


def test_project_dir_from_elsewhere_is_this_project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert project_dir() == REPO
    assert project_dir(REPO / "notebooks") == REPO


def test_failed_notebook_is_a_few_lines_and_the_partial_copy(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    out_dir = tmp_path / "results" / "synthetic-smoke"

    def fails(*a, **k):
        out_dir.mkdir(parents=True)
        nbformat.write(nbformat.v4.new_notebook(), out_dir / ".02_supervised.running.ipynb")
        tb = ["\x1b[0;31mDataError\x1b[0m Traceback (most recent call last)"] + ["  frame"] * 40
        raise PapermillExecutionError(3, 4, "fs = load_featureset(...)", "DataError", "cache/x: no cached features", tb)

    monkeypatch.setattr(runner, "run_notebooks", fails)
    monkeypatch.setattr(runner, "project_dir", lambda: tmp_path)
    monkeypatch.setattr(runner, "find_notebooks", lambda repo: [Path("01_data_prep.ipynb")])
    assert runner.main(["--profile", "smoke", "--results", "results"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "run_all.sh: 02_supervised failed: DataError: cache/x: no cached features (in cell [4])",
        "partly executed notebook (with the full traceback): results/synthetic-smoke/.02_supervised.running.ipynb",
    ]


# --------------------------------------------------------------------------- folds against the subjects present


def test_coverage_counts_and_fold_states(partial):
    from hgrlib.data.datasets import index_dataset

    recs, _ = index_dataset("ravdess", str(partial))
    cov = Coverage(recs, DataConfig("ravdess", str(partial)))
    text = cov.table()
    assert "0 of 6 shipped folds complete" in text and "missing: 18 of the 24 subjects" in text
    assert re.search(r"\n01( +1){6} +6\n", text) and re.search(r"\nall( +6){6} +36\n", text)  # per subject, per class
    assert "  fold 0: 04, 08, 11, 19 (missing 08, 11, 19)" in text
    assert "  fold 2: 07, 10, 18, 21 (missing 07, 10, 18, 21; cannot be trained: its test subjects" in text
    assert sorted(cov.problems) == [1, 2]
    present = Coverage(recs, DataConfig("ravdess", str(partial), folds="present"), n_folds=4)
    assert present.problems == {} and len(present.folds) == 4 and present.incomplete() == []
    assert "folds made from the 6 subjects present (folds=present): 4 folds" in present.summary()


def test_check_corpus_refuses_by_default_and_passes_with_the_option(partial):
    with pytest.raises(DataError, match=r"missing from the corpus: 07, 08.*--folds present"):
        check_corpus(DataConfig("ravdess", str(partial)), 4)
    cov = check_corpus(DataConfig("ravdess", str(partial), folds="present"), 4)
    assert sorted(s for f in cov.folds for s in f) == PRESENT
    with pytest.raises(DataError, match="dataset folder not found"):
        check_corpus(DataConfig("ravdess", str(partial / "nope")), 4)


def test_prep_prints_the_coverage(partial, tmp_path, capsys):
    from hgrlib.app.cli import main

    assert (
        main(
            [
                "prep",
                "--dataset",
                "ravdess",
                "--root",
                str(partial),
                "--profile",
                "smoke",
                "--cache",
                str(tmp_path / "cache"),
                "--workers",
                "1",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "clips per subject and class:" in out and "  fold 5: 06, 14, 17, 23 (missing 14, 17, 23)" in out
    assert "note: training on these clips would be refused: ravdess: 2 of the 6 shipped folds" in out


def partial_featureset():
    """Random features for 96 clips of RAVDESS actors 01..06 (all six classes each)."""
    fs = random_featureset(96)
    subjects = [PRESENT[i % 6] for i in range(96)]
    return replace(fs, subjects=subjects, labels=np.array([(i // 6) % 6 for i in range(96)]), dataset="ravdess")


CFG = Config(DataConfig("ravdess", "x")).with_(model={"dim": 8, "width": 4}, train={"epochs": 1, "batch_size": 16, "threads": 1})


def test_partial_corpus_run_refused_by_default_and_trained_with_the_option(tmp_path):
    from hgrlib.core.train import fit

    fs = partial_featureset()
    with pytest.raises(DataError, match=r"fold 2: its test subjects 07, 10, 18, 21 are all absent.*missing from the corpus"):
        fold_seed_runs(CFG, [0], fs)
    with pytest.raises(DataError, match="fold 1: its validation subjects 07, 10, 18, 21 are all absent"):
        seeded_runs(CFG, [0, 1, 2], fs)  # folds 0, 1, 2
    assert len(seeded_runs(CFG, [0], fs)) == 1  # fold 0 alone can be trained
    with pytest.raises(DataError, match="fold 2: its test subjects"):
        fit(CFG.with_(train={"fold": 2}), fs, str(tmp_path / "refused"), progress=False)
    assert not list((tmp_path).glob("refused/*.json"))
    present = CFG.with_(data={"folds": "present"})
    cfgs = fold_seed_runs(present, [0], fs)
    assert [c.train.fold for c in cfgs] == [0, 1, 2, 3]  # train.n_folds=4 folds of the 6 actors
    r = fit(cfgs[2], fs, str(tmp_path / "present"), progress=False)
    assert r["test_subjects"] and set(r["test_subjects"]) <= set(PRESENT)
    assert r["n_train_segments"] > 0 and np.isfinite(r["test"]["acc"])


def test_complete_corpus_keeps_the_shipped_folds():
    from hgrlib.data.folds import load_folds

    subjects = [f"{a:02d}" for a in range(1, 25) for _ in range(6)]
    labels = np.array([i % 6 for i in range(len(subjects))])
    assert subject_folds("ravdess", subjects, 4) == load_folds("ravdess")
    assert fold_problems("ravdess", subjects, labels, load_folds("ravdess")) == {}
    sp = make_split(subjects, labels, 2, dataset="ravdess", fold=3)
    assert sp.test_subjects == sorted(load_folds("ravdess")[3])
    # the synthetic corpus and a manifest: folds made from their subjects, as before
    syn = [f"{s:02d}" for s in range(1, 7)]
    assert subject_folds("synthetic", syn, 3) == subject_folds("synthetic", syn, 3, "present")


def test_fold_problems_missing_classes():
    folds = [["a"], ["b"], ["c"], ["d"]]
    clips = lambda spec: ([s for s, ys in spec.items() for _ in ys], [y for ys in spec.values() for y in ys])
    assert fold_problems("manifest", *clips({"a": "xy", "b": "xy", "c": "xy", "d": "xy"}), folds) == {}
    # a complete test or validation part lacking a class is the data as it is
    assert fold_problems("manifest", *clips({"a": "x", "b": "xy", "c": "xy", "d": "xy"}), folds) == {}
    # a training part lacking one is refused
    assert fold_problems("manifest", *clips({"a": "x", "b": "x", "c": "xy", "d": "x"}), folds) == {
        1: "its training part lacks y",
        2: "its training part lacks y",
    }
    # a part lacking a class because its subjects are missing is refused, naming them
    two = [["a", "b"], ["c", "d"], ["e", "f"]]
    probs = fold_problems("manifest", *clips({"a": "xy", "b": "xy", "c": "x", "e": "xy", "f": "xy"}), two)
    assert probs == {
        0: "its validation part lacks y (d absent)",
        1: "its test part lacks y (d absent)",
        2: "its training part lacks y (d absent)",
    }
    assert (
        fold_problems("manifest", *clips({"a": "x", "b": "x", "c": "x", "d": "x", "z": "x"}), folds)[0]
        == "subjects z are in none of the folds"
    )
    with pytest.raises(DataError, match="at least 3"):
        subject_folds("manifest", ["a", "b"], 4)


def test_the_option_reaches_configs_and_notebooks(monkeypatch):
    assert get_profile("smoke", "ravdess", "x").config.data.folds == "shipped"
    assert get_profile("smoke", "ravdess", "x", folds="present").config.data.folds == "present"
    monkeypatch.setenv("HGRLIB_FOLDS", "present")  # for hgrlib prep/train only: the notebooks get run_all.sh's --folds as a parameter
    assert get_profile("smoke", "ravdess", "x").config.data.folds == "shipped"
    assert get_profile("smoke", folds="present").config.data.folds == "shipped"  # synthetic: no shipped folds, key unchanged
    assert get_profile("smoke", "manifest", "a.csv").config.data.folds == "shipped"
    with pytest.raises(ValueError, match="data.folds"):
        DataConfig("ravdess", "x", folds="some")
    # with folds made from the subjects present, the fold's bound is train.n_folds, not the shipped count
    Config(DataConfig("ravdess", "x", folds="present"), train=TrainConfig(n_folds=8, fold=7))


def test_notebooks_take_folds_and_jobs_as_parameters(monkeypatch):
    """run_all.sh's --folds and -j reach a notebook as its parameters, which setup() hands on (no environment)."""
    from hgrlib.experiment.prepare import setup

    for nb in runner.find_notebooks(REPO):
        assert "folds" in runner.notebook_parameters(nb), nb.name
        assert nb.stem.startswith("01") or "jobs" in runner.notebook_parameters(nb), nb.name
    monkeypatch.setenv("HGRLIB_JOBS", "1")  # restored after the test
    monkeypatch.chdir(REPO)
    s = setup("smoke", "ravdess", "x", 6, load=False, folds="present", jobs=3)
    assert s.config.data.folds == "present" and s.jobs == 3  # handed to hgrlib.experiment.launch.train_all(jobs=S.jobs)
    assert os.environ["HGRLIB_JOBS"] == "1"  # the parameter does not travel through the environment
    assert setup("smoke", "ravdess", "x", 6, load=False).config.data.folds == "shipped"


def test_data_digest_follows_linked_folders(partial, tmp_path):
    before = runner.data_digest("ravdess", str(partial))
    clip = next((partial / "Actor_03").iterdir())
    os.utime(clip, ns=(0, 12345))
    assert runner.data_digest("ravdess", str(partial)) != before


def test_setup_writes_a_table_and_a_figure_with_one_call(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from hgrlib.experiment.prepare import setup

    monkeypatch.chdir(REPO)
    s = setup("smoke", "synthetic", None, 6, results_dir=str(tmp_path / "r"), figures_dir=str(tmp_path / "f"), load=False)
    shown = s.table(pd.DataFrame({"a": [1, 2]}), "09_t", title="A title")
    assert "A title" in shown._repr_html_() and (tmp_path / "r" / s.tag / "09_t.csv").read_text() == "a\n1\n2\n"
    assert (tmp_path / "r" / s.tag / "09_t.md").read_text().startswith("# A title")
    assert s.table(pd.DataFrame({"b": [3]}), "09_u", show=False) == (
        tmp_path / "r" / s.tag / "09_u.csv",
        tmp_path / "r" / s.tag / "09_u.md",
    )
    fig = plt.figure()
    assert s.figure(fig, "09_f.png") == tmp_path / "f" / s.tag / "09_f.png" and (tmp_path / "f" / s.tag / "09_f.png").stat().st_size > 0
    plt.close(fig)
