# %% [markdown]
# # 03 · Semi-supervised: do unlabeled clips help, and through S(f, g)?
#
# *Where things are.* This notebook's source is `notebooks/03_semi_supervised.ipynb` (no outputs; its text twin
# `notebooks/src/03_semi_supervised.py`). `./run_all.sh` executes it into `results/synthetic-default/03_semi_supervised.ipynb`, with
# every output shown (another dataset or profile: `results/<dataset>-<profile>/`); the tables it writes lie
# beside that copy (`03_*.csv`, `.md`) and its figures in `figures/synthetic-default/`. `results/README.md`
# lists them all.
#
# The paper's semi-supervised generalisation: the audio-visual term S(f(a), g(v)) of the joint loss
# needs no label, so unlabeled clips can still train the audio and visual networks towards their
# common information. Only a fraction of the training clips keep their labels (stratified by class,
# whole clips). Three conditions at each fraction, each over every subject fold × every seed:
#
# - **labeled only, matched steps (CE)**: the unlabeled clips are dropped; an epoch takes as many
#   optimiser steps as a pass over all training clips (cycling through the labeled ones, none dropped),
#   so it gets the same number of updates as the two conditions below;
# - **labeled + unlabeled (CE, λ = 0)**: the same batches as the next condition, cross-entropy on their
#   labeled rows only, no correlation term: what seeing the unlabeled clips in a batch does by itself;
# - **labeled + unlabeled (CE + Soft-HGR)**: the paper's semi-supervised loss, S(f, g) on every row and
#   the label terms on the labeled ones.
#
# The claim "unlabeled clips help through S(f, g)" is the third against the second, paired over the
# same (fold, seed) pairs: the one thing that differs is the Soft-HGR terms. At a fraction of 1 nothing
# is unlabeled; the curves end at notebook 02's fusion runs (read back, not retrained).

# %% tags=["parameters"]
# Defaults. An executed copy ran with the values of the next cell ("# Parameters", injected by run_all.sh).
profile = "default"
dataset = "synthetic"
root = None
classes = 6
cache_dir = "cache"
runs_dir = "runs"
figures_dir = "figures"
results_dir = "results"
folds = "shipped"  # subject folds of ravdess/enterface/baum1s: shipped (hgrlib/splits) | present (made from the subjects on disk)
jobs = 1  # training runs side by side (0: one per CPU core; run_all.sh -j)
lam = None  # λ of the Soft-HGR terms (None: the profile's)
seeds = None  # None: the profile's
fractions = [0.1, 0.25]  # labeled fractions of the training clips (1.0 is added from notebook 02); each costs 3 conditions × every fold × seed

# %%
from hgrlib import plots
from hgrlib.experiment import fold_seed_runs, results_frame, setup
from hgrlib.launch import run_all
from hgrlib.report import mean_std, save_figure, save_table, write_table

S = setup(profile, dataset, root, classes, cache_dir, results_dir, figures_dir, lam, seeds, folds=folds, jobs=jobs)
P, cfg, fs, lam, seeds, tag, out_res, out_fig = S.profile, S.config, S.fs, S.lam, S.seeds, S.tag, S.out_res, S.out_fig

# %%
conditions = {
    "labeled only, matched steps (CE)": {"loss": {"lam": 0.0}, "train": {"use_unlabeled": False, "match_steps": True}},
    "labeled + unlabeled (CE, λ=0)": {"loss": {"lam": 0.0}, "train": {"use_unlabeled": True}},
    "labeled + unlabeled (CE + Soft-HGR)": {"loss": {"lam": lam}, "train": {"use_unlabeled": True}},
}
cfgs, names = [], []
for frac in [*fractions, 1.0]:
    for name, change in conditions.items():
        # with every clip labeled the three reduce to notebook 02's fusion runs (same configs: read back)
        loss, train = (change["loss"], change["train"] | {"labeled_frac": frac}) if frac < 1 else (change["loss"], {})
        for c in fold_seed_runs(cfg.with_(model={"modalities": "av"}, loss=loss, train=train), seeds, fs):
            cfgs.append(c)
            names.append(name)
results = run_all(cfgs, fs, runs_dir)
runs = results_frame(results, condition=names)
table = mean_std(runs, ["condition", "labeled_frac"])
g = runs.groupby(["condition", "labeled_frac"], sort=False)
table["steps"] = g["steps"].first().values  # optimiser steps per run: equal across conditions at a fraction
table["nonfinite_steps"] = g["nonfinite_steps"].sum().values
cols = ["condition", "labeled_frac", "runs", "acc", "uar", "steps", "nonfinite_steps"]
write_table(runs, f"{out_res}/03_semi_supervised_runs")
save_table(table[cols], f"{out_res}/03_semi_supervised_table",
           title=f"Test accuracy / UAR (%) against the labeled fraction, mean ± std over every fold × seed ({tag}, λ={lam})")

# %%
fig = plots.curves_with_errors(table, x="labeled_frac", group="condition", metric="acc", xlabel="labeled training clips (log scale)", percent_x=True)
save_figure(fig, f"{out_fig}/03_semi_supervised.png");

# %% [markdown]
# The steps column shows the control at work: at every fraction the three conditions take the same
# number of optimiser steps. The gap between the two **labeled + unlabeled** curves is what S(f, g)
# makes of the unlabeled clips; the gap between **labeled only** and **labeled + unlabeled (CE, λ = 0)**
# is what merely batching with unlabeled clips does. Whether a gap is larger than the spread over folds
# and seeds is decided paired in the generated claims table (`claims.md`, and the README).

# %%
from IPython.display import Markdown

from hgrlib.claims import findings

Markdown(findings(out_res, "03_"))
