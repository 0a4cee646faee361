"""One entry point for every loader, and the subject-independent folds shipped in hgrlib/splits/."""

from __future__ import annotations

import json
import random
from importlib import resources
from pathlib import Path
from typing import Callable, Iterable, Mapping

from hgrlib.data import baum1s, enterface, manifest, ravdess
from hgrlib.data.records import EMOTIONS6, EMOTIONS8, ClipRecord, IndexReport

Loader = Callable[..., "tuple[list[ClipRecord], IndexReport]"]


SYNTHETIC_METADATA = ("corpus.json", "factors.csv")  # the generator's own files beside the clips


def _synthetic(root, classes: int = 6, **options):
    # the synthetic corpus is written in RAVDESS layout with the paper's six emotions only
    records, report = ravdess.index(root, classes=6, dataset_name="synthetic", **options)
    report.skipped = [(p, r) for p, r in report.skipped if Path(p).name not in SYNTHETIC_METADATA]
    return records, report


LOADERS: dict[str, Loader] = {
    "ravdess": ravdess.index,
    "enterface": enterface.index,
    "baum1s": baum1s.index,
    "manifest": manifest.index,
    "synthetic": _synthetic,
}


def _check_name(name: str, valid: Iterable[str]) -> None:
    valid = list(valid)
    if name not in valid:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(valid)}")


def index_dataset(name: str, root: str, classes: int = 6, **options) -> tuple[list[ClipRecord], IndexReport]:
    """Index `root` with the loader for `name` (ravdess, enterface, baum1s, manifest, synthetic)."""
    _check_name(name, LOADERS)
    return LOADERS[name](root, classes=classes, **options)


def classes_for(name: str, classes: int = 6) -> tuple[str, ...]:
    """The class names (in class-index order) a dataset is used with: EMOTIONS6 or EMOTIONS8."""
    _check_name(name, LOADERS)
    if classes == 8 and name in ("ravdess", "manifest"):
        return EMOTIONS8
    if classes == 6:
        return EMOTIONS6
    raise ValueError(f"{name} is used with 6 classes; 8 is only available for ravdess and manifest")


# --------------------------------------------------------------------------- subject folds

def natural_key(s: str):
    """Sort '2' before '10' and 'S002' before 'S010'."""
    import re

    return [(0, int(t)) if t.isdigit() else (1, t) for t in re.split(r"(\d+)", s) if t]


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
        "subjects": RAVDESS_SUBJECTS, "n_folds": 6, "seed": 0,
        "groups": {a: _ravdess_gender(a) for a in RAVDESS_SUBJECTS},
        "note": "24 actors (ids as ClipRecord.subject: '01'..'24') in 6 folds of 4, each 2 male (odd) "
                "+ 2 female (even); make_subject_folds(subjects, 6, seed=0, groups=gender).",
    },
    "enterface": {
        "subjects": ENTERFACE_SUBJECTS, "n_folds": 5, "seed": 0, "groups": None,
        "note": "43 subjects '1'..'44' without '6' (unsegmented in the release, excluded by the "
                "loader); 5-fold subject-independent cross-validation (folds of 9/9/9/8/8 subjects); "
                "make_subject_folds(subjects, 5, seed=0).",
    },
    "baum1s": {
        "subjects": BAUM1S_SUBJECTS, "n_folds": 5, "seed": 0, "groups": None,
        "note": "31 subjects 'S001'..'S031' in 5 folds (7/6/6/6/6); make_subject_folds(subjects, 5, "
                "seed=0). The subject numbering S001..S031 is assumed contiguous (see docs/datasets.md).",
    },
}


def fold_file_content(name: str) -> dict:
    """The JSON object shipped as hgrlib/splits/<name>.json, recomputed from FOLD_SPECS."""
    _check_name(name, FOLD_SPECS)
    spec = FOLD_SPECS[name]
    folds = make_subject_folds(spec["subjects"], spec["n_folds"], seed=spec["seed"], groups=spec["groups"])
    return {
        "dataset": name, "protocol": "subject", "n_folds": spec["n_folds"], "seed": spec["seed"],
        "folds": folds, "note": spec["note"],
    }


def write_fold_files(out_dir) -> None:
    """Regenerate hgrlib/splits/*.json (run once; the files are committed)."""
    from pathlib import Path

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in FOLD_SPECS:
        d = fold_file_content(name)
        folds = ",\n".join("    " + json.dumps(f) for f in d["folds"])
        head = {k: v for k, v in d.items() if k not in ("folds", "note")}
        lines = [f'  "{k}": {json.dumps(v)},' for k, v in head.items()]
        text = "{\n" + "\n".join(lines) + f'\n  "folds": [\n{folds}\n  ],\n  "note": {json.dumps(d["note"])}\n}}\n'
        assert json.loads(text) == d
        (out / f"{name}.json").write_text(text)


def load_fold_file(name: str) -> dict:
    """The shipped fold file for ravdess, enterface or baum1s, as a dict."""
    _check_name(name, FOLD_SPECS)
    text = resources.files("hgrlib").joinpath("splits").joinpath(f"{name}.json").read_text(encoding="utf-8")
    return json.loads(text)


def load_folds(name: str) -> list[list[str]]:
    """Subject ids of each shipped fold (same strings as ClipRecord.subject)."""
    return [list(f) for f in load_fold_file(name)["folds"]]
