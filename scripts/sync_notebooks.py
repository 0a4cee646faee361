"""Sync the notebooks notebooks/NN_*.ipynb with their text sources notebooks/src/NN_*.py (jupytext pairs).

The .py sources (percent format: `# %%`, `# %% [markdown]`, `# %% tags=["parameters"]`) are what to edit and
review. jupytext pairs each with its notebook (notebooks/jupytext.toml): JupyterLab, with jupytext installed,
writes both files on save; an edit made as text is carried over by

    python scripts/sync_notebooks.py            # every pair; or name some, from either side

which runs `jupytext --sync` on the pairs (the side modified last is the source), then writes each .ipynb from
its .py alone, byte for byte as JupyterLab 4 (through jupyter_server's contents API) saves it after merely
opening it with the project's kernel, so that opening one does not mark it modified and a save leaves git
clean (tests/test_lab.py). jupytext leaves open what this fixes:
- nbformat 4.5 with a fixed id per cell: a hash of the cell's type and text (a second identical cell gets
  "-2"), the same on every build; an edited or inserted cell changes only its own id (jupytext keeps the ids
  of an existing .ipynb and draws random ones for new cells, as JupyterLab does);
- metadata.jupytext: the metadata filters of notebooks/jupytext.toml, which jupytext's contents manager adds
  to a paired notebook it opens (so Lab saves them);
- metadata.kernelspec exactly as the kernel registered by scripts/ensure_env.sh gives it (Lab writes name,
  display_name and language of the running kernel's spec);
- metadata.language_info exactly as ipykernel reports it in its kernel_info reply (Lab copies that reply in
  whole), with the Python version of the project's interpreter, PYTHON_VERSION below
  (`.venv/bin/python -c "import platform; print(platform.python_version())"`). Under another Python (e.g. a
  conda environment's 3.11.x) Lab rewrites that one line, "version", on open; that diff is harmless and is
  not to be committed.
Outputs and execution counts are never kept. Needs only jupytext (and nbformat, which it brings): the
pre-commit hook runs it without hgrlib (.pre-commit-config.yaml).
"""

import hashlib
import os
import sys
from pathlib import Path

import jupytext
from jupytext.cli import jupytext as jupytext_cli
from jupytext.config import load_jupytext_config
from jupytext.formats import long_form_multiple_formats
from jupytext.paired_paths import find_base_path_and_format, paired_paths

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
PYTHON_VERSION = "3.11.7"  # .venv/bin/python of the reference machine (Python 3.11, environment.yml)
# ipykernel's own spec for kernel name python3 (the default `ipykernel install` writes, and ensure_env.sh)
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
LANGUAGE_INFO = {  # ipykernel 7's kernel_info reply
    "codemirror_mode": {"name": "ipython", "version": 3},
    "file_extension": ".py",
    "mimetype": "text/x-python",
    "name": "python",
    "nbconvert_exporter": "python",
    "pygments_lexer": "ipython3",
    "version": PYTHON_VERSION,
}


def cell_id(cell, taken: set) -> str:
    """A stable nbformat cell id (1-64 of [a-zA-Z0-9-_]) from the cell's type and text, unique in `taken`."""
    base = hashlib.sha256(f"{cell.cell_type}\n{cell.source}".encode()).hexdigest()[:8]
    cid, n = base, 1
    while cid in taken:
        n += 1
        cid = f"{base}-{n}"
    taken.add(cid)
    return cid


def pair(path) -> tuple[Path, Path]:
    """(the .py, the .ipynb) of the pair that `path`, either side, belongs to, as notebooks/jupytext.toml pairs them."""
    path = Path(path).resolve()
    config = load_jupytext_config(str(path))
    formats = long_form_multiple_formats(config.default_formats(str(path)))
    _, fmt = find_base_path_and_format(str(path), formats)
    paths = {Path(p).suffix: Path(p) for p, _ in paired_paths(str(path), fmt, formats)}
    return paths[".py"], paths[".ipynb"]


def notebook_text(src: Path) -> str:
    """The .ipynb of the text source `src`, from it alone: its cells, and the metadata and ids above."""
    config = load_jupytext_config(str(src))
    nb = jupytext.read(src, fmt="py:percent", config=config)
    nb.nbformat, nb.nbformat_minor = 4, 5
    filters = {k: getattr(config, k) for k in ("cell_metadata_filter", "notebook_metadata_filter")}
    nb.metadata = {"jupytext": filters, "kernelspec": dict(KERNELSPEC), "language_info": dict(LANGUAGE_INFO)}
    taken = set()
    for cell in nb.cells:
        cell.id = cell_id(cell, taken)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return jupytext.writes(nb, fmt="ipynb") + "\n"  # as jupyter_server's save: indent 1, sorted keys, final newline


def build(src: Path, dst: Path) -> bool:
    """Write the .ipynb of `src` to `dst` unless it holds those bytes already; True if written."""
    text = notebook_text(src)
    if dst.exists() and dst.read_text(encoding="utf-8") == text:
        return False
    dst.write_text(text, encoding="utf-8")
    # with the .py's modification time: not newer than its source (jupytext's contents manager would warn in Lab),
    # and the .py stays the side that `jupytext --sync` takes as the source
    os.utime(dst, ns=(dst.stat().st_atime_ns, src.stat().st_mtime_ns))
    return True


def sync(paths) -> None:
    pairs = sorted({pair(p) for p in paths})
    if jupytext_cli(["--sync", "--quiet", *(str(py) for py, _ in pairs)]):
        sys.exit("jupytext --sync failed")
    for py, ipynb in pairs:
        if build(py, ipynb):
            print("wrote", ipynb.relative_to(ROOT))


if __name__ == "__main__":
    sync(sys.argv[1:] or sorted((NOTEBOOKS / "src").glob("[0-9][0-9]_*.py")))
