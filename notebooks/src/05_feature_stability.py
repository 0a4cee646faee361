# %% [markdown]
# # 05 · Feature stability: what the Soft-HGR terms do to the learned features
#
# The paper argues that maximising the common information between audio features f(a), visual
# features g(v) and the label embedding h(y) gives *better and more stable* representations. Here
# "stable" is made measurable four ways, comparing the fusion network trained with cross-entropy only
# (λ = 0) against cross-entropy plus Soft-HGR (the profile's λ):
#
# 1. **Score spread**: test accuracy and UAR over seeds and folds (the runs of notebook 02, read back
#    from the run cache), and over seeds alone on fold 0.
# 2. **Seed-to-seed similarity**: runs that differ only in their seed, on fold 0, see the same
#    held-out clips; linear CKA between every pair of seeds says whether they learned the same
#    features (1: the same up to rotation and scale) for f, g and the fused hidden layer z.
# 3. **Audio-visual correlation**: canonical correlations between f and g on held-out (test) clips,
#    fitted on the test clips themselves (in-sample) and with directions fitted on the training clips
#    (held-out; the honest number when clips are few relative to the feature dimension).
# 4. **Which factors the features carry** (synthetic corpus only, where every clip's generating
#    factors are known): linear probes on the test clips' features for the shared factor (emotion)
#    and for subject and modality-specific nuisances (voice pitch, gain, head pose, lighting, ...).

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
n_components = 5  # canonical correlations reported

# %%
import os

from hgrlib.report import project_dir

os.chdir(project_dir())
import pandas as pd

from hgrlib import stability as st
from hgrlib.experiment import load_featureset, results_frame, run_all, run_features, seeded_runs
from hgrlib.profiles import get_profile
from hgrlib.report import save_figure, write_table

P = get_profile(profile, dataset, root, classes)
cfg = P.config
lam = P.lam if lam is None else lam
seeds = P.seeds if seeds is None else seeds
tag = f"{cfg.data.dataset}-{profile}"
out_res, out_fig = f"{results_dir}/{tag}", f"{figures_dir}/{tag}"
fs = load_featureset(cfg.data, cfg.features, cache_dir)
conditions = {
    "fusion (CE)": {"model": {"modalities": "av"}, "loss": {"lam": 0.0}},
    "fusion (CE + Soft-HGR)": {"model": {"modalities": "av"}, "loss": {"lam": lam}},
}

# %% [markdown]
# ## 1 · Spread of test scores
#
# "seeds × folds": run *i* uses seed *i* on fold *i* mod the number of folds (the runs of notebook 02).
# "seeds, fold 0": every seed on the same fold, so only the seed varies.

# %%
cfgs, names, cfgs0, names0 = [], [], [], []
for name, change in conditions.items():
    for c in seeded_runs(cfg.with_(**change), seeds, fs):
        cfgs.append(c)
        names.append(name)
    for s in seeds:
        cfgs0.append(cfg.with_(**change, train={"seed": int(s), "fold": 0}))
        names0.append(name)
results = run_all(cfgs, fs, runs_dir)
results0 = run_all(cfgs0, fs, runs_dir)
runs = results_frame(results, condition=names)
runs0 = results_frame(results0, condition=names0)
spread = pd.concat([st.score_spread(runs).assign(runs_over="seeds × folds"),
                    st.score_spread(runs0).assign(runs_over="seeds, fold 0")], ignore_index=True)
cols = ["runs_over", "condition", "runs"] + [f"{m}_{s}" for m in ("acc", "uar") for s in ("mean", "std", "range")]
spread = spread[cols].round(4)
write_table(spread, f"{out_res}/05_score_spread",
            title=f"Test accuracy and UAR over runs (fractions; std ddof=1, range = max − min) ({tag}, λ={lam})")
fig = st.plot_spread(pd.concat([runs.assign(runs_over="seeds × folds"), runs0.assign(runs_over="seeds, fold 0")]),
                     group="runs_over")
save_figure(fig, f"{out_fig}/05_score_spread.png")
spread

# %% [markdown]
# ## 2 · Do different seeds learn the same features?
#
# Linear CKA between the test-clip features of every pair of seeds (fold 0), mean ± std over pairs.

# %%
by_seed = {name: {int(r["config"]["train"]["seed"]): run_features(r) for r, n in zip(results0, names0) if n == name}
           for name in conditions}
assert len(seeds) >= 2, "seed-to-seed CKA needs at least two seeds"
cka = pd.concat([st.seed_cka(by_seed[name], key).assign(condition=name) for name in conditions for key in st.FEATURE_KEYS],
                ignore_index=True)
