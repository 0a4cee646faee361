"""A run's training step at the GPU's pace (train.graph): no host sync inside an epoch.

What the eager loop (hgrlib.core.train.train_one_epoch) does per step and what this does instead:

* the batch: gathered on the host and copied over → gathered on the device from features moved there once
  (`resident`; the epoch's batch indices copied over once), into static input buffers;
* forward, loss, backward: one launch per kernel → captured once in a CUDA graph (torch.cuda.graph) and replayed;
  the loss is hgrlib.core.losses.joint_terms with the labeled rows as a fixed-length prefix of the batch (a slice,
  not a boolean mask: a graph needs static shapes), so a run needs a fixed labeled count per batch;
* `if torch.isfinite(loss)` and grads_finite per step (two host syncs) → `step_nonfinite`, a device flag, handed
  to a fused AdamW as `found_inf` (the fused kernel skips that step: parameters, moments and step count as
  they were) and added to a device counter read once at the epoch's end (`DeviceEpoch.result`). The schedule
  still advances on a skipped step, as in the eager loop.

The optimiser step itself runs outside the graph (one fused AdamW kernel per step, its learning rate a Python
float set by OneCycleLR: no sync). The numbers differ from the eager path's in the last digits (fused AdamW,
a graph's kernels), so the option is part of a run's key; the CPU path never goes through here. A stack
(hgrlib.core.stacked) is not captured yet: train.graph applies to runs alone.

`DeviceEpoch` without a graph runs on the CPU too: tests check its non-finite counts against the eager loop's.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from hgrlib.core.losses import joint_terms


def check_graphable(cfg, device: torch.device, world_size: int = 1) -> None:
    """Raise a ValueError unless `cfg` (a Config) can train with train.graph on `device`."""
    tc = cfg.train
    why = []
    if device.type != "cuda":
        why.append(f"needs a CUDA device (got {device.type}; the CPU trains eagerly: set train.graph=False)")
    if tc.compile or tc.amp != "off":
        why.append("is its own compilation: use it without train.compile and train.amp")
    if cfg.loss.corr == "cca" and cfg.loss.lam > 0:
        why.append("cannot capture the CCA loss (its Cholesky factorisation checks its input on the host)")
    if tc.use_unlabeled and tc.labeled_frac < 1 and not tc.labeled_per_batch:
        why.append("needs the same labeled count in every batch: set train.labeled_per_batch (or labeled_frac=1)")
    if world_size > 1:
        why.append("runs in one process (not under torchrun)")
    if why:
        raise ValueError("train.graph " + "; ".join(why))


def labeled_prefix(lab: np.ndarray) -> int:
    """How many labeled rows lead the batch; a ValueError if any labeled row comes after an unlabeled one."""
    n = int(lab.sum())
    if not lab[:n].all():
        raise ValueError("train.graph: the labeled rows of a batch must come first (train.labeled_per_batch does that)")
    return n


def step_nonfinite(loss: torch.Tensor, params) -> torch.Tensor:
    """1.0 (a 0-d float tensor on the loss's device) when the loss or any gradient of `params` is not finite,
    else 0.0: the eager loop's `not isfinite(loss) or not grads_finite(...)`, without reading it on the host."""
    flags = [~torch.isfinite(loss.detach())] + [~p.grad.isfinite().all() for p in params if p.grad is not None]
    return torch.stack(flags).any().float()


def fused_adamw(params, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW with the fused kernel: it reads `found_inf` on the device and skips the step when it is nonzero."""
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)


class DeviceEpoch:
    """Per-step loss parts and non-finite steps accumulated on the device; read once (`result`)."""

    def __init__(self, n_steps: int, device: torch.device) -> None:
        self.n, self.device = n_steps, device
        self.nonfinite = torch.zeros((), device=device)
        self.sums: dict[str, torch.Tensor] = {}

    def add(self, bad: torch.Tensor, loss: torch.Tensor, parts: dict[str, torch.Tensor]) -> None:
        """A step's flag and (kept only when finite) its loss parts, as the eager loop sums them."""
        self.nonfinite += bad
        for k, x in (parts | {"loss": loss}).items():
            x = torch.where(bad > 0, torch.zeros_like(x), x.detach().float() / self.n)
            self.sums[k] = self.sums[k] + x if k in self.sums else x

    def result(self) -> dict:
        """The epoch's mean loss parts and `nonfinite_steps` (the one host sync of the epoch)."""
        keys = list(self.sums)
        vals = torch.stack([self.sums[k] for k in keys] + [self.nonfinite]).tolist() if keys else [self.nonfinite.item()]
        return dict(zip(keys, vals[:-1])) | {"nonfinite_steps": int(vals[-1])}


class GraphedStep:
    """Forward, loss and backward of one run, captured in a CUDA graph on its first call (`graph=True`) or run
    eagerly (`graph=False`, any device: what the CPU tests use). Inputs are copied into static buffers; the
    outputs (loss, parts, the step_nonfinite flag) are static tensors overwritten by each replay."""

    def __init__(self, model, loss_cfg, n_lab: int, graph: bool, warmup: int = 3) -> None:
        self.model, self.cfg, self.n_lab, self.graph, self.warmup = model, loss_cfg, n_lab, graph, warmup
        self.static: tuple | None = None
        self.out: tuple | None = None
        self.g: torch.cuda.CUDAGraph | None = None
        self.calls = 0

    def _run(self, a, v, y):
        m = self.model
        out = m(a if m.audio is not None else None, v if m.visual is not None else None, y)
        out = {k: x.float() for k, x in out.items()}
        loss, parts = joint_terms(out, y, slice(0, self.n_lab), self.n_lab, self.cfg)
        loss.backward()
        return loss, parts, step_nonfinite(loss, m.parameters())

    def __call__(self, a: torch.Tensor, v: torch.Tensor, y: torch.Tensor) -> tuple:
        if not self.graph:
            for p in self.model.parameters():
                p.grad = None
            return self._run(a, v, y)
        if self.static is None:
            self.static = (a.clone(), v.clone(), y.clone())
        for buf, x in zip(self.static, (a, v, y)):
            buf.copy_(x)
        self.calls += 1
        if self.g is None and self.calls <= self.warmup:  # warm up on a side stream (cuDNN / allocator state)
            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                for p in self.model.parameters():
                    p.grad = None
                res = self._run(*self.static)
            torch.cuda.current_stream().wait_stream(s)
            return res
        if self.g is None:
            for p in self.model.parameters():
                p.grad = None  # the graph allocates the gradients and overwrites them on every replay
            self.g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.g):
                self.out = self._run(*self.static)
        self.g.replay()
        return self.out


def resident(batcher, device: torch.device, model_inputs: Callable) -> Callable:
    """`batcher`'s (hgrlib.core.train.Batcher) features moved to `device` once; returns idx → (audio, faces, labels)
    gathered there and prepared by `model_inputs` (hgrlib.core.train.model_inputs)."""
    audio, faces, labels = batcher.audio.to(device), batcher.faces.to(device), batcher.labels.to(device)

    def gather(idx: np.ndarray | torch.Tensor) -> tuple:
        i = idx if isinstance(idx, torch.Tensor) else torch.from_numpy(idx).to(device)
        return *model_inputs(audio[i], faces[i], batcher.mean, batcher.std, device), labels[i]

    return gather


def train_one_epoch_device(step: GraphedStep, gather: Callable, opt, sched, batches: list, device: torch.device) -> dict:
    """train_one_epoch for a run alone, every step's checks on the device (see the module's docstring)."""
    step.model.train()
    acc = DeviceEpoch(len(batches), device)
    if any(labeled_prefix(lab) != step.n_lab for _, lab in batches):
        raise ValueError("train.graph: every batch must hold the same number of labeled rows")
    rows = torch.from_numpy(np.stack([r for r, _ in batches])).to(device) if batches else None  # one copy an epoch
    for t in range(len(batches)):
        loss, parts, bad = step(*gather(rows[t]))
        opt.found_inf = bad
        opt.step()
        sched.step()
        acc.add(bad, loss, parts)
    return acc.result()
