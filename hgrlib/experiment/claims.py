"""The paper's claims as code: each claim read off the run tables as a paired effect at the level it
generalises over, a 95% interval, the smallest effect its design can detect, and a family-wise verdict.

Every condition is trained on the same (fold, seed) pairs (every subject fold × 2 seeds in the default
profile, on each corpus draw a notebook trains; smoke: 3 folds × 2 seeds). For a claim "A > B" each pair gives d = metric(A) − metric(B),
in percentage points (metric × 100; metrics are fractions, CKA included).

**The unit of replication.** A claim generalises over new subjects (or new corpora), not over seeds: the
seeds of one fold share its test subjects and its training set, so their differences are not independent
(their correlation reached 0.45 here) and more seeds are not more evidence. Each claim therefore averages
d over the seeds of each unit (`Claim.unit`: a subject fold, or a corpus draw × fold where a claim pools corpus draws) and computes its
statistics over the unit means: mean, a 95% t interval (mean ± t(0.975, m−1)·s/√m over m units), the
two-sided p of the one-sample t test, and the smallest effect the design detects with 80% power at α = 0.05
((t(0.975, m−1) + t(0.80, m−1))·s/√m, from the observed spread of the unit means). With 4 folds this
interval is wider than one over the 12 pairs, and honestly so.

**The verdict** (`verdict`) survives Holm's correction over the whole family of claims: `supported` if the
Holm-adjusted p < 0.05 and the effect is positive, `contradicted` if negative, else `inconclusive` (these
runs cannot tell; not "no effect"). `verdict_alone` is the claim's interval read on its own.

Pairs are matched on key columns (default fold, seed); a key present on one side only (or with a missing
metric) is dropped and counted; a duplicated key raises ValueError naming the table. A missing table or
column, or fewer than 2 units, gives the verdict `not run` with the reason: the README must always build.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from hgrlib.base.io import write_text
from hgrlib.experiment import conditions as C
from hgrlib.report.tables import markdown_table

LEVEL = 0.95
POWER = 0.80  # for the detectable effect
METRICS = {  # the metrics in the reader's words
    "acc": "test accuracy",
    "seg_acc": "segment-level test accuracy",
    "cka": "CKA",
    "acc_std": "std of test accuracy over seeds",
}
TITLE = "The paper's claims, each a paired comparison over the same runs: effect in points, 95% interval, p, verdict"
DIGITS = 4  # floats in claims.csv: reruns compare equal cell by cell (hgrlib.reproduce.verify)


@dataclass(frozen=True)
class Claim:
    """One claim "A > B": rows of side A and side B of `table` (under results/<tag>/), compared on `metric`.

    A side's rows are those whose `condition_col` equals `a` (or `b`; None: no condition test) and that match
    `filters` (both sides) and `filters_a` (or `filters_b`), each a dict column → value. What the reader reads:
    `label_a` and `label_b` name the sides (default: the condition), `context` what `filters` select.
    """

    id: str
    statement: str  # the paper's claim, in words
    table: str | tuple[str, ...]  # several: their rows pooled (e.g. the runs of two corpus draws)
    a: str | None
    b: str | None
    metric: str = "acc"
    condition_col: str = "condition"
    filters: dict = field(default_factory=dict)
    filters_a: dict = field(default_factory=dict)
    filters_b: dict = field(default_factory=dict)
    keys: tuple[str, ...] = ("fold", "seed")
    unit: tuple[str, ...] = ("fold",)  # key columns of an independent unit (what the claim generalises over)
    isolates: str = ""  # what the comparison holds fixed, so the difference is due to the one change
    scale: float = 100.0  # metric units → points
    label_a: str = ""
    label_b: str = ""
    context: str = ""


_MAIN = ("02_supervised_runs.csv", "02_replication_runs.csv", "02_mechanism_runs.csv")  # notebook 02: every corpus draw
_POOLED = {"keys": ("corpus", "fold", "seed"), "unit": ("corpus", "fold")}  # tables that pool corpus draws: a unit is a corpus × fold
_PROTO = {"condition": C.FUSION_HGR}  # one network per protocol line: the pairs (fold, seed) stay unique
_PROTO_TEXT = {"filters": _PROTO, "context": f"network: {_PROTO['condition']}", "metric": "seg_acc", "condition_col": "protocol"}

CLAIMS: tuple[Claim, ...] = (
    Claim(
        "fusion beats audio only",
        "fusing audio and video beats audio alone",
        "02_supervised_runs.csv",
        C.FUSION_CE,
        C.AUDIO_CE,
        isolates="same CE loss, training and clips; only the visual branch is added",
    ),
    Claim(
        "fusion beats visual only",
        "fusing audio and video beats video alone",
        "02_supervised_runs.csv",
        C.FUSION_CE,
        C.VISUAL_CE,
        isolates="same CE loss, training and clips; only the audio branch is added",
    ),
    Claim(
        "main claim",
        "CE + Soft-HGR learns better representations than CE alone",
        _MAIN,
        C.FUSION_HGR,
        C.FUSION_CE,
        **_POOLED,
        isolates="same fused network, data, steps and seeds; only λ > 0; on every corpus draw notebook 02 trains (the default corpus and a second one drawn with another seed)",
    ),
    Claim(
        "the audio–visual pair helps",
        "common information alone: the audio–visual term S(f, g) improves on CE",
        _MAIN,
        C.FUSION_AV_PAIR,
        C.FUSION_CE,
        **_POOLED,
        isolates="same fused network, data, steps, seeds and λ; only the audio–visual pair is on (no label pair)",
    ),
    Claim(
        "beyond unimodal supervision",
        "CE + Soft-HGR beats CE with per-modality CE heads: the gain is not just extra supervision of f and g",
        _MAIN,
        C.FUSION_HGR,
        C.FUSION_UNI,
        **_POOLED,
        isolates="same fused network, data, steps and seeds; Soft-HGR's three pairs against CE heads on f and g",
    ),
    Claim(
        "beyond the label pairs",
        "the three Soft-HGR pairs beat the label pairs alone: the audio–visual term adds to supervision through h(y)",
        _MAIN,
        C.FUSION_HGR,
        C.FUSION_LABEL_PAIRS,
        **_POOLED,
        isolates="same fused network, data, steps, seeds and λ; only the audio–visual pair added to the label pairs",
    ),
    *(
        Claim(
            f"unlabeled clips help, {int(round(100 * frac))}% labels",
            "unlabeled clips improve the model through the label-free Soft-HGR term S(f, g)",
            "03_semi_supervised_runs.csv",
            C.SEMI_HGR,
            C.LABELED_HGR,
            filters={"labeled_frac": frac},
            context=f"{int(round(100 * frac))}% labels",
            **_POOLED,
            isolates="same labeled rows in every batch, loss, λ and optimiser steps; only the unlabeled rows added to each batch",
        )
        for frac in (0.1, 0.25)
    ),
    *(
        Claim(
            f"semi-supervised beats labeled only, {int(round(100 * frac))}% labels",
            "training with the unlabeled clips (CE + Soft-HGR) beats cross-entropy on the labeled clips alone",
            "03_semi_supervised_runs.csv",
            C.SEMI_HGR,
            C.LABELED_CE,
            filters={"labeled_frac": frac},
            context=f"{int(round(100 * frac))}% labels",
            **_POOLED,
            isolates="same labeled rows in every batch and optimiser steps; the Soft-HGR terms and the unlabeled rows together",
        )
        for frac in (0.1, 0.25)
    ),
    Claim(
        "more stable across seeds",
        "Soft-HGR features are more stable across seeds (CKA × 100 of z)",
        "05_seed_cka_pairs.csv",
        C.FUSION_HGR,
        C.FUSION_CE,
        metric="cka",
        filters={"feature": "z"},
        context="fused features z",
        keys=("fold", "pair"),
        isolates="linear CKA between two seeds' fused features on the same fold's test clips",
    ),
    Claim(
        "smaller spread over seeds",
        "Soft-HGR's test accuracy varies less over seeds (std over seeds within a fold)",
        "05_score_spread.csv",
        C.FUSION_CE,
        C.FUSION_HGR,
        metric="acc_std",
        keys=("fold",),
        isolates="A − B is CE's spread minus Soft-HGR's, per fold (so > 0 favours Soft-HGR); one pair per fold",
    ),
    Claim(
        "main claim before convergence",
        "CE + Soft-HGR beats CE alone when both stop at the shorter exploratory schedule (notebook 07's runs)",
        "07_baselines_runs.csv",
        None,
        None,
        filters_a={"objective": "hgr3", "selected": True},
        filters_b={"objective": "ce", "selected": True},
        label_a=f"{C.FUSION_HGR}, exploratory schedule",
        label_b=f"{C.FUSION_CE}, exploratory schedule",
        isolates="the main claim's two conditions on the default corpus, stopped at the exploratory schedule "
        "(Profile.explore_epochs) instead of notebook 02's, where they have levelled off",
    ),
    Claim(
        "beats a CCA-style loss",
        "Soft-HGR beats a CCA-style correlation loss when trained on mini-batches",
        "07_baselines_runs.csv",
        None,
        None,
        filters_a={"objective": "hgr", "selected": True},
        filters_b={"objective": "cca", "selected": True},
        label_a=C.tuned(C.FUSION_HGR_AV),
        label_b=C.tuned(C.FUSION_CCA_AV),
        isolates="same audio–visual pair, network, data and tuning budget; each objective's settings picked per fold on that fold's validation subjects",
    ),
    Claim(
        "segment split inflates accuracy",
        "a random segment split scores higher than held-out subjects",
        "07_protocols_runs.csv",
        "segment",
        "subject",
        label_a="segment split",
        label_b="subject split",
        **_PROTO_TEXT,
        isolates="same network (fusion, CE + Soft-HGR), seeds and training-set size; only the split",
    ),
    Claim(
        "speaker dependence",
        "seeing the test speakers in training raises accuracy (clip split vs subjects)",
        "07_protocols_runs.csv",
        "clip",
        "subject",
        label_a="clip split",
        label_b="subject split",
        **_PROTO_TEXT,
        isolates="same training-set size; test clips' speakers seen in training, their clips not",
    ),
    Claim(
        "segment leakage",
        "segments of a test clip in training raise accuracy (segment vs clip split)",
        "07_protocols_runs.csv",
        "segment",
        "clip",
        label_a="segment split",
        label_b="clip split",
        **_PROTO_TEXT,
        isolates="speakers seen in both; only whether a test clip's other segments are trained on",
    ),
)


def _match(col: pd.Series, value) -> pd.Series:
    """Rows of `col` equal to `value`: bools by name (CSV "True"), numbers within float error, else as text."""
    if isinstance(value, (bool, np.bool_)):
        return col.astype(str).str.lower() == str(bool(value)).lower()
    if isinstance(value, (int, float, np.number)):
        return pd.Series(np.isclose(pd.to_numeric(col, errors="coerce"), float(value), rtol=0, atol=1e-9), index=col.index)
    return col.astype(str) == str(value)


def _side(df: pd.DataFrame, condition_col: str, name: str | None, filters: dict) -> pd.DataFrame:
    mask = pd.Series(True, index=df.index)
    for col, value in [*([(condition_col, name)] if name is not None else []), *filters.items()]:
        mask &= _match(df[col], value)
    return df[mask]


def _mean_std(x: np.ndarray) -> tuple[float, float]:
    return (float(np.mean(x)), float(np.std(x, ddof=1))) if len(x) > 1 else (float(np.mean(x)) if len(x) else np.nan, np.nan)


def paired_effect(df_a: pd.DataFrame, df_b: pd.DataFrame, metric: str, keys=("fold", "seed"), scale: float = 100.0, unit=("fold",)) -> dict:
    """Paired difference A − B of `metric` × `scale` over the keys both sides share, averaged within each unit
    (the `unit` key columns; empty: every pair is a unit), then over the units: mean, 95% t interval, p, and
    the effect detectable with 80% power.

    Returns n (pairs), n_units, dropped (keys on one side only, or with a missing metric), effect, ci_low,
    ci_high, p, detectable, mean_a, std_a, mean_b, std_b and verdict_alone (the interval on its own); with
    fewer than 2 units `verdict_alone` is `not run` and the statistics NaN. Unit means with zero spread give a
    zero-width interval and p = 0 (p = 1 if they are all 0). Raises ValueError if a side repeats a key.
    """
    keys, unit = list(keys), list(unit)
    if set(unit) - set(keys):
        raise ValueError(f"unit {unit} must be among the keys {keys}")
    for side, df in (("A", df_a), ("B", df_b)):
        dup = df[df.duplicated(keys, keep=False)]
        if len(dup):
            raise ValueError(
                f"side {side} has {len(dup)} rows with duplicated keys {keys}, e.g. "
                f"{dup[keys].iloc[0].to_dict()}: a pair must identify one run per side"
            )
    a, b = (df.dropna(subset=[metric])[keys + [metric]] for df in (df_a, df_b))
    both = a.merge(b, on=keys, suffixes=("_a", "_b"))
    n = len(both)
    dropped = len(pd.concat([df_a[keys], df_b[keys]]).drop_duplicates()) - n
    xa, xb = (scale * both[f"{metric}_{s}"].to_numpy(float) for s in ("a", "b"))
    d = pd.Series(xa - xb, index=both.index)
    units = (d.groupby([both[u] for u in unit]).mean() if unit else d).to_numpy()
    units = np.round(units, 9)  # means equal up to float error have zero spread
    m = len(units)
    (ma, sa), (mb, sb) = _mean_std(xa), _mean_std(xb)
    out = {
        "n": n,
        "n_units": m,
        "dropped": dropped,
        "effect": np.nan,
        "ci_low": np.nan,
        "ci_high": np.nan,
        "p": np.nan,
        "detectable": np.nan,
        "mean_a": ma,
        "std_a": sa,
        "mean_b": mb,
        "std_b": sb,
        "verdict_alone": "not run",
        "reason": f"{n} matched pair(s) in {m} unit(s) of {' × '.join(unit) or 'pair'}, 2 needed" if m < 2 else "",
    }
    if m < 2:
        return out
    mean, sd = float(units.mean()), float(units.std(ddof=1))
    se = sd / np.sqrt(m)
    half = float(stats.t.ppf(0.5 + LEVEL / 2, m - 1)) * se
    p = float(stats.ttest_1samp(units, 0.0).pvalue) if sd > 0 else (1.0 if mean == 0 else 0.0)
    lo, hi = mean - half, mean + half
    detectable = float(stats.t.ppf(0.5 + LEVEL / 2, m - 1) + stats.t.ppf(POWER, m - 1)) * se
    alone = "supported" if lo > 0 else "contradicted" if hi < 0 else "inconclusive"
    return out | {"effect": mean, "ci_low": lo, "ci_high": hi, "p": p, "detectable": detectable, "verdict_alone": alone}


def _describe(name: str | None, filters: dict, label: str = "") -> str:
    """A side or a selection in the reader's words: `label` if given, else the condition and `column=value`."""
    parts = ([name] if name is not None else []) + [f"{k}={v}" for k, v in filters.items()]
    return label or ", ".join(parts) or "all rows"


