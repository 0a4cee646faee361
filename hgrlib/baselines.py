"""Baselines and protocols (notebook 07): CCA-style and InfoNCE terms against Soft-HGR, the segment protocol's
inflation, and the paper's argument made measurable: CCA-style objectives on mini-batches.

Three parts:

* `baseline_conditions` / `matched_lams`: the loss configurations compared in the baselines table, with the
  rule that sets the λ of the CCA and InfoNCE terms (their scales differ from Soft-HGR's).
* `safe_run_all` / `nonfinite_report`: training that does not let one diverged run crash the notebook, and a
  per-run account of non-finite losses in the run histories (train.py neither stops nor flags them).
* `minibatch_study`: for batch sizes × feature dimensions, many random mini-batches of (f, g) pairs; per batch
  the objective's value, whether value and gradient are finite, and the gradient norm; summarised per
  (objective, batch, dim). Data are either planted Gaussian pairs with known canonical correlations
  (`planted_pairs`) or a finished run's learned clip features (`run_feature_pool`, random projections to
  dimensions not above the run's own).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import pandas as pd
import torch

from hgrlib.losses import cca_corr, infonce, soft_hgr

# ---------------------------------------------------------------------------------------------------------
# Loss conditions of the baselines table


def matched_lams(lam: float, dim: int, batch_size: int) -> dict[str, float]:
    """λ of each pair objective, matched to Soft-HGR's λ by the range each objective can take on one pair.

    Per pair of d-dimensional features, Soft-HGR's maximum is ½Σσᵢ² ≤ d/2, the CCA total correlation
    Σρᵢ lies in [0, d], and symmetric InfoNCE lies in [−log B, 0] on a batch of B. Scaling λ by the ratio of
    ranges gives each term the same reach on the total loss: λ_cca = λ/2, λ_infonce = λ·(d/2)/log B.
    A rule, not a tuned value (tuning each baseline on validation data is the fairer and costlier option).
    """
    return {"hgr": float(lam), "cca": float(lam) / 2.0, "infonce": float(lam) * (dim / 2.0) / math.log(max(batch_size, 2))}


def baseline_conditions(lam: float, dim: int, batch_size: int, lam_cca: float | None = None,
                        lam_infonce: float | None = None) -> dict[str, dict]:
    """Config changes (for Config.with_) of the baselines table, fusion network throughout.

    The CCA and InfoNCE terms use the label-free audio–visual pair only (w_ay = w_vy = 0): h(y) is a linear
    embedding of a one-hot label, so its covariance has rank ≤ C−1 < d on every batch and CCA's Σhh^{-1/2}
    is singular by construction, not by batch size; InfoNCE on (feature, label embedding) pairs counts the
    other clips of the same class in a batch as negatives. For a like-for-like comparison the table also has
    Soft-HGR on the same single pair, beside the paper's three-pair Soft-HGR (the config of notebook 02).
    """
    lams = matched_lams(lam, dim, batch_size)
    lc = lams["cca"] if lam_cca is None else lam_cca
    ln = lams["infonce"] if lam_infonce is None else lam_infonce
    av = {"w_av": 1.0, "w_ay": 0.0, "w_vy": 0.0}
    return {
        "fusion (CE)": {"model": {"modalities": "av"}, "loss": {"lam": 0.0}},
        "CE + Soft-HGR (3 pairs)": {"model": {"modalities": "av"}, "loss": {"lam": lam}},
        "CE + Soft-HGR (a–v)": {"model": {"modalities": "av"}, "loss": {"lam": lam} | av},
        "CE + CCA (a–v)": {"model": {"modalities": "av"}, "loss": {"lam": lc, "corr": "cca"} | av},
        "CE + InfoNCE (a–v)": {"model": {"modalities": "av"}, "loss": {"lam": ln, "corr": "infonce"} | av},
    }


# ---------------------------------------------------------------------------------------------------------
# Training that survives a diverged run, and the account of non-finite losses


def safe_run_all(cfgs: list, fs, runs_dir: str = "runs", progress: bool = True) -> list[dict]:
    """Like experiment.run_all, but a run that raises (e.g. torch.linalg.eigh failing on NaN features after a
    CCA step produced a non-finite gradient) becomes a placeholder result with NaN metrics and its error,
    instead of stopping the notebook. Finished runs are read back from `runs_dir` as usual.
    """
    from hgrlib.experiment import run_all

    out = []
    # LinAlgError is a RuntimeError; listed to say what is expected
    for c, r in zip(cfgs, run_all(cfgs, fs, runs_dir, progress, catch=(RuntimeError, ValueError, torch.linalg.LinAlgError))):
        if isinstance(r, BaseException):
            nan = float("nan")
            test = {k: nan for k in ("acc", "uar", "seg_acc", "seg_uar", "clip_acc", "clip_uar")}
            r = {"config": c.to_dict(), "test": test, "history": [], "seconds": nan, "run_dir": None,
                 "error": f"{type(r).__name__}: {r}"}
        out.append(r)
    return out


def _nonfinite(x) -> bool:
    return isinstance(x, (int, float)) and not math.isfinite(x)


def nonfinite_report(results: list[dict], names: list[str]) -> pd.DataFrame:
    """One row per run: whether any logged loss term was NaN/inf, from which epoch, and whether the run raised.

    train.py logs per-epoch means of every loss term; a single non-finite batch makes that epoch's mean
    non-finite, so a finite history means every batch's logged loss was finite.
    """
    rows = []
    for r, name in zip(results, names):
        bad = [h["epoch"] for h in r.get("history", []) if any(_nonfinite(v) for k, v in h.items() if k != "epoch")]
        c = r["config"]
        rows.append({"condition": name, "seed": c["train"]["seed"], "fold": c["train"]["fold"],
                     "epochs_logged": len(r.get("history", [])), "nonfinite_loss": bool(bad),
                     "first_nonfinite_epoch": bad[0] if bad else None, "error": r.get("error", "")})
    return pd.DataFrame(rows)


def divergence_summary(report: pd.DataFrame) -> pd.DataFrame:
    """Per condition: runs, runs with non-finite losses, runs that raised."""
    g = report.groupby("condition", sort=False)
    return pd.DataFrame({"runs": g.size(), "runs_nonfinite_loss": g["nonfinite_loss"].sum().astype(int),
                         "runs_failed": g["error"].apply(lambda e: int((e != "").sum()))}).reset_index()


def protocol_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Segment-level (and clip-level) accuracy per condition × protocol, and the segment protocol's inflation.

    `runs` is a results_frame with columns condition and protocol. Inflation = mean under `segment` − mean
    under `subject`, in percentage points, on the same metric.
    """
    from hgrlib.experiment import mean_std

    t = mean_std(runs, ["condition", "protocol"], metrics=("seg_acc", "seg_uar", "clip_acc"))
    out = []
    for cond, sub in t.groupby("condition", sort=False):
        by = sub.set_index("protocol")
        for p in sub["protocol"]:
            row = by.loc[p].to_dict() | {"condition": cond, "protocol": p}
            for m in ("seg_acc", "clip_acc"):
                row[f"{m}_inflation_pp"] = (100 * (by.loc["segment", f"{m}_mean"] - by.loc["subject", f"{m}_mean"])
                                            if {"segment", "subject"} <= set(by.index) and p == "segment" else float("nan"))
            out.append(row)
    return pd.DataFrame(out)[["condition", "protocol", "runs", "seg_acc", "seg_uar", "clip_acc", "seg_acc_inflation_pp",
                              "clip_acc_inflation_pp", "seg_acc_mean", "seg_acc_std", "clip_acc_mean", "clip_acc_std"]]


