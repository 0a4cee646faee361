# %% [markdown]
# # 02 · Supervised: does common information help?
#
# *Where things are.* This notebook's source is `notebooks/02_supervised.ipynb` (no outputs; its text twin
# `notebooks/src/02_supervised.py`). `./run_all.sh` executes it into `results/synthetic-default/02_supervised.ipynb`, with
# every output shown (another dataset or profile: `results/<dataset>-<profile>/`); the tables it writes lie
# beside that copy (`02_*.csv`, `.md`) and its figures in `figures/synthetic-default/`. `results/README.md`
# lists them all.
#
# The paper's central experiment. Four models, each trained on every subject-independent fold with
# every seed (4 folds × 2 seeds in the default profile, so every subject is tested and each condition
# has the same (fold, seed) pairs as the others): audio only, visual only, the fusion network with
# cross-entropy, and the fusion network with cross-entropy plus the Soft-HGR terms among audio
# features f(a), visual features g(v) and the label embedding h(y):
#
# L = CE − λ · ( S(f, g) + S(f, h) + S(g, h) ).
#
# Scores are clip-level (segment probabilities averaged over the clip) on held-out subjects. Every run of this
# notebook, on both corpus draws, is trained (or read back from `runs/`) in one call at the top
# (`hgrlib.experiment.prepare.run_grids`); the sections below tabulate and plot them.

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
seeds = None  # list of seeds (None: the profile's)
replica_seed = 1  # a second synthetic corpus drawn with this generator seed, for the main claim (None: skip)
w_uni = 0.5  # weight of the per-modality CE heads in the mechanism's supervision-only control

# %%
import numpy as np
from IPython.display import display

from hgrlib.analysis.convergence import convergence_table
from hgrlib.experiment import conditions as C
from hgrlib.experiment.prepare import Corpus, load_featureset, prepare_data, run_grids, setup
from hgrlib.experiment.profiles import corpus_label, with_corpus_seed
from hgrlib.report import plots
from hgrlib.report.tables import mean_std

S = setup(profile, dataset, root, classes, cache_dir, results_dir, figures_dir, lam, seeds, folds=folds, jobs=jobs)
lam, seeds, tag = S.lam, S.seeds, S.tag

# %%
conditions = C.supervised(lam)  # audio only, visual only, fusion (CE), fusion (CE + Soft-HGR): hgrlib/experiment/conditions.py
pair = C.fusion_pair(lam)  # the two fusion conditions, again on the second corpus draw
mechanism = C.mechanism(lam, w_uni)  # where the gain comes from: unimodal CE heads, the label pairs alone, the a–v pair alone
main = Corpus(corpus_label(S.profile), S.config, S.fs)
corpora = [main]
if replica_seed is not None and dataset == "synthetic":  # the second corpus draw, generated and prepared here
    R = with_corpus_seed(S.profile, replica_seed)
    prepare_data(R.config.data, R.config.features, cache_dir, R.synthetic)
    corpora.append(Corpus(corpus_label(R), R.config, load_featureset(R.config.data, R.config.features, cache_dir)))
grids = [(conditions, main)] + [(pair, q) for q in corpora[1:]] + [(mechanism, q) for q in corpora]
T = run_grids(grids, seeds, runs_dir, jobs=S.jobs)  # every fold × seed of each grid, in this order

# %%
runs = T.frame(conditions, main.label)
table = mean_std(runs, ["condition"], metrics=("acc", "uar", "seg_acc"))
table["nonfinite_steps"] = runs.groupby("condition", sort=False)["nonfinite_steps"].sum().values
cols = ["condition", "runs", "acc", "uar", "seg_acc", "nonfinite_steps"]
S.table(runs, "02_supervised_runs", show=False)
S.table(table[cols], "02_supervised_table",
        title=f"Test accuracy and UAR, % mean ± std over every fold × seed ({tag}, λ={lam})")

# %%
fig = plots.bar_with_errors(table, "condition", "acc")
S.figure(fig, "02_accuracy.png");

# %%
cms = {f"{name}, all runs": sum(np.array(r["test"]["confusion"]) for r in T.results_of([name], main.label))
       for name in [C.FUSION_CE, C.FUSION_HGR]}
