"""Feature stability, made measurable (notebook 05).

What the paper calls the stability of the learned representations is looked at four ways:

* the spread of test scores over seeds, fold by fold (`seed_spread`, `spread_summary`): runs on one
  subject fold that differ only in their seed; pooling folds would mix in how hard each fold is;
* how similar the features of runs that differ only in their seed are on the same held-out clips
  (`seed_cka_pairs`: linear CKA for every condition, fold and pair of seeds; 1 means the same up
  to rotation and scale);
* how correlated the audio and visual features are on held-out clips (`av_correlation`, canonical
  correlations, both in-sample on the test clips and with directions fitted on the training clips);
* on the synthetic corpus, which generating factors the features carry (`factor_table`,
  `factor_probes`). Which factors the two modalities share is read off the generator
  (`generator_factors`, checked against the renderer by `render_dependence`): emotion, intensity,
  the statement's syllable pattern and its timing (the mouth opens with the voice's syllable
  envelope), and the subject, next to audio-only and video-only nuisances.

Features come from `hgrlib.experiment.prepare.run_features`: a dict with clip_ids, part, labels, subjects
and the clip-level arrays f (audio), g (visual), z (fused hidden layer).
"""

from __future__ import annotations

import json
from dataclasses import fields
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from hgrlib.analysis.embeddings import standardize
from hgrlib.core.metrics import canonical_correlations, inv_sqrt, linear_cka
from hgrlib.report.tables import mean_std

FEATURE_KEYS = ("f", "g", "z")


# --------------------------------------------------------------------------- what the generator shares

_A_KEYS = ("a_f0", "a_rng", "a_rate", "a_energy", "a_jitter", "a_tilt", "a_breath", "a_slope")
_V_KEYS = ("v_brow", "v_tilt", "v_eye", "v_curve", "v_open", "v_width")
_VOICE = ("f0_base", "formant_scale", "rate", "breath")
_FACE = ("face_w", "face_h", "skin", "eye_spacing", "brow_thick", "mouth_w")
_AV, _A, _V, _NONE = ("audio", "video"), ("audio",), ("video",), ()

# Every factor of hgrlib.data.synthetic (the columns of factors.csv, plus the envelope measures of
# `envelope_factors`): (name, level, modalities it reaches, how, factors it acts through).
# Factors with nothing to act through are read by the renderer itself (synth_audio for the audio,
# render_frames for the video, which also takes the audio's syllable envelope to open the mouth);
# tests/test_stability.py checks them against the renderer by perturbation (`render_dependence`).
# The others are sampled in clip_factors/subject_traits and reach the media only through the
# factors listed last.
GENERATOR_FACTORS: tuple[tuple[str, str, tuple[str, ...], str, tuple[str, ...]], ...] = (
    (
        "emotion",
        "clip",
        _AV,
        "prosody profile (AUDIO_PROFILE, all a_*) and facial expression profile "
        "(VISUAL_PROFILE, all v_*); its speaking-rate change also times the mouth",
        _A_KEYS + _V_KEYS,
    ),
    ("intensity", "clip", _AV, "x1.3 on both expression strengths", ("audio_strength", "visual_strength")),
    ("audio_strength", "clip", _AV, "scales the prosody a_*; through a_rate (weakly) also the mouth's timing", _A_KEYS),
    ("visual_strength", "clip", _V, "scales the facial expression v_*", _V_KEYS),
    ("ambiguous", "clip", _AV, "which modality's strength is set near 0", ("audio_strength", "visual_strength")),
    ("statement", "clip", _AV, "the syllable pattern (durations, stresses, vowels); the mouth opens with its envelope", ()),
    ("repetition", "clip", _NONE, "no systematic effect: only part of the file name that seeds the clip's random draws", ()),
    (
        "actor",
        "subject",
        _AV,
        "voice traits (f0_base, formant_scale, rate, breath) and face traits "
        "(face_w, face_h, skin, eye_spacing, brow_thick, mouth_w); the speaking rate also times the mouth",
        _VOICE + _FACE,
    ),
    ("f0_base", "subject", _A, "voice pitch", ()),
    ("formant_scale", "subject", _A, "vocal tract length (formant frequencies)", ()),
    ("rate", "subject", _AV, "speaking rate: syllable durations, which the mouth follows", ()),
    ("breath", "subject", _A, "breathiness", ()),
    ("face_w", "subject", _V, "face width", ()),
    ("face_h", "subject", _V, "face height", ()),
    ("skin", "subject", _V, "skin (and hair) tone", ()),
    ("eye_spacing", "subject", _V, "eye spacing", ()),
    ("brow_thick", "subject", _V, "brow thickness", ()),
    ("mouth_w", "subject", _V, "mouth width", ()),
    ("gain_db", "clip", _A, "recording gain", ()),
    ("rate_jitter", "clip", _AV, "per-clip speaking-rate change, which the mouth follows", ()),
    ("onset", "clip", _AV, "when speech starts; the mouth starts moving with it", ()),
    ("yaw", "clip", _V, "head pose", ()),
    ("pitch", "clip", _V, "head pose", ()),
    ("roll", "clip", _V, "head pose", ()),
    ("light", "clip", _V, "lighting level", ()),
    ("light_dir", "clip", _V, "lighting direction", ()),
    ("bg", "clip", _V, "background brightness", ()),
    *(
        (
            k,
            "clip",
            _AV if k == "a_rate" else _A,
            "emotional speaking rate: syllable durations, which the mouth follows" if k == "a_rate" else "emotional prosody",
            (),
        )
        for k in _A_KEYS
    ),
    *((k, "clip", _V, "facial expression", ()) for k in _V_KEYS),
    # measures of the syllable envelope (see `envelope_factors`), which drives both the voice and the mouth
    (
        "env_mean",
        "clip",
        _AV,
        "mean of the syllable envelope over the clip: voiced energy, mouth opening",
        ("statement", "rate", "rate_jitter", "a_rate", "onset"),
    ),
    ("speech_onset", "clip", _AV, "first time the envelope is on", ("onset",)),
    ("syllable_rate", "clip", _AV, "syllables per second", ("statement", "rate", "rate_jitter", "a_rate")),
)


