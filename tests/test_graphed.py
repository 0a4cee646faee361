"""train.graph (hgrlib.core.graphed): refused on the CPU, kept out of the default config's key, and its device-side
non-finite counting (run here without a graph) gives the eager loop's counts and skips the same steps."""

from __future__ import annotations

import contextlib

import pytest
import torch
from fixtures import random_featureset

import hgrlib.core.graphed as graphed
import hgrlib.core.train as train
from hgrlib.config import Config, LossConfig, ModelConfig, TrainConfig, config_hash
from hgrlib.core.losses import joint_loss

BASE = Config(
    model=ModelConfig(dim=16, width=8),
    loss=LossConfig(lam=0.1),
    train=TrainConfig(epochs=1, batch_size=16, n_folds=3, threads=1, device="cpu"),
)


def test_graph_is_refused_on_the_cpu(tmp_path):
    with pytest.raises(ValueError, match="needs a CUDA device"):
        train.fit(BASE.with_(train={"graph": True}), random_featureset(), str(tmp_path / "r"), progress=False)
    with pytest.raises(ValueError, match="CCA"):
        graphed.check_graphable(BASE.with_(loss={"corr": "cca"}), torch.device("cuda"))
    with pytest.raises(ValueError, match="labeled count"):
        graphed.check_graphable(BASE.with_(train={"labeled_frac": 0.5}), torch.device("cuda"))
    graphed.check_graphable(BASE.with_(train={"labeled_frac": 0.5, "labeled_per_batch": 8}), torch.device("cuda"))
    with pytest.raises(ValueError, match="runs alone"):
        train.fit([BASE.with_(train={"graph": True})] * 2, random_featureset(), [str(tmp_path / "a"), str(tmp_path / "b")], progress=False)


def test_graph_off_leaves_the_key_and_the_dict_as_they_were():
    assert "graph" not in Config().to_dict()["train"]
    assert config_hash(Config()) == "fa1aeaa49be3"  # tests/test_config.py's pin
    on = Config().with_(train={"graph": True})
    assert on.to_dict()["train"]["graph"] is True and config_hash(on) != config_hash(Config())
    assert Config.from_dict(on.to_dict()) == on and Config.from_dict(Config().to_dict()) == Config()


def _nan_on(steps: set[int], real):
    """A loss that is NaN on the given steps (counted per call) and real otherwise."""
    calls = {"n": 0}

    def loss(*args):
        out = real(*args)
        t = calls["n"]
        calls["n"] += 1
        return (out[0] * float("nan"), *out[1:]) if t in steps else out

    return loss


def _setup(cfg):
    fs = random_featureset()
    r = train.setup_run(cfg, fs, torch.device("cpu"))
    return r, r.batches(0)


@pytest.mark.parametrize("bad", [set(), {1, 3}])
def test_device_counts_match_the_eager_host_checks(monkeypatch, bad):
    cfg = BASE
    r, batches = _setup(cfg)
    assert len(batches) >= 4
    init = {k: v.clone() for k, v in r.model.state_dict().items()}

    # eager: today's loop, host checks per step
    monkeypatch.setattr(train, "joint_loss", _nan_on(bad, joint_loss))
    opt, sched = train.optimiser(cfg, r.model.parameters(), r.n_batches)
    torch.manual_seed(5)
    eager = train.train_one_epoch(r.model, r.model, opt, sched, r.batcher, batches, cfg.loss, contextlib.nullcontext())
    w_eager = {k: v.clone() for k, v in r.model.state_dict().items()}

    # on the device: the same steps, flags and sums kept as tensors, a fused AdamW skipping flagged steps
    r.model.load_state_dict(init)
    monkeypatch.setattr(graphed, "joint_terms", _nan_on(bad, graphed.joint_terms))
    opt = graphed.fused_adamw(r.model.parameters(), cfg.train.lr, cfg.train.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.train.lr, total_steps=r.n_batches, pct_start=0.2)
    step = graphed.GraphedStep(r.model, cfg.loss, graphed.labeled_prefix(batches[0][1]), graph=False)
    gather = graphed.resident(r.batcher, torch.device("cpu"), train.model_inputs)
    torch.manual_seed(5)
    dev = graphed.train_one_epoch_device(step, gather, opt, sched, batches, torch.device("cpu"))

    assert dev["nonfinite_steps"] == eager["nonfinite_steps"] == len(bad)
    assert dev.keys() == eager.keys()
    for k in eager:
        assert dev[k] == pytest.approx(eager[k], rel=1e-4, abs=1e-5), k
    # fused against foreach AdamW: last-digit differences, which Adam's m/sqrt(v) magnifies for near-zero gradients
    # (a few 1e-4 after a few steps at lr 2e-3); a skipped step that moved the weights would be off by far more
    for k, v in r.model.state_dict().items():
        assert torch.allclose(v.float(), w_eager[k].float(), rtol=1e-3, atol=1e-3), k


def test_a_skipped_step_leaves_the_weights_and_moments_alone():
    r, batches = _setup(BASE)
    opt = graphed.fused_adamw(r.model.parameters(), 1e-3, 1e-4)
    step = graphed.GraphedStep(r.model, BASE.loss, graphed.labeled_prefix(batches[0][1]), graph=False)
    gather = graphed.resident(r.batcher, torch.device("cpu"), train.model_inputs)
    loss, _, ok = step(*gather(batches[0][0]))
    assert ok.item() == 0.0
    opt.found_inf = ok
    opt.step()  # a finite first step: moments exist
    before = {k: v.clone() for k, v in r.model.state_dict().items()}
    moments = [s["exp_avg"].clone() for s in opt.state.values()]
    next(r.model.parameters()).grad[0].view(-1)[0] = float("inf")
    bad = graphed.step_nonfinite(loss, r.model.parameters())
    assert bad.item() == 1.0 and not train.grads_finite(r.model.parameters())
    opt.found_inf = bad
    opt.step()
    assert all(torch.equal(v, before[k]) for k, v in r.model.state_dict().items())
    assert all(torch.equal(m, s["exp_avg"]) for m, s in zip(moments, opt.state.values()))
    assert all(int(s["step"]) == 1 for s in opt.state.values())


def test_labeled_prefix():
    import numpy as np

    assert graphed.labeled_prefix(np.array([True, True, False])) == 2
    with pytest.raises(ValueError, match="come first"):
        graphed.labeled_prefix(np.array([True, False, True]))


def test_fit_through_the_device_path_without_a_graph(tmp_path, monkeypatch):
    """fit's train.graph branch end to end on the CPU (the check that refuses the CPU switched off; no graph is
    captured off CUDA): a result close to the eager run's, its config apart."""
    monkeypatch.setattr(graphed, "check_graphable", lambda *a: None)
    fs = random_featureset()
    cfg = BASE.with_(train={"epochs": 2})
    on = train.fit(cfg.with_(train={"graph": True}), fs, str(tmp_path / "g"), progress=False)
    off = train.fit(cfg, fs, str(tmp_path / "e"), progress=False)
    assert on["config"]["train"]["graph"] is True and "graph" not in off["config"]["train"]
    assert on["steps"] == off["steps"] and len(on["history"]) == 2
    for h1, h2 in zip(on["history"], off["history"]):
        assert h1.keys() == h2.keys() and h1["nonfinite_steps"] == h2["nonfinite_steps"] == 0
        assert h1["loss"] == pytest.approx(h2["loss"], rel=1e-3)
