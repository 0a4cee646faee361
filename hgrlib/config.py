"""One experiment = one Config: plain dataclasses, serialisable to JSON, hashed for caching."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from typing import Any


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "synthetic"  # synthetic | ravdess | enterface | baum1s | manifest
    root: str = "data/synthetic"  # folder (or CSV file for "manifest")
    classes: int = 6  # 6 (the paper's basic emotions) or 8 (RAVDESS only)


@dataclass(frozen=True)
class FeatureConfig:
    """Preprocessing; defaults follow PAPER.md (94 mel bands, 40 ms Hann window, 10 ms hop) at CPU size."""

    sr: int = 16000
    n_mels: int = 94
    win_ms: float = 40.0
    hop_ms: float = 10.0
    segment_frames: int = 64  # log-mel frames per segment (0.64 s)
    n_segments: int = 6  # segments per clip (the authors' follow-up used 30)
    deltas: bool = False  # stack delta and delta-delta channels (Zhang et al. 2018)
    frames_per_segment: int = 3  # face key frames per segment
    face_size: int = 48  # face crop side in pixels
    face_margin: float = 0.2  # margin around the detected box, as a fraction of its side
    detect_max_side: int = 320  # frames are downscaled to this before face detection

    def key(self) -> str:
        return config_hash(self)


@dataclass(frozen=True)
class ModelConfig:
    dim: int = 64  # d, the feature dimension of f(a), g(v), h(y)
    width: int = 16  # channels of the first conv layer
    dropout: float = 0.2
    modalities: str = "av"  # "av" (fusion), "a" (audio only), "v" (visual only)


@dataclass(frozen=True)
class LossConfig:
    """Joint loss weights: L = w_ce*CE(fusion) + w_ce_uni*(CE(a)+CE(v)) - lam*(S(f,g) + S(f,h) + S(g,h))."""

    w_ce: float = 1.0
    w_ce_uni: float = 0.0
    lam: float = 0.0  # weight of the common-information terms (0: cross-entropy only)
    w_av: float = 1.0  # relative weights of the three pairs inside lam
    w_ay: float = 1.0
    w_vy: float = 1.0
    corr: str = "hgr"  # hgr | cca | infonce: which correlation objective the pair terms use
    temperature: float = 0.1  # InfoNCE only


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 8
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    protocol: str = "subject"  # subject (subject-independent folds) | segment (random segment split)
    n_folds: int = 4
    fold: int = 0
    labeled_frac: float = 1.0  # fraction of training clips that keep their label
    use_unlabeled: bool = True  # semi-supervised: unlabeled clips contribute the label-free term
    device: str = "auto"  # auto | cpu | cuda
    threads: int = 0  # torch CPU threads (0: torch's default); the count changes the last digits, so it is part of a run's key
    amp: str = "off"  # off | bf16: autocast the networks (losses stay fp32); see benchmarks/README.md
    compile: bool = False  # torch.compile the training forward pass (eval runs eager)


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Config":
        return from_dict(cls, d)

    def with_(self, **sections: dict) -> "Config":
        """Copy with fields overridden per section: cfg.with_(loss={"lam": 0.1}, train={"seed": 1})."""
        out = self
        for name, upd in sections.items():
            out = replace(out, **{name: replace(getattr(out, name), **upd)})
        return out


def from_dict(cls: type, d: dict) -> Any:
    """Build a (nested) dataclass from a dict, rejecting unknown keys with a clear message."""
    known = {f.name: f for f in fields(cls)}
    unknown = set(d) - set(known)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown field(s) {sorted(unknown)}; known: {sorted(known)}")
    kw = {}
    for k, v in d.items():
        t = known[k].type
        sub = globals().get(t) if isinstance(t, str) else t
        kw[k] = from_dict(sub, v) if is_dataclass(sub) and isinstance(v, dict) else v
    return cls(**kw)


def config_hash(obj: Any, n: int = 12) -> str:
    """Short sha256 of a dataclass's (or dict's) canonical JSON: the cache key of what it describes."""
    d = asdict(obj) if is_dataclass(obj) else obj
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:n]
