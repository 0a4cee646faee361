"""Feature cache on disk, keyed by dataset, preprocessing config, feature code and libraries; resumable.

Layout: <cache_dir>/<dataset>-<key hash>/clips/<subject>__<stem>.npz, one file per clip, written
atomically and checked when read (each with how its face crops were found), plus key.json (what the
hash stands for) and prep_report.json (the last preparation's report).
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from hgrlib.base.io import CorruptFile, atomic, write_json
from hgrlib.base.progress import bar
from hgrlib.base.provenance import (
    FEATURE_LIBS,
    arrays_sha256,
    files_digest,
    library_versions,
    machine_identity,
    machine_tag,
    module_closure,
)
from hgrlib.config import FeatureConfig, config_hash
from hgrlib.data.records import ClipRecord, DataError


@functools.cache
def feature_code() -> str:
    """Digest of the code that computes features: hgrlib.data.features and the hgrlib modules it imports
    (decoding, faces, log-mel, FeatureConfig); not the fold code nor the shipped fold files."""
    return files_digest(module_closure("hgrlib.data.features"))


class FeatureCache:
    """Where the features of one dataset under one preprocessing config, feature code and libraries live.

    Each clip's file records the identity (path, size, mtime) of the media it was extracted from and
    a sha256 of its arrays: a clip that was edited or moved, or a damaged file, reads as stale
    (`problem`) and is extracted again instead of being used.
    """

    def __init__(self, cache_dir: str | Path, dataset: str, cfg: FeatureConfig, source: str | Path = "") -> None:
        self.cfg = cfg
        self.key = {
            "dataset": dataset,
            "features": asdict(cfg),
            "code": feature_code(),
            "libs": library_versions(FEATURE_LIBS),
            # MKL's FFT path differs by CPU (measured: another path, other log-mel bytes): features of another CPU
            # model or dispatch are kept apart, like its runs
            "machine": machine_tag(machine_identity()),
        }
        if cfg.detector == "mtcnn":  # its networks make the face crops: a new facenet-pytorch is a new key
            self.key["libs"] = self.key["libs"] | library_versions(("facenet-pytorch",))
        if source:  # the data folder as given: two corpora of one kind (e.g. two synthetic draws) keep apart
            self.key["source"] = os.path.normpath(str(source))
        self.root = Path(cache_dir) / f"{dataset}-{config_hash(self.key)}"
        (self.root / "clips").mkdir(parents=True, exist_ok=True)
        key_file = self.root / "key.json"
        if not key_file.exists():
            write_json(key_file, self.key)

    def path(self, rec: ClipRecord) -> Path:
        return self.root / "clips" / f"{rec.subject}__{Path(rec.path).stem}.npz"

    def save(self, rec: ClipRecord, audio: np.ndarray, faces: np.ndarray, face_stats: dict | None = None) -> None:
        meta = {"source": source_identity(rec), "sha256": arrays_sha256(audio, faces)}
        if face_stats is not None:  # so a report of clips read from the cache can say how their faces were found
            meta["faces"] = face_stats
        with atomic(self.path(rec)) as tmp:
            np.savez(tmp, audio=audio, faces=faces, meta=np.array(json.dumps(meta)))

    def load(self, rec: ClipRecord) -> tuple[np.ndarray, np.ndarray]:
        """(audio, faces) of a clip; CorruptFile if the file is damaged or the clip changed since extraction."""
        audio, faces, _ = self._read(rec)
        return audio, faces

    def _read(self, rec: ClipRecord) -> tuple[np.ndarray, np.ndarray, dict]:
        """(audio, faces, meta) of a clip, checked as `load` checks them."""
        p = self.path(rec)
        try:
            with np.load(p, allow_pickle=False) as z:
                audio, faces, meta = z["audio"], z["faces"], json.loads(str(z["meta"]))
        except Exception as e:  # truncated zip, missing member, bad JSON: all mean "do not use"
            raise CorruptFile(f"{p}: unreadable ({type(e).__name__}: {e})") from e
        if meta.get("sha256") != arrays_sha256(audio, faces):
            raise CorruptFile(f"{p}: checksum mismatch (the file was altered or damaged)")
        try:
            same_source = meta.get("source") == source_identity(rec)
        except OSError as e:
            raise CorruptFile(f"{p}: its clip cannot be read any more ({e})") from e
        if not same_source:
            raise CorruptFile(f"{p}: stale, {rec.path} (or its audio) changed or moved since its features were extracted")
        return audio, faces, meta

    def problem(self, rec: ClipRecord) -> str | None:
        """Why a clip's cached features cannot be used ('missing', corrupt, stale), or None if they can."""
        return self.status(rec)[0]

    def status(self, rec: ClipRecord) -> tuple[str | None, dict | None]:
        """(`problem`, how its key-frame crops were found (FaceStats as a dict; None if not recorded)) of a clip,
        from one read of its file; the stats only when it can be used."""
        if not self.path(rec).exists():
            return "missing", None
        try:
            _, _, meta = self._read(rec)
        except CorruptFile as e:
            return str(e), None
        return None, meta.get("faces")


