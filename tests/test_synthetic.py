"""The synthetic corpus: RAVDESS names, decodable files, determinism, resume, config check, faces."""

import csv
import re

import numpy as np
import pytest

from hgrlib.data.faces import FaceDetector, crop_faces
from hgrlib.data.media import read_audio, read_video
from hgrlib.data.records import DataError
from hgrlib.data.synthetic import SyntheticConfig, generate_corpus

CFG = SyntheticConfig(n_subjects=2, clips_per_emotion=1, duration=0.8, seed=3)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return generate_corpus(tmp_path_factory.mktemp("syn") / "c", CFG, workers=2, progress=False)


def test_ravdess_layout(corpus):
    assert sorted(p.name for p in corpus.iterdir()) == ["Actor_01", "Actor_02", "corpus.json", "factors.csv"]
    for actor in (1, 2):
        names = sorted(p.name for p in (corpus / f"Actor_{actor:02d}").iterdir())
        expect = sorted(f"{m}-01-{e:02d}-01-01-01-{actor:02d}.{ext}"
                        for m, ext in (("01", "mp4"), ("03", "wav")) for e in range(3, 9))
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
    assert 0.01 < np.sqrt(np.mean(wav ** 2)) < 0.9


def test_deterministic_per_clip(corpus, tmp_path):
    one = tmp_path / "one"
    generate_corpus(one, CFG, workers=1, progress=False)  # regenerated alone, one worker
    assert (one / "factors.csv").read_text() == (corpus / "factors.csv").read_text()
    for name in ("03-01-07-01-01-01-02.wav", "03-01-03-01-01-01-01.wav"):
        a = read_audio(one / f"Actor_{name[-6:-4]}" / name)
        b = read_audio(corpus / f"Actor_{name[-6:-4]}" / name)
        assert np.array_equal(a, b)


def test_resume_keeps_existing_files(corpus):
    files = sorted((corpus / "Actor_02").iterdir())
    before = {p: p.stat().st_mtime_ns for p in files}
    victim = corpus / "Actor_02" / "01-01-08-01-01-01-02.mp4"
    victim.unlink()
    generate_corpus(corpus, CFG, workers=1, progress=False)
    assert victim.exists()
    for p, t in before.items():
        if p != victim and p.name != "03-01-08-01-01-01-02.wav":
            assert p.stat().st_mtime_ns == t, p


def test_config_mismatch_is_an_error(corpus):
    with pytest.raises(DataError, match="different config"):
        generate_corpus(corpus, SyntheticConfig(n_subjects=2, clips_per_emotion=1, duration=0.8, seed=4),
                        progress=False)


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
