"""Predict the emotion of clips with an exported model (hgrlib.app.export): `hgrlib predict CLIP ... --model FILE`.

Each clip is preprocessed exactly as the training clips were (hgrlib.data.features.extract_clip, with the
model's own FeatureConfig): its audio becomes `n_segments` log-mel segments spread over the clip, its
video the face crops of `frames_per_segment` key frames inside each segment's window (the detector the
model's FeatureConfig names, on the CPU as in `hgrlib prep`; a key frame without a face borrows the median
box of the clip's other detections, a clip without any face gets centre crops, hgrlib.data.faces). The
model gives class probabilities per segment; the clip's are their mean (as in the run's own scores,
hgrlib.core.metrics.clip_probs).

Where a clip's audio comes from, in this order: the RAVDESS audio-only twin in the same folder
(01-01-EE-II-SS-RR-AA.mp4 → 03-01-EE-II-SS-RR-AA.wav, as the RAVDESS and synthetic loaders pair them), a
.wav of the same name beside it (clip.mp4 → clip.wav), else the clip's own audio track.

A clip that cannot be used (missing or unreadable file, no audio or no video stream, silent audio) is a
ClipFailure naming the file and the problem; the other clips are predicted.

Output formats (`format_text`, `to_json`, `to_csv`): text for reading; JSON, a list with one object per
clip (clip, audio, emotion, probs, segments, faces); CSV, one row per clip (level "clip", segment empty)
followed by one row per segment of it (level "segment"), with the probabilities of every class as p_<class>.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from hgrlib.app.export import LoadedModel
from hgrlib.data.faces import Box, Detector, FaceStats, make_detector
from hgrlib.data.features import ClipFeatures, extract_clip
from hgrlib.data.ravdess import parse_name
from hgrlib.data.records import ClipRecord, DataError

# --------------------------------------------------------------------------- results


@dataclass
class ClipView:
    """What the model sees of a clip, for figures: the key frames with the boxes their crops were cut
    around, the crops, and the whole clip's log-mel spectrogram."""

    frames: np.ndarray  # (S*K, H, W, 3) uint8 key frames
    boxes: list[Box]  # the box each key frame's crop was cut around (before the margin)
    how: list[str]  # per key frame: "detected", "borrowed" or "centre"
    crops: np.ndarray  # (S, K, size, size, 3) uint8: the network's visual input
    spec: np.ndarray  # (n_mels, T) float32 dB, the whole clip
    hop_s: float


@dataclass
class ClipPrediction:
    clip: str  # the video file
    audio: str  # where its audio came from (the video itself, or a .wav)
    classes: tuple[str, ...]
    probs: np.ndarray  # (n_classes,) the clip's: mean over its segments
    seg_probs: np.ndarray  # (S, n_classes)
    seg_times: np.ndarray  # (S, 2) start and end of each segment (s)
    key_times: list[float]  # (S*K) times of the key frames (s)
    faces: FaceStats
    seconds: float = 0.0
    view: ClipView | None = None

    @property
    def emotion(self) -> str:
        return self.classes[int(self.probs.argmax())]

    @property
    def seg_emotions(self) -> list[str]:
        return [self.classes[i] for i in self.seg_probs.argmax(1)]

    def face_report(self) -> str:
        f = self.faces
        n = f.detected + f.borrowed + f.fallback
        if not f.clip_has_face:
            return f"no face found in any of the {n} key frames: every key frame is a centre crop"
        return f"{f.detected} of {n} key frames detected, {f.borrowed} borrowed, {f.fallback} centre crops"

    def to_dict(self) -> dict:
        return {
            "clip": self.clip,
            "audio": self.audio,
            "emotion": self.emotion,
            "probs": {c: float(p) for c, p in zip(self.classes, self.probs)},
            "segments": [
                {
                    "segment": i,
                    "start_s": round(float(t0), 3),
                    "end_s": round(float(t1), 3),
                    "emotion": e,
                    "probs": {c: float(p) for c, p in zip(self.classes, ps)},
                }
                for i, ((t0, t1), e, ps) in enumerate(zip(self.seg_times, self.seg_emotions, self.seg_probs))
            ],
            "faces": {"key_frames": self.faces.detected + self.faces.borrowed + self.faces.fallback, **asdict(self.faces)},
        }


@dataclass
class ClipFailure:
    clip: str
    error: str  # "<file>: <problem>"


# --------------------------------------------------------------------------- inputs


def clip_record(path: str | Path) -> ClipRecord:
    """A ClipRecord for a video file given by path, its audio found as the module's docstring says."""
    p = Path(path)
    if p.suffix.lower() == ".wav":
        raise DataError(f"{p}: an audio file; give the video (its audio is taken from a .wav of the same name beside it)")
    audio = None
    f = parse_name(p.name)
    twin = [p.with_name(f"03{p.stem[2:]}.wav")] if f and f["modality"] == "01" and f["ext"] == "mp4" else []  # RAVDESS's audio-only take
    for cand in twin + [p.with_suffix(".wav")]:
        if cand != p and cand.is_file():
            audio = str(cand)
            break
    return ClipRecord(path=str(p), subject="", emotion="", dataset="clip", audio_path=audio)


def extract(rec: ClipRecord, cfg, detector: Detector, keep_view: bool = False) -> tuple[ClipFeatures, dict]:
    """The clip's features, by hgrlib.data.features.extract_clip itself (the bytes of `hgrlib prep`), plus
    segment and key-frame times and, if `keep_view`, what the model sees (ClipView)."""
    view: dict = {}
    feats = extract_clip(rec, cfg, detector, view)
    hop = cfg.hop_ms / 1000
    starts = view["starts"]
    extra = {"seg_times": np.stack([starts * hop, (starts + cfg.segment_frames) * hop], axis=1), "key_times": view["key_times"]}
    if keep_view:
        extra["view"] = ClipView(view["frames"], view["boxes"], view["how"], feats.faces, view["spec"], hop)
    return feats, extra


