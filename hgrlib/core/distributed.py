"""Data parallelism: the same training as one process, over W processes (torchrun, DistributedDataParallel).

    python -m torch.distributed.run --nproc_per_node=2 -m hgrlib.app.cli train --profile default --lam 0.1

runs `hgrlib train` on every rank, so `hgrlib.core.train.fit` (the one training loop) on every rank:
same schedule, non-finite skip, checkpoint and resume, validation selection, test evaluation and
`runs/<hash>/result.json`, keyed apart from a one-process run (execution key `...-ddpW`).

What makes W processes compute one process's step on the global batch of B rows:
  * each global batch (the rows one process would take) is cut into W contiguous shards of B/W rows;
  * every output the loss reads is gathered over ranks (`gather_rows`, an all_gather that keeps
    gradients), so every rank computes the identical loss of the whole batch: Soft-HGR's means and
    covariances and the cross-entropy means are those of the B rows, not of a shard;
  * the backward of all_gather sums the W identical upstream gradients into each rank's own rows
    (W·∂L/∂out_r); DDP then averages parameter gradients over ranks, (1/W)·Σ_r W·∂L/∂θ|_r = ∂L/∂θ;
  * BatchNorm in training mode normalises with the statistics of the global batch (`GlobalBatchNorm`,
    sums all-reduced with gradients; torch's SyncBatchNorm refuses CPU tensors), and its running
    statistics are updated as one process would;
  * each rank draws its own dropout masks (the one source of difference besides summation order).
Validation, test and the saved features are computed by every rank on all rows (the model is the
same on every rank), so every rank selects the same epoch; rank 0 writes the files.
"""

from __future__ import annotations

import contextlib
import warnings

import torch
import torch.distributed as dist
from torch import Tensor, nn


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) when torch.distributed is not initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_rows(x: Tensor) -> Tensor:
    """Concatenate the ranks' rows in rank order, with gradients (identity on one process)."""
    if world()[1] == 1:
        return x
    from torch.distributed.nn.functional import all_gather

    with _public_collectives():
        return torch.cat(all_gather(x.contiguous()), dim=0)


@contextlib.contextmanager
def _public_collectives():
    """torch marks its differentiable collectives (torch.distributed.nn.functional) deprecated in favour of a
    private module; they are the public, documented ones, so their FutureWarning is silenced here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        yield


def shard(rows, rank: int, size: int):
    """This rank's contiguous part of a global batch; concatenated in rank order they are the batch."""
    n = len(rows)
    if n % size:
        raise ValueError(
            f"a global batch of {n} rows cannot be split evenly over {size} processes; "
            f"use a batch size (TrainConfig.batch_size) that is a multiple of {size}"
        )
    return rows[rank * n // size : (rank + 1) * n // size]


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics are those of the global batch (all ranks' rows).

    Same parameters and buffers (and state_dict names) as the BatchNorm it replaces; in eval mode, or on
    one process, it is that BatchNorm. Per channel c over the N rows·positions of all ranks:
    μ = Σx/N, σ² = Σx²/N − μ² (biased, for normalising); running_var takes σ²·N/(N−1), as torch's does.
    """

    def _check_input_dim(self, x: Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {x.dim()}D)")

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or world()[1] == 1:
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        c, dims = x.shape[1], [0, *range(2, x.dim())]
        xf = x.float()
        local_n = torch.full((1,), x.numel() // c, dtype=xf.dtype, device=x.device)
        with _public_collectives():  # (2C+1,) sums over every rank's rows
            stats = all_reduce(torch.cat([xf.sum(dims), (xf * xf).sum(dims), local_n]))
        n = stats[-1]
        mean = stats[:c] / n
        var = (stats[c : 2 * c] / n - mean * mean).clamp_min(0.0)
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            m = self.momentum
            self.running_mean.mul_(1 - m).add_(m * mean.detach())
            self.running_var.mul_(1 - m).add_(m * var.detach() * n / (n - 1))
        shape = (1, c) + (1,) * (x.dim() - 2)
        y = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def global_batchnorm(module: nn.Module) -> nn.Module:
    """`module` with every BatchNorm replaced in place by a GlobalBatchNorm holding the same tensors."""
    for name, child in module.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(child, GlobalBatchNorm):
            bn = GlobalBatchNorm(child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats)
            bn.load_state_dict(child.state_dict())
            setattr(module, name, bn.to(next(child.buffers()).device))
        else:
            global_batchnorm(child)
    return module
