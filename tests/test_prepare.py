"""Several grids trained in one call (hgrlib.experiment.prepare.run_grids, notebook 02): every run's result, table row
and training history stay with its condition and its corpus draw."""

from __future__ import annotations

import pytest
from fixtures import random_featureset

from hgrlib.config import Config
from hgrlib.experiment.prepare import Corpus, fold_seed_runs, histories_by_condition, run_grids
from hgrlib.experiment.runs import cached_fit

CFG = Config().with_(model={"dim": 8, "width": 4}, train={"epochs": 1, "batch_size": 16, "threads": 1, "n_folds": 3})
ONE, TWO = "one epoch", "two epochs"  # conditions told apart by the length of their histories
CONDITIONS = {ONE: {"train": {"epochs": 1}}, TWO: {"train": {"epochs": 2}}}


def test_histories_by_condition_keeps_each_history_with_its_condition_in_run_order():
    results = [{"history": [{"epoch": i}]} for i in range(4)]
    out = histories_by_condition(results, ["b", "a", "b", "a"])
    assert list(out) == ["b", "a"]  # conditions in the order they first appear
    assert out == {"b": [[{"epoch": 0}], [{"epoch": 2}]], "a": [[{"epoch": 1}], [{"epoch": 3}]]}
    with pytest.raises(ValueError, match="3 results for 4"):
        histories_by_condition(results[:3], ["b", "a", "b", "a"])


def test_run_grids_keeps_results_rows_and_histories_with_their_condition_and_corpus(tmp_path):
    a = Corpus("corpus A", CFG, random_featureset(96))
    b = Corpus("corpus B", CFG.with_(train={"lr": 3e-3}), random_featureset(72))  # another draw: other data, other runs
    seeds = [0]
    grids = [(CONDITIONS, a), ({TWO: CONDITIONS[TWO]}, b)]
    T = run_grids(grids, seeds, str(tmp_path), progress=False)

    # what each (corpus, condition) should have trained, folds outer, conditions in order, grids in order
    expected = [
        (q, n, c) for conds, q in grids for n, change in conds.items() for c in fold_seed_runs(q.config.with_(**change), seeds, q.fs)
    ]
    assert len(T.results) == len(T.runs) == len(expected) == 3 * 3
    assert list(T.runs["corpus"]) == [q.label for q, _, _ in expected]
    assert list(T.runs["condition"]) == [n for _, n, _ in expected]
    assert [r["config"] for r in T.results] == [c.to_dict() for _, _, c in expected]
    assert list(T.runs["fold"]) == [c.train.fold for _, _, c in expected]

    # every history is the one its run wrote (read back here, not trained again), under its own condition
    own = {
        (q.label, n): [cached_fit(c, q.fs, str(tmp_path), progress=False)["history"] for p, m, c in expected if (p, m) == (q, n)]
        for q, n, _ in expected
    }
    h = T.histories()
    assert list(h) == [ONE, TWO]
    assert h[ONE] == own[("corpus A", ONE)]
    assert h[TWO] == own[("corpus A", TWO)] + own[("corpus B", TWO)]  # grids in order: corpus A's runs, then B's
    assert {len(run) for run in h[ONE]} == {1} and {len(run) for run in h[TWO]} == {2}
    assert T.histories([TWO], "corpus B") == {TWO: own[("corpus B", TWO)]}
    assert own[("corpus A", TWO)] != own[("corpus B", TWO)]  # the corpora's runs differ, so a mix-up would show

    # selections: rows and results stay aligned and keep the run order
    rows = T.frame([TWO], "corpus B")
    assert list(rows.index) == [0, 1, 2] and set(rows["corpus"]) == {"corpus B"} and set(rows["condition"]) == {TWO}
    assert [r["test"]["acc"] for r in T.results_of([TWO], "corpus B")] == list(rows["acc"])
    assert len(T.frame([ONE, TWO])) == 9 and len(T.frame(corpus="corpus A")) == 6


def test_run_grids_refuses_a_condition_twice_on_one_corpus(tmp_path):
    a = Corpus("corpus A", CFG, random_featureset(96))
    with pytest.raises(ValueError, match="two epochs.*corpus A"):
        run_grids([(CONDITIONS, a), ({TWO: CONDITIONS[TWO]}, a)], [0], str(tmp_path), progress=False)
