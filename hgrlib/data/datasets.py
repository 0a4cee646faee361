"""One entry point for every loader: index a dataset into ClipRecords, its class names (folds: hgrlib.data.folds)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

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
