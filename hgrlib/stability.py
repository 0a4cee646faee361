"""Feature stability, made measurable (notebook 05).

What the paper calls the stability of the learned representations is looked at four ways:

* the spread of test scores over seeds and folds (`score_spread`);
* how similar the features of runs that differ only in their seed are on the same held-out clips
  (`seed_cka`, linear CKA between every pair of seeds; 1 means the same up to rotation and scale);
* how correlated the audio and visual features are on held-out clips (`av_correlation`, canonical
  correlations, both in-sample on the test clips and with directions fitted on the training clips);
* on the synthetic corpus, which generating factors the features carry (`factor_table`,
  `factor_probes`): the shared one (emotion) or modality-specific nuisances (head pose, lighting,
  voice pitch, recording gain, ...).

Features come from `hgrlib.experiment.run_features`: a dict with clip_ids, part, labels, subjects
and the clip-level arrays f (audio), g (visual), z (fused hidden layer).
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from hgrlib.evaluate import canonical_correlations, linear_cka

FEATURE_KEYS = ("f", "g", "z")
FEATURE_NAMES = {"f": "audio f", "g": "visual g", "z": "fused z"}

# Synthetic-corpus factors probed by default: (column, kind, level). kind says which modality
# carries the factor (emotion is shared by both); level whether it varies per clip or per subject.
FACTORS: tuple[tuple[str, str, str], ...] = (
    ("emotion", "shared", "clip"),
    ("intensity", "shared", "clip"),
    ("actor", "subject", "subject"),
    ("audio_strength", "audio", "clip"),
    ("f0_base", "audio nuisance", "subject"),
    ("gain_db", "audio nuisance", "clip"),
    ("rate_jitter", "audio nuisance", "clip"),
    ("visual_strength", "visual", "clip"),
    ("skin", "visual nuisance", "subject"),
    ("light", "visual nuisance", "clip"),
    ("yaw", "visual nuisance", "clip"),
    ("roll", "visual nuisance", "clip"),
)
DISCRETE_FACTORS = {"emotion", "intensity", "actor", "ambiguous", "statement", "repetition"}


# --------------------------------------------------------------------------- selecting clips


def select(feats: dict, part: str | None = "test") -> dict:
    """The clips of one part of the split ('train', 'val', 'test'; None: all clips), every array subset alike."""
    if part is None:
        return dict(feats)
    m = np.asarray(feats["part"]) == part
    if not m.any():
        raise ValueError(f"no clips in part {part!r} (parts: {sorted(set(np.asarray(feats['part']).tolist()))})")
    n = len(feats["clip_ids"])
    return {k: (np.asarray(v)[m] if np.ndim(v) >= 1 and len(v) == n else v) for k, v in feats.items()}


def align(feats_list: list[dict], part: str | None = "test") -> list[dict]:
    """Restrict several runs' features to the clips that all of them have in `part`, in one common order.

    Runs that should be compared clip by clip (e.g. seeds on the same fold) must share their clips;
    raises if they share none.
    """
    sel = [select(f, part) for f in feats_list]
    common = set(map(str, sel[0]["clip_ids"]))
    for s in sel[1:]:
        common &= set(map(str, s["clip_ids"]))
    if not common:
        raise ValueError("the runs share no clips in this part of the split")
    order = sorted(common)
    out = []
    for s in sel:
        pos = {str(c): i for i, c in enumerate(s["clip_ids"])}
        idx = np.array([pos[c] for c in order])
        n = len(s["clip_ids"])
        out.append({k: (np.asarray(v)[idx] if np.ndim(v) >= 1 and len(v) == n else v) for k, v in s.items()})
    return out


# --------------------------------------------------------------------------- 1. score spread


def score_spread(runs: pd.DataFrame, by: str = "condition", metrics: tuple[str, ...] = ("acc", "uar")) -> pd.DataFrame:
    """Per group: runs, mean, std (ddof=1), min, max and range of each metric (fractions, not %)."""
    g = runs.groupby(by, sort=False)
    out = g.size().rename("runs").to_frame()
    for m in metrics:
        out[f"{m}_mean"] = g[m].mean()
        out[f"{m}_std"] = g[m].std(ddof=1).fillna(0.0)
        out[f"{m}_min"] = g[m].min()
        out[f"{m}_max"] = g[m].max()
        out[f"{m}_range"] = out[f"{m}_max"] - out[f"{m}_min"]
    return out.reset_index()


# --------------------------------------------------------------------------- 2. seed-to-seed CKA


def seed_cka(features_by_seed: dict, key: str, part: str | None = "test") -> pd.DataFrame:
    """Linear CKA of feature `key` ('f', 'g' or 'z') between every pair of seeds, on the clips all share in `part`.

    `features_by_seed` maps a seed to `run_features(result)` of a run on the same fold. One row per pair:
    seed_a, seed_b, feature, clips, cka.
    """
    seeds = list(features_by_seed)
    if len(seeds) < 2:
        return pd.DataFrame(columns=["seed_a", "seed_b", "feature", "clips", "cka"])
    aligned = dict(zip(seeds, align([features_by_seed[s] for s in seeds], part)))
    rows = []
    for a, b in combinations(seeds, 2):
        x, y = aligned[a][key], aligned[b][key]
        rows.append({"seed_a": a, "seed_b": b, "feature": key, "clips": len(x), "cka": linear_cka(x, y)})
    return pd.DataFrame(rows)


def summarize(df: pd.DataFrame, by: list[str], value: str, digits: int = 3) -> pd.DataFrame:
    """Mean, std (ddof=1; 0 for a single value) and count of `value` per group, plus a 'mean ± std' text column."""
    g = df.groupby(by, sort=False)[value]
    out = pd.DataFrame({"n": g.size(), "mean": g.mean(), "std": g.std(ddof=1).fillna(0.0)}).reset_index()
    out[value] = ["–" if np.isnan(m) else f"{m:.{digits}f} ± {s:.{digits}f}" for m, s in zip(out["mean"], out["std"])]
    return out


# --------------------------------------------------------------------------- 3. audio-visual correlation


def _cca_directions(x: np.ndarray, y: np.ndarray, k: int, eps: float = 1e-3):
    """Regularised CCA fitted on (x, y): means and projection matrices (d_x × k, d_y × k)."""
    mx, my = x.mean(0), y.mean(0)
    x, y = x - mx, y - my
    n = len(x)

    def inv_sqrt(c):
        w, v = np.linalg.eigh(c + eps * np.trace(c) / len(c) * np.eye(len(c)))
        return v @ np.diag(w.clip(1e-12) ** -0.5) @ v.T

    wx, wy = inv_sqrt(x.T @ x / n), inv_sqrt(y.T @ y / n)
    u, _, vt = np.linalg.svd(wx @ (x.T @ y / n) @ wy)
    return mx, my, wx @ u[:, :k], wy @ vt.T[:, :k]


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    d = np.sqrt((a @ a) * (b @ b))
    return float(a @ b / d) if d > 0 else 0.0


def av_correlation(feats: dict, part: str = "test", k: int = 5, fit_part: str | None = "train") -> pd.DataFrame:
    """Top-k canonical correlations between audio f and visual g on the clips of `part`.

    Two estimates per component: `in_sample`, CCA fitted and measured on the same clips (biased
    upwards when the clips are few relative to the feature dimension: with n ≤ d it is near 1 by
    construction), and `held_out`, the correlation on `part` of the directions fitted on `fit_part`
    (None: skip). One row per component (1..k).
    """
    test = select(feats, part)
    k = int(min(k, test["f"].shape[1], test["g"].shape[1]))
    rows = {"component": np.arange(1, k + 1), "clips": len(test["f"]),
            "in_sample": canonical_correlations(test["f"], test["g"], k)}
    if fit_part is not None:
        fit = select(feats, fit_part)
        mx, my, a, b = _cca_directions(fit["f"], fit["g"], k)
        pf, pg = (test["f"] - mx) @ a, (test["g"] - my) @ b
        rows["held_out"] = np.array([abs(_corr(pf[:, i], pg[:, i])) for i in range(k)])
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- 4. generating factors


def factor_table(root: str | Path, clip_ids) -> pd.DataFrame:
    """The synthetic corpus' generating factors (root/factors.csv), one row per clip id, in the order given.

    A clip id is "<subject>/<file stem>" with the subject as two digits ("01".."24"), as
    ClipRecord.clip_id makes it. Raises if factors.csv is missing or lacks a clip.
    """
    path = Path(root) / "factors.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no factors.csv (only the synthetic corpus has its generating factors)")
    df = pd.read_csv(path, dtype={"file": str})
    df.index = [f"{int(a):02d}/{f}" for a, f in zip(df["actor"], df["file"])]
    ids = [str(c) for c in clip_ids]
    missing = [c for c in ids if c not in df.index]
    if missing:
        raise KeyError(f"{len(missing)} clip ids not in {path}, e.g. {missing[:3]}")
    out = df.loc[ids].copy()
    out.index.name = "clip_id"
    return out


def probe_score(x: np.ndarray, target, discrete: bool, folds: int = 5, seed: int = 0) -> tuple[float, float]:
    """(score, chance) of a cross-validated linear probe: accuracy vs majority-class rate, or R² vs 0.

    Standardised features; logistic regression for a discrete target, ridge (alpha by inner
    leave-one-out) for a continuous one. The score is computed once on the pooled out-of-fold
    predictions of every clip (per-fold R² on a handful of clips is wildly unstable). Folds are shuffled with `seed` (clips are often stored
    sorted by subject, and unshuffled folds would then hold out whole subjects) and shrink to what
    the data allow (at least 2, for a discrete target no more than the smallest class), so tiny test
    sets still get a number. NaN when the target does not vary or no class has two clips.
    """
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.metrics import accuracy_score, r2_score
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import warnings

    x = np.asarray(x, dtype=np.float64)
    t = np.asarray(target)
    if discrete:
        t = pd.factorize(t.astype(str))[0]
        _, counts = np.unique(t, return_counts=True)
        if len(counts) < 2 or counts.max() < 2:
            return float("nan"), float("nan")
        chance = float(counts.max() / len(t))
        cv = StratifiedKFold(int(max(2, min(folds, counts.min()))), shuffle=True, random_state=seed)
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    else:
        t = t.astype(np.float64)
        if len(t) < 4 or np.ptp(t) == 0:
            return float("nan"), float("nan")
        chance = 0.0
        cv = KFold(int(max(2, min(folds, len(t) // 2))), shuffle=True, random_state=seed)
        model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 4, 13)))
    from threadpoolctl import threadpool_limits

    # one BLAS/OpenMP thread: many tiny fits, where threads spinning on a busy shared CPU only cost time
    with warnings.catch_warnings(), threadpool_limits(limits=1):
        warnings.simplefilter("ignore")  # small classes, constant folds: the score says enough
        pred = cross_val_predict(model, x, t, cv=cv)
    return float(accuracy_score(t, pred) if discrete else r2_score(t, pred)), chance


def factor_probes(feats: dict, factors: pd.DataFrame, part: str = "test", keys=FEATURE_KEYS,
                  which: tuple[tuple[str, str, str], ...] | None = None, folds: int = 5) -> pd.DataFrame:
    """Linear probes for each generating factor on the features of the clips of `part`.

    `factors` is indexed by clip id (`factor_table`); `which` lists (column, kind, level) as FACTORS
    (default: those of FACTORS present in `factors`). One row per factor × feature: factor, kind,
    level, metric ('acc' or 'R²'), feature, clips, score, chance.
    """
    sel = select(feats, part)
    fac = factors.loc[[str(c) for c in sel["clip_ids"]]]
    which = which or tuple(w for w in FACTORS if w[0] in fac.columns)
    # a factor that does not vary over these clips (e.g. one intensity in a small corpus) gets NaN
    rows = []
    for col, kind, level in which:
        discrete = col in DISCRETE_FACTORS or fac[col].dtype.kind in "OUb"
        for key in keys:
            score, chance = probe_score(sel[key], fac[col].to_numpy(), discrete, folds)
            rows.append({"factor": col, "kind": kind, "level": level, "metric": "acc" if discrete else "R²",
                         "feature": key, "clips": len(sel[key]), "score": score, "chance": chance})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- figures


def plot_spread(runs: pd.DataFrame, by: str = "condition", group: str | None = None,
                metrics: tuple[str, ...] = ("acc", "uar")):
    """Every run's test score as a dot, coloured by `by`, with the mean ± std as a square and whisker.

    With `group` (e.g. a column saying which runs were pooled) the x axis has one slot per group value.
    """
    import matplotlib.pyplot as plt

    hues = list(dict.fromkeys(runs[by]))
    groups = list(dict.fromkeys(runs[group])) if group else [None]
    w = 0.8 / len(hues)
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics) * max(1, len(groups) / 1.5) + 0.6, 3.6), squeeze=False)
    rng = np.random.default_rng(0)
    for ax, m in zip(axes[0], metrics):
        lo, hi = np.inf, -np.inf
        for gi, gname in enumerate(groups):
            for hi_, h in enumerate(hues):
                sel = (runs[by] == h) & ((runs[group] == gname) if group else True)
                v = 100 * runs.loc[sel, m].to_numpy(float)
                if not len(v):
                    continue
                x = gi + (hi_ - (len(hues) - 1) / 2) * w
                ax.scatter(x + rng.uniform(-0.2, 0.2, len(v)) * w, v, color=f"C{hi_}", alpha=0.6, zorder=2,
                           label=h if gi == 0 else None)
                ax.errorbar(x, v.mean(), yerr=v.std(ddof=1) if len(v) > 1 else 0, fmt="s", color="k", capsize=5, ms=5, zorder=3)
                lo, hi = min(lo, v.min()), max(hi, v.max())
        pad = max(2.0, 0.15 * (hi - lo))
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_xticks(range(len(groups)), [str(g) if g is not None else "" for g in groups], fontsize=8)
        ax.set_xlim(-0.5, len(groups) - 0.5)
        ax.set_ylabel(f"test {m.upper()} (%)")
        ax.grid(axis="y", alpha=0.3)
    axes[0, -1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def plot_grouped(df: pd.DataFrame, x: str, hue: str, mean: str = "mean", std: str = "std", ylabel: str = "",
                 xlabels: dict | None = None, ylim: tuple[float, float] | None = None, ax=None):
    """Grouped bars (one group per value of `x`, one bar per value of `hue`) with std whiskers."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5.2, 3.4))
    xs, hs = list(dict.fromkeys(df[x])), list(dict.fromkeys(df[hue]))
    w = 0.8 / len(hs)
    for j, h in enumerate(hs):
        sub = df[df[hue] == h].set_index(x).reindex(xs)
        pos = np.arange(len(xs)) + (j - (len(hs) - 1) / 2) * w
        ax.bar(pos, sub[mean], w, yerr=sub[std] if std else None, capsize=3, label=h, color=f"C{j}")
    ax.set_xticks(range(len(xs)), [(xlabels or {}).get(v, v) for v in xs])
    ax.set_ylabel(ylabel)
    if ylim:
        ax.set_ylim(*ylim)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return ax.figure


