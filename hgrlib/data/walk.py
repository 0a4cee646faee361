"""Walking a dataset folder the way datasets lie on shared storage: through symbolic links.

Corpora on shared disks are usually linked into place (``Actor_01 -> /datasets/ravdess/Actor_01``), so
every loader walks with links followed. A folder reached a second time (a link to one of its own
ancestors, i.e. a link loop, or two links to one folder) is walked once: the second visit is reported
in the IndexReport and not entered. A broken link, and a folder that cannot be read, are reported too.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from hgrlib.data.records import IndexReport


def _identity(path: str | os.PathLike) -> tuple[int, int]:
    st = os.stat(path)  # follows links
    return st.st_dev, st.st_ino


def walk(
    root: str | os.PathLike,
    report: IndexReport | None = None,
) -> Iterator[tuple[str, list[str], list[str]]]:
    """os.walk(root, followlinks=True) in sorted order, each folder entered at most once.

    Yields (dirpath, dirnames, filenames) like os.walk (prune by editing dirnames in place); broken
    links are left out of filenames and, like link loops and unreadable folders, reported to `report`."""
    seen: set[tuple[int, int]] = set()

    def unreadable(e: OSError) -> None:
        if report is not None:
            report.skip(e.filename or root, f"cannot read this folder ({e.strerror or e})")

    for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=unreadable):
        try:
            ident = _identity(dirpath)
        except OSError as e:
            unreadable(e)
            dirnames[:] = []
            continue
        if ident in seen:
            if report is not None:
                report.skip(
                    dirpath,
                    f"link to {os.path.realpath(dirpath)}, a folder already walked (a link loop or a second link to it); not walked again",
                )
            dirnames[:] = []
            continue
        seen.add(ident)
        dirnames.sort()
        files = []
        for name in sorted(filenames):
            p = Path(dirpath) / name
            if p.is_symlink() and not p.exists():
                if report is not None:
                    report.skip(p, f"broken link: points to {os.readlink(p)}, which does not exist")
                continue
            files.append(name)
        yield dirpath, dirnames, files


def walk_files(root: str | os.PathLike, report: IndexReport | None = None) -> list[Path]:
    """Every file under `root` (links followed, each folder once), in sorted walk order."""
    return [Path(d) / f for d, _, files in walk(root, report) for f in files]
