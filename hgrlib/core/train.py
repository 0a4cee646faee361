"""Training: one run of one Config on a FeatureSet, or a stack of K runs trained as one network (hgrlib.core.stacked),
supervised or semi-supervised, CPU or GPU, one process or several under torchrun. Top down, as in torchvision's
reference recipes: `train_one_epoch`, `evaluate`, `fit`; then what a run is set up from and finished with.
Device and threads: hgrlib.core.runtime; checkpoints: hgrlib.core.checkpoint; result.json: hgrlib.core.result; keying a run,
reading a finished one back and the lock that trains it once: hgrlib.experiment.runs.

`fit` writes into its run folder: checkpoint.pt after every epoch (resumed if interrupted), then
weights.pt (the best epoch's weights: what `hgrlib export` packs), features.npz (clip-level features of
every clip) and result.json (with the sha256 of both). A stack's members each write their own folder.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from tqdm.auto import tqdm

import hgrlib.core.checkpoint as checkpoint
import hgrlib.core.graphed as graphed
from hgrlib.base.io import atomic, read_sealed_json
from hgrlib.base.provenance import file_sha256
from hgrlib.config import Config
from hgrlib.core.distributed import gather_rows, global_batchnorm, shard, world
from hgrlib.core.losses import joint_loss
from hgrlib.core.metrics import clip_probs, scores
from hgrlib.core.models import EmotionModel
from hgrlib.core.result import RunResult
from hgrlib.core.runtime import autocast, keep_freed_memory, pick_device, seed_everything
from hgrlib.core.stacked import ModelStack, stack_signature, stackable
from hgrlib.data.featureset import FeatureSet
from hgrlib.data.splits import Split, make_split


def train_one_epoch(
    model: EmotionModel | ModelStack,
    forward: Callable,
    opt,
    sched,
    batcher,
    batches: list,
    loss_cfg,
    mixed: contextlib.AbstractContextManager,
):
    """One optimiser step per global batch (segment indices, labeled mask); the epoch's mean loss parts and
    the count of skipped steps. A step whose loss or gradient is not finite (e.g. a CCA-style loss on a
    singular batch) makes no update; the schedule still advances. Under torchrun each rank forwards its
    shard and the loss is that of the whole batch (hgrlib.core.distributed).

    `model` a ModelStack: opt, sched, batcher, batches and loss_cfg are its members' (sequences of K), and so
    is the result. Step t runs member k's batch t while t < its steps per epoch; after that it sits out."""
    stacked = isinstance(model, ModelStack)
    opts, scheds, batchers, epochs, cfgs = (
        (opt, sched, batcher, batches, loss_cfg) if stacked else ([opt], [sched], [batcher], [batches], [loss_cfg])
    )
    rank, size = world()
    model.train()
    sums: list[dict[str, float]] = [{} for _ in opts]
    nonfinite = [0 for _ in opts]
    for t in range(max(map(len, epochs), default=0)):
        active = [t < len(b) for b in epochs]
        if stacked and not all(epochs):
            raise ValueError("a run of the stack has no training batch; train it alone")
        rows = [b[t] if on else b[0] for b, on in zip(epochs, active)]  # one sitting out forwards its first batch again
        inputs = [bt(shard(r, rank, size)) for bt, (r, _) in zip(batchers, rows)]
        with mixed:
            outs = forward(inputs, active) if stacked else [forward(*branch_inputs(model, a, v), y) for a, v, y in inputs]
        losses, parts, used = [], [], []
        for on, out, (_, _, y), (_, lab), cfg in zip(active, outs, inputs, rows, cfgs):
            if not on:
                losses.append(None), parts.append({}), used.append(None)
                continue
            out = {k: gather_rows(x).float() for k, x in out.items()}  # the losses' moments and covariances in fp32
            y, labeled = gather_rows(y), torch.from_numpy(lab).to(y.device)
            try:
                loss, pt = joint_loss(out, y, labeled, cfg)
            except torch.linalg.LinAlgError:  # a singular covariance (CCA-style loss): a non-finite step
                loss, pt = torch.tensor(float("nan")), {}
            losses.append(loss), parts.append(pt), used.append(out)
        for o in opts:
            o.zero_grad(set_to_none=True)
        finite = [loss is not None and bool(torch.isfinite(loss)) for loss in losses]
        if stacked:
            model.backward([loss if ok else None for loss, ok in zip(losses, finite)], used)
        elif finite[0]:
            losses[0].backward()
        if stacked:
            model.zero_grad()  # the members' gradients are views into the stack's: kept until they step
        for i, (o, s) in enumerate(zip(opts, scheds)):
            if not active[i]:
                continue
            if not finite[i] or not grads_finite(p for g in o.param_groups for p in g["params"]):
                nonfinite[i] += 1
                o.zero_grad(set_to_none=True)
                s.step()
                continue
            o.step()
            s.step()
            for k, x in parts[i].items():
                sums[i][k] = sums[i].get(k, 0.0) + x / len(epochs[i])
    res = [s | {"nonfinite_steps": n} for s, n in zip(sums, nonfinite)]
    return res if stacked else res[0]


