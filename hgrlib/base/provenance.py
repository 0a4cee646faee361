"""What a cached result depends on: the hgrlib code it runs (found from imports), library versions, the
machine that computed it, digests.

Cache keys (feature cache, training runs, the runner's notebook stamps) are built from these, so a
change to the code of any module a result imports, to the shipped split files or to a library that
changes numbers gives a new key instead of a stale result; comments and docstrings are not code.

`machine_identity` names what decides a CPU run's last bits besides the code: the CPU model and its
instruction sets, the kernels torch, MKL and oneDNN dispatch to, and the variables that pin them. The
same run on another CPU model differs in its last bits, and over a run of training that grows to points
(docs/reproducibility.md), so a run is keyed by it and the results say where they were made.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import os
import platform
import re
from importlib import metadata
from pathlib import Path

import numpy as np

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # hgrlib/
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
    return files_digest(module_closure(*modules) + sorted(PACKAGE_DIR.glob("data/shipped_folds/*.json")))


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


# Environment variables that change which kernels MKL, oneDNN and ATen run (so a run's last bits);
# PORTABLE_DISPATCH pins all three to the AVX2 paths every x86-64 CPU of the last decade has.
DISPATCH_VARS = ("MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")
PORTABLE_DISPATCH = {"MKL_CBWR": "COMPATIBLE", "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
DISPATCHES = {"native": {}, "portable": PORTABLE_DISPATCH}  # run_all.sh --dispatch (docs/reproducibility.md)
# the best instruction set a CPU offers, by the /proc/cpuinfo flags it needs (oneDNN's ladder, coarsely)
ISA_LADDER = (
    ("amx", ("amx_tile", "amx_bf16")),
    ("avx512_fp16", ("avx512_fp16",)),
    ("avx512_bf16", ("avx512_bf16", "avx512_vnni")),
    ("avx512_vnni", ("avx512_vnni",)),
    ("avx512", ("avx512f", "avx512bw", "avx512vl", "avx512dq")),
    ("avx2_vnni", ("avx2", "avx_vnni")),
    ("avx2", ("avx2", "fma")),
    ("sse4.1", ("sse4_1",)),
)


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty where there is none: not Linux)."""
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        return {}
    first = text.split("\n\n")[0]
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in first.splitlines()) if k.strip()}


def _build_versions(config: str) -> dict[str, str]:
    """MKL's and oneDNN's versions from torch's build description (`torch.__config__.show()`)."""
    mkl = re.search(r"Math Kernel Library Version ([\w.]+)", config)
    dnn = re.search(r"MKL-DNN v([\w.]+)", config)
    return {"mkl": mkl.group(1) if mkl else "none", "onednn": dnn.group(1) if dnn else "none"}


def machine_identity(pinned: dict | None = None) -> dict:
    """What decides a CPU run's last bits besides the code and the thread count: the CPU (vendor, family,
    model, name, best instruction set), the level ATen's kernels dispatch at on it, torch's, MKL's and
    oneDNN's versions, and the dispatch variables set (DISPATCH_VARS, from the environment, and `pinned`: those
    a runner is about to set for its notebooks). A new dict each call."""
    env = {k: os.environ[k] for k in DISPATCH_VARS if k in os.environ} | (pinned or {})
    return dict(_machine_identity()) | {"dispatch_env": env}


@functools.cache
def _machine_identity() -> tuple[tuple[str, str], ...]:
    import torch

    info = _cpuinfo()
    flags = set(info.get("flags", "").split())
    isa = next((name for name, need in ISA_LADDER if flags >= set(need)), "unknown" if flags else platform.machine())
    return (
        ("cpu", info.get("model name") or platform.processor() or platform.machine()),
        ("vendor", info.get("vendor_id", platform.machine())),
        ("family", info.get("cpu family", "")),
        ("model", info.get("model", "")),
        ("isa", isa),
        ("torch_dispatch", _torch_dispatch(flags)),
        ("torch", torch.__version__),
        *_build_versions(torch.__config__.show()).items(),
    )


def _torch_dispatch(flags: set[str]) -> str:
    """ATen's level on this CPU whatever ATEN_CPU_CAPABILITY says (that is in dispatch_env): from the CPU's flags,
    as ATen decides it (AVX512, AVX2, else DEFAULT); torch's own reading only where there are no flags to read."""
    if flags >= {"avx512f", "avx512bw", "avx512vl", "avx512dq"}:
        return "AVX512"
    if flags >= {"avx2", "fma"}:
        return "AVX2"
    if flags:
        return "DEFAULT"
    import torch

    return torch.backends.cpu.get_cpu_capability()


def machine_tag(m: dict) -> str:
    """A machine identity as a short key: vendor-family-model-isa, torch's dispatch level, MKL and oneDNN
    versions and any dispatch variable (e.g. `AuthenticAMD-25-17-avx512_bf16-AVX512-mkl2024.2-onednn3.12.0`)."""
    env = "".join(f"-{k}={v}" for k, v in sorted(m.get("dispatch_env", {}).items()))
    return f"{m['vendor']}-{m['family']}-{m['model']}-{m['isa']}-{m['torch_dispatch']}-mkl{m['mkl']}-onednn{m['onednn']}{env}"


def machine_text(m: dict) -> str:
    """A machine identity for a reader: `AMD EPYC (AuthenticAMD family 25 model 17, avx512_bf16); torch 2.14.1
    dispatching at AVX512, MKL 2024.2, oneDNN 3.12.0`, and any dispatch variable set."""
    env = ", ".join(f"{k}={v}" for k, v in sorted(m.get("dispatch_env", {}).items()))
    return (
        f"{m['cpu']} ({m['vendor']} family {m['family']} model {m['model']}, {m['isa']}); torch {m['torch']} dispatching at "
        f"{m['torch_dispatch']}, MKL {m['mkl']}, oneDNN {m['onednn']}" + (f"; {env}" if env else "")
    )
