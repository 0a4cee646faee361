"""BAUM-1s loader (Zhalehpour, Onder, Akhtar & Erdem 2017, "BAUM-1: A Spontaneous Audio-Visual
Face Database of Affective and Mental States", IEEE Trans. Affective Computing).

Layout (as distributed, and as read by several public preprocessing scripts; see
docs/datasets.md for what is confirmed and what is assumed)::

    BAUM1s_MP4 - All/           <- root (or its parent)
        S001/
            S001_001.mp4
            S001_002.mp4 ...
        ...
        S031/
    Annotations_BAUM1s.xlsx     <- annotation spreadsheet (or a CSV/TSV export of it)

Clip names are ``S<subject:3>_<clip:3>.mp4``; the subject folder is ``S<subject:3>`` (any case).
The annotation sheet has one row per clip with (among others) the subject number, the clip name,
the emotion name and a numeric emotion code. The spontaneous set's codes are
1 anger, 2 boredom, 3 bothered, 4 concentrating, 5 contempt, 6 disgust, 7 fear, 8 happiness,
9 neutral, 10 sadness, 11 surprise, 12 thinking, 13 unsure.

Columns are found by header name when there is a header (a clip column whose header contains
"clip", "video", "file" or "name"; an emotion-name column containing "emotion" or "label"; a code
column containing "code"), else by content (the cell that looks like ``S001_001`` is the clip; the
first label word after it is the emotion name; the first integer 1..13 after it is the code).
A row whose name and code disagree is reported, not guessed. Only the six basic emotions are kept;
rows with the other states are reported as skipped. Annotated clips missing on disk, clips on disk
missing from the annotation, and non-.mp4 files (e.g. subtitle .srt files) are all reported.

Subject folders, clips and the annotation file may be symbolic links (``S001 ->
/datasets/baum1s/S001``): links are followed, and each real folder and file is taken once
(hgrlib.data.walk): a clip linked in under a second name is reported, not indexed twice.

``.xlsx`` needs openpyxl; without it a DataError says to ``pip install openpyxl`` or export the
sheet to CSV.
"""

from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path

from hgrlib.data.records import EMOTIONS6, ClipRecord, DataError, IndexReport
from hgrlib.data.walk import walk

CLIP_RE = re.compile(r"^(s\d{3})_(\d{3})(?:\.mp4)?$", re.IGNORECASE)
SUBJECT_DIR_RE = re.compile(r"^s\d{3}$", re.IGNORECASE)
ANNOTATION_RE = re.compile(r"^annotations?[\s_-]*baum[\s_-]*1s.*\.(csv|tsv|txt|xlsx)$", re.IGNORECASE)
CODES = {
    1: "anger",
    2: "boredom",
    3: "bothered",
    4: "concentrating",
    5: "contempt",
    6: "disgust",
    7: "fear",
    8: "happiness",
    9: "neutral",
    10: "sadness",
    11: "surprise",
    12: "thinking",
    13: "unsure",
}
# label words by prefix (the sheet spells them "Anger"/"Happiness"/"Unsure" ...; tolerate variants)
PREFIXES = (
    ("conc", "concentrating"),
    ("cont", "contempt"),
    ("ang", "anger"),
    ("bor", "boredom"),
    ("bot", "bothered"),
    ("dis", "disgust"),
    ("fea", "fear"),
    ("hap", "happiness"),
    ("neu", "neutral"),
    ("sad", "sadness"),
    ("sur", "surprise"),
    ("thi", "thinking"),
    ("uns", "unsure"),
    ("unc", "unsure"),
)
EXPECTED = (
    "expected subject folders S001 ... S031 holding clips S001_001.mp4 ... and an annotation file "
    "Annotations_BAUM1s.xlsx/.csv (BAUM-1s layout; see docs/datasets.md)"
)


def label_word(cell: str) -> str | None:
    w = cell.strip().lower()
    if not w or not w[0].isalpha():
        return None
    for pre, name in PREFIXES:
        if w.startswith(pre):
            return name
    return None