def generator_factors() -> pd.DataFrame:
    """The synthetic generator's factors: factor, level, audio, video (bools: does it reach that modality),
    kind ('shared', 'audio only', 'video only' or 'neither'), how, through (the factors it acts through;
    empty when the renderer reads it directly)."""
    rows = [
        {"factor": n, "level": lvl, "audio": "audio" in m, "video": "video" in m, "kind": _kind(m), "how": how, "through": ", ".join(th)}
        for n, lvl, m, how, th in GENERATOR_FACTORS
    ]
    return pd.DataFrame(rows)


def _kind(modalities) -> str:
    return {2: "shared", 0: "neither"}.get(len(modalities)) or f"{modalities[0]} only"


def render_dependence(cfg=None, actor: int = 1, name: str | None = None, keys=None) -> pd.DataFrame:
    """Which of a clip's factors change its audio and its video, by perturbing each in turn and rendering
    with the generator's own `render_clip` (same random stream: only the factor differs).

    `cfg` defaults to a small, fast SyntheticConfig; `name` to the actor's first clip; `keys` to every
    factor of `clip_factors` but file and actor. One row per factor: factor, audio, video (bools).
    A factor the renderer does not read (emotion, strengths: they act through the a_*/v_* it draws
    from them) changes neither.
    """
    from hgrlib.data import synthetic as syn

    cfg = cfg or syn.SyntheticConfig(n_subjects=max(2, actor), duration=1.2, height=60, width=80, sr=8000)
    name = name or next(n for a, n in syn.clip_names(cfg) if a == actor)
    base = syn.clip_factors(cfg, actor, name)
    v0, a0 = syn.render_clip(cfg, base)
    rows = []
    for k in keys or [k for k in base if k not in ("file", "actor")]:
        da = dv = False
        for new in _perturbed(base[k]):
            v, a = syn.render_clip(cfg, dict(base, **{k: new}))
            da |= a.shape != a0.shape or not np.array_equal(a, a0)
            dv |= v.shape != v0.shape or not np.array_equal(v, v0)
        rows.append({"factor": k, "audio": bool(da), "video": bool(dv)})
    return pd.DataFrame(rows)


