"""Baselines and protocols (notebook 07): Soft-HGR against CCA-style and InfoNCE pair terms with λ tuned on
validation data, the evaluation protocol decomposed, and the paper's argument made measurable: CCA-style
objectives on mini-batches.

Four parts:

* `baseline_conditions` / `baseline_plan` / `select_lam`: the conditions of the baselines table and the λ
  selection, the same budget for every tuned objective: each λ of a small grid on the selection runs
  (notebook 07: seed i on fold i), the λ with the best mean validation UAR chosen (ties: the smaller), then
  run on every fold × seed (the selection runs reused). `regime` labels each condition's pair term.
* `run_plan` / `baselines_table` / `lam_selection_table`: training that does not let one failed run crash
  the notebook, and the tables (the trainer skips non-finite steps and counts them: `nonfinite_steps`).
* `protocol_table`: the paper's model under the subject, clip and segment protocols, and the paired
  differences that split the gap: clip − subject (speaker dependence), segment − clip (segment leakage).
* `minibatch_study`: for batch sizes × feature dimensions, many random mini-batches of (f, g) pairs; per
  batch the objective's value, whether value and gradient are finite, and the gradient norm; summarised per
  (objective, batch, dim) with the cell's regime. Data are planted Gaussian pairs with known canonical
  correlations (`planted_pairs`) or a finished run's learned clip features (`run_feature_pool`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
import torch

from hgrlib.losses import cca_corr, infonce, soft_hgr

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


def baseline_conditions(lam: float, batch_size: int, grid: tuple[float, ...] = LAM_GRID,
                        cca_dim: int | None = None) -> list[Condition]:
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


def baseline_plan(cfg, conditions: list[Condition], seeds, make_runs: Callable, chosen: dict[str, float] | None = None,
                  select_runs: Callable | None = None) -> pd.DataFrame:
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
            row = rows.setdefault(c, {"condition": cond.name, "objective": cond.objective, "lam": float(lam),
                                      "regime": regime(c), "in_selection": False, "selected": False, "config": c})
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
        rows.append({"objective": obj, "lam": lam, "runs": len(sub), "runs_failed": int(sub["val_uar"].isna().sum()),
                     "val_uar": f"{100 * m:.1f} ± {100 * s:.1f}" if len(v) else "n/a", "val_uar_mean": m, "val_uar_std": s,
                     "chosen": bool(np.isclose(lam, chosen.get(obj, np.nan)))})
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
            r = {"config": c.to_dict(), "test": test, "history": [], "seconds": nan, "run_dir": None, "best_val_uar": nan,
                 "n_train_segments": nan, "steps": nan, "error": f"{type(r).__name__}: {r}"}
        out.append(r)
    return out


RUN_COLUMNS = ["condition", "objective", "lam", "selected", "in_selection", "regime", "fold", "seed", "acc", "uar", "seg_acc",
               "seg_uar", "clip_acc", "clip_uar", "val_uar", "nonfinite_steps", "n_train_segments", "steps", "seconds", "error"]


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
    extra = pd.DataFrame({"objective": g["objective"].first(), "lam": g["lam"].first(), "regime": g["regime"].first(),
                          "nonfinite_steps": g["nonfinite_steps"].sum().astype(int),
                          "runs_failed": g["error"].apply(lambda e: int((e.fillna("") != "").sum()))}).reset_index()
    t = t.merge(extra, on="condition")
    return t[["condition", "objective", "lam", "runs", "acc", "uar", "seg_acc", "regime", "nonfinite_steps", "runs_failed",
              "acc_mean", "acc_std", "uar_mean", "uar_std", "seg_acc_mean", "seg_acc_std"]]


# ---------------------------------------------------------------------------------------------------------
# Protocols: subject, clip, segment, and the paired differences between them

PROTOCOLS = ("subject", "clip", "segment")
DECOMPOSITION = (("clip", "subject", "speaker dependence"), ("segment", "clip", "segment leakage"),
                 ("segment", "subject", "total"))


def protocol_table(runs: pd.DataFrame, metrics: tuple[str, ...] = ("seg_acc", "clip_acc")) -> pd.DataFrame:
    """Per protocol: runs, `metrics` mean ± std (%), mean n_train_segments; then one row per difference of
    DECOMPOSITION (protocol "a − b", its component): the mean ± std over (fold, seed) pairs present under both
    protocols of the paired difference, in points, and of n_train_segments.

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
        dn = by[a].loc[common, "n_train_segments"] - by[b].loc[common, "n_train_segments"]
        row["n_train_segments"] = float(dn.mean())
        for m in metrics:
            diff = by[a].loc[common, m] - by[b].loc[common, m]
            mu, sd = diff.mean(), diff.std(ddof=1) if len(diff) > 1 else 0.0
            row |= {m: f"{100 * mu:+.1f} ± {100 * sd:.1f} pp", f"{m}_mean": mu, f"{m}_std": sd}
        rows.append(row)
    cols = ["protocol", "component", "runs", *metrics, "n_train_segments"] + [f"{m}_{s}" for m in metrics for s in ("mean", "std")]
    return pd.DataFrame(rows, columns=cols)


