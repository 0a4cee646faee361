"""Subject folds, all of them: the folds shipped for RAVDESS, eNTERFACE'05 and BAUM-1s (hgrlib/data/shipped_folds/*.json,
made by `make_subject_folds` from FOLD_SPECS), the folds made from the subjects present (the synthetic
corpus, a CSV manifest, or `--folds present`), and the check that a run's fold can be trained on the clips
on disk.

Which subject folds (`folds`, DataConfig.folds): "shipped" uses a real dataset's shipped folds
(hgrlib/data/shipped_folds/*.json) exactly as published, whatever subset of their subjects is on disk; a run whose
test, validation or training part is then empty, or lacks classes because subjects are missing, is
refused with a DataError naming the missing subjects (`fold_problems`), never trained at chance.
"present" makes folds from the subjects present instead (as for the synthetic corpus and a CSV
manifest, which have no shipped folds).
"""

from __future__ import annotations

import json
import random
from importlib import resources
from typing import Iterable, Mapping

from hgrlib.data.datasets import _check_name, natural_key
from hgrlib.data.records import DataError


def make_subject_folds(
    subjects: Iterable[str],
    n_folds: int,
    seed: int = 0,
    groups: Mapping[str, str] | None = None,
) -> list[list[str]]:
    """Deal subjects into `n_folds` disjoint folds, deterministically.

    Subjects are sorted naturally, shuffled with random.Random(seed), and dealt round-robin; with
    `groups` (subject -> group, e.g. gender) each group is shuffled and dealt in turn with the fold
    pointer carried over, so every fold gets as even a share of each group as possible. Each fold is
    returned sorted.
    """
    subjects = sorted(set(subjects), key=natural_key)
    if n_folds < 2 or n_folds > len(subjects):
        raise ValueError(f"n_folds must be between 2 and the number of subjects ({len(subjects)}), got {n_folds}")
    rng = random.Random(seed)
    if groups is None:
        strata = [subjects]
    else:
        missing = [s for s in subjects if s not in groups]
        if missing:
            raise ValueError(f"no group given for subjects {missing}")
        strata = [[s for s in subjects if groups[s] == g] for g in sorted(set(groups[s] for s in subjects))]
    folds: list[list[str]] = [[] for _ in range(n_folds)]
    ptr = 0
    for stratum in strata:
        stratum = list(stratum)
        rng.shuffle(stratum)
        for s in stratum:
            folds[ptr % n_folds].append(s)
            ptr += 1
    return [sorted(f, key=natural_key) for f in folds]


def _ravdess_gender(actor: str) -> str:
    return "male" if int(actor) % 2 == 1 else "female"


RAVDESS_SUBJECTS = [f"{i:02d}" for i in range(1, 25)]
# subject 6 of the eNTERFACE'05 release is unsegmented (or absent) and excluded by the loader
ENTERFACE_SUBJECTS = [str(i) for i in range(1, 45) if i != 6]
BAUM1S_SUBJECTS = [f"S{i:03d}" for i in range(1, 32)]

FOLD_SPECS: dict[str, dict] = {
    "ravdess": {
        "subjects": RAVDESS_SUBJECTS,
        "n_folds": 6,
        "seed": 0,
        "groups": {a: _ravdess_gender(a) for a in RAVDESS_SUBJECTS},
        "note": "24 actors (ids as ClipRecord.subject: '01'..'24') in 6 folds of 4, each 2 male (odd) "
        "+ 2 female (even); make_subject_folds(subjects, 6, seed=0, groups=gender).",
    },
    "enterface": {
        "subjects": ENTERFACE_SUBJECTS,
        "n_folds": 5,
        "seed": 0,
        "groups": None,
        "note": "43 subjects '1'..'44' without '6' (unsegmented in the release, excluded by the "
        "loader); 5-fold subject-independent cross-validation (folds of 9/9/9/8/8 subjects); "
        "make_subject_folds(subjects, 5, seed=0).",
    },
    "baum1s": {
        "subjects": BAUM1S_SUBJECTS,
        "n_folds": 5,
        "seed": 0,
        "groups": None,
        "note": "31 subjects 'S001'..'S031' in 5 folds (7/6/6/6/6); make_subject_folds(subjects, 5, "
        "seed=0). The subject numbering S001..S031 is assumed contiguous (see docs/datasets.md).",
    },
}