def comparison(claim: Claim) -> str:
    """ "A − B (what both sides share)", as the reader knows the conditions."""
    a, b = _describe(claim.a, claim.filters_a, claim.label_a), _describe(claim.b, claim.filters_b, claim.label_b)
    return f"{a} − {b}" + (f" ({_describe(None, claim.filters, claim.context)})" if claim.filters else "")


def tables(claim: Claim) -> tuple[str, ...]:
    """The run tables a claim reads (one, or several whose rows it pools)."""
    return (claim.table,) if isinstance(claim.table, str) else tuple(claim.table)


def evaluate_claim(claim: Claim, results_dir: str | Path) -> dict:
    """One row for `claim` from its tables under `results_dir` (pooled where several exist; those missing are
    skipped): the spec, paired_effect's numbers and the verdict of its interval on its own (`verdict_alone`; the
    family-wise `verdict` needs every claim: evaluate_all)."""
    names = tables(claim)
    name = " + ".join(names)
    row = {
        "claim": claim.id,
        "statement": claim.statement,
        "table": name,
        "metric": claim.metric,
        "comparison": comparison(claim),
        "isolates": claim.isolates,
        "unit": " × ".join(claim.unit) or "pair",
    }
    empty = {
        "n": 0,
        "n_units": 0,
        "dropped": 0,
        "effect": np.nan,
        "ci_low": np.nan,
        "ci_high": np.nan,
        "p": np.nan,
        "detectable": np.nan,
        "mean_a": np.nan,
        "std_a": np.nan,
        "mean_b": np.nan,
        "std_b": np.nan,
        "verdict_alone": "not run",
    }
    found = [Path(results_dir) / t for t in names if (Path(results_dir) / t).is_file()]
    if not found:
        return row | empty | {"reason": f"{name} not found"}
    needed = [claim.metric, *claim.keys, *claim.filters, *claim.filters_a, *claim.filters_b]
    needed += [claim.condition_col] if claim.a is not None or claim.b is not None else []
    frames = []
    for path in found:
        df = pd.read_csv(path)
        missing = [c for c in dict.fromkeys(needed) if c not in df.columns]
        if missing:
            return row | empty | {"reason": f"{path.name} has no column {', '.join(missing)}"}
        frames.append(df)
    df = pd.concat(frames, ignore_index=True)
    a = _side(df, claim.condition_col, claim.a, claim.filters | claim.filters_a)
    b = _side(df, claim.condition_col, claim.b, claim.filters | claim.filters_b)
    try:
        res = paired_effect(a, b, claim.metric, claim.keys, claim.scale, claim.unit)
    except ValueError as e:
        raise ValueError(f"{' + '.join(str(p) for p in found)} (claim {claim.id!r}): {e}") from e
    if res["n_units"] < 2:
        empty_side = [
            f"{s} ({_describe(c, claim.filters | f)})"
            for s, c, f, rows in (("A", claim.a, claim.filters_a, a), ("B", claim.b, claim.filters_b, b))
            if not len(rows)
        ]
        res["reason"] = f"no rows in {name} for " + " or ".join(empty_side) if empty_side else f"{res['reason']} in {name}"
    return row | res


