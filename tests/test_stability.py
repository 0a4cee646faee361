"""Stability analyses (notebook 05) on small made-up arrays."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hgrlib.analysis import stability as st
from hgrlib.analysis.embeddings import standardize


def _feats(n=30, d=6, seed=0, parts=None):
    r = np.random.default_rng(seed)
    ids = np.array([f"{1 + i % 3:02d}/01-01-0{1 + i % 6}-01-01-01-{1 + i % 3:02d}-{i}" for i in range(n)])
    return {
        "clip_ids": ids,
        "part": np.array(parts if parts is not None else ["test"] * n),
        "labels": np.arange(n) % 3,
        "subjects": np.array([c[:2] for c in ids]),
        "f": r.normal(size=(n, d)),
        "g": r.normal(size=(n, d)),
        "z": r.normal(size=(n, d)),
    }


def _rotation(d, seed=1):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    return q


def test_select_keeps_only_the_part_and_every_array_alike():
    fe = _feats(6, parts=["train", "test", "val", "test", "train", "test"])
    t = st.select(fe, "test")
    assert list(t["clip_ids"]) == list(fe["clip_ids"][[1, 3, 5]])
    assert t["f"].shape == (3, 6) and np.array_equal(t["f"], fe["f"][[1, 3, 5]])
    with pytest.raises(ValueError):
        st.select(fe, "nope")


def test_seed_cka_is_one_for_a_rotated_scaled_copy_and_aligns_clips_by_id():
    a = _feats(40, 8, seed=0)
    b = dict(a)
    b["f"] = 3.0 * a["f"] @ _rotation(8)
    perm = np.random.default_rng(2).permutation(40)  # the second run lists its clips in another order
    b = {k: (v[perm] if np.ndim(v) else v) for k, v in b.items()}
    c = _feats(40, 8, seed=5)
    c["clip_ids"] = a["clip_ids"]
    df = st.seed_cka({0: a, 1: b, 2: c}, "f")
    assert list(zip(df["seed_a"], df["seed_b"])) == [(0, 1), (0, 2), (1, 2)]
    assert df["cka"].iloc[0] == pytest.approx(1.0, abs=1e-9)
    assert df["cka"].iloc[1] < 0.6 and (df["clips"] == 40).all()
    assert st.seed_cka({0: a}, "f").empty


def test_align_rejects_runs_without_common_clips():
    a, b = _feats(5), _feats(5)
    b["clip_ids"] = np.array([f"99/x{i}" for i in range(5)])
    with pytest.raises(ValueError):
        st.align([a, b])


def test_mean_std_gives_mean_std_and_text():
    from hgrlib.report.tables import mean_std

    df = pd.DataFrame({"c": ["x", "x", "y"], "v": [0.2, 0.4, 0.5]})
    s = mean_std(df, ["c"], ("v",), scale=1, digits=3, count="n")
    assert s["n"].tolist() == [2, 1] and s["v_mean"].tolist() == pytest.approx([0.3, 0.5]) and s["v_std"].iloc[1] == 0.0
    assert s["v"].iloc[0] == "0.300 ± 0.141"
    assert mean_std(pd.DataFrame({"c": ["x"], "v": [np.nan]}), ["c"], ("v",))["v"].iloc[0] == "–"


def _runs(values: dict) -> pd.DataFrame:
    """A runs table from {(condition, fold): [acc of seed 0, seed 1, ...]}."""
    rows = [
        {"condition": c, "fold": f, "seed": s, "acc": a, "uar": a - 0.01} for (c, f), accs in values.items() for s, a in enumerate(accs)
    ]
    return pd.DataFrame(rows)


def test_score_spread_groups_by_one_or_several_columns():
    runs = pd.DataFrame({"condition": ["a", "a", "b"], "acc": [0.5, 0.7, 0.6], "uar": [0.4, 0.6, 0.6]})
    s = st.score_spread(runs)
    assert s["runs"].tolist() == [2, 1] and s["acc_range"].iloc[0] == pytest.approx(0.2)
    assert s["acc_std"].tolist() == pytest.approx([np.std([0.5, 0.7], ddof=1), 0.0])


def test_seed_spread_is_per_fold_not_pooled_over_folds():
    # folds differ a lot (0.4 vs 0.8), seeds within a fold barely: the spread over seeds must be small
    runs = _runs({("a", 0): [0.40, 0.42, 0.44], ("a", 1): [0.80, 0.80, 0.80], ("b", 0): [0.5, 0.6, 0.7], ("b", 1): [0.5, 0.5, 0.5]})
    per = st.seed_spread(runs)
    assert per[["condition", "fold"]].values.tolist() == [["a", 0], ["a", 1], ["b", 0], ["b", 1]]
    assert (per["seeds"] == 3).all()
    assert per["acc_std"].tolist() == pytest.approx([0.02, 0.0, 0.1, 0.0])
    assert per["acc_mean"].tolist() == pytest.approx([0.42, 0.80, 0.6, 0.5])
    s = st.spread_summary(runs).set_index("condition")
    assert s.loc["a", "acc_seed_std"] == pytest.approx(0.01) and s.loc["b", "acc_seed_std"] == pytest.approx(0.05)
    assert s.loc["a", "acc_seed_range"] == pytest.approx(0.02)
    # pooled over folds, "a" looks far less stable than "b": the fold difference, not the seeds
    assert s.loc["a", "acc_pooled_std"] > 0.2 > s.loc["b", "acc_pooled_std"]
    assert s.loc["a", "runs"] == 6 and s.loc["a", "folds"] == 2
    assert s.loc["b", "uar_seed_std"] == pytest.approx(0.05)


def _fold_feats(fold: int, n=40, d=8, seed=0):
    """Features of one run on `fold`: the fold's own test clips (ids differ between folds) plus training clips."""
    fe = _feats(n, d, seed=seed, parts=["test"] * (n // 2) + ["train"] * (n - n // 2))
    fe["clip_ids"] = np.array([f"{fold:02d}/clip{i}" for i in range(n)])
    return fe


def test_seed_cka_pairs_has_one_row_per_condition_fold_pair_feature():
    base = {fold: _fold_feats(fold, seed=10 + fold) for fold in (0, 1)}
    feats = {}
    for fold in (0, 1):
        for s in (2, 0, 1):  # seeds met out of order: pairs still read "0-1", "0-2", "1-2"
            same = {k: (3.0 * v @ _rotation(8, s + 1) if k in st.FEATURE_KEYS else v) for k, v in base[fold].items()}
            feats["same", fold, s] = same  # every seed learned the same features up to rotation and scale
            feats["random", fold, s] = _fold_feats(fold, seed=100 + 10 * fold + s)
    df = st.seed_cka_pairs(feats)
    assert list(df.columns) == ["condition", "fold", "pair", "feature", "cka"]
    assert len(df) == 2 * 2 * 3 * 3 and not df.duplicated(["condition", "fold", "pair", "feature"]).any()
    for (cond, fold), g in df.groupby(["condition", "fold"]):
        assert sorted(set(g["pair"])) == ["0-1", "0-2", "1-2"] and sorted(set(g["feature"])) == ["f", "g", "z"]
    assert df[df["condition"] == "same"]["cka"].to_numpy() == pytest.approx(1.0, abs=1e-9)
    rnd = df[df["condition"] == "random"]["cka"]
    assert rnd.between(0, 1).all() and rnd.max() < 0.8
    # the pair text is written as the claims module reads it back (matched with the other condition)
    assert df["pair"].map(type).eq(str).all() and df["fold"].tolist()[0] == 0


def test_seed_cka_pairs_compares_clips_by_id_and_shuffling_rows_lowers_it():
    a = _fold_feats(0, n=60, seed=1)
    b = {k: (v @ _rotation(8, 7) if k == "f" else v) for k, v in a.items()}
    perm = np.random.default_rng(3).permutation(60)
    b_reordered = {k: (v[perm] if np.ndim(v) else v) for k, v in b.items()}  # same clips, listed in another order
    shuffled = dict(b)
    shuffled["f"] = b["f"][perm]  # rows no longer belong to their clip ids
    df = st.seed_cka_pairs({("x", 0, 0): a, ("x", 0, 1): b_reordered, ("y", 0, 0): a, ("y", 0, 1): shuffled}, keys=("f",))
    cka = df.set_index("condition")["cka"]
    assert cka["x"] == pytest.approx(1.0, abs=1e-9)
    assert cka["y"] < 0.7
    assert st.seed_cka_pairs({("x", 0, 0): a}).empty  # one seed: nothing to pair


def test_av_correlation_finds_shared_signal_and_held_out_is_not_inflated():
    r = np.random.default_rng(0)
    n, d = 400, 6
    s = r.normal(size=(n, 2))
    f = np.c_[s, r.normal(size=(n, d - 2))] @ _rotation(d, 3)
    g = np.c_[s + 0.1 * r.normal(size=(n, 2)), r.normal(size=(n, d - 2))] @ _rotation(d, 4)
    fe = {"clip_ids": np.arange(n).astype(str), "part": np.where(np.arange(n) < 300, "train", "test"), "f": f, "g": g}
    df = st.av_correlation(fe, k=4)
    assert df["component"].tolist() == [1, 2, 3, 4] and (df["clips"] == 100).all()
    assert (df["in_sample"].iloc[:2] > 0.95).all() and (df["held_out"].iloc[:2] > 0.95).all()
    assert df["held_out"].iloc[3] < 0.4
    # few clips, many dimensions: in-sample CCA is near 1 by construction, held-out directions are not
    noise = {
        "clip_ids": np.arange(60).astype(str),
        "part": np.array(["train"] * 40 + ["test"] * 20),
        "f": r.normal(size=(60, 30)),
        "g": r.normal(size=(60, 30)),
    }
    df = st.av_correlation(noise, k=3)
    assert df["in_sample"].iloc[0] > 0.9 and df["held_out"].iloc[0] < 0.8


def test_generator_factor_map_lists_the_shared_factors():
    gen = st.generator_factors().set_index("factor")
    assert gen.index.is_unique and set(gen["kind"]) == {"shared", "audio only", "video only", "neither"}
    shared = set(gen.index[gen["kind"] == "shared"])
    # not only emotion: intensity, the statement and its syllable timing, and the subject reach both
    assert {
        "emotion",
        "intensity",
        "statement",
        "actor",
        "rate",
        "rate_jitter",
        "onset",
        "a_rate",
        "env_mean",
        "speech_onset",
        "syllable_rate",
    } <= shared
    assert not shared & {
        "f0_base",
        "formant_scale",
        "gain_db",
        "a_f0",
        "skin",
        "light",
        "yaw",
        "roll",
        "v_open",
        "visual_strength",
        "repetition",
    }
    assert set(gen.index[(gen["kind"] == "shared") & (gen["level"] == "subject")]) == {"actor", "rate"}
    assert gen.loc["f0_base", "kind"] == "audio only" and gen.loc["light", "kind"] == "video only"
    assert gen.loc["repetition", "kind"] == "neither"
    # a factor sampled upstream reaches exactly the modalities of the factors it acts through
    for name, row in gen[gen["through"] != ""].iterrows():
        through = gen.loc[row["through"].split(", ")]
        assert (row["audio"], row["video"]) == (through["audio"].any(), through["video"].any()), name
    # the probes' kinds come from the map
    probed = {n: (k, lvl) for n, k, lvl in st.FACTORS}
    assert probed["emotion"] == ("shared", "clip") and probed["actor"] == ("shared", "subject")
    assert probed["f0_base"] == ("audio only", "subject") and probed["yaw"] == ("video only", "clip")
    assert {"statement", "syllable_rate", "env_mean", "intensity"} <= set(probed)


def test_generator_factor_map_agrees_with_the_renderer():
    """Perturb each factor of a clip and re-render with the generator: the factors the renderer reads reach
    exactly the modalities the map says; the upstream ones (emotion, strengths, ...) are not read directly."""
    from hgrlib.data import synthetic as syn

    gen = st.generator_factors().set_index("factor")
    cfg = syn.SyntheticConfig(n_subjects=2, duration=1.2, height=60, width=80, sr=8000)
    dep = st.render_dependence(cfg, actor=2).set_index("factor")
    keys = set(syn.clip_factors(cfg, 2, syn.clip_names(cfg)[-1][1])) - {"file", "actor"}
    assert set(dep.index) == keys and keys <= set(gen.index)  # every factor of the generator is in the map
    for k in keys:
        direct = gen.loc[k, "through"] == ""
        want = (gen.loc[k, "audio"], gen.loc[k, "video"]) if direct else (False, False)
        assert (dep.loc[k, "audio"], dep.loc[k, "video"]) == want, k


def test_envelope_factors_come_from_the_generators_envelope():
    from hgrlib.data import synthetic as syn

    cfg = syn.SyntheticConfig(n_subjects=2)
    fac = pd.DataFrame([syn.clip_factors(cfg, a, n) for a, n in syn.clip_names(cfg)[:12]])
    env = st.envelope_factors(cfg, fac)
    assert list(env.columns) == ["env_mean", "speech_onset", "syllable_rate"] and list(env.index) == list(fac.index)
    assert env.equals(st.envelope_factors(cfg, fac.iloc[::-1]).loc[fac.index])  # per clip, whatever the order
    assert (env["speech_onset"] - fac["onset"]).between(0, 0.02).all()  # the envelope starts at the onset
    assert env["env_mean"].between(0.05, 0.6).all() and env["env_mean"].std() > 0.01
    for i in range(len(fac)):
        f = fac.iloc[i].to_dict()
        _, e = syn.synth_audio(cfg, f, syn._rng(cfg.seed, f["actor"], f["file"], "render"))
        assert env["env_mean"].iloc[i] == pytest.approx(e.mean())
        on = np.flatnonzero(e > 0)
        if on[-1] < len(e) - 1:  # speech ends inside the clip: syllables over its span is the syllable rate
            span = (on[-1] - on[0] + 1) / cfg.sr
            assert len(syn.STATEMENTS[f["statement"]]) / span == pytest.approx(env["syllable_rate"].iloc[i], rel=1e-3)


def test_factor_table_adds_the_envelope_when_the_corpus_says_how_it_was_made(tmp_path):
    import json
    from dataclasses import asdict

    from hgrlib.data import synthetic as syn

    cfg = syn.SyntheticConfig(n_subjects=2, clips_per_emotion=1, seed=3)
    fac = pd.DataFrame([syn.clip_factors(cfg, a, n) for a, n in syn.clip_names(cfg)])
    fac.to_csv(tmp_path / "factors.csv", index=False)
    ids = [f"{a:02d}/{f}" for a, f in zip(fac["actor"], fac["file"])][::-1]
    assert "env_mean" not in st.factor_table(tmp_path, ids).columns  # no corpus.json: no envelope
    (tmp_path / "corpus.json").write_text(json.dumps({"config": asdict(cfg)}))
    assert st.corpus_config(tmp_path) == cfg
    t = st.factor_table(tmp_path, ids)
    assert list(t.index) == ids and {"env_mean", "speech_onset", "syllable_rate"} <= set(t.columns)
    want = st.envelope_factors(cfg, pd.read_csv(tmp_path / "factors.csv", dtype={"file": str}))
    assert t["syllable_rate"].to_numpy() == pytest.approx(want["syllable_rate"].to_numpy()[::-1])


def test_factor_table_aligns_rows_to_clip_ids(tmp_path):
    rows = pd.DataFrame(
        {
            "file": ["01-01-03-01-01-01-01", "01-01-05-02-01-01-02", "01-01-04-01-02-01-12"],
            "actor": [1, 2, 12],
            "emotion": ["happy", "angry", "sad"],
            "yaw": [0.1, -0.1, 0.05],
        }
    )
    rows.to_csv(tmp_path / "factors.csv", index=False)
    ids = ["12/01-01-04-01-02-01-12", "01/01-01-03-01-01-01-01"]
    t = st.factor_table(tmp_path, ids)
    assert list(t.index) == ids and t["emotion"].tolist() == ["sad", "happy"] and t["actor"].tolist() == [12, 1]
    with pytest.raises(KeyError):
        st.factor_table(tmp_path, ["03/nope"])
    with pytest.raises(FileNotFoundError):
        st.factor_table(tmp_path / "missing", ids)


def test_factor_probes_find_a_planted_factor():
    r = np.random.default_rng(0)
    n = 90
    emotion = np.array(["happy", "sad", "angry"])[np.arange(n) % 3]
    pitch = r.normal(size=n)
    light = r.normal(size=n)
    code = {"happy": [3, 0], "sad": [0, 3], "angry": [-3, -3]}
    f = np.c_[[code[e] for e in emotion], 2 * pitch, r.normal(size=(n, 3))] + 0.3 * r.normal(size=(n, 6))
    g = np.c_[3 * light, r.normal(size=(n, 5))]
    ids = np.array([f"{i:02d}/clip{i}" for i in range(n)])
    fe = {"clip_ids": ids, "part": np.array(["test"] * n), "f": f, "g": g}
    factors = pd.DataFrame({"emotion": emotion, "f0_base": pitch, "light": light}, index=ids)
    which = (("emotion", "shared", "clip"), ("f0_base", "audio nuisance", "subject"), ("light", "visual nuisance", "clip"))
    df = st.factor_probes(fe, factors.iloc[::-1], keys=("f", "g"), which=which).set_index(["factor", "feature"])
    assert df.loc[("emotion", "f"), "metric"] == "acc" and df.loc[("emotion", "f"), "chance"] == pytest.approx(1 / 3)
    assert df.loc[("emotion", "f"), "score"] > 0.9 and df.loc[("emotion", "g"), "score"] < 0.6
    assert df.loc[("f0_base", "f"), "metric"] == "R²" and df.loc[("f0_base", "f"), "score"] > 0.8
    assert df.loc[("f0_base", "g"), "score"] < 0.2
    assert df.loc[("light", "g"), "score"] > 0.8 and df.loc[("light", "f"), "score"] < 0.2


def test_probe_score_is_not_thrown_by_a_barely_alive_unit():
    # a ReLU unit near 0 on every clip but one: standardised inside each fold, the clip where it fires got
    # predictions off by orders of magnitude (R² of -10^8 on z); standardised over all clips, it does not
    r = np.random.default_rng(0)
    n = 60
    t = r.normal(size=n)
    x = np.maximum(np.c_[t + 0.5 * r.normal(size=n), r.normal(size=(n, 3))], 0)
    unit = 1e-6 * np.abs(r.normal(size=n))
    unit[5] = 1.0
    for seed in range(3):
        clean, _ = st.probe_score(x, t, discrete=False, seed=seed)
        spiked, _ = st.probe_score(np.c_[x, unit], t, discrete=False, seed=seed)
        assert clean > 0.3 and spiked == pytest.approx(clean, abs=0.1)
    z = standardize(np.c_[x, np.zeros(n), unit * 0 + 1.0, unit], drop_below=1e-6)
    assert z.shape == (n, 5) and z.mean(0) == pytest.approx(0, abs=1e-12) and z.std(0) == pytest.approx(1)
    kept = standardize(np.c_[x, np.zeros(n)])  # without drop_below (embeddings): constant columns stay, at zero
    assert kept.shape == (n, 5) and (kept[:, 4] == 0).all()


def test_probe_score_copes_with_tiny_or_constant_targets():
    x = np.random.default_rng(0).normal(size=(12, 4))
    s, chance = st.probe_score(x, np.repeat(["a", "b", "c", "d", "e", "f"], 2), discrete=True)
    assert np.isfinite(s) and chance == pytest.approx(1 / 6)
    assert np.isnan(st.probe_score(x, np.zeros(12), discrete=False)[0])
    assert np.isnan(st.probe_score(x, np.array(["a"] * 12), discrete=True)[0])


def test_figures_plot_the_values_given():
    import matplotlib
    from matplotlib.collections import PathCollection

    from hgrlib.report import plots

    matplotlib.use("Agg")
    runs = pd.DataFrame(
        {"condition": ["a", "a", "b", "b"], "fold": [0, 1, 0, 1], "acc": [0.5, 0.6, 0.55, 0.57], "uar": [0.5, 0.6, 0.5, 0.6]}
    )
    fig = plots.plot_score_spread(runs)
    pts = np.concatenate([c.get_offsets()[:, 1] for c in fig.axes[0].collections if isinstance(c, PathCollection)])
    assert sorted(np.round(pts, 9)) == sorted(np.round(100 * runs["acc"].to_numpy(), 9))  # every run's accuracy, in %
    cca = pd.DataFrame(
        {"condition": ["a"] * 2 + ["b"] * 2, "component": [1, 2] * 2, "in_sample": [0.9, 0.5, 0.8, 0.4], "held_out": [0.7, 0.2, 0.6, 0.1]}
    )
    fig = plots.plot_av_correlation(cca)
    lines = [ln.get_ydata() for ln in fig.axes[0].get_lines() if len(ln.get_ydata()) == 2]
    assert any(np.allclose(y, [0.9, 0.5]) for y in lines) and any(np.allclose(y, [0.6, 0.1]) for y in lines)  # a in-sample, b held-out
    pr = pd.DataFrame(
        {
            "condition": ["a", "a", "b", "b"],
            "factor": ["emotion", "yaw"] * 2,
            "kind": ["shared", "visual nuisance"] * 2,
            "metric": ["acc", "R²"] * 2,
            "feature": ["f"] * 4,
            "score": [0.8, -0.3, 0.9, np.nan],
        }
    )
    fig = plots.plot_factor_probes(pr)
    assert [ax.get_title() for ax in fig.axes if ax.images] == ["a", "b"]  # one panel per condition
    pairs = pd.DataFrame(
        {
            "condition": ["a"] * 6 + ["b"] * 6,
            "fold": [0, 0, 0, 1, 1, 1] * 2,
            "pair": ["0-1", "0-2", "1-2"] * 4,
            "feature": "z",
            "cka": np.linspace(0.8, 0.95, 12),
        }
    )
    fig = plots.plot_seed_cka(pairs)
    (ax,) = fig.axes
    assert ax.get_title() == "fused z" and [t.get_text() for t in ax.get_xticklabels()] == ["a", "b"]
    dots = [c.get_offsets() for c in ax.collections]  # one column of points per condition, at x = 0 and 1
    assert [sorted(d[:, 1]) for d in dots] == [sorted(pairs["cka"][:6]), sorted(pairs["cka"][6:])] and [set(d[:, 0]) for d in dots] == [
        {0},
        {1},
    ]
    grey = [ln for ln in ax.get_lines() if ln.get_linestyle() == "-"]
    assert len(grey) == 6  # one line per (fold, pair) unit, joining it across the conditions
