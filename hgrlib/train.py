"""Training: one run of one Config on a FeatureSet, supervised or semi-supervised, CPU or GPU, one process
or several under torchrun. `train_one_epoch` / `evaluate` / `fit`, as in torchvision's reference recipes;
keying a run, reading a finished one back and the lock that trains it once live beside it, in hgrlib.runs.

`fit` writes into its run folder: checkpoint.pt after every epoch (resumed if interrupted), then
weights.pt (the best epoch's weights: what `hgrlib export` packs), features.npz (clip-level features of
every clip) and result.json (with the sha256 of both).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from hgrlib.config import Config, LossConfig
from hgrlib.data.splits import Split, make_split
from hgrlib.distributed import gather_rows, global_batchnorm, shard, world
from hgrlib.evaluate import clip_probs, scores
from hgrlib.io import atomic, read_sealed_json, write_sealed_json
from hgrlib.losses import joint_loss
from hgrlib.models import EmotionModel
from hgrlib.provenance import arrays_sha256, file_sha256


@dataclass
class FeatureSet:
    """Cached features of a dataset, in memory: one row per clip, n_segments segments each."""

    clip_ids: list[str]
    subjects: list[str]
    labels: np.ndarray  # (N,) class index
    classes: tuple[str, ...]
    audio: np.ndarray  # (N, S, C, M, L) float16
    faces: np.ndarray  # (N, S, K, H, W, 3) uint8
    dataset: str
    feature_key: str = ""  # the feature cache's key (its folder name): preprocessing config, code, libraries

    @property
    def n_segments(self) -> int:
        return self.audio.shape[1]

    @functools.cached_property
    def fingerprint(self) -> str:
        """Which clips, subjects, labels and feature values (every byte): part of a run's cache key."""
        names = json.dumps([self.dataset, self.feature_key, self.clip_ids, self.subjects, list(self.classes)])
        values = arrays_sha256(self.labels.astype(np.int64), self.audio, self.faces)
        return hashlib.sha256((names + values).encode()).hexdigest()[:16]


def pick_device(pref: str = "auto") -> torch.device:
    """CUDA when present (or asked for), else the CPU."""
    if pref == "auto":
        pref = "cuda" if torch.cuda.is_available() else "cpu"
    if pref == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' asked for, but no CUDA device is available")
    if pref == "cuda" and world()[1] > 1:  # under torchrun: this rank's GPU
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device(pref)


def autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """Mixed precision for the networks when `amp` asks for it (TrainConfig.amp: off | bf16)."""
    if amp not in ("off", "bf16"):
        raise ValueError(f"TrainConfig.amp must be 'off' or 'bf16', got {amp!r}")
    if amp == "off":
        return contextlib.nullcontext()
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise RuntimeError("TrainConfig.amp='bf16' asked for, but this GPU has no bfloat16 support; use amp='off'")
    return torch.autocast(device.type, dtype=torch.bfloat16)


def keep_freed_memory() -> None:
    """Ask glibc's malloc to keep freed blocks of up to 32 MiB for reuse instead of handing every block over
    128 KiB back to the OS: a training step frees and reallocates the same activation and gradient buffers
    every step, and each page of a returned block faults back in (on the 2-core CPU the first audio conv's
    buffers alone took 80% of its time). Changes no number; no effect where malloc is not glibc's.
    Measured: benchmarks/README.md."""
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3  # <malloc.h>
    mallopt(m_mmap_threshold, 32 << 20)
    mallopt(m_trim_threshold, 1 << 30)
    mallopt(m_top_pad, 64 << 20)


def seed_everything(seed: int) -> None:
    np.random.seed(seed)
    torch.manual_seed(seed)


WEIGHTS_FILE = "weights.pt"  # in a run folder: the best epoch's state_dict (written by finish_run, packed by hgrlib.export)
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
def predict(model: EmotionModel, batcher: Batcher, idx: np.ndarray, batch_size: int = 256) -> dict[str, np.ndarray]:
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


def evaluate(model: EmotionModel, batcher: Batcher, idx: np.ndarray, fs: FeatureSet, protocol: str) -> dict:
    """Segment- and clip-level scores on `idx`; the headline (acc, uar) is clip-level under `subject`."""
    pred = predict(model, batcher, idx)
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


