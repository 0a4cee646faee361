"""Feature cache on disk, keyed by dataset and preprocessing config; filling it is resumable.

Layout: <cache_dir>/<dataset>-<FeatureConfig hash>/clips/<subject>__<stem>.npz, one file per clip,
written atomically, plus config.json (what the hash stands for) and prep_report.json.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from hgrlib.config import FeatureConfig
from hgrlib.data.records import ClipRecord, DataError
from hgrlib.io import write_json


class FeatureCache:
    """Where the features of one dataset under one preprocessing config live."""

    def __init__(self, cache_dir: str | Path, dataset: str, cfg: FeatureConfig) -> None:
        self.cfg = cfg
        self.root = Path(cache_dir) / f"{dataset}-{cfg.key()}"
        (self.root / "clips").mkdir(parents=True, exist_ok=True)
        cfg_file = self.root / "config.json"
        if not cfg_file.exists():
            write_json(cfg_file, asdict(cfg))

    def path(self, rec: ClipRecord) -> Path:
        return self.root / "clips" / f"{rec.subject}__{Path(rec.path).stem}.npz"

    def has(self, rec: ClipRecord) -> bool:
        return self.path(rec).exists()

    def save(self, rec: ClipRecord, audio: np.ndarray, faces: np.ndarray) -> None:
        p = self.path(rec)
        tmp = p.with_name(p.stem + ".part.npz")
        np.savez(tmp, audio=audio, faces=faces)
        os.replace(tmp, p)

    def load(self, rec: ClipRecord) -> tuple[np.ndarray, np.ndarray]:
        with np.load(self.path(rec)) as z:
            return z["audio"], z["faces"]


@dataclass
class PrepReport:
    """What preparation did: clips extracted, found in the cache, skipped (with why), face counts."""

    clips: int = 0
    extracted: int = 0
    cached: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    frames_detected: int = 0
    frames_borrowed: int = 0
    frames_fallback: int = 0
    clips_without_face: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        frames = self.frames_detected + self.frames_borrowed + self.frames_fallback
        lines = [
            f"{self.clips} clips: {self.extracted} extracted, {self.cached} already cached, "
            f"{len(self.skipped)} skipped, in {self.seconds:.1f} s",
        ]
        if frames:
            lines.append(
                f"key frames of extracted clips: {self.frames_detected} face detected ({100 * self.frames_detected / frames:.1f}%), "
                f"{self.frames_borrowed} borrowed from the clip's other frames, {self.frames_fallback} centre crops; "
                f"{len(self.clips_without_face)} clips without any face"
            )
        lines += [f"  skipped {p}: {r}" for p, r in self.skipped]
        return "\n".join(lines)


_worker: dict = {}


def _init_worker(cfg: FeatureConfig) -> None:
    import cv2
    import torch

    from hgrlib.data.faces import FaceDetector

    torch.set_num_threads(1)  # one thread per worker process: the workers are the parallelism
    cv2.setNumThreads(1)
    _worker["cfg"], _worker["detector"] = cfg, FaceDetector(max_side=cfg.detect_max_side)


def _extract(rec: ClipRecord):
    from hgrlib.data.features import extract_clip

    try:
        return rec, extract_clip(rec, _worker["cfg"], _worker["detector"]), None
    except DataError as e:
        return rec, None, str(e)
    except Exception as e:  # a broken clip must never stop the run
        return rec, None, f"{rec.path}: {type(e).__name__}: {e}"


def prepare(records: list[ClipRecord], cache: FeatureCache, workers: int = 2, progress: bool = True) -> PrepReport:
    """Fill the cache for `records` in parallel; clips already cached are not redone, broken ones are skipped."""
    t0 = time.perf_counter()
    rep = PrepReport(clips=len(records))
    todo = [r for r in records if not cache.has(r)]
    rep.cached = len(records) - len(todo)

    def consume(results) -> None:
        for rec, feats, err in tqdm(results, total=len(todo), desc="features", unit="clip", disable=not progress):
            if err is not None:
                rep.skipped.append((rec.path, err))
                continue
            cache.save(rec, feats.audio, feats.faces)
            rep.extracted += 1
            s = feats.faces_stats
            rep.frames_detected += s.detected
            rep.frames_borrowed += s.borrowed
            rep.frames_fallback += s.fallback
            if not s.clip_has_face:
                rep.clips_without_face.append(rec.path)

    if workers <= 1 or len(todo) <= 1:
        _init_worker(cache.cfg)
        consume(map(_extract, todo))
    else:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init_worker, initargs=(cache.cfg,)) as ex:
            consume(ex.map(_extract, todo, chunksize=4))
    rep.seconds = time.perf_counter() - t0
    write_json(cache.root / "prep_report.json", asdict(rep))
    return rep


def load_features(records: list[ClipRecord], cache: FeatureCache) -> tuple[list[ClipRecord], np.ndarray, np.ndarray]:
    """(records present in the cache, audio (N, S, C, M, L) float16, faces (N, S, K, H, W, 3) uint8)."""
    kept = [r for r in records if cache.has(r)]
    if not kept:
        raise DataError(f"{cache.root}: no cached features for these clips; run `hgrlib prep` first")
    pairs = [cache.load(r) for r in tqdm(kept, desc="load cache", unit="clip", leave=False, disable=len(kept) < 200)]
    return kept, np.stack([a for a, _ in pairs]), np.stack([f for _, f in pairs])