def plot_av_correlation(df: pd.DataFrame, by: str = "condition"):
    """Canonical correlations of f and g against component, per condition; solid in-sample, dashed held-out."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    for i, (name, sub) in enumerate(df.groupby(by, sort=False)):
        g = sub.groupby("component")
        ax.plot(g["in_sample"].mean().index, g["in_sample"].mean(), "o-", color=f"C{i}", label=f"{name}, in-sample")
        if "held_out" in sub:
            ax.plot(g["held_out"].mean().index, g["held_out"].mean(), "s--", color=f"C{i}", label=f"{name}, held-out directions")
    ax.set_xlabel("canonical component")
    ax.set_ylabel("correlation of f and g (test clips)")
    ax.set_ylim(0, 1.02)
    ax.set_xticks(sorted(df["component"].unique()))
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_factor_heatmap(df: pd.DataFrame, by: str = "condition", value: str = "score"):
    """Factors (rows, with their metric and kind) × feature and condition (columns), annotated with the scores.

    Colours are clipped to [0, 1]; R² can be negative (worse than predicting the mean).
    """
    import matplotlib.pyplot as plt

    conds = list(dict.fromkeys(df[by]))
    feats = list(dict.fromkeys(df["feature"]))
    facs = list(dict.fromkeys(df["factor"]))
    info = df.drop_duplicates("factor").set_index("factor")
    tab = df.pivot_table(index="factor", columns=[by, "feature"], values=value, aggfunc="mean", dropna=False)
    cols = [(c, f) for c in conds for f in feats]
    tab = tab.reindex(index=facs, columns=pd.MultiIndex.from_tuples(cols))
    m = tab.to_numpy(float)
    fig, ax = plt.subplots(figsize=(1.0 * len(cols) + 3.2, 0.42 * len(facs) + 1.6))
    ax.imshow(np.clip(np.nan_to_num(m, nan=0.0), 0, 1), cmap="viridis", vmin=0, vmax=1, aspect="auto")
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            txt = "–" if np.isnan(m[i, j]) else f"{m[i, j]:.2f}"
            ax.text(j, i, txt, ha="center", va="center", fontsize=8, color="white" if np.nan_to_num(m[i, j]) < 0.55 else "black")
    chance = df.groupby("factor")["chance"].mean() if "chance" in df else pd.Series(dtype=float)

    def label(f):
        c = chance.get(f, np.nan)
        extra = f", chance {c:.2f}" if info.loc[f, "metric"] == "acc" and np.isfinite(c) else ""
        return f"{f} ({info.loc[f, 'metric']}{extra}, {info.loc[f, 'kind']})"

    ax.set_yticks(range(len(facs)), [label(f) for f in facs], fontsize=8)
    ax.set_xticks(range(len(cols)), [FEATURE_NAMES.get(f, f) for _, f in cols], fontsize=8)
    for k in range(1, len(conds)):
        ax.axvline(k * len(feats) - 0.5, color="w", lw=3)
    for k, c in enumerate(conds):
        ax.text((k + 0.5) * len(feats) - 0.5, -0.75, c, ha="center", va="bottom", fontsize=9)
    ax.set_title("linear probes on test-clip features (acc: accuracy, R²: variance explained)", fontsize=9, pad=22)
    fig.tight_layout()
    return fig
