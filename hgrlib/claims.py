"""The paper's claims as code: each claim read off the run tables as a paired effect, a 95% interval and a verdict.

Every condition is trained on the same (fold, seed) pairs (every subject fold × 3 seeds = 12 runs in the
default profile; smoke: 3 folds × 2 seeds). For a claim "A > B" each pair gives d = metric(A) − metric(B),
in percentage points (metric × 100; metrics are fractions, CKA included). Reported: mean d, a 95% t
interval over the pairs (mean ± t(0.975, n−1)·s/√n), the two-sided p of the paired t test, n pairs, and
mean ± std of each side over those pairs. Verdict: `supported` if the interval's lower end is > 0,
`contradicted` if its upper end is < 0, else `inconclusive` (the runs cannot tell; not "no effect").

Why a t interval and not a bootstrap: 12 pairs are too few for a percentile bootstrap to keep its
coverage. The folds are the complete partition of the corpus's subjects (fixed, not sampled), so the
spread of the differences also holds the fold-to-fold spread: the interval is, if anything, conservative.

Pairs are matched on key columns (default fold, seed); a key present on one side only (or with a missing
metric) is dropped and counted; a duplicated key raises ValueError naming the table. A missing table or
column, or fewer than 2 pairs, gives the verdict `not run` with the reason: the README must always build.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from hgrlib.io import write_text
from hgrlib.report import markdown_table

LEVEL = 0.95
METRICS = {  # the metrics in the reader's words
    "acc": "test accuracy",
    "seg_acc": "segment-level test accuracy",
    "cka": "CKA",
    "acc_std": "std of test accuracy over seeds",
}
TITLE = "The paper's claims, each a paired comparison over the same runs: effect in points, 95% interval, p, verdict"
DIGITS = 4  # floats in claims.csv: reruns compare equal cell by cell (hgrlib.verify)


@dataclass(frozen=True)
class Claim:
    """One claim "A > B": rows of side A and side B of `table` (under results/<tag>/), compared on `metric`.

    A side's rows are those whose `condition_col` equals `a` (or `b`; None: no condition test) and that match
    `filters` (both sides) and `filters_a` (or `filters_b`), each a dict column → value. What the reader reads:
    `label_a` and `label_b` name the sides (default: the condition), `context` what `filters` select.
    """

    id: str
    statement: str  # the paper's claim, in words
    table: str
    a: str | None
    b: str | None
    metric: str = "acc"
    condition_col: str = "condition"
    filters: dict = field(default_factory=dict)
    filters_a: dict = field(default_factory=dict)
    filters_b: dict = field(default_factory=dict)
    keys: tuple[str, ...] = ("fold", "seed")
    isolates: str = ""  # what the comparison holds fixed, so the difference is due to the one change
    scale: float = 100.0  # metric units → points
    label_a: str = ""
    label_b: str = ""
    context: str = ""


_SEMI = "03_semi_supervised_runs.csv"
_PROTO = {"condition": "fusion (CE + Soft-HGR)"}  # one network per protocol line: the pairs (fold, seed) stay unique
_PROTO_TEXT = {"filters": _PROTO, "context": f"network: {_PROTO['condition']}", "metric": "seg_acc", "condition_col": "protocol"}

CLAIMS: tuple[Claim, ...] = (
    Claim(
        "fusion beats audio only",
        "fusing audio and video beats audio alone",
        "02_supervised_runs.csv",
        "fusion (CE)",
        "audio only (CE)",
        isolates="same CE loss, training and clips; only the visual branch is added",
    ),
    Claim(
        "fusion beats visual only",
        "fusing audio and video beats video alone",
        "02_supervised_runs.csv",
        "fusion (CE)",
        "visual only (CE)",
        isolates="same CE loss, training and clips; only the audio branch is added",
    ),
    Claim(
        "main claim",
        "CE + Soft-HGR learns better representations than CE alone",
        "02_supervised_runs.csv",
        "fusion (CE + Soft-HGR)",
        "fusion (CE)",
        isolates="same fused network, data, steps and seeds; only λ > 0",
    ),
    Claim(
        "main claim, second corpus",
        "CE + Soft-HGR beats CE alone, on a second corpus drawn with another seed",
        "02_replication_runs.csv",
        "fusion (CE + Soft-HGR)",
        "fusion (CE)",
        keys=("corpus_seed", "fold", "seed"),
        isolates="as the main claim, on an independently drawn corpus",
    ),
    *(
        Claim(
            f"unlabeled clips help through S(f, g), {int(round(100 * frac))}% labels",
            "unlabeled clips improve the model through the label-free Soft-HGR term S(f, g)",
            _SEMI,
            "labeled + unlabeled (CE + Soft-HGR)",
            "labeled + unlabeled (CE, λ=0)",
            filters={"labeled_frac": frac},
            context=f"{int(round(100 * frac))}% labels",
            isolates="same batches and optimiser steps with the unlabeled clips; only λ > 0",
        )
        for frac in (0.1, 0.25)
    ),
    *(
        Claim(
            f"semi-supervised beats labeled only, {int(round(100 * frac))}% labels",
            "training with the unlabeled clips (CE + Soft-HGR) beats training on the labeled clips alone",
            _SEMI,
            "labeled + unlabeled (CE + Soft-HGR)",
            "labeled only, matched steps (CE)",
            filters={"labeled_frac": frac},
            context=f"{int(round(100 * frac))}% labels",
            isolates="same labeled clips and optimiser steps; unlabeled clips and S(f, g) together",
        )
        for frac in (0.1, 0.25)
    ),
    Claim(
        "more stable across seeds",
        "Soft-HGR features are more stable across seeds (CKA × 100 of z)",
        "05_seed_cka_pairs.csv",
        "fusion (CE + Soft-HGR)",
        "fusion (CE)",
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
        "fusion (CE)",
        "fusion (CE + Soft-HGR)",
        metric="acc_std",
        keys=("fold",),
        isolates="A − B is CE's spread minus Soft-HGR's, per fold (so > 0 favours Soft-HGR); one pair per fold",
    ),
    Claim(
        "beats a CCA-style loss",
        "Soft-HGR beats a CCA-style correlation loss when trained on mini-batches",
        "07_baselines_runs.csv",
        None,
        None,
        filters_a={"objective": "hgr", "selected": True},
        filters_b={"objective": "cca", "selected": True},
        label_a="fusion (CE + Soft-HGR, a–v, λ picked on validation)",
        label_b="fusion (CE + CCA, a–v, λ picked on validation)",
        isolates="same audio–visual pair, network and data; each loss at the λ picked on validation",
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


def paired_effect(df_a: pd.DataFrame, df_b: pd.DataFrame, metric: str, keys=("fold", "seed"), scale: float = 100.0) -> dict:
    """Paired difference A − B of `metric` × `scale` over the keys both sides share: mean, 95% t interval, p.

    Returns n, dropped (keys on one side only, or with a missing metric), effect, ci_low, ci_high, p,
    mean_a, std_a, mean_b, std_b and verdict; with n < 2 the verdict is `not run` and the statistics NaN.
    Differences with zero spread give a zero-width interval and p = 0 (p = 1 if they are all 0).
    Raises ValueError if a side repeats a key.
    """
    keys = list(keys)
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
    d = np.round(xa - xb, 9)  # differences equal up to float error have zero spread
    (ma, sa), (mb, sb) = _mean_std(xa), _mean_std(xb)
    out = {
        "n": n,
        "dropped": dropped,
        "effect": np.nan,
        "ci_low": np.nan,
        "ci_high": np.nan,
        "p": np.nan,
        "mean_a": ma,
        "std_a": sa,
        "mean_b": mb,
        "std_b": sb,
        "verdict": "not run",
        "reason": f"{n} matched pair(s), 2 needed" if n < 2 else "",
    }
    if n < 2:
        return out
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    half = float(stats.t.ppf(0.5 + LEVEL / 2, n - 1)) * sd / np.sqrt(n)
    p = float(stats.ttest_1samp(d, 0.0).pvalue) if sd > 0 else (1.0 if mean == 0 else 0.0)
    lo, hi = mean - half, mean + half
    verdict = "supported" if lo > 0 else "contradicted" if hi < 0 else "inconclusive"
    return out | {"effect": mean, "ci_low": lo, "ci_high": hi, "p": p, "verdict": verdict}


def _describe(name: str | None, filters: dict, label: str = "") -> str:
    """A side or a selection in the reader's words: `label` if given, else the condition and `column=value`."""
    parts = ([name] if name is not None else []) + [f"{k}={v}" for k, v in filters.items()]
    return label or ", ".join(parts) or "all rows"


