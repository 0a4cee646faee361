"""Build the stripped notebooks/NN_*.ipynb from their text sources notebooks/src/NN_*.py.

The .py sources (percent format: `# %%`, `# %% [markdown]`, `# %% tags=["parameters"]`) are what to
edit and review; run `python scripts/build_notebooks.py notebooks/src/*.py` after a change. Edits
made in JupyterLab must be carried back to the source (tests check the two agree).

Each notebook is written byte for byte as JupyterLab 4 (through jupyter_server's contents API) saves it
after merely opening it with the project's kernel, so that opening one does not mark it modified and an
autosave leaves git clean (tests/test_lab.py):
- nbformat 4.5 with a fixed id per cell: a hash of the cell's type and text (a second identical cell
  gets "-2"), the same on every rebuild; an edited or inserted cell changes only its own id;
- metadata.kernelspec exactly as the kernel registered by scripts/ensure_env.sh gives it (Lab writes
  name, display_name and language of the running kernel's spec);
- metadata.language_info exactly as ipykernel reports it in its kernel_info reply (Lab copies that reply
  in whole), with the Python version of the project's interpreter, PYTHON_VERSION below
  (`.venv/bin/python -c "import platform; print(platform.python_version())"`). Under another Python
  (e.g. a conda environment's 3.11.x) Lab rewrites that one line, "version", on open; that diff is
  harmless and is not to be committed.
"""
import hashlib
import re
import sys
from pathlib import Path

import nbformat

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


def build(src: Path, dst: Path):
    text = src.read_text()
    chunks = re.split(r"^# %%(.*)$", text, flags=re.M)
    nb = nbformat.v4.new_notebook()  # nbformat 4.5
    nb.metadata = {"kernelspec": dict(KERNELSPEC), "language_info": dict(LANGUAGE_INFO)}
    taken = set()
    for header, body in zip(chunks[1::2], chunks[2::2]):
        body = body.strip("\n")
        if "[markdown]" in header:
            lines = [l[2:] if l.startswith("# ") else l.lstrip("#") for l in body.splitlines()]
            cell = nbformat.v4.new_markdown_cell("\n".join(lines))
        else:
            cell = nbformat.v4.new_code_cell(body)
            if "parameters" in header:
                cell.metadata["tags"] = ["parameters"]
        cell.id = cell_id(cell, taken)
        nb.cells.append(cell)
    nbformat.write(nb, dst)  # what jupyter_server's save calls: indent 1, sorted keys, final newline


if __name__ == "__main__":
    for s in sys.argv[1:]:
        s = Path(s)
        build(s, Path(__file__).resolve().parents[1] / "notebooks" / (s.stem + ".ipynb"))
        print("built", s.stem)
