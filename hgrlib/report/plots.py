"""Figures shared by the notebooks.

Sized for the page: the README shows figures at about 860 px wide and `hgrlib.report.tables.save_figure` writes them
at 120 dpi, so a figure W inches wide is shrunk by about 860 / (120 W). Text is at least 9 pt (annotations
10 pt) in figures of at most ~11 inches; every heatmap has a labelled colour bar and its annotations are black
or white, whichever contrasts more with the cell (`text_colour`); legends are placed outside the data axes.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import Rectangle
from matplotlib.ticker import NullLocator

FEATURE_NAMES = {"f": "audio f", "g": "visual g", "z": "fused z"}

ANNOT = 10  # pt, heatmap annotations
SMALL = 9  # pt, tick labels, legends, panel titles

# What each figure file shows, set beside the function that draws it (`caption`): the README's figure captions
# and alt text, and results/README.md's description (hgrlib.reproduce.results_index). No `*` in these (the README sets
# them in italics).
CAPTIONS: dict[str, str] = {}


def caption(name: str, text: str):
    """Decorator: `text` is the caption of the figure file `name`, which the decorated function draws."""

    def mark(fn):
        CAPTIONS[name] = text
        return fn

    return mark


# --------------------------------------------------------------------------- helpers


def luminance(rgba) -> float:
    """WCAG relative luminance of an RGB(A) colour (components in [0, 1] or a matplotlib colour spec)."""
    from matplotlib.colors import to_rgb

    c = np.asarray(to_rgb(rgba), float)
    c = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return float(0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2])


def contrast_ratio(a, b) -> float:
    """WCAG contrast ratio of two colours (1: none, 21: black on white)."""
    la, lb = sorted((luminance(a), luminance(b)))
    return (lb + 0.05) / (la + 0.05)


def text_colour(background) -> str:
    """'black' or 'white', whichever contrasts more with `background` (a ratio of at least 4.5 either way)."""
    return "black" if contrast_ratio(background, "black") >= contrast_ratio(background, "white") else "white"


def annotate(ax, im, texts, fontsize: float = ANNOT, **kw):
    """Write texts[i][j] (None: nothing) at cell (i, j) of the image `im`, in black or white by the cell's colour."""
    a = np.ma.masked_invalid(np.asarray(im.get_array(), float))
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            t = texts[i][j]
            if t is None or t == "":
                continue
            bg = (1, 1, 1) if a.mask[i, j] else im.to_rgba(a[i, j])
            ax.text(j, i, t, ha="center", va="center", fontsize=fontsize, color=text_colour(bg), **kw)


def legend_outside(ax, fontsize: float = SMALL, **kw):
    """The axes' legend to the right of it, outside the data area."""
    kw = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0), "borderaxespad": 0.0, "frameon": False, **kw}
    return ax.legend(fontsize=fontsize, **kw)


# --------------------------------------------------------------------------- notebooks 01-04


@caption(
    "01_examples.png",
    "One log-mel segment (top) and one face key frame (bottom) per emotion, as the models see them.",
)
def examples(fs, n_per_class: int = 1):
    """One log-mel segment and one face key frame per emotion class."""
    c = len(fs.classes)
    fig, axes = plt.subplots(2, c, figsize=(2.2 * c, 4.4))
    for k, name in enumerate(fs.classes):
        i = int(np.flatnonzero(fs.labels == k)[0])
        axes[0, k].imshow(fs.audio[i, 0, 0].astype(np.float32), origin="lower", aspect="auto", cmap="magma")
        axes[0, k].set_title(name, fontsize=11)
        axes[1, k].imshow(fs.faces[i, 0, 0])
        for ax in axes[:, k]:
            ax.set_xticks([]), ax.set_yticks([])
    axes[0, 0].set_ylabel("log-mel (94 bands)", fontsize=10)
    axes[1, 0].set_ylabel("face key frame", fontsize=10)
    fig.tight_layout()
    return fig


def confusion(cm: np.ndarray, classes: tuple[str, ...], title: str = "", ax=None, colorbar: bool = True):
    """Row-normalised confusion matrix (rows: true class), annotated in %, with a colour bar."""
    cm = np.asarray(cm, float)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    if ax is None:
        _, ax = plt.subplots(figsize=(5.0, 4.2), layout="constrained")
    im = ax.imshow(100 * norm, cmap="Blues", vmin=0, vmax=100)
    annotate(ax, im, [[f"{100 * v:.0f}" for v in row] for row in norm])
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=SMALL)
    ax.set_yticks(range(len(classes)), classes, fontsize=SMALL)
    ax.set_xlabel("predicted"), ax.set_ylabel("true"), ax.set_title(title, fontsize=10)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.03, label="% of the true class")
    return ax.figure


