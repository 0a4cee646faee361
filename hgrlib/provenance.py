"""What a cached result depends on: the hgrlib code it runs (found from imports), library versions, digests.

Cache keys (feature cache, training runs, the runner's notebook stamps) are built from these, so a
change to the code of any module a result imports, to the shipped split files or to a library that
changes numbers gives a new key instead of a stale result; comments and docstrings are not code.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from importlib import metadata
from pathlib import Path

import numpy as np

PACKAGE_DIR = Path(__file__).parent
# Libraries whose version can change the numbers, by what they compute.
TRAINING_LIBS = ("torch", "numpy")
FEATURE_LIBS = ("torch", "torchaudio", "numpy", "opencv-python-headless", "av", "soundfile", "soxr")


def _imports(path: Path) -> set[str]:
    """hgrlib modules named by any import statement in a file (module level or inside functions)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}  # `from hgrlib.data import cache`
    return {m for m in out if m == "hgrlib" or m.startswith("hgrlib.")}


def _module_file(name: str) -> Path | None:
    parts = name.split(".")[1:]
    candidates = [PACKAGE_DIR.joinpath(*parts[:-1], parts[-1] + ".py")] if parts else []
    for f in candidates + [PACKAGE_DIR.joinpath(*parts, "__init__.py")]:
        if f.is_file():
            return f
    return None


def module_closure(*modules: str) -> list[Path]:
    """Source files of `modules` and of every hgrlib module they import, transitively, sorted."""
    seen: set[Path] = set()
    todo = list(modules)
    while todo:
        f = _module_file(todo.pop())
        if f is None or f in seen:
            continue
        seen.add(f)
        todo += sorted(_imports(f))
    return sorted(seen)


def code_text(path: Path) -> bytes:
    """What a source file computes: its code without comments, docstrings or formatting (so editing
    those keeps every cache key); any other file as it is."""
    if path.suffix != ".py":
        return path.read_bytes()
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return ast.unparse(tree).encode()


def files_digest(files: list[Path]) -> str:
    """sha256 over the package-relative names and `code_text` of `files`."""
    h = hashlib.sha256()
    for f in files:
        h.update(f.relative_to(PACKAGE_DIR).as_posix().encode() + b"\0" + hashlib.sha256(code_text(f)).digest())
    return h.hexdigest()[:16]


@functools.cache
def code_digest(*modules: str) -> str:
    """Digest of the source closure of `modules` plus the package's data files (the shipped splits)."""
    return files_digest(module_closure(*modules) + sorted(PACKAGE_DIR.glob("splits/*.json")))


def package_digest() -> str:
    """Digest of every module and data file of the package."""
    return files_digest(sorted(PACKAGE_DIR.rglob("*.py")) + sorted(PACKAGE_DIR.rglob("*.json")))


def library_versions(names: tuple[str, ...] = TRAINING_LIBS) -> dict[str, str]:
    """Installed versions of the distributions `names` ("missing" for one that is not installed); a new dict
    each call, so a caller that adds to it changes no other caller's key."""
    return dict(_versions(tuple(names)))


@functools.cache
def _versions(names: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    out = []
    for n in names:
        try:
            out.append((n, metadata.version(n)))
        except metadata.PackageNotFoundError:
            out.append((n, "missing"))
    return tuple(out)


def arrays_sha256(*arrays: np.ndarray) -> str:
    """sha256 of arrays' dtypes, shapes and every byte of their values."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(np.ascontiguousarray(a).data)
    return h.hexdigest()


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
