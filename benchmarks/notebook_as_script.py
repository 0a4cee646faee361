"""Run a notebook's jupytext source (notebooks/src/NN_*.py) as a plain Python script, with parameters
overridden: for machines without Jupyter/papermill (e.g. a GPU node used only for the GPU figures).

    python benchmarks/notebook_as_script.py 02 profile=paper replica_seed=None seeds=[0,1]

Each override NAME=VALUE replaces the assignment `NAME = ...` in the parameters cell (VALUE is Python).
Rich displays are printed. The tables and figures go where the notebook writes them (results/, figures/).
"""

from __future__ import annotations

import re
import sys
import time
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str]) -> None:
    number, overrides = argv[0], argv[1:]
    src = next((REPO / "notebooks" / "src").glob(f"{number}_*.py"))
    text = src.read_text()
    for item in overrides:
        name, _, value = item.partition("=")
        text, n = re.subn(rf"^{re.escape(name)} = .*$", f"{name} = {value}", text, count=1, flags=re.M)
        if not n:
            sys.exit(f"{src.name}: no parameter {name!r}")
    try:
        import IPython.display  # noqa: F401
    except ImportError:  # a machine without Jupyter: displays are printed
        ipython, display = types.ModuleType("IPython"), types.ModuleType("IPython.display")
        ipython.get_ipython = lambda: None
        display.display = lambda *objs, **_: [print(o) for o in objs]
        sys.modules |= {"IPython": ipython, "IPython.display": display}
    sys.path.insert(0, str(REPO))
    import matplotlib

    matplotlib.use("Agg")
    t0 = time.perf_counter()
    exec(compile(text, str(src), "exec"), {"__name__": "__main__"})
    print(f"{src.name}: done in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