@caption(
    "02_confusion.png",
    "Confusion matrices (true against predicted emotion) of fusion (CE) and fusion (CE + Soft-HGR), summed over all their runs.",
)
def confusions(cms: dict[str, np.ndarray], classes: tuple[str, ...]):
    """Side-by-side row-normalised confusion matrices (title: matrix), one shared colour bar."""
    fig, axes = plt.subplots(1, len(cms), figsize=(4.3 * len(cms) + 1.0, 4.4), squeeze=False, layout="constrained")
    for ax, (title, cm) in zip(axes[0], cms.items()):
        confusion(cm, classes, title=title, ax=ax, colorbar=False)
    fig.colorbar(axes[0, 0].images[0], ax=list(axes[0]), fraction=0.04, pad=0.02, label="% of the true class")
    for ax in axes[0, 1:]:
        ax.set_ylabel("")
    return fig


@caption(
    "02_training_curves.png",
    "Per epoch: the fused classifier's cross-entropy (the term every condition shares), the total "
    "training loss (with −λ·S where Soft-HGR is on) and validation UAR (%), mean ± std over runs, one "
    "line per condition.",
)
def training_curves(histories: dict[str, list[list[dict]]], key: str = "val_uar"):
    """Per epoch, mean ± std over runs, one line per condition: the fused classifier's cross-entropy (the term every
    condition shares), the total training loss (with −λ·S where Soft-HGR is on: not comparable across conditions),
    and a validation score in %."""
    panels = (
        ("ce", 1, "cross-entropy term (fusion)"),
        ("loss", 1, "total training loss"),
        (key, 100, f"validation {key.split('_')[-1].upper()} (%)"),
    )
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.9), layout="constrained")
    for name, runs in histories.items():
        for ax, (k, scale, _) in zip(axes, panels):
            m = scale * np.array([[h.get(k, h["loss"] if k == "ce" else np.nan) for h in run] for run in runs])
            x = np.arange(1, m.shape[1] + 1)
            ax.plot(x, m.mean(0), label=name)
            ax.fill_between(x, m.mean(0) - m.std(0), m.mean(0) + m.std(0), alpha=0.2)
    for ax, (_, _, title) in zip(axes, panels):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
    fig.legend(
        *axes[2].get_legend_handles_labels(),
        loc="outside lower center",
        ncol=min(4, len(histories)),
        fontsize=SMALL,
        frameon=False,
        title="mean ± std over runs",
        title_fontsize=SMALL,
    )
    return fig