def grads_finite(params) -> bool:
    """Whether every gradient of `params` is finite (None counts as finite): a step's finiteness check."""
    grads = [p.grad for p in params if p.grad is not None]
    return not grads or bool(torch.stack([g.isfinite().all() for g in grads]).all())


def evaluate(model: EmotionModel, batcher: Batcher, idx: np.ndarray, fs: FeatureSet, protocol: str) -> dict:
    """Segment- and clip-level scores on `idx`; the headline (acc, uar) is clip-level under `subject`."""
    pred = infer(model, batcher, idx)
    y_seg = fs.labels[idx // fs.n_segments]
    c = len(fs.classes)
    seg = scores(y_seg, pred["probs"].argmax(1), c)
    clips, p = clip_probs(pred["probs"], idx // fs.n_segments)
    clip = scores(fs.labels[clips], p.argmax(1), c)
    head = clip if protocol == "subject" else seg
    return {
        "acc": head["acc"],
        "uar": head["uar"],
        "confusion": head["confusion"],
        "seg_acc": seg["acc"],
        "seg_uar": seg["uar"],
        "clip_acc": clip["acc"],
        "clip_uar": clip["uar"],
    }


def fit(cfg: Config | Sequence[Config], fs: FeatureSet, run_dir: str | Sequence[str], progress: bool = True, key=None):
    """Train, keep the epoch with the best validation UAR, test it; write features.npz and result.json to
    `run_dir` and return the result. Resumes from run_dir/checkpoint.pt. Under torchrun every rank calls it
    with the same arguments; rank 0 evaluates and writes, and every rank returns what it wrote.
    `key`: what the run is keyed by (hgrlib.experiment.runs), recorded in result.json.

    A list of configs (one hgrlib.core.stacked.stack_signature, all stackable) with a list of run folders
    (and keys) trains them as one stack (hgrlib.core.stacked), one process; each member's folder gets what its run
    alone would write there, and the members' results are returned. Resumes when every member has a
    checkpoint of the same epoch. One epoch loop for both: a run alone is a list of one member."""
    t0 = time.perf_counter()
    stacked = not isinstance(cfg, Config)
    cfgs = list(cfg) if stacked else [cfg]
    run_dirs, keys = (list(run_dir), list(key or [None] * len(cfgs))) if stacked else ([run_dir], [key])
    c0, tc = cfgs[0], cfgs[0].train
    rank, size = world()
    if stacked and any(c.train.graph for c in cfgs):
        raise ValueError("train.graph applies to runs alone: a stack is not captured in a CUDA graph yet")
    if stacked and (len({stack_signature(c) for c in cfgs}) != 1 or not all(map(stackable, cfgs)) or size > 1):
        raise ValueError("a stack's configs must share data, features, model and schedule length, use neither amp nor compile, one process")
    device = pick_device(tc.device)
    for d in run_dirs:
        os.makedirs(d, exist_ok=True)
    keep_freed_memory()
    ckpts = [os.path.join(d, "checkpoint.pt") for d in run_dirs]
    if stacked:
        runs, model, opts, scheds, gens = _stack_setup(cfgs, fs, device)
        forward, states = model, checkpoint.resume_stack(ckpts, model, opts, scheds, gens)
    else:
        if tc.graph:
            graphed.check_graphable(cfg, device, size)
        r, forward, opt, sched = _solo_setup(cfg, fs, device)
        state = checkpoint.resume(ckpts[0], r.model, opt, sched, device)
        if state is None:  # a damaged checkpoint, removed: set the run up afresh (same seed, same initialisation)
            r, forward, opt, sched = _solo_setup(cfg, fs, device)
            state = checkpoint.fresh_state()
        runs, model, opts, scheds, states = [r], r.model, [opt], [sched], [state]
    graph = tc.graph and runs[0].n_batches  # hgrlib.core.graphed: the step captured in a CUDA graph, features on the device
    if graph:
        step = graphed.GraphedStep(model, c0.loss, graphed.labeled_prefix(runs[0].batches(0)[0][1]), graph=device.type == "cuda")
        gather = graphed.resident(runs[0].batcher, device, model_inputs)
    mixed = autocast(device, tc.amp)  # checked and built once; entered around every training forward
    desc = (
        f"train {len(cfgs)} stacked {c0.model.modalities}" if stacked else f"train {c0.model.modalities} lam={c0.loss.lam} seed={tc.seed}"
    )
    bar = tqdm(range(states[0]["epoch"], tc.epochs), desc=desc, unit="epoch", disable=not progress or rank > 0, leave=False)
    for epoch in bar:
        batches = [r.batches(epoch) for r in runs]
        if graph:
            sums = [graphed.train_one_epoch_device(step, gather, opts[0], scheds[0], batches[0], device)]
        elif stacked:
            sums = train_one_epoch(model, forward, opts, scheds, [r.batcher for r in runs], batches, [c.loss for c in cfgs], mixed)
        else:
            sums = [train_one_epoch(model, forward, opts[0], scheds[0], runs[0].batcher, batches[0], c0.loss, mixed)]
        rngs = None if stacked else checkpoint.rng_states(device)  # a stack's members resume from their own generators
        for i, (c, r, st) in enumerate(zip(cfgs, runs, states)):
            st["epoch"] = epoch + 1
            if rank > 0:
                continue
            if stacked:
                r.model.load_state_dict(model.member_state(i))
            val = evaluate(r.model, r.batcher, r.split.val, fs, c.train.protocol)
            record_epoch(st, sums[i], val, r.model.state_dict())
            payload = {"opt": opts[i].state_dict(), "sched": scheds[i].state_dict(), "state": st}
            if stacked:
                payload = {"stacked": True, "model": model.member_state(i)} | payload | {"gen": gens[i].get_state()}
            else:
                payload = {"model": model.state_dict()} | payload | {"rng": rngs}
            checkpoint.save(ckpts[i], payload)
            if not stacked:
                bar.set_postfix(loss=f"{sums[i].get('loss', 0):.3f}", val_uar=f"{val['uar']:.3f}")
    results = []
    if rank == 0:
        extra = {"world_size": size, "seconds": (time.perf_counter() - t0) / len(cfgs)} | ({"stack_size": len(cfgs)} if stacked else {})
        for c, r, st, d, k, ck in zip(cfgs, runs, states, run_dirs, keys, ckpts):
            results.append(finish_run(c, fs, r, st, d, k, extra))
            os.remove(ck)
    if size > 1:
        dist.barrier()
        return read_sealed_json(os.path.join(run_dirs[0], "result.json"))
    return results if stacked else results[0]


def _solo_setup(cfg: Config, fs: FeatureSet, device: torch.device) -> tuple:
    """A run alone: its RunSetup, the training forward (DDP under torchrun, compiled if asked), AdamW, OneCycleLR."""
    tc = cfg.train
    rank, size = world()
    r = setup_run(cfg, fs, device)
    forward: Callable = r.model
    if size > 1:
        from torch.nn.parallel import DistributedDataParallel

        torch.manual_seed(int(np.random.SeedSequence([tc.seed, rank]).generate_state(1)[0]))  # own dropout masks
        # find_unused_parameters: with lam = 0 (or w_ce_uni = 0) h(y) (or the per-modality heads) gets no gradient
        forward = DistributedDataParallel(
            global_batchnorm(r.model), device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True
        )
    forward = torch.compile(forward) if tc.compile else forward  # shares the parameters; eval stays eager
    opt, sched = optimiser(cfg, r.model.parameters(), r.n_batches)
    return r, forward, opt, sched


def optimiser(cfg: Config, params, n_batches: int) -> tuple:
    """A run's AdamW and its OneCycleLR schedule (the same for a run alone and a member of a stack)."""
    tc = cfg.train
    opt = (graphed.fused_adamw if tc.graph else torch.optim.AdamW)(params, lr=tc.lr, weight_decay=tc.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=tc.lr, total_steps=tc.epochs * max(1, n_batches), pct_start=0.2)
    return opt, sched


def _stack_setup(cfgs: list[Config], fs: FeatureSet, device: torch.device) -> tuple:
    """A stack's members: their RunSetups, the ModelStack of their models, each member's AdamW and OneCycleLR
    over its views into the stack, and the generators their dropout masks come from."""
    runs, gens = [], []
    for c in cfgs:
        runs.append(setup_run(c, fs, device))
        gens.append(member_generator(device, c.train.seed))
    stack = ModelStack([r.model for r in runs], gens)
    opts, scheds = zip(*(optimiser(c, stack.member_parameters(i), r.n_batches) for i, (c, r) in enumerate(zip(cfgs, runs))))
    return runs, stack, list(opts), list(scheds), gens


def member_generator(device: torch.device, seed: int) -> torch.Generator:
    """The generator a stack's member draws dropout masks from: on the CPU the global state its solo run has at
    that point (just after the model's initialisation), on a GPU a device generator seeded by the run's seed."""
    if device.type == "cpu":
        g = torch.Generator()
        g.set_state(torch.get_rng_state())
    else:
        g = torch.Generator(device=device).manual_seed(seed)
    return g


# What a run is set up from and finished with.

WEIGHTS_FILE = "weights.pt"  # in a run folder: the best epoch's state_dict (written by finish_run, packed by hgrlib.app.export)
FACES_NORM = {"faces_scale": 255.0, "faces_mean": 0.5, "faces_std": 0.25}  # uint8 face pixels → model input


def model_inputs(audio: torch.Tensor, faces: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, device: torch.device) -> tuple:
    """Cached features → the networks' inputs on `device`: audio (B, C, M, L) float16 dB, normalised per mel
    band by `mean` and `std`; faces (B, K, H, W, 3) uint8 → (B, K, 3, H, W) scaled by FACES_NORM."""
    a = (audio.to(device).float() - mean) / std
    v = faces.to(device).permute(0, 1, 4, 2, 3).float()
    v = v.div_(FACES_NORM["faces_scale"]).sub_(FACES_NORM["faces_mean"]).div_(FACES_NORM["faces_std"])
    return a, v


class Batcher:
    """Turns flat segment indices into model-ready tensors; audio normalised per mel band with training stats."""

    def __init__(self, fs: FeatureSet, train_idx: np.ndarray, device: torch.device) -> None:
        self.fs, self.device = fs, device
        s = fs.n_segments
        a = fs.audio.reshape(-1, *fs.audio.shape[2:])[train_idx].astype(np.float32)  # (n, C, M, L)
        self.mean = torch.from_numpy(a.mean(axis=(0, 3), keepdims=True)[0]).to(device)
        self.std = torch.from_numpy(a.std(axis=(0, 3), keepdims=True)[0] + 1e-5).to(device)
        self.audio = torch.from_numpy(fs.audio.reshape(-1, *fs.audio.shape[2:]))
        self.faces = torch.from_numpy(fs.faces.reshape(-1, *fs.faces.shape[2:]))
        self.labels = torch.from_numpy(np.repeat(fs.labels, s)).long()

    def __call__(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        i = torch.from_numpy(idx)
        return *model_inputs(self.audio[i], self.faces[i], self.mean, self.std, self.device), self.labels[i].to(self.device)


def branch_inputs(model: EmotionModel, a: torch.Tensor, v: torch.Tensor) -> tuple:
    """(audio, faces) for the model's branches: None for a branch it does not have."""
    return (a if model.audio is not None else None, v if model.visual is not None else None)


@torch.no_grad()
def infer(model: EmotionModel, batcher: Batcher, idx: np.ndarray, batch_size: int = 256) -> dict[str, np.ndarray]:
    """Segment-level probabilities and features for the segments `idx`."""
    model.eval()
    probs, feats = [], {"f": [], "g": [], "z": []}
    for k in range(0, len(idx), batch_size):
        a, v, _ = batcher(idx[k : k + batch_size])
        out = model(*branch_inputs(model, a, v))
        probs.append(out["logits"].softmax(1).cpu())
        for key in feats:
            if key in out:
                feats[key].append(out[key].cpu())
    res = {"probs": torch.cat(probs).numpy()}
    res |= {k: torch.cat(v).numpy() for k, v in feats.items() if v}
    return res


def steps_per_epoch(n_train: int, n_used: int, tc) -> int:
    """Optimiser steps per epoch: full batches in one pass over the rows a run trains on (`n_used`), or with
    `match_steps` over every training row (`n_train`, labeled or not), so a labeled-only run takes as many
    steps as the runs that also see the unlabeled clips."""
    return (n_train if tc.match_steps else n_used) // tc.batch_size


def epoch_order(n: int, length: int, seed: int, epoch: int, stream: int = 0) -> np.ndarray:
    """`length` row indices for one epoch: permutations of range(n) laid end to end, seeded by (seed, epoch)
    and, for a second set of rows drawn in the same epoch, by `stream` > 0.

    A pass drops no row when `length` is a whole number of passes; a longer epoch (match_steps) cycles
    through every row before repeating one. The first permutation is the one a plain epoch uses."""
    reps = -(-length // n) if n else 0
    tail = [stream] if stream else []
    perms = [np.random.default_rng([seed, epoch] + ([k] if k or stream else []) + tail).permutation(n) for k in range(reps)]
    return np.concatenate(perms)[:length] if perms else np.zeros(0, dtype=np.int64)


@dataclass
class RunSetup:
    """What a run trains on, made the same way for a run alone and for a member of a stack: its split, the rows it
    trains on (and which are labeled), a Batcher, the model as initialised under the run's seed."""

    cfg: Config
    split: Split
    train_idx: np.ndarray
    labeled: np.ndarray
    batcher: Batcher
    model: EmotionModel
    n_batches: int

    def batches(self, epoch: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """The epoch's global batches (segment indices, labeled mask): the same order after a resume. With
        `labeled_per_batch`, each batch is that many labeled rows, then (use_unlabeled) the rest unlabeled."""
        tc = self.cfg.train
        if not self.n_batches:
            return []
        if not tc.labeled_per_batch:
            order = epoch_order(len(self.train_idx), self.n_batches * tc.batch_size, tc.seed, epoch)
            return [(self.train_idx[s], self.labeled[s]) for s in np.split(order, self.n_batches)]
        lab, unl = np.flatnonzero(self.labeled), np.flatnonzero(~self.labeled)
        n_unl = tc.rows_per_batch - tc.labeled_per_batch
        if n_unl and not len(unl):
            raise ValueError(f"train.labeled_per_batch={tc.labeled_per_batch} with use_unlabeled: this run has no unlabeled rows")
        rows_l = np.split(lab[epoch_order(len(lab), self.n_batches * tc.labeled_per_batch, tc.seed, epoch)], self.n_batches)
        rows_u = np.split(unl[epoch_order(len(unl), self.n_batches * n_unl, tc.seed, epoch, stream=1)], self.n_batches)
        return [(self.train_idx[np.concatenate([a, b])], self.labeled[np.concatenate([a, b])]) for a, b in zip(rows_l, rows_u)]


def run_split(cfg: Config, fs: FeatureSet) -> Split:
    """The train / validation / test parts of `cfg`'s run on `fs` (and its labeled training segments)."""
    tc = cfg.train
    return make_split(
        fs.subjects,
        fs.labels,
        fs.n_segments,
        dataset=fs.dataset,
        protocol=tc.protocol,
        n_folds=tc.n_folds,
        fold=tc.fold,
        seed=tc.seed,
        labeled_frac=tc.labeled_frac,
        folds=cfg.data.folds,
    )


def setup_run(cfg: Config, fs: FeatureSet, device: torch.device) -> RunSetup:
    """Seed, split, Batcher and the freshly initialised model of one run (the torch RNG is left where the
    model's initialisation leaves it: the run's dropout masks are drawn from there)."""
    tc = cfg.train
    seed_everything(tc.seed)
    split = run_split(cfg, fs)
    train_idx = split.train if tc.use_unlabeled else split.train[split.labeled]
    labeled = split.labeled if tc.use_unlabeled else np.ones(len(train_idx), bool)
    batcher = Batcher(fs, split.train, device)
    model = EmotionModel(len(fs.classes), fs.audio.shape[2], fs.faces.shape[2], cfg.model).to(device)
    return RunSetup(cfg, split, train_idx, labeled, batcher, model, steps_per_epoch(len(split.train), len(train_idx), tc))


def finish_run(cfg: Config, fs: FeatureSet, r: RunSetup, state: dict, run_dir: str, key: dict | None, extra: dict) -> dict:
    """Load the best epoch's weights into r.model, test them, write weights.pt, features.npz and result.json; the result."""
    tc = cfg.train
    r.model.load_state_dict(state["best"])
    test = evaluate(r.model, r.batcher, r.split.test, fs, tc.protocol)
    weights_file = os.path.join(run_dir, WEIGHTS_FILE)
    with atomic(weights_file) as tmp:
        torch.save({k: v.detach().cpu() for k, v in r.model.state_dict().items()}, tmp)
    feats_file = _save_features(run_dir, r.model, r.batcher, r.split, fs)
    device = next(r.model.parameters()).device
    result = RunResult(
        config=cfg.to_dict(),
        key=key or {},
        features_sha256=file_sha256(feats_file),
        weights_sha256=file_sha256(weights_file),
        test=test,
        history=state["history"],
        best_val_uar=state["best_uar"],
        n_train_segments=int(len(r.train_idx)),
        n_labeled_segments=int(r.labeled.sum()),
        steps=tc.epochs * r.n_batches,
        n_test_segments=int(len(r.split.test)),
        test_subjects=r.split.test_subjects,
        device=str(device),
        threads=torch.get_num_threads(),
        run_dir=run_dir,
        **extra,
    )
    result.write(os.path.join(run_dir, "result.json"))
    return result.to_dict()


def record_epoch(state: dict, sums: dict, val: dict, model_state: dict) -> None:
    """Add a finished epoch's losses and validation scores to state["history"] (state["epoch"] counts it
    already); keep `model_state` when its validation UAR is the best so far."""
    state["history"].append({"epoch": state["epoch"], **sums, "val_acc": val["acc"], "val_uar": val["uar"]})
    if val["uar"] > state["best_uar"]:
        state["best_uar"] = val["uar"]
        state["best"] = {k: t.detach().cpu().clone() for k, t in model_state.items()}


fresh_state = checkpoint.fresh_state


def _save_features(run_dir: str, model: EmotionModel, batcher: Batcher, split: Split, fs: FeatureSet) -> str:
    """Clip-level (segment-averaged) features f, g, z and probabilities of every clip, with its part of the split.

    Under the segment protocol a clip's segments can lie in several parts; its part is then that
    of the majority of its segments.
    """
    s = fs.n_segments
    idx = np.arange(len(fs.clip_ids) * s)
    pred = infer(model, batcher, idx)
    part_of = np.full(len(idx), "", dtype=object)
    for name in ("train", "val", "test"):
        part_of[getattr(split, name)] = name
    clips = np.arange(len(fs.clip_ids))
    parts = [max(("train", "val", "test"), key=lambda p: (part_of[c * s : (c + 1) * s] == p).sum()) for c in clips]
    out = {"clip_ids": np.array(fs.clip_ids), "part": np.array(parts), "labels": fs.labels, "subjects": np.array(fs.subjects)}
    for k in ("f", "g", "z", "probs"):
        if k in pred:
            out[k] = pred[k].reshape(len(clips), s, -1).mean(axis=1).astype(np.float32)
    with atomic(path := os.path.join(run_dir, "features.npz")) as tmp:
        np.savez(tmp, **out)
    return path
