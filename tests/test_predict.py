"""Export a trained run as one file, load it, predict clips with it: the run's own predictions reproduced,
a real photograph with sound goes through, bad clips and bad model files are clear errors naming the file."""

from __future__ import annotations

import json
import os
import shutil

import av
import numpy as np
import pytest
import torch
from fixtures import grace_hopper

import hgrlib
from hgrlib.app.cli import main
from hgrlib.app.export import export_model, from_payload, load_model
from hgrlib.app.predict import ClipFailure, ClipPrediction, extract, predict_clips, to_csv
from hgrlib.config import FeatureConfig
from hgrlib.core.train import WEIGHTS_FILE
from hgrlib.data.datasets import index_dataset
from hgrlib.data.faces import make_detector, square_crop
from hgrlib.data.features import extract_clip
from hgrlib.data.media import write_video
from hgrlib.experiment.runs import cached_fit

SR = 16000


@pytest.fixture(scope="module")
def trained(tiny, tmp_path_factory):
    """A finished tiny run (fusion, CE + Soft-HGR), exported once: (cfg, fs, cache, result, model file, records)."""
    cfg, fs, cache = tiny
    cfg = cfg.with_(loss={"lam": 0.1}, train={"device": "cpu"})  # trained on the CPU, also on a GPU machine
    base = tmp_path_factory.mktemp("predict")
    result = cached_fit(cfg, fs, str(base / "runs"), progress=False)
    model_file = base / "model.pt"
    report = export_model(result["run_dir"], model_file, cache, fs=fs)
    assert report.max_diff <= 1e-6
    records, _ = index_dataset(cfg.data.dataset, cfg.data.root)
    return cfg, fs, cache, result, model_file, records


def _run_test_probs(result: dict) -> dict[str, np.ndarray]:
    with np.load(f"{result['run_dir']}/features.npz") as z:
        return {c: p for c, part, p in zip(z["clip_ids"], z["part"], z["probs"]) if part == "test"}


def test_export_load_predict_reproduces_the_runs_test_predictions(trained, capsys):
    cfg, _, _, result, model_file, records = trained
    model = hgrlib.load_model(model_file)
    assert model.features == cfg.features and model.classes == ("anger", "disgust", "fear", "happiness", "sadness", "surprise")
    run_probs = _run_test_probs(result)
    test = [r for r in records if r.clip_id in run_probs]
    assert len(test) == 12  # 2 of the 6 subjects, 6 clips each
    preds = predict_clips(model, [r.path for r in test])  # by path: the audio is found beside the video, as the loader pairs it
    for r, p in zip(test, preds):
        assert isinstance(p, ClipPrediction) and p.audio == r.audio_path
        np.testing.assert_allclose(p.probs, run_probs[r.clip_id], atol=1e-5)
        assert p.emotion == model.classes[int(run_probs[r.clip_id].argmax())]
        assert p.seg_probs.shape == (cfg.features.n_segments, 6) and len(p.seg_emotions) == cfg.features.n_segments
    # the command line gives the same, as JSON
    assert main(["predict", *[r.path for r in test[:3]], "--model", str(model_file), "--json", "--device", "cpu"]) == 0
    out = json.loads(capsys.readouterr().out)
    for r, d in zip(test, out):
        assert d["clip"] == r.path and d["emotion"] == model.classes[int(run_probs[r.clip_id].argmax())]
        np.testing.assert_allclose([d["probs"][c] for c in model.classes], run_probs[r.clip_id], atol=1e-5)
        assert len(d["segments"]) == 3 and d["faces"]["key_frames"] == 9


def test_predict_extracts_the_training_features_byte_for_byte(trained):
    cfg, fs, _, _, _, records = trained
    det = make_detector(cfg.features)  # as prep's workers and predict_clips make it
    for r in records[:3]:
        feats, extra = extract(r, cfg.features, det, keep_view=True)
        ref = extract_clip(r, cfg.features, det)
        i = fs.clip_ids.index(r.clip_id)
        assert np.array_equal(feats.audio, ref.audio) and np.array_equal(feats.audio, fs.audio[i])
        assert np.array_equal(feats.faces, ref.faces) and np.array_equal(feats.faces, fs.faces[i])
        assert feats.faces_stats == ref.faces_stats
        view = extra["view"]
        assert len(view.boxes) == len(view.how) == len(view.frames) == len(extra["key_times"]) == 9
        assert extra["seg_times"].shape == (3, 2) and np.allclose(extra["seg_times"][:, 1] - extra["seg_times"][:, 0], 0.64)
        # each crop is cut around the box the view shows (the margin unless a centre crop), as counted
        f = cfg.features
        for k, (frame, box, how) in enumerate(zip(view.frames, view.boxes, view.how)):
            want = square_crop(frame, box, f.face_size, 0.0 if how == "centre" else f.face_margin)
            assert np.array_equal(view.crops.reshape(-1, *view.crops.shape[2:])[k], want)
        assert view.how.count("detected") == feats.faces_stats.detected and view.how.count("borrowed") == feats.faces_stats.borrowed


