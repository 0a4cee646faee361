"""Data parallelism with global-batch Soft-HGR: 2 gloo ranks on the CPU == one process on the global batch.

One spawn of 2 processes runs every case (to stay well under a minute); each rank writes the global
loss (mean over ranks of its returned loss) and its parameter gradients after DDP's all-reduce, and
the parent compares them with the single-process values computed here.

BatchNorm: in training mode each rank normalises with its own shard's statistics, which is plain
DDP behaviour and not what one process on the global batch does; the model cases therefore put the
BN layers in eval mode (running statistics) so that the comparison can be exact. Dropout is 0.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from hgrlib.config import LossConfig, ModelConfig
from hgrlib.distributed import ddp_joint_loss, shard
from hgrlib.losses import gather_batch, soft_hgr
from hgrlib.models import EmotionModel

WORLD, B, D = 2, 16, 6
MCFG = ModelConfig(dim=8, width=4, dropout=0.0)
JOINT = LossConfig(lam=0.5, w_ce_uni=0.3)


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(B, 10, generator=g)
    audio = torch.randn(B, 1, 24, 16, generator=g)
    faces = torch.randn(B, 3, 3, 16, 16, generator=g)
    y = torch.randint(0, 6, (B,), generator=g)
    lab_even = np.array([1, 0, 1, 1, 0, 1, 1, 1, 0, 1, 1, 0, 1, 1, 0, 0], bool)  # 10 labeled: 5 per rank after dealing
    lab_odd = np.array([1, 1, 1, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 1, 1], bool)  # 7 labeled: 4 and 3 per rank
    return x, audio, faces, y, lab_even, lab_odd


class PairNet(nn.Module):
    """Two small MLPs: f(x), g(x) of dimension D."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.f = nn.Sequential(nn.Linear(10, 12), nn.Tanh(), nn.Linear(12, D))
        self.g = nn.Sequential(nn.Linear(10, 12), nn.Tanh(), nn.Linear(12, D))

    def forward(self, x):
        return self.f(x), self.g(x)


def _model() -> EmotionModel:
    torch.manual_seed(2)
    m = EmotionModel(6, 1, 3, MCFG)
    m.train()
    for mod in m.modules():
        if isinstance(mod, nn.modules.batchnorm._BatchNorm):
            mod.eval()
    return m


def _grads(m: nn.Module) -> dict[str, torch.Tensor]:
    return {k: p.grad.detach().clone() for k, p in m.named_parameters() if p.grad is not None}


def _hgr_step(net, x):
    f, g = net(x)
    loss = -soft_hgr(gather_batch(f), gather_batch(g))
    loss.backward()
    return loss


def _joint_step(model, audio, faces, y, lab, cfg):
    out = model(audio, faces, y)
    loss, _ = ddp_joint_loss(out, y, torch.from_numpy(lab), cfg)
    loss.backward()
    return loss


def _reference() -> dict:
    """Single process, global batch (torch.distributed not initialised: gather_batch is the identity)."""
    x, audio, faces, y, lab_even, lab_odd = _data()
    res = {}
    net = PairNet()
    res["hgr"] = (float(_hgr_step(net, x).detach()), _grads(net))
    for name, lab, cfg in (("joint", lab_even, JOINT), ("ce_odd", lab_odd, LossConfig(lam=0.0, w_ce_uni=0.3))):
        m = _model()
        res[name] = (float(_joint_step(m, audio, faces, y, lab, cfg).detach()), _grads(m))
    return res


def _worker(rank: int, init: str, out_dir: str) -> None:
    from torch.nn.parallel import DistributedDataParallel as DDP

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=WORLD)
    x, audio, faces, y, lab_even, lab_odd = _data()
    res = {}

    def mean_loss(loss):
        t = loss.detach().clone()
        dist.all_reduce(t)
        return float(t) / WORLD

    # Soft-HGR alone, contiguous halves
    half = slice(rank * B // WORLD, (rank + 1) * B // WORLD)
    net = PairNet()
    ddp = DDP(net)
    res["hgr"] = (mean_loss(_hgr_step(ddp, x[half])), _grads(net))
    # negative control: Soft-HGR of the local half only (no gather)
    with torch.no_grad():
        f, g = PairNet()(x[half])
        res["local_only"] = mean_loss(-soft_hgr(f, g))
    # joint loss with the model, rows dealt by hgrlib.distributed.shard
    for name, lab, cfg in (("joint", lab_even, JOINT), ("ce_odd", lab_odd, LossConfig(lam=0.0, w_ce_uni=0.3))):
        idx, lab_r = shard(np.arange(B), lab, rank, WORLD)
        i = torch.from_numpy(idx)
        m = _model()
        ddp = DDP(m, find_unused_parameters=cfg.lam == 0)  # lam=0: h(y) is computed but unused
        res[name] = (mean_loss(_joint_step(ddp, audio[i], faces[i], y[i], lab_r, cfg)), _grads(m))
    torch.save(res, f"{out_dir}/rank{rank}.pt")
    dist.barrier()
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    d = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(f"file://{d}/rendezvous", str(d)), nprocs=WORLD, join=True)
    ranks = [torch.load(d / f"rank{r}.pt") for r in range(WORLD)]
    return _reference(), ranks


@pytest.mark.parametrize("case", ["hgr", "joint", "ce_odd"])
def test_loss_and_grads_match_single_process(results, case):
    ref, ranks = results
    ref_loss, ref_grads = ref[case]
    for r in ranks:
        loss, grads = r[case]
        assert loss == pytest.approx(ref_loss, abs=1e-5, rel=1e-5)
        assert set(grads) == set(ref_grads)
        for k, gr in ref_grads.items():
            torch.testing.assert_close(grads[k], gr, atol=1e-5, rtol=1e-4, msg=f"{case}: gradient of {k}")


def test_local_half_batch_hgr_is_a_different_loss(results):
    """The bug the global gather guards against: per-rank Soft-HGR is not the global-batch objective."""
    ref, ranks = results
    assert abs(ranks[0]["local_only"] - ref["hgr"][0]) > 1e-3


def test_shard_deals_labeled_rows_evenly():
    lab = np.array([1, 1, 0, 1, 0, 0, 1, 1], bool)
    parts = [shard(np.arange(8), lab, r, 2) for r in range(2)]
    assert sorted(np.concatenate([p[0] for p in parts]).tolist()) == list(range(8))
    assert [int(p[1].sum()) for p in parts] == [3, 2]


def test_global_batches_hold_a_multiple_of_world_labeled_rows():
    from hgrlib.distributed import global_batches

    lab = np.random.default_rng(0).random(200) < 0.3
    batches = global_batches(200, lab, 32, 2, np.random.default_rng(1))
    assert batches and all(len(b) == 32 and lab[b].sum() % 2 == 0 and lab[b].sum() > 0 for b in batches)
    assert len(np.unique(np.concatenate(batches))) == 32 * len(batches)
