"""Builders of tiny fixtures in each dataset's published layout, made of real media files.

Every clip is a real 4-frame 32x32 H.264 video with a 0.1 s AAC track (written once per process with
hgrlib.data.media.write_video and then copied), every audio-only file a real 0.1 s 16-bit wav.
Nothing is downloaded.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import numpy as np

from hgrlib.data.media import write_video, write_wav
from hgrlib.data.records import EMOTIONS8

SR = 16000
_TEMPLATES: dict[str, Path] = {}


def _template(ext: str) -> Path:
    """A real media file with extension ext (.mp4, .avi or .wav), made once per process (removed at its exit);
    any other extension gets the .mp4 bytes."""
    if ext not in _TEMPLATES:
        d = Path(tempfile.mkdtemp(prefix="hgr_fixture_"))
        atexit.register(shutil.rmtree, d, True)  # the templates live as long as the process; nothing left in /tmp
        rng = np.random.default_rng(0)
        audio = (0.1 * np.sin(2 * np.pi * 220 * np.arange(int(0.1 * SR)) / SR)).astype(np.float32)
        path = d / f"template{ext}"
        if ext == ".wav":
            write_wav(path, audio, SR)
        else:
            frames = rng.integers(0, 255, (4, 32, 32, 3), dtype=np.uint8)
            write_video(path, frames, 25, audio, SR)
        _TEMPLATES[ext] = path
    return _TEMPLATES[ext]


def media_file(path: str | Path) -> Path:
    """Write a tiny real media file at path (its kind chosen by the extension)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ext = path.suffix.lower()
    shutil.copyfile(_template(ext if ext in (".wav", ".avi") else ".mp4"), path)
    return path


def text_file(path: str | Path, text: str = "not a clip\n") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _emotion_code(e) -> int:
    return EMOTIONS8.index(e) + 1 if isinstance(e, str) else int(e)


def ravdess_name(modality=1, vocal=1, emotion=1, intensity=1, statement=1, repetition=1, actor=1, ext=None) -> str:
    ext = ext or (".wav" if modality == 3 else ".mp4")
    return "-".join(f"{int(v):02d}" for v in (modality, vocal, _emotion_code(emotion), intensity, statement, repetition, actor)) + ext


def make_ravdess_fixture(
    root: str | Path,
    actors=(1, 2),
    emotions=EMOTIONS8,
    intensities=(1,),
    statements=(1,),
    repetitions=(1,),
    audio_only_actors=(1,),
    strays: bool = False,
) -> Path:
    """RAVDESS layout: root/Actor_XX/01-01-EE-II-SS-RR-AA.mp4 for every combination given
    (emotions as EMOTIONS8 names or 1-based codes; neutral gets intensity 01 only), plus the
    matching 03-01-...wav audio-only files for actors in audio_only_actors.

    strays=True adds files that must be reported, not indexed: README.txt at the root, a song
    (01-02-...), a video-only clip (02-01-...), a badly named file, an unknown emotion code 09, a
    clip whose actor field disagrees with its folder, and an audio-only song.
    """
    root = Path(root)
    for a in actors:
        folder = root / f"Actor_{a:02d}"
        for e in emotions:
            code = _emotion_code(e)
            for i in intensities:
                if code == 1 and i == 2:
                    continue
                for s in statements:
                    for r in repetitions:
                        media_file(folder / ravdess_name(1, 1, code, i, s, r, a))
                        if a in audio_only_actors:
                            media_file(folder / ravdess_name(3, 1, code, i, s, r, a))
    if strays:
        a = actors[0]
        folder = root / f"Actor_{a:02d}"
        text_file(root / "README.txt")
        media_file(folder / ravdess_name(1, 2, 3, 1, 1, 1, a))  # song
        media_file(folder / ravdess_name(3, 2, 3, 1, 1, 1, a))  # audio-only song
        media_file(folder / ravdess_name(2, 1, 3, 1, 1, 1, a))  # video-only
        media_file(folder / "clip_01.mp4")  # bad name
        media_file(folder / "01-01-09-01-01-01-{:02d}.mp4".format(a))  # unknown emotion code
        other = actors[1] if len(actors) > 1 else a + 1
        media_file(folder / ravdess_name(1, 1, 5, 2, 2, 2, other))  # actor field != folder
    return root


