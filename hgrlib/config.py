"""One experiment = one Config: plain dataclasses, serialisable to JSON, hashed for caching.

Each section converts its fields to their declared types and rejects impossible values when it is made
(`__post_init__`), with a ValueError naming `section.field`, so a bad override fails before any work starts.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import numbers
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from importlib import resources
from typing import Any, get_type_hints

_hints = functools.cache(get_type_hints)
_BOOLS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def _convert(name: str, value: Any, typ: Any) -> Any:
    """`value` as `typ` (int, float, bool or str; other types pass through), else a ValueError naming `name`."""
    if typ not in (int, float, bool, str):
        return value
    out = None
    if typ is str:
        out = value if isinstance(value, str) else None
    elif isinstance(value, bool):
        out = value if typ is bool else None  # True is an int to Python, never a count or a weight here
    elif typ is bool:
        out = _BOOLS.get(value.strip().lower()) if isinstance(value, str) else None
    elif isinstance(value, (str, numbers.Real)):
        try:
            if typ is float:
                out = float(value) if math.isfinite(float(value)) else None
            elif isinstance(value, numbers.Integral) or (isinstance(value, str) and value.strip().lstrip("+-").isdigit()):
                out = int(value)  # 7, "7"
            elif float(value).is_integer():  # 7.0, "7.0", "1e3"; not NaN or inf
                out = int(float(value))
        except (ValueError, OverflowError):
            pass
    if out is None:
        raise ValueError(f"{name}={value!r}: expected {typ.__name__}")
    return out


def _typed(obj: Any, section: str) -> None:
    """Convert each field of the frozen section `obj`, in place, to its declared type."""
    for name, typ in _hints(type(obj)).items():
        object.__setattr__(obj, name, _convert(f"{section}.{name}", getattr(obj, name), typ))


def _check(obj: Any, section: str, *rules: tuple) -> None:
    """Apply (field names, test, why) rules: ValueError `section.field=value: why` for the first field that fails."""
    for names, ok, why in rules:
        for name in names.split():
            value = getattr(obj, name)
            if not ok(value):
                raise ValueError(f"{section}.{name}={value!r}: {why}")


# The allowed values of the choice fields, one source for the checks below, hgrlib.app.cli and hgrlib.reproduce.runner
DATASETS = ("synthetic", "ravdess", "enterface", "baum1s", "manifest")
CLASSES = (6, 8)
FOLDS = ("shipped", "present")
DETECTORS = ("haar", "mtcnn")
MODALITIES = ("av", "a", "v")
CORRS = ("hgr", "cca", "infonce")
PROTOCOLS = ("subject", "clip", "segment")
DEVICES = ("auto", "cpu", "cuda")
AMPS = ("off", "bf16")


def _one_of(names: str, *choices: Any) -> tuple:
    return names, lambda v: v in choices, "must be one of " + "|".join(map(str, choices))


def _positive(names: str) -> tuple:
    return names, lambda v: v > 0, "must be > 0"


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "synthetic"  # synthetic | ravdess | enterface | baum1s | manifest
    root: str = "data/synthetic"  # folder (or CSV file for "manifest")
    classes: int = 6  # 6 (the paper's basic emotions) or 8 (RAVDESS only)
    # subject folds of ravdess/enterface/baum1s: "shipped" (hgrlib/data/shipped_folds/*.json, as published; a fold the
    # subjects on disk cannot train is refused) | "present" (folds made from the subjects present, for a
    # partial corpus; as the synthetic corpus and a manifest always are). hgrlib/data/splits.py
    folds: str = "shipped"

    def __post_init__(self) -> None:
        _typed(self, "data")
        _check(
            self,
            "data",
            _one_of("dataset", *DATASETS),
            _one_of("classes", *CLASSES),
            _one_of("folds", *FOLDS),
            (
                "classes",
                lambda v: v == 6 or self.dataset in ("ravdess", "manifest"),
                f"8 classes need dataset ravdess or manifest, not {self.dataset}",
            ),
        )


@dataclass(frozen=True)
class FeatureConfig:
    """Preprocessing; defaults follow the authors' follow-up (94 mel bands, 40 ms Hann window, 10 ms hop) at CPU size."""

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
    detector: str = "haar"  # haar (OpenCV, the default) | mtcnn (facenet-pytorch, the paper's; scripts/install_mtcnn.sh)
    # smallest face searched for, as a fraction of the frame height: frames are downscaled (never upscaled) so that
    # such a face keeps the detector's minimum size (Haar 32 px, MTCNN 24 px); smaller = slower (hgrlib/data/faces.py)
    min_face: float = 0.1

    def __post_init__(self) -> None:
        _typed(self, "features")
        _check(
            self,
            "features",
            _positive("sr n_mels win_ms hop_ms segment_frames n_segments frames_per_segment face_size"),
            ("face_margin", lambda v: v >= 0, "must be >= 0"),
            _one_of("detector", *DETECTORS),
            ("min_face", lambda v: 0 < v <= 1, "must be in (0, 1], a fraction of the frame height"),
        )

    def key(self) -> str:
        return config_hash(self)