COLUMNS = [
    "claim",
    "verdict",
    "effect",
    "ci_low",
    "ci_high",
    "p",
    "p_holm",
    "detectable",
    "unit",
    "n_units",
    "verdict_alone",
    "n",
    "dropped",
    "mean_a",
    "std_a",
    "mean_b",
    "std_b",
    "metric",
    "comparison",
    "table",
    "statement",
    "isolates",
    "reason",
]


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment of the p-values that exist (NaN stays NaN): family-wise error over the claims."""
    out = np.full(len(p), np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    m = len(order)
    out[order] = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    return out


def family_verdict(effect: float, p_holm: float, alone: str) -> str:
    """The verdict that survives Holm over the family: supported / contradicted by the sign of the effect where the
    adjusted p < 1 − LEVEL, else inconclusive; `not run` stays."""
    if alone == "not run":
        return alone
    return "inconclusive" if not p_holm < 1 - LEVEL else "supported" if effect > 0 else "contradicted"


NUMBERS = ["effect", "ci_low", "ci_high", "p", "p_holm", "detectable", "mean_a", "std_a", "mean_b", "std_b"]


def evaluate_all(results_dir: str | Path, claims: tuple[Claim, ...] = CLAIMS) -> pd.DataFrame:
    """One row per claim (COLUMNS; effects and means in points, unrounded: text rounds once, claims.csv to DIGITS
    decimals); `verdict` is family-wise (Holm over every claim that ran)."""
    df = pd.DataFrame([evaluate_claim(c, results_dir) for c in claims], columns=COLUMNS)
    df["p_holm"] = holm(df["p"].to_numpy(float))
    df["verdict"] = [family_verdict(e, p, v) for e, p, v in zip(df["effect"], df["p_holm"], df["verdict_alone"])]
    df[NUMBERS] = df[NUMBERS].astype(float)
    df[["n", "n_units", "dropped"]] = df[["n", "n_units", "dropped"]].astype(int)
    return df


def _num(x: float, digits: int = 1) -> str:
    return "n/a" if pd.isna(x) else f"{x:+.{digits}f}".replace("-", "−")


def _units(n: int, unit: str) -> str:
    """`4 folds`, `8 corpus × fold units`."""
    return f"{n} {unit}s" if " " not in unit else f"{n} {unit} units"


def _p(p: float) -> str:
    return "n/a" if pd.isna(p) else "<0.001" if p < 0.001 else f"{p:.3f}"


def claims_markdown(df: pd.DataFrame) -> str:
    """A paragraph on the method and a Markdown table: claim, comparison, units, effect [95% CI] in points, p, Holm p,
    detectable effect, verdict (family-wise, in bold where supported or contradicted)."""
    text = (
        "Each claim is a paired comparison A − B of runs trained on the same (fold, seed) pairs, analysed at the "
        "level it generalises over: the differences are averaged over the seeds of each unit (a subject fold; "
        "a corpus draw × fold where a claim pools both synthetic corpora), since seeds of one fold share its test subjects and are "
        "not independent evidence. Effect: the mean over the units in percentage points (metric × 100), its 95% "
        "t interval over the units and the one-sample t test's two-sided p. The verdict survives Holm's "
        "correction over all the claims (family-wise): *supported* (or *contradicted*) where the adjusted p < "
        '0.05, else *inconclusive* (these runs cannot tell, which is not "no effect"). *detectable*: the '
        "smallest effect this design finds with 80% power at α = 0.05, from the observed spread of the units; "
        "an inconclusive claim with a large detectable effect says the design is too small, not that the "
        "effect is absent. Numbers and specs: `claims.csv`; the claims: `hgrlib/experiment/claims.py`.\n\n"
    )
    rows = []
    for r in df.itertuples(index=False):
        reason = "" if pd.isna(r.reason) else str(r.reason)
        verdict = f"**{r.verdict}**" if r.verdict in ("supported", "contradicted") else str(r.verdict)
        rows.append(
            {
                "claim": r.claim,
                "comparison (A − B)": f"{r.comparison} [{METRICS.get(r.metric, r.metric)}]",
                "units": (_units(int(r.n_units), r.unit) if r.n_units else "—")
                + (f" ({int(r.dropped)} unpaired runs)" if r.dropped else ""),
                "effect, points [95% CI]": "—" if pd.isna(r.effect) else f"{_num(r.effect)} [{_num(r.ci_low)}, {_num(r.ci_high)}]",
                "p": _p(r.p),
                "p (Holm)": _p(r.p_holm),
                "detectable": "—" if pd.isna(r.detectable) else f"{r.detectable:.1f}",
                "verdict": verdict + (f": {reason}" if reason else ""),
            }
        )
    cols = ["claim", "comparison (A − B)", "units", "effect, points [95% CI]", "p", "p (Holm)", "detectable", "verdict"]
    return text + markdown_table(pd.DataFrame(rows, columns=cols))


def write_claims(results_dir: str | Path, claims: tuple[Claim, ...] = CLAIMS) -> pd.DataFrame:
    """Evaluate every claim on `results_dir`'s tables; write claims.csv and claims.md there (atomic, only if changed)."""
    results_dir = Path(results_dir)
    df = evaluate_all(results_dir, claims)
    csv = df.assign(**{c: df[c].round(DIGITS) for c in NUMBERS}).to_csv(index=False)
    for name, text in (("claims.csv", csv), ("claims.md", f"# {TITLE}\n\n" + claims_markdown(df))):
        f = results_dir / name
        if not f.is_file() or f.read_text() != text:  # unchanged: keep the file (and its time) as it is
            write_text(f, text)
    return df


