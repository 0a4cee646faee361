"""Baselines and protocols (notebook 07): Soft-HGR against CCA-style and InfoNCE pair terms with λ tuned on
validation data, and the evaluation protocol decomposed.

Three parts (the mini-batch study of CCA-style objectives is hgrlib.analysis.minibatch):

* `baseline_conditions` / `baseline_plan` / `select_lam`: the conditions of the baselines table and the λ
  selection, the same budget for every tuned objective: each λ of a small grid on the selection runs
  (notebook 07: seed i on fold i), the λ with the best mean validation UAR chosen (ties: the smaller), then
  run on every fold × seed (the selection runs reused). `regime` labels each condition's pair term.
* `run_plan` / `baselines_table` / `lam_selection_table`: training that does not let one failed run crash
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

# ---------------------------------------------------------------------------------------------------------
# Conditions of the baselines table, their regimes, and the λ selection

LAM_GRID = (0.01, 0.1, 1.0)  # λ candidates of each tuned pair objective
TUNED = ("hgr", "cca", "infonce")  # objectives whose λ is selected on validation UAR


@dataclass(frozen=True)
class Condition:
    """One row of the baselines table: `change` (Config.with_ sections, λ aside) and the λ it may take.

    objective: "ce" (no pair term), "hgr3" (Soft-HGR, the paper's 3 pairs), "hgr" | "cca" | "infonce" (one
    audio–visual pair). `grid`: the λ candidates; a single value for the conditions that are not tuned.
    """

    name: str
    objective: str
    change: dict
    grid: tuple[float, ...]

    @property
    def tuned(self) -> bool:
        return self.objective in TUNED

    def at(self, lam: float) -> dict:
        """The Config.with_ change at λ = `lam`."""
        return self.change | {"loss": self.change.get("loss", {}) | {"lam": float(lam)}}


def cca_well_posed_dim(batch_size: int) -> int:
    """k = batch/4: the CCA dimensions for which the batch covariances stay well conditioned (notebook 07)."""
    return max(1, batch_size // 4)


def baseline_conditions(lam: float, batch_size: int, grid: tuple[float, ...] = LAM_GRID, cca_dim: int | None = None) -> list[Condition]:
    """The baselines table's conditions, fusion network throughout.

    Fusion with CE only and the paper's CE + Soft-HGR on 3 pairs at the profile's λ (notebook 02's configs:
    their runs are reused) are not tuned. The three one-pair objectives get λ from `grid` by validation UAR.
    They use the label-free audio–visual pair only (w_ay = w_vy = 0): h(y) is linear in a one-hot label, so
    its covariance has rank ≤ C−1 and CCA's Σhh^{-1/2} is singular by construction; InfoNCE on (feature,
    label) pairs counts same-class clips as negatives. CCA runs on its first k = batch/4 dimensions
    (`cca_dim` overrides) with the relative ridge: the well-posed regime, not the full-d one that breaks.
    """
    k = cca_well_posed_dim(batch_size) if cca_dim is None else int(cca_dim)
    av = {"w_av": 1.0, "w_ay": 0.0, "w_vy": 0.0}
    fusion = {"model": {"modalities": "av"}}
    grid = tuple(float(x) for x in grid)
    return [
        Condition("fusion (CE)", "ce", fusion | {"loss": {}}, (0.0,)),
        Condition("fusion (CE + Soft-HGR)", "hgr3", fusion | {"loss": {}}, (float(lam),)),  # notebook 02's: 3 pairs
        Condition("fusion (CE + Soft-HGR, a–v)", "hgr", fusion | {"loss": av}, grid),
        Condition("fusion (CE + CCA, a–v)", "cca", fusion | {"loss": {"corr": "cca", "cca_dim": k} | av}, grid),
        Condition("fusion (CE + InfoNCE, a–v)", "infonce", fusion | {"loss": {"corr": "infonce"} | av}, grid),
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


def baseline_plan(
    cfg,
    conditions: list[Condition],
    seeds,
    make_runs: Callable,
    chosen: dict[str, float] | None = None,
    select_runs: Callable | None = None,
) -> pd.DataFrame:
    """The runs of the baselines table, one row per distinct run: condition, objective, lam, regime,
    in_selection (a λ-selection run), selected (a final run of the condition's λ), config.

    `make_runs(cfg, seeds)` gives one Config per (fold, seed) (experiment.fold_seed_runs). Without `chosen`:
    the selection runs only, every λ of each tuned condition's grid on `select_runs(cfg, seeds)` (default:
    `make_runs` on `seeds[:1]`; notebook 07 passes experiment.seeded_runs, seed i on fold i). With `chosen`
    (objective → λ, select_lam): those and the final runs, each condition at its λ on every seed; a
    selection run that is also a final run (same config) is listed once, with both flags.
    """
    rows: dict = {}

    def add(cond: Condition, lam: float, cfgs: list, selection: bool) -> None:
        for c in cfgs:
            row = rows.setdefault(
                c,
                {
                    "condition": cond.name,
                    "objective": cond.objective,
                    "lam": float(lam),
                    "regime": regime(c),
                    "in_selection": False,
                    "selected": False,
                    "config": c,
                },
            )
            row["in_selection" if selection else "selected"] = True

    for cond in conditions:
        if cond.tuned:
            for lam in cond.grid:
                c = cfg.with_(**cond.at(lam))
                add(cond, lam, select_runs(c, list(seeds)) if select_runs else make_runs(c, list(seeds)[:1]), True)
    if chosen is not None:
        for cond in conditions:
            if cond.tuned and cond.objective not in chosen:
                raise KeyError(f"no λ chosen for {cond.objective!r} (chosen: {sorted(chosen)})")
            lam = chosen[cond.objective] if cond.tuned else cond.grid[0]
            add(cond, lam, make_runs(cfg.with_(**cond.at(lam)), list(seeds)), False)
    order = {c.name: i for i, c in enumerate(conditions)}  # conditions in their given order, runs in plan order within
    out = sorted(rows.values(), key=lambda r: order[r["condition"]])
    return pd.DataFrame(out, columns=["condition", "objective", "lam", "regime", "in_selection", "selected", "config"])


def select_lam(runs: pd.DataFrame, tol: float = 1e-9) -> dict[str, float]:
    """objective → the λ with the best mean `val_uar` over its selection runs; ties (within `tol`) → the
    smaller λ. Uses the rows with in_selection, when that column is there. A failed run (val_uar NaN) makes
    its λ's mean −inf: a λ whose runs all finished wins over one that failed."""
    r = runs[runs["in_selection"].astype(bool)] if "in_selection" in runs else runs
    out = {}
    for obj, sub in r.groupby("objective", sort=False):
        score = sub["val_uar"].fillna(-np.inf).groupby(sub["lam"]).mean()
        best = score.max()
        out[obj] = float(min(lam for lam, v in score.items() if v >= best - tol))  # best = −inf: every λ
    return out


