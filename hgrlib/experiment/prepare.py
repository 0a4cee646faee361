"""From a profile to numbers: make or index the data, fill the feature cache, make grids of configs, tabulate
(the grids are trained by hgrlib.experiment.launch.train_all; `run_grids` trains several, on one corpus draw or more, and
keeps every run's result, table row and training history together)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hgrlib.base.project import project_dir
from hgrlib.config import Config, DataConfig, FeatureConfig
from hgrlib.data.cache import FeatureCache, PrepReport, load_features, prepare
from hgrlib.data.datasets import classes_for, index_dataset, natural_key
from hgrlib.data.featureset import FeatureSet
from hgrlib.data.folds import FOLD_SPECS, checked_folds, fold_problems, fold_refusal, subject_folds
from hgrlib.data.records import ClipRecord, DataError, IndexReport
from hgrlib.data.synthetic import SyntheticConfig, generate_corpus
from hgrlib.experiment.profiles import Profile, get_profile, results_tag
from hgrlib.report.tables import Table, save_figure, save_table, write_table


@dataclass
class Setup:
    """What a notebook starts from: its profile (pointed at the dataset), the base config, λ and the seeds
    (the notebook's parameters, else the profile's), where its tables and figures go, and the features."""

    profile: Profile
    config: Config
    lam: float
    seeds: list[int]
    tag: str  # results/<tag>/ and figures/<tag>/
    out_res: str
    out_fig: str
    fs: FeatureSet | None
    jobs: int | None = None  # training runs side by side, for hgrlib.experiment.launch.train_all(jobs=...) (None: its default)

    def table(self, df: pd.DataFrame, name: str, title: str | None = None, show: bool = True) -> Table | tuple[Path, Path]:
        """`df` as results/<tag>/<name>.csv and .md (hgrlib.report.tables.write_table) and, if `show`, shown under `title`."""
        stem = f"{self.out_res}/{name}"
        return save_table(df, stem, title) if show else write_table(df, stem, title)

    def figure(self, fig, name: str) -> Path:
        """`fig` as figures/<tag>/<name> (a .png; hgrlib.report.tables.save_figure)."""
        return save_figure(fig, f"{self.out_fig}/{name}")


def setup(
    profile: str,
    dataset: str,
    root: str | None,
    classes: int,
    cache_dir: str = "cache",
    results_dir: str = "results",
    figures_dir: str = "figures",
    lam: float | None = None,
    seeds: list[int] | None = None,
    load: bool = True,
    folds: str = "shipped",
    jobs: int | None = None,
) -> Setup:
    """Every notebook's first cell: work from the project's folder (so relative paths mean the same in
    JupyterLab and under papermill), the profile on the subject folds `folds` (DataConfig.folds), the output
    folders, and (if `load`) the cached features. `jobs` (the notebook's parameter, run_all.sh -j; 0: one per
    CPU core) is kept as `Setup.jobs`, which the notebook hands to hgrlib.experiment.launch.train_all(jobs=...)."""
    os.chdir(project_dir())
    P = get_profile(profile, dataset, root, classes, folds)
    cfg = P.config
    tag = results_tag(cfg.data, profile)
    fs = load_featureset(cfg.data, cfg.features, cache_dir) if load else None
    return Setup(
        P,
        cfg,
        P.lam if lam is None else lam,
        list(P.seeds if seeds is None else seeds),
        tag,
        f"{results_dir}/{tag}",
        f"{figures_dir}/{tag}",
        fs,
        None if jobs is None else max(0, jobs),
    )


def grid(cfg: Config, conditions: dict[str, dict], seeds, fs: FeatureSet, runs=None) -> tuple[list[Config], list[str]]:
    """Configs and their condition names: each condition (name → Config.with_ sections) on `runs`
    (default `fold_seed_runs`: every fold × seed, so conditions share their (fold, seed) pairs)."""
    cfgs, names = [], []
    for name, change in conditions.items():
        made = (runs or fold_seed_runs)(cfg.with_(**change), seeds, fs)
        cfgs += made
        names += [name] * len(made)
    return cfgs, names


@dataclass(frozen=True)
class Corpus:
    """A corpus draw to train on: its label in run tables (hgrlib.experiment.profiles.corpus_label), base config and features."""

    label: str
    config: Config
    fs: FeatureSet


def histories_by_condition(results: list[dict], names: list[str]) -> dict[str, list[list[dict]]]:
    """condition → the training history (one dict per epoch) of each of its runs: `names[i]` is the condition of
    `results[i]`; conditions in the order they first appear, each one's runs in the order of `results`."""
    if len(results) != len(names):
        raise ValueError(f"{len(results)} results for {len(names)} condition names")
    out: dict[str, list[list[dict]]] = {}
    for r, n in zip(results, names):
        out.setdefault(n, []).append(r["history"])
    return out


