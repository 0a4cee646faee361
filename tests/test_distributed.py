"""Data parallelism is the same training: 2 gloo ranks on the CPU against one process on the global batch.

One spawn of 2 processes runs every case (to stay under a minute); each rank saves what it computed
and the parent compares it with the single-process values computed here:
  * one optimiser step of `train.train_one_epoch` (BatchNorm in training mode, dropout 0): parameters
    and BatchNorm running statistics after the step equal one process's to float tolerance;
  * a whole `runs.cached_fit` (checkpoints, validation selection, test, result.json) of a small config:
    every epoch's losses within 1e-4 (relative) and the same test confusion matrix;
  * non-finite steps (every other loss NaN) are skipped on every rank alike;
  * negative control: Soft-HGR of each rank's half batch is a different number.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from fixtures import random_featureset

from hgrlib.config import Config, LossConfig, ModelConfig
from hgrlib.core.distributed import shard
from hgrlib.core.losses import soft_hgr

WORLD = 2
CFG = Config().with_(
    model={"dim": 8, "width": 4, "dropout": 0.0},
    loss={"lam": 0.3, "w_ce_uni": 0.3},
    train={"epochs": 2, "batch_size": 16, "threads": 1, "lr": 3e-3},
)


def _one_step() -> dict:
    """One step of train_one_epoch on a fixed batch (SGD, so the update is the gradient); parameters and
    BatchNorm buffers after it."""
    from hgrlib.core.distributed import global_batchnorm, world
    from hgrlib.core.models import EmotionModel
    from hgrlib.core.train import Batcher, train_one_epoch

    fs = random_featureset()
    torch.manual_seed(2)
    model = EmotionModel(6, 1, 3, ModelConfig(dim=8, width=4, dropout=0.0))
    forward = model
    if world()[1] > 1:
        forward = torch.nn.parallel.DistributedDataParallel(global_batchnorm(model), find_unused_parameters=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    rows = np.arange(0, 64, 4)  # 16 segments of different clips
    lab = np.array([1, 0, 1, 1, 0, 1, 1, 1, 0, 1, 1, 0, 1, 1, 0, 0], bool)  # 6 labeled in the first half, 4 in the second
    import contextlib

    train_one_epoch(
        model,
        forward,
        opt,
        sched,
        Batcher(fs, np.arange(192), torch.device("cpu")),
        [(rows, lab)],
        LossConfig(lam=0.5, w_ce_uni=0.3),
        contextlib.nullcontext(),
    )
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _fit(runs_dir: str, cfg: Config = CFG) -> dict:
    from hgrlib.experiment.runs import cached_fit

    return cached_fit(cfg, random_featureset(), runs_dir, progress=False)


def _nan_every_other(monkeypatch_target):
    real, calls = monkeypatch_target.joint_loss, []

    def every_other_nan(*a, **k):
        loss, parts = real(*a, **k)
        calls.append(1)
        return (loss * float("nan"), parts) if len(calls) % 2 else (loss, parts)

    monkeypatch_target.joint_loss = every_other_nan
    return real


def _worker(rank: int, init: str, out_dir: str) -> None:
    import hgrlib.core.train as train

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=WORLD)
    res = {"step": _one_step(), "fit": _fit(f"{out_dir}/runs")}
    real = _nan_every_other(train)
    res["nonfinite"] = _fit(f"{out_dir}/runs_nan", CFG.with_(train={"epochs": 1}))
    train.joint_loss = real
    with torch.no_grad():  # negative control: Soft-HGR of this rank's half only
        f, g = torch.randn(16, 6, generator=torch.Generator().manual_seed(0)).split(3, dim=1)
        t = soft_hgr(*(x[shard(np.arange(16), rank, WORLD)] for x in (f, g))).reshape(1)
        dist.all_reduce(t)
        res["local_only"] = float(t) / WORLD
    torch.save(res, f"{out_dir}/rank{rank}.pt")
    dist.barrier()
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    import hgrlib.core.train as train

    d = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(f"file://{d}/rendezvous", str(d)), nprocs=WORLD, join=True)
    ranks = [torch.load(d / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
    ref = {"step": _one_step(), "fit": _fit(str(d / "one"))}
    real = _nan_every_other(train)
    try:
        ref["nonfinite"] = _fit(str(d / "one_nan"), CFG.with_(train={"epochs": 1}))
    finally:
        train.joint_loss = real
    f, g = torch.randn(16, 6, generator=torch.Generator().manual_seed(0)).split(3, dim=1)
    ref["hgr"] = float(soft_hgr(f, g))
    return ref, ranks


@pytest.mark.slow
def test_one_step_matches_single_process_with_batchnorm_in_training_mode(results):
    ref, ranks = results
    for r in ranks:
        assert set(r["step"]) == set(ref["step"])
        for k, x in ref["step"].items():  # weights after the update, and BN running mean/var
            torch.testing.assert_close(r["step"][k].float(), x.float(), atol=2e-6, rtol=1e-5, msg=f"rank state {k}")


def test_ddp_run_writes_the_metrics_of_a_single_process_run(results):
    """Tolerance: losses within 1e-4 relative per epoch, the same test confusion matrix (summation order
    differs, so not bit for bit; the runs are keyed apart: execution key ...-ddp2)."""
    ref, ranks = results
    one = ref["fit"]
    for r in ranks:
        two = r["fit"]
        assert two["world_size"] == 2 and one["world_size"] == 1 and two["run_dir"] != one["run_dir"]
        assert two["key"]["exec"].endswith("-ddp2") and two["steps"] == one["steps"]
        assert [h["epoch"] for h in two["history"]] == [h["epoch"] for h in one["history"]]
        for h2, h1 in zip(two["history"], one["history"]):
            for k in ("loss", "ce", "s_av", "s_ay", "s_vy"):
                assert h2[k] == pytest.approx(h1[k], rel=1e-4, abs=1e-6), (h2["epoch"], k)
            assert h2["val_uar"] == h1["val_uar"]
        assert two["test"]["confusion"] == one["test"]["confusion"]
        assert two["features_sha256"] == ranks[0]["fit"]["features_sha256"]  # one file, written by rank 0


def test_nonfinite_steps_are_skipped_alike_on_every_rank(results):
    ref, ranks = results
    n = ref["nonfinite"]["history"][0]["nonfinite_steps"]
    assert n > 0 and all(r["nonfinite"]["history"][0]["nonfinite_steps"] == n for r in ranks)
    assert all(np.isfinite(r["nonfinite"]["history"][0]["loss"]) for r in ranks)


def test_local_half_batch_hgr_is_a_different_loss(results):
    """The bug gathering guards against: per-rank Soft-HGR is not the global-batch objective."""
    ref, ranks = results
    assert abs(ranks[0]["local_only"] - ref["hgr"]) > 1e-3


def test_shard_splits_a_batch_into_contiguous_equal_parts():
    parts = [shard(np.arange(8), r, 2) for r in range(2)]
    assert np.concatenate(parts).tolist() == list(range(8))
    with pytest.raises(ValueError, match="multiple of 2"):
        shard(np.arange(7), 0, 2)
