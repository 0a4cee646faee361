"""Faults survived (scripts/faults.py), one trial each on the tiny corpus: a killed, a disk-full, a corrupt-cache
and a corrupt-result `hgrlib train` must all end with the uninterrupted run's numbers and lose nothing."""

from __future__ import annotations

import importlib.util
import json
import random
import sys
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("faults", Path(__file__).resolve().parents[1] / "scripts" / "faults.py")
faults = sys.modules["faults"] = importlib.util.module_from_spec(_spec)  # registered: its dataclasses look it up
_spec.loader.exec_module(faults)


@pytest.fixture(scope="module")
def lab(tiny, tmp_path_factory):
    """The scratch lab on the session's tiny corpus and cache (the smoke profile's), its reference run made once."""
    cfg, _, cache = tiny
    lab = faults.Lab(tmp_path_factory.mktemp("faults"), data=cfg.data.root, cache=cache)
    assert lab.train_ref["outcome"]["test"] is not None and lab.train_ref["span"] > 0
    return lab


# seed 7 draws its point about a third into the window between the first checkpoint and result.json, so that the
# fault strikes mid-training however fast the machine runs today
MID_RUN = 7


def survived(row: dict) -> dict:
    """The one trial of a fault that must have ended as required, with nothing lost."""
    assert row["tried"] == 1
    assert row["ok"], json.dumps(row, indent=2)
    assert row["data_lost"] == "none" and not row["outcome"].startswith("FAILED")
    return row["trials"][0]


@pytest.mark.slow
def test_train_killed_mid_run_resumes_with_the_same_numbers(lab):
    trial = survived(faults.train_kill(lab, random.Random(MID_RUN), 1))
    assert trial["struck"], trial  # killed while a checkpoint existed: the resume, not a cached result, made the numbers


@pytest.mark.slow
def test_altered_result_json_is_reported_and_retrained(lab):
    trial = survived(faults.corrupt_result(lab, random.Random(0), 1))
    assert trial["point"].startswith("test.")  # a metric was changed


@pytest.mark.slow
def test_damaged_cache_file_is_reported_and_extracted_again(lab):
    untouched = faults.cache_digests(lab.cache, lab.data)
    trial = survived(faults.corrupt_cache(lab, random.Random(0), 1))
    assert "then train" in trial["point"] and "then prep" in trial["point"]
    assert faults.cache_digests(lab.cache, lab.data) == untouched  # the trials worked on a copy


@pytest.mark.slow
def test_full_disk_during_train_fails_and_the_rerun_is_identical(lab):
    trial = survived(faults.full_disk_train(lab, random.Random(MID_RUN), 1))
    assert trial["struck"], trial  # the disk filled before the run had written everything


def test_the_checks_see_a_difference(lab, tmp_path):
    """The comparisons the faults rest on: another run's numbers, a damaged file, a changed table are caught."""
    import pandas as pd

    ref = lab.train_ref["outcome"]
    other = ref | {"test": ref["test"] | {"acc": ref["test"]["acc"] + 0.01}}
    assert faults.describe_run_diff(ref, other) and faults.describe_run_diff(ref, ref) == []
    clip = faults.clip_files(lab.cache, lab.data)[0]
    copy = tmp_path / clip.name
    copy.write_bytes(clip.read_bytes())
    for seed in range(4):  # truncations and byte flips, each must make the arrays unreadable or different
        copy.write_bytes(clip.read_bytes())
        faults.damage_npz(copy, random.Random(seed))
        assert faults.npz_digest(copy, ("audio", "faces")) != faults.npz_digest(clip, ("audio", "faces"))
    t = pd.DataFrame({"acc": [0.25, 0.5]})
    assert faults.diff("tables", {"a.csv": t}, {"a.csv": t.assign(acc=[0.25, 0.51])})
    assert faults.diff("tables", {"a.csv": t}, {"a.csv": t.copy()}) == []


@pytest.mark.slow
def test_read_only_runs_folder_holding_a_dead_runs_lock_is_an_error_not_a_wait(lab, monkeypatch):
    """A run killed mid-training leaves its checkpoint and its lease marker; read-only, the marker can never be
    taken over, so the command must say the folder is not writable instead of waiting for it forever."""
    monkeypatch.setattr(faults, "TIMEOUT", 120.0)  # a wait counts as hung after 2 minutes, not 15
    runs = lab.fresh("ro-lock") / "runs"
    runs.mkdir()
    faults.run(lab, lab.train_cmd(runs), "ro-lock-killed", faults.after(0.2, faults.kill_tree, faults.exists(runs, "*/checkpoint.pt")))
    assert list(runs.glob("*/.lock")) and list(runs.glob("*/checkpoint.pt"))  # what the kill left
    before = faults.everything(runs)
    with faults.read_only(runs):
        p = faults.run(lab, lab.train_cmd(runs), "ro-lock", preexec=faults.without_dac_override)
    assert faults.refused(p, runs, before, faults.everything(runs)) == [] and p.rc == 1  # an error, not a wait cut short
