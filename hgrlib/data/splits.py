"""Train / validation / test splits over segments, and the labeled subset for semi-supervised runs.

Protocols (docs/paper.md): `subject` holds out whole subjects (fold k is the test set,
fold k+1 the validation set); `clip` splits whole clips at random, so a test speaker's other clips
are in training (speaker dependence); `segment` splits segments at random, as the authors' follow-up
did, so segments of one clip fall on both sides too (segment leakage). The random protocols keep the
subject protocol's shares (training (k−2)/k, validation and test 1/k of the data for k folds), so
all three train on the same number of segments and their differences separate the two effects; their
draw is seeded by (seed, fold), so `fold` indexes distinct draws.

Which subject folds (`folds`, DataConfig.folds): "shipped" uses a real dataset's shipped folds
(hgrlib/splits/*.json) exactly as published, whatever subset of their subjects is on disk; a run whose
test, validation or training part is then empty, or lacks classes because subjects are missing, is
refused with a DataError naming the missing subjects (`fold_problems`), never trained at chance.
"present" makes folds from the subjects present instead (as for the synthetic corpus and a CSV
manifest, which have no shipped folds).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hgrlib.data.datasets import FOLD_SPECS, load_folds, make_subject_folds, natural_key
from hgrlib.data.records import DataError


@dataclass
class Split:
    """Flat segment indices (clip * n_segments + segment) of each part, and which training ones keep labels."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    labeled: np.ndarray  # bool, aligned with `train`
    test_subjects: list[str]


FOLDS = ("shipped", "present")
OPTION = ("make folds from the {n} subjects present instead with `./run_all.sh --folds present` "
          "(data.folds=present; HGRLIB_FOLDS=present for hgrlib)")


def subject_folds(dataset: str, subjects: list[str], n_folds: int, folds: str = "shipped") -> list[list[str]]:
    """The subject folds of `dataset` (fold k is a run's test part, fold k+1 its validation part).

    folds="shipped" on ravdess, enterface or baum1s: the shipped folds as published, absent subjects
    included (`fold_problems` says which folds the subjects present can train). Otherwise (the synthetic
    corpus, a manifest, or folds="present"): min(n_folds, subjects present) folds made from the subjects
    present, make_subject_folds(seed=0), gender-balanced for RAVDESS."""
    if folds not in FOLDS:
        raise ValueError(f"folds={folds!r}: use one of {', '.join(FOLDS)}")
    if folds == "shipped" and dataset in FOLD_SPECS:
        return load_folds(dataset)
    present = sorted(set(subjects), key=natural_key)
    if len(present) < 3:
        raise DataError(f"{dataset}: {len(present)} subject(s) present ({', '.join(present) or 'none'}); "
                        f"subject-independent folds need at least 3 (test, validation and training subjects)")
    groups = (FOLD_SPECS.get(dataset) or {}).get("groups")
    if groups and not all(s in groups for s in present):
        groups = None
    return make_subject_folds(present, min(n_folds, len(present)), seed=0,
                              groups={s: groups[s] for s in present} if groups else None)


def _names(items, limit: int = 40) -> str:
    items = sorted(items, key=lambda s: natural_key(str(s)))
    head = ", ".join(map(str, items[:limit]))
    return head + (f", … ({len(items) - limit} more)" if len(items) > limit else "")


