# %% [markdown]
# # 01 · Data preparation
#
# Makes (or indexes) the clips, extracts the features every later notebook uses, and fills the
# feature cache: per clip, `n_segments` aligned segments of a 94-band log-mel spectrogram (40 ms Hann
# window, 10 ms hop, after the authors' follow-up work) and face crops of key frames in the same time
# window (OpenCV Haar detector). On the default synthetic corpus the clips are generated first, as
# real `.mp4`/`.wav` files in RAVDESS's layout, so the same loader and decoders run as on real data.
# Re-running reuses the cache; a broken clip is reported and skipped.

# %% tags=["parameters"]
profile = "default"  # smoke | default | paper
dataset = "synthetic"  # synthetic | ravdess | enterface | baum1s | manifest
root = None  # folder of a real dataset (None: the profile's synthetic corpus)
classes = 6  # 6 basic emotions (the paper's), or 8 (RAVDESS)
cache_dir = "cache"
workers = 2
figures_dir = "figures"
results_dir = "results"

# %%
from hgrlib import plots
from hgrlib.experiment import load_featureset, prepare_data, setup
from hgrlib.io import write_json
from hgrlib.report import save_figure, show, write_table

S = setup(profile, dataset, root, classes, cache_dir, results_dir, figures_dir, load=False)  # the features are made below
P, cfg, tag, out_res, out_fig = S.profile, S.config, S.tag, S.out_res, S.out_fig
print(tag, cfg.data, cfg.features, sep="\n")

# %%
index_report, prep_report = prepare_data(cfg.data, cfg.features, cache_dir, P.synthetic, workers=workers)
write_json(f"{out_res}/01_prep_report.json", {"index": {"accepted": index_report.accepted, "skipped": index_report.skipped},
                                              "prep": prep_report.__dict__})
print(index_report.summary())
print(prep_report.summary())

# %%
fs = load_featureset(cfg.data, cfg.features, cache_dir)
import pandas as pd

counts = pd.crosstab(pd.Series([fs.classes[y] for y in fs.labels], name="emotion"), pd.Series(["clips"] * len(fs.labels), name=""))
counts["subjects"] = [len({s for s, y in zip(fs.subjects, fs.labels) if fs.classes[y] == e}) for e in counts.index]
write_table(counts.reset_index(), f"{out_res}/01_class_counts", title=f"Clips per emotion ({tag})")
print(f"audio segments {fs.audio.shape}, face crops {fs.faces.shape}, {len(set(fs.subjects))} subjects")
show(counts.reset_index())

# %%
fig = plots.examples(fs)
save_figure(fig, f"{out_fig}/01_examples.png");

# %% [markdown]
# Each column is one clip of one emotion: its first log-mel segment (top) and the face crop of its
# first key frame (bottom). The report above counts key frames where the detector found a face,
# where a box was borrowed from the clip's other key frames, and clips that fell back to a centre crop.