# ---------------------------------------------------------------------------------------------------------
# The mini-batch study: CCA-style vs Soft-HGR


def planted_pairs(n: int, d: int, rho: tuple[float, float] = (0.9, 0.3), seed: int = 0,
                  dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """n Gaussian pairs (f, g) in d dimensions with known canonical correlations ρ₁..ρ_d, linear from rho[0]
    to rho[1]: f ~ N(0, I), g = ρ∘f + √(1−ρ²)∘ε. Returns f, g and the population values of the objectives
    (unit covariances: CCA total correlation Σρᵢ; Soft-HGR Σρᵢ − d/2)."""
    gen = torch.Generator().manual_seed(seed)
    r = torch.linspace(rho[0], rho[1], d, dtype=torch.float64) if d > 1 else torch.tensor([rho[0]], dtype=torch.float64)
    f = torch.randn(n, d, generator=gen, dtype=torch.float64)
    g = r * f + (1 - r**2).sqrt() * torch.randn(n, d, generator=gen, dtype=torch.float64)
    true = {"cca": float(r.sum()), "hgr": float(r.sum() - d / 2)}
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


def objectives(cca_eps: tuple[float, ...] = (1e-4, 1e-6), infonce_temperature: float | None = None) -> dict[str, Callable]:
    """Named pair objectives for the study: Soft-HGR, cca_corr at each eps (1e-4 is what training uses), InfoNCE."""
    out: dict[str, Callable] = {"Soft-HGR": soft_hgr}
    for e in cca_eps:
        out[f"CCA eps={e:g}"] = lambda f, g, e=e: cca_corr(f, g, eps=e)
    if infonce_temperature is not None:
        out["InfoNCE"] = lambda f, g: infonce(f, g, infonce_temperature)
    return out


def _evaluate(obj: Callable, f: torch.Tensor, g: torch.Tensor) -> tuple[float, float]:
    """Value and gradient norm (w.r.t. the batch's f and g) of one objective; NaN for a failure."""
    f = f.detach().clone().requires_grad_(True)
    g = g.detach().clone().requires_grad_(True)
    try:
        v = obj(f, g)
        v.backward()
        grad = torch.cat([f.grad.flatten(), g.grad.flatten()]).norm().item()
        return v.item(), grad
    except RuntimeError:  # torch.linalg.LinAlgError: eigh/svd failed to converge
        return float("nan"), float("nan")


def _full_value(obj: Callable, f: torch.Tensor, g: torch.Tensor) -> float:
    try:
        with torch.no_grad():
            return float(obj(f, g))
    except RuntimeError:
        return float("nan")


def minibatch_study(data: Callable[[int], tuple[torch.Tensor, torch.Tensor, dict | None]], dims: list[int],
                    batch_sizes: list[int], n_batches: int = 100, objs: dict[str, Callable] | None = None,
                    seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Draw `n_batches` random mini-batches (without replacement within a batch) of each size from a pool of
    (f, g) pairs at each dimension, and evaluate every objective on each.

    `data(d)` returns the pool (f, g) at dimension d and optionally population values per objective kind
    ("cca", "hgr"). Batch sizes larger than the pool are skipped. Returns (summary, per-batch):
    per-batch rows objective, dim, batch, draw, value, grad_norm, finite (value and gradient both finite);
    summary rows per (objective, dim, batch): frac_nonfinite, value mean/std/relative spread, gradient norm
    mean/std/median/max/relative spread (over finite batches), the objective on the whole pool
    (`full_value`), bias = value_mean − full_value and rel_bias = bias/|full_value|, the population value when
    known (`true_value`), and batch/dim.
    """
    objs = objs or objectives()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # d×d eigh/svd are tiny: threads only add overhead (and contend on a shared CPU)
    try:
        per = _study_rows(data, dims, batch_sizes, n_batches, objs, seed)
    finally:
        torch.set_num_threads(threads)
    return summarise(per), per


def _study_rows(data, dims, batch_sizes, n_batches, objs, seed) -> pd.DataFrame:
    rows = []
    for d in dims:
        f, g, true = data(d)
        n = f.shape[0]
        full = {name: _full_value(o, f, g) for name, o in objs.items()}
        for b in batch_sizes:
            if b > n:
                continue
            gen = torch.Generator().manual_seed(seed * 1_000_003 + d * 1009 + b)
            for k in range(n_batches):
                idx = torch.randperm(n, generator=gen)[:b]
                for name, o in objs.items():
                    v, gn = _evaluate(o, f[idx], g[idx])
                    rows.append({"objective": name, "dim": d, "batch": b, "draw": k, "value": v, "grad_norm": gn,
                                 "finite": math.isfinite(v) and math.isfinite(gn),
                                 "full_value": full[name], "true_value": _true_for(name, true)})
    return pd.DataFrame(rows)


def _true_for(name: str, true: dict | None) -> float:
    if not true:
        return float("nan")
    kind = "cca" if name.startswith("CCA") else "hgr" if name == "Soft-HGR" else None
    return true.get(kind, float("nan")) if kind else float("nan")


def summarise(per: pd.DataFrame) -> pd.DataFrame:
    """Per (objective, dim, batch) summary of a per-batch frame (see minibatch_study)."""
    out = []
    for (name, d, b), s in per.groupby(["objective", "dim", "batch"], sort=False):
        ok = s[s["finite"]]
        vm, vs = ok["value"].mean(), ok["value"].std(ddof=1)
        gm, gs = ok["grad_norm"].mean(), ok["grad_norm"].std(ddof=1)
        full = s["full_value"].iloc[0]
        out.append({"objective": name, "dim": d, "batch": b, "batch_over_dim": b / d, "draws": len(s),
                    "frac_nonfinite": 1.0 - len(ok) / len(s), "value_mean": vm, "value_std": vs,
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

    * `nonfinite`: some batch gave a NaN/inf value or gradient, or eigh/svd failed;
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
    s["exploding"] = (r > factor) | (s["grad_max"] / s["grad_median"] > factor)
    s["vanishing"] = r < 1.0 / factor
    s["biased"] = s["rel_bias"].abs() > biased
    return s[["objective", "dim", "batch", "nonfinite", "exploding", "vanishing", "biased", "frac_nonfinite", "rel_bias",
              "grad_median", "grad_rel_spread"]]


# ---------------------------------------------------------------------------------------------------------
# Figures


def _short(x: float) -> str:
    return f"{x:.0e}".replace("e+0", "e").replace("e-0", "e-") if abs(x) >= 1000 else f"{x:.2g}"


def plot_study(summary: pd.DataFrame, title: str = ""):
    """Heatmaps (rows: objective; columns: fraction non-finite, relative bias, gradient-norm relative spread)
    over batch size × dimension, with the batch = dim boundary marked."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm, SymLogNorm

    names = list(dict.fromkeys(summary["objective"]))
    dims = sorted(summary["dim"].unique())
    batches = sorted(summary["batch"].unique())
    metrics = [("frac_nonfinite", "fraction non-finite", None), ("rel_bias", "value bias / |whole-pool value|", "sym"),
               ("grad_median", "median gradient norm", "loggrad"), ("grad_rel_spread", "gradient norm: std / mean", "log")]
    fig, axes = plt.subplots(len(names), len(metrics), figsize=(4.0 * len(metrics), 0.6 + (1.0 + 0.45 * len(dims)) * len(names)),
                             squeeze=False)
    for i, name in enumerate(names):
        s = summary[summary["objective"] == name]
        for j, (m, label, scale) in enumerate(metrics):
            ax = axes[i, j]
            grid = np.full((len(dims), len(batches)), np.nan)
            for _, r in s.iterrows():
                grid[dims.index(r["dim"]), batches.index(r["batch"])] = r[m]
            if scale == "sym":
                norm, cmap = SymLogNorm(linthresh=0.1, vmin=-1e4, vmax=1e4), "RdBu_r"
                grid = np.clip(grid, -1e4, 1e4)
            elif scale == "loggrad":
                norm, cmap = LogNorm(vmin=1e-3, vmax=1e6), "magma"
                grid = np.clip(grid, 1e-3, 1e6)
            elif scale == "log":
                norm, cmap = LogNorm(vmin=1e-2, vmax=1e2), "viridis"
                grid = np.clip(grid, 1e-2, 1e2)
            else:
                norm, cmap = plt.Normalize(0, 1), "Reds"
            im = ax.imshow(grid, cmap=cmap, norm=norm, aspect="auto", origin="lower")
            for a in range(len(dims)):
                for b in range(len(batches)):
                    if np.isfinite(grid[a, b]):
                        ax.text(b, a, _short(grid[a, b]), ha="center", va="center", fontsize=6.5,
                                color="white" if (m == "grad_rel_spread" and grid[a, b] < 0.3) or (m == "grad_median" and grid[a, b] < 10) else "black")
            for a, d in enumerate(dims):  # cells with batch ≤ dim
                cols = [b for b, n in enumerate(batches) if n <= d]
                if cols:
                    ax.add_patch(plt.Rectangle((-0.5, a - 0.5), max(cols) + 1, 1, fill=False, ec="k", lw=1.2))
            ax.set_xticks(range(len(batches)), batches, fontsize=8)
            ax.set_yticks(range(len(dims)), dims, fontsize=8)
            ax.set_xlabel("batch size"), ax.set_ylabel("feature dim d")
            ax.set_title(f"{name}: {label}", fontsize=9)
            cb = fig.colorbar(im, ax=ax, fraction=0.046)
            if scale == "sym":
                cb.set_ticks([-1e4, -1e2, -1, 0, 1, 1e2, 1e4])
    if title:
        fig.suptitle(title + "  (boxed: batch ≤ d)", fontsize=10)
    fig.tight_layout()
    return fig


def plot_value_spread(summary: pd.DataFrame, title: str = ""):
    """Per dimension: mean ± std of the value relative to the whole-pool value, and the median gradient norm,
    against batch size; one line per objective."""
    import matplotlib.pyplot as plt

    dims = sorted(summary["dim"].unique())
    fig, axes = plt.subplots(2, len(dims), figsize=(3.8 * len(dims), 6.2), squeeze=False)
    for j, d in enumerate(dims):
        s = summary[summary["dim"] == d]
        for name, t in s.groupby("objective", sort=False):
            t = t.sort_values("batch")
            full = t["full_value"].replace(0, np.nan)
            rel, err = t["value_mean"] / full, t["value_std"] / full.abs()
            axes[0, j].errorbar(t["batch"], rel, yerr=err, marker="o", ms=3, capsize=2, label=name)
            axes[1, j].plot(t["batch"], t["grad_median"], marker="o", ms=3, label=name)
            bad = t[t["frac_nonfinite"] > 0]
            axes[1, j].scatter(bad["batch"], bad["grad_median"].fillna(1e-3), marker="x", color="red", zorder=3)
        for ax in axes[:, j]:
            ax.set_xscale("log", base=2)
            ax.axvline(d, color="gray", ls=":", lw=1)
        axes[0, j].set_yscale("symlog", linthresh=1)
        axes[1, j].set_yscale("log")
        axes[0, j].axhline(1.0, color="k", lw=0.6)
        axes[0, j].set_title(f"d = {d}: value / whole-pool value", fontsize=9)
        axes[1, j].set_title(f"d = {d}: median gradient norm (x: non-finite seen)", fontsize=9)
        axes[1, j].set_xlabel("batch size (dotted: batch = d)")
    axes[0, 0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_protocols(table: pd.DataFrame, metric: str = "seg_acc"):
    """Grouped bars: `metric` mean ± std per condition, one bar per protocol (a protocol_table)."""
    import matplotlib.pyplot as plt

    conds = list(dict.fromkeys(table["condition"]))
    protos = list(dict.fromkeys(table["protocol"]))
    fig, ax = plt.subplots(figsize=(1.6 + 2.2 * len(conds), 3.4))
    w = 0.8 / len(protos)
    for k, p in enumerate(protos):
        t = table[table["protocol"] == p].set_index("condition").reindex(conds)
        ax.bar(np.arange(len(conds)) + (k - (len(protos) - 1) / 2) * w, 100 * t[f"{metric}_mean"], w,
               yerr=100 * t[f"{metric}_std"], capsize=3, label=f"protocol: {p}")
    ax.set_xticks(range(len(conds)), conds, fontsize=8)
    ax.set_ylabel(f"test {metric} (%)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