def findings(results_dir: str | Path, prefix: str, claims: tuple[Claim, ...] = CLAIMS) -> str:
    """What the claims read off one notebook's tables (those whose file starts with `prefix`, e.g. "02_")
    say, as Markdown: the effect over the units, its interval, what the design can detect, and the interval's
    verdict on its own (the family-wise verdict needs every notebook's tables: claims.md)."""
    lines = []
    for c in claims:
        if not any(t.startswith(prefix) for t in tables(c)):
            continue
        r = evaluate_claim(c, results_dir)
        if r["verdict_alone"] == "not run":
            lines.append(f"- **{c.id}**: not run ({r['reason']}).")
            continue
        p = _p(r["p"]).replace("<", "< ") if r["p"] < 0.001 else "= " + _p(r["p"])
        lines.append(
            f"- **{c.id}** ({c.statement}): {r['comparison']} = {_num(r['effect'])} points of {METRICS.get(c.metric, c.metric)}, "
            f"95% CI [{_num(r['ci_low'])}, {_num(r['ci_high'])}] over {_units(r['n_units'], r['unit'])} ({r['n']} runs a side), p {p}; "
            f"detectable with 80% power: {r['detectable']:.1f} points; the interval alone: {r['verdict_alone']}."
        )
    if not lines:
        return ""
    return (
        "**What these runs found** (generated from this notebook's tables: each claim paired over the same "
        "(fold, seed) runs and analysed over its independent units, a subject fold or a corpus draw × fold; "
        "the family-wise verdicts, corrected for all claims at once, are in `claims.md`):\n\n" + "\n".join(lines) + "\n"
    )
