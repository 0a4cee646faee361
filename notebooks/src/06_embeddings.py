# %% [markdown]
# # 06 · Embeddings: pictures of the learned features
#
# *Where things are.* This notebook's source is `notebooks/06_embeddings.ipynb` (no outputs; its text twin
# `notebooks/src/06_embeddings.py`). `./run_all.sh` executes it into `results/synthetic-default/06_embeddings.ipynb`, with
# every output shown (another dataset or profile: `results/<dataset>-<profile>/`); the tables it writes lie
# beside that copy (`06_*.csv`, `.md`) and its figures in `figures/synthetic-default/`. `results/README.md`
# lists them all.
#
# UMAP and t-SNE of the audio features f, visual features g and the fused hidden layer z of the
# fusion network trained with cross-entropy only versus cross-entropy plus Soft-HGR (seed 0, fold 0).
# Only the **test clips** are shown: held-out subjects the network never saw, so a cluster is something
# the features generalise, not something they memorised. Each panel is coloured by emotion and by
# subject: good emotion features group by emotion, not by who is speaking.
#
# 2-D pictures depend on the method and its settings, so every picture comes with a number: the
# silhouette score (−1..1; higher means tighter, better-separated groups) by emotion and by subject,
# computed on the features themselves (standardised), and also on the 2-D embeddings.

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
seed = 0  # the run shown (fold 0), also the seed of UMAP and t-SNE
part = "test"  # clips shown: "test" (held-out subjects), "val", "train", or None for all

# %%
from hgrlib.analysis import embeddings as em
from hgrlib.analysis.stability import select
from hgrlib.experiment import conditions as C
from hgrlib.experiment.launch import train_all
from hgrlib.experiment.prepare import run_features, setup
from hgrlib.report import plots

S = setup(profile, dataset, root, classes, cache_dir, results_dir, figures_dir, lam, folds=folds, jobs=jobs)
conditions = C.fusion_pair(S.lam)  # fusion (CE), fusion (CE + Soft-HGR): hgrlib/experiment/conditions.py
results = train_all([S.config.with_(**c, train={"seed": seed, "fold": 0}) for c in conditions.values()], S.fs, runs_dir, jobs=S.jobs)
feats = {name: select(run_features(r), part) for name, r in zip(conditions, results)}
print({name: len(fe["clip_ids"]) for name, fe in feats.items()}, "clips of part", part)

# %%
embeddings = {}
for method in em.METHODS:
    embeddings |= em.embed_all(feats, method, seed=seed)
scores = em.silhouettes(feats, embeddings=embeddings).round(3)
S.table(scores, "06_silhouettes",
           title=f"Silhouette scores by emotion and by subject of the {part} clips' features "
                 f"(standardised inputs; and of their 2-D embeddings) ({S.tag}, λ={S.lam}, seed {seed})")

# %%
for method in em.METHODS:
    fig = plots.plot_grid(feats, embeddings, method, S.fs.classes, scores=scores,
                       shown="test-clip features (held-out subjects)" if part == "test" else f"{part or 'all'} clips' features")
    S.figure(fig, f"06_{method}.png")

# %% [markdown]
# **Reading the pictures.** Look for emotion colours forming groups that are not split by subject
# colours. On the synthetic corpus, audio and video each confuse different pairs of emotions, so f and
# g should each separate some emotions and merge others, and z should separate most. If the Soft-HGR
# terms do what the paper claims, the emotion silhouettes should rise and the subject silhouettes fall
# relative to cross-entropy alone. Judge by the silhouette table more than by the pictures: UMAP and
# t-SNE exaggerate clusters. Under the smoke profile (two epochs, a dozen test clips) the pictures only
# show that the pipeline works.

# %%
from IPython.display import Markdown

Markdown("**What these runs found** (silhouettes of the " + str(part or "all") + " clips' features in their own space; "
         "higher: tighter groups; near 0 or below: no grouping):\n\n"
         + "\n".join(f"- {r.condition}, {r.feature}: by emotion {r.emotion:+.3f}, by subject {r.subject:+.3f}" for r in scores.itertuples()))
