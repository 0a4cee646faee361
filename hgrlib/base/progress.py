"""Progress bars: live where someone watches (a terminal, JupyterLab's widgets), one line in batch runs.

`./run_all.sh` executes the notebooks with HGRLIB_BATCH=1 in their environment: a bar then prints
nothing while it runs and a single summary line on stdout when it closes, so an executed notebook
records what was done and how long it took, not one stderr line per refresh.
"""

from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm
from tqdm.std import tqdm as std_tqdm


def batch() -> bool:
    """Whether this process runs unattended (under `./run_all.sh`)."""
    return os.environ.get("HGRLIB_BATCH", "") not in ("", "0")


class OneLine(std_tqdm):
    """A tqdm that draws nothing until it closes, then prints one line (if `leave`) on stdout."""

    def __init__(self, *args, **kwargs):
        self.one_line = kwargs.get("leave", True) is not False
        kwargs.update(file=sys.stdout, leave=False)  # tqdm's own closing writes nothing
        super().__init__(*args, **kwargs)

    def display(self, msg=None, pos=None):
        return False

    def close(self):
        if not self.disable and self.one_line:
            d = self.format_dict
            many = (d["total"] or d["n"]) != 1 and d["unit"].isalpha() and d["unit"] != "it"
            units = d["unit"] + "s" if many else d["unit"]  # "48/48 runs", "576/576 clips", "1/1 run"
            rate = f", {d['n'] / d['elapsed']:.2f} {units}/s" if d["elapsed"] > 0 and d["n"] else ""
            total = f"/{d['total']}" if d["total"] else ""
            print(f"{d['prefix'] or 'done'}: {d['n']}{total} {units} in {d['elapsed']:.0f} s{rate}", file=sys.stdout, flush=True)
        super().close()


def bar(iterable=None, **kwargs):
    """tqdm.auto's bar, or a OneLine in batch runs; takes tqdm's arguments."""
    return (OneLine if batch() else tqdm)(iterable, **kwargs)
