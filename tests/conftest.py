"""Shared fixtures: one tiny synthetic corpus and its feature cache, made once per test session."""

from __future__ import annotations

import pytest

from hgrlib.config import Config, DataConfig, FeatureConfig, ModelConfig, TrainConfig
from hgrlib.data.synthetic import SyntheticConfig

TINY_SYNTH = SyntheticConfig(n_subjects=6, clips_per_emotion=1, duration=1.2)
TINY_FEATURES = FeatureConfig(n_segments=3, face_size=32)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """(Config, FeatureSet, cache dir) for a 36-clip synthetic corpus."""
    from hgrlib.experiment.prepare import load_featureset, prepare_data

    base = tmp_path_factory.mktemp("tiny")
    cfg = Config(
        DataConfig(root=str(base / "corpus")),
        TINY_FEATURES,
        ModelConfig(dim=16, width=8),
        train=TrainConfig(epochs=2, batch_size=32, n_folds=3),
    )
    prepare_data(cfg.data, cfg.features, str(base / "cache"), TINY_SYNTH, workers=1, progress=False)
    return cfg, load_featureset(cfg.data, cfg.features, str(base / "cache")), base / "cache"
