"""RAVDESS loader (Livingstone & Russo 2018, Zenodo record 1188976).

Published layout: one folder per actor, ``Actor_01`` ... ``Actor_24``, each holding files named
``MM-VV-EE-II-SS-RR-AA.ext`` where

* MM modality: 01 full audio-visual (.mp4), 02 video-only (.mp4), 03 audio-only (.wav)
* VV vocal channel: 01 speech, 02 song
* EE emotion: 01 neutral, 02 calm, 03 happy, 04 sad, 05 angry, 06 fearful, 07 disgust, 08 surprised
  (mapped onto ``EMOTIONS8`` names, which are in this same code order)
* II intensity: 01 normal, 02 strong (there is no strong neutral)
* SS statement: 01 "Kids are talking by the door", 02 "Dogs are sitting by the door"
* RR repetition: 01, 02
* AA actor: 01..24, odd numbers male, even female

The video zips (``Video_Speech_Actor_XX.zip``) and the audio zip (``Audio_Speech_Actors_01-24.zip``)
both unpack to ``Actor_XX/`` folders; users often unzip them into one root, so a matching audio-only
``03-01-EE-II-SS-RR-AA.wav`` found anywhere under the root becomes the record's ``audio_path``.

Records: the full audio-visual speech clips ``01-01-*.mp4``. Everything else under the root is
reported in the IndexReport with a reason (video-only clips, songs, stray files, bad names, unknown
codes, actor field disagreeing with the ``Actor_XX`` folder, duplicates, audio files with no clip).
The project's synthetic corpus is written in this same layout and indexed with
``dataset_name="synthetic"``. Folders and files may be symbolic links (``Actor_01 ->
/datasets/ravdess/Actor_01``): they are followed, and each real folder and file is taken once
(hgrlib.data.walk): a clip linked in under a second name or actor is reported, not indexed twice.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from hgrlib.data.records import EMOTIONS6, EMOTIONS8, ClipRecord, DataError, IndexReport
from hgrlib.data.walk import walk_files

NAME_RE = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})\.([A-Za-z0-9]+)$")
ACTOR_DIR_RE = re.compile(r"^Actor_(\d{2})$")
STATEMENTS = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}
EXPECTED = (
    "expected Actor_01 ... Actor_24 folders holding full audio-visual speech clips named "
    "01-01-EE-II-SS-RR-AA.mp4 (RAVDESS layout; see docs/datasets.md)"
)


def _check_classes(classes: int) -> tuple[str, ...]:
    if classes == 6:
        return EMOTIONS6
    if classes == 8:
        return EMOTIONS8
    raise ValueError(f"classes must be 6 or 8 for RAVDESS, got {classes!r}")


def parse_name(name: str) -> dict | None:
    """The seven fields of a RAVDESS file name as two-digit strings plus 'ext'; None if the name does not fit."""
    m = NAME_RE.match(name)
    if not m:
        return None
    keys = ("modality", "vocal_channel", "emotion_code", "intensity", "statement", "repetition", "actor")
    d = dict(zip(keys, m.groups()[:7]))
    d["ext"] = m.group(8).lower()
    return d


def _code_problem(f: dict) -> str | None:
    checks = [
        ("modality", ("01", "02", "03")),
        ("vocal_channel", ("01", "02")),
        ("emotion_code", tuple(f"{i:02d}" for i in range(1, 9))),
        ("intensity", ("01", "02")),
        ("statement", ("01", "02")),
        ("repetition", ("01", "02")),
        ("actor", tuple(f"{i:02d}" for i in range(1, 25))),
    ]
    for key, ok in checks:
        if f[key] not in ok:
            return f"unknown {key.replace('_code', '')} code {f[key]!r} (valid: {', '.join(ok)})"
    if f["emotion_code"] == "01" and f["intensity"] == "02":
        return "unknown combination: RAVDESS has no strong-intensity neutral"
    want = "wav" if f["modality"] == "03" else "mp4"
    if f["ext"] != want:
        return f"modality {f['modality']} files are .{want}, this one is .{f['ext']}"
    return None


def index(
    root: str | os.PathLike,
    classes: int = 6,
    dataset_name: str = "ravdess",
    pair_audio: bool = True,
) -> tuple[list[ClipRecord], IndexReport]:
    """Index a RAVDESS (or RAVDESS-layout synthetic) root into clip records.

    classes=6 keeps the paper's six emotions (neutral and calm reported as skipped), classes=8 keeps
    all eight. pair_audio=False ignores the audio-only .wav files (the mp4's own audio track is used).
    """
    keep = _check_classes(classes)
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: RAVDESS root folder not found")
    report = IndexReport()
    clips: dict[tuple, tuple[Path, dict]] = {}
    audio: dict[tuple, Path] = {}

    for path in walk_files(root, report):
        rel = path.relative_to(root)
        f = parse_name(path.name)
        if f is None:
            report.skip(path, "name does not match RAVDESS MM-VV-EE-II-SS-RR-AA.ext")
            continue
        problem = _code_problem(f)
        if problem:
            report.skip(path, problem)
            continue
        folder = ACTOR_DIR_RE.match(path.parent.name)
        if folder is None:
            report.skip(path, f"not inside an Actor_XX folder (found in {rel.parent.as_posix() or '.'})")
            continue
        if folder.group(1) != f["actor"]:
            report.skip(path, f"actor field {f['actor']} disagrees with folder {path.parent.name}")
            continue
        if f["vocal_channel"] == "02":
            report.skip(path, "song (vocal channel 02); only speech clips are used")
            continue
        key = (f["emotion_code"], f["intensity"], f["statement"], f["repetition"], f["actor"])
        if f["modality"] == "02":
            report.skip(path, "video-only clip (modality 02); the full audio-visual 01-01 clip is used")
            continue
        if f["modality"] == "03":
            if not pair_audio:
                report.skip(path, "audio-only file ignored (pair_audio=False)")
            elif key in audio:
                report.skip(path, f"duplicate of {audio[key]}")
            else:
                audio[key] = path
            continue
        if key in clips:
            report.skip(path, f"duplicate of {clips[key][0]}")
            continue
        clips[key] = (path, f)

    records = []
    used_audio = set()
    for key, (path, f) in clips.items():
        emotion = EMOTIONS8[int(f["emotion_code"]) - 1]
        wav = audio.get(key)
        if emotion not in keep:
            report.skip(path, f"class not used with classes={classes}")
            continue
        if wav is not None:
            used_audio.add(key)
        meta = {k: f[k] for k in ("modality", "vocal_channel", "emotion_code", "intensity", "statement", "repetition", "actor")}
        meta["gender"] = "male" if int(f["actor"]) % 2 == 1 else "female"
        meta["intensity_name"] = "normal" if f["intensity"] == "01" else "strong"
        meta["statement_text"] = STATEMENTS[f["statement"]]
        records.append(
            ClipRecord(
                path=str(path),
                subject=f["actor"],
                emotion=emotion,
                dataset=dataset_name,
                audio_path=str(wav) if wav is not None else None,
                meta=meta,
            )
        )
    for key, wav in audio.items():
        if key in used_audio:
            continue
        emotion = EMOTIONS8[int(key[0]) - 1]
        if emotion not in keep:
            report.skip(wav, f"class not used with classes={classes}")
        else:
            report.skip(wav, "audio-only file with no matching full audio-visual 01-01 clip")

    records.sort(key=lambda r: (r.subject, Path(r.path).name, r.path))
    report.accepted = len(records)
    if not records:
        found = report.found()
        raise DataError(f"{root}: no usable RAVDESS clips; {EXPECTED}. {found}")
    return records, report
