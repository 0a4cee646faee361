"""Feature-extraction benchmark on a synthetic corpus at RAVDESS resolution (1280×720, 30 fps, ~4 s clips).

    .venv/bin/python benchmarks/bench_data.py [--clips 24] [--root /tmp/hgr_bench_data] [--workers 2]
    .venv/bin/python benchmarks/bench_data.py --clips 1440      # the full RAVDESS-sized run (long)

Per clip, in one process, the steps of hgrlib.data.features.extract_clip are timed separately:
audio read (.wav, soundfile), log-mel + segmenting (torch), video decode to the key frames (PyAV),
face detection + cropping (Haar). Then rates in clips/s, measured in interleaved rounds on the same
clips (one after the other in each round; median over rounds): the decoder's limit
`ffmpeg -threads 2 -i clip.mp4 -f null -` (ffmpeg from the system, benchmark only; skipped with a note
when absent), PyAV decoding every frame, `read_frames` (the key frames), `extract_clip` and
`prepare()` into a fresh cache with --prep-workers processes; with the CPU seconds each used (this
process and its children) and prep's rate as a fraction of ffmpeg's, per round and of the medians.
Then a log-mel baseline: librosa per clip (same parameters: 640-sample Hann window, hop 160, 94 HTK
mel bands without norm, reflect padding, power 2, dB with top_db 80) vs one batched torch `log_mel`
call over all clips, as a ratio, with their max difference. The corpus is generated once into --root
(outside the repository) and reused. The CPU may be shared (see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hgrlib.config import FeatureConfig  # noqa: E402
from hgrlib.data.cache import FeatureCache, prepare  # noqa: E402
from hgrlib.data.datasets import index_dataset  # noqa: E402
from hgrlib.data.faces import Detector, crop_faces, make_detector  # noqa: E402
from hgrlib.data.features import audio_segments, extract_clip, key_frame_times, log_mel  # noqa: E402
from hgrlib.data.media import read_audio, read_frames  # noqa: E402
from hgrlib.data.synthetic import SyntheticConfig, generate_corpus  # noqa: E402


def corpus(root: Path, n_clips: int, workers: int) -> tuple[list, SyntheticConfig, float]:
    cpe = 4 if n_clips <= 24 else 8
    cfg = SyntheticConfig(
        n_subjects=max(1, math.ceil(n_clips / (6 * cpe))), clips_per_emotion=cpe, height=720, width=1280, fps=30, duration=4.0
    )
    folder = root / f"s{cfg.n_subjects}-c{cpe}"
    t0 = time.perf_counter()
    generate_corpus(folder, cfg, workers=workers, progress=False)
    gen_s = time.perf_counter() - t0
    records, _ = index_dataset("synthetic", str(folder))
    return records[:n_clips], cfg, gen_s


def ffmpeg_decode(path: str) -> None:
    """The decoder's limit: ffmpeg decodes every frame (and the audio) to nothing, on 2 threads."""
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-threads", "2", "-i", path, "-f", "null", "-"], check=True)


def pyav_decode(path: str) -> None:
    """PyAV decoding every video frame, with the threading read_frames uses."""
    with av.open(path) as box:
        stream = box.streams.video[0]
        stream.thread_type = "AUTO"
        for _ in box.decode(stream):
            pass


