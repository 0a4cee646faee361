"""A run's checkpoint.pt, written after every epoch and read back to resume an interrupted run."""

from __future__ import annotations

import contextlib
import os
import sys

import torch
import torch.distributed as dist

from hgrlib.base.io import atomic
from hgrlib.core.distributed import world


def fresh_state() -> dict:
    """The training state of a run that has not trained an epoch yet."""
    return {"epoch": 0, "best_uar": -1.0, "best": None, "history": []}


def save(path: str, payload: dict) -> None:
    with atomic(path) as tmp:
        torch.save(payload, tmp)


def rng_states(device: torch.device) -> list:
    """Every rank's random-number state (CPU, and the GPU's when training there), in rank order."""
    mine = {"cpu": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}
    if world()[1] == 1:
        return [mine]
    states: list = [None] * world()[1]
    dist.all_gather_object(states, mine)
    return states


def resume(ckpt: str, model, opt, sched, device: torch.device) -> dict | None:
    """The training state to go on from: a fresh one, or the checkpoint's (loading model, optimiser, schedule
    and this rank's random state). None when the checkpoint is damaged: it is removed, and the caller must
    set the run up afresh (the model may be half loaded)."""
    rank, size = world()
    if size > 1:
        dist.barrier()  # rank 0 may be replacing the checkpoint of a run it is restarting
    if not os.path.exists(ckpt):
        return fresh_state()
    try:
        saved = torch.load(ckpt, map_location=device, weights_only=False)
        model.load_state_dict(saved["model"]), opt.load_state_dict(saved["opt"]), sched.load_state_dict(saved["sched"])
        rng = saved["rng"][rank]
        torch.set_rng_state(rng["cpu"])
        if rng["cuda"] is not None and device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], device)
        ok, state = True, saved["state"]
    except Exception as e:  # e.g. a disk filled mid-write elsewhere
        print(f"{ckpt}: cannot resume from it ({type(e).__name__}: {e}); training from the start", file=sys.stderr)
        ok, state = False, None
    if size > 1:
        flag = torch.tensor([float(ok)])
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        ok = bool(flag.item())
    if not ok and rank == 0:
        os.remove(ckpt)
    return state if ok else None


def resume_stack(ckpts: list[str], stack, opts: list, scheds: list, gens: list[torch.Generator]) -> list[dict]:
    """Every member's training state: fresh, or (when every member has a readable stacked checkpoint of the
    same epoch) the checkpoints', with weights, optimiser, schedule and generator loaded. Otherwise the
    checkpoints are removed and the stack starts over (nothing was loaded)."""
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
    for i, s in enumerate(saved):
        stack.load_member_state(i, s["model"])
        opts[i].load_state_dict(s["opt"]), scheds[i].load_state_dict(s["sched"])
        gens[i].set_state(s["gen"])
    return [s["state"] for s in saved]
