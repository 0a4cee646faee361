"""The command line: clear errors for bad input, and prep/train on a tiny corpus."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from hgrlib.app.cli import main


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
    assert out["run_dir"].startswith(str(tmp_path))
    saved = json.loads(open(os.path.join(out["run_dir"], "result.json")).read())
    cm = np.array(saved["test"]["confusion"])
    assert out["acc"] == saved["test"]["acc"] == pytest.approx(np.trace(cm) / cm.sum())  # what it prints is the run's score


def test_set_overrides_and_config_file_round_trip(capsys, tmp_path):
    assert (
        main(
            [
                "train",
                "--lam",
                "0.5",
                "--set",
                "loss.w_ay=0",
                "--set",
                "train.use_unlabeled=false",
                "--set",
                "data.root=/x/y",
                "--print-config",
            ]
        )
        == 0
    )
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["loss"]["lam"] == 0.5 and cfg["loss"]["w_ay"] == 0 and cfg["train"]["use_unlabeled"] is False
    assert cfg["data"]["root"] == "/x/y" and cfg["train"]["threads"] == 1  # the default profile pins one thread
    f = tmp_path / "cfg.json"
    f.write_text(json.dumps(cfg))
    assert main(["train", "--config", str(f), "--set", "train.seed=3", "--print-config"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again == cfg | {"train": cfg["train"] | {"seed": 3}}


@pytest.mark.parametrize("protocol", ["subject", "clip", "segment"])
def test_train_offers_every_protocol_the_config_takes(capsys, protocol):
    """hgrlib.config.PROTOCOLS is the one list: `train --protocol` offers each of them."""
    from hgrlib.config import PROTOCOLS

    assert protocol in PROTOCOLS
    assert main(["train", "--protocol", protocol, "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out)["train"]["protocol"] == protocol


def test_bad_set_and_bad_config_are_clear_errors(capsys, tmp_path):
    assert main(["train", "--set", "lossw_ay=0", "--print-config"]) == 2
    assert "section.field=value" in capsys.readouterr().err
    assert main(["train", "--set", "loss.nope=1", "--print-config"]) == 2
    assert "nope" in capsys.readouterr().err
    assert main(["train", "--set", "optim.lr=1", "--print-config"]) == 2
    assert "optim" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["train", "--config", str(bad)]) == 2
    assert "bad.json" in capsys.readouterr().err


def test_cli_grid_points_are_the_notebook_runs(capsys):
    """The README's cluster recipe: `hgrlib train` flags give the very configs notebook 02 trains (same run keys)."""
    from hgrlib.config import Config
    from hgrlib.experiment.profiles import get_profile

    p = get_profile("default")
    for flags, change in (
        ([], {"model": {"modalities": "av"}, "loss": {"lam": p.lam}}),
        (["--modalities", "a", "--lam", "0"], {"model": {"modalities": "a"}, "loss": {"lam": 0.0}}),
    ):
        for fold, seed in [(f, s) for f in range(p.config.train.n_folds) for s in p.seeds]:  # experiment.fold_seed_runs
            assert main(["train", *flags, "--seed", str(seed), "--fold", str(fold), "--print-config"]) == 0
            cli = Config.from_dict(json.loads(capsys.readouterr().out))
            assert cli == p.config.with_(**change, train={"seed": seed, "fold": fold})


def test_unwritable_output_is_a_one_line_error_naming_the_folder(tiny, capsys, tmp_path):
    """A runs folder that cannot be made (here: a path under a file; read-only works alike) is reported, no traceback."""
    from hgrlib.experiment.runs import check_writable

    cfg, _, cache = tiny
    blocker = tmp_path / "file"
    blocker.write_text("x")
    args = ["--profile", "smoke", "--root", cfg.data.root, "--cache", str(cache)]
    assert main(["train", *args, "--runs", str(blocker / "runs"), "--epochs", "1"]) == 1
    err = capsys.readouterr().err
    assert "hgrlib train: error:" in err and str(blocker) in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    with pytest.raises(OSError, match="nothing was run") as e:
        check_writable([tmp_path / "ok", blocker / "results"])
    assert e.value.filename == str(blocker / "results") and (tmp_path / "ok").is_dir()


@pytest.mark.slow
def test_train_under_torchrun_writes_one_data_parallel_run(tiny, tmp_path):
    """The README's command: `hgrlib train` under torchrun, 2 gloo processes, one result.json keyed -ddp2."""
    import subprocess
    import sys

    cfg, _, cache = tiny
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "hgrlib.app.cli",
        "train",
        "--profile",
        "smoke",
        "--root",
        cfg.data.root,
        "--cache",
        str(cache),
        "--runs",
        str(tmp_path),
        "--epochs",
        "1",
    ]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=os.environ | {"HGRLIB_DDP_BACKEND": "gloo"})
    assert p.returncode == 0, p.stderr[-2000:]
    printed = json.loads(p.stdout[p.stdout.index("{") :])  # rank 0 alone prints
    saved = json.loads(open(os.path.join(printed["run_dir"], "result.json")).read())
    assert saved["world_size"] == 2 and saved["key"]["exec"].endswith("-ddp2") and printed["acc"] == saved["test"]["acc"]


def test_prep_and_train_take_the_face_detector_and_smallest_face(capsys):
    import argparse

    from hgrlib.app.cli import _profile

    args = argparse.Namespace(profile="smoke", dataset="synthetic", root=None, classes=6, detector="mtcnn", min_face=0.2)
    f = _profile(args).config.features
    assert (f.detector, f.min_face) == ("mtcnn", 0.2)
    assert _profile(argparse.Namespace(**{**vars(args), "detector": None, "min_face": None})).config.features.detector == "haar"
    assert main(["prep", "--profile", "smoke", "--min-face", "2"]) == 2
    assert "features.min_face" in capsys.readouterr().err
