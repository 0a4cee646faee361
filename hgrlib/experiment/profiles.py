"""Run profiles: how big each experiment is. `smoke` for tests, `default` for a 2-core CPU, `paper` for a GPU."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from hgrlib.config import Config, DataConfig, FeatureConfig, LossConfig, ModelConfig, TrainConfig
from hgrlib.data.folds import FOLD_SPECS
from hgrlib.data.synthetic import SyntheticConfig


@dataclass(frozen=True)
class Profile:
    name: str
    config: Config  # the base experiment; notebooks vary loss, modalities, seeds, folds
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    seeds: tuple[int, ...] = (0, 1, 2)  # claims: every subject fold x every seed; exploratory grids: seed i on fold i % n_folds
    lam: float = 0.1  # λ of the joint loss when Soft-HGR is on
    # epochs of notebooks 03, 04 and 07 (None: config.train.epochs): a shorter schedule where the budget needs one;
    # their comparisons are at equal epochs, before convergence, and say so
    explore_epochs: int | None = None

    def explore(self, cfg: Config) -> Config:
        """`cfg` on the exploratory schedule (explore_epochs), for notebooks 03, 04 and 07."""
        return cfg.with_(train={"epochs": self.explore_epochs}) if self.explore_epochs else cfg


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        "smoke",
        Config(
            DataConfig(root="data/synthetic-smoke"),
            FeatureConfig(n_segments=3, face_size=32),
            ModelConfig(dim=16, width=8),
            LossConfig(),
            TrainConfig(epochs=2, batch_size=32, n_folds=3, threads=1),
        ),
        SyntheticConfig(n_subjects=6, clips_per_emotion=1, duration=1.2),
        seeds=(0, 1),
    ),
    "default": Profile(
        "default",
        # one torch thread per run: the numbers do not depend on the machine's cores or on -j, and
        # on a 2-core CPU two one-thread runs side by side (-j 2) beat one two-thread run (benchmarks/).
        # 12 epochs: notebook 02's runs level off there (its convergence table); at 6 the fusion with CE alone
        # is still climbing. 2 seeds: seeds are not units (corpus draws and subject folds are), and the
        # 45-minute budget goes to epochs; notebooks 03, 04 and 07 keep 6 epochs to fit it.
        Config(DataConfig(root="data/synthetic"), FeatureConfig(), ModelConfig(), LossConfig(), TrainConfig(epochs=12, threads=1)),
        SyntheticConfig(),
        seeds=(0, 1),
        explore_epochs=6,
    ),
    "paper": Profile(
        "paper",
        Config(
            DataConfig(root="data/synthetic-paper"),
            FeatureConfig(n_segments=30, deltas=True, frames_per_segment=4, face_size=64),
            ModelConfig(dim=128, width=32),
            LossConfig(),
            TrainConfig(epochs=40, batch_size=128, lr=1e-3, n_folds=6),
        ),
        SyntheticConfig(clips_per_emotion=8, duration=3.0),
        seeds=(0, 1, 2, 3, 4),
    ),
}


def get_profile(name: str, dataset: str = "synthetic", root: str | None = None, classes: int = 6, folds: str = "shipped") -> Profile:
    """A profile, pointed at a real dataset (`dataset`, `root`) instead of the synthetic corpus if asked.

    `folds` (DataConfig.folds: "shipped" | "present"; run_all.sh --folds gives it to the notebooks as their
    parameter `folds`, hgrlib prep/train take $HGRLIB_FOLDS). It only applies to datasets with shipped folds: the
    synthetic corpus and a manifest always get folds made from their subjects (and keep folds="shipped",
    so their runs' keys do not change with it)."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose from {sorted(PROFILES)}")
    p = PROFILES[name]
    folds = folds if dataset in FOLD_SPECS else "shipped"
    if dataset == "synthetic" and root is None:
        return p
    if dataset != "synthetic" and not root:
        raise ValueError(f"dataset {dataset!r} needs root= (the folder where it lies on your disk)")
    data = DataConfig(dataset=dataset, root=root or p.config.data.root, classes=classes, folds=folds)
    return replace(p, config=replace(p.config, data=data))


def results_tag(data: DataConfig, profile: str) -> str:
    """The folder name under results/ and figures/: <dataset>-<profile>, and "-folds-present" when the folds
    were made from the subjects present, so those results never mix with the published folds' (and every
    table title, which names the tag, says so)."""
    return f"{data.dataset}-{profile}" + ("-folds-present" if data.folds == "present" else "")


def corpus_label(p: Profile) -> str:
    """Which corpus a profile's runs were trained on, for run tables that pool corpus draws: the synthetic corpus by
    its generator seed (each draw is an independent unit of a claim), a real dataset by its name."""
    return f"synthetic seed {p.synthetic.seed}" if p.config.data.dataset == "synthetic" else p.config.data.dataset


def with_corpus_seed(p: Profile, seed: int) -> Profile:
    """The profile on another draw of the synthetic corpus (same design, generator seeded by `seed`), in its own folder."""
    if p.config.data.dataset != "synthetic":
        raise ValueError(f"a corpus seed applies to the synthetic corpus, not to dataset {p.config.data.dataset!r}")
    if seed == p.synthetic.seed:
        return p
    data = replace(p.config.data, root=f"{p.config.data.root}-seed{seed}")
    return replace(p, config=replace(p.config, data=data), synthetic=replace(p.synthetic, seed=seed))
