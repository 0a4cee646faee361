# %% [markdown]
# # 01 · Data preparation
#
# *Where things are.* This notebook's source is `notebooks/01_data_prep.ipynb` (no outputs; its text twin
# `notebooks/src/01_data_prep.py`). `./run_all.sh` executes it into `results/synthetic-default/01_data_prep.ipynb`, with
# every output shown (another dataset or profile: `results/<dataset>-<profile>/`); the tables it writes lie
# beside that copy (`01_*.csv`, `.md`) and its figures in `figures/synthetic-default/`. `results/README.md`
# lists them all.
#
# Makes (or indexes) the clips, extracts the features every later notebook uses, and fills the
# feature cache: per clip, `n_segments` aligned segments of a 94-band log-mel spectrogram (40 ms Hann
# window, 10 ms hop, after the authors' follow-up work) and face crops of key frames in the same time
# window (OpenCV's Haar cascade by default, MTCNN with `features.detector=mtcnn`). On the default
# synthetic corpus the clips are generated first, as real `.mp4`/`.wav` files in RAVDESS's layout, so
# the same loader and decoders run as on real data.
# Re-running reuses the cache; a broken clip is reported and skipped.

# %% tags=["parameters"]
# Defaults. An executed copy ran with the values of the next cell ("# Parameters", injected by run_all.sh).
profile = "default"  # smoke | default | paper
dataset = "synthetic"  # synthetic | ravdess | enterface | baum1s | manifest
root = None  # folder of a real dataset (None: the profile's synthetic corpus)
classes = 6  # 6 basic emotions (the paper's), or 8 (RAVDESS)
cache_dir = "cache"
workers = 2
figures_dir = "figures"
results_dir = "results"
folds = "shipped"  # subject folds of ravdess/enterface/baum1s: shipped (hgrlib/data/shipped_folds) | present (made from the subjects on disk)

# %%
from pathlib import Path

from hgrlib.base.io import write_json
from hgrlib.experiment.prepare import load_featureset, prepare_data, setup
from hgrlib.report import plots
from hgrlib.report.tables import show

S = setup(profile, dataset, root, classes, cache_dir, results_dir, figures_dir, load=False, folds=folds)  # the features are made below
cfg = S.config
print(S.tag, cfg.data, cfg.features, sep="\n")

# %%
index_report, prep_report = prepare_data(cfg.data, cfg.features, cache_dir, S.profile.synthetic, workers=workers)
write_json(f"{S.out_res}/01_prep_report.json", {"index": {"accepted": index_report.accepted, "skipped": index_report.skipped},
                                              "prep": prep_report.__dict__})
print(index_report.summary())
print(prep_report.summary())

# %%
fs = load_featureset(cfg.data, cfg.features, cache_dir)
import pandas as pd

counts = pd.crosstab(pd.Series([fs.classes[y] for y in fs.labels], name="emotion"), pd.Series(["clips"] * len(fs.labels), name=""))
counts["subjects"] = [len({s for s, y in zip(fs.subjects, fs.labels) if fs.classes[y] == e}) for e in counts.index]
print(f"audio segments {fs.audio.shape}, face crops {fs.faces.shape}, {len(set(fs.subjects))} subjects")
S.table(counts.reset_index(), "01_class_counts", title=f"Clips and subjects per emotion ({S.tag})")

# %%
fig = plots.examples(fs)
S.figure(fig, "01_examples.png");

# %% [markdown]
# Each column is one clip of one emotion: its first log-mel segment (top) and the face crop of its
# first key frame (bottom). The report above counts key frames where the detector found a face,
# where a box was borrowed from the clip's other key frames, and clips that fell back to a centre crop.

# %% [markdown]
# ### Clips whose faces were mostly not found
#
# The clips the report above names: no face detected in any key frame (every crop a centre crop), or
# in fewer than half of them (the others borrow the median of the clip's boxes). Below, up to three of
# them: one key frame per segment with the box its crop was cut around, by the same
# `extract_clip` that made the features (`features.detector`, `features.min_face`: docs/design.md, "Face detection").

# %%
from hgrlib.data.datasets import index_dataset
from hgrlib.data.faces import make_detector
from hgrlib.data.features import extract_clip

problems = prep_report.face_problems(limit=None)
print(f"{len(problems)} of {prep_report.extracted + prep_report.cached} clips with most key frames not detected "
      f"(detector {cfg.features.detector}, min_face {cfg.features.min_face})")
show(pd.DataFrame(problems or [("(none)", "a face detected in most key frames of every clip")], columns=["clip", "faces"]).head(20))

# %%
if problems:
    import matplotlib.pyplot as plt

    by_path = {r.path: r for r in index_dataset(cfg.data.dataset, cfg.data.root, classes=cfg.data.classes)[0]}
    shown, det = [p for p, _ in problems if p in by_path][:3], make_detector(cfg.features)
    k, s = cfg.features.frames_per_segment, cfg.features.n_segments
    fig, axes = plt.subplots(len(shown), s, figsize=(1.6 * s, 1.5 * len(shown) + 0.5), squeeze=False)
    for row, path in enumerate(shown):
        view: dict = {}
        extract_clip(by_path[path], cfg.features, det, view)
        for i, ax in enumerate(axes[row]):
            j = i * k + k // 2  # the middle key frame of segment i
            plots.key_frame(ax, view["frames"][j], view["boxes"][j], view["how"][j], f"{view['key_times'][j]:.2f} s: {view['how'][j]}", fontsize=8)
            ax.axis("off")
        axes[row, 0].text(-0.08, 0.5, Path(path).stem, transform=axes[row, 0].transAxes, rotation=90, ha="right", va="center", fontsize=8)
    fig.suptitle("Key frames of clips whose faces were mostly not found, with the box each crop is cut around\n"
                 "(green: detected, orange dashed: borrowed from the clip's other key frames, red dotted: centre crop)", fontsize=9)
    fig.tight_layout()
    S.figure(fig, "01_faces_not_found.png");
