"""Writing what notebooks produce: tables as CSV + Markdown, figures as PNG, atomically."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from hgrlib.io import write_text


def project_dir(start: str | Path | None = None) -> Path:
    """The repository root (the folder holding run_all.sh), found from `start` (default: cwd) upwards."""
    here = Path(start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / "run_all.sh").exists() and (d / "hgrlib").is_dir():
            return d
    return here


def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (no extra dependency)."""
    cols = [str(c) for c in df.columns]
    fmt = lambda v: f"{v:.4f}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def write_table(df: pd.DataFrame, stem: str | Path, title: str | None = None) -> tuple[Path, Path]:
    """`stem`.csv and `stem`.md, written atomically."""
    stem = Path(stem)
    csv = write_text(stem.with_suffix(".csv"), df.to_csv(index=False))
    md = write_text(stem.with_suffix(".md"), (f"# {title}\n\n" if title else "") + markdown_table(df))
    return csv, md


def save_figure(fig, path: str | Path, dpi: int = 120) -> Path:
    """Save a matplotlib figure as PNG atomically (deterministic metadata, so unchanged plots hash the same)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
    fig.savefig(tmp, dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    os.replace(tmp, path)
    return path
