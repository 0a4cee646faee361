"""Stability analyses (notebook 05) on small made-up arrays."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hgrlib import stability as st


def _feats(n=30, d=6, seed=0, parts=None):
    r = np.random.default_rng(seed)
    ids = np.array([f"{1 + i % 3:02d}/01-01-0{1 + i % 6}-01-01-01-{1 + i % 3:02d}-{i}" for i in range(n)])
    return {"clip_ids": ids, "part": np.array(parts if parts is not None else ["test"] * n),
            "labels": np.arange(n) % 3, "subjects": np.array([c[:2] for c in ids]),
            "f": r.normal(size=(n, d)), "g": r.normal(size=(n, d)), "z": r.normal(size=(n, d))}


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


def test_summarize_gives_mean_and_std():
    df = pd.DataFrame({"c": ["x", "x", "y"], "v": [0.2, 0.4, 0.5]})
    s = st.summarize(df, ["c"], "v")
    assert s["mean"].tolist() == pytest.approx([0.3, 0.5]) and s["std"].iloc[1] == 0.0
    assert s["v"].iloc[0] == "0.300 ± 0.141"
    assert st.summarize(pd.DataFrame({"c": ["x"], "v": [np.nan]}), ["c"], "v")["v"].iloc[0] == "–"


def test_score_spread():
    runs = pd.DataFrame({"condition": ["a", "a", "b"], "acc": [0.5, 0.7, 0.6], "uar": [0.4, 0.6, 0.6]})
    s = st.score_spread(runs)
    assert s["runs"].tolist() == [2, 1] and s["acc_range"].iloc[0] == pytest.approx(0.2)


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
    noise = {"clip_ids": np.arange(60).astype(str), "part": np.array(["train"] * 40 + ["test"] * 20),
             "f": r.normal(size=(60, 30)), "g": r.normal(size=(60, 30))}
    df = st.av_correlation(noise, k=3)
    assert df["in_sample"].iloc[0] > 0.9 and df["held_out"].iloc[0] < 0.8


def test_factor_table_aligns_rows_to_clip_ids(tmp_path):
    rows = pd.DataFrame({"file": ["01-01-03-01-01-01-01", "01-01-05-02-01-01-02", "01-01-04-01-02-01-12"],
                         "actor": [1, 2, 12], "emotion": ["happy", "angry", "sad"], "yaw": [0.1, -0.1, 0.05]})
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


def test_probe_score_copes_with_tiny_or_constant_targets():
    x = np.random.default_rng(0).normal(size=(12, 4))
    s, chance = st.probe_score(x, np.repeat(["a", "b", "c", "d", "e", "f"], 2), discrete=True)
    assert np.isfinite(s) and chance == pytest.approx(1 / 6)
    assert np.isnan(st.probe_score(x, np.zeros(12), discrete=False)[0])
    assert np.isnan(st.probe_score(x, np.array(["a"] * 12), discrete=True)[0])


def test_figures_draw(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    runs = pd.DataFrame({"condition": ["a", "a", "b", "b"], "acc": [0.5, 0.6, 0.55, 0.57], "uar": [0.5, 0.6, 0.5, 0.6]})
    st.plot_spread(runs).savefig(tmp_path / "s.png")
    st.plot_spread(runs.assign(pool=["x", "y", "x", "y"]), group="pool").savefig(tmp_path / "s.png")
    cca = pd.DataFrame({"condition": ["a"] * 2 + ["b"] * 2, "component": [1, 2] * 2, "in_sample": [0.9, 0.5, 0.8, 0.4],
                        "held_out": [0.7, 0.2, 0.6, 0.1]})
    st.plot_av_correlation(cca).savefig(tmp_path / "c.png")
    pr = pd.DataFrame({"condition": ["a", "a", "b", "b"], "factor": ["emotion", "yaw"] * 2, "kind": ["shared", "visual nuisance"] * 2,
                       "metric": ["acc", "R²"] * 2, "feature": ["f"] * 4, "score": [0.8, -0.3, 0.9, np.nan]})
    st.plot_factor_heatmap(pr).savefig(tmp_path / "h.png")
    assert all((tmp_path / p).stat().st_size > 1000 for p in ("s.png", "c.png", "h.png"))
