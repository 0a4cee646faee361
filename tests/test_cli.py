"""The command line: clear errors for bad input, and prep/train on a tiny corpus."""

from __future__ import annotations

import json

from hgrlib.cli import main


def test_missing_dataset_folder_is_a_clear_error(capsys, tmp_path):
    assert main(["prep", "--dataset", "ravdess", "--root", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "nope" in err and "not found" in err


def test_real_dataset_without_root_is_a_clear_error(capsys):
    assert main(["prep", "--dataset", "enterface"]) == 2
    assert "root" in capsys.readouterr().err


def test_folder_without_clips_names_the_expected_layout(capsys, tmp_path):
    (tmp_path / "README.txt").write_text("hello")
    assert main(["prep", "--dataset", "ravdess", "--root", str(tmp_path), "--cache", str(tmp_path / "c")]) == 2
    assert str(tmp_path) in capsys.readouterr().err


def test_prep_then_train_on_a_tiny_corpus(tiny, capsys, tmp_path):
    cfg, _, cache = tiny
    args = ["--profile", "smoke", "--root", cfg.data.root, "--cache", str(cache)]
    assert main(["prep", *args, "--workers", "1"]) == 0
    assert "already cached" in capsys.readouterr().out
    assert main(["train", *args, "--runs", str(tmp_path), "--lam", "0.1", "--epochs", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert 0 <= out["acc"] <= 1 and out["run_dir"].startswith(str(tmp_path))