@contextlib.contextmanager
def torch_threads(n: int):
    """Run with `n` torch CPU threads (0: as they are), then restore the caller's count."""
    prev = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(prev)


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


def rows_per_batch(tc) -> int:
    """Rows in each of a run's batches: batch_size, or with `labeled_per_batch` and no unlabeled rows, just those."""
    return tc.labeled_per_batch if tc.labeled_per_batch and not tc.use_unlabeled else tc.batch_size


def train_one_epoch(
    model: EmotionModel,
    forward: Callable,
    opt: torch.optim.Optimizer,
    sched,
    batcher: Batcher,
    batches: list[tuple[np.ndarray, np.ndarray]],
    loss_cfg: LossConfig,
    mixed: contextlib.AbstractContextManager,
) -> dict[str, float]:
    """One optimiser step per global batch (segment indices, labeled mask); the epoch's mean loss parts and
    the count of skipped steps. A step whose loss or gradient is not finite (e.g. a CCA-style loss on a
    singular batch) makes no update; the schedule still advances. Under torchrun each rank forwards its
    shard and the loss is that of the whole batch (hgrlib.distributed)."""
    rank, size = world()
    model.train()
    sums: dict[str, float] = {}
    nonfinite = 0
    for rows, lab in batches:
        a, v, y = batcher(shard(rows, rank, size))
        with mixed:
            out = forward(*branch_inputs(model, a, v), y)
        out = {k: gather_rows(x).float() for k, x in out.items()}  # the losses' moments and covariances in fp32
        y, labeled = gather_rows(y), torch.from_numpy(lab).to(y.device)
        try:
            loss, parts = joint_loss(out, y, labeled, loss_cfg)
        except torch.linalg.LinAlgError:  # a singular covariance (CCA-style loss): a non-finite step
            loss, parts = torch.tensor(float("nan")), {}
        opt.zero_grad(set_to_none=True)
        if torch.isfinite(loss):
            loss.backward()
        if not torch.isfinite(loss) or not torch.isfinite(torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf"))):
            nonfinite += 1
            opt.zero_grad(set_to_none=True)
            sched.step()
            continue
        opt.step()
        sched.step()
        for k, x in parts.items():
            sums[k] = sums.get(k, 0.0) + x / len(batches)
    return sums | {"nonfinite_steps": nonfinite}


def fit(cfg: Config, fs: FeatureSet, run_dir: str, progress: bool = True, key: dict | None = None) -> dict:
    """Train, keep the epoch with the best validation UAR, test it; write features.npz and result.json to
    `run_dir` and return the result. Resumes from run_dir/checkpoint.pt. Under torchrun every rank calls it
    with the same arguments; rank 0 evaluates and writes, and every rank returns what it wrote.
    `key`: what the run is keyed by (hgrlib.runs), recorded in result.json."""
    t0 = time.perf_counter()
    tc = cfg.train
    rank, size = world()
    device = pick_device(tc.device)
    os.makedirs(run_dir, exist_ok=True)
    keep_freed_memory()
    r = setup_run(cfg, fs, device)
    model, batcher, split = r.model, r.batcher, r.split
    forward: Callable = model
    if size > 1:
        from torch.nn.parallel import DistributedDataParallel

        torch.manual_seed(int(np.random.SeedSequence([tc.seed, rank]).generate_state(1)[0]))  # own dropout masks
        # find_unused_parameters: with lam = 0 (or w_ce_uni = 0) h(y) (or the per-modality heads) gets no gradient
        forward = DistributedDataParallel(
            global_batchnorm(model), device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True
        )
    forward = torch.compile(forward) if tc.compile else forward  # shares the parameters; eval stays eager
    mixed = autocast(device, tc.amp)  # checked and built once; entered around every training forward
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=tc.lr, total_steps=tc.epochs * max(1, r.n_batches), pct_start=0.2)
    ckpt = os.path.join(run_dir, "checkpoint.pt")
    state = _resume(ckpt, model, opt, sched, device)
    if state is None:  # a damaged checkpoint: start over
        return fit(cfg, fs, run_dir, progress, key)
    bar = tqdm(
        range(state["epoch"], tc.epochs),
        desc=f"train {cfg.model.modalities} lam={cfg.loss.lam} seed={tc.seed}",
        unit="epoch",
        disable=not progress or rank > 0,
        leave=False,
    )
    for epoch in bar:
        sums = train_one_epoch(model, forward, opt, sched, batcher, r.batches(epoch), cfg.loss, mixed)
        state["epoch"] = epoch + 1
        rngs = _rng_states(device)
        if rank == 0:
            val = evaluate(model, batcher, split.val, fs, tc.protocol)
            record_epoch(state, sums, val, model.state_dict())
            bar.set_postfix(loss=f"{sums.get('loss', 0):.3f}", val_uar=f"{val['uar']:.3f}")
            with atomic(ckpt) as tmp:
                torch.save(
                    {"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(), "state": state, "rng": rngs}, tmp
                )
    result_file = os.path.join(run_dir, "result.json")
    if rank == 0:
        result = finish_run(cfg, fs, r, state, run_dir, key, {"world_size": size, "seconds": time.perf_counter() - t0})
        os.remove(ckpt)
    if size == 1:
        return result
    dist.barrier()
    return read_sealed_json(result_file)


@dataclass
class RunSetup:
    """What a run trains on, made the same way by fit and by hgrlib.train_stacked: its split, the rows it
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
        n_unl = rows_per_batch(tc) - tc.labeled_per_batch
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
    result = {
        "config": cfg.to_dict(),
        "key": key or {},
        "features_sha256": file_sha256(feats_file),
        "weights_sha256": file_sha256(weights_file),
        "test": test,
        "history": state["history"],
        "best_val_uar": state["best_uar"],
        "n_train_segments": int(len(r.train_idx)),
        "n_labeled_segments": int(r.labeled.sum()),
        "steps": tc.epochs * r.n_batches,
        "n_test_segments": int(len(r.split.test)),
        "test_subjects": r.split.test_subjects,
        "device": str(device),
        "threads": torch.get_num_threads(),
    }
    result |= extra | {"run_dir": run_dir}
    write_sealed_json(os.path.join(run_dir, "result.json"), result)
    return result


def record_epoch(state: dict, sums: dict, val: dict, model_state: dict) -> None:
    """Add a finished epoch's losses and validation scores to state["history"] (state["epoch"] counts it
    already); keep `model_state` when its validation UAR is the best so far."""
    state["history"].append({"epoch": state["epoch"], **sums, "val_acc": val["acc"], "val_uar": val["uar"]})
    if val["uar"] > state["best_uar"]:
        state["best_uar"] = val["uar"]
        state["best"] = {k: t.detach().cpu().clone() for k, t in model_state.items()}


def _rng_states(device: torch.device) -> list:
    """Every rank's random-number state (CPU, and the GPU's when training there), in rank order."""
    mine = {"cpu": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}
    if world()[1] == 1:
        return [mine]
    states: list = [None] * world()[1]
    dist.all_gather_object(states, mine)
    return states


def fresh_state() -> dict:
    return {"epoch": 0, "best_uar": -1.0, "best": None, "history": []}


def _resume(ckpt: str, model: EmotionModel, opt, sched, device: torch.device) -> dict | None:
    """The training state to go on from: a fresh one, or the checkpoint's (loading model, optimiser, schedule
    and this rank's random state). None when the checkpoint is damaged: it is removed, the caller restarts."""
    fresh = fresh_state()
    rank, size = world()
    if size > 1:
        dist.barrier()  # rank 0 may be replacing the checkpoint of a run it is restarting
    if not os.path.exists(ckpt):
        return fresh
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


def _save_features(run_dir: str, model: EmotionModel, batcher: Batcher, split: Split, fs: FeatureSet) -> str:
    """Clip-level (segment-averaged) features f, g, z and probabilities of every clip, with its part of the split.

    Under the segment protocol a clip's segments can lie in several parts; its part is then that
    of the majority of its segments.
    """
    s = fs.n_segments
    idx = np.arange(len(fs.clip_ids) * s)
    pred = predict(model, batcher, idx)
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
