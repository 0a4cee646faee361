"""Atomic writes, and JSON that carries its own checksum so a damaged file is caught when read."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHECKSUM_KEY = "sha256"


class CorruptFile(RuntimeError):
    """A cached file that cannot be trusted: the message names the file and the problem."""


@contextmanager
def atomic(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path` (same suffix) to write to: moved onto `path` when the block ends,
    removed if it raises, so `path` is either the old file or the whole new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.part{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> Path:
    with atomic(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | Path, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def _digest(obj: dict) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def write_sealed_json(path: str | Path, obj: dict) -> Path:
    """Write `obj` (a dict) with a sha256 of its content under CHECKSUM_KEY, atomically."""
    obj = json.loads(json.dumps(obj, default=str))  # what will be read back
    return write_json(path, obj | {CHECKSUM_KEY: _digest(obj)})


def read_sealed_json(path: str | Path) -> dict:
    """The dict `write_sealed_json` wrote; raises CorruptFile if it is unreadable, truncated or altered."""
    try:
        obj = read_json(path)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CorruptFile(f"{path}: unreadable ({type(e).__name__}: {e})") from e
    if not isinstance(obj, dict) or CHECKSUM_KEY not in obj:
        raise CorruptFile(f"{path}: no checksum (written by an older version, or not by hgrlib)")
    want = obj.pop(CHECKSUM_KEY)
    if _digest(obj) != want:
        raise CorruptFile(f"{path}: checksum mismatch (the file was altered or damaged)")
    return obj


def rel_path(path, base) -> str:
    """`path` relative to the folder `base`, both resolved, with forward slashes (for links in Markdown and metadata)."""
    return Path(os.path.relpath(Path(path).resolve(), Path(base).resolve())).as_posix()
