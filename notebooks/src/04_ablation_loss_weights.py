# %% [markdown]
# # 04 · Ablation over the loss weights, and what the objective learns without labels
#
# *Where things are.* This notebook's source is `notebooks/04_ablation_loss_weights.ipynb` (no outputs; its text twin
# `notebooks/src/04_ablation_loss_weights.py`). `./run_all.sh` executes it into `results/synthetic-default/04_ablation_loss_weights.ipynb`, with
# every output shown (another dataset or profile: `results/<dataset>-<profile>/`); the tables it writes lie
# beside that copy (`04_*.csv`, `.md`) and its figures in `figures/synthetic-default/`. `results/README.md`
# lists them all.
#
# L = w_ce · CE(fusion) + w_ce_uni · (CE(a) + CE(v)) − λ · (w_av·S(f, g) + w_ay·S(f, h) + w_vy·S(g, h)).
#
# Only the *ratios* of the weights matter here: the optimiser (AdamW) is invariant to a common scale
# of the loss, so (w_ce, λ) = (1, 0.1) and (2, 0.2) train the same model. The grid therefore fixes
# w_ce = 1 and varies λ (0 is cross-entropy only) and, at λ = 0 and the profile's λ, the weight
# w_ce_uni of the per-modality cross-entropy terms (left open by the paper). The grid and the pair table
# are **exploratory**: they carry no claim, so each cell has one run per seed, seed *i* on fold *i*
# (marked in their tables), to keep the CPU profile within its time budget.
#
# Two rows train **without cross-entropy** (w_ce = 0), over every fold × seed, and are scored by a
# **linear probe** (a logistic regression fit on the frozen clip features [f, g] of the training clips,
# tested on the held-out subjects):
#
# - **label-free: S(f, g) only**: the audio-visual term alone, no label anywhere in training;
# - **label pairs only: S(f, h) + S(g, h)**: supervised through the label embedding h(y).
#
# The paper's "common information" is what the audio and the video of a clip share, the quantity
# S(f, g) estimates; the label pairs make the features share information with the label instead. Only
# the first row says whether common information by itself yields emotion features.

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
folds = "shipped"  # subject folds of ravdess/enterface/baum1s: shipped (hgrlib/data/shipped_folds) | present (made from the subjects on disk)
jobs = 1  # training runs side by side (0: one per CPU core; run_all.sh -j)
seeds = None
w_ce_uni_grid = [0.0, 0.5]  # weight of the per-modality CE terms; 0.5 is tried at two λ values only
lam_grid = [0.0, 0.01, 0.1, 1.0]
lam = None  # λ for the pair ablation (None: the profile's)

# %%
from hgrlib.core.metrics import probe_split
from hgrlib.experiment.launch import train_all
from hgrlib.experiment.prepare import fold_seed_runs, results_frame, run_features, seeded_runs, setup
from hgrlib.report import plots
from hgrlib.report.tables import mean_std

S = setup(profile, dataset, root, classes, cache_dir, results_dir, figures_dir, lam, seeds, folds=folds, jobs=jobs)
cfg, fs, lam, seeds, tag = S.config, S.fs, S.lam, S.seeds, S.tag
cfg = S.profile.explore(cfg)

# %%
# the full λ sweep without per-modality CE; with it, λ = 0 and the profile's λ (a CPU-sized grid)
cells = [{"w_ce": 1.0, "w_ce_uni": u, "lam": l} for u in w_ce_uni_grid for l in (lam_grid if u == 0 else sorted({0.0, lam}))]
cfgs = [c for w in cells for c in seeded_runs(cfg.with_(model={"modalities": "av"}, loss=w), seeds, fs)]
results = train_all(cfgs, fs, runs_dir, jobs=S.jobs)
probes = [probe_split(run_features(r), ("f", "g"), len(fs.classes)) for r in results]
runs = results_frame(results, w_ce_uni=[r["config"]["loss"]["w_ce_uni"] for r in results],
                     probe_acc=[p["acc"] for p in probes], probe_uar=[p["uar"] for p in probes])