def source_identity(rec: ClipRecord) -> list:
    """[path, size, mtime_ns] of each file a clip's features are read from."""
    out = []
    for f in (rec.path, rec.audio_path):
        if f is not None:
            st = os.stat(f)
            out.append([str(f), st.st_size, st.st_mtime_ns])
    return out


@dataclass
class PrepReport:
    """What preparation did (clips extracted, found in the cache, skipped with why) and how the faces of
    every usable clip were found, whether extracted now or read from the cache."""

    clips: int = 0
    extracted: int = 0
    cached: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    recomputed: list[tuple[str, str]] = field(default_factory=list)  # cached but stale or damaged: extracted again
    frames_detected: int = 0  # key frames of all usable clips, from here on
    frames_borrowed: int = 0
    frames_fallback: int = 0
    clips_without_face: list[str] = field(default_factory=list)
    clips_mostly_borrowed: list[tuple[str, int, int]] = field(default_factory=list)  # (path, borrowed or centre crops, key frames)
    faces_unknown: int = 0  # cached clips extracted by a version that did not record face counts
    seconds: float = 0.0

    def add_faces(self, path: str, stats: dict | None) -> None:
        if stats is None:
            self.faces_unknown += 1
            return
        self.frames_detected += stats["detected"]
        self.frames_borrowed += stats["borrowed"]
        self.frames_fallback += stats["fallback"]
        frames = stats["detected"] + stats["borrowed"] + stats["fallback"]
        if not stats["clip_has_face"]:
            self.clips_without_face.append(path)
        elif frames and stats["detected"] < frames / 2:
            self.clips_mostly_borrowed.append((path, frames - stats["detected"], frames))

    def face_problems(self, limit: int | None = 10) -> list[tuple[str, str]]:
        """(path, what) of the clips to look at: without any face first, then those with most key frames
        not detected (most first); at most `limit` (None: all)."""
        rows = [(p, "no face in any key frame: centre crops") for p in sorted(self.clips_without_face)]
        rows += [
            (p, f"{n} of {k} key frames borrowed (not detected)")
            for p, n, k in sorted(self.clips_mostly_borrowed, key=lambda t: (-t[1] / max(t[2], 1), t[0]))
        ]
        return rows if limit is None else rows[:limit]

    def summary(self, limit: int = 10) -> str:
        frames = self.frames_detected + self.frames_borrowed + self.frames_fallback
        lines = [
            f"{self.clips} clips: {self.extracted} extracted, {self.cached} already cached, "
            f"{len(self.skipped)} skipped, in {self.seconds:.1f} s",
        ]
        if frames:
            lines.append(
                f"key frames of the {self.extracted + self.cached - self.faces_unknown} usable clips: {self.frames_detected} "
                f"face detected ({100 * self.frames_detected / frames:.1f}%), {self.frames_borrowed} borrowed from the "
                f"clip's other key frames, {self.frames_fallback} centre crops; {len(self.clips_without_face)} clips "
                f"without any face, {len(self.clips_mostly_borrowed)} with most key frames not detected"
            )
        problems = len(self.clips_without_face) + len(self.clips_mostly_borrowed)
        if problems:
            lines.append("  clips whose face crops are mostly not detected faces (look at them: notebook 01):")
            lines += [f"    {p}: {what}" for p, what in self.face_problems(limit)]
            if problems > limit:
                lines.append(f"    and {problems - limit} more (prep_report.json in the cache folder lists them all)")
        if self.faces_unknown:
            lines.append(f"  {self.faces_unknown} cached clips carry no face counts (extracted by an older hgrlib)")
        lines += [f"  skipped {p}: {r}" for p, r in self.skipped]
        lines += [f"  extracted again {p}: {r}" for p, r in self.recomputed]
        return "\n".join(lines)


_worker: dict = {}


def _init_worker(cfg: FeatureConfig, detect_device: str = "cpu") -> None:
    import cv2
    import torch

    torch.set_num_threads(1)  # one thread per worker process: the workers are the parallelism
    cv2.setNumThreads(1)
    _worker["cfg"] = cfg
    _detector(cfg, detect_device)


