"""Training: one run of one Config on a FeatureSet, supervised or semi-supervised, CPU or GPU.

A run lives in runs/<config hash>/: checkpoint.pt after every epoch (resumed if interrupted),
result.json when finished (a finished run is never redone), features.npz of the test clips.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from hgrlib.config import Config, config_hash
from hgrlib.data.splits import Split, make_split
from hgrlib.evaluate import clip_probs, scores
from hgrlib.io import CorruptFile, read_sealed_json, write_sealed_json
from hgrlib.losses import joint_loss
from hgrlib.models import EmotionModel
from hgrlib.provenance import TRAINING_LIBS, arrays_sha256, code_digest, file_sha256, library_versions


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


def code_version() -> str:
    """Digest of every hgrlib module a run imports (found from train.py's imports) and the shipped splits."""
    return code_digest("hgrlib.train")


def run_key(cfg: Config, fs: FeatureSet) -> dict:
    """Everything that makes a run's numbers: config, data (every feature byte), code, libraries, execution."""
    return cfg.to_dict() | {"data": fs.fingerprint, "code": code_version(), "libs": library_versions(TRAINING_LIBS),
                            "exec": execution_key(cfg)}


def pick_device(pref: str = "auto") -> torch.device:
    """CUDA when present (or asked for), else the CPU."""
    if pref == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if pref == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' asked for, but no CUDA device is available")
    return torch.device(pref)


def execution_key(cfg: Config) -> str:
    """What besides the config changes a run's numbers: the device type, and on the CPU the thread count.

    Floating-point sums are split differently over 1 or 2 threads; over a run that moves its accuracy
    by a point or two (measured: benchmarks/README.md), so runs with different thread counts are kept apart.
    """
    device = pick_device(cfg.train.device)
    if device.type != "cpu":
        return device.type
    return f"cpu-{cfg.train.threads or torch.get_num_threads()}threads"


def autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """Mixed precision for the networks when `amp` asks for it (TrainConfig.amp: off | bf16)."""
    if amp not in ("off", "bf16"):
        raise ValueError(f"TrainConfig.amp must be 'off' or 'bf16', got {amp!r}")
    if amp == "off":
        return contextlib.nullcontext()
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise RuntimeError("TrainConfig.amp='bf16' asked for, but this GPU has no bfloat16 support; use amp='off'")
    return torch.autocast(device.type, dtype=torch.bfloat16)


def seed_everything(seed: int) -> None:
    np.random.seed(seed)
    torch.manual_seed(seed)


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
        a = (self.audio[i].to(self.device).float() - self.mean) / self.std
        v = self.faces[i].to(self.device).permute(0, 1, 4, 2, 3).float().div_(255.0).sub_(0.5).div_(0.25)  # (B,K,3,H,W)
        return a, v, self.labels[i].to(self.device)


def _inputs(model: EmotionModel, a: torch.Tensor, v: torch.Tensor) -> tuple:
    return (a if model.audio is not None else None, v if model.visual is not None else None)


@torch.no_grad()
def predict(model: EmotionModel, batcher: Batcher, idx: np.ndarray, batch_size: int = 256) -> dict[str, np.ndarray]:
    """Segment-level probabilities and features for the segments `idx`."""
    model.eval()
    probs, feats = [], {"f": [], "g": [], "z": []}
    for k in range(0, len(idx), batch_size):
        a, v, _ = batcher(idx[k : k + batch_size])
        out = model(*_inputs(model, a, v))
        probs.append(out["logits"].softmax(1).cpu())
        for key in feats:
            if key in out:
                feats[key].append(out[key].cpu())
    res = {"probs": torch.cat(probs).numpy()}
    res |= {k: torch.cat(v).numpy() for k, v in feats.items() if v}
    return res


def evaluate_split(model: EmotionModel, batcher: Batcher, idx: np.ndarray, fs: FeatureSet, protocol: str) -> dict:
    """Segment- and clip-level scores on `idx`; the headline (acc, uar) is clip-level under `subject`."""
    pred = predict(model, batcher, idx)
    y_seg = fs.labels[idx // fs.n_segments]
    c = len(fs.classes)
    seg = scores(y_seg, pred["probs"].argmax(1), c)
    clips, p = clip_probs(pred["probs"], idx // fs.n_segments)
    clip = scores(fs.labels[clips], p.argmax(1), c)
    head = clip if protocol == "subject" else seg
    return {"acc": head["acc"], "uar": head["uar"], "confusion": head["confusion"], "seg_acc": seg["acc"],
            "seg_uar": seg["uar"], "clip_acc": clip["acc"], "clip_uar": clip["uar"], "_pred": pred, "_clips": clips}


def fit(cfg: Config, fs: FeatureSet, runs_dir: str = "runs", progress: bool = True) -> dict:
    """Train, select the epoch with the best validation UAR, test it; cached under the hash of `run_key`."""
    run_dir = os.path.join(runs_dir, config_hash(run_key(cfg, fs)))
    result_file = os.path.join(run_dir, "result.json")
    if (done := read_result(run_dir)) is not None:
        return done
    os.makedirs(run_dir, exist_ok=True)
    with _run_lock(run_dir):  # two notebooks run in parallel (-j) may ask for the same run
        if (done := read_result(run_dir)) is not None:
            return done
        with _torch_threads(cfg.train.threads):
            return _fit(cfg, fs, run_dir, result_file, progress)


def read_result(run_dir: str) -> dict | None:
    """A finished run's result, checked (result.json's checksum, and features.npz's against it); None if
    there is none. A damaged one is reported by path and removed, so the run is trained again."""
    result_file = os.path.join(run_dir, "result.json")
    if not os.path.exists(result_file):
        return None
    try:
        result = read_sealed_json(result_file)
        feats = os.path.join(run_dir, "features.npz")
        if not os.path.exists(feats) or file_sha256(feats) != result.get("features_sha256"):
            raise CorruptFile(f"{feats}: missing or does not match its result.json")
    except CorruptFile as e:
        print(f"{e}; training this run again", file=sys.stderr)
        os.remove(result_file)
        return None
    return result


@contextlib.contextmanager
def _torch_threads(n: int):
    """Run with `n` torch CPU threads (0: as they are), then restore the caller's count."""
    prev = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(prev)


@contextlib.contextmanager
def _run_lock(run_dir: str, poll: float = 2.0):
    """An exclusive lock file in the run folder; a lock left by a dead process is taken over."""
    lock = os.path.join(run_dir, ".lock")
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            break
        except FileExistsError:
            try:
                os.kill(int(open(lock).read() or 0), 0)
                time.sleep(poll)
            except (ProcessLookupError, ValueError):
                os.remove(lock)
    try:
        yield
    finally:
        os.remove(lock)


def steps_per_epoch(n_train: int, n_used: int, tc) -> int:
    """Optimiser steps per epoch: full batches in one pass over the rows a run trains on (`n_used`), or with
    `match_steps` over every training row (`n_train`, labeled or not), so a labeled-only run takes as many
    steps as the runs that also see the unlabeled clips."""
    return (n_train if tc.match_steps else n_used) // tc.batch_size


def epoch_order(n: int, length: int, seed: int, epoch: int) -> np.ndarray:
    """`length` row indices for one epoch: permutations of range(n) laid end to end, seeded by (seed, epoch).

    A pass drops no row when `length` is a whole number of passes; a longer epoch (match_steps) cycles
    through every row before repeating one. The first permutation is the one a plain epoch uses."""
    reps = -(-length // n) if n else 0
    perms = [np.random.default_rng([seed, epoch] + ([k] if k else [])).permutation(n) for k in range(reps)]
    return np.concatenate(perms)[:length] if perms else np.zeros(0, dtype=np.int64)


def _fit(cfg: Config, fs: FeatureSet, run_dir: str, result_file: str, progress: bool) -> dict:
    t0 = time.perf_counter()
    tc = cfg.train
    device = pick_device(tc.device)
    seed_everything(tc.seed)
    split = make_split(fs.subjects, fs.labels, fs.n_segments, dataset=fs.dataset, protocol=tc.protocol,
                       n_folds=tc.n_folds, fold=tc.fold, seed=tc.seed, labeled_frac=tc.labeled_frac)
    train_idx = split.train if tc.use_unlabeled else split.train[split.labeled]
    labeled = split.labeled if tc.use_unlabeled else np.ones(len(train_idx), bool)
    batcher = Batcher(fs, split.train, device)
    model = EmotionModel(len(fs.classes), fs.audio.shape[2], fs.faces.shape[2], cfg.model).to(device)
    forward = torch.compile(model) if tc.compile else model  # shares the parameters; eval stays eager
    mixed = autocast(device, tc.amp)  # checked and built once; entered around every training forward
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    n_batches = steps_per_epoch(len(split.train), len(train_idx), tc)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=tc.lr, total_steps=tc.epochs * max(1, n_batches), pct_start=0.2)
    state = {"epoch": 0, "best_uar": -1.0, "best": None, "history": []}
    ckpt = os.path.join(run_dir, "checkpoint.pt")
    if os.path.exists(ckpt):  # resume an interrupted run
        try:
            saved = torch.load(ckpt, map_location=device, weights_only=False)
            model.load_state_dict(saved["model"]), opt.load_state_dict(saved["opt"]), sched.load_state_dict(saved["sched"])
            state = saved["state"]
            torch.set_rng_state(saved["rng"])
        except Exception as e:  # a damaged checkpoint (e.g. a disk filled mid-write elsewhere): start over
            print(f"{ckpt}: cannot resume from it ({type(e).__name__}: {e}); training from the start", file=sys.stderr)
            os.remove(ckpt)
            return _fit(cfg, fs, run_dir, result_file, progress)
    bar = tqdm(range(state["epoch"], tc.epochs), desc=f"train {cfg.model.modalities} lam={cfg.loss.lam} seed={tc.seed}",
               unit="epoch", disable=not progress, leave=False)
    for epoch in bar:
        model.train()
        order = epoch_order(len(train_idx), n_batches * tc.batch_size, tc.seed, epoch)  # same order after a resume
        sums: dict[str, float] = {}
        nonfinite = 0
        for b in range(n_batches):
            sel = order[b * tc.batch_size : (b + 1) * tc.batch_size]
            a, v, y = batcher(train_idx[sel])
            with mixed:
                out = forward(*_inputs(model, a, v), y)
            out = {k: x.float() for k, x in out.items()}  # the losses' moments and covariances in fp32
            try:
                loss, parts = joint_loss(out, y, torch.from_numpy(labeled[sel]).to(device), cfg.loss)
            except torch.linalg.LinAlgError:  # eigh of a singular covariance (CCA-style loss): a non-finite step
                loss, parts = torch.tensor(float("nan")), {}
            opt.zero_grad(set_to_none=True)
            if torch.isfinite(loss):
                loss.backward()
            # e.g. a CCA-style loss on a singular batch: a non-finite loss or gradient skips the update, counted
            if not torch.isfinite(loss) or not torch.isfinite(torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf"))):
                nonfinite += 1
                opt.zero_grad(set_to_none=True)
                sched.step()
                continue
            opt.step()
            sched.step()
            for k, x in parts.items():
                sums[k] = sums.get(k, 0.0) + x / n_batches
        val = evaluate_split(model, batcher, split.val, fs, tc.protocol)
        state["history"].append({"epoch": epoch + 1, **sums, "nonfinite_steps": nonfinite, "val_acc": val["acc"], "val_uar": val["uar"]})
        if val["uar"] > state["best_uar"]:
            state["best_uar"] = val["uar"]
            state["best"] = {k: t.detach().cpu().clone() for k, t in model.state_dict().items()}
        state["epoch"] = epoch + 1
        bar.set_postfix(loss=f"{sums.get('loss', 0):.3f}", val_uar=f"{val['uar']:.3f}")
        tmp = ckpt + ".part"
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(), "state": state,
                    "rng": torch.get_rng_state()}, tmp)
        os.replace(tmp, ckpt)
    model.load_state_dict(state["best"])
    test = evaluate_split(model, batcher, split.test, fs, tc.protocol)
    test.pop("_pred"), test.pop("_clips")
    feats_file = _save_features(run_dir, model, batcher, split, fs)
    result = {"config": cfg.to_dict(), "key": run_key(cfg, fs), "features_sha256": file_sha256(feats_file), "test": test, "history": state["history"], "best_val_uar": state["best_uar"],
              "n_train_segments": int(len(train_idx)), "n_labeled_segments": int(labeled.sum()), "steps": tc.epochs * n_batches,
              "n_test_segments": int(len(split.test)), "test_subjects": split.test_subjects,
              "device": str(device), "threads": torch.get_num_threads(), "seconds": time.perf_counter() - t0, "run_dir": run_dir}
    write_sealed_json(result_file, result)
    os.remove(ckpt)
    return result


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
    tmp = os.path.join(run_dir, "features.part.npz")
    np.savez(tmp, **out)
    os.replace(tmp, path := os.path.join(run_dir, "features.npz"))
    return path
