"""Metrics and feature analyses: accuracy, unweighted average recall, CKA, linear probes."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, confusion_matrix, recall_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def scores(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict:
    """Accuracy, unweighted average recall (UAR: the mean recall over the classes present in `y_true`, i.e.
    balanced accuracy; a class absent from a test fold has no recall and is left out, not counted as 0)
    and the confusion matrix over all `n_classes`."""
    labels = list(range(n_classes))
    present = np.unique(y_true)
    return {
        "acc": float(accuracy_score(y_true, y_pred)),
        "uar": float(recall_score(y_true, y_pred, labels=present, average="macro", zero_division=0)) if len(present) else float("nan"),
        "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def clip_probs(seg_probs: np.ndarray, seg_clip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average segment probabilities per clip: (clip ids in order, (n_clips, C) probabilities)."""
    clips, inv = np.unique(seg_clip, return_inverse=True)
    out = np.zeros((len(clips), seg_probs.shape[1]))
    np.add.at(out, inv, seg_probs)
    return clips, out / np.bincount(inv)[:, None]


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA (Kornblith et al. 2019, eq. 5) between two representations of the same samples."""
    x = x - x.mean(0)
    y = y - y.mean(0)
    hsic = np.linalg.norm(x.T @ y) ** 2
    return float(hsic / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


def inv_sqrt(c: np.ndarray, eps: float = 1e-3) -> np.ndarray:
    """(C + ε·tr(C)/d·I)^(−1/2) of a symmetric d×d covariance C: the whitening of regularised CCA."""
    w, v = np.linalg.eigh(c + eps * np.trace(c) / len(c) * np.eye(len(c)))
    return v @ np.diag(w.clip(1e-12) ** -0.5) @ v.T


def canonical_correlations(x: np.ndarray, y: np.ndarray, k: int = 5, eps: float = 1e-3) -> np.ndarray:
    """Top-k canonical correlations between two feature sets on held-out samples (regularised)."""
    x = x - x.mean(0)
    y = y - y.mean(0)
    n = len(x)
    t = inv_sqrt(x.T @ x / n, eps) @ (x.T @ y / n) @ inv_sqrt(y.T @ y / n, eps)
    return np.linalg.svd(t, compute_uv=False)[:k]


def probe_split(feats: dict[str, np.ndarray], keys: tuple[str, ...] = ("f", "g"), n_classes: int | None = None) -> dict:
    """Linear probe on frozen clip features: logistic regression fit on the run's training clips, scored on its test clips.

    Gives a classifier for models trained without cross-entropy (Soft-HGR only), and a common yardstick for all.
    """
    x = np.concatenate([feats[k] for k in keys if k in feats], axis=1)
    tr, te = feats["part"] == "train", feats["part"] == "test"
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
    model.fit(x[tr], feats["labels"][tr])
    c = n_classes or int(feats["labels"].max()) + 1
    return scores(feats["labels"][te], model.predict(x[te]), c)
