# %% [markdown]
# # 02 · Supervised: does common information help?
#
# The paper's central experiment. Four models, each trained over several seeds on
# subject-independent folds (run *i* uses seed *i* on fold *i* mod the number of folds, so the spread
# covers both): audio only, visual only, the fusion network with cross-entropy, and the fusion network
# with cross-entropy plus the Soft-HGR terms among audio features f(a), visual features g(v) and the
# label embedding h(y):
#
# L = CE − λ · ( S(f, g) + S(f, h) + S(g, h) ).
#
# Scores are clip-level (segment probabilities averaged over the clip) on held-out subjects.

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
seeds = None  # list of seeds (None: the profile's)

# %%
import os

from hgrlib.report import project_dir

os.chdir(project_dir())
import numpy as np

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
    "audio only (CE)": {"model": {"modalities": "a"}, "loss": {"lam": 0.0}},
    "visual only (CE)": {"model": {"modalities": "v"}, "loss": {"lam": 0.0}},
    "fusion (CE)": {"model": {"modalities": "av"}, "loss": {"lam": 0.0}},
    "fusion (CE + Soft-HGR)": {"model": {"modalities": "av"}, "loss": {"lam": lam}},
}
cfgs, names = [], []
for name, change in conditions.items():
    for c in seeded_runs(cfg.with_(**change), seeds, fs):
        cfgs.append(c)
        names.append(name)
results = run_all(cfgs, fs, runs_dir)
runs = results_frame(results, condition=names)
table = mean_std(runs, ["condition"], metrics=("acc", "uar", "seg_acc"))
write_table(runs, f"{out_res}/02_supervised_runs")
write_table(table[["condition", "runs", "acc", "uar", "seg_acc"]], f"{out_res}/02_supervised_table",
            title=f"Test accuracy and UAR, % mean ± std over seeds/folds ({tag}, λ={lam})")
table[["condition", "runs", "acc", "uar", "seg_acc"]]

# %%
fig = plots.bar_with_errors(table, "condition", "acc")
save_figure(fig, f"{out_fig}/02_accuracy.png")

# %%
import matplotlib.pyplot as plt

fig, axes = plt.subplots(1, 2, figsize=(9.5, 4))
for ax, name in zip(axes, ["fusion (CE)", "fusion (CE + Soft-HGR)"]):
    cm = sum(np.array(r["test"]["confusion"]) for r, n in zip(results, names) if n == name)
    plots.confusion(cm, fs.classes, title=f"{name}, all runs", ax=ax)
fig.tight_layout()
save_figure(fig, f"{out_fig}/02_confusion.png")

# %%
histories = {n: [r["history"] for r, m in zip(results, names) if m == n] for n in conditions}
fig = plots.training_curves(histories)
save_figure(fig, f"{out_fig}/02_training_curves.png")

# %% [markdown]
# Read the table first: fusion should beat either modality alone (on the synthetic corpus, audio and
# video confuse different pairs of emotions), and the question of the paper is whether the Soft-HGR
# terms add to fusion with cross-entropy alone. The spread over seeds and folds says how much of a
# difference is noise. The confusion matrices show where the errors are.