grid = mean_std(runs, ["w_ce", "w_ce_uni", "lam"], metrics=("acc", "probe_acc"))
grid["design"] = "exploratory: seed i on fold i"
S.table(runs, "04_ablation_runs", show=False)
S.table(grid[["w_ce", "w_ce_uni", "lam", "runs", "acc", "probe_acc", "design"]], "04_ablation_table",
           title=f"Classifier and linear-probe test accuracy (%) over loss weights, exploratory ({tag})")

# %%
no_ce = {
    "label-free: S(f, g) only": {"w_ce": 0.0, "lam": 1.0, "w_ay": 0.0, "w_vy": 0.0},
    "label pairs only: S(f, h) + S(g, h)": {"w_ce": 0.0, "lam": 1.0, "w_av": 0.0},
    "fusion (CE), for reference": {"lam": 0.0},  # notebook 03's runs at this schedule, read back
}
cfgs, names = [], []
for name, w in no_ce.items():
    for c in fold_seed_runs(cfg.with_(model={"modalities": "av"}, loss=w), seeds, fs):
        cfgs.append(c)
        names.append(name)
free = train_all(cfgs, fs, runs_dir, jobs=S.jobs)
probes = [probe_split(run_features(r), ("f", "g"), len(fs.classes)) for r in free]
free_runs = results_frame(free, condition=names, probe_acc=[p["acc"] for p in probes], probe_uar=[p["uar"] for p in probes])
free_table = mean_std(free_runs, ["condition"], metrics=("probe_acc", "probe_uar"))
free_table["chance"] = f"{100 / len(fs.classes):.1f}"
S.table(free_runs, "04_label_free_runs", show=False)
S.table(free_table[["condition", "runs", "probe_acc", "probe_uar", "chance"]], "04_label_free",
           title=f"Linear probe on [f, g] of models trained without cross-entropy, % mean ± std over every fold × seed ({tag})")

# %%
fig = plots.heatmaps({"fusion classifier": grid.pivot(index="w_ce_uni", columns="lam", values="acc_mean"),
                      "linear probe on [f, g]": grid.pivot(index="w_ce_uni", columns="lam", values="probe_acc_mean")},
                     title="test accuracy (%), w_ce = 1, exploratory (one run per seed)", cbar_label="test accuracy (%)")
S.figure(fig, "04_ablation_heatmap.png");

# %%
pairs = {"all three pairs": {}, "audio-visual pair only": {"w_ay": 0.0, "w_vy": 0.0}, "label pairs only": {"w_av": 0.0}}
cfgs, names = [], []
for name, w in pairs.items():
    for c in seeded_runs(cfg.with_(model={"modalities": "av"}, loss={"lam": lam} | w), seeds, fs):
        cfgs.append(c)
        names.append(name)
pair_runs = results_frame(train_all(cfgs, fs, runs_dir, jobs=S.jobs), pairs=names)
pair_table = mean_std(pair_runs, ["pairs"])
pair_table["design"] = "exploratory: seed i on fold i"
S.table(pair_table[["pairs", "runs", "acc", "uar", "design"]], "04_ablation_pairs",
           title=f"Which Soft-HGR pairs matter (λ={lam}, CE weight 1), test %, exploratory ({tag})")

# %% [markdown]
# The label-free row is the test of the premise: a probe on features trained only to maximise S(f, g)
# well above chance says that the information audio and video share carries emotion (on this corpus,
# by construction of the generator: see notebook 05 for which factors the two modalities share, which
# include more than emotion). The label-pairs row is supervised and is expected near the CE reference.
# The grid and the pair table are exploratory: read them for direction, not for verdicts.

# %%
from IPython.display import Markdown

Markdown("**What these runs found** (test %, mean ± std over every fold × seed; exploratory, no verdict):\n\n"
         + "\n".join(f"- {r.condition}: probe accuracy {r.probe_acc} (chance {r.chance})" for r in free_table.itertuples()))
