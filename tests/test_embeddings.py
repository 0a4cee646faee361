"""UMAP / t-SNE embeddings and silhouettes (notebook 06) on small inputs."""

from __future__ import annotations

import numpy as np
import pytest

from hgrlib.analysis import embeddings as em
from hgrlib.report import plots


def _blobs(n_per=8, k=3, d=5, seed=0):
    r = np.random.default_rng(seed)
    centres = 6 * r.normal(size=(k, d))
    labels = np.repeat(np.arange(k), n_per)
    return centres[labels] + r.normal(size=(len(labels), d)), labels


@pytest.mark.parametrize("method", em.METHODS)
def test_embed_shape_and_determinism(method):
    x, _ = _blobs()
    a = em.embed(x, method, seed=0)
    b = em.embed(x, method, seed=0)
    assert a.shape == (24, 2) and np.isfinite(a).all()
    np.testing.assert_allclose(a, b)


@pytest.mark.parametrize("method", em.METHODS)
def test_embed_works_with_very_few_points(method):
    x, _ = _blobs(n_per=2, k=3)  # 6 points, below the default n_neighbors / perplexity
    assert em.embed(x, method, seed=1).shape == (6, 2)


def test_embed_rejects_unknown_method_and_too_few_points():
    x, _ = _blobs()
    with pytest.raises(ValueError):
        em.embed(x, "pca")
    with pytest.raises(ValueError):
        em.embed(x[:2], "tsne")


def test_tsne_keeps_separated_clusters_apart():
    x, y = _blobs(n_per=10)
    e = em.embed(x, "tsne", seed=0)
    assert em.silhouette(e, y, scale=False) > 0.5


def test_silhouette_is_high_for_clusters_and_nan_when_undefined():
    x, y = _blobs()
    assert em.silhouette(x, y) > 0.5
    assert em.silhouette(x, np.random.default_rng(0).permutation(y)) < 0.2
    assert np.isnan(em.silhouette(x, np.zeros(len(x))))
    assert np.isnan(em.silhouette(x, np.arange(len(x))))


def test_silhouettes_table_and_grid(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    x, y = _blobs()
    subj = np.array(["01", "02"] * 12)
    fe = {"labels": y, "subjects": subj, "f": x, "g": x[:, ::-1] + 1, "z": np.random.default_rng(0).normal(size=x.shape)}
    feats = {"CE": fe, "CE + HGR": fe}
    embs = em.embed_all(feats, "tsne", seed=0)
    assert set(embs) == {(c, k, "tsne") for c in feats for k in "fgz"}
    table = em.silhouettes(feats, embeddings=embs)
    assert list(table.columns[:5]) == ["condition", "feature", "clips", "emotion", "subject"]
    assert len(table) == 6 and {"tsne emotion", "tsne subject"} <= set(table.columns)
    assert table.set_index(["condition", "feature"]).loc[("CE", "f"), "emotion"] > 0.5
    fig = plots.plot_grid(feats, embs, "tsne", classes=["a", "b", "c"], scores=table)
    fig.savefig(tmp_path / "grid.png")
    # a panel per condition x feature x colouring (emotion, subject), each plotting its embedding's clips, one
    # group per emotion or subject, titled with that embedding's silhouette
    assert len(fig.axes) == 2 * 3 * 2
    by_rows = {tuple(sorted(map(tuple, np.round(e, 5)))): key for key, e in embs.items()}
    scores = table.set_index(["condition", "feature"])
    for ax in fig.axes:
        pts = np.concatenate([c.get_offsets() for c in ax.collections])
        c, k, _ = by_rows[tuple(sorted(map(tuple, np.round(pts, 5))))]  # exactly one embedding's points
        assert len(ax.collections) in (3, 2)  # the emotions a, b, c or the subjects 01, 02
        col = "emotion" if len(ax.collections) == 3 else "subject"
        assert ax.get_title().endswith(f"silhouette {scores.loc[(c, k), col]:.2f}"), (ax.get_title(), c, k, col)
