"""The synthetic corpus: RAVDESS names, decodable files, byte-identical regeneration, self-check and repair,
config and version checks, faces."""

import csv
import hashlib
import json
import os
import re

import numpy as np
import pytest

from hgrlib.data.faces import FaceDetector, crop_faces
from hgrlib.data.media import read_audio, read_video
from hgrlib.data.records import DataError
from hgrlib.data.synthetic import SyntheticConfig, generate_corpus
from hgrlib.experiment.profiles import PROFILES

CFG = SyntheticConfig(n_subjects=2, clips_per_emotion=1, duration=0.8, seed=3)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return generate_corpus(tmp_path_factory.mktemp("syn") / "c", CFG, workers=2, progress=False).root


def test_ravdess_layout(corpus):
    assert sorted(p.name for p in corpus.iterdir()) == ["Actor_01", "Actor_02", "corpus.json", "factors.csv"]
    for actor in (1, 2):
        names = sorted(p.name for p in (corpus / f"Actor_{actor:02d}").iterdir())
        expect = sorted(f"{m}-01-{e:02d}-01-01-01-{actor:02d}.{ext}" for m, ext in (("01", "mp4"), ("03", "wav")) for e in range(3, 9))
        assert names == expect
    rows = list(csv.DictReader(open(corpus / "factors.csv")))
    assert len(rows) == 12
    assert {r["emotion"] for r in rows} == {"anger", "disgust", "fear", "happiness", "sadness", "surprise"}
    code = {"happiness": "03", "sadness": "04", "anger": "05", "fear": "06", "disgust": "07", "surprise": "08"}
    for r in rows:
        assert re.fullmatch(r"01-01-0[3-8]-01-01-01-0[12]", r["file"])
        assert r["file"].split("-")[2] == code[r["emotion"]]
        assert r["ambiguous"] in ("none", "audio", "visual")


def test_files_decode(corpus):
    mp4 = corpus / "Actor_01" / "01-01-05-01-01-01-01.mp4"
    frames, fps = read_video(mp4)
    assert frames.shape == (20, 120, 160, 3) and frames.dtype == np.uint8 and fps == 25
    wav = read_audio(corpus / "Actor_01" / "03-01-05-01-01-01-01.wav")
    assert wav.shape == (int(0.8 * 16000),)
    track = read_audio(mp4)
    assert abs(len(track) - len(wav)) < 0.1 * 16000  # AAC pads a little
    assert 0.01 < np.sqrt(np.mean(wav**2)) < 0.9


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_corpus_json_records_every_clip_file(corpus):
    meta = json.loads((corpus / "corpus.json").read_text())
    assert meta["version"] == 2 and meta["config"]["seed"] == 3
    clips = {k: hashlib.sha256(v).hexdigest() for k, v in _files(corpus).items() if k.endswith((".mp4", ".wav"))}
    assert len(clips) == 24 and meta["files"] == clips


@pytest.mark.slow
def test_smoke_corpus_is_byte_identical(tmp_path, monkeypatch):
    cfg = PROFILES["smoke"].synthetic
    one_cpu = hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) > 1
    cpus = os.sched_getaffinity(0) if one_cpu else None
    try:
        if one_cpu:  # an encoder whose output follows the number of cores would differ from the 2-worker run
            os.sched_setaffinity(0, {min(cpus)})
        a = generate_corpus(tmp_path / "a", cfg, workers=1, progress=False)
    finally:
        if one_cpu:
            os.sched_setaffinity(0, cpus)
    # the workers' heap starts filled with 0x55: any read of uninitialised memory changes their output
    monkeypatch.setenv("MALLOC_PERTURB_", "170")
    b = generate_corpus(tmp_path / "b", cfg, workers=2, progress=False)
    fa, fb = _files(a.root), _files(b.root)
    assert len(fa) == 2 * a.clips + 2 == 74 and fa.keys() == fb.keys()
    assert [k for k in fa if fa[k] != fb[k]] == []
    assert (a.generated, b.generated, a.verified, a.regenerated) == (72, 72, 0, [])


