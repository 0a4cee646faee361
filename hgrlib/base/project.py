"""The project on disk: its folder, its git commit, and one line for a failed read or write."""

from __future__ import annotations

import subprocess
from pathlib import Path


def project_dir(start: str | Path | None = None) -> Path:
    """The repository root (the folder holding run_all.sh): found from `start` (default: cwd) upwards, else
    from where this hgrlib lies (a project's hgrlib/, as an editable install imports it); else `start` itself
    (hgrlib.reproduce.runner then finds no notebooks there and says so)."""
    here = Path(start or Path.cwd()).resolve()
    package = Path(__file__).resolve().parents[2]  # the folder holding hgrlib/
    for d in (here, *here.parents, package):
        if (d / "run_all.sh").exists() and (d / "hgrlib").is_dir():
            return d
    return here


def git_commit(repo: Path) -> str:
    """The commit checked out in `repo`, with "-dirty" when hgrlib/ or notebooks/ differ from it; "unknown" without git."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "hgrlib", "notebooks"], cwd=repo, capture_output=True, text=True
        ).stdout
        return out + ("-dirty" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def os_error(e: OSError) -> str:
    """One line for a failed read or write: the path, the system's reason, and that a rerun resumes."""
    where = f"{e.filename}: " if e.filename else ""
    return f"{where}{e.strerror or e}; finished work is kept, rerun once this is fixed to go on from where it stopped"
