"""From a profile to numbers: make or index the data, fill the feature cache, make grids of configs, tabulate
(the grids are trained by hgrlib.launch.run_all)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from hgrlib.config import Config, DataConfig, FeatureConfig
from hgrlib.data.cache import FeatureCache, PrepReport, load_features, prepare
from hgrlib.data.datasets import classes_for, index_dataset
from hgrlib.data.records import DataError, IndexReport
from hgrlib.data.splits import subject_folds
from hgrlib.data.synthetic import SyntheticConfig, generate_corpus
from hgrlib.train import FeatureSet


def prepare_data(
    data: DataConfig, features: FeatureConfig, cache_dir: str = "cache", synthetic: SyntheticConfig | None = None,
    workers: int = 2, progress: bool = True,
) -> tuple[IndexReport, PrepReport]:
    """Generate the synthetic corpus if that is the dataset (resumable), index the clips, fill the feature cache."""
    if data.dataset == "synthetic":
        report = generate_corpus(data.root, synthetic or SyntheticConfig(), workers=workers, progress=progress)
        print(report.summary())
    elif not Path(data.root).exists():
        raise DataError(f"{data.root}: dataset folder not found (dataset={data.dataset!r}); give the path where it lies on your disk")
    records, index_report = index_dataset(data.dataset, data.root, classes=data.classes)
    cache = FeatureCache(cache_dir, data.dataset, features, data.root)
    return index_report, prepare(records, cache, workers=workers, progress=progress)


def load_featureset(data: DataConfig, features: FeatureConfig, cache_dir: str = "cache") -> FeatureSet:
    """The cached features of every indexed clip that preparation did not skip."""
    records, _ = index_dataset(data.dataset, data.root, classes=data.classes)
    classes = classes_for(data.dataset, data.classes)
    cache = FeatureCache(cache_dir, data.dataset, features, data.root)
    kept, audio, faces = load_features(records, cache)
    return FeatureSet(
        clip_ids=[r.clip_id for r in kept], subjects=[r.subject for r in kept],
        labels=np.array([classes.index(r.emotion) for r in kept]), classes=classes,
        audio=audio, faces=faces, dataset=data.dataset, feature_key=cache.root.name,
    )


def seeded_runs(cfg: Config, seeds: tuple[int, ...] | list[int], fs: FeatureSet) -> list[Config]:
    """One config per seed; run i uses seed i on subject fold i mod (number of folds): spread covers seeds and folds."""
    n_folds = len(subject_folds(fs.dataset, fs.subjects, cfg.train.n_folds))
    return [cfg.with_(train={"seed": int(s), "fold": i % n_folds}) for i, s in enumerate(seeds)]


def fold_seed_runs(cfg: Config, seeds: tuple[int, ...] | list[int], fs: FeatureSet) -> list[Config]:
    """One config per (fold, seed): every subject fold tested with every seed, folds outer. Conditions made
    with it share their (fold, seed) pairs, so they can be compared paired (hgrlib.claims)."""
    n_folds = len(subject_folds(fs.dataset, fs.subjects, cfg.train.n_folds))
    return [cfg.with_(train={"seed": int(s), "fold": f}) for f in range(n_folds) for s in seeds]


def results_frame(results: list[dict], **labels: list) -> pd.DataFrame:
    """One row per run: its config's varied fields, any extra per-run labels, and its test metrics."""
    rows = []
    for i, r in enumerate(results):
        c = r["config"]
        row = {"modalities": c["model"]["modalities"], "lam": c["loss"]["lam"], "corr": c["loss"]["corr"],
               "w_ce": c["loss"]["w_ce"], "protocol": c["train"]["protocol"], "labeled_frac": c["train"]["labeled_frac"],
               "use_unlabeled": c["train"]["use_unlabeled"], "seed": c["train"]["seed"], "fold": c["train"]["fold"]}
        row |= {k: v[i] for k, v in labels.items()}
        row |= {k: r["test"][k] for k in ("acc", "uar", "seg_acc", "seg_uar", "clip_acc", "clip_uar")}
        row["val_uar"] = r["best_val_uar"]
        row["n_train_segments"] = r["n_train_segments"]
        row["steps"] = r["steps"]
        row["nonfinite_steps"] = sum(h.get("nonfinite_steps", 0) for h in r["history"])
        row["seconds"] = r["seconds"]
        rows.append(row)
    return pd.DataFrame(rows)


def mean_std(df: pd.DataFrame, by: list[str], metrics: tuple[str, ...] = ("acc", "uar")) -> pd.DataFrame:
    """Mean and standard deviation (ddof=1) of `metrics` over runs, per group, plus 'mean ± std' text columns (in %)."""
    g = df.groupby(by, sort=False)
    out = g.size().rename("runs").to_frame()
    for m in metrics:
        out[f"{m}_mean"] = g[m].mean()
        out[f"{m}_std"] = g[m].std(ddof=1).fillna(0.0)
        out[m] = [f"{100 * a:.1f} ± {100 * s:.1f}" if np.isfinite(a) else "n/a" for a, s in zip(out[f"{m}_mean"], out[f"{m}_std"])]
    return out.reset_index()




def run_features(result: dict) -> dict[str, np.ndarray]:
    """The clip-level features a finished run saved: clip_ids, part (train/val/test), labels, subjects, f, g, z, probs."""
    with np.load(Path(result["run_dir"]) / "features.npz", allow_pickle=False) as z:
        return {k: z[k] for k in z.files}