def test_check_repairs_tampered_and_missing_files(corpus):
    before = _files(corpus)
    mtimes = {p: p.stat().st_mtime_ns for p in corpus.glob("Actor_*/*")}
    mp4, wav = "Actor_02/01-01-08-01-01-01-02.mp4", "Actor_01/03-01-04-01-01-01-01.wav"
    with open(corpus / mp4, "r+b") as fh:
        fh.seek(2000)
        fh.write(b"\xff\x00\xff\x00")
    (corpus / wav).unlink()
    r = generate_corpus(corpus, CFG, workers=1, progress=False)
    assert r.regenerated == [(wav, "missing; regenerated"), (mp4, "differs from what seed 3 makes; regenerated")]
    assert (r.clips, r.verified, r.generated) == (12, 22, 2)
    assert mp4 in r.summary() and wav in r.summary()
    assert _files(corpus) == before
    for p, t in mtimes.items():  # only the two files were rewritten
        if p.relative_to(corpus).as_posix() not in (mp4, wav):
            assert p.stat().st_mtime_ns == t, p
    r = generate_corpus(corpus, CFG, workers=1, progress=False)
    assert (r.verified, r.generated, r.regenerated) == (24, 0, [])


def test_unrecorded_file_is_regenerated(corpus):
    meta = json.loads((corpus / "corpus.json").read_text())
    rel = "Actor_01/01-01-06-01-01-01-01.mp4"
    del meta["files"][rel]
    (corpus / "corpus.json").write_text(json.dumps(meta, indent=2))
    t = (corpus / rel).stat().st_mtime_ns
    r = generate_corpus(corpus, CFG, workers=1, progress=False)
    assert (r.verified, r.generated, r.regenerated) == (23, 1, []) and (corpus / rel).stat().st_mtime_ns != t
    assert rel in json.loads((corpus / "corpus.json").read_text())["files"]


def test_older_generator_version_is_regenerated(corpus):
    before = _files(corpus)
    meta = json.loads((corpus / "corpus.json").read_text())
    v1 = {k: meta[k] for k in ("generator", "version", "config")} | {"version": 1}  # as version 1 wrote it
    (corpus / "corpus.json").write_text(json.dumps(v1, indent=2))
    r = generate_corpus(corpus, CFG, workers=2, progress=False)
    assert (r.upgraded_from, r.verified, r.generated, r.regenerated) == (1, 0, 24, [])
    assert "version 1" in r.summary()
    assert _files(corpus) == before  # corpus.json back at version 2 with the same records


def test_config_mismatch_is_an_error(corpus):
    with pytest.raises(DataError, match="different config"):
        generate_corpus(corpus, SyntheticConfig(n_subjects=2, clips_per_emotion=1, duration=0.8, seed=4), progress=False)


def test_faces_found_in_key_frames(corpus):
    det, found, total = FaceDetector(), 0, 0
    for mp4 in sorted(corpus.glob("Actor_*/*.mp4")):
        frames, _ = read_video(mp4)
        _, st = crop_faces(frames, [0, 7, 14, 19], size=48, margin=0.2, detector=det)
        found, total = found + st.detected, total + 4
    assert found / total >= 0.85


def test_modalities_carry_emotion():
    from hgrlib.data.synthetic import clip_factors, clip_names

    cfg = SyntheticConfig(n_subjects=8)
    rows = [clip_factors(cfg, a, n) for a, n in clip_names(cfg)]
    f0 = {e: np.mean([r["a_f0"] for r in rows if r["emotion"] == e]) for e in ("fear", "sadness")}
    brow = {e: np.mean([r["v_brow"] for r in rows if r["emotion"] == e]) for e in ("surprise", "anger")}
    assert f0["fear"] > f0["sadness"] + 3 and brow["surprise"] > brow["anger"] + 0.8
    amb = [r["ambiguous"] for r in rows]
    assert 0.1 < np.mean([a != "none" for a in amb]) < 0.3
