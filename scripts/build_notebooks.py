"""Build the stripped notebooks/NN_*.ipynb from their text sources notebooks/src/NN_*.py.

The .py sources (percent format: `# %%`, `# %% [markdown]`, `# %% tags=["parameters"]`) are what to
edit and review; run `python scripts/build_notebooks.py notebooks/src/*.py` after a change. Edits
made in JupyterLab must be carried back to the source (tests check the two agree).
"""
import re
import sys
import warnings

import nbformat
from pathlib import Path

def build(src: Path, dst: Path):
    text = src.read_text()
    chunks = re.split(r"^# %%(.*)$", text, flags=re.M)
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                   "language_info": {"name": "python"}}
    for header, body in zip(chunks[1::2], chunks[2::2]):
        body = body.strip("\n")
        if "[markdown]" in header:
            lines = [l[2:] if l.startswith("# ") else l.lstrip("#") for l in body.splitlines()]
            cell = nbformat.v4.new_markdown_cell("\n".join(lines))
        else:
            cell = nbformat.v4.new_code_cell(body)
            if "parameters" in header:
                cell.metadata["tags"] = ["parameters"]
        cell.pop("id", None)
        nb.cells.append(cell)
    for c in nb.cells:
        c.pop("id", None)
    nb.nbformat_minor = 4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cells carry no ids on purpose: smaller diffs
        nbformat.write(nb, dst)

if __name__ == "__main__":
    for s in sys.argv[1:]:
        s = Path(s)
        build(s, Path(__file__).resolve().parents[1] / "notebooks" / (s.stem + ".ipynb"))
        print("built", s.stem)