@dataclass
class Trained:
    """Every run of some grids (`run_grids`): `results` (one per run, in training order) and `runs`, one row per
    run aligned with `results`: `corpus` (its Corpus.label), then results_frame's columns with `condition`.
    Select by condition names (None: all) and corpus label (None: every corpus); selections keep the run order."""

    results: list[dict]
    runs: pd.DataFrame

    def mask(self, conditions=None, corpus: str | None = None) -> np.ndarray:
        keep = np.ones(len(self.runs), dtype=bool)
        if conditions is not None:
            keep &= self.runs["condition"].isin(list(conditions)).to_numpy()
        if corpus is not None:
            keep &= (self.runs["corpus"] == corpus).to_numpy()
        return keep

    def frame(self, conditions=None, corpus: str | None = None) -> pd.DataFrame:
        """The selected rows of `runs`, numbered from 0."""
        return self.runs[self.mask(conditions, corpus)].reset_index(drop=True)

    def results_of(self, conditions=None, corpus: str | None = None) -> list[dict]:
        """The selected results."""
        return [r for r, k in zip(self.results, self.mask(conditions, corpus)) if k]

    def histories(self, conditions=None, corpus: str | None = None) -> dict[str, list[list[dict]]]:
        """condition → the training histories of its selected runs (histories_by_condition)."""
        keep = self.mask(conditions, corpus)
        return histories_by_condition(self.results_of(conditions, corpus), list(self.runs.loc[keep, "condition"]))


def run_grids(
    grids: list[tuple[dict[str, dict], Corpus]], seeds, runs_dir: str = "runs", jobs: int | None = None, progress: bool = True
) -> Trained:
    """Train (or read back) each (conditions, corpus) of `grids`, in the order given: the `grid` of those conditions
    on the corpus (every fold × seed) as one hgrlib.experiment.launch.train_all call, as a notebook would one by one (runs
    trained in one stack come from one call, so the calls are kept apart). A condition may be in several grids,
    on different corpora; one on the same corpus twice is refused (ValueError)."""
    from hgrlib.experiment.launch import train_all

    seen: set[tuple[str, str]] = set()
    for conditions, corpus in grids:
        twice = [n for n in conditions if (corpus.label, n) in seen]
        if twice:
            raise ValueError(f"condition(s) {', '.join(twice)} on corpus {corpus.label!r} in more than one grid")
        seen |= {(corpus.label, n) for n in conditions}
    results, names, labels = [], [], []
    for conditions, corpus in grids:
        cfgs, made = grid(corpus.config, conditions, seeds, corpus.fs)
        results += train_all(cfgs, corpus.fs, runs_dir, progress, jobs)
        names += made
        labels += [corpus.label] * len(made)
    runs = results_frame(results, condition=names)
    runs.insert(0, "corpus", labels)
    return Trained(results, runs)


def prepare_data(
    data: DataConfig,
    features: FeatureConfig,
    cache_dir: str = "cache",
    synthetic: SyntheticConfig | None = None,
    workers: int = 2,
    progress: bool = True,
) -> tuple[IndexReport, PrepReport]:
    """Generate the synthetic corpus if that is the dataset (resumable), index the clips, fill the feature cache."""
    if data.dataset == "synthetic":
        made = generate_corpus(data.root, synthetic or SyntheticConfig(), workers=workers, progress=progress)
    elif not Path(data.root).exists():
        raise DataError(f"{data.root}: dataset folder not found (dataset={data.dataset!r}); give the path where it lies on your disk")
    records, index_report = index_dataset(data.dataset, data.root, classes=data.classes)
    cov = Coverage(records, data)
    # a real corpus: clips per subject and class and each fold's state; the synthetic one is balanced by design,
    # one line with what generating it did (and any file it had to regenerate below)
    if data.dataset == "synthetic":
        print(
            f"{cov.summary()}; {made.generated} files generated, {made.verified} verified by sha256",
            *made.summary().splitlines()[1:],
            sep="\n",
        )
    else:
        print(cov.table())
    if cov.refusal():
        print(f"note: training on these clips would be refused: {cov.refusal()}")
    cache = FeatureCache(cache_dir, data.dataset, features, data.root)
    return index_report, prepare(records, cache, workers=workers, progress=progress)


