"""The fold check: one message per problem, whoever asks (make_split's checked_folds, the run grids, Coverage)."""

from __future__ import annotations

import numpy as np
import pytest

from hgrlib.config import Config, DataConfig, TrainConfig
from hgrlib.data.featureset import FeatureSet
from hgrlib.data.folds import checked_folds, fold_refusal, load_folds, subject_folds
from hgrlib.data.records import EMOTIONS6, ClipRecord, DataError
from hgrlib.data.splits import make_split
from hgrlib.experiment.prepare import Coverage, fold_seed_runs, seeded_runs


def records(dataset: str, subjects: list[str], classes=EMOTIONS6) -> list[ClipRecord]:
    """One clip of each class per subject."""
    return [ClipRecord(f"/nowhere/{s}_{c}.mp4", s, c, dataset) for s in subjects for c in classes]


def featureset(recs: list[ClipRecord], classes=EMOTIONS6) -> FeatureSet:
    n = len(recs)
    return FeatureSet(
        clip_ids=[r.clip_id for r in recs],
        subjects=[r.subject for r in recs],
        labels=np.array([classes.index(r.emotion) for r in recs]),
        classes=tuple(classes),
        audio=np.zeros((n, 1, 1, 2, 2), np.float16),
        faces=np.zeros((n, 1, 1, 2, 2, 3), np.uint8),
        dataset=recs[0].dataset,
    )


def refused(call) -> str:
    with pytest.raises(DataError) as e:
        call()
    return str(e.value)


def test_fold_out_of_range():
    recs = records("manifest", ["a", "b", "c", "d"])
    subjects, labels = [r.subject for r in recs], [r.emotion for r in recs]
    msg = "manifest: fold 3 out of range: there are 3 subject folds (0 to 2)"
    assert refused(lambda: checked_folds("manifest", subjects, labels, 3, [3], "present")) == msg
    assert refused(lambda: make_split(subjects, np.zeros(len(recs), int), 1, dataset="manifest", n_folds=3, fold=3)) == msg
    assert "fold -1 out of range" in refused(lambda: checked_folds("manifest", subjects, labels, 3, [-1], "present"))
    assert checked_folds("manifest", subjects, labels, 3, [2], "present") == subject_folds("manifest", subjects, 3, "present")


def test_missing_subjects():
    gone = load_folds("ravdess")[2]
    recs = records("ravdess", [f"{i:02d}" for i in range(1, 25) if f"{i:02d}" not in gone])
    subjects, labels = [r.subject for r in recs], [r.emotion for r in recs]
    folds = load_folds("ravdess")
    every = fold_refusal("ravdess", subjects, labels, folds, range(6), EMOTIONS6)
    missing = f"4 of its 24 subjects are missing from the corpus: {', '.join(gone)}. Complete the corpus, or make folds"
    assert every.startswith(
        f"ravdess: 2 of the 6 shipped folds cannot be trained on the clips present (fold 1: its validation subjects {', '.join(gone)} are all absent; fold 2: its test subjects"
    )
    assert missing in every and "--folds present" in every
    cfg = Config(DataConfig("ravdess", "/nowhere"), train=TrainConfig(n_folds=6))
    assert Coverage(recs, cfg.data).refusal() == every
    assert refused(lambda: fold_seed_runs(cfg, [0], featureset(recs))) == every
    one = refused(lambda: checked_folds("ravdess", subjects, labels, 6, [2]))
    assert one.startswith("ravdess: 1 of the 6 shipped folds cannot be trained on the clips present (fold 2: its test") and missing in one
    assert refused(lambda: seeded_runs(cfg, [0, 1, 2], featureset(recs))) == every  # folds 0, 1, 2: the same two
    assert fold_refusal("ravdess", subjects, labels, folds, [0, 3, 4, 5], EMOTIONS6) == ""  # the others can be trained
    assert fold_refusal("ravdess", subjects, labels, load_folds("ravdess"), [0], folds="present") == ""


def test_class_without_clips():
    recs = records("synthetic", ["1", "2", "3", "4"], EMOTIONS6[:-1])
    msg = "synthetic: no clips of class surprise (the 6 classes: anger, disgust, fear, happiness, sadness, surprise)"
    cfg = Config(DataConfig(), train=TrainConfig(n_folds=3))
    assert Coverage(recs, cfg.data).refusal() == msg
    assert Coverage(recs, cfg.data, n_folds=3).refusal() == msg
    assert refused(lambda: seeded_runs(cfg, [0], featureset(recs))) == msg
    assert refused(lambda: fold_seed_runs(cfg, [0], featureset(recs))) == msg
    whole = records("synthetic", ["1", "2", "3", "4"])
    assert Coverage(whole, cfg.data, n_folds=3).refusal() == "" and len(seeded_runs(cfg, [0, 1], featureset(whole))) == 2