@caption(
    "02_accuracy.png",
    "Test accuracy (%) of audio only, visual only, fusion (CE) and fusion (CE + Soft-HGR), mean ± std over every fold × seed.",
)
def bar_with_errors(table: pd.DataFrame, label: str, metric: str = "acc", ax=None):
    """Bars of mean ± std of `metric` per row of a mean_std() table."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.6), layout="constrained")
    ax.bar(table[label], 100 * table[f"{metric}_mean"], yerr=100 * table[f"{metric}_std"], capsize=4, color="tab:blue", alpha=0.8)
    ax.set_ylabel(f"test {metric} (%)")
    ax.tick_params(axis="x", labelrotation=20, labelsize=SMALL)
    return ax.figure


MARKERS, LINESTYLES = ("o", "s", "^", "D", "v"), ("-", "--", ":", "-.")


@caption(
    "03_semi_supervised.png",
    "Test accuracy (%) against the labeled share of the training clips (log scale): labeled only with CE, "
    "labeled only with CE + Soft-HGR, labeled + unlabeled with CE + Soft-HGR, the same labeled rows in every "
    "batch and the same optimiser steps; mean ± std over every corpus × fold × seed; each condition's points "
    "set slightly apart, so that at 100% (fusion with CE, and with CE + Soft-HGR for the other two) every "
    "condition shows.",
)
def curves_with_errors(
    table: pd.DataFrame, x: str, group: str, metric: str = "acc", xlabel: str | None = None, ax=None, percent_x: bool = False
):
    """One line per `group` value: mean ± std of `metric` (a mean_std() table) against `x`, on a log axis ticked at
    the values of `x` (as % with `percent_x`); each line with its own marker and dash, its points set slightly
    apart, so that lines that coincide (the same runs) still all show; legend to the right."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 3.8), layout="constrained")
    groups = list(table.groupby(group, sort=False))
    for i, (name, t) in enumerate(groups):
        t = t.sort_values(x)
        dodge = 10 ** (0.012 * (i - (len(groups) - 1) / 2))  # a few pixels on the log axis
        style = {"marker": MARKERS[i % len(MARKERS)], "linestyle": LINESTYLES[i % len(LINESTYLES)]}
        ax.errorbar(t[x] * dodge, 100 * t[f"{metric}_mean"], yerr=100 * t[f"{metric}_std"], capsize=3, label=name, **style)
    ax.set_xscale("log")
    ticks = sorted(set(table[x]))
    ax.set_xticks(ticks, [f"{100 * v:g}%" if percent_x else f"{v:g}" for v in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel(xlabel or x), ax.set_ylabel(f"test {metric} (%)")
    legend_outside(ax)
    return ax.figure


@caption(
    "04_ablation_heatmap.png",
    "Test accuracy (%) of the fusion classifier (left) and of a linear probe on [f, g] (right) over the "
    "Soft-HGR weight λ and the unimodal weight w_ce_uni, CE weight 1; exploratory, one run per seed; "
    "blank cells are not in the grid.",
)
def heatmaps(grids: dict[str, pd.DataFrame], fmt: str = "{:.1f}", scale: float = 100.0, title: str = "", cbar_label: str = ""):
    """Side-by-side annotated heatmaps of equally shaped grids (rows × columns), NaN cells left blank (grey: not
    run); each with its own colour bar labelled `cbar_label`."""
    n = len(grids)
    shape = next(iter(grids.values())).shape
    w = max(3.6, 0.95 * shape[1] + 1.6)
    fig, axes = plt.subplots(1, n, figsize=(w * n, 0.55 * shape[0] + 1.9), squeeze=False, layout="constrained")
    for ax, (name, g) in zip(axes[0], grids.items()):
        v = scale * g.to_numpy(dtype=float)
        im = ax.imshow(np.ma.masked_invalid(v), cmap="viridis", aspect="auto")
        ax.set_facecolor("0.93")
        annotate(ax, im, [[fmt.format(x) if np.isfinite(x) else None for x in row] for row in v])
        ax.set_xticks(range(v.shape[1]), [str(c) for c in g.columns])
        ax.set_yticks(range(v.shape[0]), [str(r) for r in g.index])
        ax.set_xlabel(g.columns.name or ""), ax.set_ylabel(g.index.name or ""), ax.set_title(name, fontsize=10)
        fig.colorbar(im, ax=ax, fraction=0.08, pad=0.02, label=cbar_label)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


# --------------------------------------------------------------------------- notebook 05


@caption(
    "05_score_spread.png",
    "Every run's test accuracy and UAR, per fold and condition, with the mean ± std over seeds.",
)
def plot_score_spread(runs: pd.DataFrame, by: str = "condition", group: str | None = "fold", metrics: tuple[str, ...] = ("acc", "uar")):
    """Every run's test score as a dot, coloured by `by`, with the mean ± std as a black square and whisker; one
    slot on the x axis per value of `group` (a fold number is shown as 'fold k'); one legend, to the right."""
    hues = list(dict.fromkeys(runs[by]))
    groups = list(dict.fromkeys(runs[group])) if group else [None]
    names = [("" if g is None else f"{group} {g}" if group == "fold" and not isinstance(g, str) else str(g)) for g in groups]
    w = 0.8 / len(hues)
    width = 3.2 if len(groups) == 1 else 1.4 + 0.45 * len(groups) * max(2, len(hues))  # per metric
    fig, axes = plt.subplots(1, len(metrics), figsize=(min(width * len(metrics) + 2.2, 11.0), 3.8), squeeze=False, layout="constrained")
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
                ax.scatter(
                    x + rng.uniform(-0.2, 0.2, len(v)) * w, v, color=f"C{hi_}", alpha=0.7, s=26, zorder=2, label=h if gi == 0 else None
                )
                ax.errorbar(
                    x,
                    v.mean(),
                    yerr=v.std(ddof=1) if len(v) > 1 else 0,
                    fmt="s",
                    color="k",
                    capsize=5,
                    ms=5,
                    zorder=3,
                    label="mean ± std" if gi == 0 and hi_ == 0 else None,
                )
                lo, hi = min(lo, v.min()), max(hi, v.max())
        pad = max(2.0, 0.15 * (hi - lo))
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_xticks(range(len(groups)), names, fontsize=SMALL)
        ax.set_xlim(-0.5, len(groups) - 0.5)
        ax.set_ylabel(f"test {m.upper()} (%)")
        ax.grid(axis="y", alpha=0.3)
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside right upper", fontsize=SMALL, frameon=False)
    return fig


@caption(
    "05_seed_cka.png",
    "Linear CKA between the features of two seeds on one fold's test clips, for audio f, visual g and "
    "fused z; grey lines join one (fold, seed pair) across fusion (CE) and fusion (CE + Soft-HGR), black "
    "squares are the means.",
)
def plot_seed_cka(
    pairs: pd.DataFrame,
    value: str = "cka",
    by: str = "condition",
    panel: str = "feature",
    pair_on: tuple[str, ...] = ("fold", "pair"),
    ylabel: str = "linear CKA between seeds",
    title: str = "similarity of features learned with different seeds (test clips)",
):
    """One panel per feature; in each, one column per condition, a grey line joining the values of one (fold,
    seed pair) unit across the conditions, the mean as a black square: a paired comparison shown as such."""

    conds, panels = list(dict.fromkeys(pairs[by])), list(dict.fromkeys(pairs[panel]))
    fig, axes = plt.subplots(
        1, len(panels), figsize=(min(1.2 + 1.6 * len(conds) * len(panels), 11.0), 4.0), sharey=True, squeeze=False, layout="constrained"
    )
    for ax, p in zip(axes[0], panels):
        wide = pairs[pairs[panel] == p].pivot_table(index=list(pair_on), columns=by, values=value, aggfunc="mean").reindex(columns=conds)
        x = np.arange(len(conds))
        for _, row in wide.iterrows():
            ax.plot(x, row.to_numpy(float), "-", color="0.6", alpha=0.6, lw=1, zorder=1)
        for j, c in enumerate(conds):
            v = wide[c].dropna().to_numpy(float)
            ax.scatter(np.full(len(v), j), v, color=f"C{j}", s=22, alpha=0.8, zorder=2)
            if len(v):
                ax.plot(j, v.mean(), "s", color="k", ms=8, zorder=3)
        ax.set_xticks(x, [c.replace(" (", "\n(") for c in conds], fontsize=SMALL)
        ax.set_xlim(-0.5, len(conds) - 0.5)
        ax.set_title(FEATURE_NAMES.get(p, p), fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0, 0].set_ylabel(ylabel)
    if title:
        fig.suptitle(f"{title}; grey: one (fold, seed pair), black square: mean", fontsize=10)
    return fig


@caption(
    "05_av_correlation.png",
    "Canonical correlations of the audio and visual features f and g on test clips, per component and "
    "condition: in-sample (solid) and along directions fitted on training clips (dashed).",
)
def plot_av_correlation(cca: pd.DataFrame, by: str = "condition"):
    """Canonical correlations of f and g against component, per condition (colour); solid: in-sample, dashed:
    directions fitted on the training clips; legend to the right."""
    fig, ax = plt.subplots(figsize=(7.8, 3.6), layout="constrained")
    for i, (name, sub) in enumerate(cca.groupby(by, sort=False)):
        g = sub.groupby("component")
        ax.plot(g["in_sample"].mean().index, g["in_sample"].mean(), "o-", color=f"C{i}", label=f"{name}, in-sample")
        if "held_out" in sub:
            ax.plot(g["held_out"].mean().index, g["held_out"].mean(), "s--", color=f"C{i}", label=f"{name}, held-out directions")
    ax.set_xlabel("canonical component")
    ax.set_ylabel("correlation of f and g\n(test clips, mean over runs)")
    ax.set_ylim(0, 1.02)
    ax.set_xticks(sorted(cca["component"].unique()))
    legend_outside(ax)
    ax.grid(alpha=0.3)
    return fig


@caption(
    "05_factor_probes.png",
    "Linear probes of the synthetic generator's factors from the test-clip features f, g and z of both "
    "fusion conditions: accuracy for discrete factors, R² for continuous ones; each factor names the "
    "modalities it reaches.",
)
def plot_factor_probes(probes: pd.DataFrame, by: str = "condition", value: str = "score"):
    """Factors (rows, with their metric and kind) × features, one panel per condition, annotated with the mean
    score over runs; one colour bar (clipped to [0, 1]: R² can be negative, worse than predicting the mean)."""

    conds = list(dict.fromkeys(probes[by]))
    feats = list(dict.fromkeys(probes["feature"]))
    facs = list(dict.fromkeys(probes["factor"]))
    info = probes.drop_duplicates("factor").set_index("factor")
    tab = probes.pivot_table(index="factor", columns=[by, "feature"], values=value, aggfunc="mean", dropna=False)
    chance = probes.groupby("factor")["chance"].mean() if "chance" in probes else pd.Series(dtype=float)

    def label(f):
        c = chance.get(f, np.nan)
        extra = f", chance {c:.2f}" if info.loc[f, "metric"] == "acc" and np.isfinite(c) else ""
        return f"{f} ({info.loc[f, 'metric']}{extra}, {info.loc[f, 'kind']})"

    fig, axes = plt.subplots(
        1,
        len(conds),
        figsize=(min(3.6 + 1.05 * len(feats) * len(conds) + 1.0, 11.0), 0.4 * len(facs) + 1.6),
        sharey=True,
        squeeze=False,
        layout="constrained",
    )
    for ax, c in zip(axes[0], conds):
        m = tab.reindex(index=facs, columns=pd.MultiIndex.from_tuples([(c, f) for f in feats])).to_numpy(float)
        im = ax.imshow(np.clip(m, 0, 1), cmap="viridis", vmin=0, vmax=1, aspect="auto")
        ax.set_facecolor("0.93")
        annotate(ax, im, [["–" if np.isnan(x) else f"{x:.2f}" for x in row] for row in m])
        ax.set_xticks(range(len(feats)), [FEATURE_NAMES.get(f, f) for f in feats], fontsize=SMALL)
        ax.tick_params(axis="x", top=True, labeltop=True, bottom=False, labelbottom=False)
        ax.set_title(c, fontsize=11, fontweight="bold", pad=8)
    axes[0, 0].set_yticks(range(len(facs)), [label(f) for f in facs], fontsize=SMALL)
    fig.colorbar(im, ax=list(axes[0]), fraction=0.04, pad=0.02, label="probe score (colour clipped to [0, 1])")
    fig.suptitle("linear probes on test-clip features (acc: accuracy; R²: variance explained), mean over runs", fontsize=10)
    return fig


# --------------------------------------------------------------------------- notebook 07


def _short(x: float) -> str:
    """Two significant digits, compact: 0.0025, 0.53, 4.8, 81, 240 (not 2.4e+02), 2e3 (from 1000: one digit and exponent)."""
    if abs(x) >= 1000:
        return f"{x:.0e}".replace("e+0", "e").replace("e+", "e")
    if abs(x) >= 100:
        return f"{float(f'{x:.2g}'):.0f}"
    return f"{x:.2g}"


def _wrap_objective(name: str) -> str:
    return name.replace(", ", ",\n", 1) if len(name) > 16 else name


@caption(
    "07_minibatch_heatmaps.png",
    "Soft-HGR and three CCA variants on planted Gaussian pairs, per batch size and feature dimension: "
    "fraction of non-finite or out-of-bound values, bias of the batch value against the whole pool, "
    "median gradient norm and its spread; boxed cells lie outside the objective's well-posed regime.",
)
def plot_study(summary: pd.DataFrame, title: str = ""):
    """Heatmaps, one panel per quantity (fraction of batches non-finite or over the objective's bound, relative
    bias, median gradient norm, gradient-norm relative spread), each with its colour bar: rows batch size,
    columns objective × feature dimension; boxed: the cells outside the objective's well-posed regime
    (StudyObjective.regime)."""
    from matplotlib.colors import LogNorm, SymLogNorm

    names = list(dict.fromkeys(summary["objective"]))
    dims = sorted(summary["dim"].unique())
    batches = sorted(summary["batch"].unique())
    metrics = [
        ("frac_failed", "fraction of batches non-finite or over the bound", None),
        ("rel_bias", "value bias / |whole-pool value|", "sym"),
        ("grad_median", "median gradient norm", "loggrad"),
        ("grad_rel_spread", "gradient norm: std / mean", "log"),
    ]
    nc = len(names) * len(dims)
    fig, axes = plt.subplots(
        len(metrics),
        1,
        figsize=(min(2.4 + 0.72 * nc, 11.0), len(metrics) * (1.25 + 0.3 * len(batches)) + 0.5),
        squeeze=False,
        layout="constrained",
    )
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
        ax.set_xticks(range(nc), [f"d={d}" for _ in names for d in dims], fontsize=SMALL)
        ax.set_yticks(range(len(batches)), batches, fontsize=SMALL)
        ax.set_ylabel("batch size")
        top = ax.secondary_xaxis("top")
        top.set_xticks([(i + 0.5) * len(dims) - 0.5 for i in range(len(names))], [_wrap_objective(n) for n in names], fontsize=SMALL)
        top.tick_params(length=0)
        ax.set_title(label, fontsize=10, loc="left", fontweight="bold")
        cb = fig.colorbar(im, ax=ax, fraction=0.04, pad=0.01)
        if scale == "sym":
            cb.set_ticks([-1e4, -1e2, -1, 0, 1, 1e2, 1e4])
        cb.ax.tick_params(labelsize=9)
    if title:
        fig.suptitle(title + "\n(boxed: not well-posed, e.g. CCA on k > batch/4 dimensions)", fontsize=11)
    return fig


@caption(
    "07_minibatch_lines.png",
    "Planted Gaussian pairs: each objective's mini-batch value relative to its whole-pool value (mean ± "
    "std) and its median gradient norm, against batch size, per feature dimension.",
)
@caption(
    "07_minibatch_learned.png",
    "As the planted-pairs lines, on the learned clip features f, g of a CE + Soft-HGR run (at its "
    "dimension and random projections to smaller ones).",
)
def plot_value_spread(summary: pd.DataFrame, title: str = ""):
    """Per dimension: mean ± std of the value relative to the whole-pool value, and the median gradient norm,
    against batch size; one line per objective (one legend, below)."""
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
            axes[1, j].scatter(
                bad["batch"], bad["grad_median"].fillna(1e-3), marker="x", s=50, color="red", zorder=3, label="non-finite seen"
            )
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
    fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncol=min(len(handles), 3), fontsize=SMALL, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


@caption(
    "07_protocols.png",
    "Test accuracy (%, segment and clip level) of fusion (CE + Soft-HGR) with subject, clip and segment "
    "splits (left, mean ± std over runs), and their paired differences (right, points, mean ± std over "
    "(fold, seed) pairs).",
)
def plot_protocols(table: pd.DataFrame, metrics: tuple[str, ...] = ("seg_acc", "clip_acc")):
    """Left: `metrics` mean ± std per protocol; right: the paired differences (mean ± std over pairs, points)
    of a protocol_table; one legend, to the right."""
    base = table[table["component"].fillna("") == ""]
    diff = table[table["component"].fillna("") != ""]
    fig, axes = plt.subplots(1, 2, figsize=(11.0, 3.9), gridspec_kw={"width_ratios": [1, 1.2]}, layout="constrained")
    w = 0.8 / len(metrics)
    for ax, t, labels in (
        (axes[0], base, list(base["protocol"])),
        (axes[1], diff, [f"{p}\n({c})" for p, c in zip(diff["protocol"], diff["component"])]),
    ):
        x = np.arange(len(t))
        for k, m in enumerate(metrics):
            ax.bar(
                x + (k - (len(metrics) - 1) / 2) * w, 100 * t[f"{m}_mean"], w, yerr=100 * t[f"{m}_std"], capsize=3, label=m, color=f"C{k}"
            )
        ax.set_xticks(x, labels, fontsize=SMALL)
        ax.grid(axis="y", alpha=0.3)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right upper", fontsize=SMALL, frameon=False)
    axes[0].set_ylabel("test accuracy (%)")
    axes[0].set_title("per protocol: mean ± std over runs", fontsize=10)
    axes[1].axhline(0, color="k", lw=0.6)
    axes[1].set_ylabel("difference (points)")
    axes[1].set_title("paired differences: mean ± std over (fold, seed) pairs", fontsize=10)
    return fig


# --------------------------------------------------------------------------- notebook 06


def _scatter(ax, e: np.ndarray, labels, names=None, cmap="tab10", size=14):
    labels = np.asarray(labels)
    values = list(dict.fromkeys(sorted(labels.tolist())))
    colors = plt_cmap(cmap, len(values))
    for i, v in enumerate(values):
        m = labels == v
        ax.scatter(e[m, 0], e[m, 1], s=size, color=colors[i], label=str(names[v]) if names is not None else str(v), alpha=0.8, linewidths=0)
    ax.set_xticks([]), ax.set_yticks([])
    return values


def plt_cmap(name: str, n: int) -> list:
    """n distinct colours: tab10 for emotions; for subjects Dark2 (≤ 8), tab20 (≤ 20), else a continuous map."""
    import matplotlib

    if name == "subjects":
        name = "Dark2" if n <= 8 else "tab20" if n <= 20 else "turbo"
    cm = matplotlib.colormaps[name]
    if getattr(cm, "N", 256) <= 20:
        return [cm(i % cm.N) for i in range(n)]
    return [cm(i / max(1, n - 1)) for i in range(n)]


@caption(
    "06_umap.png",
    "UMAP of the audio f, visual g and fused z features of held-out clips, coloured by emotion (upper "
    "block) and by subject (lower block); in each block a row per condition, fusion (CE) above fusion (CE "
    "+ Soft-HGR); silhouette scores in the panel titles.",
)
@caption(
    "06_tsne.png",
    "t-SNE of the audio f, visual g and fused z features of held-out clips, coloured by emotion (upper "
    "block) and by subject (lower block); in each block a row per condition, fusion (CE) above fusion (CE "
    "+ Soft-HGR); silhouette scores in the panel titles.",
)
def plot_grid(
    feats_by_condition: dict,
    embeddings: dict,
    method: str,
    classes,
    keys=("f", "g", "z"),
    scores: pd.DataFrame | None = None,
    shown: str = "test-clip features (held-out subjects)",
):
    """Two blocks, the features coloured by emotion, then by subject, each with its legend to the right; in
    each block, rows: conditions; columns: the features.

    With `scores` (from `silhouettes`) each panel's title carries the silhouette of its input features.
    """
    conds = list(feats_by_condition)
    nk = len(keys)
    side = 2.55  # inches per panel
    fig = plt.figure(figsize=(side * nk + 2.6, 2 * (side + 0.45) * len(conds) + 0.9), layout="constrained")
    blocks = fig.subfigures(2, 1)
    for block, (sub, (col, names, cmap, what)) in enumerate(
        zip(blocks, (("labels", list(classes), "tab10", "emotion"), ("subjects", None, "subjects", "subject")))
    ):
        axes = sub.subplots(len(conds), nk, squeeze=False)
        for r, cond in enumerate(conds):
            fe = feats_by_condition[cond]
            for j, key in enumerate(keys):
                ax = axes[r, j]
                _scatter(ax, embeddings[(cond, key, method)], fe[col], names, cmap, size=24)
                title = FEATURE_NAMES.get(key, key)
                if scores is not None:
                    s = scores[(scores["condition"] == cond) & (scores["feature"] == key)][what]
                    if len(s):
                        title += f" · silhouette {float(s.iloc[0]):.2f}"
                ax.set_title(title, fontsize=10)
            axes[r, 0].set_ylabel(cond, fontsize=10)
        h, lab = axes[0, 0].get_legend_handles_labels()
        sub.legend(
            h,
            lab,
            loc="outside right center",
            ncol=1 if len(lab) <= 14 else 2,
            fontsize=10,
            markerscale=1.6,
            frameon=False,
            title=f"colour: {what}",
            title_fontsize=10,
        )
        sub.suptitle(f"coloured by {what}", fontsize=11, x=0.02, ha="left", fontweight="bold")
    fig.suptitle(f"{method.upper()} of {shown}", fontsize=12)
    return fig


# --------------------------------------------------------------------------- notebook 08 (and 01: key_frame)

BOX_STYLE = {"detected": ("#1a9850", "-"), "borrowed": ("#fdae61", "--"), "centre": ("#d73027", ":")}


def key_frame(ax, frame, box, how: str, title: str, fontsize: float = SMALL) -> None:
    """A key frame with the box its face crop was cut around, styled by how the box was found (`BOX_STYLE`:
    green detected, orange dashed borrowed from the clip's other key frames, red dotted centre crop)."""
    ax.imshow(frame)
    x, y, w, h = box
    colour, style = BOX_STYLE[how]
    ax.add_patch(Rectangle((x, y), w, h, fill=False, edgecolor=colour, linestyle=style, linewidth=1.5))
    ax.set_title(title, fontsize=fontsize, loc="left")


@caption(
    "08_key_frames.png",
    "Per predicted clip, one key frame per segment with the box its face crop was cut around (green: "
    "detected, orange dashed: borrowed from the clip's other frames, red dotted: centre crop) and the "
    "crop itself.",
)
def plot_key_frames(preds: list, per_segment: int | None = None):
    """One row per clip: one key frame per segment (the middle one) with the box its crop was cut around
    (green: detected, orange dashed: borrowed from the clip's other key frames, red dotted: centre crop),
    and beside it the crop the network gets."""
    preds = [p for p in preds if p.view is not None]
    s = max(len(p.seg_probs) for p in preds)
    fig, axes = plt.subplots(
        len(preds), 2 * s, figsize=(min(11, 1.1 * 2 * s), 1.5 * len(preds) + 0.4), gridspec_kw={"width_ratios": [1.6, 1] * s}, squeeze=False
    )
    for r, p in enumerate(preds):
        k = len(p.key_times) // len(p.seg_probs)
        mid = per_segment if per_segment is not None else k // 2
        for j in range(2 * s):
            axes[r, j].axis("off")
        for i in range(len(p.seg_probs)):
            idx = i * k + mid
            ax, axc = axes[r, 2 * i], axes[r, 2 * i + 1]
            key_frame(ax, p.view.frames[idx], p.view.boxes[idx], p.view.how[idx], f"{p.key_times[idx]:.2f} s: {p.seg_emotions[i]}")
            axc.imshow(p.view.crops[i, mid])
        axes[r, 0].text(-0.08, 0.5, Path(p.clip).stem, transform=axes[r, 0].transAxes, rotation=90, ha="right", va="center", fontsize=9)
    fig.suptitle(
        "One key frame per segment with the box its face crop is cut around (green: detected, orange dashed: "
        "borrowed,\nred dotted: centre crop), the crop the network gets, and the segment's predicted emotion",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


@caption(
    "08_log_mel.png",
    "Per predicted clip, its log-mel spectrogram with the segments the network sees, each labelled with its predicted emotion.",
)
def plot_log_mel(preds: list):
    """One row per clip: the whole clip's log-mel spectrogram and, as white brackets, the segments the
    network sees (they overlap when the clip is short), each labelled with its predicted emotion."""
    preds = [p for p in preds if p.view is not None]
    fig, axes = plt.subplots(len(preds), 1, figsize=(9, 1.8 * len(preds) + 0.4), squeeze=False, constrained_layout=True)
    im = None
    for ax, p in zip(axes[:, 0], preds):
        spec = p.view.spec
        m = spec.shape[0]
        im = ax.imshow(spec, origin="lower", aspect="auto", extent=(0, spec.shape[1] * p.view.hop_s, 0, m), cmap="magma")
        for i, ((t0, t1), e) in enumerate(zip(p.seg_times, p.seg_emotions)):
            y = m * (0.08 + 0.28 * (i % 3))
            ax.plot([t0, t0, t1, t1], [y + 3, y, y, y + 3], color="white", linewidth=1.5)
            ax.text((t0 + t1) / 2, y + 1.5, f"{i}: {e}", color="white", fontsize=9, ha="center", va="bottom")
        ax.set_ylabel("mel band", fontsize=9)
        ax.set_title(f"{Path(p.clip).stem}: {p.emotion} ({p.probs.max():.2f})", fontsize=9, loc="left")
        ax.tick_params(labelsize=9)
    axes[-1, 0].set_xlabel("time (s)", fontsize=9)
    cb = fig.colorbar(im, ax=axes[:, 0].tolist(), fraction=0.03, pad=0.01)
    cb.set_label("dB", fontsize=9)
    cb.ax.tick_params(labelsize=9)
    return fig


@caption(
    "08_segment_probs.png",
    "Per predicted clip, each emotion's probability per segment over time; the clip's probability of its predicted emotion dashed.",
)
def plot_segment_probs(preds: list):
    """One panel per clip: each class's probability per segment (at the segment's centre), over time;
    the clip's probability of its predicted class dashed."""
    n = len(preds)
    cols = min(3, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols + 1.6, 2.3 * rows + 0.3), squeeze=False, sharey=True)
    colours = plt.get_cmap("tab10")
    for k, (ax, p) in enumerate(zip(axes.flat, preds)):
        t = p.seg_times.mean(axis=1)
        for c, name in enumerate(p.classes):
            ax.plot(t, p.seg_probs[:, c], marker="o", markersize=3, color=colours(c), label=name)
        best = int(p.probs.argmax())
        ax.axhline(p.probs[best], color=colours(best), linestyle="--", linewidth=1)
        ax.set_title(f"{Path(p.clip).stem}: {p.emotion}", fontsize=9)
        ax.set_ylim(0, 1)
        ax.tick_params(labelsize=9)
        if k % cols == 0:
            ax.set_ylabel("probability", fontsize=9)
        if k >= n - cols:
            ax.set_xlabel("segment centre (s)", fontsize=9)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    legend_outside(axes[0, cols - 1])
    fig.tight_layout()
    return fig
