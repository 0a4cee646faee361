"""hgrlib.experiment.claims on made-up run tables whose verdicts are known (no training)."""

from __future__ import annotations

import os
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from hgrlib.experiment import claims as C
from hgrlib.experiment.claims import CLAIMS, Claim, claims_markdown, evaluate_all, evaluate_claim, paired_effect, write_claims

KEYS = ["fold", "seed"]


def pairs(effect: float, noise: float, seed: int, folds: int = 4, seeds: int = 3, base: float = 0.6) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Runs of B and of A = B + effect + noise (fractions) on every (fold, seed)."""
    rng = np.random.default_rng(seed)
    keys = pd.DataFrame([(f, s) for f in range(folds) for s in range(seeds)], columns=KEYS)
    b = keys.assign(acc=base + rng.normal(0, 0.03, len(keys)))
    a = keys.assign(acc=b["acc"] + effect + rng.normal(0, noise, len(keys)))
    return a, b


def table(a: pd.DataFrame, b: pd.DataFrame, name_a: str, name_b: str, **cols) -> pd.DataFrame:
    return pd.concat([a.assign(condition=name_a), b.assign(condition=name_b)], ignore_index=True).assign(**cols)


def test_hand_case_matches_the_t_interval():
    b = pd.DataFrame({"fold": [0, 1, 2, 3], "seed": 0, "acc": 10.0})
    a = b.assign(acc=b["acc"] + [1.0, 2.0, 3.0, 4.0])
    r = paired_effect(a, b, "acc", KEYS, scale=1.0)
    half = stats.t.ppf(0.975, 3) * np.std([1, 2, 3, 4], ddof=1) / 2
    assert r["n"] == 4 and r["effect"] == pytest.approx(2.5)
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((2.5 - half, 2.5 + half))
    assert r["p"] == pytest.approx(stats.ttest_rel(a["acc"], b["acc"]).pvalue)
    assert r["mean_a"] == pytest.approx(12.5) and r["std_b"] == pytest.approx(0.0) and r["verdict_alone"] == "supported"


def test_clear_effect_is_supported_in_points():
    a, b = pairs(0.05, 0.005, seed=1)
    r = paired_effect(a, b, "acc", KEYS)
    assert r["n"] == 12 and r["n_units"] == 4 and r["dropped"] == 0  # 4 folds x 3 seeds: 4 independent units
    assert 4.0 < r["effect"] < 6.0  # fractions become percentage points
    assert r["ci_low"] > 0 and r["p"] < 0.01 and r["verdict_alone"] == "supported"
    assert r["mean_a"] - r["mean_b"] == pytest.approx(r["effect"])


def test_no_effect_is_inconclusive():
    a, b = pairs(0.0, 0.02, seed=2)
    r = paired_effect(a, b, "acc", KEYS)
    assert r["ci_low"] < 0 < r["ci_high"] and r["p"] > 0.05 and r["verdict_alone"] == "inconclusive"


def test_opposite_effect_is_contradicted():
    a, b = pairs(-0.05, 0.005, seed=3)
    r = paired_effect(a, b, "acc", KEYS)
    assert r["ci_high"] < 0 and r["effect"] < -4 and r["verdict_alone"] == "contradicted"


def test_identical_runs_are_inconclusive_not_a_warning():
    a, b = pairs(0.0, 0.0, seed=4)  # e.g. one run serving both conditions: d = 0 up to float error
    r = paired_effect(a, b, "acc", KEYS)
    assert r["effect"] == 0 and r["p"] == 1.0 and r["verdict_alone"] == "inconclusive"


def test_unpaired_rows_are_dropped_and_counted():
    a, b = pairs(0.05, 0.005, seed=5)
    a = a.drop(index=[0, 5])  # two runs of A missing
    a.loc[7, "acc"] = np.nan  # one run of A failed
    b = pd.concat([b, pd.DataFrame({"fold": [9], "seed": [0], "acc": [0.5]})], ignore_index=True)  # B only
    r = paired_effect(a, b, "acc", KEYS)
    assert r["n"] == 9 and r["dropped"] == 4 and r["verdict_alone"] == "supported"


def test_duplicated_keys_raise_naming_the_table(tmp_path):
    a, b = pairs(0.05, 0.005, seed=6)
    with pytest.raises(ValueError, match="duplicated"):
        paired_effect(pd.concat([a, a.iloc[:1]]), b, "acc", KEYS)
    table(pd.concat([a, a.iloc[:1]]), b, "A", "B").to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(ValueError, match=r"t\.csv"):
        evaluate_claim(Claim("x", "x", "t.csv", "A", "B"), tmp_path)


def test_missing_table_column_or_pairs_give_not_run(tmp_path):
    r = evaluate_claim(Claim("x", "x", "absent.csv", "A", "B"), tmp_path)
    assert r["verdict_alone"] == "not run" and "absent.csv" in r["reason"] and r["n"] == 0
    a, b = pairs(0.05, 0.005, seed=7)
    table(a, b, "A", "B").to_csv(tmp_path / "t.csv", index=False)
    r = evaluate_claim(Claim("x", "x", "t.csv", "A", "B", metric="uar"), tmp_path)
    assert r["verdict_alone"] == "not run" and "uar" in r["reason"]
    r = evaluate_claim(Claim("x", "x", "t.csv", "A", "C"), tmp_path)
    assert r["verdict_alone"] == "not run" and "no rows" in r["reason"] and "C" in r["reason"]
    table(a.iloc[:1], b, "A", "B").to_csv(tmp_path / "one.csv", index=False)
    r = evaluate_claim(Claim("x", "x", "one.csv", "A", "B"), tmp_path)
    assert r["verdict_alone"] == "not run" and r["n"] == 1 and "2 needed" in r["reason"]
    assert evaluate_claim(Claim("x", "x", "t.csv", "A", "B"), tmp_path)["verdict_alone"] == "supported"


def _rows(objective: str, selected: bool, acc: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "fold": [0, 0, 1, 1],
            "seed": [0, 1, 0, 1],
            "objective": objective,
            "selected": selected,
            "condition": f"{objective} {selected}",
            "acc": acc + np.array([0.0, 0.01, -0.01, 0.002]),
        }
    )


def test_per_side_filters_pick_the_right_rows(tmp_path):
    runs = pd.concat(
        [
            _rows("hgr", True, 0.70),
            _rows("hgr", False, 0.10),
            _rows("cca", True, 0.60),
            _rows("cca", False, 0.90),
            _rows("infonce", True, 0.0),
        ],
        ignore_index=True,
    )
    runs.to_csv(tmp_path / "07_baselines_runs.csv", index=False)  # bools come back from the CSV
    r = evaluate_claim(next(c for c in CLAIMS if c.id == "beats a CCA-style loss"), tmp_path)
    assert r["n"] == 4 and r["effect"] == pytest.approx(10.0) and r["mean_b"] == pytest.approx(60.05)
    # shared filters (one line per labeled fraction) and per-side filters combine
    semi = pd.concat(
        [
            pairs(0.1 * k, 0.001, seed=k)[i].assign(labeled_frac=f, condition=name)
            for k, f in enumerate((0.1, 0.25, 0.5), start=1)
            for i, name in enumerate(("labeled + unlabeled (CE + Soft-HGR)", "labeled only (CE + Soft-HGR)"))
        ]
    ).assign(corpus="synthetic seed 0")
    semi.to_csv(tmp_path / "03_semi_supervised_runs.csv", index=False)
    effects = [
        r["effect"]
        for r in (
            evaluate_claim(c, tmp_path)
            for c in CLAIMS
            if c.table == "03_semi_supervised_runs.csv" and c.b == "labeled only (CE + Soft-HGR)"
        )
    ]
    assert effects == pytest.approx([10.0, 20.0], abs=0.5)  # one line per claimed fraction (0.1, 0.25); 0.5 unclaimed


def fake_results(d) -> None:
    """A run table for every claim, each with A = B + 5 points over 4 folds × 3 seeds."""
    a, b = pairs(0.05, 0.005, seed=8)
    sup = table(a, b, "fusion (CE)", "audio only (CE)")
    sup = pd.concat(
        [sup, b.assign(condition="visual only (CE)", acc=b["acc"] + 0.1), a.assign(condition="fusion (CE + Soft-HGR)", acc=a["acc"] + 0.05)]
    )
    sup.assign(corpus="synthetic seed 0").to_csv(d / "02_supervised_runs.csv", index=False)
    rep = table(a, b, "fusion (CE + Soft-HGR)", "fusion (CE)", corpus_seed=1, corpus="synthetic seed 1")
    rep.to_csv(d / "02_replication_runs.csv", index=False)
    mech = pd.concat(
        [a.assign(condition=c) for c in ("fusion (CE + unimodal CE)", "fusion (CE + label pairs)")]
        + [a.assign(condition="fusion (CE + a–v pair)", acc=a["acc"] + 0.05)]
    )  # on corpus 0 the full objective (A + 5) and the a–v pair alone are 5 points above CE (A) and the controls
    mech1 = pd.concat(
        [b.assign(condition=c) for c in ("fusion (CE + unimodal CE)", "fusion (CE + label pairs)")]
        + [a.assign(condition="fusion (CE + a–v pair)")]
    )  # on corpus 1 the full objective is A and CE is B: the same 5 points
    mech = pd.concat([mech.assign(corpus="synthetic seed 0"), mech1.assign(corpus="synthetic seed 1")])
    mech.to_csv(d / "02_mechanism_runs.csv", index=False)
    cka = table(
        a.rename(columns={"seed": "pair", "acc": "cka"}),
        b.rename(columns={"seed": "pair", "acc": "cka"}),
        "fusion (CE + Soft-HGR)",
        "fusion (CE)",
        feature="z",
    )
    cka.to_csv(d / "05_seed_cka_pairs.csv", index=False)
    spread = pd.concat(
        [
            b.assign(condition="fusion (CE)", acc_std=b["acc"] * 0.1 + 0.01),
            b.assign(condition="fusion (CE + Soft-HGR)", acc_std=b["acc"] * 0.1),
        ]
    )
    spread[spread["seed"] == 0].to_csv(d / "05_score_spread.csv", index=False)  # one row per (condition, fold)
    proto = pd.concat([b.assign(protocol="subject"), a.assign(protocol="clip"), a.assign(protocol="segment", acc=a["acc"] + 0.05)])
    proto.assign(condition="fusion (CE + Soft-HGR)", seg_acc=proto["acc"]).to_csv(d / "07_protocols_runs.csv", index=False)


def test_every_claim_reads_its_table(tmp_path):
    fake_results(tmp_path)
    df = evaluate_all(tmp_path).set_index("claim")
    assert list(df.index) == [c.id for c in CLAIMS] and df.index.is_unique
    missing = {c.id for c in CLAIMS if c.table in ("07_baselines_runs.csv", "03_semi_supervised_runs.csv")}
    assert set(df.index[df["verdict"] == "not run"]) == missing
    ran = df.drop(index=list(missing))
    pooled = [c.id for c in CLAIMS if c.table == C._MAIN]
    assert (ran.drop(index=["smaller spread over seeds", *pooled])["n"] == 12).all() and (ran["dropped"] == 0).all()
    for claim in pooled:  # both corpus draws pooled
        assert df.loc[claim, ["n", "n_units", "unit"]].tolist() == [24, 8, "corpus × fold"], claim
    assert df.loc["smaller spread over seeds", "n"] == 4  # one pair per fold
    assert df.loc["fusion beats visual only", "verdict"] == "contradicted"  # visual only = B + 10 > fusion = B + 5
    assert (ran.drop(index="fusion beats visual only")["verdict"] == "supported").all(), ran[["verdict", "effect"]]
    assert df.loc["segment leakage", "effect"] == pytest.approx(5.0)


def test_write_claims_and_readme_are_deterministic(tmp_path):
    from hgrlib.reproduce.runner import update_readme

    res = tmp_path / "results" / "synthetic-default"
    res.mkdir(parents=True)
    fake_results(res)
    before, after = "# Title\n\nIntro text.\n\n<!-- claims:start -->\nold hand-written text\n", "<!-- claims:end -->\n\n## Next\nrest\n"
    (tmp_path / "README.md").write_text(before + after)
    df = write_claims(res)
    assert update_readme(tmp_path, "synthetic-default") is True
    text = (tmp_path / "README.md").read_text()
    assert text.startswith("# Title\n\nIntro text.\n\n<!-- claims:start -->\n") and text.endswith(after)
    inside = text[text.index("<!-- claims:start -->") : text.index("<!-- claims:end -->")]
    assert "old hand-written" not in inside and all(f"| {c.id} |" in inside for c in CLAIMS)
    assert claims_markdown(df) in inside  # formatted once, from the unrounded effects
    csv = (res / "claims.csv").read_bytes()
    num = pd.read_csv(res / "claims.csv")[["effect", "ci_low", "ci_high", "p", "mean_a", "std_b"]].fillna(-1)
    assert num.round(C.DIGITS).equals(num) and not num.round(C.DIGITS - 1).equals(num)  # rounded, not truncated more
    assert list(pd.read_csv(res / "claims.csv")["verdict"]) == list(df["verdict"])
    os.utime(res / "claims.csv", (1, 1))  # as on a fresh clone; unchanged content is not rewritten (the manifest uses file times)
    write_claims(res)
    assert (res / "claims.csv").stat().st_mtime == 1
    update_readme(tmp_path, "synthetic-default")
    assert (res / "claims.csv").read_bytes() == csv and (tmp_path / "README.md").read_text() == text
    assert (res / "claims.md").read_text().startswith(f"# {C.TITLE}\n\n")


def test_run_writes_claims_even_when_no_notebook_runs(tmp_path, monkeypatch):
    from hgrlib.reproduce import runner
    from hgrlib.reproduce.verify import compare_results

    monkeypatch.setenv("HGRLIB_JOBS", "1")
    res = tmp_path / "results"
    (res / "synthetic-smoke").mkdir(parents=True)
    fake_results(res / "synthetic-smoke")
    assert runner.run_notebooks("smoke", only=["none"], results_dir=str(res), figures_dir=str(tmp_path / "figures")) == []
    out = res / "synthetic-smoke"
    assert (out / "claims.csv").is_file() and (out / "claims.md").is_file()
    assert any(e["file"].endswith("claims.csv") for e in pd.read_json(res / "manifest.json").to_dict("records"))
    # --verify compares claims.csv like every other table
    other = tmp_path / "other"
    other.mkdir()
    for f in out.glob("*.csv"):
        (other / f.name).write_text(f.read_text())
    assert compare_results(out, other)[0] == []
    (other / "claims.csv").write_text((other / "claims.csv").read_text().replace("supported", "contradicted", 1))
    assert any(line.startswith("claims.csv") for line in compare_results(out, other)[0])


def test_holm_adjusts_the_p_values_that_exist():
    from hgrlib.experiment.claims import holm

    p = np.array([0.01, np.nan, 0.04, 0.03, 0.5])
    adj = holm(p)
    # sorted 0.01, 0.03, 0.04, 0.5 (m = 4): 4*0.01, 3*0.03, max(0.09, 2*0.04), max(0.09, 1*0.5)
    assert np.isnan(adj[1])
    assert adj[[0, 3, 2, 4]] == pytest.approx([0.04, 0.09, 0.09, 0.5])


INTERNAL = re.compile(r"(?<![\w])[A-Za-z_][A-Za-z0-9_]*=")  # a column=value label ("labeled_frac=0.1"); not "λ=0"


def test_generated_text_names_conditions_as_the_reader_knows_them(tmp_path):
    """Comparisons, findings and claims.md: no internal column=value label inside a condition's name."""
    from hgrlib.experiment.claims import comparison, findings

    assert INTERNAL.search("objective=hgr, selected=True") and INTERNAL.search("(labeled_frac=0.1)")
    assert not INTERNAL.search("labeled + unlabeled (CE, λ=0)") and not INTERNAL.search("p = 0.003")
    fake_results(tmp_path)
    df = write_claims(tmp_path)
    texts = [comparison(c) for c in CLAIMS] + list(df["comparison"]) + [(tmp_path / "claims.md").read_text()]
    texts += [findings(tmp_path, p) for p in ("02_", "03_", "05_", "07_")]
    for text in texts:
        assert not INTERNAL.search(text), text
    assert "(10% labels)" in " ".join(df["comparison"])