cka_table = st.summarize(cka, ["condition", "feature"], "cka").rename(columns={"n": "pairs"})
cka_table["test clips"] = cka.groupby(["condition", "feature"], sort=False)["clips"].first().to_numpy()
cka_table = cka_table[["condition", "feature", "pairs", "test clips", "cka", "mean", "std"]]
write_table(cka_table.round(4), f"{out_res}/05_seed_cka",
            title=f"Linear CKA between seeds on fold 0's test clips, mean ± std over seed pairs ({tag}, λ={lam})")
fig = st.plot_grouped(cka_table, "feature", "condition", ylabel="linear CKA between seeds", xlabels=st.FEATURE_NAMES, ylim=(0, 1.05))
fig.axes[0].set_title("similarity of features learned with different seeds (test clips)", fontsize=9)
save_figure(fig, f"{out_fig}/05_seed_cka.png")
cka_table

# %% [markdown]
# ## 3 · How correlated are the audio and visual features on held-out clips?

# %%
cca = pd.concat([st.av_correlation(run_features(r), "test", n_components).assign(condition=n, seed=r["config"]["train"]["seed"],
                                                                                 fold=r["config"]["train"]["fold"])
                 for r, n in zip(results, names)], ignore_index=True)
cca_table = cca.groupby(["condition", "component"], sort=False).agg(
    runs=("in_sample", "size"), test_clips=("clips", "mean"), in_sample_mean=("in_sample", "mean"), in_sample_std=("in_sample", "std"),
    held_out_mean=("held_out", "mean"), held_out_std=("held_out", "std")).reset_index().fillna(0.0).round(4)
write_table(cca_table, f"{out_res}/05_av_correlation",
            title=f"Canonical correlations of f and g on test clips (in-sample; and directions fitted on training clips), "
                  f"mean ± std over the seeds × folds runs ({tag}, λ={lam}, feature dim {cfg.model.dim})")
fig = st.plot_av_correlation(cca)
save_figure(fig, f"{out_fig}/05_av_correlation.png")
cca_table

# %% [markdown]
# ## 4 · Which generating factors do the features carry? (synthetic corpus)
#
# Probes: logistic regression (accuracy, against the majority-class rate) for discrete factors, ridge
# regression (R², against 0) for continuous ones; cross-validated over the test clips of fold 0,
# mean ± std over seeds. Subject-level factors (actor, f0_base, skin) take only as many values as
# there are test subjects.

# %%
if cfg.data.dataset != "synthetic":
    print(f"Factor probes skipped: {cfg.data.dataset} has no known generating factors (synthetic corpus only).")
    probes = None
else:
    ids = next(iter(by_seed[next(iter(conditions))].values()))["clip_ids"]
    factors = st.factor_table(cfg.data.root, ids)
    probes = pd.concat([st.factor_probes(fe, factors).assign(condition=name, seed=s)
                        for name in conditions for s, fe in by_seed[name].items()], ignore_index=True)
    summary = st.summarize(probes, ["factor", "kind", "level", "metric", "condition", "feature"], "score", digits=2)
    chance = probes.groupby("factor", sort=False)["chance"].mean().round(2)
    wide = summary.pivot_table(index="factor", columns=["condition", "feature"], values="score", aggfunc="first", sort=False)
    wide.columns = [f"{c}: {f}" for c, f in wide.columns]
    info = probes.drop_duplicates("factor").set_index("factor")[["kind", "level", "metric"]]
    probe_table = info.join(chance).join(wide).reset_index()
    write_table(probe_table, f"{out_res}/05_factor_probes",
                title=f"Linear probes of generating factors on fold 0's test-clip features, mean ± std over seeds ({tag}, λ={lam})")
    fig = st.plot_factor_heatmap(probes)
    save_figure(fig, f"{out_fig}/05_factor_probes.png")
probe_table if probes is not None else None

# %% [markdown]
# **Reading the results.** (1) If Soft-HGR stabilises training, the spread over seeds (fold 0) should
# shrink; the spread over seeds × folds also contains the difference between subject folds, which no
# loss removes. (2) Higher seed-to-seed CKA means the learned features depend less on the
# initialisation. (3) The Soft-HGR term S(f, g) directly rewards correlated audio and visual features,
# so its canonical correlations should be higher; trust the held-out-direction curve over the in-sample
# one when the test clips are few compared with the feature dimension. (4) Emotion is the only factor
# both modalities share: features trained toward common information should keep emotion and lose
# modality-specific nuisances (gain, pose, lighting), most visibly in f and g. The smoke profile
# trains for two epochs on a dozen test clips; only the default or paper profile gives numbers worth
# reading.
