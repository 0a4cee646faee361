"""hgrlib.core.train: the step's finiteness check, and the restart after a damaged checkpoint."""

from __future__ import annotations

import os

import pytest
import torch
from fixtures import random_featureset

import hgrlib.core.checkpoint as checkpoint
import hgrlib.core.train as train
from hgrlib.config import Config, LossConfig, ModelConfig, TrainConfig

BASE = Config(
    model=ModelConfig(dim=16, width=8),
    loss=LossConfig(lam=0.1),
    train=TrainConfig(epochs=2, batch_size=16, n_folds=3, threads=1, device="cpu"),
)


def _params(*grads):
    out = []
    for g in grads:
        p = torch.nn.Parameter(torch.zeros(3))
        p.grad = None if g is None else torch.tensor(g)
        out.append(p)
    return out


def test_grads_finite():
    assert train.grads_finite(_params([1.0, -2.0, 0.0], [3.0, 4.0, 5.0]))
    assert train.grads_finite(_params(None, [1.0, 2.0, 3.0]))  # no gradient counts as finite
    assert train.grads_finite(_params(None)) and train.grads_finite([])
    assert not train.grads_finite(_params([1.0, float("nan"), 0.0], [1.0, 2.0, 3.0]))
    assert not train.grads_finite(_params([1.0, 2.0, 3.0], [float("inf"), 0.0, 0.0]))
    assert not train.grads_finite(_params(None, [0.0, float("-inf"), 0.0]))
    assert train.grads_finite(p for p in _params([1.0, 2.0, 3.0]))  # a generator, as train_one_epoch passes


class _Killed(Exception):
    pass


def test_a_truncated_checkpoint_restarts_the_run_from_scratch(tmp_path, monkeypatch, capsys):
    fs = random_featureset()
    whole = train.fit(BASE, fs, str(tmp_path / "whole"), progress=False)

    real_save = checkpoint.save

    def save_then_die(path, payload):  # the process killed just after epoch 1's checkpoint
        real_save(path, payload)
        raise _Killed

    monkeypatch.setattr(checkpoint, "save", save_then_die)
    run = tmp_path / "damaged"
    with pytest.raises(_Killed):
        train.fit(BASE, fs, str(run), progress=False)
    monkeypatch.setattr(checkpoint, "save", real_save)
    ckpt = run / "checkpoint.pt"
    size = os.path.getsize(ckpt)
    with open(ckpt, "r+b") as f:
        f.truncate(size // 2)

    again = train.fit(BASE, fs, str(run), progress=False)
    assert "cannot resume from it" in capsys.readouterr().err
    assert not ckpt.exists()
    assert again["history"] == whole["history"] and again["test"] == whole["test"]
    assert again["features_sha256"] == whole["features_sha256"] and again["best_val_uar"] == whole["best_val_uar"]
    wa, wb = torch.load(run / train.WEIGHTS_FILE), torch.load(tmp_path / "whole" / train.WEIGHTS_FILE)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_a_result_is_read_back_through_run_result(tmp_path):
    """hgrlib.experiment.runs.read_result reads result.json as a RunResult and hands callers the same dict, key order included;
    keys it does not know are kept; a result.json without one of RunResult's fields counts as damaged."""
    import json

    from hgrlib.base.io import read_sealed_json, write_sealed_json
    from hgrlib.core.result import RunResult
    from hgrlib.experiment.runs import read_result

    run = tmp_path / "r"
    train.fit(BASE.with_(train={"epochs": 1}), random_featureset(), str(run), progress=False)
    raw = read_sealed_json(run / "result.json")
    back = read_result(str(run))
    assert json.dumps(back) == json.dumps(raw)
    assert RunResult.read(str(run / "result.json")).test == raw["test"]
    write_sealed_json(run / "result.json", raw | {"from_a_later_version": 1})
    assert read_result(str(run))["from_a_later_version"] == 1
    write_sealed_json(run / "result.json", {k: v for k, v in raw.items() if k != "test"})
    assert read_result(str(run)) is None and not (run / "result.json").exists()