@dataclass(frozen=True)
class ModelConfig:
    dim: int = 64  # d, the feature dimension of f(a), g(v), h(y)
    width: int = 16  # channels of the first conv layer
    dropout: float = 0.2
    modalities: str = "av"  # "av" (fusion), "a" (audio only), "v" (visual only)

    def __post_init__(self) -> None:
        _typed(self, "model")
        _check(
            self,
            "model",
            _positive("dim width"),
            ("dropout", lambda v: 0 <= v < 1, "must be in [0, 1)"),
            _one_of("modalities", *MODALITIES),
        )


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
    cca_dim: int = 0  # CCA-style only: canonical correlations of the first k feature dimensions (0: all d)
    cca_ridge: float = 1e-3  # CCA-style only: ridge added to each covariance, relative to its mean eigenvalue

    def __post_init__(self) -> None:
        _typed(self, "loss")  # floats are finite from here on
        _check(
            self,
            "loss",
            ("w_ce w_ce_uni lam w_av w_ay w_vy cca_dim", lambda v: v >= 0, "must be >= 0"),
            _one_of("corr", *CORRS),
            _positive("temperature cca_ridge"),
        )


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 8
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    protocol: str = "subject"  # subject (held-out subjects) | clip (random clips) | segment (random segments); data/splits.py
    n_folds: int = 4
    fold: int = 0
    labeled_frac: float = 1.0  # fraction of training clips that keep their label
    use_unlabeled: bool = True  # semi-supervised: unlabeled clips contribute the label-free term
    match_steps: bool = False  # labeled-only runs take as many steps per epoch as a pass over all training clips
    # > 0: every batch holds exactly this many labeled rows and, with use_unlabeled, batch_size minus them unlabeled
    # ones (a fixed ratio; each set cycled on its own); 0: batches drawn from all the rows a run trains on
    labeled_per_batch: int = 0
    device: str = "auto"  # auto | cpu | cuda
    threads: int = 0  # torch CPU threads (0: torch's default); the count changes the last digits, so it is part of a run's key
    amp: str = "off"  # off | bf16: autocast the networks (losses stay fp32); see benchmarks/README.md
    compile: bool = False  # torch.compile the training forward pass (eval runs eager)
    # a run alone on a CUDA GPU: its training step captured in a CUDA graph, features resident on the device, the
    # non-finite steps counted there (hgrlib.core.graphed; docs/scaling.md). Refused on the CPU. Left out of to_dict
    # and the hash while False, so the keys of every run that does not use it are unchanged.
    graph: bool = False

    @property
    def rows_per_batch(self) -> int:
        """Rows in each batch: batch_size, or with `labeled_per_batch` and no unlabeled rows, just those."""
        return self.labeled_per_batch if self.labeled_per_batch and not self.use_unlabeled else self.batch_size

    def __post_init__(self) -> None:
        _typed(self, "train")  # fold's upper bound depends on the dataset: checked by Config
        _check(
            self,
            "train",
            _positive("epochs lr"),
            ("batch_size", lambda v: v >= 2, "must be >= 2 (the correlation losses need two rows)"),
            ("weight_decay seed threads fold", lambda v: v >= 0, "must be >= 0"),
            _one_of("protocol", *PROTOCOLS),
            ("n_folds", lambda v: v >= 3, "must be >= 3 (a test fold, a validation fold and a training fold)"),
            ("labeled_frac", lambda v: 0 < v <= 1, "must be in (0, 1]"),
            ("labeled_per_batch", lambda v: v == 0 or 2 <= v <= self.batch_size, "must be 0 (off) or in [2, batch_size]"),
            _one_of("device", *DEVICES),
            _one_of("amp", *AMPS),
        )


