"""The package's layers: every import of every hgrlib module, at module level or inside a function, points down
a layer or within its own, and no set of modules imports itself round."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "hgrlib"

# Bottom first. A module may import modules of its own layer or of any layer below it; a name ending in "."
# stands for a package and everything in it.
LAYERS: list[tuple[str, list[str]]] = [
    ("base", ["hgrlib.version", "hgrlib.config", "hgrlib.base."]),
    ("data", ["hgrlib.data."]),
    ("paper core", ["hgrlib.core."]),
    ("tables and figures", ["hgrlib.report."]),
    ("experiment", ["hgrlib.experiment."]),
    ("analysis", ["hgrlib.analysis."]),
    ("reproduce", ["hgrlib.reproduce."]),
    ("application", ["hgrlib.app.", "hgrlib"]),
]

# Imports that break the rule today, each one (importer, imported) spelled out; none at present.
KNOWN_EXCEPTIONS: set[tuple[str, str]] = set()


def modules() -> dict[str, Path]:
    out = {}
    for f in sorted(PACKAGE.rglob("*.py")):
        parts = list(f.relative_to(PACKAGE.parent).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


def layer_of(module: str) -> int:
    for i, (_, names) in enumerate(LAYERS):
        if any(module == n or (n.endswith(".") and (module + ".").startswith(n)) for n in names):
            return i
    raise AssertionError(f"{module} is in no layer of tests/test_imports.py's LAYERS: place it")


def imports(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The hgrlib modules `module` imports anywhere in its file (`from hgrlib.x import y` names hgrlib.x.y when
    that is a module, else hgrlib.x)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                out.add(name)
    return out


def graph() -> dict[str, set[str]]:
    known = modules()
    return {m: imports(m, f, known) for m, f in known.items()}


def test_every_module_has_a_layer():
    for m in modules():
        layer_of(m)


def test_imports_point_down():
    up = [
        f"{m} ({LAYERS[layer_of(m)][0]}) imports {t} ({LAYERS[layer_of(t)][0]})"
        for m, targets in graph().items()
        for t in sorted(targets)
        if layer_of(t) > layer_of(m) and (m, t) not in KNOWN_EXCEPTIONS
    ]
    assert not up, "imports pointing up a layer:\n" + "\n".join(up)


def test_no_import_cycles():
    g = {m: {t for t in ts if (m, t) not in KNOWN_EXCEPTIONS} for m, ts in graph().items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles = []

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for t in sorted(g[m]):
            if state.get(t) == 1:
                cycles.append(" -> ".join(path[path.index(t) :] + [m, t]) if t in path else f"{m} -> {t}")
            elif t not in state:
                visit(t, path + [m])
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            visit(m, [])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_scan_sees_function_level_imports():
    g = graph()
    assert "hgrlib.app.export" in g["hgrlib"]  # hgrlib.__getattr__'s lazy `from hgrlib.app.export import load_model`
    assert "hgrlib.data.faces" in g["hgrlib.data.cache"]  # inside make_detector's caller, not at module level


def test_the_tree_is_the_layers():
    packages = {d.name for d in PACKAGE.iterdir() if (d / "__init__.py").is_file()}
    named = {n.split(".")[1] for _, ns in LAYERS for n in ns if n.endswith(".")}
    loose = {f.stem for f in PACKAGE.glob("*.py")} - {"__init__", "version", "config"}
    assert packages == named and not loose, f"packages {sorted(packages)}, layers {sorted(named)}, loose modules {sorted(loose)}"