def _perturbed(v) -> list:
    """Two other values of a factor (a float both ways, so that one clip at a bound still moves)."""
    if isinstance(v, str):
        return ["audio" if v != "audio" else "visual"]
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return [{1: 2, 2: 1}.get(int(v), int(v) + 1)]
    return [v * 1.2 + 0.1, v * 0.8 - 0.1]


def corpus_config(root: str | Path):
    """The SyntheticConfig a synthetic corpus was made with (root/corpus.json)."""
    from hgrlib.data.synthetic import SyntheticConfig

    cfg = json.loads((Path(root) / "corpus.json").read_text())["config"]
    known = {f.name for f in fields(SyntheticConfig)}
    return SyntheticConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items() if k in known})


def envelope_factors(cfg, factors: pd.DataFrame) -> pd.DataFrame:
    """Per clip, measures of the syllable envelope that drives both the voice and the mouth: env_mean
    (its mean over the clip), speech_onset (s, first time it is on) and syllable_rate (syllables/s).

    The envelope is the generator's own: `synth_audio` run on each clip's factors (rows as
    factors.csv has them, any index) with the clip's render stream, as `render_clip` does; nothing
    random is re-drawn here. syllable_rate is the statement's syllable count over its total
    duration, with synth_audio's rate (subject rate x rate_jitter x max(0.5, 1 + a_rate)).
    """
    from hgrlib.data import synthetic as syn

    rows = []
    for _, row in factors.iterrows():
        f = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}
        _, env = syn.synth_audio(cfg, f, syn._rng(cfg.seed, f["actor"], f["file"], "render"))
        on = np.flatnonzero(env > 0.02)
        syl = syn.STATEMENTS[int(f["statement"])]
        rate = f["rate"] * f["rate_jitter"] * max(0.5, 1.0 + f["a_rate"])
        rows.append(
            {
                "env_mean": float(env.mean()),
                "speech_onset": float(on[0] / cfg.sr) if len(on) else np.nan,
                "syllable_rate": len(syl) / (sum(d for d, _, _ in syl) * 0.2 / rate),
            }
        )
    return pd.DataFrame(rows, index=factors.index)


# Factors probed by default: (column, kind, level). Kind and level come from GENERATOR_FACTORS.
PROBED = (
    "emotion",
    "intensity",
    "statement",
    "syllable_rate",
    "speech_onset",
    "env_mean",
    "actor",
    "audio_strength",
    "visual_strength",
    "f0_base",
    "gain_db",
    "skin",
    "light",
    "yaw",
    "roll",
)
FACTORS: tuple[tuple[str, str, str], ...] = tuple((n, _kind(m), lvl) for p in PROBED for n, lvl, m, _, _ in GENERATOR_FACTORS if n == p)
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


def score_spread(runs: pd.DataFrame, by="condition", metrics: tuple[str, ...] = ("acc", "uar")) -> pd.DataFrame:
    """Per group (`by`: a column or a list of them): runs, then mean, std (ddof=1; 0 for one run), the
    "mean ± std" text (in %), min, max and range of each metric (fractions)."""
    return mean_std(runs, by, metrics, spread=True)


def seed_spread(runs: pd.DataFrame, by: str = "condition", within: str = "fold", metrics: tuple[str, ...] = ("acc", "uar")) -> pd.DataFrame:
    """Spread over seeds alone: `score_spread` per (`by`, `within`), i.e. over the runs of one condition on one
    fold, which differ only in their seed. Columns: by, within, seeds, then mean/std/min/max/range per metric."""
    return score_spread(runs, [by, within], metrics).rename(columns={"runs": "seeds"})


def spread_summary(
    runs: pd.DataFrame, by: str = "condition", within: str = "fold", metrics: tuple[str, ...] = ("acc", "uar")
) -> pd.DataFrame:
    """Per `by`: runs, folds, the spread over seeds averaged over folds ({m}_seed_std: mean over folds of the
    std over seeds; {m}_seed_range likewise), and for contrast the std over all runs pooled ({m}_pooled_std),
    which also holds how much the folds differ."""
    per = seed_spread(runs, by, within, metrics)
    g = per.groupby(by, sort=False)
    out = pd.DataFrame({"runs": runs.groupby(by, sort=False).size(), "folds": g.size()})
    for m in metrics:
        out[f"{m}_mean"] = runs.groupby(by, sort=False)[m].mean()
        out[f"{m}_seed_std"] = g[f"{m}_std"].mean()
        out[f"{m}_seed_range"] = g[f"{m}_range"].mean()
        out[f"{m}_pooled_std"] = runs.groupby(by, sort=False)[m].std(ddof=1).fillna(0.0)
    return out.reset_index()