def cpu_seconds() -> float:
    """CPU time of this process (all threads) and of its finished children (ffmpeg, prepare's workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def rates(records: list, fcfg: FeatureConfig, det: Detector, times: dict, rounds: int, prep_workers: int) -> dict:
    """Seconds and CPU seconds per round of each way of going through all `records`, in interleaved rounds."""

    def prep() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            prepare(records, FeatureCache(tmp, "synthetic", fcfg), workers=prep_workers, progress=False)

    ways = {
        "ffmpeg_threads2": lambda: [ffmpeg_decode(r.path) for r in records],
        "pyav_full_decode": lambda: [pyav_decode(r.path) for r in records],
        "read_frames": lambda: [read_frames(r.path, times[r.path]) for r in records],
        "extract_clip": lambda: [extract_clip(r, fcfg, det) for r in records],
        "prepare": prep,
    }
    if shutil.which("ffmpeg") is None:
        print("ffmpeg not found: its rate is skipped (apt-get install ffmpeg; benchmark only)")
        del ways["ffmpeg_threads2"]
    out = {k: {"seconds": [], "cpu_seconds": []} for k in ways}
    for r in range(rounds):
        for k, run in ways.items():
            t0, c0 = time.perf_counter(), cpu_seconds()
            run()
            out[k]["seconds"].append(time.perf_counter() - t0)
            out[k]["cpu_seconds"].append(cpu_seconds() - c0)
        print(
            f"  round {r + 1}/{rounds}: "
            + ", ".join(f"{k} {v['seconds'][-1]:.1f} s" for k, v in out.items())
            + f"; load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    n = len(records)
    for v in out.values():
        v["clips_per_s"] = n / statistics.median(v["seconds"])
        v["cpu_ms_per_clip"] = 1e3 * statistics.median(v["cpu_seconds"]) / n
    if "ffmpeg_threads2" in out:
        ff = out["ffmpeg_threads2"]
        out["prepare"]["fraction_of_ffmpeg"] = out["prepare"]["clips_per_s"] / ff["clips_per_s"]
        out["prepare"]["fraction_of_ffmpeg_by_round"] = [a / b for a, b in zip(ff["seconds"], out["prepare"]["seconds"])]
    return out


def librosa_log_mel(wave: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    import librosa

    win, hop = round(cfg.sr * cfg.win_ms / 1000), round(cfg.sr * cfg.hop_ms / 1000)
    m = librosa.feature.melspectrogram(
        y=wave,
        sr=cfg.sr,
        n_fft=win,
        hop_length=hop,
        win_length=win,
        window="hann",
        center=True,
        pad_mode="reflect",
        power=2.0,
        n_mels=cfg.n_mels,
        htk=True,
        norm=None,
    )
    return librosa.power_to_db(m, ref=1.0, amin=1e-10, top_db=80.0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=24)
    ap.add_argument("--root", default="/tmp/hgr_bench_data")
    ap.add_argument("--workers", type=int, default=2, help="processes for corpus generation only")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prep-workers", type=int, default=2, help="processes for the prepare() run")
    ap.add_argument("--rounds", type=int, default=5, help="log-mel baseline rounds")
    ap.add_argument("--rate-rounds", type=int, default=3, help="interleaved rounds of the clips/s comparison")
    ap.add_argument("--out", default=str(Path(__file__).with_name("results_data.json")))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    fcfg = FeatureConfig()
    records, scfg, gen_s = corpus(Path(args.root), args.clips, args.workers)
    print(
        f"{len(records)} clips at {scfg.width}x{scfg.height}, {scfg.fps} fps, {scfg.duration} s "
        f"(generated/checked in {gen_s:.1f} s); torch {torch.get_num_threads()} threads"
    )

    det = make_detector(fcfg)
    parts = {"audio_read": [], "log_mel": [], "video_decode": [], "faces": []}
    waves, detected, times = [], 0, {}
    t_all = time.perf_counter()
    for rec in records:
        t0 = time.perf_counter()
        wave = read_audio(rec.audio_path or rec.path, sr=fcfg.sr)
        t1 = time.perf_counter()
        spec = log_mel(torch.from_numpy(wave)[None], fcfg)[0]
        _, starts = audio_segments(spec, fcfg)
        t2 = time.perf_counter()
        times[rec.path] = key_frame_times(starts, fcfg)
        frames, _, _ = read_frames(rec.path, times[rec.path])
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
            log_mel(xb[i : i + 1], fcfg)
        t_torch_loop[r] = time.perf_counter() - t0
    diff = float(np.abs(np.stack(lib) - tb.numpy()).max())
    ml, mt, mtl = (statistics.median(x) for x in (t_lib, t_torch, t_torch_loop))
    print(f"\nlog-mel of {len(batch)} clips x {length / fcfg.sr:.2f} s (median of {args.rounds} interleaved rounds):")
    print(f"  librosa per clip   {1e3 * ml:8.1f} ms ({len(batch) / ml:7.1f} clips/s)")
    print(f"  torch per clip     {1e3 * mtl:8.1f} ms ({len(batch) / mtl:7.1f} clips/s)")
    print(
        f"  torch batched      {1e3 * mt:8.1f} ms ({len(batch) / mt:7.1f} clips/s)  librosa/batched = {ml / mt:.1f}x; "
        f"max |diff| {diff:.3g} dB"
    )
    load_before = list(os.getloadavg())
    print(f"\nclips/s, median of {args.rate_rounds} interleaved rounds over the {n} clips (load {load_before[0]:.1f}):")
    rate = rates(records, fcfg, det, times, args.rate_rounds, args.prep_workers)
    print(f"{'':18}{'clips/s':>9}{'CPU ms/clip':>13}")
    for k, v in rate.items():
        print(f"{k:<18}{v['clips_per_s']:>9.2f}{v['cpu_ms_per_clip']:>13.0f}")
    prep = rate["prepare"]
    if "fraction_of_ffmpeg" in prep:
        print(
            f"prepare() ({args.prep_workers} workers) at {100 * prep['fraction_of_ffmpeg']:.0f}% of ffmpeg's rate "
            f"(by round: {', '.join(f'{100 * x:.0f}%' for x in prep['fraction_of_ffmpeg_by_round'])})"
        )
    res = {
        "machine": {
            "platform": platform.platform(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "load_average_at_end": list(os.getloadavg()),
            "note": "one process unless stated",
        },
        "prepare": {
            "workers": args.prep_workers,
            "seconds": statistics.median(prep["seconds"]),
            "clips_per_s": prep["clips_per_s"],
            "estimated_1440_clips_s": 1440 / prep["clips_per_s"],
        },
        "rates": {"rounds": args.rate_rounds, "load_average_before": load_before, **rate},
        "corpus": {
            "clips": n,
            "width": scfg.width,
            "height": scfg.height,
            "fps": scfg.fps,
            "duration_s": scfg.duration,
            "generate_or_check_s": gen_s,
        },
        "extraction": {
            "clips_per_s": n / total,
            "ms_per_clip": 1e3 * total / n,
            "ms_per_clip_by_step": {k: 1e3 * sums[k] / n for k in parts},
            "share_by_step": {k: sums[k] / total for k in parts},
            "estimated_1440_clips_s_one_process": est_1440,
        },
        "log_mel": {
            "clips": len(batch),
            "seconds_each": length / fcfg.sr,
            "librosa_per_clip_ms": 1e3 * ml,
            "torch_per_clip_ms": 1e3 * mtl,
            "torch_batched_ms": 1e3 * mt,
            "librosa_over_batched": ml / mt,
            "max_abs_diff_db": diff,
            "rounds": args.rounds,
        },
    }
    Path(args.out).write_text(json.dumps(res, indent=2))
    print(f"\n1440 clips in one process: ~{est_1440 / 60:.1f} min (estimated from this sample); wrote {args.out}")


if __name__ == "__main__":
    main()
