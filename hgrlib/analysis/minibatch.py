"""The paper's argument made measurable (notebook 07): CCA-style objectives against Soft-HGR on mini-batches.

`minibatch_study`: for batch sizes × feature dimensions, many random mini-batches of (f, g) pairs; per batch
the objective's value, whether value and gradient are finite, and the gradient norm; summarised per
(objective, batch, dim) with the cell's regime (`minibatch_summary`, `verdict`). Data are planted Gaussian
pairs with known canonical correlations (`planted_pairs`) or a finished run's learned clip features
(`run_feature_pool`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
import torch

from hgrlib.analysis.baselines import cca_regime
from hgrlib.core.losses import cca_corr, infonce, soft_hgr


def planted_pairs(
    n: int, d: int, rho: tuple[float, float] = (0.9, 0.3), seed: int = 0, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """n Gaussian pairs (f, g) in d dimensions with known canonical correlations ρ₁..ρ_d, linear from rho[0]
    to rho[1]: f ~ N(0, I), g = ρ∘f + √(1−ρ²)∘ε. Returns f, g and the population values of the objectives
    (unit covariances: CCA total correlation Σρᵢ; Soft-HGR Σρᵢ − d/2) and the ρᵢ ("rho")."""
    gen = torch.Generator().manual_seed(seed)
    r = torch.linspace(rho[0], rho[1], d, dtype=torch.float64) if d > 1 else torch.tensor([rho[0]], dtype=torch.float64)
    f = torch.randn(n, d, generator=gen, dtype=torch.float64)
    g = r * f + (1 - r**2).sqrt() * torch.randn(n, d, generator=gen, dtype=torch.float64)
    true = {"cca": float(r.sum()), "hgr": float(r.sum() - d / 2), "rho": tuple(float(x) for x in r)}
    return f.to(dtype), g.to(dtype), true


def run_feature_pool(
    features: dict[str, np.ndarray], parts: tuple[str, ...] = ("train", "val", "test")
) -> tuple[torch.Tensor, torch.Tensor]:
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


def objectives(
    cca_ridges: tuple[float, ...] = (1e-4, 1e-6), well_posed: bool = True, infonce_temperature: float | None = None
) -> dict[str, StudyObjective]:
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


def minibatch_study(
    data: Callable[[int], tuple[torch.Tensor, torch.Tensor, dict | None]],
    dims: list[int],
    batch_sizes: list[int],
    n_batches: int = 100,
    objs: dict[str, StudyObjective] | None = None,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
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
            cell = {
                name: {
                    "k": o.dims(b, d),
                    "bound": o.bound(b, d),
                    "full_value": _full_value(o, f, g, b),
                    "true_value": _true_for(o, true, o.dims(b, d)),
                    "regime": o.regime(b, d)[0],
                    "well_posed": o.regime(b, d)[1],
                }
                for name, o in objs.items()
            }
            gen = torch.Generator().manual_seed(seed * 1_000_003 + d * 1009 + b)
            for k in range(n_batches):
                idx = torch.randperm(n, generator=gen)[:b]
                for name, o in objs.items():
                    v, gn = _evaluate(o, f[idx], g[idx], b)
                    rows.append(
                        {
                            "objective": name,
                            "dim": d,
                            "batch": b,
                            "draw": k,
                            "value": v,
                            "grad_norm": gn,
                            "finite": math.isfinite(v) and math.isfinite(gn),
                        }
                        | cell[name]
                    )
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
        out.append(
            {
                "objective": name,
                "dim": d,
                "batch": b,
                "k": s["k"].iloc[0],
                "regime": s["regime"].iloc[0],
                "well_posed": bool(s["well_posed"].iloc[0]),
                "batch_over_dim": b / d,
                "draws": len(s),
                "frac_nonfinite": 1.0 - len(ok) / len(s),
                "value_mean": vm,
                "value_std": vs,
                "value_max": ok["value"].max(),
                "bound": bound,
                "frac_over_bound": over,
                "frac_failed": 1.0 - len(ok) / len(s) * (1.0 - over),
                "value_rel_spread": vs / abs(vm) if vm else float("nan"),
                "grad_mean": gm,
                "grad_std": gs,
                "grad_median": ok["grad_norm"].median(),
                "grad_max": ok["grad_norm"].max(),
                "grad_rel_spread": gs / gm if gm else float("nan"),
                "full_value": full,
                "bias": vm - full,
                "rel_bias": (vm - full) / abs(full) if full else float("nan"),
                "true_value": s["true_value"].iloc[0],
            }
        )
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


FLAGS = ("nonfinite", "impossible", "exploding", "vanishing", "biased")  # verdict's flags


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
    return s[
        [
            "objective",
            "dim",
            "batch",
            "k",
            "regime",
            "well_posed",
            *FLAGS,
            "frac_nonfinite",
            "rel_bias",
            "grad_median",
            "grad_rel_spread",
        ]
    ]


def verdict_summary(v: pd.DataFrame) -> pd.DataFrame:
    """`verdict` in a few rows: per objective (in the study's order), well-posed cells first, the number of
    (dim, batch) cells and how many of them carry each flag."""
    order = {o: i for i, o in enumerate(dict.fromkeys(v["objective"]))}
    g = v.groupby(["objective", "well_posed"], sort=False)
    out = g[list(FLAGS)].sum().assign(cells=g.size()).reset_index()
    key = lambda c: c.map(order) if c.name == "objective" else ~c.astype(bool)  # noqa: E731
    return out.sort_values(["objective", "well_posed"], key=key, kind="stable")[["objective", "well_posed", "cells", *FLAGS]].reset_index(
        drop=True
    )
