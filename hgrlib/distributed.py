"""Data-parallel training under torchrun, with Soft-HGR statistics over the GLOBAL batch.

    python -m torch.distributed.run --nproc_per_node=2 -m hgrlib.distributed --profile smoke --random-data
    python -m torch.distributed.run --nproc_per_node=2 -m hgrlib.distributed --profile default --cache cache

(without --random-data the feature cache must have been filled first: `hgrlib prep --profile ...`).

Why the global batch matters. Soft-HGR is a function of batch *statistics*: the means used to centre
f and g and the d×d covariances. Computed on each rank's shard, they become the statistics of a
batch of B/W rows: a different, noisier objective (the covariance trace term is biased differently
at every batch size), so the loss would silently change with the number of processes. Here each
rank's features are concatenated over ranks with `losses.gather_batch` (an all_gather that keeps
gradients) before `soft_hgr`, so every rank computes the same S on the same B rows as one process.

How the gradients come out right (verified numerically in tests/test_distributed.py, 2 ranks):
  * every rank computes the identical global S; the backward of all_gather SUMS the W identical
    upstream gradients into each rank's own rows, so rank r holds W·∂S/∂f_r;
  * DDP then AVERAGES parameter gradients over ranks: (1/W)·Σ_r W·∂S/∂f_r·∂f_r/∂θ = ∂S/∂θ, the
    single-process gradient. The factor W and DDP's 1/W cancel: no rescaling of the HGR part.
  * Cross-entropy is a mean over each rank's own labeled rows; DDP's average of those means is the
    global mean only if every rank holds the same number of labeled rows, so the CE part of rank r is
    weighted by W·n_r/N (n_r its labeled rows, N the global count): exact for any split.
  * BatchNorm uses per-rank batch statistics in training mode (plain DDP behaviour; on CUDA the
    model is converted to SyncBatchNorm, which gloo/CPU does not support). This is the only
    difference from one process on the global batch; the test compares with BN in eval mode.
Limitation: `losses.gather_batch` needs the same number of rows on every rank, including the
labeled rows that enter S(f,h), S(g,h). The sampler below therefore draws each global batch with a
multiple of W labeled rows and deals labeled and unlabeled rows evenly to the ranks.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel as DDP

from hgrlib.config import LossConfig
from hgrlib.losses import joint_loss


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) when torch.distributed is not initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shard(idx: np.ndarray, labeled: np.ndarray, rank: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """This rank's rows of a global batch: labeled and unlabeled rows dealt round-robin, so the shards
    differ in their labeled count by at most one (equal when that count is a multiple of `size`)."""
    lab = np.flatnonzero(labeled)[rank::size]
    unl = np.flatnonzero(~labeled)[rank::size]
    rows = np.concatenate([lab, unl])
    return idx[rows], labeled[rows]


def ddp_joint_loss(out: dict[str, Tensor], y: Tensor, labeled: Tensor, cfg: LossConfig) -> tuple[Tensor, dict[str, float]]:
    """This rank's share of the global joint loss, scaled so that DDP's gradient average is the exact
    single-process gradient of the global loss; the mean over ranks of the returned loss is its value."""
    _, size = world()
    ce_cfg = LossConfig(**{**cfg.__dict__, "lam": 0.0})
    ce, parts = joint_loss(out, y, labeled, ce_cfg)
    if size > 1:
        n = torch.tensor([float(labeled.sum())], device=ce.device)
        n_all = n.clone()
        dist.all_reduce(n_all)
        ce = ce * (size * n / n_all.clamp_min(1.0))[0]
    if cfg.lam <= 0:
        return ce, parts
    hgr_cfg = LossConfig(**{**cfg.__dict__, "w_ce": 0.0, "w_ce_uni": 0.0})
    hgr, hparts = joint_loss(out, y, labeled, hgr_cfg)  # S terms over the global batch (gather_batch)
    loss = ce + hgr
    return loss, parts | {k: v for k, v in hparts.items() if k.startswith("s_")} | {"loss": float(loss.detach())}


def global_batches(n: int, labeled: np.ndarray, batch: int, size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """One epoch of global batches (positions into the training rows), each of `batch` rows with a
    multiple of `size` labeled rows, so the labeled shards are equal on every rank."""
    lab, unl = rng.permutation(np.flatnonzero(labeled)), rng.permutation(np.flatnonzero(~labeled))
    k_lab = int(round(batch * len(lab) / max(n, 1) / size)) * size
    k_lab = max(min(k_lab, batch), size if len(lab) else 0)
    k_unl = batch - k_lab
    n_b = min(len(lab) // k_lab if k_lab else 10**9, len(unl) // k_unl if k_unl else 10**9)
    return [np.concatenate([lab[b * k_lab:(b + 1) * k_lab], unl[b * k_unl:(b + 1) * k_unl]]) for b in range(n_b)]


def _random_featureset(n_clips: int, cfg, seed: int = 0):
    """Random features with the profile's shapes: a data-free smoke run of the distributed loop."""
    from hgrlib.train import FeatureSet

    f, r = cfg.features, np.random.default_rng(seed)
    c = 3 if f.deltas else 1
    return FeatureSet(
        clip_ids=[f"c{i}" for i in range(n_clips)], subjects=[f"{i % 12 + 1:02d}" for i in range(n_clips)],
        labels=r.integers(0, 6, n_clips), classes=("anger", "disgust", "fear", "happiness", "sadness", "surprise"),
        audio=r.normal(size=(n_clips, f.n_segments, c, f.n_mels, f.segment_frames)).astype(np.float16),
        faces=r.integers(0, 256, (n_clips, f.n_segments, f.frames_per_segment, f.face_size, f.face_size, 3), dtype=np.uint8),
        dataset="synthetic")