def fold_problems(dataset: str, subjects: list[str], labels, folds: list[list[str]]) -> dict[int, str]:
    """Why each fold that cannot be trained on the clips present (subjects and labels per clip) cannot be:
    {fold: reason}, empty when every fold can. A fold cannot be trained when its test, validation or
    training part has no clip, when its training part lacks a class of the corpus, or when its test or
    validation part lacks one because some of its subjects are missing (a complete part of a complete
    dataset is what it is). Corpus-level: subjects present in none of the folds make every fold fail."""
    present, classes = set(subjects), set(labels)
    by_subject: dict[str, set] = {}
    for s, y in zip(subjects, labels):
        by_subject.setdefault(s, set()).add(y)
    listed = {s for f in folds for s in f}
    out: dict[int, str] = {}
    extra = present - listed
    for k in range(len(folds)):
        if extra:
            out[k] = f"subjects {_names(extra)} are in none of the folds"
            continue
        test, val = set(folds[k]), set(folds[(k + 1) % len(folds)])
        why = []
        for part, members in (("test", test), ("validation", val), ("training", listed - test - val)):
            have, gone = members & present, members - present
            if not have:
                why.append(f"its {part} subjects {_names(gone)} are all absent" if gone else f"its {part} part is empty")
                continue
            lacking = classes - set().union(*(by_subject[s] for s in have))
            if lacking and (part == "training" or gone):
                why.append(f"its {part} part lacks {_names(lacking)}" + (f" ({_names(gone)} absent)" if gone else ""))
        if why:
            out[k] = "; ".join(why)
    return out


def refusal(dataset: str, subjects: list[str], problems: dict[int, str], n_folds: int, folds: str = "shipped",
            show: int = 2) -> str:
    """The one-line DataError message for folds that cannot be trained: which, why, which subjects are missing,
    and the option."""
    present = set(subjects)
    which = "shipped folds" if folds == "shipped" and dataset in FOLD_SPECS else "folds"
    reasons = "; ".join(f"fold {k}: {why}" for k, why in list(problems.items())[:show])
    more = "; …" if len(problems) > show else ""
    msg = (f"{dataset}: {len(problems)} of the {n_folds} {which} cannot be trained on the clips present "
           f"({reasons}{more})")
    spec = FOLD_SPECS.get(dataset)
    if spec and folds == "shipped":
        missing = [s for s in spec["subjects"] if s not in present]
        if missing:
            msg += (f"; {len(missing)} of its {len(spec['subjects'])} subjects are missing from the corpus: "
                    f"{_names(missing)}. Complete the corpus, or " + OPTION.format(n=len(present)))
    return msg


def check_fold(dataset: str, subjects: list[str], labels, n_folds: int, fold: int, folds: str = "shipped") -> list[list[str]]:
    """The subject folds, after refusing (DataError) a run on `fold` that cannot be trained (`fold_problems`)."""
    all_folds = subject_folds(dataset, subjects, n_folds, folds)
    if not 0 <= fold < len(all_folds):
        raise ValueError(f"fold {fold} out of range: {dataset} has {len(all_folds)} subject folds")
    problem = fold_problems(dataset, subjects, labels, all_folds).get(fold)
    if problem:
        raise DataError(refusal(dataset, subjects, {fold: problem}, len(all_folds), folds))
    return all_folds


def make_split(
    subjects: list[str], labels: np.ndarray, n_segments: int, *, dataset: str, protocol: str = "subject",
    n_folds: int = 4, fold: int = 0, seed: int = 0, labeled_frac: float = 1.0, folds: str = "shipped",
) -> Split:
    """Split clips (given their subjects and labels) into segment index sets under `protocol` (`folds`:
    which subject folds, see `subject_folds`; a fold that cannot be trained is a DataError)."""
    n = len(subjects)
    rng = np.random.default_rng(seed)
    seg = lambda clips: (np.asarray(clips)[:, None] * n_segments + np.arange(n_segments)).ravel()  # noqa: E731
    if protocol == "subject":
        all_folds = check_fold(dataset, subjects, labels, n_folds, fold, folds)
        test_s, val_s = set(all_folds[fold]), set(all_folds[(fold + 1) % len(all_folds)])
        part = np.array(["test" if s in test_s else "val" if s in val_s else "train" for s in subjects])
        train_clips = np.flatnonzero(part == "train")
        # labeled subset: whole clips, stratified by class
        lab_clips = _stratified_subset(train_clips, labels[train_clips], labeled_frac, rng)
        train = seg(train_clips)
        labeled = np.isin(train // n_segments, lab_clips)
        return Split(train, seg(np.flatnonzero(part == "val")), seg(np.flatnonzero(part == "test")), labeled,
                     sorted(test_s & set(subjects)))
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