def _int(cell: str) -> int | None:
    c = cell.strip()
    if re.fullmatch(r"\d+(\.0+)?", c):
        return int(float(c))
    return None


def find_annotation(root: Path) -> Path | None:
    """Annotations_BAUM1s.{csv,tsv,txt,xlsx} in root, up to two levels below it, or in its parent;
    a text export is preferred over the .xlsx."""
    cands = []
    for base, depth in ((root, 2), (root.parent, 0)):
        for dirpath, dirnames, filenames in walk(base):
            level = len(Path(dirpath).relative_to(base).parts)
            if level >= depth:
                dirnames[:] = []
            cands += [Path(dirpath) / f for f in filenames if ANNOTATION_RE.match(f)]
        if cands:
            break
    if not cands:
        return None
    cands.sort(key=lambda p: (p.suffix.lower() == ".xlsx", len(p.parts), str(p)))
    return cands[0]


def read_rows(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, cells) for every row of a .csv/.tsv/.txt or .xlsx annotation file."""
    if path.suffix.lower() == ".xlsx":
        try:
            import openpyxl  # noqa: PLC0415
        except ImportError:
            raise DataError(
                f"{path}: reading .xlsx needs openpyxl: `pip install openpyxl`, or export the sheet "
                f"to CSV (same folder, e.g. Annotations_BAUM1s.csv) and pass it as annotation="
            ) from None
        try:
            wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
            ws = wb.worksheets[0]
            rows = [
                (i, ["" if v is None else (str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)) for v in row])
                for i, row in enumerate(ws.iter_rows(values_only=True), start=1)
            ]
            wb.close()
            return rows
        except Exception as e:
            raise DataError(f"{path}: cannot read spreadsheet ({type(e).__name__}: {e})") from e
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1254", errors="replace")  # Turkish Windows code page
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    delim = max(("\t", ";", ","), key=first.count) if first else ","
    reader = csv.reader(io.StringIO(text), delimiter=delim)
    out = []
    for cells in reader:
        out.append((reader.line_num, cells))
    return out


def _header_columns(cells: list[str]) -> dict | None:
    low = [c.strip().lower() for c in cells]
    if any(CLIP_RE.match(c.strip()) for c in cells):
        return None
    cols = {}
    for i, c in enumerate(low):
        if "code" in c and "code" not in cols:
            cols["code"] = i
        elif ("emotion" in c or "label" in c) and "emotion" not in cols:
            cols["emotion"] = i
        elif any(k in c for k in ("clip", "video", "file", "name")) and "clip" not in cols:
            cols["clip"] = i
    return cols if ("emotion" in cols or "code" in cols) else None


def parse_annotation(path: Path, report: IndexReport) -> tuple[list[tuple[int, str, str]], set[str]]:
    """(line, clip id like 'S001_001', emotion name) for each readable row, and the clip ids of rows
    that name a clip but whose label could not be used; bad rows go to the report."""
    rows = read_rows(path)
    cols = None
    out = []
    bad_clips: set[str] = set()
    for line, cells in rows:
        if not any(c.strip() for c in cells):
            continue
        if cols is None and not out:
            h = _header_columns(cells)
            if h is not None:
                cols = h
                continue
        where = f"{path}:{line}"
        clip_i = cols.get("clip") if cols else None
        if clip_i is None or clip_i >= len(cells) or not CLIP_RE.match(cells[clip_i].strip()):
            clip_i = next((i for i, c in enumerate(cells) if CLIP_RE.match(c.strip())), None)
        if clip_i is None:
            report.skip(where, "annotation row has no clip name like S001_001")
            continue
        m = CLIP_RE.match(cells[clip_i].strip())
        clip = f"{m.group(1).upper()}_{m.group(2)}"
        rest = range(clip_i + 1, len(cells))
        if cols and "emotion" in cols and cols["emotion"] < len(cells):
            name = label_word(cells[cols["emotion"]])
        else:
            name = next((label_word(cells[i]) for i in rest if label_word(cells[i])), None)
        if cols and "code" in cols and cols["code"] < len(cells):
            code = _int(cells[cols["code"]])
        else:
            code = next((_int(cells[i]) for i in rest if _int(cells[i]) is not None), None)
        if code is not None and code not in CODES:
            report.skip(where, f"{clip}: unknown emotion code {code}")
            bad_clips.add(clip)
            continue
        by_code = CODES.get(code) if code is not None else None
        if name and by_code and name != by_code:
            report.skip(where, f"{clip}: emotion name {name!r} disagrees with code {code} ({by_code})")
            bad_clips.add(clip)
            continue
        emotion = name or by_code
        if emotion is None:
            report.skip(where, f"{clip}: no readable emotion name or code")
            bad_clips.add(clip)
            continue
        out.append((line, clip, emotion))
    return out, bad_clips


def index(
    root: str | os.PathLike,
    classes: int = 6,
    annotation: str | os.PathLike | None = None,
) -> tuple[list[ClipRecord], IndexReport]:
    """Index a BAUM-1s root: clips listed in the annotation with one of the six basic emotions."""
    if classes != 6:
        raise ValueError(f"BAUM-1s is used with the six basic emotions; classes must be 6, got {classes!r}")
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: BAUM-1s root folder not found")
    if annotation is None:
        ann = find_annotation(root)
        if ann is None:
            raise DataError(
                f"{root}: no annotation file Annotations_BAUM1s.(xlsx|csv) found in the "
                f"root, below it or beside it; pass annotation=PATH. {EXPECTED}"
            )
    else:
        ann = Path(annotation)
        if not ann.is_file():
            raise DataError(f"{ann}: BAUM-1s annotation file not found")
    report = IndexReport()

    on_disk: dict[str, Path] = {}
    for dirpath, dirnames, filenames in walk(root, report):
        for name in filenames:
            p = Path(dirpath) / name
            if p.resolve() == ann.resolve():
                continue
            m = CLIP_RE.match(name) if p.suffix.lower() == ".mp4" else None
            if p.suffix.lower() != ".mp4":
                report.skip(p, "not an .mp4 clip")
            elif m is None:
                report.skip(p, "name does not match S001_001.mp4")
            else:
                clip = f"{m.group(1).upper()}_{m.group(2)}"
                if SUBJECT_DIR_RE.match(p.parent.name) and p.parent.name.upper() != m.group(1).upper():
                    report.skip(p, f"clip of {m.group(1).upper()} inside folder {p.parent.name}")
                elif clip in on_disk:
                    report.skip(p, f"duplicate of {on_disk[clip]}")
                else:
                    on_disk[clip] = p

    records = []
    rows, annotated = parse_annotation(ann, report)
    used = set()
    for line, clip, emotion in rows:
        where = f"{ann}:{line}"
        if clip in used:
            report.skip(where, f"{clip}: annotated twice (first row used)")
            continue
        used.add(clip)
        path = on_disk.get(clip)
        if path is None:
            report.skip(where, f"{clip}: annotated ({emotion}) but {clip}.mp4 not found under {root}")
            continue
        if emotion not in EMOTIONS6:
            report.skip(path, f"emotion {emotion!r} is not one of the six basic emotions")
            continue
        records.append(
            ClipRecord(
                path=str(path),
                subject=clip.split("_")[0],
                emotion=emotion,
                dataset="baum1s",
                meta={"clip": clip, "annotation": str(ann), "annotation_line": line},
            )
        )
    for clip, p in on_disk.items():
        if clip in annotated - used:
            report.skip(p, "its annotation row could not be used (see the annotation line above)")
        elif clip not in used:
            report.skip(p, "clip not listed in the annotation file")

    records.sort(key=lambda r: (r.subject, r.meta["clip"]))
    report.accepted = len(records)
    if not records:
        found = report.found()
        raise DataError(f"{root}: no usable BAUM-1s clips; {EXPECTED}. {found}")
    return records, report