def fold_file_content(name: str) -> dict:
    """The JSON object shipped as hgrlib/data/shipped_folds/<name>.json, recomputed from FOLD_SPECS."""
    _check_name(name, FOLD_SPECS)
    spec = FOLD_SPECS[name]
    folds = make_subject_folds(spec["subjects"], spec["n_folds"], seed=spec["seed"], groups=spec["groups"])
    return {
        "dataset": name,
        "protocol": "subject",
        "n_folds": spec["n_folds"],
        "seed": spec["seed"],
        "folds": folds,
        "note": spec["note"],
    }


def load_fold_file(name: str) -> dict:
    """The shipped fold file for ravdess, enterface or baum1s, as a dict."""
    _check_name(name, FOLD_SPECS)
    text = resources.files("hgrlib").joinpath("data").joinpath("shipped_folds").joinpath(f"{name}.json").read_text(encoding="utf-8")
    return json.loads(text)


def load_folds(name: str) -> list[list[str]]:
    """Subject ids of each shipped fold (same strings as ClipRecord.subject)."""
    return [list(f) for f in load_fold_file(name)["folds"]]


FOLDS = ("shipped", "present")
OPTION = (
    "make folds from the {n} subjects present instead with `./run_all.sh --folds present` "
    "(data.folds=present; HGRLIB_FOLDS=present for hgrlib)"
)


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
        raise DataError(
            f"{dataset}: {len(present)} subject(s) present ({', '.join(present) or 'none'}); "
            f"subject-independent folds need at least 3 (test, validation and training subjects)"
        )
    groups = (FOLD_SPECS.get(dataset) or {}).get("groups")
    if groups and not all(s in groups for s in present):
        groups = None
    return make_subject_folds(present, min(n_folds, len(present)), seed=0, groups={s: groups[s] for s in present} if groups else None)


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


def _unfit(dataset: str, subjects: list[str], problems: dict[int, str], n_folds: int, folds: str, show: int = 2) -> str:
    """The message for folds that cannot be trained: which, why, which subjects are missing, and the option."""
    present = set(subjects)
    which = "shipped folds" if folds == "shipped" and dataset in FOLD_SPECS else "folds"
    reasons = "; ".join(f"fold {k}: {why}" for k, why in list(problems.items())[:show])
    more = "; …" if len(problems) > show else ""
    msg = f"{dataset}: {len(problems)} of the {n_folds} {which} cannot be trained on the clips present ({reasons}{more})"
    spec = FOLD_SPECS.get(dataset)
    if spec and folds == "shipped":
        missing = [s for s in spec["subjects"] if s not in present]
        if missing:
            msg += (
                f"; {len(missing)} of its {len(spec['subjects'])} subjects are missing from the corpus: "
                f"{_names(missing)}. Complete the corpus, or " + OPTION.format(n=len(present))
            )
    return msg


def fold_refusal(
    dataset: str,
    subjects: list[str],
    labels,
    all_folds: list[list[str]],
    used: Iterable[int],
    classes: Iterable[str] = (),
    folds: str = "shipped",
) -> str:
    """Why runs on the folds `used` (indices into `all_folds`) cannot be trained on the clips present (subjects
    and labels per clip), as the one-line message of their refusal; "" when they can. The first problem found
    of: a fold out of range, a class of `classes` without any clip, folds that `fold_problems` finds."""
    used = sorted(set(used))
    n = len(all_folds)
    outside = [k for k in used if not 0 <= k < n]
    if outside:
        return f"{dataset}: fold {outside[0]} out of range: there are {n} subject folds (0 to {n - 1})"
    classes = list(classes)
    empty = [c for c in classes if c not in set(labels)]
    if empty:
        return f"{dataset}: no clips of class {', '.join(empty)} (the {len(classes)} classes: {', '.join(classes)})"
    problems = fold_problems(dataset, subjects, labels, all_folds)
    unfit = {k: why for k, why in problems.items() if k in used}
    return _unfit(dataset, subjects, unfit, n, folds) if unfit else ""


def checked_folds(
    dataset: str, subjects: list[str], labels, n_folds: int, used, folds: str = "shipped", classes: Iterable[str] = ()
) -> list[list[str]]:
    """The subject folds, after refusing (DataError, `fold_refusal`) runs on the folds `used` that cannot be
    trained; `used` lists fold indices, or is a function of the number of folds that lists them."""
    all_folds = subject_folds(dataset, subjects, n_folds, folds)
    why = fold_refusal(dataset, subjects, labels, all_folds, used(len(all_folds)) if callable(used) else used, classes, folds)
    if why:
        raise DataError(why)
    return all_folds
