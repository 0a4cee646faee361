"""Features, cache, splits and training on a tiny synthetic corpus."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch
from conftest import TINY_FEATURES, TINY_SYNTH

from hgrlib.base.io import read_json
from hgrlib.base.provenance import FEATURE_LIBS, arrays_sha256, library_versions
from hgrlib.config import FeatureConfig
from hgrlib.data.cache import FeatureCache, load_features, prepare
from hgrlib.data.datasets import index_dataset
from hgrlib.data.features import audio_segments, key_frame_times, log_mel, segment_starts
from hgrlib.data.splits import make_split
from hgrlib.experiment.prepare import results_frame, seeded_runs
from hgrlib.experiment.profiles import PROFILES
from hgrlib.experiment.runs import cached_fit
from hgrlib.report.tables import mean_std


def test_log_mel_matches_librosa_with_the_same_padding():
    import librosa

    cfg = FeatureConfig()
    x = np.random.default_rng(0).normal(size=16000).astype(np.float32) * 0.1
    ours = log_mel(torch.from_numpy(x)[None], cfg)[0].numpy()
    ref = librosa.power_to_db(
        librosa.feature.melspectrogram(
            y=x,
            sr=16000,
            n_fft=640,
            win_length=640,
            hop_length=160,
            n_mels=94,
            window="hann",
            center=True,
            pad_mode="reflect",
            htk=True,
            norm=None,
            power=2.0,
        ),
        ref=1.0,
        amin=1e-10,
        top_db=80.0,
    )
    assert ours.shape == (94, 101)
    assert np.abs(ours - ref).max() < 0.05  # dB


def test_segments_and_key_frames_are_aligned_and_cover_the_clip():
    cfg = FeatureConfig(n_segments=4, segment_frames=64, frames_per_segment=2)
    starts = segment_starts(300, cfg)
    assert starts[0] == 0 and starts[-1] == 300 - 64 and np.all(np.diff(starts) > 0)
    t = np.array(key_frame_times(starts, cfg)).reshape(4, 2)
    assert np.all(t[:, 0] >= starts * 0.01) and np.all(t[:, 1] <= (starts + 64) * 0.01)
    segs, _ = audio_segments(torch.zeros(94, 30), FeatureConfig(n_segments=2, deltas=True))  # shorter than a segment
    assert segs.shape == (2, 3, 94, 64)


def test_feature_shapes_and_cache_content(tiny):
    cfg, fs, _ = tiny
    n = len(fs.clip_ids)
    assert n == 36 and sorted(set(fs.labels)) == list(range(6))
    assert fs.audio.shape == (n, 3, 1, 94, 64) and fs.audio.dtype == np.float16
    assert fs.faces.shape == (n, 3, 3, 32, 32, 3) and fs.faces.dtype == np.uint8
    assert np.isfinite(fs.audio.astype(np.float32)).all() and fs.faces.std() > 10


# arrays_sha256(audio, faces) of the smoke profile's features of the synthetic corpus, and the feature
# libraries that made them: every committed result is computed from these bytes
SMOKE_FEATURES_SHA256 = "2805abe85c1cb0929cebb18d1a603df183f2048e6b1a356542519e899f52babb"
SMOKE_FEATURES_LIBS = {
    "torch": "2.14.1",
    "torchaudio": "2.11.0",
    "numpy": "2.4.6",
    "opencv-python-headless": "4.14.0.94",
    "av": "18.1.0",
    "soundfile": "0.14.0",
    "soxr": "1.1.0",
}


def test_smoke_features_are_the_pinned_bytes(tiny):
    cfg, _, cache_dir = tiny
    smoke = PROFILES["smoke"]
    assert (TINY_FEATURES, TINY_SYNTH) == (smoke.config.features, smoke.synthetic)  # the tiny corpus is the smoke one
    if library_versions(FEATURE_LIBS) != SMOKE_FEATURES_LIBS:
        pytest.skip(f"pinned with {SMOKE_FEATURES_LIBS}, installed {library_versions(FEATURE_LIBS)}")
    records, _ = index_dataset("synthetic", cfg.data.root)
    kept, audio, faces = load_features(records, FeatureCache(cache_dir, "synthetic", cfg.features, cfg.data.root))
    assert len(kept) == 36 and arrays_sha256(audio, faces) == SMOKE_FEATURES_SHA256


def test_prepare_resumes_and_skips_broken_clips(tiny, tmp_path):
    cfg, _, _ = tiny
    root = tmp_path / "corpus"
    shutil.copytree(cfg.data.root, root)
    records, _ = index_dataset("synthetic", str(root))
    victim, empty = records[0], records[1]
    open(victim.path, "wb").write(b"not a video at all")
    open(victim.audio_path, "wb").write(b"RIFF....")
    open(empty.audio_path, "wb").close()
    cache = FeatureCache(tmp_path / "cache", "synthetic", cfg.features)
    rep = prepare(records[:4], cache, workers=1, progress=False)
    assert rep.extracted == 2 and len(rep.skipped) == 2
    reasons = dict(rep.skipped)
    assert victim.path in reasons and str(victim.audio_path) in reasons[victim.path]
    assert "empty" in reasons[empty.path] or "decode" in reasons[empty.path]
    again = prepare(records[:4], cache, workers=1, progress=False)  # finished clips are not redone
    assert again.cached == 2 and again.extracted == 0
    kept, audio, _ = load_features(records[:4], cache)
    assert len(kept) == 2 == len(audio)


def test_feature_cache_key_changes_with_config(tmp_path):
    a = FeatureCache(tmp_path, "synthetic", FeatureConfig())
    b = FeatureCache(tmp_path, "synthetic", FeatureConfig(n_mels=64))
    assert a.root != b.root and read_json(a.root / "key.json")["features"]["n_mels"] == 94


def test_subject_split_is_subject_independent_and_segment_split_is_not():
    subjects = [f"{s:02d}" for s in range(1, 9) for _ in range(6)]
    labels = np.tile(np.arange(6), 8)
    sp = make_split(subjects, labels, 3, dataset="synthetic", protocol="subject", n_folds=4, fold=1, seed=0)
    subj = lambda idx: {subjects[i // 3] for i in idx}  # noqa: E731
    assert not (subj(sp.train) & subj(sp.test)) and not (subj(sp.val) & subj(sp.test)) and not (subj(sp.train) & subj(sp.val))
    assert len(sp.train) + len(sp.val) + len(sp.test) == len(subjects) * 3
    seg = make_split(subjects, labels, 3, dataset="synthetic", protocol="segment", seed=0)
    clips = lambda idx: {i // 3 for i in idx}  # noqa: E731
    assert clips(seg.train) & clips(seg.test)  # segments of one clip on both sides: the inflation
    semi = make_split(subjects, labels, 3, dataset="synthetic", n_folds=4, labeled_frac=0.25, seed=0)
    lab_clips = set(semi.train[semi.labeled] // 3)
    assert 0 < len(lab_clips) < len(set(semi.train // 3))
    assert {labels[c] for c in lab_clips} == set(range(6))  # stratified: every class keeps labels
    with pytest.raises(ValueError, match="protocol"):
        make_split(subjects, labels, 3, dataset="synthetic", protocol="speaker")


def test_fit_is_deterministic_cached_and_resumable(tiny, tmp_path):
    cfg, fs, _ = tiny
    cfg = cfg.with_(loss={"lam": 0.1})
    r1 = cached_fit(cfg, fs, str(tmp_path / "a"), progress=False)
    r2 = cached_fit(cfg, fs, str(tmp_path / "b"), progress=False)
    assert r1["history"] == r2["history"] and r1["test"]["confusion"] == r2["test"]["confusion"]
    assert {"s_av", "s_ay", "s_vy", "ce", "nonfinite_steps"} <= set(r1["history"][0])
    again = cached_fit(cfg, fs, str(tmp_path / "a"), progress=False)  # read back, not re-trained
    assert again["seconds"] == r1["seconds"]
    assert os.path.exists(os.path.join(r1["run_dir"], "features.npz"))


def test_interrupted_fit_resumes_from_its_checkpoint(tiny, tmp_path, monkeypatch):
    import hgrlib.core.train as train

    cfg, fs, _ = tiny
    cfg = cfg.with_(loss={"lam": 0.1})
    whole = cached_fit(cfg, fs, str(tmp_path / "whole"), progress=False)
    real, calls = train.evaluate, []

    def interrupt_in_epoch_two(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(train, "evaluate", interrupt_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        cached_fit(cfg, fs, str(tmp_path / "cut"), progress=False)
    monkeypatch.setattr(train, "evaluate", real)
    resumed = cached_fit(cfg, fs, str(tmp_path / "cut"), progress=False)
    assert resumed["history"] == whole["history"]
    assert resumed["test"]["confusion"] == whole["test"]["confusion"]


def test_semi_supervised_and_unimodal_runs(tiny, tmp_path):
    cfg, fs, _ = tiny
    runs = seeded_runs(cfg.with_(loss={"lam": 0.1}, train={"labeled_frac": 0.34}), [0], fs)
    runs += seeded_runs(cfg.with_(model={"modalities": "a"}), [0], fs)
    runs += seeded_runs(cfg.with_(model={"modalities": "v"}, train={"protocol": "segment"}), [0], fs)
    results = [cached_fit(c, fs, str(tmp_path), progress=False) for c in runs]
    assert results[0]["n_labeled_segments"] < results[0]["n_train_segments"]
    df = results_frame(results, condition=["semi", "audio", "visual"])
    table = mean_std(df, ["condition"])
    assert list(table["runs"]) == [1, 1, 1] and list(table["acc_mean"]) == list(df["acc"])
    for r, acc in zip(results, df["acc"]):  # the table's accuracy is the run's clip-level (subject) or segment-level score
        head = "clip_acc" if r["config"]["train"]["protocol"] == "subject" else "seg_acc"
        cm = np.array(r["test"]["confusion"])
        assert acc == r["test"][head] == pytest.approx(np.trace(cm) / cm.sum())


def test_nonfinite_loss_skips_the_update_and_is_counted(tiny, tmp_path, monkeypatch):
    import hgrlib.core.train as train

    cfg, fs, _ = tiny
    real, calls = train.joint_loss, []

    def every_other_nan(*a, **k):
        loss, parts = real(*a, **k)
        calls.append(1)
        return (loss * float("nan"), parts) if len(calls) % 2 else (loss, parts)

    monkeypatch.setattr(train, "joint_loss", every_other_nan)
    r = cached_fit(cfg.with_(train={"epochs": 1, "batch_size": 8}), fs, str(tmp_path), progress=False)
    assert r["history"][0]["nonfinite_steps"] == (len(calls) + 1) // 2 > 0
    assert np.isfinite(r["history"][0]["loss"])
    assert results_frame([r])["nonfinite_steps"].iloc[0] == (len(calls) + 1) // 2  # reaches the run tables


def test_real_layout_end_to_end_prep_with_faceless_clips(tmp_path):
    """A RAVDESS-layout fixture (noise video, no face) goes through the real loader, decoders, detector and cache."""
    from fixtures import make_ravdess_fixture

    from hgrlib.config import DataConfig
    from hgrlib.experiment.prepare import load_featureset, prepare_data

    root = make_ravdess_fixture(tmp_path / "RAVDESS", actors=(1, 2, 3), strays=True)
    data = DataConfig(dataset="ravdess", root=str(root), classes=8)
    feats = FeatureConfig(n_segments=2, face_size=16, frames_per_segment=1)
    index_report, prep = prepare_data(data, feats, str(tmp_path / "cache"), workers=1, progress=False)
    assert index_report.accepted == 24 and len(index_report.skipped) >= 6
    assert prep.extracted == 24 and not prep.skipped
    assert prep.frames_fallback == 48 and len(prep.clips_without_face) == 24  # counted, not hidden
    fs = load_featureset(data, feats, str(tmp_path / "cache"))
    assert fs.classes[0] == "neutral" and fs.audio.shape == (24, 2, 1, 94, 64)
    assert sorted(set(fs.subjects)) == ["01", "02", "03"]


@pytest.mark.slow
def test_parallel_grid_gives_the_runs_of_a_sequential_one(tiny, tmp_path):
    from hgrlib.experiment.launch import train_all

    cfg, fs, _ = tiny
    cfgs = seeded_runs(cfg.with_(loss={"lam": 0.1}, train={"threads": 1}), [0, 1], fs)
    par = train_all(cfgs, fs, str(tmp_path / "par"), progress=False, jobs=2)
    seq = train_all(cfgs, fs, str(tmp_path / "seq"), progress=False, jobs=1)
    assert [r["config"] for r in par] == [r["config"] for r in seq]
    for p, s in zip(par, seq):  # one pinned thread per run: the same numbers whatever -j
        assert p["history"] == s["history"] and p["test"]["confusion"] == s["test"]["confusion"]
        assert p["threads"] == s["threads"] == 1


def test_thread_count_is_part_of_a_runs_identity(tiny, tmp_path):
    import torch

    from hgrlib.base.provenance import machine_identity, machine_tag
    from hgrlib.experiment.runs import execution_key

    cfg, fs, _ = tiny
    cfg = cfg.with_(train={"epochs": 1})
    here = machine_tag(machine_identity())
    assert execution_key(cfg.with_(train={"threads": 1})) == f"cpu-1threads-{here}"
    assert execution_key(cfg.with_(train={"threads": 0})) == f"cpu-{torch.get_num_threads()}threads-{here}"
    before = torch.get_num_threads()
    one = cached_fit(cfg.with_(train={"threads": 1}), fs, str(tmp_path), progress=False)
    two = cached_fit(cfg.with_(train={"threads": 2}), fs, str(tmp_path), progress=False)
    assert one["run_dir"] != two["run_dir"] and (one["threads"], two["threads"]) == (1, 2)
    assert torch.get_num_threads() == before  # the caller's thread count is restored


INTEL = {
    "vendor_id": "GenuineIntel",
    "cpu family": "6",
    "model": "207",
    "model name": "Intel(R) Xeon(R) Platinum 8581C",
    "flags": "fpu avx2 fma avx512f avx512bw avx512vl avx512dq avx512_vnni avx512_bf16 avx512_fp16",
}


def test_the_cpu_is_part_of_a_runs_identity(tiny, monkeypatch, request):
    """Another CPU model, instruction set or pinned dispatch gives another run key (simulated CPUs)."""
    from hgrlib.base import provenance
    from hgrlib.experiment.runs import run_key

    cfg, fs, _ = tiny
    request.addfinalizer(provenance._machine_identity.cache_clear)  # later tests see this machine again
    for var in provenance.DISPATCH_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(provenance, "_cpuinfo", lambda: dict(INTEL))
    provenance._machine_identity.cache_clear()
    intel = run_key(cfg, fs)
    assert "GenuineIntel-6-207-avx512_fp16" in intel["exec"] and provenance.machine_identity()["cpu"].startswith("Intel")
    assert run_key(cfg, fs) == intel
    monkeypatch.setattr(provenance, "_cpuinfo", lambda: INTEL | {"model": "143"})  # the same vendor, another model
    provenance._machine_identity.cache_clear()
    assert run_key(cfg, fs)["exec"] != intel["exec"]
    monkeypatch.setattr(provenance, "_cpuinfo", lambda: INTEL | {"flags": "fpu avx2 fma"})  # a hypervisor hiding AVX-512
    provenance._machine_identity.cache_clear()
    assert "-avx2-" in run_key(cfg, fs)["exec"]
    monkeypatch.setattr(provenance, "_cpuinfo", lambda: dict(INTEL))
    provenance._machine_identity.cache_clear()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")  # a pinned dispatch is another identity
    assert run_key(cfg, fs)["exec"] == intel["exec"] + "-ONEDNN_MAX_CPU_ISA=AVX2"


def test_resolve_jobs_auto_and_memory_cap(tiny, monkeypatch):
    from hgrlib.experiment.launch import resolve_jobs

    _, fs, _ = tiny
    assert resolve_jobs(3) == 3 and resolve_jobs(1, fs) == 1
    monkeypatch.setattr(os, "cpu_count", lambda: 5)
    assert resolve_jobs(0) == 5
    page = os.sysconf("SC_PAGE_SIZE")
    monkeypatch.setattr(os, "sysconf", lambda k: page if k == "SC_PAGE_SIZE" else 3 * (fs.audio.nbytes + fs.faces.nbytes) // page)
    assert resolve_jobs(8, fs) == 1  # three copies' worth of free memory: half of it holds one copy


def test_bf16_autocast_and_compile_train_to_finite_losses(tiny, tmp_path):
    cfg, fs, _ = tiny
    cfg = cfg.with_(loss={"lam": 0.1}, train={"epochs": 1})
    with pytest.raises(ValueError, match="amp"):
        cached_fit(cfg.with_(train={"amp": "fp8"}), fs, str(tmp_path), progress=False)
    for change in ({"amp": "bf16"}, {"compile": True}):
        r = cached_fit(cfg.with_(train=change), fs, str(tmp_path), progress=False)
        h = r["history"][0]
        assert h["nonfinite_steps"] == 0 and np.isfinite(h["loss"]) and np.isfinite(h["s_av"]) and 0 <= r["test"]["acc"] <= 1


def test_conv_weights_are_channels_last_and_the_model_computes_what_the_default_layout_does():
    """models.conv_block stores its weights channels-last (faster on the CPU); the layout must survive moving,
    loading a state_dict and an optimiser step, and change nothing but float rounding."""
    import copy

    from hgrlib.config import LossConfig, ModelConfig
    from hgrlib.core.losses import joint_loss
    from hgrlib.core.models import EmotionModel

    torch.manual_seed(0)
    model = EmotionModel(6, 1, 3, ModelConfig(width=8, dim=16)).to("cpu")
    model.load_state_dict({k: v.clone(memory_format=torch.contiguous_format) for k, v in model.state_dict().items()})
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 7 and all(c.weight.stride()[1] == 1 for c in convs)  # channels innermost
    nchw = copy.deepcopy(model)
    for m in nchw.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.weight.data = m.weight.data.clone(memory_format=torch.contiguous_format)
            assert m.weight.stride() == torch.empty(m.weight.shape).stride()
    a, v, y = torch.randn(16, 1, 94, 64), torch.randn(16, 3, 3, 48, 48), torch.randint(0, 6, (16,))
    grads = []
    for m in (model, nchw):
        torch.manual_seed(1)  # the same dropout masks
        out = m(a, v, y)
        joint_loss(out, y, torch.ones(16, dtype=torch.bool), LossConfig(lam=0.1, w_ce_uni=1.0))[0].backward()
        grads.append({k: p.grad.clone() for k, p in m.named_parameters()})
    for k in grads[0]:
        torch.testing.assert_close(grads[0][k], grads[1][k], rtol=1e-4, atol=1e-5, msg=k)
    torch.optim.AdamW(model.parameters()).step()
    assert all(c.weight.stride()[1] == 1 for c in convs)