def _detector(cfg: FeatureConfig, device: str):
    """This process's face detector for `cfg` on `device`: made once (MTCNN's networks load slowly), then reused."""
    from hgrlib.data.faces import make_detector

    key = (cfg.detector, cfg.min_face, device)
    if _worker.get("detector_key") != key:
        _worker["detector"], _worker["detector_key"] = make_detector(cfg, device), key
    return _worker["detector"]


def _extract(rec: ClipRecord):
    from hgrlib.data.features import extract_clip

    try:
        return rec, extract_clip(rec, _worker["cfg"], _worker["detector"]), None
    except DataError as e:
        return rec, None, str(e)
    except Exception as e:  # a broken clip must never stop the run
        return rec, None, f"{rec.path}: {type(e).__name__}: {e}"


def prepare(
    records: list[ClipRecord], cache: FeatureCache, workers: int = 2, progress: bool = True, detect_device: str = "cpu"
) -> PrepReport:
    """Fill the cache for `records` in parallel; valid cached clips are not redone, stale or damaged ones are
    (and reported), broken clips are skipped. `detect_device` (cpu | cuda | auto): where MTCNN runs
    (hgrlib.data.faces.make_detector; Haar is CPU only); on cuda, one worker process is used."""
    t0 = time.perf_counter()
    rep = PrepReport(clips=len(records))
    status = [cache.status(r) for r in records]  # one read of each cached clip
    todo = [r for r, (why, _) in zip(records, status) if why is not None]
    rep.recomputed = [(r.path, why) for r, (why, _) in zip(records, status) if why not in (None, "missing")]
    rep.cached = len(records) - len(todo)
    for r, (why, stats) in zip(records, status):
        if why is None:
            rep.add_faces(str(r.path), stats)
    if todo:
        _detector(cache.cfg, detect_device)  # a missing detector fails here, not in every worker
        if detect_device != "cpu" and cache.cfg.detector == "mtcnn":
            workers = 1  # one process batches the key frames on the GPU

    def consume(results) -> None:
        for rec, feats, err in bar(results, total=len(todo), desc="features", unit="clip", disable=not progress):
            if err is not None:
                rep.skipped.append((rec.path, err))
                cache.path(rec).unlink(missing_ok=True)  # a stale entry of a clip that is now broken
                continue
            stats = asdict(feats.faces_stats)
            cache.save(rec, feats.audio, feats.faces, stats)
            rep.extracted += 1
            rep.add_faces(str(rec.path), stats)

    if workers <= 1 or len(todo) <= 1:
        _init_worker(cache.cfg, detect_device)
        consume(map(_extract, todo))
    else:
        with ProcessPoolExecutor(
            workers, mp_context=get_context("spawn"), initializer=_init_worker, initargs=(cache.cfg, detect_device)
        ) as ex:
            consume(ex.map(_extract, todo, chunksize=4))
    rep.seconds = time.perf_counter() - t0
    write_json(cache.root / "prep_report.json", asdict(rep))
    return rep


def load_features(records: list[ClipRecord], cache: FeatureCache) -> tuple[list[ClipRecord], np.ndarray, np.ndarray]:
    """(records present in the cache, audio (N, S, C, M, L) float16, faces (N, S, K, H, W, 3) uint8).

    Clips never extracted (or skipped as broken by `prepare`) are left out. A damaged or stale cache
    file is reported by path and extracted again before use, never used as it is.
    """

    def load_all() -> tuple[list, list]:
        got, bad = [], []
        for r in bar(records, desc="load cache", unit="clip", leave=False, disable=len(records) < 200):
            if cache.path(r).exists():
                try:
                    got.append((r, *cache.load(r)))
                except CorruptFile as e:
                    bad.append((r, str(e)))
        return got, bad

    got, bad = load_all()
    if bad:
        print(f"feature cache: {len(bad)} clip(s) cannot be used as cached and are extracted again:", file=sys.stderr)
        for _, why in bad:
            print(f"  {why}", file=sys.stderr)
        prepare([r for r, _ in bad], cache, workers=1, progress=False)
        got, _ = load_all()  # a clip that now fails to extract was dropped from the cache by prepare
    if not got:
        raise DataError(f"{cache.root}: no cached features for these clips; run `hgrlib prep` first")
    return [r for r, _, _ in got], np.stack([a for _, a, _ in got]), np.stack([f for _, _, f in got])
