"""Per-clip features: log-mel spectrogram segments (audio) and face crops of key frames (video).

A clip becomes `n_segments` aligned audio-visual segments: segment s is `segment_frames` log-mel
frames (94 mel bands, 40 ms Hann window, 10 ms hop by default, after the authors' follow-up) and the face crops
of `frames_per_segment` key frames evenly spaced inside the same time window. Segments are spread
evenly over the clip (overlapping when the clip is short), as in Zhang et al. (2018).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torchaudio

from hgrlib.config import FeatureConfig
from hgrlib.data.faces import CropBoxes, Detector, FaceStats, crop_faces
from hgrlib.data.media import read_audio, read_frames
from hgrlib.data.records import ClipRecord, DataError


def _mel_transform(cfg: FeatureConfig, device: torch.device | str = "cpu") -> torch.nn.Module:
    win = int(round(cfg.sr * cfg.win_ms / 1000))
    hop = int(round(cfg.sr * cfg.hop_ms / 1000))
    return torchaudio.transforms.MelSpectrogram(
        sample_rate=cfg.sr,
        n_fft=win,
        win_length=win,
        hop_length=hop,
        n_mels=cfg.n_mels,
        window_fn=torch.hann_window,
        center=True,
        pad_mode="reflect",
        power=2.0,
    ).to(device)


def log_mel(waves: torch.Tensor, cfg: FeatureConfig) -> torch.Tensor:
    """Log-mel spectrograms in dB, (B, n_mels, frames), of a batch of waveforms (B, samples), on their device."""
    mel = _mel_transform(cfg, waves.device)(waves)
    db = 10.0 * torch.log10(mel.clamp_min(1e-10))
    return torch.maximum(db, db.amax(dim=(-2, -1), keepdim=True) - 80.0)  # top_db = 80, per clip


def segment_starts(n_frames: int, cfg: FeatureConfig) -> np.ndarray:
    """First log-mel frame of each segment, spread evenly over the clip."""
    return np.round(np.linspace(0, max(n_frames - cfg.segment_frames, 0), cfg.n_segments)).astype(int)


def key_frame_times(starts: np.ndarray, cfg: FeatureConfig) -> list[float]:
    """Times (s) of the key frames: `frames_per_segment` evenly spaced inside each segment's window."""
    k = cfg.frames_per_segment
    offsets = (np.arange(k) + 0.5) * cfg.segment_frames / k
    return [float((s + o) * cfg.hop_ms / 1000) for s in starts for o in offsets]


def audio_segments(spec: torch.Tensor, cfg: FeatureConfig) -> tuple[torch.Tensor, np.ndarray]:
    """Cut one log-mel spectrogram (n_mels, T) into (n_segments, C, n_mels, segment_frames) segments."""
    n_mels, t = spec.shape
    if t < cfg.segment_frames:  # pad short clips with silence (the clip's floor)
        spec = torch.cat([spec, spec.amin().expand(n_mels, cfg.segment_frames - t)], dim=1)
    chans = [spec]
    if cfg.deltas:
        d1 = torchaudio.functional.compute_deltas(spec[None])[0]
        chans += [d1, torchaudio.functional.compute_deltas(d1[None])[0]]
    full = torch.stack(chans)  # (C, n_mels, T)
    starts = segment_starts(t, cfg)
    return torch.stack([full[:, :, s : s + cfg.segment_frames] for s in starts]), starts


@dataclass
class ClipFeatures:
    audio: np.ndarray  # (n_segments, C, n_mels, segment_frames) float16, dB
    faces: np.ndarray  # (n_segments, frames_per_segment, face_size, face_size, 3) uint8
    faces_stats: FaceStats


def extract_clip(rec: ClipRecord, cfg: FeatureConfig, detector: Detector, view: dict | None = None) -> ClipFeatures:
    """Features of one clip; raises DataError (naming the file) when a file cannot be used.

    `view`, if given, is filled with what the features were made from, for figures and reports
    (hgrlib.app.predict): "spec" (n_mels, T) float32 dB of the whole clip, "starts" (first log-mel frame of
    each segment), "key_times" (s), "frames" (S*K, H, W, 3) uint8 key frames, "boxes" and "how" (the box
    each key frame's crop was cut around and how it was found: hgrlib.data.faces.crop_boxes)."""
    wave = read_audio(rec.audio_path or rec.path, sr=cfg.sr)
    if np.abs(wave).max() == 0:
        raise DataError(f"{rec.audio_path or rec.path}: audio is silent (all zeros)")
    spec = log_mel(torch.from_numpy(wave)[None], cfg)[0]
    segs, starts = audio_segments(spec, cfg)
    times = key_frame_times(starts, cfg)
    frames, _, _ = read_frames(rec.path, times)
    used = CropBoxes([], [])
    crops, stats = crop_faces(frames, list(range(len(frames))), cfg.face_size, cfg.face_margin, detector, used)
    faces = crops.reshape(cfg.n_segments, cfg.frames_per_segment, cfg.face_size, cfg.face_size, 3)
    if view is not None:
        view.update(spec=spec.numpy().astype(np.float32), starts=starts, key_times=times, frames=frames, boxes=used.boxes, how=used.how)
    return ClipFeatures(segs.numpy().astype(np.float16), faces, stats)
