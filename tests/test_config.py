"""Config: values converted to the declared field types, impossible configs rejected where they are made."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from hgrlib.app.cli import main, parse_sets
from hgrlib.config import Config, DataConfig, FeatureConfig, TrainConfig, config_hash
from hgrlib.experiment.profiles import PROFILES

RAVDESS = {"dataset": "ravdess", "root": "x"}


def _with(section: str, name: str, value):
    return Config().with_(**{section: {name: value}})


def test_default_hash_is_unchanged():
    """Cache keys of existing runs and features: a change here retrains every run (pinned when
    loss.cca_dim, loss.cca_ridge and train.match_steps came in, again for data.folds, and for features.detector
    and features.min_face, which replaced detect_max_side, and for train.labeled_per_batch)."""
    assert config_hash(Config()) == "fa1aeaa49be3"
    assert FeatureConfig().key() == "7c4a0d9522e4"


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_profiles_round_trip_through_dicts(profile):
    cfg = PROFILES[profile].config
    again = Config.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and config_hash(again) == config_hash(cfg)


@pytest.mark.parametrize(
    "key, given, expected",
    [
        ("train.epochs", "7", 7),
        ("train.epochs", 7.0, 7),
        ("train.epochs", "7.0", 7),
        ("train.epochs", " 12 ", 12),
        ("train.epochs", "1e1", 10),
        ("train.seed", np.int64(3), 3),
        ("train.fold", "-0", 0),
        ("loss.lam", 1, 1.0),
        ("loss.lam", "0.5", 0.5),
        ("loss.lam", "1e-3", 1e-3),
        ("train.lr", np.float32(0.5), 0.5),
        ("train.use_unlabeled", "false", False),
        ("train.use_unlabeled", "YES", True),
        ("train.use_unlabeled", "No", False),
        ("train.use_unlabeled", "1", True),
        ("train.use_unlabeled", "0", False),
        ("train.compile", True, True),
        ("data.root", "123", "123"),
    ],
)
def test_values_are_converted_to_the_field_type(key, given, expected):
    section, name = key.split(".")
    for cfg in (_with(section, name, given), Config.from_dict({section: {name: given}})):
        got = getattr(getattr(cfg, section), name)
        assert got == expected and type(got) is type(expected)
    json.dumps(cfg.to_dict())  # numpy scalars would not serialise


def test_an_int_given_to_a_float_field_hashes_like_the_float():
    assert config_hash(_with("loss", "lam", 0)) == config_hash(_with("loss", "lam", 0.0))
    assert config_hash(_with("loss", "lam", 0)) != config_hash(_with("loss", "lam", 0.1))


@pytest.mark.parametrize(
    "key, bad, typ",
    [
        ("train.epochs", "seven", "int"),
        ("train.epochs", 7.5, "int"),
        ("train.epochs", "7.5", "int"),
        ("train.epochs", True, "int"),
        ("train.epochs", None, "int"),
        ("train.epochs", float("nan"), "int"),
        ("train.epochs", float("inf"), "int"),
        ("train.epochs", [7], "int"),
        ("loss.lam", True, "float"),
        ("loss.lam", "abc", "float"),
        ("loss.lam", float("nan"), "float"),
        ("loss.lam", "inf", "float"),
        ("loss.lam", -math.inf, "float"),
        ("loss.lam", None, "float"),
        ("train.use_unlabeled", "maybe", "bool"),
        ("train.use_unlabeled", 1, "bool"),
        ("train.use_unlabeled", None, "bool"),
        ("train.use_unlabeled", "", "bool"),
        ("data.root", 123, "str"),
        ("data.root", None, "str"),
        ("model.modalities", ["a"], "str"),
    ],
)
def test_bad_values_are_rejected_naming_field_value_and_type(key, bad, typ):
    section, name = key.split(".")
    for make in (lambda: _with(section, name, bad), lambda: Config.from_dict({section: {name: bad}})):
        with pytest.raises(ValueError) as e:
            make()
        msg = str(e.value)
        assert key in msg and repr(bad) in msg and typ in msg


def test_sections_convert_when_built_directly():
    t = TrainConfig(epochs="3", use_unlabeled="false")
    assert t.epochs == 3 and t.use_unlabeled is False
    with pytest.raises(ValueError, match=r"data\.classes"):
        DataConfig(classes="six")


@pytest.mark.parametrize(
    "change, key",
    [
        ({"data": {"dataset": "imagenet"}}, "data.dataset"),
        ({"data": {"classes": 7}}, "data.classes"),
        ({"data": {"classes": 8}}, "data.classes"),  # synthetic has six classes
        ({"data": {"dataset": "enterface", "root": "x", "classes": 8}}, "data.classes"),
        ({"data": {"dataset": "baum1s", "root": "x", "classes": 8}}, "data.classes"),
        *[
            ({"features": {f: 0}}, f"features.{f}")
            for f in ("sr", "n_mels", "win_ms", "hop_ms", "segment_frames", "n_segments", "frames_per_segment", "face_size", "min_face")
        ],
        ({"features": {"detector": "dlib"}}, "features.detector"),
        ({"features": {"win_ms": -40.0}}, "features.win_ms"),
        ({"features": {"face_margin": -0.1}}, "features.face_margin"),
        ({"model": {"dim": 0}}, "model.dim"),
        ({"model": {"width": -1}}, "model.width"),
        ({"model": {"dropout": 1.0}}, "model.dropout"),
        ({"model": {"dropout": -0.1}}, "model.dropout"),
        ({"model": {"modalities": "va"}}, "model.modalities"),
        ({"loss": {"corr": "mine"}}, "loss.corr"),
        *[({"loss": {w: -0.1}}, f"loss.{w}") for w in ("w_ce", "w_ce_uni", "lam", "w_av", "w_ay", "w_vy")],
        ({"loss": {"w_av": float("inf")}}, "loss.w_av"),
        ({"loss": {"temperature": 0.0}}, "loss.temperature"),
        ({"train": {"epochs": 0}}, "train.epochs"),
        ({"train": {"lr": 0.0}}, "train.lr"),
        ({"train": {"batch_size": 1}}, "train.batch_size"),
        ({"train": {"weight_decay": -1e-4}}, "train.weight_decay"),
        ({"train": {"protocol": "random"}}, "train.protocol"),
        ({"train": {"n_folds": 2}}, "train.n_folds"),
        ({"train": {"n_folds": 2, "fold": 1}}, "train.n_folds"),
        ({"train": {"fold": -1}}, "train.fold"),
        ({"train": {"fold": 4}}, "train.fold"),  # default n_folds=4
        ({"train": {"n_folds": 6, "fold": 6}}, "train.fold"),
        ({"data": RAVDESS, "train": {"fold": 6}}, "train.fold"),  # ravdess ships 6 folds
        ({"data": RAVDESS, "train": {"n_folds": 10, "fold": 6}}, "train.fold"),  # the shipped count wins
        ({"data": {"dataset": "enterface", "root": "x"}, "train": {"fold": 5}}, "train.fold"),
        ({"data": {"dataset": "baum1s", "root": "x"}, "train": {"n_folds": 8, "fold": 5}}, "train.fold"),
        ({"train": {"labeled_frac": 0.0}}, "train.labeled_frac"),
        ({"train": {"labeled_frac": 1.5}}, "train.labeled_frac"),
        ({"train": {"device": "gpu"}}, "train.device"),
        ({"train": {"threads": -1}}, "train.threads"),
        ({"train": {"amp": "fp16"}}, "train.amp"),
        ({"train": {"seed": -1}}, "train.seed"),
    ],
)
def test_impossible_configs_are_rejected_naming_the_field(change, key):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        Config().with_(**change)
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        Config.from_dict(change)


@pytest.mark.parametrize(
    "change",
    [
        {"data": {"dataset": "ravdess", "root": "x", "classes": 8}},
        {"data": {"dataset": "manifest", "root": "a.csv", "classes": 8}},
        {"features": {"face_margin": 0.0, "win_ms": 25, "deltas": True}},
        {"model": {"dropout": 0.0, "modalities": "v"}},
        {"model": {"dropout": 0.99}},
        {"loss": {"w_ce": 0.0, "w_ce_uni": 0.0, "lam": 0.0, "w_av": 0.0, "corr": "infonce", "temperature": 1e-3}},
        {"train": {"batch_size": 2, "weight_decay": 0.0, "seed": 0, "threads": 0, "labeled_frac": 1.0}},
        {"train": {"n_folds": 3, "fold": 2, "protocol": "segment", "device": "cpu", "amp": "bf16", "compile": True}},
        {"train": {"labeled_frac": 1e-3, "device": "cuda"}},
        {"data": RAVDESS, "train": {"fold": 5}},  # beyond train.n_folds=4 but within ravdess's 6 shipped folds
        {"train": {"fold": 5}, "data": RAVDESS},  # in either order
        {"data": {"dataset": "enterface", "root": "x"}, "train": {"fold": 4}},
        {"data": {"dataset": "baum1s", "root": "x"}, "train": {"n_folds": 3, "fold": 4}},
        {"data": {"dataset": "manifest", "root": "a.csv"}, "train": {"n_folds": 10, "fold": 9}},
    ],
)
def test_valid_edge_configs_are_accepted(change):
    cfg = Config().with_(**change)
    assert Config.from_dict(cfg.to_dict()) == cfg
    for section, upd in change.items():
        for name, value in upd.items():
            assert getattr(getattr(cfg, section), name) == value


def test_sections_must_be_sections_and_unknown_names_stay_clear_errors():
    with pytest.raises(ValueError, match="train"):
        Config.from_dict({"train": 5})
    with pytest.raises(ValueError, match="nope"):
        Config.from_dict({"train": {"nope": 1}})
    with pytest.raises(ValueError, match="optim"):
        Config.from_dict({"optim": {}})
    with pytest.raises(TypeError, match="nope"):
        Config().with_(train={"nope": 1})


def test_parse_sets_keeps_the_raw_text():
    assert parse_sets(["data.root=123", "train.use_unlabeled=false", "loss.lam=0.5", "data.root=a=b"]) == {
        "data": {"root": "a=b"},
        "train": {"use_unlabeled": "false"},
        "loss": {"lam": "0.5"},
    }


def _print_config(capsys, *argv) -> tuple[int, dict | None, str]:
    rc = main(["train", *argv, "--print-config"])
    out, err = capsys.readouterr()
    return rc, json.loads(out) if rc == 0 else None, err


def test_cli_set_converts_to_the_field_types(capsys):
    rc, cfg, _ = _print_config(
        capsys,
        "--set",
        "data.root=123",
        "--set",
        "train.use_unlabeled=false",
        "--set",
        "train.epochs=7",
        "--set",
        "loss.lam=1",
        "--set",
        "features.deltas=YES",
    )
    assert rc == 0
    assert cfg["data"]["root"] == "123" and cfg["train"]["use_unlabeled"] is False
    assert cfg["train"]["epochs"] == 7 and type(cfg["train"]["epochs"]) is int
    assert cfg["loss"]["lam"] == 1.0 and type(cfg["loss"]["lam"]) is float and cfg["features"]["deltas"] is True
    rc, cfg, _ = _print_config(capsys, "--set", "train.fold=5", "--set", "data.dataset=ravdess")
    assert rc == 0 and cfg["train"]["fold"] == 5


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--set", "train.epochs=seven"], ["train.epochs", "'seven'", "int"]),
        (["--set", "train.epochs=7.5"], ["train.epochs", "'7.5'", "int"]),
        (["--set", "train.use_unlabeled=maybe"], ["train.use_unlabeled", "bool"]),
        (["--set", "loss.lam=nan"], ["loss.lam", "float"]),
        (["--set", "train.n_folds=2"], ["train.n_folds", ">= 3"]),
        (["--set", "train.batch_size=1"], ["train.batch_size"]),
        (["--set", "loss.w_ay=-1"], ["loss.w_ay"]),
        (["--set", "data.dataset=cifar"], ["data.dataset"]),
        (["--fold", "4"], ["train.fold"]),
        (["--dataset", "ravdess", "--root", "x", "--fold", "6"], ["train.fold", "ravdess"]),
        (["--dataset", "enterface", "--root", "x", "--classes", "8"], ["data.classes"]),
        (["--labeled-frac", "0"], ["train.labeled_frac"]),
    ],
)
def test_cli_rejects_bad_values_with_a_clear_error(capsys, argv, words):
    rc, _, err = _print_config(capsys, *argv)
    assert rc == 2 and err.startswith("hgrlib train: error: ")
    assert all(w in err for w in words), err


def test_cli_config_file_with_a_bad_value_names_file_and_field(capsys, tmp_path):
    f = tmp_path / "cfg.json"
    f.write_text(json.dumps(Config().to_dict() | {"train": Config().to_dict()["train"] | {"n_folds": 2}}))
    rc, _, err = _print_config(capsys, "--config", str(f))
    assert rc == 2 and "cfg.json" in err and "train.n_folds" in err
