"""Feature-extraction benchmark on a synthetic corpus at RAVDESS resolution (1280×720, 30 fps, ~4 s clips).

    .venv/bin/python benchmarks/bench_data.py [--clips 24] [--root /tmp/hgr_bench_data] [--workers 2]
    .venv/bin/python benchmarks/bench_data.py --clips 1440      # the full RAVDESS-sized run (long)

Per clip, in one process, the steps of hgrlib.data.features.extract_clip are timed separately:
audio read (.wav, soundfile), log-mel + segmenting (torch), video decode to the key frames (PyAV),
face detection + cropping (Haar). Then a log-mel baseline: librosa per clip (same parameters:
640-sample Hann window, hop 160, 94 HTK mel bands without norm, reflect padding, power 2, dB with
top_db 80) vs one batched torch `log_mel` call over all clips, as a ratio, with their max difference.
The corpus is generated once into --root (outside the repository) and reused. Timings are medians
where repeated; the CPU may be shared (see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hgrlib.config import FeatureConfig  # noqa: E402
from hgrlib.data.datasets import index_dataset  # noqa: E402
from hgrlib.data.faces import FaceDetector, crop_faces  # noqa: E402
from hgrlib.data.features import audio_segments, key_frame_times, log_mel  # noqa: E402
from hgrlib.data.media import read_audio, read_frames  # noqa: E402
from hgrlib.data.synthetic import SyntheticConfig, generate_corpus  # noqa: E402


def corpus(root: Path, n_clips: int, workers: int) -> tuple[list, SyntheticConfig, float]:
    cpe = 4 if n_clips <= 24 else 8
    cfg = SyntheticConfig(n_subjects=max(1, math.ceil(n_clips / (6 * cpe))), clips_per_emotion=cpe,
                          height=720, width=1280, fps=30, duration=4.0)
    folder = root / f"s{cfg.n_subjects}-c{cpe}"
    t0 = time.perf_counter()
    generate_corpus(folder, cfg, workers=workers, progress=False)
    gen_s = time.perf_counter() - t0
    records, _ = index_dataset("synthetic", str(folder))
    return records[:n_clips], cfg, gen_s


def librosa_log_mel(wave: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    import librosa

    win, hop = round(cfg.sr * cfg.win_ms / 1000), round(cfg.sr * cfg.hop_ms / 1000)
    m = librosa.feature.melspectrogram(y=wave, sr=cfg.sr, n_fft=win, hop_length=hop, win_length=win, window="hann",
                                       center=True, pad_mode="reflect", power=2.0, n_mels=cfg.n_mels, htk=True, norm=None)
    return librosa.power_to_db(m, ref=1.0, amin=1e-10, top_db=80.0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=24)
    ap.add_argument("--root", default="/tmp/hgr_bench_data")
    ap.add_argument("--workers", type=int, default=2, help="processes for corpus generation only")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prep-workers", type=int, default=2, help="processes for the prepare() run")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default=str(Path(__file__).with_name("results_data.json")))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    fcfg = FeatureConfig()
    records, scfg, gen_s = corpus(Path(args.root), args.clips, args.workers)
    print(f"{len(records)} clips at {scfg.width}x{scfg.height}, {scfg.fps} fps, {scfg.duration} s "
          f"(generated/checked in {gen_s:.1f} s); torch {torch.get_num_threads()} threads")

    det = FaceDetector(max_side=fcfg.detect_max_side)
    parts = {"audio_read": [], "log_mel": [], "video_decode": [], "faces": []}
    waves, detected = [], 0
    t_all = time.perf_counter()
    for rec in records:
        t0 = time.perf_counter()
        wave = read_audio(rec.audio_path or rec.path, sr=fcfg.sr)
        t1 = time.perf_counter()
        spec = log_mel(torch.from_numpy(wave)[None], fcfg)[0]
        _, starts = audio_segments(spec, fcfg)
        t2 = time.perf_counter()
        frames, _, _ = read_frames(rec.path, key_frame_times(starts, fcfg))
        t3 = time.perf_counter()
        _, stats = crop_faces(frames, list(range(len(frames))), fcfg.face_size, fcfg.face_margin, det)
        t4 = time.perf_counter()
        for k, dt in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            parts[k].append(dt)
        detected += stats.detected if hasattr(stats, "detected") else 0
        waves.append(wave)
    total = time.perf_counter() - t_all
    n = len(records)
    sums = {k: sum(v) for k, v in parts.items()}
    print(f"\nextraction, one process: {n / total:.2f} clips/s ({1e3 * total / n:.0f} ms/clip)")
    print(f"{'step':<14}{'ms/clip (mean)':>15}{'median':>9}{'share':>8}")
    for k, v in parts.items():
        print(f"{k:<14}{1e3 * sums[k] / n:>15.1f}{1e3 * statistics.median(v):>9.1f}{100 * sums[k] / total:>7.1f}%")
    est_1440 = 1440 * total / n

    # log-mel baseline: librosa per clip vs batched torch
    length = min(len(w) for w in waves)
    batch = np.stack([w[:length] for w in waves])
    t_lib = [0.0] * args.rounds
    t_torch = [0.0] * args.rounds
    t_torch_loop = [0.0] * args.rounds
    xb = torch.from_numpy(batch)
    log_mel(xb[:2], fcfg)  # warm-up
    for r in range(args.rounds):  # interleaved rounds
        t0 = time.perf_counter()
        lib = [librosa_log_mel(w, fcfg) for w in batch]
        t_lib[r] = time.perf_counter() - t0
        t0 = time.perf_counter()
        tb = log_mel(xb, fcfg)
        t_torch[r] = time.perf_counter() - t0
        t0 = time.perf_counter()
        for i in range(len(batch)):
            log_mel(xb[i:i + 1], fcfg)
        t_torch_loop[r] = time.perf_counter() - t0
    diff = float(np.abs(np.stack(lib) - tb.numpy()).max())
    ml, mt, mtl = (statistics.median(x) for x in (t_lib, t_torch, t_torch_loop))
    print(f"\nlog-mel of {len(batch)} clips x {length / fcfg.sr:.2f} s (median of {args.rounds} interleaved rounds):")
    print(f"  librosa per clip   {1e3 * ml:8.1f} ms ({len(batch) / ml:7.1f} clips/s)")
    print(f"  torch per clip     {1e3 * mtl:8.1f} ms ({len(batch) / mtl:7.1f} clips/s)")
    print(f"  torch batched      {1e3 * mt:8.1f} ms ({len(batch) / mt:7.1f} clips/s)  librosa/batched = {ml / mt:.1f}x; "
          f"max |diff| {diff:.3g} dB")
    # the real pipeline: hgrlib.data.cache.prepare into a fresh cache, `--prep-workers` processes
    import tempfile

    from hgrlib.data.cache import FeatureCache, prepare

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        rep = prepare(records, FeatureCache(tmp, "synthetic", fcfg), workers=args.prep_workers, progress=False)
        t_prep = time.perf_counter() - t0
    print(f"\nprepare() into a fresh cache, {args.prep_workers} workers: {n / t_prep:.2f} clips/s ({t_prep:.1f} s for {n} clips, "
          f"{rep.extracted} extracted, {len(rep.skipped)} skipped); 1440 clips ~{1440 * t_prep / n / 60:.1f} min")
    res = {
        "machine": {"platform": platform.platform(), "torch": torch.__version__, "threads": torch.get_num_threads(),
                    "load_average_at_end": list(os.getloadavg()), "note": "one process unless stated"},
        "prepare": {"workers": args.prep_workers, "seconds": t_prep, "clips_per_s": n / t_prep,
                    "estimated_1440_clips_s": 1440 * t_prep / n},
        "corpus": {"clips": n, "width": scfg.width, "height": scfg.height, "fps": scfg.fps, "duration_s": scfg.duration,
                   "generate_or_check_s": gen_s},
        "extraction": {"clips_per_s": n / total, "ms_per_clip": 1e3 * total / n,
                       "ms_per_clip_by_step": {k: 1e3 * sums[k] / n for k in parts},
                       "share_by_step": {k: sums[k] / total for k in parts},
                       "estimated_1440_clips_s_one_process": est_1440},
        "log_mel": {"clips": len(batch), "seconds_each": length / fcfg.sr, "librosa_per_clip_ms": 1e3 * ml,
                    "torch_per_clip_ms": 1e3 * mtl, "torch_batched_ms": 1e3 * mt, "librosa_over_batched": ml / mt,
                    "max_abs_diff_db": diff, "rounds": args.rounds},
    }
    Path(args.out).write_text(json.dumps(res, indent=2))
    print(f"\n1440 clips in one process: ~{est_1440 / 60:.1f} min (estimated from this sample); wrote {args.out}")


if __name__ == "__main__":
    main()