def main(argv: list[str] | None = None) -> int:
    from hgrlib.data.splits import make_split
    from hgrlib.models import EmotionModel
    from hgrlib.profiles import get_profile
    from hgrlib.train import Batcher, _inputs, evaluate_split, seed_everything

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="smoke")
    ap.add_argument("--cache", default="cache")
    ap.add_argument("--lam", type=float, default=None, help="λ (default: the profile's)")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=None, help="GLOBAL batch size (default: the profile's)")
    ap.add_argument("--max-steps", type=int, default=0, help="stop after this many steps per epoch (0: all)")
    ap.add_argument("--random-data", action="store_true", help="random features of the profile's shapes, no cache")
    args = ap.parse_args(argv)

    cuda = torch.cuda.is_available()
    dist.init_process_group("nccl" if cuda else "gloo")
    rank, size = world()
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
    p = get_profile(args.profile)
    cfg = p.config.with_(loss={"lam": p.lam if args.lam is None else args.lam})
    tc = cfg.train
    epochs, batch = args.epochs or tc.epochs, args.batch_size or tc.batch_size
    if batch % size:
        raise SystemExit(f"global batch {batch} is not a multiple of the world size {size}")
    if args.random_data:
        fs = _random_featureset(72, cfg)
    else:
        from hgrlib.experiment import load_featureset

        fs = load_featureset(cfg.data, cfg.features, args.cache)
    seed_everything(tc.seed)  # same initial weights on every rank (DDP also broadcasts rank 0's)
    split = make_split(fs.subjects, fs.labels, fs.n_segments, dataset=fs.dataset, protocol=tc.protocol,
                       n_folds=tc.n_folds, fold=tc.fold, seed=tc.seed, labeled_frac=tc.labeled_frac)
    batcher = Batcher(fs, split.train, device)
    model = EmotionModel(len(fs.classes), fs.audio.shape[2], fs.faces.shape[2], cfg.model).to(device)
    if cuda:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    # find_unused_parameters: with lam=0 (or w_ce_uni=0) h(y) (or head_a/head_v) gets no gradient; without
    # it DDP would skip the all-reduce of that bucket on the first step and fail on the second
    ddp = DDP(model, device_ids=[device.index] if cuda else None, find_unused_parameters=True)
    opt = torch.optim.AdamW(ddp.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    for epoch in range(epochs):
        ddp.train()
        t0, sums, steps = time.perf_counter(), {}, 0
        batches = global_batches(len(split.train), split.labeled, batch, size, np.random.default_rng([tc.seed, epoch]))
        for pos in batches[: args.max_steps or None]:
            idx, lab = shard(split.train[pos], split.labeled[pos], rank, size)
            a, v, y = batcher(idx)
            out = ddp(*_inputs(model, a, v), y)
            loss, parts = ddp_joint_loss(out, y, torch.from_numpy(lab).to(device), cfg.loss)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            g = loss.detach().clone()
            dist.all_reduce(g)
            sums["loss"] = sums.get("loss", 0.0) + float(g) / size
            for k in ("s_av", "s_ay", "s_vy"):
                if k in parts:
                    sums[k] = sums.get(k, 0.0) + parts[k]
            steps += 1
        if rank == 0:
            val = evaluate_split(model, batcher, split.val, fs, tc.protocol)
            means = " ".join(f"{k}={x / max(steps, 1):.4f}" for k, x in sums.items())
            print(f"epoch {epoch + 1}/{epochs} world={size} global_batch={batch} steps={steps} {means} "
                  f"val_uar={val['uar']:.3f} ({time.perf_counter() - t0:.1f} s)", flush=True)
        dist.barrier()
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
