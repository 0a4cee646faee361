"""FeatureSet: a dataset's cached features in memory, what every run trains on."""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass

import numpy as np

from hgrlib.base.provenance import arrays_sha256


@dataclass
class FeatureSet:
    """Cached features of a dataset, in memory: one row per clip, n_segments segments each."""

    clip_ids: list[str]
    subjects: list[str]
    labels: np.ndarray  # (N,) class index
    classes: tuple[str, ...]
    audio: np.ndarray  # (N, S, C, M, L) float16
    faces: np.ndarray  # (N, S, K, H, W, 3) uint8
    dataset: str
    feature_key: str = ""  # the feature cache's key (its folder name): preprocessing config, code, libraries

    @property
    def n_segments(self) -> int:
        return self.audio.shape[1]

    @functools.cached_property
    def fingerprint(self) -> str:
        """Which clips, subjects, labels and feature values (every byte): part of a run's cache key."""
        names = json.dumps([self.dataset, self.feature_key, self.clip_ids, self.subjects, list(self.classes)])
        values = arrays_sha256(self.labels.astype(np.int64), self.audio, self.faces)
        return hashlib.sha256((names + values).encode()).hexdigest()[:16]