def comparison(claim: Claim) -> str:
    """ "A − B (what both sides share)", as the reader knows the conditions."""
    a, b = _describe(claim.a, claim.filters_a, claim.label_a), _describe(claim.b, claim.filters_b, claim.label_b)
    return f"{a} − {b}" + (f" ({_describe(None, claim.filters, claim.context)})" if claim.filters else "")


def evaluate(claim: Claim, results_dir: str | Path) -> dict:
    """One row for `claim` from `results_dir`/`claim.table`: the spec, paired_effect's numbers and the verdict."""
    path = Path(results_dir) / claim.table
    row = {
        "claim": claim.id,
        "statement": claim.statement,
        "table": claim.table,
        "metric": claim.metric,
        "comparison": comparison(claim),
        "isolates": claim.isolates,
    }
    empty = {
        "n": 0,
        "dropped": 0,
        "effect": np.nan,
        "ci_low": np.nan,
        "ci_high": np.nan,
        "p": np.nan,
        "mean_a": np.nan,
        "std_a": np.nan,
        "mean_b": np.nan,
        "std_b": np.nan,
        "verdict": "not run",
    }
    if not path.is_file():
        return row | empty | {"reason": f"{claim.table} not found"}
    df = pd.read_csv(path)
    needed = [claim.metric, *claim.keys, *claim.filters, *claim.filters_a, *claim.filters_b]
    needed += [claim.condition_col] if claim.a is not None or claim.b is not None else []
    missing = [c for c in dict.fromkeys(needed) if c not in df.columns]
    if missing:
        return row | empty | {"reason": f"{claim.table} has no column {', '.join(missing)}"}
    a = _side(df, claim.condition_col, claim.a, claim.filters | claim.filters_a)
    b = _side(df, claim.condition_col, claim.b, claim.filters | claim.filters_b)
    try:
        res = paired_effect(a, b, claim.metric, claim.keys, claim.scale)
    except ValueError as e:
        raise ValueError(f"{path} (claim {claim.id!r}): {e}") from e
    if res["n"] < 2:
        empty_side = [
            f"{s} ({_describe(c, claim.filters | f)})"
            for s, c, f, rows in (("A", claim.a, claim.filters_a, a), ("B", claim.b, claim.filters_b, b))
            if not len(rows)
        ]
        res["reason"] = f"no rows in {claim.table} for " + " or ".join(empty_side) if empty_side else f"{res['reason']} in {claim.table}"
    return row | res


