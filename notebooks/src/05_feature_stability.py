# %% [markdown]
# # 05 · Feature stability: what the Soft-HGR terms do to the learned features
#
# *Where things are.* This notebook's source is `notebooks/05_feature_stability.ipynb` (no outputs; its text twin
# `notebooks/src/05_feature_stability.py`). `./run_all.sh` executes it into `results/synthetic-default/05_feature_stability.ipynb`, with
# every output shown (another dataset or profile: `results/<dataset>-<profile>/`); the tables it writes lie
# beside that copy (`05_*.csv`, `.md`) and its figures in `figures/synthetic-default/`. `results/README.md`
# lists them all.
#
# The paper argues that maximising the common information between audio features f(a), visual
# features g(v) and the label embedding h(y) gives *better and more stable* representations. Here
# "stable" is made measurable four ways, comparing the fusion network trained with cross-entropy only
# (λ = 0) against cross-entropy plus Soft-HGR (the profile's λ). The runs are those of notebook 02
# (every subject fold × every seed, read back from the run cache, not retrained):
#
# 1. **Score spread over seeds**: on each fold, the standard deviation over seeds of test accuracy
#    and UAR. Taken fold by fold, so that how hard each fold's subjects are does not count as
#    instability; the std over all runs pooled is shown beside it for contrast.
# 2. **Seed-to-seed similarity**: runs on one fold that differ only in their seed see the same
#    held-out clips; linear CKA between the two seeds' features, for every fold and pair of seeds,
#    says whether they learned the same features (1: the same up to rotation and scale) for f, g and
#    the fused hidden layer z. The two conditions share their (fold, seed pair) units, so they are
#    compared paired.
# 3. **Audio-visual correlation**: canonical correlations between f and g on held-out (test) clips,
#    fitted on the test clips themselves (in-sample) and with directions fitted on the training clips
#    (held-out; the honest number when clips are few relative to the feature dimension).
# 4. **Which factors the features carry** (synthetic corpus only, where every clip's generating
#    factors are known): linear probes on the test clips' features for the factors the two modalities
#    share and for modality-specific nuisances. Which factors are shared is read off the generator
#    (`hgrlib/data/synthetic.py`) in section 4: not only emotion, but also intensity, the statement's
#    syllable pattern and timing (the mouth opens with the voice's syllable envelope) and the subject.

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
n_components = 5  # canonical correlations reported

# %%
import pandas as pd
from IPython.display import display

from hgrlib.analysis import stability as st
from hgrlib.experiment import conditions as C
from hgrlib.experiment.launch import train_all
from hgrlib.experiment.prepare import grid, results_frame, run_features, setup
from hgrlib.report import plots
from hgrlib.report.tables import mean_std

S = setup(profile, dataset, root, classes, cache_dir, results_dir, figures_dir, lam, seeds, folds=folds, jobs=jobs)
cfg, fs, lam, seeds, tag = S.config, S.fs, S.lam, S.seeds, S.tag
assert len(seeds) >= 2, "seed-to-seed comparisons need at least two seeds"
# the same conditions and configs as notebook 02, so its runs are read back, not retrained
conditions = C.fusion_pair(lam)  # fusion (CE), fusion (CE + Soft-HGR): hgrlib/experiment/conditions.py
cfgs, names = grid(cfg, conditions, seeds, fs)
results = train_all(cfgs, fs, runs_dir, jobs=S.jobs)
runs = results_frame(results, condition=names)
print(f"{len(runs)} runs: {runs['fold'].nunique()} folds x {len(seeds)} seeds x {len(conditions)} conditions")

# %% [markdown]
# ## 1 · Spread of test scores over seeds, fold by fold
#
# One row per condition and fold: the runs differ only in their seed. The summary averages the
# per-fold spread over folds (`*_seed_std`) and gives the std over all runs pooled (`*_pooled_std`),
# which also contains the differences between folds.

