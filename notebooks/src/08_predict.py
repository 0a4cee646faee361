# %% [markdown]
# # 08 · Predict on a clip: what the model sees
#
# *Where things are.* This notebook's source is `notebooks/08_predict.ipynb` (no outputs; its text twin
# `notebooks/src/08_predict.py`). `./run_all.sh` executes it into `results/synthetic-default/08_predict.ipynb`, with
# every output shown (another dataset or profile: `results/<dataset>-<profile>/`); the tables it writes lie
# beside that copy (`08_*.csv`, `.md`) and its figures in `figures/synthetic-default/`. `results/README.md`
# lists them all.
#
# A trained model on clips one by one, as `hgrlib predict` runs it on a clip of your own. The model is the
# fusion network with cross-entropy plus the Soft-HGR terms of notebook 02 (fold 0, seed 0), exported
# to one file (weights, configs, class names, normalisation statistics) as `hgrlib export` writes it.
# Each clip goes through the same preprocessing as the training clips: the audio becomes log-mel
# segments spread over the clip, the video the face crops of key frames inside each segment's window.
# The figures show the key frames with the box each face crop was cut around, the log-mel with the
# segments the network sees, and the probabilities of every emotion segment by segment.
#
# By default the clips are held-out test clips of the synthetic corpus (one per emotion), so the
# predictions can be checked against the run's own; set `clips` to a list of video files to see yours.
# The same from a shell:
#
# ```
# hgrlib export runs/<hash> -o model.pt
# hgrlib predict my_clip.mp4 --model model.pt
# ```

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
clips = None  # list of video files to predict (None: one held-out test clip per emotion of the run)
lam = None  # the model: λ of the Soft-HGR terms (None: the profile's; 0: cross-entropy only)
modalities = "av"  # av (fusion) | a | v
fold = 0
seed = 0

# %%
from pathlib import Path

import numpy as np
from IPython.display import Markdown

from hgrlib.app.export import export_model, load_model
from hgrlib.app.predict import ClipFailure, predict_clips, predictions_frame
from hgrlib.data.datasets import index_dataset
from hgrlib.experiment.launch import train_all
from hgrlib.experiment.prepare import fold_seed_runs, run_features, setup
from hgrlib.report.plots import plot_key_frames, plot_log_mel, plot_segment_probs
from hgrlib.report.tables import show

S = setup(profile, dataset, root, classes, cache_dir, results_dir, figures_dir, lam, folds=folds, jobs=jobs)
P, fs, lam = S.profile, S.fs, S.lam

# %% [markdown]
# ## The model: a run of notebook 02, exported
#
# The run is read back from `runs_dir` (trained here only if notebook 02 has not trained it). The
# export packs its best epoch's weights (`weights.pt` in the run folder) with its configs, class names
# and normalisation statistics, after checking that the exported model gives the run's own predictions
# on every clip. The model file goes to `runs_dir/exports/`, not to the results (it is a binary).

# %%
cfg = next(c for c in fold_seed_runs(P.config.with_(model={"modalities": modalities}, loss={"lam": lam}), P.seeds, fs)
           if c.train.fold == fold and c.train.seed == seed)
run = train_all([cfg], fs, runs_dir, jobs=S.jobs)[0]
model_file = Path(runs_dir) / "exports" / f"{Path(run['run_dir']).name}.pt"
report = export_model(run["run_dir"], model_file, cache_dir, fs=fs)
print(report.summary())
model = load_model(model_file)
print("features:", model.features)

# %% [markdown]
# ## The clips

# %%
records, _ = index_dataset(P.config.data.dataset, P.config.data.root, classes=P.config.data.classes)
truth = {r.path: r.emotion for r in records}
run_probs = {}
if clips is None:
    saved = run_features(run)
    test = {c: p for c, part, p in zip(saved["clip_ids"], saved["part"], saved["probs"]) if part == "test"}
    chosen = {}
    for r in records:
        if r.clip_id in test and r.emotion not in chosen:
            chosen[r.emotion] = r
    inputs = [chosen[e] for e in fs.classes if e in chosen]
    run_probs = {r.path: test[r.clip_id] for r in inputs}
else:
    inputs = [str(c) for c in clips]
results = predict_clips(model, inputs, keep_view=True)
preds = [p for p in results if not isinstance(p, ClipFailure)]
failures = [p for p in results if isinstance(p, ClipFailure)]
table = predictions_frame(preds, truth)
if preds and not table["true"].any():  # none of the clips is from the corpus: no true emotion to show
    table = table.drop(columns="true")
if run_probs:  # the same clips, as the run scored them from its feature cache
    table.insert(3, "max_diff_vs_run", [round(float(np.abs(p.probs - run_probs[p.clip]).max()), 6) for p in preds])
title = f"Predictions of the {modalities} model (λ={lam}, fold {fold}, seed {seed}) ({S.tag})"
S.table(table, "08_predictions", show=False, title=title)
for f in failures:
    print("not predicted:", f.error)
show(table.drop(columns=[c for c in table.columns if c.startswith("p_")]), caption=title + "; class probabilities in the CSV")

# %% [markdown]
# `predicted` is the emotion with the highest clip probability `p` (the mean over the clip's segments),
# `segments` the emotion each segment alone gives, in time order. `max_diff_vs_run` (test clips of the
# corpus) is the largest difference between these probabilities and those the run itself computed from
# its feature cache: the preprocessing here is the training's own. `faces_*` count the key frames where
# the detector found a face, where the box was borrowed from the clip's other key frames, and centre crops.

# %%
if preds:
    fig = plot_key_frames(preds)
    S.figure(fig, "08_key_frames.png")

# %%
if preds:
    fig = plot_log_mel(preds)
    S.figure(fig, "08_log_mel.png")

# %%
if preds:
    fig = plot_segment_probs(preds)
    S.figure(fig, "08_segment_probs.png")

# %%
n, right = len(preds), int((table["predicted"] == table["true"]).sum()) if preds and clips is None else None
lines = [f"**What was predicted.** {n} clip(s) with the {report.describe}."]
if right is not None:
    lines.append(f"{right} of the {n} held-out test clips are predicted as their true emotion; the probabilities match the "
                 f"run's own to within {max(table['max_diff_vs_run'].max(), 1e-6):.0e}.")
for p in preds:
    agree = sum(e == p.emotion for e in p.seg_emotions)
    lines.append(f"- `{Path(p.clip).name}`: **{p.emotion}** ({p.probs.max():.2f}); {agree} of {len(p.seg_emotions)} segments "
                 f"agree; faces: {p.face_report()}.")
lines += [f"- `{Path(f.clip).name}`: not predicted ({f.error})." for f in failures]
Markdown("\n".join(lines))