class Coverage:
    """The clips present against the folds a run would use: clips per subject and class, the subjects
    the shipped folds list that are missing, and which folds are complete or cannot be trained."""

    def __init__(self, records: list[ClipRecord], data: DataConfig, n_folds: int | None = None):
        self.data, self.records = data, records
        self.classes = classes_for(data.dataset, data.classes)
        self.subjects = [r.subject for r in records]
        self.labels = [r.emotion for r in records]
        self.present = sorted(set(self.subjects), key=natural_key)
        spec = FOLD_SPECS.get(data.dataset)
        self.shipped = spec is not None and data.folds == "shipped"
        self.missing = [s for s in spec["subjects"] if s not in set(self.present)] if self.shipped else []
        self.empty_classes = [c for c in self.classes if c not in set(self.labels)]
        # folds made from the subjects depend on train.n_folds: listed only when it is given
        self.folds = subject_folds(data.dataset, self.subjects, n_folds or 0, data.folds) if self.shipped or n_folds else []
        self.problems = fold_problems(data.dataset, self.subjects, self.labels, self.folds)

    def which(self) -> str:
        if self.shipped:
            return f"shipped folds (hgrlib/data/shipped_folds/{self.data.dataset}.json)"
        why = "folds=present" if self.data.dataset in FOLD_SPECS else "no shipped folds"
        return f"folds made from the {len(self.present)} subjects present ({why})"

    def incomplete(self) -> list[int]:
        return [k for k, f in enumerate(self.folds) if any(s not in set(self.present) for s in f)]

    def refusal(self) -> str:
        """The one-line message of a refusal (empty when nothing is refused)."""
        d = self.data
        return fold_refusal(d.dataset, self.subjects, self.labels, self.folds, range(len(self.folds)), self.classes, d.folds)

    def summary(self) -> str:
        """One line: clips, subjects, classes, and the folds' state."""
        head = (
            f"{self.data.dataset} at {self.data.root}: {len(self.records)} clips, {len(self.present)} subjects, "
            f"{len(self.classes) - len(self.empty_classes)} of {len(self.classes)} classes"
        )
        if self.shipped:
            inc = self.incomplete()
            state = (
                f"all {len(self.folds)} shipped folds complete"
                if not inc
                else f"{len(self.folds) - len(inc)} of {len(self.folds)} shipped folds complete "
                f"(missing subjects {', '.join(self.missing)})"
            )
        else:
            state = self.which() + (f": {len(self.folds)} folds" if self.folds else "")
        return f"{head}; {state}"

    def table(self) -> str:
        """Clips per subject and class, and each fold with its state (what hgrlib prep and notebook 01 print)."""
        counts = pd.crosstab(pd.Series(self.subjects, name="subject"), pd.Series(self.labels, name=""))
        counts = counts.reindex(index=self.present, columns=list(self.classes), fill_value=0)
        counts["clips"] = counts.sum(axis=1)
        counts.loc["all"] = counts.sum(axis=0)
        lines = [f"{self.summary()}", "clips per subject and class:", counts.to_string()]
        if self.missing:
            n = len(FOLD_SPECS[self.data.dataset]["subjects"])
            lines.append(f"missing: {len(self.missing)} of the {n} subjects of the shipped folds: {', '.join(self.missing)}")
        if self.folds:
            lines.append(f"{self.which()}; fold k is a run's test part, fold k+1 its validation part:")
        for k, f in enumerate(self.folds):
            gone = [s for s in f if s not in set(self.present)]
            state = "complete" if not gone else f"missing {', '.join(gone)}"
            if k in self.problems:
                state += f"; cannot be trained: {self.problems[k]}"
            lines.append(f"  fold {k}: {', '.join(f)} ({state})")
        return "\n".join(lines)


