"""Where and how a run computes: its device, mixed precision, CPU threads, malloc tuning, seeding."""

from __future__ import annotations

import contextlib
import ctypes
import os

import numpy as np
import torch

from hgrlib.core.distributed import world


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


def seed_everything(seed: int) -> None:
    np.random.seed(seed)
    torch.manual_seed(seed)
