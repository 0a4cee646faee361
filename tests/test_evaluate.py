"""hgrlib.core.metrics's metrics: accuracy and UAR against sklearn, the confusion matrix, and the clip-level
aggregation of segment probabilities."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score

from hgrlib.core.metrics import clip_probs, scores


def test_uar_is_the_mean_recall_over_the_classes_present():
    y = np.array([0, 0, 1, 1])
    assert scores(y, y, n_classes=3)["uar"] == 1.0  # class 2 absent from the fold: not a recall of 0
    s = scores(y, np.array([0, 0, 0, 1]), n_classes=3)
    assert s["uar"] == pytest.approx(0.75) and s["acc"] == 0.75
    assert np.array(s["confusion"]).shape == (3, 3)
    assert scores(y, np.array([2, 2, 1, 1]), n_classes=3)["uar"] == pytest.approx(0.5)  # predicting an absent class


@pytest.mark.parametrize("seed", range(5))
def test_uar_is_sklearns_balanced_accuracy_with_a_class_never_predicted(seed):
    rng = np.random.default_rng(seed)
    n_classes = 6
    y_true = rng.integers(0, n_classes, 200)
    y_pred = rng.integers(0, n_classes, 200)
    y_pred[y_pred == 3] = 4  # class 3 is in y_true but never predicted: its recall is 0, and it counts
    assert 3 in y_true and 3 not in y_pred
    s = scores(y_true, y_pred, n_classes)
    assert s["uar"] == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    assert s["acc"] == pytest.approx(np.mean(y_true == y_pred))
    cm = np.array(s["confusion"])
    assert cm.shape == (n_classes, n_classes) and cm.sum() == 200
    assert (cm.sum(1) == np.bincount(y_true, minlength=n_classes)).all()  # rows: true class
    assert (cm[:, 3] == 0).all() and np.trace(cm) == (y_true == y_pred).sum()


def test_clip_probs_average_each_clips_segments_in_clip_order():
    seg_clip = np.array(["b", "a", "b", "a", "c"])
    seg = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5], [0.4, 0.6], [1.0, 0.0]])
    clips, probs = clip_probs(seg, seg_clip)
    assert list(clips) == ["a", "b", "c"]
    np.testing.assert_allclose(probs, [[0.3, 0.7], [0.7, 0.3], [1.0, 0.0]])
    np.testing.assert_allclose(probs.sum(1), 1.0)
    # the clip's vote is the mean probability, not a majority of segment votes: "b" has one segment each way
    assert scores(np.array([1, 0, 0]), probs.argmax(1), 2)["acc"] == 1.0