# --------------------------------------------------------------------------- 2. seed-to-seed CKA


def seed_cka(features_by_seed: dict, key: str, part: str | None = "test") -> pd.DataFrame:
    """Linear CKA of feature `key` ('f', 'g' or 'z') between every pair of seeds, on the clips all share in `part`.

    `features_by_seed` maps a seed to `run_features(result)` of a run on the same fold. One row per pair
    (seeds in the order given): seed_a, seed_b, feature, clips, cka.
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


PAIR_COLUMNS = ["condition", "fold", "pair", "feature", "cka"]


def seed_cka_pairs(features: dict, keys=FEATURE_KEYS, part: str | None = "test") -> pd.DataFrame:
    """Paired seed-to-seed similarity: linear CKA for every condition, fold, pair of seeds and feature.

    `features` maps (condition, fold, seed) to `run_features(result)`. Runs of one condition and fold
    are compared on the `part` clips they share (their test fold), clip by clip. One row per
    condition x fold x pair x feature, in the order met: condition, fold, pair (text "a-b", the
    smaller seed first), feature, cka (in [0, 1]; NaN where a feature is constant over the clips).
    A (condition, fold) with a single seed gives no row.
    """
    groups: dict[tuple, dict] = {}
    for (cond, fold, seed), fe in features.items():
        groups.setdefault((cond, int(fold)), {})[int(seed)] = fe
    rows = []
    for (cond, fold), by_seed in groups.items():
        by_seed = dict(sorted(by_seed.items()))
        for key in keys:
            for r in seed_cka(by_seed, key, part).itertuples(index=False):
                rows.append(
                    {
                        "condition": cond,
                        "fold": fold,
                        "pair": f"{r.seed_a}-{r.seed_b}",
                        "feature": key,
                        "cka": float(np.clip(r.cka, 0.0, 1.0)),
                    }
                )
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)


# --------------------------------------------------------------------------- 3. audio-visual correlation


def _cca_directions(x: np.ndarray, y: np.ndarray, k: int, eps: float = 1e-3):
    """Regularised CCA fitted on (x, y): means and projection matrices (d_x × k, d_y × k)."""
    mx, my = x.mean(0), y.mean(0)
    x, y = x - mx, y - my
    n = len(x)
    wx, wy = inv_sqrt(x.T @ x / n, eps), inv_sqrt(y.T @ y / n, eps)
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
    rows = {"component": np.arange(1, k + 1), "clips": len(test["f"]), "in_sample": canonical_correlations(test["f"], test["g"], k)}
    if fit_part is not None:
        fit = select(feats, fit_part)
        mx, my, a, b = _cca_directions(fit["f"], fit["g"], k)
        pf, pg = (test["f"] - mx) @ a, (test["g"] - my) @ b
        rows["held_out"] = np.array([abs(_corr(pf[:, i], pg[:, i])) for i in range(k)])
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- 4. generating factors


def factor_table(root: str | Path, clip_ids, envelope: bool | None = None) -> pd.DataFrame:
    """The synthetic corpus' generating factors (root/factors.csv), one row per clip id, in the order given.

    A clip id is "<subject>/<file stem>" with the subject as two digits ("01".."24"), as
    ClipRecord.clip_id makes it. With `envelope` (None: when root/corpus.json is there to say how the
    corpus was made) the columns of `envelope_factors` are added. Raises if factors.csv is missing
    or lacks a clip.
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
    if envelope or (envelope is None and (Path(root) / "corpus.json").exists()):
        uniq = out[~out.index.duplicated()]
        out = out.join(envelope_factors(corpus_config(root), uniq))
    return out