# --------------------------------------------------------------------------- eNTERFACE'05

ENTERFACE_EMOTIONS = ("anger", "disgust", "fear", "happiness", "sadness", "surprise")
ENTERFACE_ABBREV = ("an", "di", "fe", "ha", "sa", "su")


def make_enterface_fixture(root: str | Path, sentences=(1, 2)) -> Path:
    """eNTERFACE'05 layout under root/"enterface database"/ with the release's irregularities.

    Regular subjects 1 and 2: subject N/<emotion>/sentence K/sN_xx_K.avi for every emotion and the
    given sentences (subject 2 uses the an/di/... folder abbreviations). Irregular ones:
    * subject 3: file names s_3_xx_K.avi
    * subject 11: every file named s12_xx_K.avi
    * subject 16: surprise sentence 3 named s16_su_3avi.avi; fear sentence 1 one folder deeper
    * 'Subject 23' (capital S): happiness clips directly in the emotion folder, no sentence folders
    * subject 6: six unsegmented whole-session files s6_xx.avi directly in the emotion folders
    Stray: Thumbs.db in a sentence folder, a .txt at the top, a clip whose emotion folder (anger)
    disagrees with its name (s1_di_9.avi), a file with neither emotion folder nor code.
    Expected accepted clips: 6 emotions x len(sentences) x 6 subjects (1, 2, 3, 11, 16, 23) + 1
    (s16_su_3avi).
    """
    base = Path(root) / "enterface database"
    for subj in (1, 2, 3, 11, 16, 23):
        sdir = base / (f"Subject {subj}" if subj == 23 else f"subject {subj}")
        for emo, ab in zip(ENTERFACE_EMOTIONS, ENTERFACE_ABBREV):
            edir = sdir / (ab if subj == 2 else emo)
            for k in sentences:
                name_subj = {3: "_3", 11: "12"}.get(subj, str(subj))
                name = f"s{name_subj}_{ab}_{k}.avi"
                if subj == 23 and emo == "happiness":
                    media_file(edir / name)
                elif subj == 16 and emo == "fear" and k == 1:
                    media_file(edir / f"sentence {k}" / "extra" / name)
                else:
                    media_file(edir / f"sentence {k}" / name)
    media_file(base / "subject 16" / "surprise" / "sentence 3" / "s16_su_3avi.avi")
    for emo, ab in zip(ENTERFACE_EMOTIONS, ENTERFACE_ABBREV):
        media_file(base / "subject 6" / emo / f"s6_{ab}.avi")
    text_file(base / "subject 1" / "anger" / "sentence 1" / "Thumbs.db")
    text_file(base / "readme.txt")
    media_file(base / "subject 1" / "anger" / "sentence 9" / "s1_di_9.avi")
    media_file(base / "subject 1" / "misc" / "clip.avi")
    return Path(root)


# --------------------------------------------------------------------------- BAUM-1s

# (clip, code, name) rows for one subject; 6 = disgust, 7 = fear; row 5 disagrees on purpose
BAUM_ROWS = (
    ("001", 1, "Anger"),
    ("002", 8, "Happiness"),
    ("003", 2, "Boredom"),
    ("004", 9, "Neutral"),
    ("005", 7, "Disgust"),
    ("007", 11, "Surprise"),
    ("008", 10, "Sadness"),
)


