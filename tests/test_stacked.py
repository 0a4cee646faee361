"""Runs trained as one stacked network (hgrlib.core.stacked: EmotionModel's own forward through torch.func) are the
runs fit trains alone: the same forward pass, gradients and dropout masks, the same schedule, skips, selection
and files; only the summation order inside the batched operators differs (float tolerance, keyed apart by
stack size)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fixtures import random_featureset

import hgrlib.core.train as ts
import hgrlib.experiment.runs as runs
from hgrlib.base.provenance import machine_identity, machine_tag
from hgrlib.config import Config, LossConfig, ModelConfig, TrainConfig
from hgrlib.core.losses import joint_loss
from hgrlib.core.models import EmotionModel
from hgrlib.core.stacked import ModelStack
from hgrlib.core.train import fit
from hgrlib.core.train_stacked import fit_stacked
from hgrlib.experiment.launch import pack, train_all
from hgrlib.experiment.runs import cached_fit_stack, read_result, run_dir

BASE = Config(
    model=ModelConfig(dim=16, width=8), loss=LossConfig(lam=0.1), train=TrainConfig(epochs=2, batch_size=32, n_folds=3, threads=1)
)
MEMBERS = [
    BASE,  # and members that differ in everything a stack allows:
    BASE.with_(train={"seed": 1, "fold": 1, "labeled_frac": 0.5}, loss={"lam": 0.0}),
    BASE.with_(train={"seed": 2, "fold": 2, "use_unlabeled": False, "labeled_frac": 0.5, "lr": 1e-3}, loss={"w_ce_uni": 0.5}),
]  # labeled-only: half the steps per epoch, sits the rest out


def _close(a, b, tol=1e-5):
    a, b = a.detach().float(), b.detach().float()
    return float((a - b).abs().max()) <= tol * max(1.0, float(b.abs().max()))


def _check_stack_against_solo(make, cfgs, b=8):
    """Stack K models made by make(seed) (seed k = member k), forward and backward the members' losses once,
    and compare each member's outputs (dropout masks included), gradients and BatchNorm statistics with its
    model trained alone from the same RNG state."""
    torch.set_num_threads(1)
    models, gens, data = [], [], []
    for seed in range(len(cfgs)):
        torch.manual_seed(seed)
        models.append(make())
        gens.append(torch.Generator().set_state(torch.get_rng_state()))
        data.append((torch.randn(b, 1, 24, 16), torch.randn(b, 3, 3, 16, 16), torch.randint(0, 6, (b,))))
    stack = ModelStack(models, gens)
    outs = stack(data)
    lab = torch.ones(b, dtype=torch.bool)
    stack.backward([joint_loss(outs[k], data[k][2], lab, c)[0] for k, c in enumerate(cfgs)], outs)
    for k, (m, (a, v, y)) in enumerate(zip(models, data)):
        torch.manual_seed(k)
        make()  # the solo run's RNG, where its initialisation leaves it
        solo = m.train()(a, v, y)
        joint_loss(solo, y, lab, cfgs[k])[0].backward()
        assert all(_close(outs[k][n], solo[n]) for n in solo)  # dropout masks included
        for (n, p), g in zip(m.named_parameters(), (q.grad for q in stack.member_parameters(k))):
            assert (p.grad is None) == (g is None), n  # a part of the model its loss does not reach: no gradient
            if p.grad is not None:
                assert _close(g, p.grad), n
        state = stack.member_state(k)
        assert all(_close(state[n], t) for n, t in m.named_buffers())


def test_stacked_forward_gradients_and_dropout_match_each_member():
    cfg = ModelConfig(dim=16, width=8, dropout=0.3)
    losses = [LossConfig(lam=0.1), LossConfig(lam=0.0), LossConfig(lam=0.1, w_ce_uni=0.5)]
    _check_stack_against_solo(lambda: EmotionModel(6, 1, 3, cfg), losses)


class _Deeper(EmotionModel):
    """An EmotionModel with a changed forward and extra layers (another dropout and BatchNorm in the fusion)."""

    def __init__(self, *a) -> None:
        super().__init__(*a)
        d = self.classifier.in_features
        self.extra = torch.nn.Sequential(torch.nn.Linear(d, d), torch.nn.BatchNorm1d(d), torch.nn.Dropout(0.2), torch.nn.Tanh())

    def forward(self, audio, faces, y=None):
        out = super().forward(audio, faces, y)
        out["z"] = self.extra(out["z"]) + out["z"]
        out["logits"] = self.classifier(out["z"])
        return out


def test_the_stack_follows_models_py():
    """No second copy of the network: a model with other layers stacks as it is."""
    cfg = ModelConfig(dim=16, width=8, dropout=0.3)
    _check_stack_against_solo(lambda: _Deeper(6, 1, 3, cfg), [LossConfig(lam=0.1)] * 2)
    _check_stack_against_solo(lambda: EmotionModel(6, 1, 3, ModelConfig(dim=8, width=4, modalities="a")), [LossConfig(lam=0.1)] * 2)


def test_each_member_of_a_stack_is_its_solo_run(tmp_path):
    fs = random_featureset()
    stacked = fit_stacked(MEMBERS, fs, [str(tmp_path / f"s{i}") for i in range(3)], progress=False)
    for i, cfg in enumerate(MEMBERS):
        solo = fit(cfg, fs, str(tmp_path / f"solo{i}"), progress=False)
        assert stacked[i]["test"]["confusion"] == solo["test"]["confusion"]
        assert stacked[i]["steps"] == solo["steps"] and stacked[i]["stack_size"] == 3
        for h1, h2 in zip(stacked[i]["history"], solo["history"]):
            assert h1.keys() == h2.keys() and all(abs(h1[k] - h2[k]) < 1e-5 for k in h1), (i, h1, h2)
        fa, fb = np.load(tmp_path / f"s{i}" / "features.npz"), np.load(tmp_path / f"solo{i}" / "features.npz")
        assert np.abs(fa["z"] - fb["z"]).max() < 1e-5 and (fa["part"] == fb["part"]).all()
        assert set(stacked[i]) - {"stack_size"} == set(solo)  # the same result.json a solo run writes


def test_a_non_finite_member_skips_alone(tmp_path, monkeypatch):
    fs = random_featureset()
    real = ts.joint_loss

    def nan_for_seed_1(out, y, labeled, cfg):
        loss, parts = real(out, y, labeled, cfg)
        return (loss * float("nan"), parts) if cfg.temperature == 0.5 else (loss, parts)

    monkeypatch.setattr(ts, "joint_loss", nan_for_seed_1)
    cfgs = [BASE, BASE.with_(train={"seed": 1}, loss={"temperature": 0.5})]  # temperature: unused by hgr, a marker
    out = fit_stacked(cfgs, fs, [str(tmp_path / "a"), str(tmp_path / "b")], progress=False)
    assert [h["nonfinite_steps"] for h in out[1]["history"]] == [out[1]["steps"] // 2] * 2
    assert all(h["nonfinite_steps"] == 0 for h in out[0]["history"])
    solo = fit(BASE, fs, str(tmp_path / "solo"), progress=False)
    assert out[0]["test"]["confusion"] == solo["test"]["confusion"]  # its partner's failure did not touch it


def test_an_interrupted_stack_resumes_to_the_same_bytes(tmp_path, monkeypatch):
    fs = random_featureset()
    whole = cached_fit_stack(MEMBERS[:2], fs, str(tmp_path / "whole"), progress=False)
    real, calls = ts.evaluate, []

    def interrupt_in_epoch_two(*a, **k):
        calls.append(1)
        if len(calls) == 3:  # epoch two's first member
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(ts, "evaluate", interrupt_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        cached_fit_stack(MEMBERS[:2], fs, str(tmp_path / "cut"), progress=False)
    monkeypatch.setattr(ts, "evaluate", real)
    resumed = cached_fit_stack(MEMBERS[:2], fs, str(tmp_path / "cut"), progress=False)
    assert [r["features_sha256"] for r in resumed] == [r["features_sha256"] for r in whole]
    assert [r["history"] for r in resumed] == [r["history"] for r in whole]


def test_pack_groups_stackable_configs_deterministically():
    cfgs = [BASE.with_(train={"seed": s}) for s in range(10)]
    other = BASE.with_(model={"dim": 8})  # another shape
    amp = BASE.with_(train={"amp": "bf16"})  # not stackable
    groups = pack(cfgs + [other, amp, cfgs[0]], 8)  # cfgs[0] twice: trained once
    assert sorted(map(len, groups)) == [1, 1, 5, 5] and sorted(i for g in groups for i in g) == list(range(12))
    assert pack(cfgs + [other, amp, cfgs[0]], 8) == groups
    assert pack(cfgs, 1) == [[i] for i in range(10)]


def test_run_all_stacks_keys_by_stack_size_and_reads_back(tmp_path, monkeypatch):
    fs = random_featureset()
    cfgs = [BASE.with_(train={"seed": s}) for s in range(3)]
    out = train_all(cfgs, fs, str(tmp_path), progress=False, stack=2)  # stacks of 2 and 1
    sizes = sorted(r.get("stack_size", 1) for r in out)
    assert sizes == [1, 2, 2]
    here = f"cpu-1threads-{machine_tag(machine_identity())}"
    assert {r["key"]["exec"] for r in out} == {here, f"{here}-stack2"}
    alone = [c for c, r in zip(cfgs, out) if r.get("stack_size", 1) == 1][0]
    assert read_result(run_dir(alone, fs, str(tmp_path))) is not None
    monkeypatch.setattr(runs, "fit_stacked", lambda *a, **k: pytest.fail("trained again"))
    again = train_all(cfgs, fs, str(tmp_path), progress=False, stack=2)
    assert [r["seconds"] for r in again] == [r["seconds"] for r in out]


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="CPU keys")
def test_a_stack_through_submitit_is_the_stack_a_process_trains(tmp_path, monkeypatch):
    fs = random_featureset()
    cfgs = [BASE.with_(train={"seed": s}) for s in range(2)]
    jobs = train_all(cfgs, fs, str(tmp_path), progress=False, stack=2, executor="submitit-local")
    assert [r["key"]["exec"] for r in jobs] == [f"cpu-1threads-{machine_tag(machine_identity())}-stack2"] * 2
    assert any((tmp_path / ".submitit").iterdir())
    monkeypatch.setattr(runs, "fit_stacked", lambda *a, **k: pytest.fail("trained again"))
    here = train_all(cfgs, fs, str(tmp_path), progress=False, stack=2)  # in this process: read back, same runs
    assert [r["features_sha256"] for r in here] == [r["features_sha256"] for r in jobs]
