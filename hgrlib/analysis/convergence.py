"""Has training levelled off? Validation scores over the last epochs of every run, per condition (notebook 02)."""

from __future__ import annotations

import numpy as np
import pandas as pd

TOL = 1.0  # points of validation UAR: a mean gain over the last epochs below this counts as levelled off


def convergence_table(histories: dict[str, list[list[dict]]], last: int = 2, key: str = "val_uar", tol: float = TOL) -> pd.DataFrame:
    """Per condition: runs, epochs, the mean validation score (%) at the last epoch, its mean gain per epoch over the
    last `last` epochs (points, ± std over runs), and whether that gain is below `tol` points (levelled off)."""
    rows = []
    for name, runs in histories.items():
        m = 100 * np.array([[h[key] for h in run] for run in runs])  # (runs, epochs)
        k = min(last, m.shape[1] - 1)
        gain = (m[:, -1] - m[:, -1 - k]) / k if k > 0 else np.full(len(m), np.nan)
        rows.append(
            {
                "condition": name,
                "runs": len(m),
                "epochs": m.shape[1],
                "at the last epoch": round(float(m[:, -1].mean()), 1),
                f"gain per epoch, last {k}": f"{gain.mean():+.1f} ± {gain.std(ddof=1) if len(gain) > 1 else 0:.1f}",
                "levelled off": "yes" if gain.mean() < tol else "no",
            }
        )
    return pd.DataFrame(rows)