def _one_line(e: BaseException, rec: ClipRecord) -> str:
    msg = " ".join(str(e).split())
    if isinstance(e, DataError) and msg.endswith("no audio track"):
        msg += f" (and no {Path(rec.path).with_suffix('.wav').name} beside it to take the audio from)"
    if not isinstance(e, DataError):
        msg = f"{rec.path}: {type(e).__name__}: {msg}"
    return msg if msg.startswith((str(rec.path), str(rec.audio_path))) else f"{rec.path}: {msg}"


# --------------------------------------------------------------------------- predicting


def predict_clips(
    model: LoadedModel, clips: Iterable[str | Path | ClipRecord], detector: Detector | None = None, keep_view: bool = False
) -> list[ClipPrediction | ClipFailure]:
    """One ClipPrediction (or ClipFailure) per clip, in order; clips as paths or ClipRecords (a record's own
    audio_path is used as it is). `keep_view`: also keep what the model sees (frames, boxes, spectrogram)."""
    cfg = model.features
    detector = detector or make_detector(cfg)  # on the CPU, as prep's workers: the training clips' bytes
    out: list[ClipPrediction | ClipFailure] = []
    for c in clips:
        t0 = time.perf_counter()
        rec = c if isinstance(c, ClipRecord) else None
        try:
            rec = rec or clip_record(c)
            feats, extra = extract(rec, cfg, detector, keep_view)
        except Exception as e:  # noqa: BLE001 - a broken clip is reported and skipped, never fatal
            out.append(ClipFailure(str(getattr(c, "path", c)), _one_line(e, rec or ClipRecord(str(c), "", "", "clip"))))
            continue
        seg = model.segment_probs(feats.audio[None], feats.faces[None])[0]
        out.append(
            ClipPrediction(
                rec.path,
                rec.audio_path or rec.path,
                model.classes,
                seg.mean(axis=0),
                seg,
                extra["seg_times"],
                extra["key_times"],
                feats.faces_stats,
                time.perf_counter() - t0,
                extra.get("view"),
            )
        )
    return out


# --------------------------------------------------------------------------- output


def format_text(preds: list[ClipPrediction]) -> str:
    """For reading: per clip the emotion, the probabilities (highest first), each segment's emotion, the faces."""
    blocks = []
    for p in preds:
        order = np.argsort(-p.probs, kind="stable")
        lines = [
            p.clip,
            f"  emotion: {p.emotion} ({p.probs.max():.2f})",
            "  probabilities: " + ", ".join(f"{p.classes[i]} {p.probs[i]:.2f}" for i in order),
        ]
        if p.audio != p.clip:
            lines.append(f"  audio from: {p.audio}")
        lines.append(f"  segments ({len(p.seg_probs)}):")
        for (t0, t1), e, ps in zip(p.seg_times, p.seg_emotions, p.seg_probs):
            lines.append(f"    {t0:.2f}-{t1:.2f} s  {e} ({ps.max():.2f})")
        lines.append(f"  faces: {p.face_report()}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def to_json(preds: list[ClipPrediction]) -> str:
    return json.dumps([p.to_dict() for p in preds], indent=2)


def to_csv(preds: list[ClipPrediction]) -> str:
    """One row per clip (level "clip") and one per segment of it (level "segment"); p_<class> columns."""
    if not preds:
        return ""
    classes = preds[0].classes
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(
        [
            "clip",
            "audio",
            "level",
            "segment",
            "start_s",
            "end_s",
            "emotion",
            *(f"p_{c}" for c in classes),
            "faces_detected",
            "faces_borrowed",
            "faces_centre",
        ]
    )
    for p in preds:
        f = [p.faces.detected, p.faces.borrowed, p.faces.fallback]
        w.writerow(
            [
                p.clip,
                p.audio,
                "clip",
                "",
                f"{p.seg_times[0, 0]:.3f}",
                f"{p.seg_times[-1, 1]:.3f}",
                p.emotion,
                *(f"{x:.6f}" for x in p.probs),
                *f,
            ]
        )
        for i, ((t0, t1), e, ps) in enumerate(zip(p.seg_times, p.seg_emotions, p.seg_probs)):
            w.writerow([p.clip, p.audio, "segment", i, f"{t0:.3f}", f"{t1:.3f}", e, *(f"{x:.6f}" for x in ps), "", "", ""])
    return buf.getvalue()


def predictions_frame(preds: list[ClipPrediction], truth: dict[str, str] | None = None):
    """A pandas table, one row per clip: emotion, its probability, per-segment emotions, faces (and the
    true emotion where `truth` maps the clip's path to it)."""
    import pandas as pd

    rows = []
    for p in preds:
        row = {"clip": Path(p.clip).name}
        if truth is not None:
            row["true"] = truth.get(p.clip, "")
        row |= {
            "predicted": p.emotion,
            "p": float(p.probs.max()),
            "segments": " ".join(p.seg_emotions),
            "faces_detected": p.faces.detected,
            "faces_borrowed": p.faces.borrowed,
            "faces_centre": p.faces.fallback,
        }
        row |= {f"p_{c}": float(x) for c, x in zip(p.classes, p.probs)}
        rows.append(row)
    return pd.DataFrame(rows)