fig = plots.confusions(cms, S.fs.classes)
S.figure(fig, "02_confusion.png");

# %%
fig = plots.training_curves(T.histories(conditions, main.label))
S.figure(fig, "02_training_curves.png");

# %% [markdown]
# Read the table first: the paper expects fusion to beat either modality alone, and the Soft-HGR terms
# to add to fusion with cross-entropy alone (what these runs found is generated at the end of this notebook). The spread over folds and seeds says how much of a
# difference is noise; whether a difference is one is decided paired, over the same (fold, seed) runs and
# at the level of subject folds (the seeds of a fold share its test subjects), in the claims table that `run_all.sh` generates (`claims.md` beside this notebook's tables, and the
# README). The confusion matrices show where the errors are.

# %% [markdown]
# ## The main claim on a second corpus
#
# One synthetic corpus is one draw of its generator: subjects, clips and noise. The same design drawn
# with another seed (`replica_seed`) was generated and prepared in the training cell at the top, and the two
# fusion conditions were trained on it over every fold × seed. The main claim generalises over subjects and corpora, not seeds:
# the claims table analyses it over every (corpus draw, subject fold) unit of both corpora, 2 × 4 = 8
# independent units instead of 4. (Synthetic data only.)

# %%
if len(corpora) > 1:
    rep = T.frame(pair, corpora[1].label)
    rep.insert(1, "corpus_seed", replica_seed)
    S.table(rep, "02_replication_runs", show=False)
    rep_table = mean_std(rep, ["corpus_seed", "condition"], metrics=("acc", "uar"))
    display(S.table(rep_table[["corpus_seed", "condition", "runs", "acc", "uar"]], "02_replication_table",
                    title=f"The main comparison on a second corpus (generator seed {replica_seed}), % mean ± std over every fold × seed"))

# %% [markdown]
# ## Where does the gain come from?
#
# The paper credits the gain to common information between audio and video. Switching the Soft-HGR terms on
# also adds supervision: the label pairs S(f, h) and S(g, h) train each branch towards the label. Three
# controls, trained like the two fusion conditions above (same network, data, optimiser steps and seeds, on
# every corpus draw), separate the two: per-modality cross-entropy heads on f and g (`w_uni`, no Soft-HGR:
# extra supervision of each branch, no common information); the label pairs alone (supervision through
# h(y), no audio–visual term); the audio–visual pair alone (common information, no label pair). The
# claims table compares the full objective with each control at the level of corpus × fold units.

# %%
mech = T.frame(mechanism)  # every corpus draw
S.table(mech, "02_mechanism_runs", show=False)
mech_table = mean_std(T.frame(pair | mechanism), ["condition"], metrics=("acc", "uar"))  # the two fusion conditions and the controls
display(S.table(mech_table[["condition", "runs", "acc", "uar"]], "02_mechanism_table",
                title=f"Where the gain comes from: test accuracy and UAR, % mean ± std over every corpus × fold × seed ({tag}, λ={lam}, unimodal CE weight {w_uni})"))

# %% [markdown]
# ## Has training levelled off?
#
# A gap between two conditions that are still climbing may be a difference in speed, not in where they end.
# For every condition of this notebook (both corpus draws pooled), the validation UAR's mean gain per epoch
# over the last two epochs of every run; a gain under 1 point counts as levelled off. The profile's epochs
# were chosen with this check: at 6 epochs, the exploratory schedule of notebooks 03, 04 and 07, the fusion
# with Soft-HGR was still climbing. The claims table shows the main comparison at both schedules (here,
# and "before convergence" from notebook 07's runs).

# %%
S.table(convergence_table(T.histories()), "02_convergence",
        title=f"Has training levelled off? Validation UAR (%) at the last epoch and its gain per epoch (points) over the last epochs, "
              f"mean ± std over every corpus × fold × seed run ({tag}, {S.config.train.epochs} epochs)")

# %%
from IPython.display import Markdown

from hgrlib.experiment.claims import findings

Markdown(findings(S.out_res, "02_"))
