"""Baselines and protocols (notebook 07): the mini-batch study of CCA-style vs Soft-HGR, λ rule, NaN accounting."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from hgrlib import baselines as B
from hgrlib.config import Config
from hgrlib.losses import cca_corr, soft_hgr

SMALL = dict(dims=[32], batch_sizes=[8, 16, 64, 256], n_batches=8)


@pytest.fixture(scope="module")
def planted_study():
    return B.minibatch_study(B.planted_source(pool=512), **SMALL)


def test_planted_pairs_have_the_planted_correlations():
    f, g, true = B.planted_pairs(100_000, 4, rho=(0.9, 0.3), seed=1, dtype=torch.float64)
    assert true["cca"] == pytest.approx(0.9 + 0.7 + 0.5 + 0.3)
    assert cca_corr(f, g, eps=0.0).item() == pytest.approx(true["cca"], abs=0.02)
    assert soft_hgr(f, g).item() == pytest.approx(true["hgr"], abs=0.03)


def test_study_frames_have_one_row_per_cell_and_the_documented_columns(planted_study):
    summary, per = planted_study
    n_obj = len(B.objectives())
    assert len(summary) == n_obj * 1 * 4  # batch 256 ≤ pool 512: nothing skipped
    assert len(per) == len(summary) * SMALL["n_batches"]
    for col in ("objective", "dim", "batch", "frac_nonfinite", "value_mean", "value_std", "value_rel_spread", "grad_mean",
                "grad_std", "grad_median", "grad_rel_spread", "full_value", "bias", "rel_bias", "true_value"):
        assert col in summary.columns, col
    assert set(per.columns) >= {"objective", "dim", "batch", "draw", "value", "grad_norm", "finite"}
    # batch sizes over the pool are skipped, not sampled with replacement
    s, _ = B.minibatch_study(B.planted_source(pool=20), dims=[4], batch_sizes=[8, 64], n_batches=2)
    assert sorted(s["batch"].unique()) == [8]


def test_cca_breaks_when_batch_below_dim_and_soft_hgr_stays_finite(planted_study):
    summary, _ = planted_study
    v = B.verdict(summary).set_index(["objective", "batch"])
    small = v.loc[("CCA eps=1e-06", 8)]
    assert small["nonfinite"] or small["exploding"]  # batch 8 < d = 32: singular covariance, small eps
    # with the training default eps the value saturates instead: gradient gone or value off
    default = v.loc[("CCA eps=0.0001", 8)]
    assert default["nonfinite"] or default["vanishing"] or default["biased"]
    # well above d CCA is fine
    assert not v.loc[("CCA eps=1e-06", 256)][["nonfinite", "exploding", "vanishing"]].any()
    hgr = v.xs("Soft-HGR", level="objective")
    assert not hgr["nonfinite"].any() and not hgr["exploding"].any() and not hgr["vanishing"].any()
    s = summary.set_index(["objective", "batch"])
    cca = s.loc[("CCA eps=1e-06", 8)]
    assert cca["value_mean"] > 2 * cca["true_value"]  # spurious correlation on a singular batch
    assert s.loc[("Soft-HGR", 8), "value_rel_spread"] < 1.0


def test_study_is_deterministic_given_the_seed():
    kw = dict(dims=[8], batch_sizes=[4, 16], n_batches=5)
    a, pa = B.minibatch_study(B.planted_source(pool=64, seed=3), seed=7, **kw)
    b, pb = B.minibatch_study(B.planted_source(pool=64, seed=3), seed=7, **kw)
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(pa, pb)
    c, _ = B.minibatch_study(B.planted_source(pool=64, seed=3), seed=8, **kw)
    assert not np.allclose(a["value_mean"], c["value_mean"])


def test_feature_source_projects_down_only():
    gen = torch.Generator().manual_seed(0)
    f, g = torch.randn(40, 16, generator=gen), torch.randn(40, 16, generator=gen)
    src = B.feature_source(f, g)
    pf, pg, true = src(8)
    assert pf.shape == (40, 8) and pg.shape == (40, 8) and true is None
    assert torch.equal(src(16)[0], f)
    with pytest.raises(ValueError, match="project"):
        src(32)
    feats = {"f": f.numpy(), "g": g.numpy(), "part": np.array(["train"] * 30 + ["test"] * 10)}
    assert B.run_feature_pool(feats, parts=("test",))[0].shape == (10, 16)


def test_matched_lams_and_baseline_conditions():
    lams = B.matched_lams(0.1, dim=64, batch_size=64)
    assert lams["hgr"] == 0.1 and lams["cca"] == pytest.approx(0.05)
    assert lams["infonce"] == pytest.approx(0.1 * 32 / math.log(64))
    conds = B.baseline_conditions(0.1, 64, 64, lam_cca=0.01)
    assert conds["CE + CCA (a–v)"]["loss"] == {"lam": 0.01, "corr": "cca", "w_av": 1.0, "w_ay": 0.0, "w_vy": 0.0}
    assert conds["CE + Soft-HGR (3 pairs)"]["loss"] == {"lam": 0.1}  # the config of notebook 02: cached runs reused
    for change in conds.values():
        Config().with_(**change)  # every change is a valid config


def _result(history, seed=0, **extra):
    c = Config().with_(train={"seed": seed}).to_dict()
    test = {k: 0.5 for k in ("acc", "uar", "seg_acc", "seg_uar", "clip_acc", "clip_uar")}
    return {"config": c, "test": test, "history": history, "seconds": 1.0, "run_dir": None} | extra


def test_nonfinite_report_flags_nan_losses_and_errors():
    good = _result([{"epoch": 1, "loss": 1.0, "s_av": 0.1, "val_uar": 0.2}])
    bad = _result([{"epoch": 1, "loss": 1.0}, {"epoch": 2, "loss": float("nan"), "s_av": float("inf")}], seed=1)
    failed = _result([], seed=2, error="LinAlgError: eigh failed")
    rep = B.nonfinite_report([good, bad, failed], ["a", "a", "b"])
    assert list(rep["nonfinite_loss"]) == [False, True, False]
    assert rep["first_nonfinite_epoch"].iloc[1] == 2
    summ = B.divergence_summary(rep).set_index("condition")
    assert summ.loc["a", "runs_nonfinite_loss"] == 1 and summ.loc["b", "runs_failed"] == 1


def test_safe_run_all_turns_a_crash_into_a_flagged_result(monkeypatch):
    import hgrlib.experiment

    def fit(cfg, fs, runs_dir, progress=True):
        if cfg.loss.corr == "cca":
            raise torch.linalg.LinAlgError("linalg.eigh: The algorithm failed to converge")
        return _result([{"epoch": 1, "loss": 1.0}])

    monkeypatch.setattr(hgrlib.experiment, "fit", fit)
    cfgs = [Config(), Config().with_(loss={"corr": "cca", "lam": 0.1})]
    out = B.safe_run_all(cfgs, fs=None, progress=False)
    assert "error" not in out[0] and "LinAlgError" in out[1]["error"]
    assert math.isnan(out[1]["test"]["acc"]) and out[1]["config"]["loss"]["corr"] == "cca"
    from hgrlib.experiment import results_frame

    assert len(results_frame(out, condition=["x", "y"])) == 2  # placeholders tabulate like real results


def test_protocol_table_reports_inflation_in_points():
    rows = []
    for proto, acc in (("subject", 0.5), ("segment", 0.8)):
        for s in range(2):
            rows.append({"condition": "fusion (CE)", "protocol": proto, "seg_acc": acc + 0.01 * s, "seg_uar": acc,
                         "clip_acc": acc})
    t = B.protocol_table(pd.DataFrame(rows)).set_index("protocol")
    assert t.loc["segment", "seg_acc_inflation_pp"] == pytest.approx(30.0)
    assert math.isnan(t.loc["subject", "seg_acc_inflation_pp"])
    assert t.loc["subject", "runs"] == 2