def fold_effects(per_fold: list[float], seeds: int = 3, noise: float = 0.001, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Runs of B and A on every (fold, seed), A − B = per_fold[fold] points (+ a little seed noise)."""
    rng = np.random.default_rng(seed)
    keys = pd.DataFrame([(f, s) for f in range(len(per_fold)) for s in range(seeds)], columns=KEYS)
    b = keys.assign(acc=0.6 + rng.normal(0, 0.03, len(keys)))
    a = b.assign(acc=b["acc"] + np.array(per_fold)[keys["fold"]] / 100 + rng.normal(0, noise, len(keys)))
    return a, b


def test_an_effect_that_lives_in_one_fold_is_not_supported():
    """Seeds of one fold share its test subjects: their agreement is not evidence about new subjects. Counted as 12
    independent pairs this design looks supported; at the fold level (the unit) it is not."""
    a, b = fold_effects([9.0, 0.5, 0.5, 0.5])
    naive = paired_effect(a, b, "acc", KEYS, unit=())
    assert naive["n_units"] == 12 and naive["verdict_alone"] == "supported"  # the wrong unit
    r = paired_effect(a, b, "acc", KEYS)
    assert r["n_units"] == 4 and r["verdict_alone"] == "inconclusive" and r["ci_low"] < 0 < r["ci_high"]
    assert r["effect"] == pytest.approx(naive["effect"]) and r["detectable"] > 8  # same mean; this design detects only large effects
    units = (100 * (a["acc"] - b["acc"])).groupby(a["fold"]).mean().to_numpy()  # the seed means of each fold
    half = stats.t.ppf(0.975, 3) * np.std(units, ddof=1) / 2
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((np.mean(units) - half, np.mean(units) + half))
    assert r["p"] == pytest.approx(stats.ttest_1samp(units, 0).pvalue)


def test_a_clear_effect_across_units_is_supported_and_survives_holm(tmp_path):
    a, b = fold_effects([5.0, 6.0, 5.5, 6.5])
    r = paired_effect(a, b, "acc", KEYS)
    assert r["verdict_alone"] == "supported" and r["detectable"] < 2
    table(a, b, "A", "B").to_csv(tmp_path / "c.csv", index=False)
    weak_a, weak_b = fold_effects([3.0, 0.5, 4.0, 2.5], noise=0.0)
    table(weak_a, weak_b, "A", "B").to_csv(tmp_path / "w.csv", index=False)
    table(*fold_effects([1.0, -1.0, 0.5, -0.5]), "A", "B").to_csv(tmp_path / "n.csv", index=False)
    family = tuple(Claim(name, "x", f"{name[0]}.csv", "A", "B") for name in ("clear", "weak", "null", "absent"))
    df = evaluate_all(tmp_path, family).set_index("claim")
    assert df.loc["clear", "verdict"] == "supported" and df.loc["absent", "verdict"] == "not run"
    assert df.loc["null", "verdict"] == "inconclusive" and df.loc["weak", "p_holm"] == pytest.approx(2 * df.loc["weak", "p"], abs=1e-3)
    # the weak claim's interval alone excludes 0, but not after Holm over the family: not shown as supported
    assert (
        df.loc["weak", "verdict_alone"] == "supported" and df.loc["weak", "p_holm"] > 0.05 and df.loc["weak", "verdict"] == "inconclusive"
    )
    text = claims_markdown(df.reset_index())
    assert "| **supported** |" in text and text.count("**supported**") == 1 and "4 folds" in text


def test_family_verdict_follows_the_adjusted_p():
    assert C.family_verdict(2.0, 0.01, "supported") == "supported"
    assert C.family_verdict(-2.0, 0.01, "contradicted") == "contradicted"
    assert C.family_verdict(2.0, 0.07, "supported") == "inconclusive"
    assert C.family_verdict(np.nan, np.nan, "not run") == "not run"


def test_the_main_claim_pools_corpus_draws_as_units(tmp_path):
    """Two corpus draws x 4 folds are 8 independent units; one table alone (a real dataset) still gives its 4."""
    claim = next(c for c in CLAIMS if c.id == "main claim")
    assert claim.unit == ("corpus", "fold") and all(c.unit for c in CLAIMS) and all(set(c.unit) <= set(c.keys) for c in CLAIMS)
    a, b = fold_effects([5.0, 6.0, 5.5, 6.5])
    table(a, b, "fusion (CE + Soft-HGR)", "fusion (CE)", corpus="ravdess").to_csv(tmp_path / "02_supervised_runs.csv", index=False)
    alone = evaluate_claim(claim, tmp_path)
    assert (alone["n_units"], alone["table"]) == (4, " + ".join(C._MAIN))
    a2, b2 = fold_effects([4.0, 7.0, 6.0, 5.0], seed=1)
    table(a2, b2, "fusion (CE + Soft-HGR)", "fusion (CE)", corpus="synthetic seed 1").to_csv(
        tmp_path / "02_replication_runs.csv", index=False
    )
    pooled = evaluate_claim(claim, tmp_path)
    assert pooled["n_units"] == 8 and pooled["n"] == 24 and pooled["detectable"] < alone["detectable"]
    with pytest.raises(ValueError, match="unit"):
        paired_effect(a, b, "acc", KEYS, unit=("corpus",))


def test_effects_are_rounded_once(tmp_path, monkeypatch):
    """claims.csv keeps DIGITS decimals; the text (claims.md, the README) rounds the unrounded effect once:
    6.74996 reads +6.7, not the +6.8 of rounding 6.7500 again."""
    row = {c: np.nan for c in C.COLUMNS} | {"claim": "x", "comparison": "a − b", "metric": "acc", "unit": "fold", "reason": ""}
    row |= {"effect": 6.74996, "ci_low": 1.04996, "ci_high": 12.44996, "p": 0.01, "detectable": 2.34996}
    row |= {"n": 8, "n_units": 4, "dropped": 0, "verdict_alone": "supported"}
    monkeypatch.setattr(C, "evaluate_claim", lambda claim, results_dir: dict(row))
    write_claims(tmp_path, claims=CLAIMS[:1])
    assert pd.read_csv(tmp_path / "claims.csv")["effect"].iloc[0] == 6.75
    md = (tmp_path / "claims.md").read_text()
    assert "+6.7 [+1.0, +12.4]" in md and "| 2.3 |" in md