# %%
spread = st.seed_spread(runs)
cols = ["condition", "fold", "seeds"] + [f"{m}_{s}" for m in ("acc", "uar") for s in ("mean", "std", "range")]
spread = spread[cols].round(4)
spread_sum = st.spread_summary(runs).round(4)
fig = plots.plot_score_spread(runs)
S.figure(fig, "05_score_spread.png")
display(S.table(spread_sum, "05_score_spread_summary",
                   title=f"Spread over seeds averaged over folds, and over all runs pooled, % ({tag}, λ={lam})"))
S.table(spread, "05_score_spread",
           title=f"Test accuracy and UAR over seeds, per fold, % (std ddof=1, range = max − min) ({tag}, λ={lam})")

# %% [markdown]
# ## 2 · Do different seeds learn the same features?
#
# Linear CKA between the test-clip features of two seeds on the same fold, for every condition,
# fold and pair of seeds (`05_seed_cka_pairs`); the summary is the mean ± std over the (fold, pair)
# units. In the figure each grey line joins one (fold, pair) unit across the two conditions.

# %%
feats = {(n, int(r["config"]["train"]["fold"]), int(r["config"]["train"]["seed"])): run_features(r)
         for r, n in zip(results, names)}
pairs = st.seed_cka_pairs(feats)
S.table(pairs.round(4), "05_seed_cka_pairs", show=False,
            title=f"Linear CKA between two seeds' features on one fold's test clips, per condition, fold, seed pair and feature ({tag}, λ={lam})")
cka_table = mean_std(pairs, ["condition", "feature"], ("cka",), scale=1, digits=3, count="pairs")
cka_table = cka_table[["condition", "feature", "pairs", "cka", "cka_mean", "cka_std"]]
fig = plots.plot_seed_cka(pairs)
S.figure(fig, "05_seed_cka.png")
S.table(cka_table.round(4), "05_seed_cka",
           title=f"Linear CKA between seeds on test clips, mean ± std over folds × seed pairs ({tag}, λ={lam})")

# %% [markdown]
# ## 3 · How correlated are the audio and visual features on held-out clips?
#
# Over every run of each condition (all folds and seeds).

# %%
cca = pd.concat([st.av_correlation(feats[n, int(r["config"]["train"]["fold"]), int(r["config"]["train"]["seed"])], "test", n_components)
                 .assign(condition=n, seed=r["config"]["train"]["seed"], fold=r["config"]["train"]["fold"])
                 for r, n in zip(results, names)], ignore_index=True)
cca_table = cca.groupby(["condition", "component"], sort=False).agg(
    runs=("in_sample", "size"), test_clips=("clips", "mean"), in_sample_mean=("in_sample", "mean"), in_sample_std=("in_sample", "std"),
    held_out_mean=("held_out", "mean"), held_out_std=("held_out", "std")).reset_index().fillna(0.0).round(4)
fig = plots.plot_av_correlation(cca)
S.figure(fig, "05_av_correlation.png")
S.table(cca_table, "05_av_correlation",
           title=f"Canonical correlations of f and g on test clips (in-sample; and directions fitted on training clips), "
                 f"mean ± std over all folds × seeds runs ({tag}, λ={lam}, feature dim {cfg.model.dim})")