def lam_selection_table(runs: pd.DataFrame, chosen: dict[str, float]) -> pd.DataFrame:
    """objective × λ: the selection runs' mean ± std validation UAR (failed runs apart) and which λ was chosen.
    Selection, not a result: these runs' test scores are not looked at."""
    r = runs[runs["in_selection"].astype(bool)] if "in_selection" in runs else runs
    rows = []
    for (obj, lam), sub in r.groupby(["objective", "lam"], sort=False):
        v = sub["val_uar"].dropna()
        m, s = v.mean(), v.std(ddof=1) if len(v) > 1 else 0.0
        rows.append(
            {
                "objective": obj,
                "lam": lam,
                "runs": len(sub),
                "runs_failed": int(sub["val_uar"].isna().sum()),
                "val_uar": f"{100 * m:.1f} ± {100 * s:.1f}" if len(v) else "n/a",
                "val_uar_mean": m,
                "val_uar_std": s,
                "chosen": bool(np.isclose(lam, chosen.get(obj, np.nan))),
            }
        )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------------
# Training that survives a failed run, and the tables


def safe_run_all(cfgs: list, fs, runs_dir: str = "runs", progress: bool = True) -> list[dict]:
    """Like launch.run_all, but a run that raises (e.g. a linear-algebra error outside the loss, which the
    trainer does not catch) becomes a placeholder result with NaN metrics and its error, instead of stopping
    the notebook. Finished runs are read back from `runs_dir` as usual.
    """
    from hgrlib.launch import run_all

    out = []
    # LinAlgError is a RuntimeError; listed to say what is expected
    for c, r in zip(cfgs, run_all(cfgs, fs, runs_dir, progress, catch=(RuntimeError, ValueError, torch.linalg.LinAlgError))):
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


def run_plan(plan: pd.DataFrame, fs, runs_dir: str = "runs", progress: bool = True) -> tuple[list[dict], pd.DataFrame]:
    """Train (or read back) every run of a baseline_plan: (results, runs), runs being one row per run with
    the plan's labels, results_frame's columns and `error` ("" unless the run raised)."""
    from hgrlib.experiment import results_frame

    results = safe_run_all(list(plan["config"]), fs, runs_dir, progress)
    labels = {k: list(plan[k]) for k in ("condition", "objective", "selected", "in_selection", "regime")}
    runs = results_frame(results, **labels).assign(error=[r.get("error", "") for r in results])
    return results, runs[RUN_COLUMNS + [c for c in runs.columns if c not in RUN_COLUMNS]]


def baselines_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per condition, over its final runs (selected): λ, runs, acc/uar/seg_acc mean ± std (%), the regime,
    skipped non-finite optimiser steps summed over its runs, and the runs that raised."""
    from hgrlib.report import mean_std

    final = runs[runs["selected"].astype(bool)]
    t = mean_std(final, ["condition"], metrics=("acc", "uar", "seg_acc"))
    g = final.groupby("condition", sort=False)
    extra = pd.DataFrame(
        {
            "objective": g["objective"].first(),
            "lam": g["lam"].first(),
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
            "lam",
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