@functools.cache
def shipped_fold_count(dataset: str) -> int | None:
    """How many folds hgrlib/data/shipped_folds/<dataset>.json ships; None for a dataset without shipped folds.

    Read from the file rather than from hgrlib.data.folds: the feature code imports this module, and
    its cache key must not change with the fold code."""
    f = resources.files("hgrlib").joinpath("data").joinpath("shipped_folds").joinpath(f"{dataset}.json")
    return json.loads(f.read_text(encoding="utf-8"))["n_folds"] if f.is_file() else None


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        for name, typ in _hints(Config).items():
            if not isinstance(getattr(self, name), typ):
                raise ValueError(f"{name}={getattr(self, name)!r}: expected a {typ.__name__}")
        shipped = shipped_fold_count(self.data.dataset) if self.data.folds == "shipped" else None
        n = shipped or self.train.n_folds
        why = f"{self.data.dataset} ships {n} folds" if shipped else f"train.n_folds={n}"
        _check(self.train, "train", ("fold", lambda v: v < n, f"must be in [0, {n}): {why}"))

    def to_dict(self) -> dict:
        return _omit_unset(asdict(self))

    @classmethod
    def from_dict(cls, d: dict) -> "Config":
        return from_dict(cls, d)

    def with_(self, **sections: dict) -> "Config":
        """Copy with fields overridden per section: cfg.with_(loss={"lam": 0.1}, train={"seed": 1}).

        All sections change at once, so checks spanning sections see the final config, whatever the order."""
        return replace(self, **{name: replace(getattr(self, name), **upd) for name, upd in sections.items()})


def from_dict(cls: type, d: dict) -> Any:
    """Build a (nested) dataclass from a dict, rejecting unknown keys with a clear message."""
    known = {f.name: _hints(cls)[f.name] for f in fields(cls)}
    unknown = set(d) - set(known)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown field(s) {sorted(unknown)}; known: {sorted(known)}")
    kw = {}
    for k, v in d.items():
        sub = known[k]
        kw[k] = from_dict(sub, v) if is_dataclass(sub) and isinstance(v, dict) else v
    return cls(**kw)


def config_hash(obj: Any, n: int = 12) -> str:
    """Short sha256 of a dataclass's (or dict's) canonical JSON: the cache key of what it describes."""
    d = _omit_unset(asdict(obj)) if is_dataclass(obj) else obj
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:n]


OMIT_WHEN_UNSET = {"train": {"graph": False}}  # fields added later, left out of to_dict and hashes at these values


def _omit_unset(d: dict) -> dict:
    """A Config's (or TrainConfig's) dict without the fields of OMIT_WHEN_UNSET at their unset value."""
    for section, unset in OMIT_WHEN_UNSET.items():
        for part in (d.get(section), d if "compile" in d else None):
            if isinstance(part, dict):
                for k, v in unset.items():
                    if k in part and part[k] is v:
                        del part[k]
    return d
