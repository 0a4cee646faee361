"""Never stale: every input of a cached result is in its key, and damaged cache files are caught, reported and redone."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil

import numpy as np
import pytest

import hgrlib.base.provenance as provenance
from hgrlib.base.io import CorruptFile, read_sealed_json, write_sealed_json
from hgrlib.data.cache import FeatureCache, feature_code, load_features, prepare
from hgrlib.data.datasets import index_dataset
from hgrlib.experiment.runs import cached_fit, run_key


def test_code_digest_follows_imports_and_covers_the_split_files(tmp_path, monkeypatch):
    pkg = tmp_path / "hgrlib"
    shutil.copytree(provenance.PACKAGE_DIR, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(provenance, "PACKAGE_DIR", pkg)
    digest = provenance.code_digest.__wrapped__  # uncached
    names = {f.relative_to(pkg).as_posix() for f in provenance.module_closure("hgrlib.core.train")}
    # found, not listed: where the folds come from is in a run's code, the plotting code is not
    assert {"core/train.py", "data/datasets.py", "data/splits.py", "core/losses.py", "core/models.py", "config.py"} <= names
    assert "report/plots.py" not in names and "reproduce/runner.py" not in names
    # nor how runs are found, launched or driven (a lazy import would pull them in)
    assert (
        not {"experiment/runs.py", "experiment/launch.py", "app/cli.py", "experiment/prepare.py", "experiment/profiles.py", "data/cache.py"}
        & names
    ), names
    base = digest("hgrlib.core.train")
    (pkg / "report/plots.py").write_text((pkg / "report/plots.py").read_text() + "\n# unrelated edit\n")
    assert digest("hgrlib.core.train") == base
    datasets = pkg / "data" / "datasets.py"
    original = datasets.read_text()
    datasets.write_text(original.replace('"""', '"""Reworded. ', 1) + "\n# a comment\n")  # docs only
    assert digest("hgrlib.core.train") == base
    for edited, change in (("data/datasets.py", "\nRAVDESS_SUBJECTS = RAVDESS_SUBJECTS[:-1]\n"), ("data/shipped_folds/ravdess.json", "\n")):
        f = pkg / edited
        before = f.read_text()
        f.write_text(before + change)
        assert digest("hgrlib.core.train") != base, edited
        f.write_text(before)
    datasets.write_text(original)
    assert digest("hgrlib.core.train") == base


def test_feature_code_covers_the_feature_code_and_not_the_folds(tmp_path, monkeypatch):
    pkg = tmp_path / "hgrlib"
    shutil.copytree(provenance.PACKAGE_DIR, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(provenance, "PACKAGE_DIR", pkg)
    digest = feature_code.__wrapped__  # uncached
    base = digest()
    assert base == feature_code()  # the copy is the package
    for edited, change, changes in (
        ("data/folds.py", "\nFOLD_SPECS['ravdess']['seed'] = 1\n", False),
        ("data/splits.py", "\nSEED = 1\n", False),
        ("data/datasets.py", "\nRAVDESS_SUBJECTS = []\n", False),
        ("data/shipped_folds/ravdess.json", "\n", False),
        ("core/train.py", "\nEPOCHS = 1\n", False),
        ("data/features.py", "\nHOP = 2\n", True),
        ("data/media.py", "\nSR = 8000\n", True),
        ("data/faces.py", "\nMARGIN = 0.5\n", True),
        ("config.py", "\nFeatureConfig.__init__.__defaults__ = None\n", True),
    ):
        f = pkg / edited
        before = f.read_text()
        f.write_text(before + change)
        assert (digest() != base) is changes, edited
        f.write_text(before)
    assert digest() == base


def test_run_key_changes_with_each_input_and_only_then(tiny, monkeypatch):
    import hgrlib.experiment.runs as runs

    cfg, fs, _ = tiny
    key = run_key(cfg, fs)
    assert run_key(cfg, fs) == key
    assert run_key(cfg.with_(train={"seed": 1}), fs) != key
    other = dataclasses.replace(fs, audio=fs.audio.copy())
    other.audio[3, 1, 0, 5, 7] += np.float16(0.5)  # one feature value of one clip
    assert run_key(cfg, other)["data"] != key["data"]
    assert run_key(cfg, dataclasses.replace(fs, feature_key="synthetic-other"))["data"] != key["data"]
    monkeypatch.setattr(runs, "code_version", lambda: "edited")
    assert run_key(cfg, fs)["code"] != key["code"]
    monkeypatch.setattr(runs, "library_versions", lambda names: {"torch": "9.9"})
    assert run_key(cfg, fs)["libs"] != key["libs"]


def test_fit_is_reused_when_unchanged_and_redone_when_an_input_changes(tiny, tmp_path, monkeypatch):
    import hgrlib.experiment.runs as runs

    cfg, fs, _ = tiny
    cfg = cfg.with_(train={"epochs": 1})
    first = cached_fit(cfg, fs, str(tmp_path), progress=False)
    assert cached_fit(cfg, fs, str(tmp_path), progress=False)["seconds"] == first["seconds"]  # read back
    edited = dataclasses.replace(fs, faces=fs.faces.copy())
    edited.faces[0, 0, 0, 0, 0, 0] ^= 1
    assert cached_fit(cfg, edited, str(tmp_path), progress=False)["run_dir"] != first["run_dir"]
    monkeypatch.setattr(runs, "code_version", lambda: "edited")
    assert cached_fit(cfg, fs, str(tmp_path), progress=False)["run_dir"] != first["run_dir"]


def test_damaged_result_or_features_are_reported_and_the_run_retrained(tiny, tmp_path, capfd):
    cfg, fs, _ = tiny
    cfg = cfg.with_(train={"epochs": 1})
    first = cached_fit(cfg, fs, str(tmp_path), progress=False)
    result_file = os.path.join(first["run_dir"], "result.json")
    text = open(result_file).read()
    open(result_file, "w").write(text[: len(text) // 2])  # truncated
    again = cached_fit(cfg, fs, str(tmp_path), progress=False)
    assert "result.json" in capfd.readouterr().err and again["seconds"] != first["seconds"]
    assert again["test"] == first["test"]  # same numbers: the run is deterministic
    edited = json.loads(open(result_file).read())
    edited["test"]["acc"] = 0.99  # a hand-edited number no longer matches the checksum
    open(result_file, "w").write(json.dumps(edited))
    third = cached_fit(cfg, fs, str(tmp_path), progress=False)
    assert third["test"]["acc"] == first["test"]["acc"] and "checksum" in capfd.readouterr().err
    with open(os.path.join(first["run_dir"], "features.npz"), "r+b") as fh:
        fh.seek(100)
        fh.write(b"\0\0\0\0")
    fourth = cached_fit(cfg, fs, str(tmp_path), progress=False)
    assert "features.npz" in capfd.readouterr().err and fourth["seconds"] != third["seconds"]


def test_damaged_checkpoint_restarts_the_run(tiny, tmp_path, capfd):
    cfg, fs, _ = tiny
    cfg = cfg.with_(train={"epochs": 1})
    whole = cached_fit(cfg, fs, str(tmp_path / "a"), progress=False)
    run_dir = tmp_path / "b" / os.path.basename(whole["run_dir"])
    run_dir.mkdir(parents=True)
    (run_dir / "checkpoint.pt").write_bytes(b"PK\x03\x04 half a checkpoint")
    r = cached_fit(cfg, fs, str(tmp_path / "b"), progress=False)
    assert "checkpoint.pt" in capfd.readouterr().err and r["test"] == whole["test"]


def test_sealed_json_round_trip_and_detection(tmp_path):
    p = tmp_path / "r.json"
    write_sealed_json(p, {"a": 1, "b": [1.5, "x"]})
    assert read_sealed_json(p) == {"a": 1, "b": [1.5, "x"]}
    p.write_text(p.read_text().replace("1.5", "2.5"))
    with pytest.raises(CorruptFile, match="checksum"):
        read_sealed_json(p)
    p.write_text('{"a": 1')
    with pytest.raises(CorruptFile, match="unreadable"):
        read_sealed_json(p)


@pytest.fixture
def corpus_copy(tiny, tmp_path):
    """A private copy of the tiny corpus and a cache of its first 4 clips."""
    cfg, _, _ = tiny
    root = tmp_path / "corpus"
    shutil.copytree(cfg.data.root, root)
    records, _ = index_dataset("synthetic", str(root))
    cache = FeatureCache(tmp_path / "cache", "synthetic", cfg.features)
    assert prepare(records[:4], cache, workers=1, progress=False).extracted == 4
    return records[:4], cache


def test_edited_clip_is_extracted_again(corpus_copy):
    records, cache = corpus_copy
    wav = records[1].audio_path
    x = bytearray(open(wav, "rb").read())
    x[-200:] = bytes(200)  # the last samples silenced: same size, new content and mtime
    open(wav, "wb").write(bytes(x))
    assert "stale" in cache.problem(records[1]) and cache.problem(records[0]) is None
    rep = prepare(records, cache, workers=1, progress=False)
    assert rep.cached == 3 and rep.extracted == 1 and rep.recomputed[0][0] == records[1].path
    assert cache.problem(records[1]) is None


def test_moved_clip_and_other_feature_code_do_not_reuse_features(corpus_copy, tmp_path, monkeypatch):
    import hgrlib.data.cache as cache_mod

    records, cache = corpus_copy
    (tmp_path / "other").mkdir()
    moved = dataclasses.replace(records[0], path=str(tmp_path / "other" / os.path.basename(records[0].path)))
    shutil.copy2(records[0].path, moved.path)  # same name, bytes and mtime, another place (e.g. another --root)
    assert cache.path(moved) == cache.path(records[0]) and "stale" in cache.problem(moved)
    monkeypatch.setattr(cache_mod, "library_versions", lambda names: {"av": "0.0"})
    assert FeatureCache(tmp_path / "cache", "synthetic", cache.cfg).root != cache.root
    monkeypatch.setattr(cache_mod, "feature_code", lambda: "edited")
    assert FeatureCache(tmp_path / "cache", "synthetic", cache.cfg).root != cache.root


def test_damaged_feature_files_are_reported_and_extracted_again(corpus_copy, capfd):
    records, cache = corpus_copy
    good = [cache.load(r) for r in records]
    p0, p2 = cache.path(records[0]), cache.path(records[2])
    p0.write_bytes(p0.read_bytes()[:300])  # truncated
    with np.load(p2) as z:  # one value changed, the recorded checksum kept
        parts = {k: z[k] for k in z.files}
    parts["audio"] = parts["audio"].copy()
    parts["audio"][0, 0, 0, 0] += 1
    np.savez(p2, **parts)
    assert "unreadable" in cache.problem(records[0]) and "checksum" in cache.problem(records[2])
    kept, audio, faces = load_features(records, cache)  # not a crash, not the damaged values
    err = capfd.readouterr().err
    assert str(p0) in err and str(p2) in err
    assert len(kept) == 4 and all(np.array_equal(audio[i], good[i][0]) for i in range(4))


def test_report_of_cached_clips_says_how_their_faces_were_found(corpus_copy, monkeypatch):
    records, cache = corpus_copy
    opened = []
    np_load = np.load
    monkeypatch.setattr(np, "load", lambda f, *a, **k: opened.append(f) or np_load(f, *a, **k))
    first = prepare(records, cache, workers=1, progress=False)  # every clip read from the cache
    assert sorted(opened) == sorted(cache.path(r) for r in records)  # each once
    monkeypatch.undo()
    assert first.extracted == 0 and first.cached == 4 and first.faces_unknown == 0
    frames = first.frames_detected + first.frames_borrowed + first.frames_fallback
    assert frames == 4 * cache.cfg.n_segments * cache.cfg.frames_per_segment
    assert "face detected" in first.summary()
    cache.path(records[0]).unlink()  # one clip extracted now, three from the cache: the same totals
    again = prepare(records, cache, workers=1, progress=False)
    assert again.extracted == 1 and again.cached == 3
    assert (again.frames_detected, again.frames_borrowed, again.frames_fallback) == (
        first.frames_detected,
        first.frames_borrowed,
        first.frames_fallback,
    )


def test_one_process_preparation_makes_the_detector_once(corpus_copy, monkeypatch):
    import hgrlib.data.cache as cache_mod
    import hgrlib.data.faces as faces

    records, cache = corpus_copy
    made, make = [], faces.make_detector
    monkeypatch.setattr(faces, "make_detector", lambda cfg, device="cpu": made.append(device) or make(cfg, device))
    monkeypatch.setattr(cache_mod, "_worker", {})  # as in a new process
    for r in records[:2]:
        cache.path(r).unlink()
    assert prepare(records, cache, workers=1, progress=False).extracted == 2
    cache.path(records[0]).unlink()
    assert prepare(records, cache, workers=1, progress=False).extracted == 1  # a second preparation in the process
    assert made == ["cpu"]


def test_features_of_another_cpu_are_kept_apart(tmp_path, monkeypatch, request):
    """Another CPU model or a pinned MKL path computes other log-mel bytes: another feature cache (simulated CPU)."""
    from hgrlib.base import provenance
    from hgrlib.experiment.profiles import get_profile

    cfg = get_profile("smoke").config.features
    here = FeatureCache(tmp_path / "cache", "synthetic", cfg).root
    assert FeatureCache(tmp_path / "cache", "synthetic", cfg).root == here
    request.addfinalizer(provenance._machine_identity.cache_clear)
    monkeypatch.setattr(
        provenance, "_cpuinfo", lambda: {"vendor_id": "GenuineIntel", "cpu family": "6", "model": "207", "flags": "avx2 fma"}
    )
    provenance._machine_identity.cache_clear()
    intel = FeatureCache(tmp_path / "cache", "synthetic", cfg)
    assert intel.root != here and intel.key["machine"].startswith("GenuineIntel-6-207-avx2-")
    monkeypatch.setenv("MKL_CBWR", "COMPATIBLE")
    assert FeatureCache(tmp_path / "cache", "synthetic", cfg).root != intel.root