def check_corpus(data: DataConfig, n_folds: int) -> Coverage:
    """Index a real dataset and check it against the folds its runs use (before any notebook starts):
    a DataError with a one-line cause if it cannot be read, a class has no clip, or a fold cannot be trained."""
    if not Path(data.root).exists():
        raise DataError(f"{data.root}: dataset folder not found (dataset={data.dataset!r}); give the path where it lies on your disk")
    records, _ = index_dataset(data.dataset, data.root, classes=data.classes)
    cov = Coverage(records, data, n_folds)
    if cov.refusal():
        raise DataError(cov.refusal())
    return cov


def load_featureset(data: DataConfig, features: FeatureConfig, cache_dir: str = "cache") -> FeatureSet:
    """The cached features of every indexed clip that preparation did not skip."""
    records, _ = index_dataset(data.dataset, data.root, classes=data.classes)
    classes = classes_for(data.dataset, data.classes)
    cache = FeatureCache(cache_dir, data.dataset, features, data.root)
    kept, audio, faces = load_features(records, cache)
    return FeatureSet(
        clip_ids=[r.clip_id for r in kept],
        subjects=[r.subject for r in kept],
        labels=np.array([classes.index(r.emotion) for r in kept]),
        classes=classes,
        audio=audio,
        faces=faces,
        dataset=data.dataset,
        feature_key=cache.root.name,
    )


def _checked_folds(cfg: Config, fs: FeatureSet, used) -> int:
    """The number of subject folds of cfg's runs on fs, after refusing (data.folds.checked_folds) runs on the
    folds `used` (a function of that number) that cannot be trained."""
    labels = [fs.classes[y] for y in fs.labels]
    return len(checked_folds(fs.dataset, fs.subjects, labels, cfg.train.n_folds, used, cfg.data.folds, fs.classes))


def seeded_runs(cfg: Config, seeds: tuple[int, ...] | list[int], fs: FeatureSet) -> list[Config]:
    """One config per seed; run i uses seed i on subject fold i mod (number of folds): spread covers seeds and folds."""
    n_folds = _checked_folds(cfg, fs, lambda n: [i % n for i in range(len(seeds))])
    return [cfg.with_(train={"seed": int(s), "fold": i % n_folds}) for i, s in enumerate(seeds)]


def fold_seed_runs(cfg: Config, seeds: tuple[int, ...] | list[int], fs: FeatureSet) -> list[Config]:
    """One config per (fold, seed): every subject fold tested with every seed, folds outer. Conditions made
    with it share their (fold, seed) pairs, so they can be compared paired (hgrlib.experiment.claims)."""
    n_folds = _checked_folds(cfg, fs, range)
    return [cfg.with_(train={"seed": int(s), "fold": f}) for f in range(n_folds) for s in seeds]


def results_frame(results: list[dict], **labels: list) -> pd.DataFrame:
    """One row per run: its config's varied fields, any extra per-run labels, and its test metrics."""
    rows = []
    for i, r in enumerate(results):
        c = r["config"]
        row = {
            "modalities": c["model"]["modalities"],
            "lam": c["loss"]["lam"],
            "corr": c["loss"]["corr"],
            "w_ce": c["loss"]["w_ce"],
            "protocol": c["train"]["protocol"],
            "labeled_frac": c["train"]["labeled_frac"],
            "use_unlabeled": c["train"]["use_unlabeled"],
            "seed": c["train"]["seed"],
            "fold": c["train"]["fold"],
        }
        row |= {k: v[i] for k, v in labels.items()}
        row |= {k: r["test"][k] for k in ("acc", "uar", "seg_acc", "seg_uar", "clip_acc", "clip_uar")}
        row["val_uar"] = r["best_val_uar"]
        row["n_train_segments"] = r["n_train_segments"]
        row["steps"] = r["steps"]
        row["nonfinite_steps"] = sum(h.get("nonfinite_steps", 0) for h in r["history"])
        row["seconds"] = r["seconds"]
        rows.append(row)
    return pd.DataFrame(rows)


def run_features(result: dict) -> dict[str, np.ndarray]:
    """The clip-level features a finished run saved: clip_ids, part (train/val/test), labels, subjects, f, g, z, probs."""
    with np.load(Path(result["run_dir"]) / "features.npz", allow_pickle=False) as z:
        return {k: z[k] for k in z.files}