COLUMNS = [
    "claim",
    "verdict",
    "effect",
    "ci_low",
    "ci_high",
    "p",
    "p_holm",
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


def evaluate_all(results_dir: str | Path, claims: tuple[Claim, ...] = CLAIMS) -> pd.DataFrame:
    """One row per claim (COLUMNS; effects and means in points), floats rounded to DIGITS decimals."""
    df = pd.DataFrame([evaluate(c, results_dir) for c in claims], columns=COLUMNS)
    df["p_holm"] = holm(df["p"].to_numpy(float))
    num = ["effect", "ci_low", "ci_high", "p", "p_holm", "mean_a", "std_a", "mean_b", "std_b"]
    df[num] = df[num].astype(float).round(DIGITS)
    df[["n", "dropped"]] = df[["n", "dropped"]].astype(int)
    return df


def _num(x: float, digits: int = 1) -> str:
    return "n/a" if pd.isna(x) else f"{x:+.{digits}f}".replace("-", "−")


def _p(p: float) -> str:
    return "n/a" if pd.isna(p) else "<0.001" if p < 0.001 else f"{p:.3f}"


def claims_markdown(df: pd.DataFrame) -> str:
    """A paragraph on the method and a Markdown table: claim, comparison, n, effect [95% CI] in points, p, verdict."""
    text = (
        "Each claim is a paired comparison A − B over runs on the same (fold, seed) pairs (fold, seed pair "
        "for CKA): the mean difference in percentage points (metric × 100), its 95% t interval over the "
        "pairs, and the paired t test's two-sided p. *supported*: the interval lies above 0; *contradicted*: "
        'below 0; *inconclusive*: it contains 0 (these runs cannot tell, which is not "no effect"). '
        "n counts the pairs (runs without a partner are dropped and counted). The folds are all of the corpus's "
        "subjects, so the interval also carries the fold-to-fold spread. Each verdict is at 95% on its own; "
        "with this many claims about one in twenty could be a false alarm, so p (Holm) adjusts the p-values "
        "for all of them at once (family-wise). "
        "Numbers and specs: `claims.csv`; the claims: `hgrlib/claims.py`.\n\n"
    )
    rows = []
    for r in df.itertuples(index=False):
        reason = "" if pd.isna(r.reason) else str(r.reason)
        verdict = f"**{r.verdict}**" if r.verdict in ("supported", "contradicted") else str(r.verdict)
        rows.append(
            {
                "claim": r.claim,
                "comparison (A − B)": f"{r.comparison} [{METRICS.get(r.metric, r.metric)}]",
                "n": f"{int(r.n)}" + (f" ({int(r.dropped)} unpaired)" if r.dropped else ""),
                "effect, points [95% CI]": "—" if pd.isna(r.effect) else f"{_num(r.effect)} [{_num(r.ci_low)}, {_num(r.ci_high)}]",
                "p": _p(r.p),
                "p (Holm)": _p(r.p_holm),
                "verdict": verdict + (f": {reason}" if reason else ""),
            }
        )
    cols = ["claim", "comparison (A − B)", "n", "effect, points [95% CI]", "p", "p (Holm)", "verdict"]
    return text + markdown_table(pd.DataFrame(rows, columns=cols))


def write_claims(results_dir: str | Path, claims: tuple[Claim, ...] = CLAIMS) -> pd.DataFrame:
    """Evaluate every claim on `results_dir`'s tables; write claims.csv and claims.md there (atomic, only if changed)."""
    results_dir = Path(results_dir)
    df = evaluate_all(results_dir, claims)
    for name, text in (("claims.csv", df.to_csv(index=False)), ("claims.md", f"# {TITLE}\n\n" + claims_markdown(df))):
        f = results_dir / name
        if not f.is_file() or f.read_text() != text:  # unchanged: keep the file (and its time) as it is
            write_text(f, text)
    return df


def findings(results_dir: str | Path, prefix: str, claims: tuple[Claim, ...] = CLAIMS) -> str:
    """What the claims read off one notebook's tables (those whose file starts with `prefix`, e.g. "02_")
    say, as Markdown: the paired effect, its interval and the verdict, from the tables as written."""
    lines = []
    for c in claims:
        if not c.table.startswith(prefix):
            continue
        r = evaluate(c, results_dir)
        if r["verdict"] == "not run":
            lines.append(f"- **{c.id}**: not run ({r['reason']}).")
            continue
        lines.append(
            f"- **{c.id}** ({c.statement}): {r['comparison']} = {_num(r['effect'])} points of {METRICS.get(c.metric, c.metric)}, "
            f"95% CI [{_num(r['ci_low'])}, {_num(r['ci_high'])}], {r['n']} pairs, p {_p(r['p']).replace('<', '< ') if r['p'] < 0.001 else '= ' + _p(r['p'])}"
            f" → **{r['verdict']}**."
        )
    if not lines:
        return ""
    return (
        "**What these runs found** (generated from this notebook's tables: each claim paired over the same "
        "(fold, seed) pairs, its verdict at 95% on its own; `claims.md` also adjusts p for all claims at once):\n\n"
        + "\n".join(lines)
        + "\n"
    )
