"""Figures shared by the notebooks."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def examples(fs, n_per_class: int = 1):
    """One log-mel segment and one face key frame per emotion class."""
    c = len(fs.classes)
    fig, axes = plt.subplots(2, c, figsize=(2.2 * c, 4.4))
    for k, name in enumerate(fs.classes):
        i = int(np.flatnonzero(fs.labels == k)[0])
        axes[0, k].imshow(fs.audio[i, 0, 0].astype(np.float32), origin="lower", aspect="auto", cmap="magma")
        axes[0, k].set_title(name, fontsize=9)
        axes[1, k].imshow(fs.faces[i, 0, 0])
        for ax in axes[:, k]:
            ax.set_xticks([]), ax.set_yticks([])
    axes[0, 0].set_ylabel("log-mel (94 bands)")
    axes[1, 0].set_ylabel("face key frame")
    fig.tight_layout()
    return fig


def confusion(cm: np.ndarray, classes: tuple[str, ...], title: str = "", ax=None):
    """Row-normalised confusion matrix (rows: true class)."""
    cm = np.asarray(cm, float)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    if ax is None:
        _, ax = plt.subplots(figsize=(4.6, 4))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, f"{100 * norm[i, j]:.0f}", ha="center", va="center", fontsize=8, color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(classes)), classes, fontsize=8)
    ax.set_xlabel("predicted"), ax.set_ylabel("true"), ax.set_title(title, fontsize=9)
    return ax.figure


def training_curves(histories: dict[str, list[list[dict]]], key: str = "val_uar"):
    """Mean ± std over runs of a per-epoch quantity, one line per condition; and the training loss."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for name, runs in histories.items():
        for ax, k in zip(axes, ("loss", key)):
            m = np.array([[h[k] for h in run] for run in runs])
            x = np.arange(1, m.shape[1] + 1)
            ax.plot(x, m.mean(0), label=name)
            ax.fill_between(x, m.mean(0) - m.std(0), m.mean(0) + m.std(0), alpha=0.2)
    axes[0].set_title("training loss"), axes[1].set_title(f"validation {key.split('_')[-1].upper()}")
    for ax in axes:
        ax.set_xlabel("epoch")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def bar_with_errors(table: pd.DataFrame, label: str, metric: str = "acc", ax=None):
    """Bars of mean ± std of `metric` per row of a mean_std() table."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.4))
    ax.bar(table[label], 100 * table[f"{metric}_mean"], yerr=100 * table[f"{metric}_std"], capsize=4, color="tab:blue", alpha=0.8)
    ax.set_ylabel(f"test {metric} (%)")
    ax.tick_params(axis="x", labelrotation=20)
    return ax.figure


def curves_with_errors(table: pd.DataFrame, x: str, group: str, metric: str = "acc", xlabel: str | None = None, ax=None):
    """One line per `group` value: mean ± std of `metric` (a mean_std() table) against `x`."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.8))
    for name, t in table.groupby(group, sort=False):
        t = t.sort_values(x)
        ax.errorbar(t[x], 100 * t[f"{metric}_mean"], yerr=100 * t[f"{metric}_std"], marker="o", capsize=3, label=name)
    ax.set_xlabel(xlabel or x), ax.set_ylabel(f"test {metric} (%)")
    ax.legend(fontsize=8)
    return ax.figure


def heatmaps(grids: dict[str, pd.DataFrame], fmt: str = "{:.1f}", scale: float = 100.0):
    """Side-by-side annotated heatmaps of equally shaped grids (rows × columns), NaN cells left blank."""
    fig, axes = plt.subplots(1, len(grids), figsize=(4.6 * len(grids), 3.2), squeeze=False)
    for ax, (title, g) in zip(axes[0], grids.items()):
        v = scale * g.to_numpy(dtype=float)
        ax.imshow(np.ma.masked_invalid(v), cmap="viridis", aspect="auto")
        for i in range(v.shape[0]):
            for j in range(v.shape[1]):
                if np.isfinite(v[i, j]):
                    ax.text(j, i, fmt.format(v[i, j]), ha="center", va="center", color="white", fontsize=9)
        ax.set_xticks(range(v.shape[1]), [str(c) for c in g.columns])
        ax.set_yticks(range(v.shape[0]), [str(r) for r in g.index])
        ax.set_xlabel(g.columns.name or ""), ax.set_ylabel(g.index.name or ""), ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig
