"""Loaders on tiny fixtures in each dataset's published layout (real media files, nothing downloaded)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from fixtures import (
    link_children,
    make_baum1s_fixture,
    make_enterface_fixture,
    make_ravdess_fixture,
    media_file,
    ravdess_name,
    text_file,
)

from hgrlib.data import baum1s, datasets, enterface, folds, manifest, ravdess
from hgrlib.data.media import read_audio, video_info
from hgrlib.data.records import EMOTIONS6, EMOTIONS8, DataError


def reasons(report) -> dict[str, str]:
    return {Path(p).name: r for p, r in report.skipped}


# --------------------------------------------------------------------------- RAVDESS


def test_ravdess_fields_pairing_and_order(tmp_path):
    make_ravdess_fixture(tmp_path, actors=(1, 2), intensities=(1, 2), statements=(1, 2), repetitions=(1,))
    recs, rep = ravdess.index(tmp_path, classes=8)
    # 8 emotions x 2 intensities (neutral only normal) x 2 statements = 30 per actor
    assert len(recs) == rep.accepted == 60
    assert [r.subject for r in recs] == ["01"] * 30 + ["02"] * 30
    assert recs == sorted(recs, key=lambda r: (r.subject, Path(r.path).name))
    r = next(r for r in recs if Path(r.path).name == "01-01-06-02-01-01-02.mp4")
    assert (r.subject, r.emotion, r.dataset) == ("02", "fear", "ravdess")
    assert r.meta == {
        "modality": "01",
        "vocal_channel": "01",
        "emotion_code": "06",
        "intensity": "02",
        "statement": "01",
        "repetition": "01",
        "actor": "02",
        "gender": "female",
        "intensity_name": "strong",
        "statement_text": "Kids are talking by the door",
    }
    assert r.audio_path is None  # actor 2 has no audio-only files: the mp4's own track is used
    r1 = next(r for r in recs if Path(r.path).name == "01-01-03-01-02-01-01.mp4")
    assert r1.emotion == "happiness" and r1.meta["gender"] == "male"
    assert Path(r1.audio_path).name == "03-01-03-01-02-01-01.wav"
    assert Path(r1.audio_path).parent == Path(r1.path).parent
    # the media are real
    assert video_info(r1.path)[0] == 4 and read_audio(r1.audio_path).size > 0
    assert {r.emotion for r in recs} == set(EMOTIONS8)
    assert rep.skipped == []


def test_ravdess_six_classes_reports_neutral_and_calm(tmp_path):
    make_ravdess_fixture(tmp_path, actors=(1, 2))
    recs, rep = ravdess.index(tmp_path, classes=6)
    assert len(recs) == 12 and {r.emotion for r in recs} == set(EMOTIONS6)
    for name in ("01-01-01-01-01-01-01.mp4", "01-01-02-01-01-01-02.mp4", "03-01-02-01-01-01-01.wav"):
        assert reasons(rep)[name] == "class not used with classes=6"
    with pytest.raises(ValueError):
        ravdess.index(tmp_path, classes=7)


def test_ravdess_strays_are_reported(tmp_path):
    make_ravdess_fixture(tmp_path, actors=(1, 2), strays=True)
    recs, rep = ravdess.index(tmp_path, classes=8)
    assert len(recs) == 16
    why = reasons(rep)
    assert "name does not match" in why["README.txt"]
    assert "name does not match" in why["clip_01.mp4"]
    assert why["01-02-03-01-01-01-01.mp4"].startswith("song")
    assert why["03-02-03-01-01-01-01.wav"].startswith("song")
    assert why["02-01-03-01-01-01-01.mp4"].startswith("video-only")
    assert "unknown emotion code '09'" in why["01-01-09-01-01-01-01.mp4"]
    assert why["01-01-05-02-02-02-02.mp4"] == "actor field 02 disagrees with folder Actor_01"
    assert len(rep.skipped) == 7
    assert "7 files not used" in rep.summary()


def test_ravdess_audio_unzipped_in_separate_tree_and_unmatched_audio(tmp_path):
    # videos under video/Actor_01, audio under audio/Actor_01: pairing works across the root
    make_ravdess_fixture(tmp_path / "video", actors=(1,), emotions=("anger", "fear"), audio_only_actors=())
    media_file(tmp_path / "audio" / "Actor_01" / ravdess_name(3, 1, "anger", 1, 1, 1, 1))
    media_file(tmp_path / "audio" / "Actor_01" / ravdess_name(3, 1, "sadness", 1, 1, 1, 1))
    recs, rep = ravdess.index(tmp_path)
    by = {r.emotion: r for r in recs}
    assert Path(by["anger"].audio_path).parent.parent.name == "audio"
    assert by["fear"].audio_path is None
    assert "no matching full audio-visual" in reasons(rep)["03-01-04-01-01-01-01.wav"]
    recs2, _ = ravdess.index(tmp_path, pair_audio=False)
    assert all(r.audio_path is None for r in recs2)


def test_ravdess_other_problems(tmp_path):
    make_ravdess_fixture(tmp_path, actors=(3,), emotions=("anger",), audio_only_actors=())
    media_file(tmp_path / "loose" / ravdess_name(1, 1, "fear", 1, 1, 1, 3))  # not in Actor_XX
    media_file(tmp_path / "Actor_03" / "01-01-01-02-01-01-03.mp4")  # strong neutral does not exist
    media_file(tmp_path / "Actor_03" / "01-01-05-01-01-01-03.MP4.bak")
    media_file(tmp_path / "Actor_03" / "01-01-05-01-01-01-25.mp4")
    media_file(tmp_path / "Actor_03" / "01-01-05-01-01-01-03.wav")  # modality 01 must be .mp4
    recs, rep = ravdess.index(tmp_path, classes=8, dataset_name="synthetic")
    assert len(recs) == 1 and recs[0].dataset == "synthetic" and recs[0].meta["gender"] == "male"
    why = {p: r for p, r in rep.skipped}
    assert "not inside an Actor_XX folder" in why[str(tmp_path / "loose" / "01-01-06-01-01-01-03.mp4")]
    w = reasons(rep)
    assert "no strong-intensity neutral" in w["01-01-01-02-01-01-03.mp4"]
    assert "name does not match" in w["01-01-05-01-01-01-03.MP4.bak"]
    assert "unknown actor code '25'" in w["01-01-05-01-01-01-25.mp4"]
    assert ".mp4" in w["01-01-05-01-01-01-03.wav"]


def test_ravdess_errors(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match=str(missing)):
        ravdess.index(missing)
    text_file(tmp_path / "empty" / "README.txt")
    with pytest.raises(DataError, match="Actor_01"):
        ravdess.index(tmp_path / "empty")
    # only neutral/calm clips with classes=6: no usable clip
    make_ravdess_fixture(tmp_path / "nc", actors=(1,), emotions=("neutral", "calm"))
    with pytest.raises(DataError, match="no usable RAVDESS clips"):
        ravdess.index(tmp_path / "nc", classes=6)


# --------------------------------------------------------------------------- eNTERFACE'05


def test_enterface_layout_and_irregularities(tmp_path):
    make_enterface_fixture(tmp_path, sentences=(1, 2))
    recs, rep = enterface.index(tmp_path)  # the parent of 'enterface database' is accepted
    assert len(recs) == rep.accepted == 6 * 2 * 6 + 1
    assert {r.subject for r in recs} == {"1", "2", "3", "11", "16", "23"}
    assert {r.emotion for r in recs} == set(EMOTIONS6)
    assert all(r.dataset == "enterface" and r.audio_path is None for r in recs)
    keys = [(int(r.subject), r.emotion, r.meta["sentence"]) for r in recs]
    assert keys == sorted(keys)
    by_name = {Path(r.path).name: r for r in recs}
    # subject 11's files are all named s12_*: the folder wins
    r = by_name["s12_fe_2.avi"]
    assert (r.subject, r.emotion, r.meta["sentence"], r.meta["file_subject"]) == ("11", "fear", 2, "12")
    assert "folder says 11" in r.meta["irregular"][0]
    assert by_name["s_3_ha_1.avi"].subject == "3"
    r = by_name["s16_su_3avi.avi"]
    assert (r.subject, r.emotion, r.meta["sentence"]) == ("16", "surprise", 3)
    # subject 2 uses an/di/... folders
    assert by_name["s2_di_1.avi"].emotion == "disgust" and by_name["s2_di_1.avi"].meta["folder_emotion"] == "disgust"
    # subject 16 fear sentence 1 sits one folder deeper
    assert by_name["s16_fe_1.avi"].meta["sentence"] == 1
    # 'Subject 23' happiness: no sentence folders
    r = by_name["s23_ha_2.avi"]
    assert (r.subject, r.emotion, r.meta["sentence"]) == ("23", "happiness", 2)
    assert "no 'sentence K' folder" in r.meta["irregular"]
    assert by_name["s1_an_1.avi"].meta["irregular"] == []
    why = reasons(rep)
    for ab in ("an", "di", "fe", "ha", "sa", "su"):
        assert "subject 6 is unsegmented" in why[f"s6_{ab}.avi"]
    assert why["Thumbs.db"] == "not an .avi clip"
    assert why["readme.txt"] == "not inside a 'subject N' folder"
    assert why["s1_di_9.avi"] == "emotion folder says anger but file name says disgust"
    assert "no emotion folder" in why["clip.avi"]
    assert len(rep.skipped) == 10


def test_enterface_options_and_errors(tmp_path):
    make_enterface_fixture(tmp_path, sentences=(1,))
    base = tmp_path / "enterface database"
    recs, _ = enterface.index(base, exclude_subjects=())
    assert {r.subject for r in recs if r.subject == "6"} == {"6"}
    assert sum(r.subject == "6" for r in recs) == 6
    recs, rep = enterface.index(base, exclude_subjects=("6", "23"))
    assert "23" not in {r.subject for r in recs}
    assert any("subject 23 excluded" in r for _, r in rep.skipped)
    with pytest.raises(ValueError, match="six basic"):
        enterface.index(base, classes=8)
    with pytest.raises(DataError, match=str(tmp_path / "nope")):
        enterface.index(tmp_path / "nope")
    text_file(tmp_path / "other" / "a.txt")
    with pytest.raises(DataError, match="subject N/<emotion>/sentence K"):
        enterface.index(tmp_path / "other")


# --------------------------------------------------------------------------- BAUM-1s


@pytest.mark.parametrize("annotation,header", [("csv", False), ("csv", True), ("tsv", True)])
def test_baum1s_annotation_parsing(tmp_path, annotation, header):
    make_baum1s_fixture(tmp_path, subjects=(1, 2), annotation=annotation, header=header)
    recs, rep = baum1s.index(tmp_path)
    assert [(r.subject, r.meta["clip"], r.emotion) for r in recs] == [
        ("S001", "S001_001", "anger"),
        ("S001", "S001_002", "happiness"),
        ("S001", "S001_008", "sadness"),
        ("S002", "S002_001", "anger"),
        ("S002", "S002_002", "happiness"),
        ("S002", "S002_008", "sadness"),
    ]
    assert all(r.dataset == "baum1s" and Path(r.path).is_file() for r in recs)
    assert Path(recs[0].path).parent.name == "S001"
    why = reasons(rep)
    assert why["S001_003.mp4"] == "emotion 'boredom' is not one of the six basic emotions"
    assert why["S002_004.mp4"] == "emotion 'neutral' is not one of the six basic emotions"
    assert why["S001_006.mp4"] == "clip not listed in the annotation file"
    assert "could not be used" in why["S001_005.mp4"]
    assert why["S001_001.srt"] == "not an .mp4 clip"
    ann = f"Annotations_BAUM1s.{annotation}"
    rows = [r for p, r in rep.skipped if Path(p.rsplit(":", 1)[0]).name == ann]
    assert any("S001_005: emotion name 'disgust' disagrees with code 7 (fear)" in r for r in rows)
    assert any("S002_007: annotated (surprise) but S002_007.mp4 not found" in r for r in rows)
    assert any("no clip name" in r for r in rows)
    line = 6 + int(header)  # S001_007 is the 6th data row
    assert f"{tmp_path / ann}:{line}" in [p for p, _ in rep.skipped]


def test_baum1s_annotation_option_and_errors(tmp_path):
    make_baum1s_fixture(tmp_path, subjects=(3,))
    clips = tmp_path / "BAUM1s_MP4 - All"
    recs, _ = baum1s.index(clips)  # annotation found beside the clip folder
    assert {r.subject for r in recs} == {"S003"}
    moved = tmp_path / "labels.csv"
    (tmp_path / "Annotations_BAUM1s.csv").rename(moved)
    with pytest.raises(DataError, match="annotation"):
        baum1s.index(clips)
    recs, _ = baum1s.index(clips, annotation=moved)
    assert len(recs) == 3
    with pytest.raises(DataError, match=str(tmp_path / "missing.csv")):
        baum1s.index(clips, annotation=tmp_path / "missing.csv")
    with pytest.raises(DataError, match=str(tmp_path / "nope")):
        baum1s.index(tmp_path / "nope")
    with pytest.raises(ValueError):
        baum1s.index(clips, classes=8, annotation=moved)


@pytest.mark.parametrize("header", [False, True])
def test_baum1s_reads_the_xlsx_sheet_like_its_csv_export(tmp_path, header):
    make_baum1s_fixture(tmp_path / "x", subjects=(1, 2), annotation="xlsx", header=header)
    make_baum1s_fixture(tmp_path / "c", subjects=(1, 2), annotation="csv", header=header)
    from_xlsx, _ = baum1s.index(tmp_path / "x")
    from_csv, _ = baum1s.index(tmp_path / "c")
    key = lambda recs: [(r.subject, Path(r.path).name, r.emotion) for r in recs]  # noqa: E731
    assert key(from_xlsx) == key(from_csv) and len(from_xlsx) == 6


def test_baum1s_xlsx_without_openpyxl_says_what_to_do(tmp_path, monkeypatch):
    import sys

    make_baum1s_fixture(tmp_path, subjects=(1,), annotation="xlsx")
    monkeypatch.setitem(sys.modules, "openpyxl", None)  # as if it were not installed
    with pytest.raises(DataError, match="pip install openpyxl") as e:
        baum1s.index(tmp_path)
    assert "CSV" in str(e.value) and "Annotations_BAUM1s.xlsx" in str(e.value)


def test_baum1s_prefers_csv_export_over_xlsx(tmp_path):
    make_baum1s_fixture(tmp_path, subjects=(1,))
    (tmp_path / "Annotations_BAUM1s.xlsx").write_bytes(b"PK placeholder")
    recs, _ = baum1s.index(tmp_path)
    assert len(recs) == 3


# --------------------------------------------------------------------------- manifest


def test_manifest_relative_paths_and_errors(tmp_path):
    media_file(tmp_path / "clips" / "a.mp4")
    media_file(tmp_path / "clips" / "b.avi")
    media_file(tmp_path / "clips" / "b.wav")
    media_file(tmp_path / "clips" / "c.mp4")
    absolute = media_file(tmp_path / "elsewhere" / "d.mp4")
    csv_path = tmp_path / "lists" / "m.csv"
    text_file(
        csv_path,
        "\n".join(
            [
                "path,subject,emotion,audio_path,session",
                "../clips/a.mp4,s1,Anger,,x",  # 2 ok, relative to the CSV's folder
                "../clips/b.avi,s2,happy,../clips/b.wav,y",  # 3 ok, alias + audio
                "../clips/c.mp4,s1,boredom,,",  # 4 unknown emotion
                "../clips/missing.mp4,s1,fear,,",  # 5 missing file
                "../clips/c.mp4,s1,neutral,,",  # 6 not used with 6 classes
                "../clips/c.mp4,,fear,,",  # 7 empty subject
                "../clips/c.mp4,s1",  # 8 short row
                f"{absolute},s3,sadness,,",  # 9 absolute path
                "../clips/a.mp4,s1,anger,,",  # 10 same file again
                "../clips/c.mp4,s1,fear,../clips/none.wav,",  # 11 missing audio
            ]
        )
        + "\n",
    )
    recs, rep = manifest.index(csv_path)
    assert [(r.subject, r.emotion, Path(r.path).name) for r in recs] == [
        ("s1", "anger", "a.mp4"),
        ("s2", "happiness", "b.avi"),
        ("s3", "sadness", "d.mp4"),
    ]
    assert Path(recs[0].path) == tmp_path / "lists" / ".." / "clips" / "a.mp4"
    assert Path(recs[1].audio_path).name == "b.wav" and recs[0].audio_path is None
    assert recs[0].meta == {"session": "x", "manifest_line": 2}
    why = {int(p.rsplit(":", 1)[1]): r for p, r in rep.skipped}
    assert set(why) == {4, 5, 6, 7, 8, 10, 11}
    assert "unknown emotion 'boredom'" in why[4]
    assert "file not found" in why[5] and "missing.mp4" in why[5]
    assert why[6] == "line 6: class not used with classes=6"
    assert "empty subject" in why[7]
    assert "2 cells" in why[8]
    assert "same file as line 2" in why[10]
    assert "audio file not found" in why[11]
    recs8, _ = manifest.index(csv_path, classes=8)
    assert "neutral" in {r.emotion for r in recs8}


def test_manifest_errors(tmp_path):
    with pytest.raises(DataError, match=str(tmp_path / "no.csv")):
        manifest.index(tmp_path / "no.csv")
    text_file(tmp_path / "bad.csv", "file,label\nx.mp4,anger\n")
    with pytest.raises(DataError, match="missing column"):
        manifest.index(tmp_path / "bad.csv")
    text_file(tmp_path / "d" / "manifest.csv", "path,subject,emotion\nnone.mp4,1,anger\n")
    with pytest.raises(DataError, match="no usable rows"):
        manifest.index(tmp_path / "d")


# --------------------------------------------------------------------------- registry and folds


def test_index_dataset_registry(tmp_path):
    make_ravdess_fixture(tmp_path, actors=(1,))
    recs, _ = datasets.index_dataset("ravdess", str(tmp_path), classes=8)
    assert len(recs) == 8
    recs, _ = datasets.index_dataset("synthetic", str(tmp_path), classes=8)  # forced to 6
    assert len(recs) == 6 and {r.dataset for r in recs} == {"synthetic"}
    assert set(datasets.LOADERS) == {"ravdess", "enterface", "baum1s", "manifest", "synthetic"}
    with pytest.raises(ValueError, match="ravdess, enterface, baum1s, manifest, synthetic"):
        datasets.index_dataset("iemocap", str(tmp_path))
    assert datasets.classes_for("ravdess", 8) == EMOTIONS8
    assert datasets.classes_for("enterface", 6) == datasets.classes_for("synthetic", 6) == EMOTIONS6
    with pytest.raises(ValueError):
        datasets.classes_for("baum1s", 8)


def test_make_subject_folds_is_deterministic_and_balanced():
    subj = [f"{i:02d}" for i in range(1, 25)]
    groups = {s: int(s) % 2 for s in subj}
    a = folds.make_subject_folds(subj, 6, seed=0, groups={k: str(v) for k, v in groups.items()})
    assert a == folds.make_subject_folds(list(reversed(subj)), 6, seed=0, groups={k: str(v) for k, v in groups.items()})
    assert all(len(f) == 4 and sum(groups[s] for s in f) == 2 for f in a)
    b = folds.make_subject_folds(subj, 5, seed=1)
    assert sorted(len(f) for f in b) == [4, 5, 5, 5, 5]
    with pytest.raises(ValueError):
        folds.make_subject_folds(["1"], 2)


@pytest.mark.parametrize("name,n_subjects,n_folds", [("ravdess", 24, 6), ("enterface", 43, 5), ("baum1s", 31, 5)])
def test_shipped_folds(name, n_subjects, n_folds):
    shipped = folds.load_fold_file(name)
    assert shipped == folds.fold_file_content(name)  # the JSON is what make_subject_folds gives
    got = folds.load_folds(name)
    assert len(got) == shipped["n_folds"] == n_folds and shipped["protocol"] == "subject"
    flat = [s for f in got for s in f]
    assert len(flat) == len(set(flat)) == n_subjects  # disjoint
    assert set(flat) == set(folds.FOLD_SPECS[name]["subjects"])  # covering
    path = Path(datasets.__file__).parent / "shipped_folds" / f"{name}.json"
    assert json.loads(path.read_text()) == shipped
    if name == "ravdess":
        assert all(sum(int(s) % 2 for s in f) == 2 for f in got)


def test_fold_ids_match_loader_subject_ids(tmp_path):
    make_ravdess_fixture(tmp_path / "r", actors=(1, 24), emotions=("anger",))
    recs, _ = ravdess.index(tmp_path / "r")
    flat = {s for f in folds.load_folds("ravdess") for s in f}
    assert {r.subject for r in recs} <= flat
    make_enterface_fixture(tmp_path / "e", sentences=(1,))
    recs, _ = enterface.index(tmp_path / "e")
    flat = {s for f in folds.load_folds("enterface") for s in f}
    assert {r.subject for r in recs} <= flat and "6" not in flat
    make_baum1s_fixture(tmp_path / "b", subjects=(1, 31))
    recs, _ = baum1s.index(tmp_path / "b")
    assert {r.subject for r in recs} == {"S001", "S031"} <= {s for f in folds.load_folds("baum1s") for s in f}


# --------------------------------------------------------------------------- linked into place


def rel(recs, base: Path) -> list[tuple]:
    return [
        (
            Path(r.path).relative_to(base).as_posix(),
            r.subject,
            r.emotion,
            Path(r.audio_path).relative_to(base).as_posix() if r.audio_path else None,
        )
        for r in recs
    ]


def test_ravdess_actor_folders_linked_into_place(tmp_path):
    store = make_ravdess_fixture(tmp_path / "store", actors=(1, 2), audio_only_actors=(1,))
    direct, _ = ravdess.index(store, classes=8)
    root = link_children(store, tmp_path / "root")
    recs, rep = ravdess.index(root, classes=8)
    assert rel(recs, root) == rel(direct, store) and len(recs) == 16  # the same clips, audio paired through links
    assert rep.skipped == []
    # linked files, a link loop (a link to an ancestor) and a broken link: walked once, reported, no hang
    files = tmp_path / "files" / "Actor_03"
    files.mkdir(parents=True)
    for f in sorted((make_ravdess_fixture(tmp_path / "store3", actors=(3,), audio_only_actors=(3,)) / "Actor_03").iterdir()):
        (files / f.name).symlink_to(f)
    (root / "Actor_03").symlink_to(files, target_is_directory=True)
    (root / "Actor_01" / "again").symlink_to(root, target_is_directory=True)
    (root / "Actor_02" / "gone").symlink_to(tmp_path / "nowhere", target_is_directory=True)
    recs, rep = ravdess.index(root, classes=8)
    assert [r.subject for r in recs].count("03") == 8 and len(recs) == 24
    why = reasons(rep)
    assert "a folder already walked" in why["again"] and "broken link" in why["gone"]
    assert len(rep.skipped) == 2


def test_ravdess_root_with_nothing_says_so(tmp_path):
    (tmp_path / "Actor_01").symlink_to(tmp_path / "nowhere", target_is_directory=True)
    with pytest.raises(DataError, match="broken link"):
        ravdess.index(tmp_path)
    (tmp_path / "Actor_01").unlink()
    with pytest.raises(DataError, match="holds no files"):
        ravdess.index(tmp_path)


def test_enterface_subject_folders_linked_into_place(tmp_path):
    store = make_enterface_fixture(tmp_path / "store", sentences=(1,)) / "enterface database"
    direct, drep = enterface.index(store)
    root = link_children(store, tmp_path / "root" / "enterface database")
    (root / "subject 1" / "anger" / "up").symlink_to(root / "subject 1", target_is_directory=True)  # a loop
    recs, rep = enterface.index(tmp_path / "root")  # the zip's parent folder, as accepted unlinked
    assert rel(recs, root) == rel(direct, store) and len(recs) == 6 * 6 + 1
    assert len(rep.skipped) == len(drep.skipped) + 1 and "a folder already walked" in reasons(rep)["up"]


def test_baum1s_subject_folders_and_sheet_linked_into_place(tmp_path):
    store = make_baum1s_fixture(tmp_path / "store", subjects=(1, 2))
    direct, _ = baum1s.index(store / "BAUM1s_MP4 - All")
    root = tmp_path / "root"
    link_children(store / "BAUM1s_MP4 - All", root / "BAUM1s_MP4 - All")
    (root / "Annotations_BAUM1s.csv").symlink_to(store / "Annotations_BAUM1s.csv")
    recs, _ = baum1s.index(root / "BAUM1s_MP4 - All")  # the sheet found beside the root, through its link
    assert rel(recs, root / "BAUM1s_MP4 - All") == rel(direct, store / "BAUM1s_MP4 - All") and len(recs) == 6


def real_files(recs) -> list[str]:
    return [os.path.realpath(r.path) for r in recs]


def test_enterface_subject_linked_to_another_subjects_folder_is_indexed_once(tmp_path):
    store = make_enterface_fixture(tmp_path / "store", sentences=(1,)) / "enterface database"
    root = link_children(store, tmp_path / "root")
    for alias, real in (("subject 2", "subject 1"), ("subject 11", "subject 16")):
        (root / alias).unlink()
        (root / alias).symlink_to(store / real, target_is_directory=True)
    clip = store / "subject 3" / "anger" / "sentence 2" / "s3_an_2.avi"  # one clip linked into another subject
    clip.parent.mkdir()
    clip.symlink_to(store / "Subject 23" / "anger" / "sentence 1" / "s23_an_1.avi")
    recs, rep = enterface.index(root)
    assert len(set(real_files(recs))) == len(recs) == 6 * 4 + 1  # subjects 1, 3, 16 and 23, each clip once
    assert {r.subject for r in recs} == {"1", "3", "16", "23"}  # a folder is kept by the subject it is named for
    why = reasons(rep)
    assert "already walked" in why["subject 2"] and str(root / "subject 1") in why["subject 2"]
    assert "already walked" in why["subject 11"] and str(root / "subject 16") in why["subject 11"]
    assert "same file as" in why["s3_an_2.avi"] and str(root / "Subject 23") in why["s3_an_2.avi"]


def test_ravdess_clip_linked_under_another_actor_is_indexed_once(tmp_path):
    root = make_ravdess_fixture(tmp_path, actors=(1,), audio_only_actors=(1,))
    (root / "Actor_02").mkdir()
    for f in sorted((root / "Actor_01").iterdir()):
        (root / "Actor_02" / f.name.replace("-01.", "-02.")).symlink_to(f)
    recs, rep = ravdess.index(root, classes=8)
    assert len(recs) == 8 and {r.subject for r in recs} == {"01"}
    assert all(Path(r.audio_path).parent.name == "Actor_01" for r in recs)
    assert len(rep.skipped) == 16 and all("same file as" in why and "Actor_01" in why for why in reasons(rep).values())
    shutil.rmtree(root / "Actor_02")
    (root / "Actor_00").symlink_to(root / "Actor_01", target_is_directory=True)  # walked after Actor_01, its own name
    recs, rep = ravdess.index(root, classes=8)
    assert len(recs) == 8 and {r.subject for r in recs} == {"01"}
    assert len(rep.skipped) == 1 and f"already walked as {root / 'Actor_01'}" in reasons(rep)["Actor_00"]


def test_baum1s_clip_hard_linked_under_another_subject_is_indexed_once(tmp_path):
    make_baum1s_fixture(tmp_path, subjects=(1, 2))
    clips = tmp_path / "BAUM1s_MP4 - All"
    (clips / "S002" / "S002_001.mp4").unlink()
    os.link(clips / "S001" / "S001_001.mp4", clips / "S002" / "S002_001.mp4")
    recs, rep = baum1s.index(tmp_path)
    assert [r.meta["clip"] for r in recs] == ["S001_001", "S001_002", "S001_008", "S002_002", "S002_008"]
    assert "same file as" in reasons(rep)["S002_001.mp4"] and str(clips / "S001" / "S001_001.mp4") in reasons(rep)["S002_001.mp4"]


def test_manifest_rows_through_linked_folders(tmp_path):
    store = make_ravdess_fixture(tmp_path / "store", actors=(1, 2), emotions=("anger", "sadness"), audio_only_actors=())
    root = link_children(store, tmp_path / "root")
    rows = [
        f"{p.parent.name}/{p.name},{p.parent.name[-2:]},{'anger' if '-05-' in p.name else 'sadness'}"
        for p in sorted(store.glob("Actor_*/*.mp4"))
    ]
    (root / "manifest.csv").write_text("path,subject,emotion\n" + "\n".join(rows) + "\n")
    (tmp_path / "linked-root").symlink_to(root, target_is_directory=True)
    recs, rep = manifest.index(tmp_path / "linked-root")
    assert len(recs) == 4 and rep.skipped == [] and {r.subject for r in recs} == {"01", "02"}
