# %% [markdown]
# # 03 · Semi-supervised: do unlabeled clips help?
#
# The paper's semi-supervised generalisation: the audio-visual term S(f(a), g(v)) of the joint loss
# needs no label, so unlabeled clips can still train the audio and visual networks towards their
# common information. Only a fraction of the training clips keep their labels (stratified by class,
# whole clips); the rest are either dropped (**labeled only**) or kept without labels (**labeled +
# unlabeled**, where they contribute S(f, g) only). Cross-entropy alone on the labeled clips is the
# reference. Every point is mean ± std over seeds and subject-independent folds.

# %% tags=["parameters"]
profile = "default"
dataset = "synthetic"
root = None
classes = 6
cache_dir = "cache"
runs_dir = "runs"
figures_dir = "figures"
results_dir = "results"
lam = None  # λ of the Soft-HGR terms (None: the profile's)
seeds = None  # None: the profile's
fractions = [0.1, 0.25, 0.5, 1.0]  # labeled fraction of the training clips

# %%
import os

from hgrlib.report import project_dir

os.chdir(project_dir())
from hgrlib import plots
from hgrlib.experiment import load_featureset, mean_std, results_frame, run_all, seeded_runs
from hgrlib.profiles import get_profile
from hgrlib.report import save_figure, write_table

P = get_profile(profile, dataset, root, classes)
cfg = P.config
lam = P.lam if lam is None else lam
seeds = P.seeds if seeds is None else seeds
tag = f"{cfg.data.dataset}-{profile}"
out_res, out_fig = f"{results_dir}/{tag}", f"{figures_dir}/{tag}"
fs = load_featureset(cfg.data, cfg.features, cache_dir)

# %%
conditions = {
    "labeled only (CE)": {"loss": {"lam": 0.0}, "train": {"use_unlabeled": False}},
    "labeled only (CE + Soft-HGR)": {"loss": {"lam": lam}, "train": {"use_unlabeled": False}},
    "labeled + unlabeled (CE + Soft-HGR)": {"loss": {"lam": lam}, "train": {"use_unlabeled": True}},
}
cfgs, names, fracs = [], [], []
for frac in fractions:
    for name, change in conditions.items():
        # with every clip labeled there is nothing unlabeled: one run serves both Soft-HGR conditions, and
        # the CE run is notebook 02's fusion (CE) run, read back rather than retrained
        train = change["train"] | {"labeled_frac": frac} | ({"use_unlabeled": True} if frac == 1.0 else {})
        for c in seeded_runs(cfg.with_(model={"modalities": "av"}, loss=change["loss"], train=train), seeds, fs):
            cfgs.append(c)
            names.append(name)
            fracs.append(frac)
results = run_all(cfgs, fs, runs_dir)
runs = results_frame(results, condition=names)
table = mean_std(runs, ["condition", "labeled_frac"])
write_table(runs, f"{out_res}/03_semi_supervised_runs")
write_table(table[["condition", "labeled_frac", "runs", "acc", "uar"]], f"{out_res}/03_semi_supervised_table",
            title=f"Test accuracy / UAR (%) against the labeled fraction ({tag}, λ={lam})")
table[["condition", "labeled_frac", "runs", "acc", "uar"]]

# %%
fig = plots.curves_with_errors(table, x="labeled_frac", group="condition", metric="acc", xlabel="labeled fraction of training clips")
save_figure(fig, f"{out_fig}/03_semi_supervised.png")

# %% [markdown]
# Where the **labeled + unlabeled** curve lies above **labeled only (CE + Soft-HGR)** at small labeled
# fractions, the label-free audio-visual term has turned unlabeled clips into useful training signal;
# at a fraction of 1 the curves meet by construction. The gap to plain cross-entropy at the same
# fraction is what the common-information terms add on the labeled clips themselves.
#
# One confound to keep in mind: every condition trains for the same number of epochs, so an epoch of
# **labeled + unlabeled** has as many optimiser steps as the full training set, while **labeled
# only** at a fraction p has about p times as many. Each labeled clip is seen equally often in both,
# but the shared encoders get more (label-free) updates with the unlabeled clips; part of the gap at
# small fractions may come from those extra steps rather than from the unlabeled data as such.
