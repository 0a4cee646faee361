"""Walking a dataset folder the way datasets lie on shared storage: through symbolic links.

Corpora on shared disks are usually linked into place (``Actor_01 -> /datasets/ravdess/Actor_01``), so
every loader walks with links followed. Each real folder and each real file is taken once per `seen`
(one per dataset index, shared by every walk of that index): a folder reached again (a link loop, or a
second link to it) is reported in the IndexReport and not entered, a file reached again (a second
symbolic or hard link to it) is reported and left out, each message naming the path that was taken.
Within a folder, entries named like what they point to come before links named otherwise, so a folder
or clip is kept under its own name (``Actor_02 -> Actor_01`` loses to ``Actor_01``). A broken link, and
a folder that cannot be read, are reported too.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from hgrlib.data.records import IndexReport

Seen = dict[tuple[int, int], str]  # (device, inode) of each folder and file taken -> the path it was taken under


def _identity(path: str | os.PathLike) -> tuple[int, int]:
    st = os.stat(path)  # follows links
    return st.st_dev, st.st_ino


def is_alias(path: str | os.PathLike) -> bool:
    """Whether `path` is a link named otherwise than the file or folder it resolves to."""
    return os.path.islink(path) and os.path.basename(os.path.realpath(path)) != os.path.basename(path)


def own_names_first(folder: str | os.PathLike, names: list[str]) -> list[str]:
    """`names` (entries of `folder`) sorted, those that are aliases (is_alias) last."""
    return sorted(names, key=lambda n: (is_alias(os.path.join(folder, n)), n))


def walk(
    root: str | os.PathLike,
    report: IndexReport | None = None,
    seen: Seen | None = None,
) -> Iterator[tuple[str, list[str], list[str]]]:
    """os.walk(root, followlinks=True) in own_names_first order, each real folder and file taken once per `seen`.

    Yields (dirpath, dirnames, filenames) like os.walk (prune by editing dirnames in place); folders and
    files already taken, broken links and unreadable folders are left out and reported to `report`."""
    seen = {} if seen is None else seen

    def skip(path, reason: str) -> None:
        if report is not None:
            report.skip(path, reason)

    def unreadable(e: OSError) -> None:
        skip(e.filename or root, f"cannot read this folder ({e.strerror or e})")

    for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=unreadable):
        try:
            ident = _identity(dirpath)
        except OSError as e:
            unreadable(e)
            dirnames[:] = []
            continue
        if ident in seen:
            skip(
                dirpath,
                f"link to {os.path.realpath(dirpath)}, a folder already walked as {seen[ident]} "
                "(a link loop or a second link to it); not walked again",
            )
            dirnames[:] = []
            continue
        seen[ident] = dirpath
        dirnames[:] = own_names_first(dirpath, dirnames)
        yield dirpath, dirnames, [name for name in own_names_first(dirpath, filenames) if _take(Path(dirpath) / name, seen, skip)]


def _take(path: Path, seen: Seen, skip) -> bool:
    """Whether the file at `path` is taken: not a broken link, and not a file already taken."""
    try:
        ident = _identity(path)
    except OSError as e:
        if path.is_symlink():
            skip(path, f"broken link: points to {os.readlink(path)}, which does not exist")
        else:
            skip(path, f"cannot read this file ({e.strerror or e})")
        return False
    if ident in seen:
        skip(path, f"same file as {seen[ident]} (a second link to it); indexed once")
        return False
    seen[ident] = str(path)
    return True


def walk_files(root: str | os.PathLike, report: IndexReport | None = None, seen: Seen | None = None) -> list[Path]:
    """Every file under `root` (links followed, each real folder and file once), in walk order."""
    return [Path(d) / f for d, _, files in walk(root, report, seen) for f in files]