def test_the_cli_writes_the_same_model(trained, tmp_path, capsys):
    _, _, cache, result, model_file, _ = trained
    run = result["run_dir"]
    assert os.path.exists(f"{run}/{WEIGHTS_FILE}")  # written by training
    out = tmp_path / "again.pt"
    assert main(["export", run, "-o", str(out), "--cache", str(cache)]) == 0
    text = capsys.readouterr().out
    assert f"wrote {out}" in text and "weights.pt" in text and "identical to the run's own" in text
    a, b = (torch.load(f, weights_only=True) for f in (model_file, out))
    assert a["config"] == b["config"] and a["classes"] == b["classes"]
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    assert torch.equal(a["norm"]["audio_mean"], b["norm"]["audio_mean"]) and a["format_version"] == 1


def test_a_real_photograph_with_sound_goes_through(trained, tmp_path, capsys):
    """Grace Hopper's portrait (matplotlib's sample data) as a 1.6 s clip with a voiced chirp; and the
    same sound with a faceless picture: no face anywhere, said plainly."""
    *_, model_file, _ = trained
    img = grace_hopper()
    img = img[: img.shape[0] // 2 * 2, : img.shape[1] // 2 * 2]
    n, fps = 40, 25
    frames = np.stack([np.roll(img, k // 4, axis=1) for k in range(n)])  # a slow pan: frames differ
    t = np.arange(int(n / fps * SR)) / SR
    audio = 0.3 * np.sin(2 * np.pi * (180 * t + 150 * t**2)) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))
    photo = tmp_path / "grace.mp4"
    write_video(photo, frames, fps, audio.astype(np.float32), SR)
    noise = tmp_path / "no_face.mp4"
    write_video(noise, np.random.default_rng(0).integers(0, 255, (n, 96, 128, 3), dtype=np.uint8), fps, audio.astype(np.float32), SR)
    assert main(["predict", str(photo), str(noise), "--model", str(model_file)]) == 0
    out = capsys.readouterr().out
    assert out.count("emotion: ") == 2 and "segments (3):" in out
    model = load_model(model_file)
    p, q = predict_clips(model, [photo, noise])
    assert isinstance(p, ClipPrediction) and p.audio == str(photo)  # no .wav beside it: its own audio track
    assert p.faces.clip_has_face and p.faces.detected >= 5, p.face_report()  # Haar finds her face
    assert f"faces: {p.face_report()}" in out and "key frames detected" in p.face_report()
    assert not q.faces.clip_has_face and q.faces.fallback == 9
    assert "no face found in any of the 9 key frames: every key frame is a centre crop" in out
    assert abs(p.probs.sum() - 1) < 1e-5


def _audio_only_mp4(path):
    with av.open(str(path), mode="w") as box:
        s = box.add_stream("aac", rate=SR)
        s.layout = "mono"
        pcm = (0.3 * np.sin(2 * np.pi * 220 * np.arange(SR) / SR) * 32767).astype(np.int16)[None, :]
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = SR
        for pkt in [*s.encode(frame), *s.encode()]:
            box.mux(pkt)


def test_bad_clips_are_named_and_skipped_the_good_ones_predicted(trained, tmp_path, capsys):
    *_, model_file, records = trained
    frames = np.random.default_rng(1).integers(0, 255, (10, 64, 64, 3), dtype=np.uint8)
    silent_video = tmp_path / "video_only.mp4"
    write_video(silent_video, frames, 25)  # no audio track, no .wav beside it
    audio_only = tmp_path / "audio_only.mp4"
    _audio_only_mp4(audio_only)
    text = tmp_path / "notes.mp4"
    text.write_text("not a clip\n")
    missing = tmp_path / "missing.mp4"
    bad = [missing, text, silent_video, audio_only]
    assert (
        main(["predict", str(missing), records[0].path, str(text), str(silent_video), str(audio_only), "--model", str(model_file), "--csv"])
        == 1
    )
    cap = capsys.readouterr()
    errors = cap.err.strip().splitlines()
    assert len(errors) == 4
    for f, line in zip(bad, errors):
        assert line.startswith(f"hgrlib predict: error: {f}: "), line
    assert "file not found" in errors[0] and "cannot decode" in errors[1]
    assert "no audio track" in errors[2] and "video_only.wav" in errors[2] and "no video track" in errors[3]
    rows = cap.out.strip().splitlines()
    assert len(rows) == 1 + 1 + 3 and rows[0].startswith("clip,audio,level,segment,start_s,end_s,emotion,p_anger")
    assert [r.split(",")[2] for r in rows[1:]] == ["clip", "segment", "segment", "segment"]
    # a .wav given as the clip, and a clip whose video has no audio but a .wav of its name beside it
    shutil.copyfile(records[0].audio_path, tmp_path / "video_only.wav")
    res = predict_clips(load_model(model_file), [silent_video, records[0].audio_path])
    assert isinstance(res[0], ClipPrediction) and res[0].audio == str(tmp_path / "video_only.wav")
    assert isinstance(res[1], ClipFailure) and "an audio file" in res[1].error


def test_model_files_that_do_not_fit_are_refused_naming_the_file(trained, tmp_path, capsys):
    cfg, *_, model_file, records = trained
    assert main(["predict", records[0].path, "--model", str(tmp_path / "none.pt")]) == 2
    assert f"{tmp_path / 'none.pt'}: model file not found" in capsys.readouterr().err
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00not a model")
    assert main(["predict", records[0].path, "--model", str(junk)]) == 2
    assert f"hgrlib predict: error: {junk}: not an hgrlib model file" in capsys.readouterr().err
    payload = torch.load(model_file, weights_only=True)

    def variant(name, **features):
        p = dict(payload, config=payload["config"] | {"features": payload["config"]["features"] | features})
        torch.save(p, tmp_path / name)
        return tmp_path / name

    for f, why in (
        (variant("deltas.pt", deltas=True), "1, its FeatureConfig says deltas=True"),
        (variant("frames.pt", frames_per_segment=5), "frames_per_segment=5"),
        (variant("mels.pt", n_mels=40), "n_mels=40"),
    ):
        with pytest.raises(ValueError, match="weights do not match its own configuration") as e:
            load_model(f)
        assert str(e.value).startswith(str(f)) and why in str(e.value)
    torch.save(dict(payload, format_version=2), tmp_path / "newer.pt")
    assert main(["predict", records[0].path, "--model", str(tmp_path / "newer.pt")]) == 2
    assert "format version 2" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"other features: face_size=32 \(expected 48\)"):
        load_model(model_file, features=FeatureConfig(n_segments=3))
    assert load_model(model_file, features=cfg.features).features == cfg.features
    with pytest.raises(ValueError, match="no 'hgrlib-model' format tag"):
        from_payload({"weights": 1}, "x.pt")


def test_runs_that_cannot_be_exported_are_clear_errors(trained, tmp_path, capsys):
    _, fs, cache, result, *_ = trained
    assert main(["export", str(tmp_path / "nope"), "--cache", str(cache)]) == 2
    assert "no such run folder" in capsys.readouterr().err
    for name in ("missing", "damaged"):  # weights.pt gone or altered: the run is not a finished run
        broken = tmp_path / name
        shutil.copytree(result["run_dir"], broken)
        w = broken / WEIGHTS_FILE
        if name == "missing":
            w.unlink()
        else:
            b = bytearray(w.read_bytes())
            b[-100] ^= 1
            w.write_bytes(bytes(b))
        assert main(["export", str(broken), "--cache", str(cache)]) == 2
        err = capsys.readouterr().err
        assert "weights.pt: missing or does not match its result.json" in err and "not a finished run" in err
    with pytest.raises(ValueError, match="not a finished run"):
        export_model(tmp_path / "damaged", tmp_path / "m.pt", cache, fs=fs)
    assert not (tmp_path / "m.pt").exists()


def test_predict_from_a_run_folder_as_csv(trained, capsys):
    _, _, cache, result, _, records = trained
    assert main(["predict", records[0].path, records[1].path, "--run", result["run_dir"], "--cache", str(cache), "--csv"]) == 0
    cap = capsys.readouterr()
    rows = cap.out.strip().splitlines()
    assert len(rows) == 1 + 2 * (1 + 3) and "weights.pt" in cap.err
    assert main(["predict", records[0].path]) == 2
    assert "--model FILE" in capsys.readouterr().err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_predict_on_the_gpu_matches_the_cpu(trained, capsys):
    *_, model_file, records = trained
    clips = [r.path for r in records[:4]]
    cpu = predict_clips(load_model(model_file, "cpu"), clips)
    gpu = predict_clips(load_model(model_file, "cuda"), clips)
    for a, b in zip(cpu, gpu):
        np.testing.assert_allclose(a.probs, b.probs, atol=2e-3)  # cuDNN's TF32 convolutions
    assert main(["predict", *clips, "--model", str(model_file), "--device", "cuda", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 4
    assert isinstance(to_csv(gpu), str)