def probe_score(x: np.ndarray, target, discrete: bool, folds: int = 5, seed: int = 0) -> tuple[float, float]:
    """(score, chance) of a cross-validated linear probe: accuracy vs majority-class rate, or R² vs 0.

    Features standardised once over all the clips, near-dead columns dropped (`embeddings.standardize`;
    no target involved: done inside each fold, a unit barely alive in the training folds would be scaled
    up by its tiny std and wreck the held-out prediction where it fires); logistic
    regression for a discrete target, ridge (alpha by inner leave-one-out) for a continuous one. The
    score is computed once on the pooled out-of-fold predictions of every clip (per-fold R² on a
    handful of clips is wildly unstable). Folds are shuffled with `seed` (clips are often stored
    sorted by subject, and unshuffled folds would then hold out whole subjects) and shrink to what
    the data allow (at least 2, for a discrete target no more than the smallest class), so tiny test
    sets still get a number. NaN when the target does not vary or no class has two clips.
    """
    import warnings

    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.metrics import accuracy_score, r2_score
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict

    x = np.asarray(x, dtype=np.float64)
    t = np.asarray(target)
    if discrete:
        t = pd.factorize(t.astype(str))[0]
        _, counts = np.unique(t, return_counts=True)
        if len(counts) < 2 or counts.max() < 2:
            return float("nan"), float("nan")
        chance = float(counts.max() / len(t))
        cv = StratifiedKFold(int(max(2, min(folds, counts.min()))), shuffle=True, random_state=seed)
        model = LogisticRegression(max_iter=2000)
    else:
        t = t.astype(np.float64)
        if len(t) < 4 or np.ptp(t) == 0:
            return float("nan"), float("nan")
        chance = 0.0
        cv = KFold(int(max(2, min(folds, len(t) // 2))), shuffle=True, random_state=seed)
        model = RidgeCV(alphas=np.logspace(-2, 4, 13))
    x = standardize(x, drop_below=1e-6)
    from threadpoolctl import threadpool_limits

    # one BLAS/OpenMP thread: many tiny fits, where threads spinning on a busy shared CPU only cost time
    with warnings.catch_warnings(), threadpool_limits(limits=1):
        warnings.simplefilter("ignore")  # small classes, constant folds: the score says enough
        pred = cross_val_predict(model, x, t, cv=cv)
    return float(accuracy_score(t, pred) if discrete else r2_score(t, pred)), chance


def factor_probes(
    feats: dict,
    factors: pd.DataFrame,
    part: str = "test",
    keys=FEATURE_KEYS,
    which: tuple[tuple[str, str, str], ...] | None = None,
    folds: int = 5,
) -> pd.DataFrame:
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
            rows.append(
                {
                    "factor": col,
                    "kind": kind,
                    "level": level,
                    "metric": "acc" if discrete else "R²",
                    "feature": key,
                    "clips": len(sel[key]),
                    "score": score,
                    "chance": chance,
                }
            )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- figures


def probe_findings(probes: pd.DataFrame, by: str = "condition", keep: float = 0.2) -> str:
    """What the factor probes found, in words from their own numbers: how well each feature carries the
    emotion, and which single-modality nuisances (R² ≥ `keep` on average in some condition) a feature keeps."""
    mean = probes.groupby(["factor", "kind", "metric", "feature", by], sort=False)["score"].mean()
    conds = list(dict.fromkeys(probes[by]))

    def values(factor: str, feature: str) -> str:
        return ", ".join(f"{mean.xs((factor, feature), level=('factor', 'feature')).xs(c, level=by).iloc[0]:.2f} with {c}" for c in conds)

    lines = []
    if "emotion" in set(probes["factor"]):
        lines.append(
            "- emotion (probe accuracy): " + "; ".join(f"{k}: {values('emotion', k)}" for k in dict.fromkeys(probes["feature"])) + "."
        )
    kept = []
    for (factor, kind, metric, feature), m in mean.groupby(level=["factor", "kind", "metric", "feature"], sort=False):
        if kind in ("audio only", "video only") and metric == "R²" and m.max() >= keep:
            kept.append(f"{factor} in {feature} ({values(factor, feature)})")
    lines.append("- single-modality nuisances kept (mean R² ≥ " + f"{keep:g}): " + ("; ".join(kept) if kept else "none") + ".")
    return "**What the probes found** (mean over folds × seeds):\n\n" + "\n".join(lines) + "\n"
