"""2-D pictures of learned features (notebook 06): UMAP and t-SNE, backed by silhouette scores.

`embed` maps features to 2-D deterministically for a seed, shrinking UMAP's n_neighbors and t-SNE's
perplexity when there are few points (so the smoke profile's dozen test clips work).
`silhouettes` scores how well the features (not their pictures) separate emotions and subjects.
Inputs are standardised per dimension first, so one loud dimension does not dominate distances.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

METHODS = ("umap", "tsne")


def standardize(x: np.ndarray, drop_below: float | None = None) -> np.ndarray:
    """Zero mean, unit variance per column over all rows; constant columns are left at zero.

    With `drop_below`, columns whose std is below `drop_below` times the largest (e.g. ReLU units dead on
    nearly every clip) are dropped instead: scaled by their tiny std, the one clip where such a unit
    fires would dominate a linear probe (stability.probe_score).
    """
    x = np.asarray(x, dtype=np.float64)
    sd = x.std(0)
    if drop_below is not None:
        keep = sd > drop_below * max(float(sd.max(initial=0.0)), 1e-300)
        if not keep.any():
            return np.zeros((len(x), 1))
        x, sd = x[:, keep], sd[keep]
    return (x - x.mean(0)) / np.where(sd > 0, sd, 1.0)


_UMAP_CACHED = False


def _umap():
    """umap, with numba's on-disk cache turned on for its jitted functions (umap-learn does not ask for it).

    Compiling them takes 15-50 s in every new process (most of a smoke notebook's time); with the
    cache only the first process ever pays. Best effort: where caching is impossible, nothing changes.
    """
    global _UMAP_CACHED
    import umap
    import umap.umap_

    if not _UMAP_CACHED:
        _UMAP_CACHED = True
        try:
            import importlib

            from numba.core.registry import CPUDispatcher

            for name in ("umap.umap_", "umap.layouts", "umap.utils", "umap.distances", "umap.sparse", "umap.spectral"):
                mod = importlib.import_module(name)
                for fn in list(vars(mod).values()):
                    if isinstance(fn, CPUDispatcher) and type(fn._cache).__name__ == "NullCache":
                        try:
                            fn.enable_caching()
                        except Exception:  # noqa: BLE001 - e.g. no writable cache location
                            pass
        except Exception:  # noqa: BLE001 - numba internals moved: run uncached
            pass
    return umap


def embed(
    x: np.ndarray, method: str = "umap", seed: int = 0, n_neighbors: int = 15, perplexity: float = 30.0, scale: bool = True
) -> np.ndarray:
    """(n, 2) embedding of the rows of `x` with UMAP or t-SNE; the same seed gives the same result.

    n_neighbors (UMAP) is capped at n - 1 and perplexity (t-SNE) at (n - 1) / 3, both at least 2.
    """
    x = standardize(x) if scale else np.asarray(x, dtype=np.float64)
    n = len(x)
    if n < 3:
        raise ValueError(f"need at least 3 points to embed, got {n}")
    if method == "umap":
        import warnings

        umap = _umap()
        k = int(max(2, min(n_neighbors, n - 1)))
        # spectral initialisation needs a well-connected graph; with very few points use PCA instead
        init = "spectral" if n > 4 * k else "pca"
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*n_jobs value.*")  # random_state forces one thread
            warnings.filterwarnings("ignore", message=".*Graph is not fully connected.*")
            model = umap.UMAP(n_components=2, n_neighbors=k, min_dist=0.3, init=init, random_state=seed)
            out = model.fit_transform(x)
    elif method == "tsne":
        from sklearn.manifold import TSNE

        p = float(max(2.0, min(perplexity, (n - 1) / 3)))
        p = min(p, n - 1.0)
        from threadpoolctl import threadpool_limits

        # one thread: the inputs are small, and OpenMP threads spinning on a busy shared CPU cost 10-100x
        with threadpool_limits(limits=1):
            out = TSNE(n_components=2, perplexity=p, init="pca", learning_rate="auto", random_state=seed).fit_transform(x)
    else:
        raise ValueError(f"unknown method {method!r}; choose from {METHODS}")
    return np.asarray(out, dtype=np.float64)


def silhouette(x: np.ndarray, labels, scale: bool = True) -> float:
    """Silhouette score of `labels` in the (standardised) feature space; NaN when undefined (1 or n labels)."""
    from sklearn.metrics import silhouette_score

    labels = np.asarray(labels).astype(str)
    k = len(np.unique(labels))
    if k < 2 or k >= len(labels):
        return float("nan")
    return float(silhouette_score(standardize(x) if scale else x, labels))


def silhouettes(feats_by_condition: dict, keys=("f", "g", "z"), classes=None, embeddings: dict | None = None) -> pd.DataFrame:
    """Silhouette by emotion and by subject of each condition's features, one row per condition × feature.

    `feats_by_condition` maps a condition to a features dict (labels, subjects and arrays under `keys`),
    already restricted to the clips to show. With `embeddings` ({(condition, key, method): (n, 2)})
    the silhouettes of the 2-D pictures are added as columns `<method> emotion` / `<method> subject`.
    """
    rows = []
    for cond, fe in feats_by_condition.items():
        for key in keys:
            row = {
                "condition": cond,
                "feature": key,
                "clips": len(fe[key]),
                "emotion": silhouette(fe[key], fe["labels"]),
                "subject": silhouette(fe[key], fe["subjects"]),
            }
            for (c, k, method), e in (embeddings or {}).items():
                if c == cond and k == key:
                    row[f"{method} emotion"] = silhouette(e, fe["labels"], scale=False)
                    row[f"{method} subject"] = silhouette(e, fe["subjects"], scale=False)
            rows.append(row)
    return pd.DataFrame(rows)


def embed_all(feats_by_condition: dict, method: str, keys=("f", "g", "z"), seed: int = 0, **kw) -> dict:
    """{(condition, key, method): (n, 2)} for every condition and feature."""
    return {(c, k, method): embed(fe[k], method, seed=seed, **kw) for c, fe in feats_by_condition.items() for k in keys}
