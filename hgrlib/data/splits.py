"""Train / validation / test splits over segments, and the labeled subset for semi-supervised runs.

Protocols (docs/paper.md): `subject` holds out whole subjects (fold k is the test set,
fold k+1 the validation set); `clip` splits whole clips at random, so a test speaker's other clips
are in training (speaker dependence); `segment` splits segments at random, as the authors' follow-up
did, so segments of one clip fall on both sides too (segment leakage). The random protocols keep the
subject protocol's shares (training (k−2)/k, validation and test 1/k of the data for k folds), so
all three train on the same number of segments and their differences separate the two effects; their
draw is seeded by (seed, fold), so `fold` indexes distinct draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hgrlib.data.folds import checked_folds


@dataclass
class Split:
    """Flat segment indices (clip * n_segments + segment) of each part, and which training ones keep labels."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    labeled: np.ndarray  # bool, aligned with `train`
    test_subjects: list[str]


def make_split(
    subjects: list[str],
    labels: np.ndarray,
    n_segments: int,
    *,
    dataset: str,
    protocol: str = "subject",
    n_folds: int = 4,
    fold: int = 0,
    seed: int = 0,
    labeled_frac: float = 1.0,
    folds: str = "shipped",
) -> Split:
    """Split clips (given their subjects and labels) into segment index sets under `protocol` (`folds`:
    which subject folds, see `subject_folds`; a fold that cannot be trained is a DataError)."""
    n = len(subjects)
    rng = np.random.default_rng(seed)
    seg = lambda clips: (np.asarray(clips)[:, None] * n_segments + np.arange(n_segments)).ravel()  # noqa: E731
    if protocol == "subject":
        all_folds = checked_folds(dataset, subjects, labels, n_folds, [fold], folds)
        test_s, val_s = set(all_folds[fold]), set(all_folds[(fold + 1) % len(all_folds)])
        part = np.array(["test" if s in test_s else "val" if s in val_s else "train" for s in subjects])
        train_clips = np.flatnonzero(part == "train")
        # labeled subset: whole clips, stratified by class
        lab_clips = _stratified_subset(train_clips, labels[train_clips], labeled_frac, rng)
        train = seg(train_clips)
        labeled = np.isin(train // n_segments, lab_clips)
        return Split(
            train, seg(np.flatnonzero(part == "val")), seg(np.flatnonzero(part == "test")), labeled, sorted(test_s & set(subjects))
        )
    if protocol in ("clip", "segment"):
        rng = np.random.default_rng([seed, fold])
        units = n if protocol == "clip" else n * n_segments
        perm = rng.permutation(units)
        a, b = round(units * (n_folds - 2) / n_folds), round(units * (n_folds - 1) / n_folds)
        expand = seg if protocol == "clip" else np.asarray  # clip indices to their segments
        train, val, test = (np.sort(expand(np.sort(perm[i:j]))) for i, j in ((0, a), (a, b), (b, units)))
        lab_clips = _stratified_subset(np.unique(train // n_segments), labels[np.unique(train // n_segments)], labeled_frac, rng)
        return Split(train, val, test, np.isin(train // n_segments, lab_clips), [])
    raise ValueError(f"unknown protocol {protocol!r}; use 'subject', 'clip' or 'segment'")


def _stratified_subset(items: np.ndarray, labels: np.ndarray, frac: float, rng: np.random.Generator) -> np.ndarray:
    """A fraction `frac` of `items` from each class (at least one per class present)."""
    if not 0 < frac <= 1:
        raise ValueError(f"labeled_frac must be in (0, 1], got {frac}")
    if frac == 1:
        return items
    keep = []
    for c in np.unique(labels):
        members = items[labels == c]
        k = max(1, int(round(frac * len(members))))
        keep.append(rng.choice(members, size=k, replace=False))
    return np.sort(np.concatenate(keep))
