"""Generic CSV manifest loader, for any corpus not covered by a dedicated loader.

The CSV has a header with columns ``path,subject,emotion`` and optionally ``audio_path``; other
columns are kept in ``meta``. Relative paths are resolved against the CSV's folder. Emotions must be
names from EMOTIONS6 (classes=6) or EMOTIONS8 (classes=8), any case; a few common spellings
(angry, happy, sad, fearful, disgusted, surprised) are accepted. Rows with an unknown emotion, a
missing file, an empty field or the wrong number of cells are reported with their CSV line number.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from hgrlib.data.records import EMOTIONS6, EMOTIONS8, ClipRecord, DataError, IndexReport

REQUIRED = ("path", "subject", "emotion")
ALIASES = {
    "angry": "anger",
    "happy": "happiness",
    "sad": "sadness",
    "fearful": "fear",
    "disgusted": "disgust",
    "surprised": "surprise",
}


def index(
    root: str | os.PathLike,
    classes: int = 6,
    dataset_name: str = "manifest",
) -> tuple[list[ClipRecord], IndexReport]:
    """Index a manifest CSV (root is the CSV file, or a folder holding manifest.csv)."""
    if classes == 6:
        keep = EMOTIONS6
    elif classes == 8:
        keep = EMOTIONS8
    else:
        raise ValueError(f"classes must be 6 or 8, got {classes!r}")
    path = Path(root)
    if path.is_dir():
        path = path / "manifest.csv"
    if not path.is_file():
        raise DataError(f"{path}: manifest CSV not found")
    base = path.parent
    report = IndexReport()
    records = []
    seen: dict[str, int] = {}
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise DataError(f"{path}: empty manifest; expected a header row path,subject,emotion[,audio_path]")
        header = [h.strip().lower() for h in header]
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise DataError(
                f"{path}: line 1: missing column(s) {', '.join(missing)}; expected a header "
                f"path,subject,emotion[,audio_path], found {','.join(header)}"
            )
        col = {h: i for i, h in enumerate(header)}
        for cells in reader:
            line = reader.line_num
            where = f"{path}:{line}"
            if not any(c.strip() for c in cells):
                continue
            if len(cells) != len(header):
                report.skip(where, f"line {line}: {len(cells)} cells, header has {len(header)}")
                continue
            row = {h: cells[i].strip() for h, i in col.items()}
            empty = [c for c in REQUIRED if not row[c]]
            if empty:
                report.skip(where, f"line {line}: empty {', '.join(empty)}")
                continue
            emo = ALIASES.get(row["emotion"].lower(), row["emotion"].lower())
            if emo not in EMOTIONS8 and emo not in EMOTIONS6:
                report.skip(where, f"line {line}: unknown emotion {row['emotion']!r} (valid: {', '.join(keep)})")
                continue
            if emo not in keep:
                report.skip(where, f"line {line}: class not used with classes={classes}")
                continue
            clip = Path(row["path"])
            clip = clip if clip.is_absolute() else base / clip
            if not clip.is_file():
                report.skip(where, f"line {line}: file not found: {clip}")
                continue
            audio = None
            if row.get("audio_path"):
                audio = Path(row["audio_path"])
                audio = audio if audio.is_absolute() else base / audio
                if not audio.is_file():
                    report.skip(where, f"line {line}: audio file not found: {audio}")
                    continue
            key = str(clip.resolve())
            if key in seen:
                report.skip(where, f"line {line}: same file as line {seen[key]}")
                continue
            seen[key] = line
            meta = {h: v for h, v in row.items() if h not in REQUIRED and h != "audio_path"}
            meta["manifest_line"] = line
            records.append(
                ClipRecord(
                    path=str(clip),
                    subject=row["subject"],
                    emotion=emo,
                    dataset=dataset_name,
                    audio_path=str(audio) if audio is not None else None,
                    meta=meta,
                )
            )
    records.sort(key=lambda r: (r.subject, r.path))
    report.accepted = len(records)
    if not records:
        raise DataError(
            f"{path}: no usable rows; expected a CSV with header path,subject,emotion"
            f"[,audio_path] and rows naming existing files. {report.summary()}"
        )
    return records, report
