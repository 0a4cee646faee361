"""Training K runs at once as one stacked network (hgrlib.stacked): the grid's runs that share a model shape.

Each member is the run `hgrlib.train.fit` would train for its config: the same split and data order, the
same initialisation and (on the CPU) dropout masks drawn from its own generator, its own AdamW state and
one-cycle schedule (its own number of steps per epoch: a member with fewer sits the extra steps out), its
own non-finite skips, validation selection, checkpoint, features.npz and result.json. Only the summation
order inside the stacked operators differs, so a member matches its solo run to float tolerance, not bit
for bit: hgrlib.runs keys stacked runs apart (`exec ...-stacked`).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import warnings

import numpy as np
import torch
from tqdm.auto import tqdm

from hgrlib.config import Config
from hgrlib.io import atomic
from hgrlib.losses import joint_loss
from hgrlib.stacked import Stack, member_state, stack_inputs, stack_models, stacked_forward
from hgrlib.train import (
    FeatureSet,
    RunSetup,
    evaluate,
    finish_run,
    fresh_state,
    keep_freed_memory,
    pick_device,
    record_epoch,
    rows_per_batch,
    setup_run,
)

BETA2, EPS = 0.999, 1e-8  # torch.optim.AdamW's defaults, as fit uses them
# parameters that get no gradient in a solo run unless its loss has the named part (AdamW then skips them)
OPTIONAL = {"head_a.": ("ce_a",), "head_v.": ("ce_v",), "label.": ("s_ay", "s_vy")}


def stack_signature(cfg: Config) -> tuple:
    """Configs with equal signatures can train as one stack: same data, features, model and schedule length;
    they may differ in seed, fold, labeled fraction, unlabeled use, step matching, lr, weight decay, loss."""
    t = cfg.train
    return (cfg.data, cfg.features, cfg.model, t.epochs, t.batch_size, rows_per_batch(t), t.protocol, t.n_folds, t.device, t.threads)


def stackable(cfg: Config) -> bool:
    """Stacking covers fp32 eager training (TrainConfig.amp off, compile off)."""
    return cfg.train.amp == "off" and not cfg.train.compile


def one_cycle(cfg: Config, n_batches: int) -> np.ndarray:
    """(lr, beta1) at each step of a run's OneCycleLR schedule (fit's), shape (epochs · n_batches, 2)."""
    tc = cfg.train
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.AdamW([p], lr=tc.lr, weight_decay=tc.weight_decay)
    total = tc.epochs * max(1, n_batches)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=tc.lr, total_steps=total, pct_start=0.2)
    out = np.zeros((total, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "lr_scheduler.step() before optimizer.step()": no optimiser steps here
        for t in range(total):
            out[t] = opt.param_groups[0]["lr"], opt.param_groups[0]["betas"][0]
            sched.step()
    return out


class StackedAdamW:
    """torch.optim.AdamW (single-tensor form) over stacked parameters, with each member's own learning rate,
    β1, weight decay and step count per parameter; a member that does not take a step changes nothing."""

    def __init__(self, params: dict[str, torch.Tensor], weight_decay: np.ndarray) -> None:
        self.params, self.wd = params, weight_decay
        k = len(weight_decay)
        self.state = {
            n: {"exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p), "step": np.zeros(k)} for n, p in params.items()
        }

    @torch.no_grad()
    def step(self, lr: np.ndarray, beta1: np.ndarray, takes: dict[str, np.ndarray]) -> None:
        """takes[name]: (K,) bool, which members update that parameter now (the others' gradients are ignored)."""
        for n, p in self.params.items():
            st, on = self.state[n], takes[n]
            if p.grad is None or not on.any():
                continue
            st["step"] += on
            step = np.maximum(st["step"], 1)
            vec = lambda x: torch.as_tensor(x, dtype=p.dtype, device=p.device).view(-1, *[1] * (p.dim() - 1))  # noqa: E731
            mask = vec(on).bool()
            g = torch.where(mask, p.grad, 0.0)
            p.mul_(vec(np.where(on, 1 - lr * self.wd, 1.0)))
            st["exp_avg"].lerp_(g, vec(np.where(on, 1 - beta1, 0.0)))
            st["exp_avg_sq"].mul_(vec(np.where(on, BETA2, 1.0))).addcmul_(g, g, value=1 - BETA2)
            denom = (st["exp_avg_sq"].sqrt() / vec(np.sqrt(1 - BETA2**step))).add_(EPS)
            p.addcdiv_(vec(np.where(on, -lr / (1 - beta1**step), 0.0)) * st["exp_avg"], denom)  # AdamW's rounding order

    def member_state(self, k: int) -> dict:
        return {
            n: {"exp_avg": s["exp_avg"][k].cpu(), "exp_avg_sq": s["exp_avg_sq"][k].cpu(), "step": float(s["step"][k])}
            for n, s in self.state.items()
        }

    def load_member_state(self, k: int, saved: dict) -> None:
        for n, s in self.state.items():
            s["exp_avg"][k], s["exp_avg_sq"][k], s["step"][k] = saved[n]["exp_avg"], saved[n]["exp_avg_sq"], saved[n]["step"]


def _member_generator(device: torch.device, seed: int) -> torch.Generator:
    """The generator a member draws dropout masks from: on the CPU the global state its solo run has at that
    point (just after the model's initialisation), on a GPU a device generator seeded by the run's seed."""
    if device.type == "cpu":
        g = torch.Generator()
        g.set_state(torch.get_rng_state())
    else:
        g = torch.Generator(device=device).manual_seed(seed)
    return g


def _takes(stack: Stack, parts: list[dict], active: np.ndarray) -> dict[str, np.ndarray]:
    """Which members update each parameter: the active ones, where their loss reached that parameter."""
    out = {}
    for n in stack.params:
        need = next((v for prefix, v in OPTIONAL.items() if n.startswith(prefix)), None)
        out[n] = active & np.array([need is None or any(p in pt for p in need) for pt in parts])
    return out


def train_one_epoch_stacked(
    stack: Stack, opt: StackedAdamW, runs: list[RunSetup], gens: list[torch.Generator], schedules: list[np.ndarray], epoch: int
) -> list[dict[str, float]]:
    """One epoch of every member: group step t runs member k's batch t while t < its steps per epoch (after
    that it sits out: inputs are its first batch again, then its statistics and generator are put back).
    Each member's epoch mean loss parts and count of skipped non-finite steps, as train_one_epoch returns them."""
    k = stack.k
    batches = [r.batches(epoch) for r in runs]
    n_steps = max((len(b) for b in batches), default=0)
    sums: list[dict[str, float]] = [{} for _ in range(k)]
    nonfinite = np.zeros(k, int)
    for t in range(n_steps):
        running = np.array([t < len(b) for b in batches])
        rows = [b[t] if run else b[0] if b else None for b, run in zip(batches, running)]
        if any(r is None for r in rows):  # a member with no batch at all: nothing to stack
            raise ValueError("a run of the stack has no training batch; train it alone")
        idle = [i for i in range(k) if not running[i]]
        saved_bufs = {n: b[idle].clone() for n, b in stack.buffers.items()} if idle else {}
        saved_gens = {i: gens[i].get_state() for i in idle}
        inputs = [run.batcher(r[0]) for run, r in zip(runs, rows)]
        a, v, y = stack_inputs(*zip(*inputs))
        out = stacked_forward(stack, a, v, y, gens)
        for i, s in saved_gens.items():
            gens[i].set_state(s)
        losses, parts = [], []
        for i, run in enumerate(runs):
            if not running[i]:
                losses.append(None), parts.append({})
                continue
            lab = torch.from_numpy(rows[i][1]).to(y.device)
            try:
                loss, pt = joint_loss({n: o[i] for n, o in out.items()}, y[i], lab, run.cfg.loss)
            except torch.linalg.LinAlgError:  # a singular covariance (CCA-style loss): a non-finite step
                loss, pt = torch.tensor(float("nan")), {}
            losses.append(loss), parts.append(pt)
        finite = np.array([loss is not None and bool(torch.isfinite(loss)) for loss in losses])
        for p in stack.params.values():
            p.grad = None
        if finite.any():
            sum(loss for loss, ok in zip(losses, finite) if ok).backward()
        with torch.no_grad():  # after backward: batch norm's graph holds the running statistics
            for n, b in saved_bufs.items():
                stack.buffers[n][idle] = b
            for n, b in stack.buffers.items():
                if n.endswith("num_batches_tracked"):
                    b += torch.as_tensor(running, device=b.device)
        grads_ok = np.ones(k, bool)
        for p in stack.params.values():
            if p.grad is not None:
                grads_ok &= p.grad.flatten(1).isfinite().all(1).cpu().numpy()
        steps = finite & grads_ok
        nonfinite += running & ~steps
        pos = [min(epoch * len(b) + t, len(s) - 1) for b, s in zip(batches, schedules)]
        lr = np.array([s[j, 0] for s, j in zip(schedules, pos)])
        beta1 = np.array([s[j, 1] for s, j in zip(schedules, pos)])
        opt.step(lr, beta1, _takes(stack, parts, steps))
        for i in np.flatnonzero(steps):
            for name, x in parts[i].items():
                sums[i][name] = sums[i].get(name, 0.0) + x / len(batches[i])
    return [s | {"nonfinite_steps": int(n)} for s, n in zip(sums, nonfinite)]


def fit_stacked(
    cfgs: list[Config], fs: FeatureSet, run_dirs: list[str], progress: bool = True, keys: list[dict] | None = None
) -> list[dict]:
    """Train the configs (one stack_signature, all stackable) as one stacked network; each member's run
    folder gets what fit would write there. Resumes when every member has a checkpoint of the same epoch."""
    t0 = time.perf_counter()
    if len({stack_signature(c) for c in cfgs}) != 1 or not all(map(stackable, cfgs)):
        raise ValueError("fit_stacked: the configs differ in data, features, model or schedule length, or use amp/compile")
    tc = cfgs[0].train
    device = pick_device(tc.device)
    keep_freed_memory()
    runs, gens = [], []
    for c in cfgs:
        runs.append(setup_run(c, fs, device))
        gens.append(_member_generator(device, c.train.seed))
    stack = stack_models([r.model for r in runs])
    opt = StackedAdamW(stack.params, np.array([c.train.weight_decay for c in cfgs]))
    schedules = [one_cycle(c, r.n_batches) for c, r in zip(cfgs, runs)]
    ckpts = [os.path.join(d, "checkpoint.pt") for d in run_dirs]
    for d in run_dirs:
        os.makedirs(d, exist_ok=True)
    states = _resume(ckpts, stack, opt, gens)
    desc = f"train {len(cfgs)} stacked {cfgs[0].model.modalities}"
    for epoch in tqdm(range(states[0]["epoch"], tc.epochs), desc=desc, unit="epoch", disable=not progress, leave=False):
        sums = train_one_epoch_stacked(stack, opt, runs, gens, schedules, epoch)
        for i, (c, r, st) in enumerate(zip(cfgs, runs, states)):
            st["epoch"] = epoch + 1
            r.model.load_state_dict(member_state(stack, i))
            record_epoch(st, sums[i], evaluate(r.model, r.batcher, r.split.val, fs, c.train.protocol), r.model.state_dict())
            with atomic(ckpts[i]) as tmp:
                torch.save(
                    {"stacked": True, "model": member_state(stack, i), "opt": opt.member_state(i), "state": st, "gen": gens[i].get_state()},
                    tmp,
                )
    seconds = time.perf_counter() - t0
    results = []
    for i, (c, r, st) in enumerate(zip(cfgs, runs, states)):
        extra = {"world_size": 1, "stack_size": len(cfgs), "seconds": seconds / len(cfgs)}
        results.append(finish_run(c, fs, r, st, run_dirs[i], keys[i] if keys else None, extra))
        os.remove(ckpts[i])
    return results


def _resume(ckpts: list[str], stack: Stack, opt: StackedAdamW, gens: list[torch.Generator]) -> list[dict]:
    """Every member's training state: fresh, or (when every member has a readable checkpoint of the same
    epoch) the checkpoints' with weights, optimiser and generator loaded. Otherwise the checkpoints are
    removed and the stack starts over."""
    if not any(os.path.exists(c) for c in ckpts):
        return [fresh_state() for _ in ckpts]
    try:
        saved = [torch.load(c, map_location="cpu", weights_only=False) for c in ckpts]
        if len({s["state"]["epoch"] for s in saved}) != 1 or not all(s.get("stacked") for s in saved):
            raise ValueError("the members' checkpoints are not of one stacked epoch")
    except Exception as e:  # a missing or damaged one, or a member that trained in another stack
        print(f"{', '.join(ckpts)}: cannot resume ({type(e).__name__}: {e}); training the stack from the start", file=sys.stderr)
        for c in ckpts:
            with contextlib.suppress(FileNotFoundError):
                os.remove(c)
        return [fresh_state() for _ in ckpts]
    with torch.no_grad():
        for i, s in enumerate(saved):
            for n, t in (stack.params | stack.buffers).items():
                t[i] = s["model"][n].to(t.device)
            opt.load_member_state(i, s["opt"])
            gens[i].set_state(s["gen"])
    return [s["state"] for s in saved]
