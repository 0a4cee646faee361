"""The figures are legible at the size the README shows them (about 860 px wide, saved at 120 dpi): text at least
8 px on screen, every heatmap with a colour bar and annotations that contrast with their cells, legends outside
the data; and they show the numbers they are given."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.image import AxesImage  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from hgrlib.report import plots  # noqa: E402

SHOWN_PX, DPI = 860, 120  # the README's display width; hgrlib.report.tables.save_figure's dpi
CLASSES = ("anger", "disgust", "fear", "happiness", "sadness", "surprise")


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


# --------------------------------------------------------------------------- inputs


def _grids():
    a = pd.DataFrame(
        [[0.623, 0.639, 0.653, 0.722], [0.66, np.nan, 0.697, np.nan]],
        index=pd.Index([0.0, 0.5], name="w_uni"),
        columns=pd.Index([0.0, 0.01, 0.1, 1.0], name="lam"),
    )
    return {"fusion classifier": a, "linear probe": a[::-1].set_axis(a.index)}


def _probes():
    rows = []
    rng = np.random.default_rng(0)
    for cond in ("fusion (CE)", "fusion (CE + Soft-HGR)"):
        for fac, kind, metric in (("emotion", "shared", "acc"), ("yaw", "video only", "R²"), ("gain_db", "audio only", "R²")):
            for feat in "fgz":
                for fold in range(3):
                    rows.append(
                        dict(
                            condition=cond,
                            factor=fac,
                            kind=kind,
                            level="clip",
                            metric=metric,
                            feature=feat,
                            fold=fold,
                            seed=0,
                            chance=1 / 6 if metric == "acc" else np.nan,
                            score=rng.uniform(-0.2, 1.0),
                        )
                    )
    return pd.DataFrame(rows)


def _study():
    rng = np.random.default_rng(1)
    rows = []
    for name in ("Soft-HGR", "CCA full-d, ridge 0.0001", "CCA k=batch/4, ridge 1e-3·tr/k"):
        for d in (8, 32, 128):
            for b in (4, 16, 64, 256):
                rows.append(
                    dict(
                        objective=name,
                        dim=d,
                        batch=b,
                        well_posed=name == "Soft-HGR" or b > d,
                        frac_failed=rng.choice([0.0, 0.01, 1.0]),
                        rel_bias=rng.choice([-81.0, -0.0025, 0.62, 3e4]),
                        grad_median=rng.choice([0.0015, 2.4e2, 5.0, 3e7]),
                        grad_rel_spread=rng.choice([0.0093, 0.5, 4.8]),
                        value_mean=1.0,
                        value_std=0.1,
                        full_value=1.0,
                        frac_nonfinite=float(b == 4 and d == 128),
                    )
                )
    return pd.DataFrame(rows)


def _runs():
    rng = np.random.default_rng(2)
    return pd.DataFrame(
        [
            dict(condition=c, fold=f, seed=s, acc=rng.uniform(0.6, 0.7), uar=rng.uniform(0.6, 0.7))
            for c in ("fusion (CE)", "fusion (CE + Soft-HGR)")
            for f in range(4)
            for s in range(3)
        ]
    )


def _cca():
    return pd.DataFrame(
        [
            dict(condition=c, component=k, run=r, in_sample=0.8 - 0.05 * k + 0.01 * r, held_out=0.3 - 0.05 * k)
            for c in ("fusion (CE)", "fusion (CE + Soft-HGR)")
            for k in range(1, 6)
            for r in range(2)
        ]
    )


def _grid_figure():
    rng = np.random.default_rng(3)
    conds = ("fusion (CE)", "fusion (CE + Soft-HGR)")
    feats = {c: {"labels": np.repeat(np.arange(6), 8), "subjects": np.tile(["04", "07", "09", "10"], 12)} for c in conds}
    embs = {(c, k, "umap"): rng.normal(size=(48, 2)) for c in conds for k in "fgz"}
    scores = pd.DataFrame([dict(condition=c, feature=k, emotion=0.1, subject=-0.1) for c in conds for k in "fgz"])
    return plots.plot_grid(feats, embs, "umap", CLASSES, scores=scores)


def _protocols():
    return pd.DataFrame(
        {
            "protocol": ["subject", "clip", "clip − subject"],
            "component": ["", "", "speaker dependence"],
            **{
                f"{m}_{s}": [0.67, 0.65, -0.02] if s == "mean" else [0.01, 0.03, 0.03]
                for m in ("seg_acc", "clip_acc")
                for s in ("mean", "std")
            },
        }
    )


def _histories():
    return {
        c: [
            [{"ce": 1.0 / (e + 1), "loss": 1.0 / (e + 1) - 0.1 * ("Soft" in c), "val_uar": 0.3 + 0.05 * e + 0.01 * r} for e in range(4)]
            for r in range(2)
        ]
        for c in ("audio only (CE)", "visual only (CE)", "fusion (CE)", "fusion (CE + Soft-HGR)")
    }


def _semi():
    return pd.DataFrame(
        [
            dict(condition=c, labeled_frac=f, acc_mean=0.4 + 0.2 * f, acc_std=0.02)
            for c in ("labeled only", "labeled + unlabeled, Soft-HGR")
            for f in (0.1, 0.5, 1.0)
        ]
    )


HEATMAPS = {
    "heatmaps": lambda: plots.heatmaps(_grids(), cbar_label="test accuracy (%)"),
    "confusions": lambda: plots.confusions({"a": np.eye(6) * 20 + 3, "b": np.ones((6, 6))}, CLASSES),
    "factor_probes": lambda: plots.plot_factor_probes(_probes()),
    "plot_study": lambda: plots.plot_study(_study(), "planted"),
}
LEGENDS = {
    "training_curves": lambda: plots.training_curves(_histories()),
    "curves_with_errors": lambda: plots.curves_with_errors(_semi(), "labeled_frac", "condition"),
    "score_spread": lambda: plots.plot_score_spread(_runs()),
    "av_correlation": lambda: plots.plot_av_correlation(_cca()),
    "plot_value_spread": lambda: plots.plot_value_spread(_study(), "planted"),
    "plot_protocols": lambda: plots.plot_protocols(_protocols()),
    "plot_grid": _grid_figure,
}
OTHERS = {
    "seed_cka": lambda: plots.plot_seed_cka(
        pd.DataFrame(
            {
                "condition": ["a"] * 6 + ["b"] * 6,
                "fold": [0, 0, 0, 1, 1, 1] * 2,
                "pair": ["0-1", "0-2", "1-2"] * 4,
                "feature": "z",
                "cka": np.linspace(0.8, 0.95, 12),
            }
        )
    )
}


# --------------------------------------------------------------------------- helpers


def _on_screen_px(fig, size_pt: float) -> float:
    """Height in screen pixels of text of `size_pt` points once the saved figure is shown at most SHOWN_PX wide."""
    width_px = fig.get_figwidth() * DPI
    return size_pt * DPI / 72 * min(1.0, SHOWN_PX / width_px)


def _image_axes(fig):
    return [(ax, im) for ax in fig.axes for im in ax.get_images() if isinstance(im, AxesImage)]


def _cell_texts(ax, im):
    """(text, row, column) of the annotations lying on cells of the image."""
    a = np.asarray(im.get_array())
    out = []
    for t in ax.texts:
        x, y = t.get_position()
        i, j = int(round(y)), int(round(x))
        if abs(x - j) < 1e-9 and abs(y - i) < 1e-9 and 0 <= i < a.shape[0] and 0 <= j < a.shape[1]:
            out.append((t, i, j))
    return out


def _has_colour_bar(fig, im) -> bool:
    """The image has its own colour bar, or shares a labelled one with an image of the same colour map and scale."""
    if im.colorbar is not None:
        return True
    bars = [ax._colorbar for ax in fig.axes if hasattr(ax, "_colorbar")]
    return any(
        b.mappable.get_cmap().name == im.get_cmap().name
        and type(b.mappable.norm) is type(im.norm)
        and (b.mappable.norm.vmin, b.mappable.norm.vmax) == (im.norm.vmin, im.norm.vmax)
        and (b.ax.get_ylabel() or b.ax.get_xlabel())
        for b in bars
    )


def _data_axes(fig):
    return [ax for ax in fig.axes if not hasattr(ax, "_colorbar")]


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 - 1 and b.x0 < a.x1 - 1 and a.y0 < b.y1 - 1 and b.y0 < a.y1 - 1


# --------------------------------------------------------------------------- the rules


def test_text_colour_is_the_more_contrasting_of_black_and_white():
    rng = np.random.default_rng(0)
    for rgb in rng.uniform(0, 1, size=(200, 3)):
        assert plots.contrast_ratio(rgb, plots.text_colour(rgb)) >= 4.5
    assert plots.text_colour("#440154") == "white" and plots.text_colour("#fde725") == "black"  # viridis ends
    assert plots.text_colour((0.4, 0.0, 0.05)) == "white"  # the dark red the report complained about
    assert plots.contrast_ratio("black", "white") == pytest.approx(21.0)


@pytest.mark.parametrize("name", list(HEATMAPS))
def test_heatmaps_have_colour_bars_and_readable_contrasting_annotations(name):
    fig = HEATMAPS[name]()
    panels = _image_axes(fig)
    assert panels
    for ax, im in panels:
        assert _has_colour_bar(fig, im), f"{name}: a heatmap panel without a colour bar"
        cells = _cell_texts(ax, im)
        assert cells, f"{name}: no annotations"
        a = np.ma.masked_invalid(np.asarray(im.get_array(), float))
        for t, i, j in cells:
            assert t.get_fontsize() >= 9 and _on_screen_px(fig, t.get_fontsize()) >= 8, (name, t.get_text(), t.get_fontsize())
            if a.mask[i, j]:
                continue
            ratio = plots.contrast_ratio(im.to_rgba(a[i, j]), t.get_color())
            assert ratio >= 3, (name, t.get_text(), t.get_color(), ratio)


@pytest.mark.parametrize("name", list(HEATMAPS) + list(LEGENDS) + list(OTHERS))
def test_every_text_is_at_least_8_px_at_the_readme_width(name):
    fig = {**HEATMAPS, **LEGENDS, **OTHERS}[name]()
    small = [
        (t.get_text(), t.get_fontsize())
        for t in fig.findobj(Text)
        if t.get_visible() and t.get_text().strip() and _on_screen_px(fig, t.get_fontsize()) < 8
    ]
    assert not small, f"{name}: {small[:5]}"


@pytest.mark.parametrize("name", list(LEGENDS))
def test_legends_lie_outside_the_data(name):
    fig = LEGENDS[name]()
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    for sub in getattr(fig, "subfigs", []):
        legends += list(sub.legends)
    assert legends, f"{name}: no legend"
    for leg in legends:
        box = leg.get_window_extent(r)
        for ax in _data_axes(fig):
            assert not _overlap(box, ax.get_window_extent(r)), f"{name}: legend over the data of {ax.get_title()!r}"


def test_heatmaps_show_the_numbers_given():
    g = _grids()
    fig = plots.heatmaps(g)
    for (ax, im), grid in zip(_image_axes(fig), g.values()):
        v = 100 * grid.to_numpy(float)
        got = {(i, j): t.get_text() for t, i, j in _cell_texts(ax, im)}
        assert got == {(i, j): f"{v[i, j]:.1f}" for i in range(v.shape[0]) for j in range(v.shape[1]) if np.isfinite(v[i, j])}


def test_confusions_show_row_percentages():
    cm = np.array([[8, 2, 0], [1, 1, 2], [0, 0, 0]])
    fig = plots.confusions({"x": cm}, ("a", "b", "c"))
    ax, im = _image_axes(fig)[0]
    got = {(i, j): t.get_text() for t, i, j in _cell_texts(ax, im)}
    assert got[0, 0] == "80" and got[0, 1] == "20" and got[1, 2] == "50" and got[2, 2] == "0"


def test_factor_probes_show_the_mean_score_per_condition_panel():
    pr = _probes()
    fig = plots.plot_factor_probes(pr)
    panels = _image_axes(fig)
    assert [ax.get_title() for ax, _ in panels] == ["fusion (CE)", "fusion (CE + Soft-HGR)"]
    means = pr.groupby(["condition", "factor", "feature"])["score"].mean()
    facs = list(dict.fromkeys(pr["factor"]))
    for ax, im in panels:
        for t, i, j in _cell_texts(ax, im):
            assert t.get_text() == f"{means[ax.get_title(), facs[i], 'fgz'[j]]:.2f}"
        assert np.nanmin(np.asarray(im.get_array(), float)) >= 0  # colours clipped to [0, 1], numbers not
    assert fig.get_suptitle()


def test_study_heatmaps_show_the_raw_numbers_not_the_clipped_colours():
    s = _study()
    fig = plots.plot_study(s, "t")
    panels = _image_axes(fig)
    metrics = ["frac_failed", "rel_bias", "grad_median", "grad_rel_spread"]
    assert len(panels) == len(metrics)
    names, dims, batches = list(dict.fromkeys(s["objective"])), sorted(s["dim"].unique()), sorted(s["batch"].unique())
    for (ax, im), m in zip(panels, metrics):
        got = {(i, j): t.get_text() for t, i, j in _cell_texts(ax, im)}
        want = {
            (batches.index(r["batch"]), names.index(r["objective"]) * len(dims) + dims.index(r["dim"])): plots._short(r[m])
            for _, r in s.iterrows()
        }
        assert got == want, m
    assert plots._short(3e7) == "3e7" and plots._short(239.6) == "240" and plots._short(-0.0025) == "-0.0025"
    assert "3e7" in {t.get_text() for t in panels[2][0].texts}  # above the colour scale's 1e6: shown as given


def test_score_spread_and_av_correlation_plot_the_values_given():
    runs = _runs()
    fig = plots.plot_score_spread(runs)
    pts = np.concatenate([c.get_offsets()[:, 1] for c in fig.axes[0].collections if len(c.get_offsets()) > 1])
    assert sorted(np.round(pts, 9)) == sorted(np.round(100 * runs["acc"].to_numpy(), 9))
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == [f"fold {k}" for k in range(4)]
    cca = _cca()
    fig = plots.plot_av_correlation(cca)
    line = fig.axes[0].get_lines()[0]
    assert np.allclose(line.get_ydata(), cca[cca["condition"] == "fusion (CE)"].groupby("component")["in_sample"].mean())


def test_seed_cka_panels_and_title():
    fig = OTHERS["seed_cka"]()
    assert [ax.get_title() for ax in fig.axes] == ["fused z"] and "seeds" in fig.get_suptitle()


def test_umap_grid_has_one_legend_per_colouring_outside_the_panels():
    fig = _grid_figure()
    assert len(fig.subfigs) == 2 and [len(s.legends) for s in fig.subfigs] == [1, 1]
    assert [t.get_text() for t in fig.subfigs[0].legends[0].get_texts()] == list(CLASSES)
    assert len(_data_axes(fig)) == 12 and fig.get_figwidth() <= 11


def test_coinciding_curves_all_show_on_a_log_axis_in_percent():
    """At fraction 1 the conditions are the same runs: every line still has its own visible point there."""
    t = _semi()
    t.loc[t["labeled_frac"] == 1.0, "acc_mean"] = 0.6
    fig = plots.curves_with_errors(t, "labeled_frac", "condition", percent_x=True)
    ax = fig.axes[0]
    lines = [c.lines[0] for c in ax.containers]  # each errorbar's data line
    assert ax.get_xscale() == "log" and [x.get_text() for x in ax.get_xticklabels()] == ["10%", "50%", "100%"]
    px = [ax.transData.transform((line.get_xdata()[-1], line.get_ydata()[-1]))[0] for line in lines]
    assert len(lines) == 2 and abs(px[0] - px[1]) >= 3  # pixels apart
    assert lines[0].get_marker() != lines[1].get_marker()


def test_validation_curves_are_in_percent_and_the_ce_term_apart_from_the_total_loss():
    fig = plots.training_curves(_histories())
    assert fig.axes[2].get_title().endswith("(%)") and max(fig.axes[2].get_lines()[0].get_ydata()) > 1
    ce, total = fig.axes[0].get_lines()[-1].get_ydata(), fig.axes[1].get_lines()[-1].get_ydata()  # CE + Soft-HGR
    assert "cross-entropy" in fig.axes[0].get_title() and list(total) == pytest.approx(list(ce - 0.1))


def test_convergence_table_says_which_conditions_still_climb():
    from hgrlib.analysis.convergence import convergence_table

    flat = [[{"val_uar": 0.5 + 0.001 * e} for e in range(6)] for _ in range(3)]
    climbing = [[{"val_uar": 0.3 + 0.05 * e + 0.01 * r} for e in range(6)] for r in range(3)]
    t = convergence_table({"flat": flat, "climbing": climbing}).set_index("condition")
    assert t.loc["flat", "levelled off"] == "yes" and t.loc["climbing", "levelled off"] == "no"
    assert t.loc["climbing", "gain per epoch, last 2"] == "+5.0 ± 0.0" and t.loc["climbing", "at the last epoch"] == 56.0
