"""The controls claims rest on: matched optimiser steps, the three split protocols, every fold x seed,
non-finite steps counted per run, a second corpus kept apart."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hgrlib.config import FeatureConfig
from hgrlib.core.train import epoch_order, setup_run
from hgrlib.data.cache import FeatureCache
from hgrlib.data.splits import make_split
from hgrlib.experiment.prepare import fold_seed_runs, results_frame
from hgrlib.experiment.profiles import get_profile, with_corpus_seed
from hgrlib.experiment.runs import cached_fit


def test_epoch_order_cycles_through_every_row_before_repeating_one():
    plain = epoch_order(10, 8, seed=3, epoch=1)
    assert list(plain) == list(np.random.default_rng([3, 1]).permutation(10)[:8])  # a plain epoch: one permutation
    long = epoch_order(10, 27, seed=3, epoch=1)
    assert len(long) == 27
    for k in range(2):  # each block of 10 is a permutation: no row dropped, none seen twice before all once
        assert sorted(long[10 * k : 10 * (k + 1)]) == list(range(10))
    assert not np.array_equal(long[:10], long[10:20])


def test_matched_steps_give_labeled_only_runs_the_steps_of_labeled_plus_unlabeled(tiny, tmp_path):
    cfg, fs, _ = tiny
    base = cfg.with_(train={"labeled_frac": 0.34, "batch_size": 8, "epochs": 1})
    both = cached_fit(base, fs, str(tmp_path), progress=False)
    plain = cached_fit(base.with_(train={"use_unlabeled": False}), fs, str(tmp_path), progress=False)
    matched = cached_fit(base.with_(train={"use_unlabeled": False, "match_steps": True}), fs, str(tmp_path), progress=False)
    assert plain["n_train_segments"] == matched["n_train_segments"] < both["n_train_segments"]
    assert plain["steps"] < both["steps"] == matched["steps"] == both["n_train_segments"] // 8
    df = results_frame([both, plain, matched])
    assert list(df["steps"]) == [both["steps"], plain["steps"], matched["steps"]]


def test_a_fixed_labeled_share_per_batch_gives_both_arms_the_same_labeled_rows_per_step(tiny):
    cfg, fs, _ = tiny
    base = cfg.with_(train={"labeled_frac": 0.34, "batch_size": 8, "labeled_per_batch": 4, "match_steps": True})
    semi = setup_run(base, fs, torch.device("cpu"))
    alone = setup_run(base.with_(train={"use_unlabeled": False}), fs, torch.device("cpu"))
    assert semi.n_batches == alone.n_batches == len(semi.split.train) // 8  # the same optimiser steps
    lab_rows = set(semi.split.train[semi.split.labeled])
    for epoch in range(2):
        b_semi, b_alone = semi.batches(epoch), alone.batches(epoch)
        for (rows, lab), (rows_a, lab_a) in zip(b_semi, b_alone):
            assert list(lab) == [True] * 4 + [False] * 4 and lab_a.all() and len(rows_a) == 4
            assert set(rows[:4]) <= lab_rows and not set(rows[4:]) & lab_rows  # the mask says which rows are labeled
            assert list(rows[:4]) == list(rows_a)  # the same labeled rows at every step: only the unlabeled ones differ
        seen = np.concatenate([r[:4] for r, _ in b_semi])  # the labeled rows cycle: none twice before all once
        first = seen[: len(lab_rows)]
        assert len(set(first)) == len(first)
    with pytest.raises(ValueError, match="labeled_per_batch"):
        cfg.with_(train={"batch_size": 8, "labeled_per_batch": 9})


def _toy(n_subjects=8, per=6):
    subjects = [f"{s:02d}" for s in range(1, n_subjects + 1) for _ in range(per)]
    return subjects, np.tile(np.arange(6), n_subjects)


def test_random_protocols_train_on_as_many_segments_as_the_subject_protocol():
    subjects, labels = _toy()
    n_seg = 3
    sizes = {}
    for protocol in ("subject", "clip", "segment"):
        sp = make_split(subjects, labels, n_seg, dataset="synthetic", protocol=protocol, n_folds=4, fold=1, seed=0)
        assert len(set(sp.train) | set(sp.val) | set(sp.test)) == len(subjects) * n_seg  # a partition
        assert not (set(sp.train) & set(sp.test)) and not (set(sp.val) & set(sp.test))
        sizes[protocol] = (len(sp.train), len(sp.val), len(sp.test))
    assert sizes["clip"] == sizes["segment"] == sizes["subject"]
    clip = make_split(subjects, labels, n_seg, dataset="synthetic", protocol="clip", n_folds=4, fold=1, seed=0)
    seg = make_split(subjects, labels, n_seg, dataset="synthetic", protocol="segment", n_folds=4, fold=1, seed=0)
    clips = lambda idx: {i // n_seg for i in idx}  # noqa: E731
    subj = lambda idx: {subjects[i // n_seg] for i in idx}  # noqa: E731
    assert not (clips(clip.train) & clips(clip.test)) and subj(clip.train) & subj(clip.test)  # speakers shared, clips not
    assert clips(seg.train) & clips(seg.test)  # segments of one clip on both sides
    other = make_split(subjects, labels, n_seg, dataset="synthetic", protocol="clip", n_folds=4, fold=2, seed=0)
    assert not np.array_equal(clip.test, other.test)  # fold indexes distinct draws


def test_fold_seed_runs_cover_every_fold_with_every_seed(tiny):
    cfg, fs, _ = tiny
    cfgs = fold_seed_runs(cfg, [0, 1], fs)
    pairs = [(c.train.fold, c.train.seed) for c in cfgs]
    assert pairs == [(f, s) for f in range(3) for s in (0, 1)]


def test_a_second_corpus_draw_has_its_own_folder_and_feature_cache(tmp_path):
    p = get_profile("smoke")
    r = with_corpus_seed(p, 1)
    assert r.synthetic.seed == 1 and r.config.data.root != p.config.data.root
    assert with_corpus_seed(p, p.synthetic.seed) is p
    a = FeatureCache(tmp_path, "synthetic", FeatureConfig(), p.config.data.root)
    b = FeatureCache(tmp_path, "synthetic", FeatureConfig(), r.config.data.root)
    assert a.root != b.root
    with pytest.raises(ValueError, match="synthetic"):
        with_corpus_seed(get_profile("smoke", "ravdess", "/nowhere"), 1)