# %% [markdown]
# ## 4 · Which generating factors do the features carry? (synthetic corpus)
#
# **What the two modalities share, from the generator's code.** The table below
# (`hgrlib.analysis.stability.generator_factors`; the factors the renderer reads directly are checked
# against it by perturbing each and re-rendering, in `tests/test_stability.py`) lists every factor
# of `hgrlib/data/synthetic.py` and which modality it reaches:
#
# * **shared by audio and video**: the *emotion* (the prosody profile in the voice, the facial
#   expression profile in the face), the *intensity* (×1.3 on both expression strengths), the
#   *statement* and the *timing of its syllables*: the mouth opens with the voice's syllable
#   envelope, so the subject's speaking rate, the per-clip rate jitter, the emotional rate change
#   (`a_rate`) and the speech onset reach both; and the *subject*, each modality through its own
#   traits (voice: pitch, formants, rate, breathiness; face: shape, skin, eye spacing, brows, mouth
#   width) and jointly through the speaking rate. The audio expression strength reaches the video
#   too, weakly, through the rate change it scales; which modality a clip makes ambiguous moves both
#   strengths.
# * **audio only**: voice pitch, formant scale, breathiness, recording gain and the emotional prosody
#   other than rate (F0 level, range and slope, energy, jitter, spectral tilt, breath).
# * **video only**: face shape, skin tone, eye spacing, brow thickness, mouth width, head pose,
#   lighting, background, the visual expression strength and the facial expression parameters.
# * **neither**: the repetition, which only seeds the clip's random draws.
#
# The envelope is recovered per clip from the generator itself (`envelope_factors` runs its
# `synth_audio` on the clip's recorded factors): its mean over the clip (`env_mean`), the speech
# onset and the syllable rate are probed as shared factors next to emotion, intensity, statement and
# subject (`actor`), and the nuisances as before.
#
# Probes: logistic regression (accuracy, against the majority-class rate) for discrete factors,
# ridge regression (R², against 0) for continuous ones; cross-validated over the test clips of each
# run, mean ± std over all runs (folds × seeds). Subject-level factors (actor, f0_base, skin) take
# only as many values as there are test subjects in a fold.

# %%
gen = st.generator_factors()
S.table(gen, "05_generator_factors",
           title="Factors of the synthetic generator (hgrlib/data/synthetic.py) and the modalities they reach")

# %%
if cfg.data.dataset != "synthetic":
    print(f"Factor probes skipped: {cfg.data.dataset} has no known generating factors (synthetic corpus only).")
    probes = None
else:
    factors = st.factor_table(cfg.data.root, fs.clip_ids, envelope=True)
    probes = pd.concat([st.factor_probes(fe, factors).assign(condition=n, fold=f, seed=s)
                        for (n, f, s), fe in feats.items()], ignore_index=True)
    summary = mean_std(probes, ["factor", "kind", "level", "metric", "condition", "feature"], ("score",), scale=1, digits=2)
    chance = probes.groupby("factor", sort=False)["chance"].mean().round(2)
    wide = summary.pivot_table(index="factor", columns=["condition", "feature"], values="score", aggfunc="first", sort=False)
    wide.columns = [f"{c}: {f}" for c, f in wide.columns]
    info = probes.drop_duplicates("factor").set_index("factor")[["kind", "level", "metric"]]
    probe_table = info.join(chance).join(wide).reset_index()
    fig = plots.plot_factor_probes(probes)
    S.figure(fig, "05_factor_probes.png")
    probe_view = S.table(probe_table, "05_factor_probes",
                            title=f"Linear probes of generating factors on test-clip features, mean ± std over folds × seeds ({tag}, λ={lam})")
probe_view if probes is not None else None

# %% [markdown]
# **Reading the results.** (1) The spread over seeds is taken within a fold, so it is the part of
# the variation a training objective could change; the pooled std also holds the differences
# between subject folds, which no loss removes. (2) Seed-to-seed CKA near 1 means the features
# depend little on the initialisation; the two conditions are compared unit by unit over the same
# (fold, seed pair) units. (3) The Soft-HGR term S(f, g) directly rewards correlated audio and
# visual features; trust the held-out-direction curve over the in-sample one when the test clips
# are few compared with the feature dimension. (4) The shared factors are what a common-information
# objective can reward: emotion, but also intensity, the statement and its syllable timing, and
# the subject's speaking rate, none of which is the label. The modality-specific nuisances (gain,
# pose, lighting, ...) are shared by nothing, but neither loss has a term that removes them from the
# features of their own modality: the probes say how much of them each feature keeps (generated
# below from this run's numbers). Whether a difference between the conditions is larger
# than the spread over folds and seed pairs is decided by the generated claims table,
# `results/<tag>/claims.md`, not here. The smoke profile trains for two epochs on a dozen test
# clips; only the default or paper profile gives numbers worth reading.

# %%
from IPython.display import Markdown

from hgrlib.experiment.claims import findings

Markdown(findings(S.out_res, "05_") + ("\n" + st.probe_findings(probes) if probes is not None else ""))
