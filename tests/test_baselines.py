"""Baselines and protocols (notebook 07): λ selection, the conditions and their regimes, the protocol
decomposition, failure accounting, and the mini-batch study of CCA-style vs Soft-HGR."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from hgrlib.analysis import baselines as B
from hgrlib.analysis import minibatch as M
from hgrlib.config import Config
from hgrlib.core.losses import cca_corr, soft_hgr
from hgrlib.report import plots
from hgrlib.report.tables import readable

SMALL = dict(dims=[32], batch_sizes=[8, 16, 64, 256], n_batches=8)
FULL4, FULL6, WELL = "CCA full-d, ridge 0.0001", "CCA full-d, ridge 1e-06", "CCA k=batch/4, ridge 1e-3·tr/k"


@pytest.fixture(scope="module")
def planted_study():
    return M.minibatch_study(M.planted_source(pool=512), **SMALL)


# --- tuning, nested in the folds, and the conditions -------------------------------------------------------


def _sel(obj, j, fold, val, lam=0.1):
    return {
        "objective": obj,
        "setting_index": j,
        "setting": f"s{j}",
        "lam": lam,
        "fold": fold,
        "seed": 0,
        "val_uar": val,
        "in_selection": True,
    }


def test_each_fold_chooses_on_its_own_validation_runs_with_ties_to_the_earlier_setting():
    rows = [
        _sel("cca", 0, 0, 0.50),
        _sel("cca", 1, 0, 0.80),
        _sel("cca", 0, 1, 0.70),  # fold 1 prefers setting 0, although setting 1 has the better mean over folds
        _sel("cca", 1, 1, 0.42),
        _sel("hgr", 0, 0, 0.6),
        _sel("hgr", 1, 0, 0.6),  # a tie: the earlier setting
        _sel("hgr", 0, 1, 0.5),
        _sel("hgr", 1, 1, float("nan")),  # a failed run ranks last
    ]
    runs = pd.DataFrame(rows)
    assert B.select_settings(runs) == {("cca", 0): 1, ("cca", 1): 0, ("hgr", 0): 0, ("hgr", 1): 0}
    # rows that are not tuning runs (final runs of other seeds) do not vote
    extra = pd.DataFrame([_sel("cca", 0, 0, 1.0) | {"seed": 1, "in_selection": False}])
    assert B.select_settings(pd.concat([runs, extra]))[("cca", 0)] == 1
    t = B.tuning_table(runs, B.select_settings(runs)).set_index(["objective", "setting"])
    assert t.loc[("cca", "s1"), "chosen_on_folds"] == "0" and t.loc[("cca", "s0"), "chosen_on_folds"] == "1"
    assert t.loc[("hgr", "s1"), "runs_failed"] == 1 and t.loc[("hgr", "s1"), "val_uar_mean"] == pytest.approx(0.6)


def test_tuning_grids_give_every_objective_the_same_budget_and_flag_an_edge():
    grids = B.tuning_grids(64)
    assert {k: len(v) for k, v in grids.items()} == {"hgr": B.BUDGET, "cca": B.BUDGET, "infonce": B.BUDGET}
    assert max(g["loss"]["lam"] for g in grids["hgr"]) > 1.0  # widened past the old top edge (λ = 1)
    assert min(g["loss"]["lam"] for g in grids["cca"]) < 0.01  # and below the old bottom edge (λ = 0.01)
    for g in grids["cca"]:  # CCA always in its well-posed regime: k ≤ batch/4
        assert 4 * g["loss"]["cca_dim"] <= g["train"].get("batch_size", 64)
    assert {g["loss"]["temperature"] for g in grids["infonce"]} == {0.1, 0.07}
    assert B.setting_label(grids["cca"][-1]) == "λ=0.1, cca_dim=32, cca_ridge=0.01, batch_size=128"
    runs = pd.DataFrame([_sel("x", 0, 0, 0.5, lam=0.01), _sel("x", 1, 0, 0.9, lam=1.0), _sel("x", 2, 0, 0.6, lam=0.1)])
    t = B.tuning_table(runs, B.select_settings(runs)).set_index("setting")
    assert t.loc["s1", "edge"] and not t.loc["s2", "edge"] and not t.loc["s0", "edge"]


def _make_runs(n_folds):
    return lambda cfg, seeds: [cfg.with_(train={"seed": int(s), "fold": f}) for f in range(n_folds) for s in seeds]


def _two(lams):
    k = {"cca": {"cca_dim": 16}}  # CCA in its well-posed regime at batch 64
    return {o: tuple({"loss": {"lam": x} | k.get(o, {})} for x in lams) for o in ("hgr", "cca", "infonce")}


def test_baseline_plan_tunes_every_fold_and_runs_each_folds_choice_with_every_seed():
    cfg = Config().with_(train={"n_folds": 4})
    conds = B.baseline_conditions(0.1, batch_size=64, grids=_two((0.01, 0.1, 1.0)))
    assert [c.objective for c in conds] == ["ce", "hgr3", "hgr", "cca", "infonce"]
    sel = B.baseline_plan(cfg, conds, seeds=(0, 1, 2), make_runs=_make_runs(4))
    assert len(sel) == 3 * 3 * 4 and sel["in_selection"].all() and not sel["selected"].any()
    assert {c.train.seed for c in sel["config"]} == {0} and {c.train.fold for c in sel["config"]} == {0, 1, 2, 3}

    chosen = {(o, f): (f + i) % 3 for i, o in enumerate(("hgr", "cca", "infonce")) for f in range(4)}  # choices differ by fold
    plan = B.baseline_plan(cfg, conds, seeds=(0, 1, 2), make_runs=_make_runs(4), chosen=chosen)
    assert len(plan) == 36 + 5 * 12 - 3 * 4  # each fold's chosen seed-0 run is listed once
    assert plan["config"].map(hash).is_unique
    final = plan[plan["selected"]]
    assert final.groupby("objective").size().to_dict() == {"ce": 12, "hgr3": 12, "hgr": 12, "cca": 12, "infonce": 12}
    for (obj, fold), j in chosen.items():  # every final run of a fold uses that fold's choice, and no other fold's
        rows = final[(final["objective"] == obj) & (final["config"].map(lambda c: c.train.fold) == fold)]
        assert len(rows) == 3 and set(rows["setting_index"]) == {j}
        assert {c.loss.lam for c in rows["config"]} == {(0.01, 0.1, 1.0)[j]}
    assert set(final.loc[final["objective"] == "hgr3", "lam"]) == {0.1} and set(final.loc[final["objective"] == "ce", "lam"]) == {0.0}
    assert not plan.loc[~plan["selected"], "objective"].isin(["ce", "hgr3"]).any()
    # the configs: one pair for the tuned ones, CCA with its own knobs
    c = next(r.config for r in plan.itertuples() if r.objective == "cca")
    assert (c.loss.corr, c.loss.w_ay, c.loss.w_vy) == ("cca", 0.0, 0.0)
    hgr3 = next(r.config for r in plan.itertuples() if r.objective == "hgr3")
    assert hgr3.loss == Config().loss.__class__(lam=0.1)  # the paper's 3 pairs
    with pytest.raises(KeyError, match="no setting chosen"):
        B.baseline_plan(cfg, conds, (0,), _make_runs(4), chosen={("hgr", 0): 0})
    default = B.baseline_plan(cfg, B.baseline_conditions(0.1, 64), (0,), _make_runs(4))
    big = [r.config for r in default.itertuples() if r.objective == "cca" and r.config.train.batch_size == 128]
    assert big and all(x.loss.cca_dim == 32 for x in big)
    assert default.set_index("objective")["regime"].groupby(level=0).first().to_dict() == {
        "hgr": "Soft-HGR: no inverse, any batch",
        "cca": "CCA k=16 ≤ batch/4, ridge 0.001·tr/k: well-posed",
        "infonce": "InfoNCE: no covariance",
    }


def test_cca_regime_labels():
    assert B.cca_regime(16, 64, 1e-3) == ("CCA k=16 ≤ batch/4, ridge 0.001·tr/k: well-posed", True)
    assert B.cca_regime(17, 64, 1e-3)[1] is False and "ill-conditioned" in B.cca_regime(32, 64, 1e-3)[0]
    assert "singular" in B.cca_regime(64, 64, 1e-4, relative=False)[0]
    full = Config().with_(loss={"lam": 0.1, "corr": "cca"})  # cca_dim 0: all 64 dims on a batch of 64
    assert B.regime(full).startswith("CCA k=64 ≥ batch−1")


# --- running, tables ----------------------------------------------------------------------------------------


def _result(seed=0, fold=0, acc=0.5, nonfinite=(0,), **extra):
    c = Config().with_(train={"seed": seed, "fold": fold}).to_dict()
    test = {k: acc for k in ("acc", "uar", "seg_acc", "seg_uar", "clip_acc", "clip_uar")}
    hist = [{"epoch": i + 1, "loss": 1.0, "nonfinite_steps": n} for i, n in enumerate(nonfinite)]
    return {
        "config": c,
        "test": test,
        "history": hist,
        "seconds": 1.0,
        "run_dir": None,
        "best_val_uar": 0.4,
        "n_train_segments": 100,
        "steps": 10,
    } | extra


def test_safe_run_all_turns_a_crash_into_a_flagged_result(monkeypatch):
    import hgrlib.experiment.launch

    def fit(cfg, fs, runs_dir, progress=True):
        if cfg.loss.corr == "cca":
            raise torch.linalg.LinAlgError("linalg.cholesky: The factorization could not be completed")
        return _result()

    monkeypatch.setattr(hgrlib.experiment.launch, "cached_fit", fit)
    cfgs = [Config(), Config().with_(loss={"corr": "cca", "lam": 0.1})]
    out = B.safe_run_all(cfgs, fs=None, progress=False)
    assert "error" not in out[0] and "LinAlgError" in out[1]["error"]
    assert math.isnan(out[1]["test"]["acc"]) and out[1]["config"]["loss"]["corr"] == "cca"
    from hgrlib.experiment.prepare import results_frame

    frame = results_frame(out, condition=["x", "y"])  # placeholders tabulate like real results
    assert len(frame) == 2 and math.isnan(frame["val_uar"].iloc[1])


def test_run_plan_and_baselines_table(monkeypatch):
    import hgrlib.experiment.launch

    def fit(cfg, fs, runs_dir, progress=True):
        if cfg.loss.corr == "cca" and cfg.train.fold == 1 and (cfg.loss.lam == 1.0 or cfg.train.seed == 1):
            raise RuntimeError("boom")
        acc = {"hgr": 0.7, "cca": 0.6, "infonce": 0.65}[cfg.loss.corr] if cfg.loss.lam else 0.5
        r = _result(cfg.train.seed, cfg.train.fold, acc=acc, nonfinite=(1, 2) if cfg.loss.corr == "cca" else (0, 0))
        return r | {"config": cfg.to_dict(), "best_val_uar": acc + 0.01 * cfg.loss.lam}

    monkeypatch.setattr(hgrlib.experiment.launch, "cached_fit", fit)
    cfg = Config().with_(train={"n_folds": 3})
    conds = B.baseline_conditions(0.1, 64, grids=_two((0.1, 1.0)))
    plan = B.baseline_plan(cfg, conds, (0, 1), _make_runs(3))
    _, sel = B.run_plan(plan, fs=None, progress=False)
    chosen = B.select_settings(sel)
    assert chosen[("hgr", 0)] == 1 and chosen[("infonce", 2)] == 1  # the larger λ: the better validation UAR
    assert chosen[("cca", 1)] == 0 and chosen[("cca", 0)] == 1  # on fold 1, cca at λ=1 failed
    _, runs = B.run_plan(B.baseline_plan(cfg, conds, (0, 1), _make_runs(3), chosen), fs=None, progress=False)
    assert list(runs.columns[:10]) == [
        "condition",
        "objective",
        "setting",
        "setting_index",
        "lam",
        "selected",
        "in_selection",
        "regime",
        "fold",
        "seed",
    ]
    # the rows a paired comparison of hgr vs cca reads: one per (fold, seed), on both sides
    h = runs[(runs["objective"] == "hgr") & runs["selected"]].set_index(["fold", "seed"])["acc"]
    c = runs[(runs["objective"] == "cca") & runs["selected"]].set_index(["fold", "seed"])["acc"]
    assert sorted(h.index) == sorted(c.index) == [(f, s) for f in range(3) for s in (0, 1)]
    t = B.baselines_table(runs).set_index("objective")
    assert t.loc["cca", "runs"] == 6 and t.loc["cca", "runs_failed"] == 1
    assert t.loc["cca", "settings"] == "λ=0.1, cca_dim=16 (folds 1); λ=1, cca_dim=16 (folds 0, 2)" and t.loc["hgr", "settings"] == "λ=1"
    assert t.loc["cca", "nonfinite_steps"] == 5 * 3  # (1 + 2) per finished run, 5 finished
    assert len(runs) == len(runs.drop_duplicates(["objective", "lam", "fold", "seed"]))  # one row per run
    assert t.loc["hgr", "nonfinite_steps"] == 0 and t.loc["hgr", "acc"] == "70.0 ± 0.0"
    assert t.loc["cca", "regime"].endswith("well-posed")


# --- protocols ------------------------------------------------------------------------------------------------


def test_protocol_table_decomposes_the_gap_into_paired_differences():
    acc = {"subject": [0.50, 0.60, 0.55], "clip": [0.62, 0.66, 0.70], "segment": [0.80, 0.75, 0.90]}
    rows = [
        {"protocol": p, "fold": i, "seed": 0, "seg_acc": a, "clip_acc": a + 0.02, "acc": a, "n_train_segments": 96}
        for p, v in acc.items()
        for i, a in enumerate(v)
    ]
    rows.append({"protocol": "segment", "fold": 5, "seed": 0, "seg_acc": 0.0, "clip_acc": 0.0, "acc": 0.0, "n_train_segments": 96})
    t = B.protocol_table(pd.DataFrame(rows)).set_index("protocol")
    assert list(t.index) == ["subject", "clip", "segment", "clip − subject", "segment − clip", "segment − subject"]
    assert t.loc["segment", "runs"] == 4 and t.loc["subject", "seg_acc_mean"] == pytest.approx(0.55)
    sp, lk, tot = (t.loc[p, "seg_acc_mean"] for p in ("clip − subject", "segment − clip", "segment − subject"))
    assert sp == pytest.approx(np.mean([0.12, 0.06, 0.15]))  # pairs by (fold, seed); the unpaired run is left out
    assert lk == pytest.approx(np.mean([0.18, 0.09, 0.20]))
    assert tot == pytest.approx(sp + lk)
    assert t.loc["segment − clip", "runs"] == 3 and t.loc["segment − clip", "component"] == "segment leakage"
    assert t.loc["clip − subject", "seg_acc_std"] == pytest.approx(np.std([0.12, 0.06, 0.15], ddof=1))
    assert t.loc["clip − subject", "seg_acc"] == "+11.0 ± 4.6 pp"
    assert np.isnan(t.loc["clip − subject", "n_train_segments"]) and t.loc["clip", "n_train_segments"] == 96
    assert "–" in readable(t.reset_index())[0].set_index("protocol").loc["clip − subject", "n_train_segments"]
    fig = plots.plot_protocols(t.reset_index())
    assert len(fig.axes) == 2


# --- the mini-batch study --------------------------------------------------------------------------------------


def test_planted_pairs_have_the_planted_correlations():
    f, g, true = M.planted_pairs(100_000, 4, rho=(0.9, 0.3), seed=1, dtype=torch.float64)
    assert true["cca"] == pytest.approx(0.9 + 0.7 + 0.5 + 0.3) and true["rho"] == pytest.approx((0.9, 0.7, 0.5, 0.3))
    assert cca_corr(f, g, ridge=0.0).item() == pytest.approx(true["cca"], abs=0.02)
    assert soft_hgr(f, g).item() == pytest.approx(true["hgr"], abs=0.03)


def test_study_frames_have_one_row_per_cell_the_documented_columns_and_regimes(planted_study):
    summary, per = planted_study
    n_obj = len(M.objectives())
    assert n_obj == 4 and len(summary) == n_obj * 1 * 4  # batch 256 ≤ pool 512: nothing skipped
    assert len(per) == len(summary) * SMALL["n_batches"]
    for col in (
        "objective",
        "dim",
        "batch",
        "k",
        "regime",
        "well_posed",
        "frac_nonfinite",
        "frac_over_bound",
        "value_mean",
        "value_std",
        "value_rel_spread",
        "grad_mean",
        "grad_std",
        "grad_median",
        "grad_rel_spread",
        "full_value",
        "bias",
        "rel_bias",
        "true_value",
    ):
        assert col in summary.columns, col
    assert set(per.columns) >= {"objective", "dim", "batch", "draw", "value", "grad_norm", "finite"}
    s = summary.set_index(["objective", "batch"])
    assert s.loc[(WELL, 64), "k"] == 16 and s.loc[(WELL, 256), "k"] == 32 and s.loc[(FULL4, 8), "k"] == 32
    assert s.loc[(WELL, 8), "well_posed"] and s.loc[(WELL, 8), "regime"].startswith("CCA k=2 ≤ batch/4")
    assert not s.loc[(FULL4, 64), "well_posed"] and s.loc[(FULL4, 256), "well_posed"]  # 32 ≤ 256/4
    assert "singular" in s.loc[(FULL4, 16), "regime"] and s.loc[("Soft-HGR", 8), "well_posed"]
    # the population value on the dimensions used: Σ of the first k planted ρᵢ
    rho = np.linspace(0.9, 0.3, 32)
    assert s.loc[(WELL, 64), "true_value"] == pytest.approx(rho[:16].sum(), rel=1e-6)
    # batch sizes over the pool are skipped, not sampled with replacement
    small, _ = M.minibatch_study(M.planted_source(pool=20), dims=[4], batch_sizes=[8, 64], n_batches=2)
    assert sorted(small["batch"].unique()) == [8]


def test_cca_breaks_outside_its_well_posed_regime_and_not_inside(planted_study):
    summary, _ = planted_study
    v = M.verdict(summary).set_index(["objective", "batch"])
    # batch 8 < d = 32, absolute ridge: 1e-4 saturates (value ≈ batch − 1, gradient gone); 1e-6 lets float32
    # round-off set the value (over its bound min(k, batch − 1)) or fail
    s = summary.set_index(["objective", "batch"])
    assert s.loc[(FULL4, 8), "value_mean"] == pytest.approx(7.0, rel=0.02) and v.loc[(FULL4, 8), "vanishing"]
    assert v.loc[(FULL4, 8), "biased"]
    small = v.loc[(FULL6, 8)]
    assert small["nonfinite"] or small["impossible"] or small["exploding"]
    # the well-posed variant on the same batches: finite, within its bound, unbiased against the pool at its k
    well = v.xs(WELL, level="objective")
    assert not well[["nonfinite", "impossible", "exploding", "vanishing", "biased"]].any().any()
    assert (s.xs(WELL, level="objective")["rel_bias"].abs() < 0.1).all()
    # well above d the full-d CCA is fine too
    assert not v.loc[(FULL6, 256)][["nonfinite", "impossible", "exploding", "vanishing"]].any()
    hgr = v.xs("Soft-HGR", level="objective")
    assert not hgr[["nonfinite", "exploding", "vanishing"]].any().any()
    assert s.loc[("Soft-HGR", 8), "value_rel_spread"] < 1.0


def test_study_is_deterministic_given_the_seed():
    kw = dict(dims=[8], batch_sizes=[4, 16], n_batches=5)
    a, pa = M.minibatch_study(M.planted_source(pool=64, seed=3), seed=7, **kw)
    b, pb = M.minibatch_study(M.planted_source(pool=64, seed=3), seed=7, **kw)
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(pa, pb)
    c, _ = M.minibatch_study(M.planted_source(pool=64, seed=3), seed=8, **kw)
    assert not np.allclose(a["value_mean"], c["value_mean"])


def test_feature_source_projects_down_only():
    gen = torch.Generator().manual_seed(0)
    f, g = torch.randn(40, 16, generator=gen), torch.randn(40, 16, generator=gen)
    src = M.feature_source(f, g)
    pf, pg, true = src(8)
    assert pf.shape == (40, 8) and pg.shape == (40, 8) and true is None
    assert torch.equal(src(16)[0], f)
    with pytest.raises(ValueError, match="project"):
        src(32)
    feats = {"f": f.numpy(), "g": g.numpy(), "part": np.array(["train"] * 30 + ["test"] * 10)}
    assert M.run_feature_pool(feats, parts=("test",))[0].shape == (10, 16)


def test_study_figures_plot_the_study(planted_study):
    summary, _ = planted_study
    fig = plots.plot_study(summary, "t")
    assert [ax.get_title(loc="left") for ax in fig.axes if ax.images] == [
        "fraction of batches non-finite or over the bound",
        "value bias / |whole-pool value|",
        "median gradient norm",
        "gradient norm: std / mean",
    ]
    fig = plots.plot_value_spread(summary, "t")
    top, bottom = fig.axes[0], fig.axes[1]  # one dimension (32): value above, gradient norm below
    assert top.get_title() == "d = 32: value / whole-pool value" and bottom.get_title() == "d = 32: median gradient norm"
    names = list(dict.fromkeys(summary["objective"]))
    grads = [ln for ln in bottom.get_lines() if ln.get_label() in names]
    assert [ln.get_label() for ln in grads] == names  # one line per objective
    for ln in grads:
        t = summary[summary["objective"] == ln.get_label()].sort_values("batch")
        assert np.allclose(np.asarray(ln.get_xdata(), float), t["batch"])
        assert np.allclose(np.asarray(ln.get_ydata(), float), t["grad_median"], equal_nan=True)
    assert [c.get_label() for c in top.containers] == names  # the error bars: value relative to the whole pool
    for c in top.containers:
        t = summary[summary["objective"] == c.get_label()].sort_values("batch")
        assert np.allclose(np.asarray(c.lines[0].get_ydata(), float), t["value_mean"] / t["full_value"].replace(0, np.nan), equal_nan=True)


def test_verdict_summary_keeps_each_objective_together():
    v = pd.DataFrame(
        {
            "objective": ["hgr", "cca", "cca", "hgr", "cca"],
            "well_posed": [True, False, True, True, False],
            **{f: [False] * 5 for f in M.FLAGS},
        }
    ).assign(biased=[True, True, False, False, True])
    s = M.verdict_summary(v)
    assert list(zip(s["objective"], s["well_posed"])) == [("hgr", True), ("cca", True), ("cca", False)]
    assert list(s["cells"]) == [2, 1, 2] and list(s["biased"]) == [1, 0, 2]
