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
# whole clips). Every batch holds the same number of labeled rows (`labeled_share` of the batch, each
# labeled clip seen as often in every arm), and every arm takes the same optimiser steps (a pass over
# all training clips per epoch). Three arms at each fraction, on every corpus draw × subject fold × seed:
#
# - **labeled only (CE)**: the labeled rows alone, cross-entropy: the reference;
# - **labeled only (CE + Soft-HGR)**: the same labeled rows, the paper's loss on them;
# - **labeled + unlabeled (CE + Soft-HGR)**: the same labeled rows, and the rest of each batch unlabeled
#   clips, on which only S(f, g) acts.
#
# "Unlabeled clips help" is the third arm against the second: the same labeled rows at every step, the
# same loss, λ and steps; what differs is the unlabeled rows (their S(f, g) term, and their share of the
# BatchNorm statistics, which come with any in-batch use of unlabeled data). At a fraction of 1 nothing is
# unlabeled and the arms reduce to fusion with CE and with CE + Soft-HGR, trained here on the first corpus.
# These runs use the profile's exploratory schedule (`explore_epochs`), shorter than notebook 02's.

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
lam = None  # λ of the Soft-HGR terms (None: the profile's)
seeds = None  # None: the profile's
fractions = [0.1, 0.25]  # labeled fractions of the training clips (1.0 is added); each costs 3 arms × every corpus × fold × seed
labeled_share = 0.5  # labeled rows per batch, as a share of the batch size
replica_seed = 1  # the second synthetic corpus of notebook 02 (None: the first corpus only)

# %%
import pandas as pd

from hgrlib.experiment import conditions as C
from hgrlib.experiment.launch import train_all
from hgrlib.experiment.prepare import fold_seed_runs, load_featureset, prepare_data, results_frame, setup
from hgrlib.experiment.profiles import corpus_label, with_corpus_seed
from hgrlib.report import plots
from hgrlib.report.tables import mean_std

S = setup(profile, dataset, root, classes, cache_dir, results_dir, figures_dir, lam, seeds, folds=folds, jobs=jobs)
P, cfg, lam = S.profile, S.config, S.lam
cfg = P.explore(cfg)

# %%
per_batch = max(2, int(round(labeled_share * cfg.train.batch_size)))
fixed = {"labeled_per_batch": per_batch, "match_steps": True}
arms = {  # the arms' names: hgrlib/experiment/conditions.py
    C.LABELED_CE: ({"lam": 0.0}, fixed | {"use_unlabeled": False}),
    C.LABELED_HGR: ({"lam": lam}, fixed | {"use_unlabeled": False}),
    C.SEMI_HGR: ({"lam": lam}, fixed | {"use_unlabeled": True}),
}
full = {C.LABELED_CE: {"lam": 0.0}, C.LABELED_HGR: {"lam": lam}, C.SEMI_HGR: {"lam": lam}}
corpora = [(P, cfg, S.fs)]
if replica_seed is not None and dataset == "synthetic":
    R = with_corpus_seed(P, replica_seed)
    prepare_data(R.config.data, R.config.features, cache_dir, R.synthetic)
    corpora.append((R, P.explore(R.config), load_featureset(R.config.data, R.config.features, cache_dir)))
parts = []
for i, (Q, qcfg, qfs) in enumerate(corpora):
    cfgs, names = [], []
    for frac in fractions:
        for name, (loss, train) in arms.items():
            made = fold_seed_runs(qcfg.with_(model={"modalities": "av"}, loss=loss, train=train | {"labeled_frac": frac}), S.seeds, qfs)
            cfgs += made
            names += [name] * len(made)
    if i == 0:  # every clip labeled: the arms are fusion with CE and with CE + Soft-HGR (two configs, three names)
        for name, loss in full.items():
            made = fold_seed_runs(qcfg.with_(model={"modalities": "av"}, loss=loss), S.seeds, qfs)
            cfgs += made
            names += [name] * len(made)
    part = results_frame(train_all(cfgs, qfs, runs_dir, jobs=S.jobs), condition=names)
    part.insert(0, "corpus", corpus_label(Q))
    parts.append(part)
runs = pd.concat(parts, ignore_index=True)
table = mean_std(runs, ["condition", "labeled_frac"])
g = runs.groupby(["condition", "labeled_frac"], sort=False)
table["corpora"] = g["corpus"].nunique().values
table["steps"] = g["steps"].first().values  # optimiser steps per run: equal across arms at a fraction
table["nonfinite_steps"] = g["nonfinite_steps"].sum().values
cols = ["condition", "labeled_frac", "corpora", "runs", "acc", "uar", "steps", "nonfinite_steps"]
S.table(runs, "03_semi_supervised_runs", show=False)
S.table(table[cols], "03_semi_supervised_table",
        title=f"Test accuracy / UAR (%) against the labeled fraction, mean ± std over every corpus × fold × seed "
                 f"({S.tag}, λ={lam}, {cfg.train.epochs} epochs, {per_batch} labeled rows per batch)")

# %%
fig = plots.curves_with_errors(table, x="labeled_frac", group="condition", metric="acc", xlabel="labeled training clips (log scale)", percent_x=True)
S.figure(fig, "03_semi_supervised.png");

# %% [markdown]
# The steps column shows the control at work: at every fraction the three arms take the same number of
# optimiser steps, with the same labeled rows in every batch. The gap between **labeled + unlabeled** and
# **labeled only (CE + Soft-HGR)** is what the unlabeled clips add; the gap between the two labeled-only
# arms is what the Soft-HGR terms do with few labels. Whether a gap is larger than the spread over corpus
# draws and folds is decided paired, at the level of corpus × fold units, in the generated claims table
# (`claims.md`, and the README), which also says the smallest effect this design can detect.

# %%
from IPython.display import Markdown

from hgrlib.experiment.claims import findings

Markdown(findings(S.out_res, "03_"))