# ---------------------------------------------------------------------------------------------------------
# The mini-batch study: CCA-style vs Soft-HGR


def planted_pairs(n: int, d: int, rho: tuple[float, float] = (0.9, 0.3), seed: int = 0,
                  dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """n Gaussian pairs (f, g) in d dimensions with known canonical correlations ρ₁..ρ_d, linear from rho[0]
    to rho[1]: f ~ N(0, I), g = ρ∘f + √(1−ρ²)∘ε. Returns f, g and the population values of the objectives
    (unit covariances: CCA total correlation Σρᵢ; Soft-HGR Σρᵢ − d/2) and the ρᵢ ("rho")."""
    gen = torch.Generator().manual_seed(seed)
    r = torch.linspace(rho[0], rho[1], d, dtype=torch.float64) if d > 1 else torch.tensor([rho[0]], dtype=torch.float64)
    f = torch.randn(n, d, generator=gen, dtype=torch.float64)
    g = r * f + (1 - r**2).sqrt() * torch.randn(n, d, generator=gen, dtype=torch.float64)
    true = {"cca": float(r.sum()), "hgr": float(r.sum() - d / 2), "rho": tuple(float(x) for x in r)}
    return f.to(dtype), g.to(dtype), true


def run_feature_pool(features: dict[str, np.ndarray], parts: tuple[str, ...] = ("train", "val", "test")) -> tuple[torch.Tensor, torch.Tensor]:
    """The clip-level f, g of a finished run (experiment.run_features) in the given parts, as float32 tensors."""
    keep = np.isin(features["part"], parts)
    return torch.from_numpy(features["f"][keep].astype(np.float32)), torch.from_numpy(features["g"][keep].astype(np.float32))


def project(x: torch.Tensor, d: int, seed: int) -> torch.Tensor:
    """Random Gaussian projection of the columns of x to d ≤ x.shape[1] dimensions (d = x.shape[1]: x itself)."""
    if d == x.shape[1]:
        return x
    if d > x.shape[1]:
        raise ValueError(f"cannot project {x.shape[1]}-dim features up to {d} (the covariance would be singular for every batch)")
    gen = torch.Generator().manual_seed(seed)
    return x @ (torch.randn(x.shape[1], d, generator=gen, dtype=x.dtype) / math.sqrt(x.shape[1]))


@dataclass(frozen=True)
class StudyObjective:
    """A pair objective of the mini-batch study, evaluated on a batch of `batch` rows.

    kind "hgr" (Soft-HGR), "infonce" (at `temperature`) or "cca": cca_corr with `ridge`, `relative` or
    absolute, on k = batch // `k_per_batch` dimensions (0: all d), so that k follows the batch size.
    """

    kind: str
    ridge: float = 1e-3
    relative: bool = True
    k_per_batch: int = 0
    temperature: float = 0.1

    def dims(self, batch: int, d: int) -> int:
        """The feature dimensions the objective uses on a batch of `batch` rows of d-dimensional features."""
        return min(d, max(1, batch // self.k_per_batch)) if self.kind == "cca" and self.k_per_batch else d

    def __call__(self, f: torch.Tensor, g: torch.Tensor, batch: int | None = None) -> torch.Tensor:
        if self.kind == "hgr":
            return soft_hgr(f, g)
        if self.kind == "infonce":
            return infonce(f, g, self.temperature)
        return cca_corr(f, g, k=self.dims(batch or f.shape[0], f.shape[1]), ridge=self.ridge, relative=self.relative)

    def bound(self, batch: int, d: int) -> float:
        """The largest value the objective can take: min(k, batch−1) for CCA (each ρᵢ ≤ 1, ridge or not,
        rank ≤ batch−1 once centred), 0 for InfoNCE; NaN for Soft-HGR (no data-free bound)."""
        return float(min(self.dims(batch, d), batch - 1)) if self.kind == "cca" else 0.0 if self.kind == "infonce" else float("nan")

    def regime(self, batch: int, d: int) -> tuple[str, bool]:
        """(label, well_posed) of the objective on a batch of `batch` rows in d dimensions."""
        if self.kind == "hgr":
            return "Soft-HGR: no inverse, any batch", True
        if self.kind == "infonce":
            return "InfoNCE: no covariance", True
        return cca_regime(self.dims(batch, d), batch, self.ridge, self.relative)


def objectives(cca_ridges: tuple[float, ...] = (1e-4, 1e-6), well_posed: bool = True,
               infonce_temperature: float | None = None) -> dict[str, StudyObjective]:
    """Named objectives of the study: Soft-HGR; the full-d CCA with an absolute ridge at each of
    `cca_ridges` (the ill-posed regime when batch ≤ d: 1e-4 saturates, 1e-6 explodes); the well-posed CCA
    (k = batch/4, relative ridge 1e-3, the baselines table's); InfoNCE if a temperature is given."""
    out: dict[str, StudyObjective] = {"Soft-HGR": StudyObjective("hgr")}
    for r in cca_ridges:
        out[f"CCA full-d, ridge {r:g}"] = StudyObjective("cca", ridge=r, relative=False)
    if well_posed:
        out["CCA k=batch/4, ridge 1e-3·tr/k"] = StudyObjective("cca", ridge=1e-3, relative=True, k_per_batch=4)
    if infonce_temperature is not None:
        out["InfoNCE"] = StudyObjective("infonce", temperature=infonce_temperature)
    return out


def _evaluate(obj: StudyObjective, f: torch.Tensor, g: torch.Tensor, batch: int) -> tuple[float, float]:
    """Value and gradient norm (w.r.t. the batch's f and g) of one objective; NaN for a failure."""
    f = f.detach().clone().requires_grad_(True)
    g = g.detach().clone().requires_grad_(True)
    try:
        v = obj(f, g, batch)
        v.backward()
        grad = torch.cat([f.grad.flatten(), g.grad.flatten()]).norm().item()
        return v.item(), grad
    except RuntimeError:  # torch.linalg.LinAlgError: Cholesky of a covariance not positive definite in float
        return float("nan"), float("nan")


def _full_value(obj: StudyObjective, f: torch.Tensor, g: torch.Tensor, batch: int) -> float:
    """The objective on the whole pool, on the dimensions it uses at this batch size."""
    try:
        with torch.no_grad():
            return float(obj(f, g, batch))
    except RuntimeError:
        return float("nan")


def minibatch_study(data: Callable[[int], tuple[torch.Tensor, torch.Tensor, dict | None]], dims: list[int],
                    batch_sizes: list[int], n_batches: int = 100, objs: dict[str, StudyObjective] | None = None,
                    seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Draw `n_batches` random mini-batches (without replacement within a batch) of each size from a pool of
    (f, g) pairs at each dimension, and evaluate every objective on each.

    `data(d)` returns the pool (f, g) at dimension d and optionally population values ("rho": the canonical
    correlations). Batch sizes larger than the pool are skipped. Returns (summary, per-batch): per-batch rows
    objective, dim, batch, k (dimensions used), draw, value, grad_norm, finite (value and gradient both
    finite); summary rows per (objective, dim, batch): regime and well_posed, frac_nonfinite, value
    mean/std/max/relative spread, the largest value the objective can take (`bound`, StudyObjective.bound)
    and the fraction of finite batches over it (`frac_over_bound`: round-off, not data), `frac_failed`
    (non-finite or over the bound), gradient norm mean/std/median/max/relative spread (over finite batches), the
    objective on the whole pool at the same k (`full_value`), bias = value_mean − full_value and
    rel_bias = bias/|full_value|, the population value when known (`true_value`), and batch/dim.
    """
    objs = objs or objectives()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # d×d Cholesky/svd are tiny: threads only add overhead (and contend on a shared CPU)
    try:
        per = _study_rows(data, dims, batch_sizes, n_batches, objs, seed)
    finally:
        torch.set_num_threads(threads)
    return minibatch_summary(per), per


def _study_rows(data, dims, batch_sizes, n_batches, objs, seed) -> pd.DataFrame:
    rows = []
    for d in dims:
        f, g, true = data(d)
        n = f.shape[0]
        for b in batch_sizes:
            if b > n:
                continue
            cell = {name: {"k": o.dims(b, d), "bound": o.bound(b, d), "full_value": _full_value(o, f, g, b), "true_value": _true_for(o, true, o.dims(b, d)),
                           "regime": o.regime(b, d)[0], "well_posed": o.regime(b, d)[1]} for name, o in objs.items()}
            gen = torch.Generator().manual_seed(seed * 1_000_003 + d * 1009 + b)
            for k in range(n_batches):
                idx = torch.randperm(n, generator=gen)[:b]
                for name, o in objs.items():
                    v, gn = _evaluate(o, f[idx], g[idx], b)
                    rows.append({"objective": name, "dim": d, "batch": b, "draw": k, "value": v, "grad_norm": gn,
                                 "finite": math.isfinite(v) and math.isfinite(gn)} | cell[name])
    return pd.DataFrame(rows)


def _true_for(obj: StudyObjective, true: dict | None, k: int) -> float:
    """Population value of the objective on planted pairs: Σ of the first k ρᵢ (CCA), Σρᵢ − d/2 (Soft-HGR)."""
    if not true or "rho" not in true:
        return float("nan")
    rho = np.asarray(true["rho"])
    return float(rho[:k].sum()) if obj.kind == "cca" else float(rho.sum() - len(rho) / 2) if obj.kind == "hgr" else float("nan")


def minibatch_summary(per: pd.DataFrame) -> pd.DataFrame:
    """Per (objective, dim, batch) summary of a per-batch frame (see minibatch_study)."""
    out = []
    for (name, d, b), s in per.groupby(["objective", "dim", "batch"], sort=False):
        ok = s[s["finite"]]
        vm, vs = ok["value"].mean(), ok["value"].std(ddof=1)
        gm, gs = ok["grad_norm"].mean(), ok["grad_norm"].std(ddof=1)
        full, bound = s["full_value"].iloc[0], s["bound"].iloc[0]
        over = float((ok["value"] > bound + 0.01 * max(abs(bound), 1.0)).mean()) if len(ok) else 0.0
        out.append({"objective": name, "dim": d, "batch": b, "k": s["k"].iloc[0], "regime": s["regime"].iloc[0],
                    "well_posed": bool(s["well_posed"].iloc[0]), "batch_over_dim": b / d, "draws": len(s),
                    "frac_nonfinite": 1.0 - len(ok) / len(s), "value_mean": vm, "value_std": vs, "value_max": ok["value"].max(),
                    "bound": bound, "frac_over_bound": over, "frac_failed": 1.0 - len(ok) / len(s) * (1.0 - over),
                    "value_rel_spread": vs / abs(vm) if vm else float("nan"),
                    "grad_mean": gm, "grad_std": gs, "grad_median": ok["grad_norm"].median(), "grad_max": ok["grad_norm"].max(),
                    "grad_rel_spread": gs / gm if gm else float("nan"),
                    "full_value": full, "bias": vm - full, "rel_bias": (vm - full) / abs(full) if full else float("nan"),
                    "true_value": s["true_value"].iloc[0]})
    return pd.DataFrame(out)


def planted_source(pool: int = 2048, rho: tuple[float, float] = (0.9, 0.3), seed: int = 0):
    """A `data` callable for minibatch_study: planted Gaussian pairs, a fresh pool of `pool` pairs per dimension."""
    return lambda d: planted_pairs(pool, d, rho, seed=seed + d)


def feature_source(f: torch.Tensor, g: torch.Tensor, seed: int = 0):
    """A `data` callable for minibatch_study: a run's learned features, randomly projected to each d ≤ its dim.

    f and g get independent projections (a projection is a linear re-parametrisation of each network's
    last layer). Population values are unknown; the bias is relative to the whole pool's value.
    """
    return lambda d: (project(f, d, seed), project(g, d, seed + 1), None)


def verdict(summary: pd.DataFrame, factor: float = 100.0, biased: float = 0.5) -> pd.DataFrame:
    """A plain reading of the summary, per (objective, dim, batch):

    * `nonfinite`: some batch gave a NaN/inf value or gradient, or Cholesky/svd failed;
    * `impossible`: some batch's value is over the objective's bound (CCA: min(k, batch−1)), i.e. set by
      floating-point round-off rather than by the data;
    * `exploding`: the median gradient norm, scaled by √batch (the gradient of a batch-mean objective w.r.t.
      the batch shrinks like 1/√batch), is over `factor` × that of the same objective and dim at the largest
      batch size, or some batch's gradient is over `factor` × the median (heavy tail);
    * `vanishing`: that scaled median is under 1/`factor` × its value at the largest batch size;
    * `biased`: the mean value is off the whole-pool value by more than `biased` × |whole-pool value|.
    """
    s = summary.copy()
    s["grad_scaled"] = s["grad_median"] * np.sqrt(s["batch"])
    ref = s.loc[s.groupby(["objective", "dim"])["batch"].transform("max") == s["batch"]].set_index(["objective", "dim"])["grad_scaled"]
    r = s["grad_scaled"] / np.array([ref.get((o, d), np.nan) for o, d in zip(s["objective"], s["dim"])])
    s["nonfinite"] = s["frac_nonfinite"] > 0
    s["impossible"] = s["frac_over_bound"] > 0
    s["exploding"] = (r > factor) | (s["grad_max"] / s["grad_median"] > factor)
    s["vanishing"] = r < 1.0 / factor
    s["biased"] = s["rel_bias"].abs() > biased
    return s[["objective", "dim", "batch", "k", "regime", "well_posed", "nonfinite", "impossible", "exploding", "vanishing", "biased", "frac_nonfinite", "rel_bias",
              "grad_median", "grad_rel_spread"]]


# ---------------------------------------------------------------------------------------------------------
# Figures


def _short(x: float) -> str:
    """Two significant digits, compact: 0.0025, 0.53, 4.8, 81, 240 (not 2.4e+02), 2e3 (from 1000: one digit and exponent)."""
    if abs(x) >= 1000:
        return f"{x:.0e}".replace("e+0", "e").replace("e+", "e")
    if abs(x) >= 100:
        return f"{float(f'{x:.2g}'):.0f}"
    return f"{x:.2g}"


def _wrap_objective(name: str) -> str:
    return name.replace(", ", ",\n", 1) if len(name) > 16 else name


def plot_study(summary: pd.DataFrame, title: str = ""):
    """Heatmaps, one panel per quantity (fraction of batches non-finite or over the objective's bound, relative
    bias, median gradient norm, gradient-norm relative spread), each with its colour bar: rows batch size,
    columns objective × feature dimension; boxed: the cells outside the objective's well-posed regime
    (StudyObjective.regime)."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm, SymLogNorm

    from hgrlib.plots import annotate

    names = list(dict.fromkeys(summary["objective"]))
    dims = sorted(summary["dim"].unique())
    batches = sorted(summary["batch"].unique())
    metrics = [("frac_failed", "fraction of batches non-finite or over the bound", None),
               ("rel_bias", "value bias / |whole-pool value|", "sym"),
               ("grad_median", "median gradient norm", "loggrad"), ("grad_rel_spread", "gradient norm: std / mean", "log")]
    nc = len(names) * len(dims)
    fig, axes = plt.subplots(len(metrics), 1, figsize=(min(2.4 + 0.72 * nc, 11.0), len(metrics) * (1.25 + 0.3 * len(batches)) + 0.5),
                             squeeze=False, layout="constrained")
    col = {(n, d): i * len(dims) + k for i, n in enumerate(names) for k, d in enumerate(dims)}
    for (m, label, scale), ax in zip(metrics, axes[:, 0]):
        grid = np.full((len(batches), nc), np.nan)
        for _, r in summary.iterrows():
            grid[batches.index(r["batch"]), col[r["objective"], r["dim"]]] = r[m]
        if scale == "sym":
            norm, cmap, lim = SymLogNorm(linthresh=0.1, vmin=-1e4, vmax=1e4), "RdBu_r", (-1e4, 1e4)
        elif scale == "loggrad":
            norm, cmap, lim = LogNorm(vmin=1e-3, vmax=1e6), "magma", (1e-3, 1e6)
        elif scale == "log":
            norm, cmap, lim = LogNorm(vmin=1e-2, vmax=1e2), "viridis", (1e-2, 1e2)
        else:
            norm, cmap, lim = plt.Normalize(0, 1), "Reds", (0, 1)
        im = ax.imshow(np.clip(grid, *lim), cmap=cmap, norm=norm, aspect="auto", origin="lower")  # colours clipped, numbers not
        ax.set_facecolor("0.93")
        annotate(ax, im, [[_short(v) if np.isfinite(v) else None for v in row] for row in grid])
        for _, r in summary[~summary["well_posed"].astype(bool)].iterrows():  # outside the well-posed regime
            xy = (col[r["objective"], r["dim"]] - 0.5, batches.index(r["batch"]) - 0.5)
            ax.add_patch(plt.Rectangle(xy, 1, 1, fill=False, ec="k", lw=2.4))
            ax.add_patch(plt.Rectangle((xy[0] + 0.06, xy[1] + 0.06), 0.88, 0.88, fill=False, ec="w", lw=0.9))
        for k in range(1, len(names)):
            ax.axvline(k * len(dims) - 0.5, color="w", lw=4)
        ax.set_xticks(range(nc), [f"d={d}" for _ in names for d in dims], fontsize=9)
        ax.set_yticks(range(len(batches)), batches, fontsize=9)
        ax.set_ylabel("batch size")
        top = ax.secondary_xaxis("top")
        top.set_xticks([(i + 0.5) * len(dims) - 0.5 for i in range(len(names))], [_wrap_objective(n) for n in names], fontsize=9)
        top.tick_params(length=0)
        ax.set_title(label, fontsize=10, loc="left", fontweight="bold")
        cb = fig.colorbar(im, ax=ax, fraction=0.04, pad=0.01)
        if scale == "sym":
            cb.set_ticks([-1e4, -1e2, -1, 0, 1, 1e2, 1e4])
        cb.ax.tick_params(labelsize=9)
    if title:
        fig.suptitle(title + "\n(boxed: not well-posed, e.g. CCA on k > batch/4 dimensions)", fontsize=11)
    return fig


def plot_value_spread(summary: pd.DataFrame, title: str = ""):
    """Per dimension: mean ± std of the value relative to the whole-pool value, and the median gradient norm,
    against batch size; one line per objective (one legend, below)."""
    import matplotlib.pyplot as plt

    dims = sorted(summary["dim"].unique())
    fig, axes = plt.subplots(2, len(dims), figsize=(min(3.6 * len(dims) + 0.6, 11.0), 6.8), squeeze=False, layout="constrained")
    for j, d in enumerate(dims):
        s = summary[summary["dim"] == d]
        for name, t in s.groupby("objective", sort=False):
            t = t.sort_values("batch")
            full = t["full_value"].replace(0, np.nan)
            rel, err = t["value_mean"] / full, t["value_std"] / full.abs()
            axes[0, j].errorbar(t["batch"], rel, yerr=err, marker="o", ms=4, capsize=2, label=name)
            axes[1, j].plot(t["batch"], t["grad_median"], marker="o", ms=4, label=name)
            bad = t[t["frac_nonfinite"] > 0]
            axes[1, j].scatter(bad["batch"], bad["grad_median"].fillna(1e-3), marker="x", s=50, color="red", zorder=3,
                               label="non-finite seen")
        for ax in axes[:, j]:
            ax.set_xscale("log", base=2)
            ax.axvline(d, color="gray", ls=":", lw=1)
        axes[0, j].set_yscale("symlog", linthresh=1)
        axes[1, j].set_yscale("log")
        axes[0, j].axhline(1.0, color="k", lw=0.6)
        axes[0, j].set_title(f"d = {d}: value / whole-pool value", fontsize=10)
        axes[1, j].set_title(f"d = {d}: median gradient norm", fontsize=10)
        axes[1, j].set_xlabel("batch size (dotted: batch = d)")
    handles = dict(zip(*reversed(axes[0, 0].get_legend_handles_labels())))
    for ax in axes[1]:
        handles |= {lab: h for h, lab in zip(*ax.get_legend_handles_labels()) if lab == "non-finite seen"}
    fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncol=min(len(handles), 3), fontsize=9, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def plot_protocols(table: pd.DataFrame, metrics: tuple[str, ...] = ("seg_acc", "clip_acc")):
    """Left: `metrics` mean ± std per protocol; right: the paired differences (mean ± std over pairs, points)
    of a protocol_table; one legend, to the right."""
    import matplotlib.pyplot as plt

    base = table[table["component"].fillna("") == ""]
    diff = table[table["component"].fillna("") != ""]
    fig, axes = plt.subplots(1, 2, figsize=(11.0, 3.9), gridspec_kw={"width_ratios": [1, 1.2]}, layout="constrained")
    w = 0.8 / len(metrics)
    for ax, t, labels in ((axes[0], base, list(base["protocol"])),
                          (axes[1], diff, [f"{p}\n({c})" for p, c in zip(diff["protocol"], diff["component"])])):
        x = np.arange(len(t))
        for k, m in enumerate(metrics):
            ax.bar(x + (k - (len(metrics) - 1) / 2) * w, 100 * t[f"{m}_mean"], w, yerr=100 * t[f"{m}_std"], capsize=3, label=m,
                   color=f"C{k}")
        ax.set_xticks(x, labels, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right upper", fontsize=9, frameon=False)
    axes[0].set_ylabel("test accuracy (%)")
    axes[0].set_title("per protocol: mean ± std over runs", fontsize=10)
    axes[1].axhline(0, color="k", lw=0.6)
    axes[1].set_ylabel("difference (points)")
    axes[1].set_title("paired differences: mean ± std over (fold, seed) pairs", fontsize=10)
    return fig