def make_baum1s_fixture(root: str | Path, subjects=(1, 2), annotation: str = "csv", header: bool = False) -> Path:
    """BAUM-1s layout: root/"BAUM1s_MP4 - All"/S00N/S00N_00K.mp4 and root/Annotations_BAUM1s.<ext>.

    Per subject, annotated: 001 anger, 002 happiness, 003 boredom, 004 neutral, 005 'Disgust' with
    code 7 (disagreement), 007 surprise (file missing on disk), 008 sadness. On disk also: 006 (not
    annotated) and S00N_001.srt (a subtitle). One unreadable annotation row ("total,,,").
    Header-less CSV columns follow the sheet's order as read by public scripts:
    No, Subject, Gender, Clip, Emotion, Code. annotation: "csv", "tsv" or "xlsx" (a real
    workbook written with openpyxl, numbers as numbers).
    Accepted clips per subject: 001 anger, 002 happiness, 008 sadness.
    """
    root = Path(root)
    clips = root / "BAUM1s_MP4 - All"
    rows = []
    n = 0
    for s in subjects:
        sid = f"S{s:03d}"
        for clip, code, name in BAUM_ROWS:
            n += 1
            rows.append([str(n), str(s), "F" if s % 2 else "M", f"{sid}_{clip}", name, str(code)])
            if clip != "007":
                media_file(clips / sid / f"{sid}_{clip}.mp4")
        media_file(clips / sid / f"{sid}_006.mp4")
        text_file(clips / sid / f"{sid}_001.srt", "1\n00:00:00,000 --> 00:00:01,000\nmerhaba\n")
    rows.append(["total", "", "", "", "", ""])
    if annotation == "xlsx":  # a real workbook, as the dataset ships it
        import openpyxl

        wb = openpyxl.Workbook()
        if header:
            wb.active.append(["No", "Subject", "Gender", "Video Name", "Emotion", "Emotion Code"])
        for r in rows:
            wb.active.append([int(c) if c.isdigit() and i in (0, 1, 5) else c for i, c in enumerate(r)])
        wb.save(root / "Annotations_BAUM1s.xlsx")
        return root
    delim = "\t" if annotation == "tsv" else ","
    lines = []
    if header:
        lines.append(delim.join(["No", "Subject", "Gender", "Video Name", "Emotion", "Emotion Code"]))
    lines += [delim.join(r) for r in rows]
    (root / f"Annotations_BAUM1s.{annotation}").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def link_children(store: Path, root: Path) -> Path:
    """root/<child> -> store/<child> for every child of store: subject folders linked into place, as on
    shared storage (Actor_01 -> /datasets/ravdess/Actor_01)."""
    root.mkdir(parents=True, exist_ok=True)
    for child in sorted(store.iterdir()):
        (root / child.name).symlink_to(child, target_is_directory=child.is_dir())
    return root


def grace_hopper() -> np.ndarray:
    """Matplotlib's sample portrait of Grace Hopper (RGB uint8): a real face that needs no download."""
    from matplotlib import cbook
    from PIL import Image

    with cbook.get_sample_data("grace_hopper.jpg") as fh:
        return np.asarray(Image.open(fh).convert("RGB"))


def random_featureset(n: int = 96, s: int = 2):
    """A FeatureSet of random features (12 subjects, 6 classes; audio shifted by the label so a little is
    learnable) with tiny shapes: audio (n, s, 1, 24, 16), faces (n, s, 3, 16, 16, 3). For training tests
    that need no media."""
    from hgrlib.data.featureset import FeatureSet

    r = np.random.default_rng(0)
    labels = r.integers(0, 6, n)
    audio = r.normal(size=(n, s, 1, 24, 16)) + labels[:, None, None, None, None] * 0.3
    return FeatureSet(
        clip_ids=[f"c{i}" for i in range(n)],
        subjects=[f"{i % 12 + 1:02d}" for i in range(n)],
        labels=labels,
        classes=("anger", "disgust", "fear", "happiness", "sadness", "surprise"),
        audio=audio.astype(np.float16),
        faces=r.integers(0, 256, (n, s, 3, 16, 16, 3), dtype=np.uint8),
        dataset="synthetic",
    )
