"""Baselines and protocols (notebook 07): Soft-HGR against CCA-style and InfoNCE pair terms with λ tuned on
validation data, and the evaluation protocol decomposed.

Three parts (the mini-batch study of CCA-style objectives is hgrlib.analysis.minibatch):

* `baseline_conditions` / `baseline_plan` / `select_settings`: the conditions of the baselines table and
  their tuning, nested in the outer folds and with the same budget for every tuned objective: each of its
  `BUDGET` settings (λ, and CCA's k, ridge and batch, InfoNCE's temperature) trained once on every fold
  (the first seed); on each fold the setting with the best validation UAR on that fold's own validation
  subjects is chosen (ties: the earlier in the grid) and trained with every seed of that fold. No choice
  sees a test subject of the runs it is used for. `regime` labels each condition's pair term.
* `run_plan` / `baselines_table` / `tuning_table`: training that does not let one failed run crash
  the notebook, and the tables (the trainer skips non-finite steps and counts them: `nonfinite_steps`).
* `protocol_table`: the paper's model under the subject, clip and segment protocols, and the paired
  differences that split the gap: clip − subject (speaker dependence), segment − clip (segment leakage).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
import torch

from hgrlib.experiment import conditions as C

# ---------------------------------------------------------------------------------------------------------
# Conditions of the baselines table, their regimes, and the λ selection

BUDGET = 6  # settings tried per tuned objective, on every fold
TUNED = ("hgr", "cca", "infonce")  # objectives whose settings are chosen on validation UAR


def _grid(lams, alts=({},)) -> tuple[dict, ...]:
    """Settings (Config.with_ sections "loss" and "train"): every λ of `lams` with each alternative of `alts`,
    alternatives outer. An alternative is a dict of section → fields laid over {"loss": {"lam": λ}}; the default,
    one empty alternative, gives λ alone."""
    return tuple({"loss": {"lam": float(lam)} | alt.get("loss", {}), "train": alt.get("train", {})} for alt in alts for lam in lams)


def tuning_grids(batch_size: int, cca_dim: int | None = None) -> dict[str, tuple[dict, ...]]:
    """objective → its BUDGET candidate settings, smallest λ first. Widened where an earlier, narrower grid
    (λ ∈ 0.01, 0.1, 1) chose an edge: Soft-HGR and InfoNCE took λ = 1, CCA λ = 0.01. CCA also tries twice
    the batch with twice the dimensions (k = batch/4 either way: its well-posed regime, notebook 07 section 3)
    and a larger ridge; InfoNCE two temperatures (0.1, its default, and CLIP's initial 0.07)."""
    k = cca_well_posed_dim(batch_size) if cca_dim is None else int(cca_dim)
    cca_alts = [
        {"loss": {"cca_dim": k, "cca_ridge": 1e-3}},
        {"loss": {"cca_dim": 2 * k, "cca_ridge": 1e-2}, "train": {"batch_size": 2 * batch_size}},
    ]
    return {
        "hgr": _grid((0.01, 0.1, 0.3, 1.0, 3.0, 10.0)),
        "cca": _grid((0.001, 0.01, 0.1), alts=cca_alts),
        "infonce": _grid((0.3, 1.0, 3.0), alts=[{"loss": {"temperature": 0.1}}, {"loss": {"temperature": 0.07}}]),
    }


def setting_label(setting: dict) -> str:
    """A setting in a reader's words, e.g. "λ=0.1, cca_dim=32, cca_ridge=0.01, batch_size=128"."""
    fields = setting.get("loss", {}) | setting.get("train", {})
    return ", ".join(("λ" if k == "lam" else k) + f"={v:g}" for k, v in fields.items())


@dataclass(frozen=True)
class Condition:
    """One row of the baselines table: `change` (Config.with_ sections) and its candidate `settings`.

    objective: "ce" (no pair term), "hgr3" (Soft-HGR, the paper's 3 pairs), "hgr" | "cca" | "infonce" (one
    audio–visual pair). `settings`: the candidates (Config.with_ sections); one for the untuned conditions.
    """

    name: str
    objective: str
    change: dict
    settings: tuple[dict, ...]

    @property
    def tuned(self) -> bool:
        return self.objective in TUNED

    def at(self, setting: dict) -> dict:
        """The Config.with_ change with `setting`'s fields over `change`'s."""
        sections = set(self.change) | set(setting)
        return {sec: self.change.get(sec, {}) | setting.get(sec, {}) for sec in sections}


def cca_well_posed_dim(batch_size: int) -> int:
    """k = batch/4: the CCA dimensions for which the batch covariances stay well conditioned (notebook 07)."""
    return max(1, batch_size // 4)


def baseline_conditions(lam: float, batch_size: int, cca_dim: int | None = None, grids: dict | None = None) -> list[Condition]:
    """The baselines table's conditions, fusion network throughout.

    Fusion with CE only and the paper's CE + Soft-HGR on 3 pairs at the profile's λ are not tuned. The three
    one-pair objectives get their settings from `grids` (default `tuning_grids`) by validation UAR. They use
    the label-free audio–visual pair only (w_ay = w_vy = 0): h(y) is linear in a one-hot label, so its
    covariance has rank ≤ C−1 and CCA's Σhh^{-1/2} is singular by construction; InfoNCE on (feature, label)
    pairs counts same-class clips as negatives. CCA runs with the relative ridge on k ≤ batch/4 dimensions:
    the well-posed regime, not the full-d one that breaks.
    """
    grids = tuning_grids(batch_size, cca_dim) if grids is None else grids
    av, fusion = C.AV_PAIR, C.FUSION
    return [
        Condition(C.FUSION_CE, "ce", fusion | {"loss": {"lam": 0.0}}, ({},)),
        Condition(C.FUSION_HGR, "hgr3", fusion | {"loss": {"lam": float(lam)}}, ({},)),  # the paper's 3 pairs
        Condition(C.FUSION_HGR_AV, "hgr", fusion | {"loss": av}, grids["hgr"]),
        Condition(C.FUSION_CCA_AV, "cca", fusion | {"loss": {"corr": "cca"} | av}, grids["cca"]),
        Condition(C.FUSION_INFONCE_AV, "infonce", fusion | {"loss": {"corr": "infonce"} | av}, grids["infonce"]),
    ]


def cca_regime(k: int, batch: int, ridge: float, relative: bool = True) -> tuple[str, bool]:
    """(label, well_posed) of a CCA term on k dimensions of a batch of `batch` rows.

    k ≤ batch/4: well conditioned (sample covariance eigenvalues within ≈ (1 ± √(k/N))²: condition ≤ 9);
    batch/4 < k < batch−1: invertible but ill-conditioned; k ≥ batch−1: singular once centred, the value is
    set by the ridge (near batch−1 on any data)."""
    r = f"ridge {ridge:g}·tr/k" if relative else f"ridge {ridge:g} (absolute)"
    if 4 * k <= batch:
        return f"CCA k={k} ≤ batch/4, {r}: well-posed", True
    if k < batch - 1:
        return f"CCA k={k} > batch/4, {r}: invertible, ill-conditioned", False
    return f"CCA k={k} ≥ batch−1, {r}: singular, value set by the ridge", False


def regime(cfg) -> str:
    """What kind of pair term a Config trains with, at its batch size and feature dimension."""
    loss = cfg.loss
    if loss.lam == 0:
        return "CE only: no pair term"
    if loss.corr == "hgr":
        return "Soft-HGR: no inverse, any batch"
    if loss.corr == "infonce":
        return "InfoNCE: no covariance"
    d = cfg.model.dim
    k = d if loss.cca_dim <= 0 or loss.cca_dim >= d else loss.cca_dim
    return cca_regime(k, cfg.train.batch_size, loss.cca_ridge)[0]


def baseline_plan(cfg, conditions: list[Condition], seeds, make_runs: Callable, chosen: dict | None = None) -> pd.DataFrame:
    """The runs of the baselines table, one row per distinct run: condition, objective, setting (its label),
    setting_index, lam, regime, in_selection (a tuning run), selected (a final run), config.

    `make_runs(cfg, seeds)` gives one Config per (fold, seed), folds outer (experiment.fold_seed_runs).
    Without `chosen`: the tuning runs only, every setting of each tuned condition on every fold with the
    first seed. With `chosen` ((objective, fold) → setting index, select_settings): those and the final
    runs, each tuned condition on each fold at that fold's setting with every seed, the untuned ones on
    every fold × seed; a tuning run that is also a final run (same config) is listed once, with both flags.
    """
    rows: dict = {}
    seeds = list(seeds)

    def add(cond: Condition, j: int, cfgs: list, selection: bool) -> None:
        for c in cfgs:
            row = rows.setdefault(
                c,
                {
                    "condition": cond.name,
                    "objective": cond.objective,
                    "setting": setting_label(cond.settings[j]) or f"λ={c.loss.lam:g}",
                    "setting_index": j,
                    "lam": float(c.loss.lam),
                    "regime": regime(c),
                    "in_selection": False,
                    "selected": False,
                    "config": c,
                },
            )
            row["in_selection" if selection else "selected"] = True

    for cond in conditions:
        if cond.tuned:
            for j, setting in enumerate(cond.settings):
                add(cond, j, make_runs(cfg.with_(**cond.at(setting)), seeds[:1]), True)
    if chosen is not None:
        for cond in conditions:
            if not cond.tuned:
                add(cond, 0, make_runs(cfg.with_(**cond.at(cond.settings[0])), seeds), False)
                continue
            by_fold: dict[int, list] = {}
            for j, setting in enumerate(cond.settings):
                for c in make_runs(cfg.with_(**cond.at(setting)), seeds):
                    by_fold.setdefault(c.train.fold, {}).setdefault(j, []).append(c)
            for fold, per_setting in by_fold.items():
                if (cond.objective, fold) not in chosen:
                    raise KeyError(f"no setting chosen for {cond.objective!r} on fold {fold} (chosen: {sorted(chosen)})")
                j = chosen[(cond.objective, fold)]
                add(cond, j, per_setting[j], False)
    order = {c.name: i for i, c in enumerate(conditions)}  # conditions in their given order, runs in plan order within
    out = sorted(rows.values(), key=lambda r: order[r["condition"]])
    cols = ["condition", "objective", "setting", "setting_index", "lam", "regime", "in_selection", "selected", "config"]
    return pd.DataFrame(out, columns=cols)


def select_settings(runs: pd.DataFrame) -> dict[tuple[str, int], int]:
    """(objective, fold) → the setting index with the best validation UAR among that fold's tuning runs
    (rows with in_selection, where the column is there); ties → the earlier setting. A failed run (val_uar
    NaN) ranks last. Each fold's choice reads only its own validation subjects."""
    r = runs[runs["in_selection"].astype(bool)] if "in_selection" in runs else runs
    out = {}
    for (obj, fold), sub in r.groupby(["objective", "fold"], sort=False):
        score = sub.groupby("setting_index")["val_uar"].mean().fillna(-np.inf).sort_index()
        out[(obj, int(fold))] = int(score.index[int(np.argmax(score.to_numpy()))])  # argmax: the first of equals
    return out


def tuning_table(runs: pd.DataFrame, chosen: dict[tuple[str, int], int]) -> pd.DataFrame:
    """objective × setting: runs (one per fold), failed runs, validation UAR mean ± std over the folds, the
    folds that chose it, and `edge` where a chosen λ is the smallest or largest of the objective's grid.
    Tuning, not a result: these runs' test scores are not looked at."""
    r = runs[runs["in_selection"].astype(bool)] if "in_selection" in runs else runs
    lams = r.groupby("objective", sort=False)["lam"].agg(["min", "max"])  # each objective's λ range over its tuning runs
    rows = []
    for (obj, j), sub in r.groupby(["objective", "setting_index"], sort=False):
        v = sub["val_uar"].dropna()
        m, s = v.mean(), v.std(ddof=1) if len(v) > 1 else 0.0
        folds = sorted(f for (o, f), c in chosen.items() if o == obj and c == j)
        lam = float(sub["lam"].iloc[0])
        rows.append(
            {
                "objective": obj,
                "setting": sub["setting"].iloc[0],
                "runs": len(sub),
                "runs_failed": int(sub["val_uar"].isna().sum()),
                "val_uar": f"{100 * m:.1f} ± {100 * s:.1f}" if len(v) else "n/a",
                "val_uar_mean": m,
                "val_uar_std": s,
                "chosen_on_folds": ", ".join(map(str, folds)),
                "edge": bool(folds) and lam in (lams.at[obj, "min"], lams.at[obj, "max"]),
            }
        )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------------
# Training that survives a failed run, and the tables


def safe_run_all(cfgs: list, fs, runs_dir: str = "runs", progress: bool = True, jobs: int | None = None) -> list[dict]:
    """Like launch.train_all, but a run that raises (e.g. a linear-algebra error outside the loss, which the
    trainer does not catch) becomes a placeholder result with NaN metrics and its error, instead of stopping
    the notebook. Finished runs are read back from `runs_dir` as usual; `jobs` as in launch.train_all.
    """
    from hgrlib.experiment.launch import train_all

    out = []
    # LinAlgError is a RuntimeError; listed to say what is expected
    for c, r in zip(cfgs, train_all(cfgs, fs, runs_dir, progress, jobs, catch=(RuntimeError, ValueError, torch.linalg.LinAlgError))):
        if isinstance(r, BaseException):
            nan = float("nan")
            test = {k: nan for k in ("acc", "uar", "seg_acc", "seg_uar", "clip_acc", "clip_uar")}
            r = {
                "config": c.to_dict(),
                "test": test,
                "history": [],
                "seconds": nan,
                "run_dir": None,
                "best_val_uar": nan,
                "n_train_segments": nan,
                "steps": nan,
                "error": f"{type(r).__name__}: {r}",
            }
        out.append(r)
    return out


RUN_COLUMNS = [
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
    "acc",
    "uar",
    "seg_acc",
    "seg_uar",
    "clip_acc",
    "clip_uar",
    "val_uar",
    "nonfinite_steps",
    "n_train_segments",
    "steps",
    "seconds",
    "error",
]


def run_plan(
    plan: pd.DataFrame, fs, runs_dir: str = "runs", progress: bool = True, jobs: int | None = None
) -> tuple[list[dict], pd.DataFrame]:
    """Train (or read back) every run of a baseline_plan: (results, runs), runs being one row per run with
    the plan's labels, results_frame's columns and `error` ("" unless the run raised)."""
    from hgrlib.experiment.prepare import results_frame

    results = safe_run_all(list(plan["config"]), fs, runs_dir, progress, jobs)
    labels = {k: list(plan[k]) for k in ("condition", "objective", "setting", "setting_index", "selected", "in_selection", "regime")}
    runs = results_frame(results, **labels).assign(error=[r.get("error", "") for r in results])
    return results, runs[RUN_COLUMNS + [c for c in runs.columns if c not in RUN_COLUMNS]]


def _chosen_settings(final: pd.DataFrame) -> str:
    """The settings a condition's final runs used, each with the folds that chose it."""
    final = final.sort_values("setting_index", kind="stable")  # in grid order
    per = final.groupby("setting", sort=False)["fold"].apply(lambda f: ", ".join(map(str, sorted(set(f)))))
    return "; ".join(per.index) if len(per) == 1 else "; ".join(f"{s} (folds {f})" for s, f in per.items())


def baselines_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per condition, over its final runs (selected): the settings used (per fold where they differ), runs,
    acc/uar/seg_acc mean ± std (%), the regime, skipped non-finite optimiser steps summed over its runs, and
    the runs that raised."""
    from hgrlib.report.tables import mean_std

    final = runs[runs["selected"].astype(bool)]
    t = mean_std(final, ["condition"], metrics=("acc", "uar", "seg_acc"))
    g = final.groupby("condition", sort=False)
    extra = pd.DataFrame(
        {
            "objective": g["objective"].first(),
            "settings": g.apply(_chosen_settings, include_groups=False),
            "regime": g["regime"].first(),
            "nonfinite_steps": g["nonfinite_steps"].sum().astype(int),
            "runs_failed": g["error"].apply(lambda e: int((e.fillna("") != "").sum())),
        }
    ).reset_index()
    t = t.merge(extra, on="condition")
    return t[
        [
            "condition",
            "objective",
            "settings",
            "runs",
            "acc",
            "uar",
            "seg_acc",
            "regime",
            "nonfinite_steps",
            "runs_failed",
            "acc_mean",
            "acc_std",
            "uar_mean",
            "uar_std",
            "seg_acc_mean",
            "seg_acc_std",
        ]
    ]


# ---------------------------------------------------------------------------------------------------------
# Protocols: subject, clip, segment, and the paired differences between them

PROTOCOLS = ("subject", "clip", "segment")
DECOMPOSITION = (("clip", "subject", "speaker dependence"), ("segment", "clip", "segment leakage"), ("segment", "subject", "total"))


def protocol_table(runs: pd.DataFrame, metrics: tuple[str, ...] = ("seg_acc", "clip_acc")) -> pd.DataFrame:
    """Per protocol: runs, `metrics` mean ± std (%), mean n_train_segments; then one row per difference of
    DECOMPOSITION (protocol "a − b", its component): the mean ± std over (fold, seed) pairs present under both
    protocols of the paired difference, in points (n_train_segments NaN).

    Over the pairs present under all three protocols, total = speaker dependence + segment leakage exactly.
    Under clip and segment, `fold` indexes a random draw (seeded by seed and fold), not a subject fold: the
    pairing matches indices, the difference of means is what the pairs estimate.
    """
    rows = []
    protos = [p for p in PROTOCOLS if p in set(runs["protocol"])] + [p for p in dict.fromkeys(runs["protocol"]) if p not in PROTOCOLS]
    for p in protos:
        sub = runs[runs["protocol"] == p]
        row = {"protocol": p, "component": "", "runs": len(sub), "n_train_segments": float(sub["n_train_segments"].mean())}
        for m in metrics:
            mu, sd = sub[m].mean(), sub[m].std(ddof=1) if len(sub) > 1 else 0.0
            row |= {m: f"{100 * mu:.1f} ± {100 * sd:.1f}", f"{m}_mean": mu, f"{m}_std": sd}
        rows.append(row)
    by = {p: runs[runs["protocol"] == p].set_index(["fold", "seed"]) for p in protos}
    for a, b, name in DECOMPOSITION:
        if a not in by or b not in by:
            continue
        common = by[a].index.intersection(by[b].index)
        row = {"protocol": f"{a} − {b}", "component": name, "runs": len(common)}
        row["n_train_segments"] = np.nan  # a difference of two training sets is no count ("–" in the tables)
        for m in metrics:
            diff = by[a].loc[common, m] - by[b].loc[common, m]
            mu, sd = diff.mean(), diff.std(ddof=1) if len(diff) > 1 else 0.0
            row |= {m: f"{100 * mu:+.1f} ± {100 * sd:.1f} pp", f"{m}_mean": mu, f"{m}_std": sd}
        rows.append(row)
    cols = ["protocol", "component", "runs", *metrics, "n_train_segments"] + [f"{m}_{s}" for m in metrics for s in ("mean", "std")]
    return pd.DataFrame(rows, columns=cols)
