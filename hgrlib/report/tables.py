"""Writing what notebooks produce: tables as CSV + Markdown, figures as PNG, atomically."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hgrlib.base.io import atomic, write_text


def mean_std(
    df: pd.DataFrame,
    by,
    metrics: tuple[str, ...] = ("acc", "uar"),
    scale: float = 100.0,
    digits: int = 1,
    count: str = "runs",
    spread: bool = False,
) -> pd.DataFrame:
    """Per group of `by` (a column or a list): the number of rows (`count`), then per metric {m}_mean and {m}_std
    (ddof=1; 0 for a single row) as stored, and {m}, the text "mean ± std" of the values × `scale` with `digits`
    decimals ("–" if missing); with `spread`, also {m}_min, {m}_max and {m}_range."""
    g = df.groupby(by, sort=False)
    out = g.size().rename(count).to_frame()
    for m in metrics:
        out[f"{m}_mean"] = g[m].mean()
        out[f"{m}_std"] = g[m].std(ddof=1).fillna(0.0)
        out[m] = [
            "–" if not np.isfinite(a) else f"{scale * a:.{digits}f} ± {scale * s:.{digits}f}"
            for a, s in zip(out[f"{m}_mean"], out[f"{m}_std"])
        ]
        if spread:
            out[f"{m}_min"], out[f"{m}_max"] = g[m].min(), g[m].max()
            out[f"{m}_range"] = out[f"{m}_max"] - out[f"{m}_min"]
    return out.reset_index()


# scores stored as fractions (0..1): shown as percent with one decimal
PERCENT = re.compile(r"^(val_|test_|train_)?(acc|uar|seg_acc|clip_acc|f1)(_(mean|std|range|seed_std|seed_range|pooled_std|diff))?$")
NBSP = "\u00a0"


def readable(df: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The table as text for reading, and a note on what was left out.

    Scores stored as fractions become percent with one decimal (the column named "… (%)"); whole numbers
    lose their ".0"; other numbers keep three significant digits; missing values read "–"; "m ± s" stays
    on one line; a numeric `X_mean`/`X_std` pair is dropped where a "m ± s" column `X` shows it (the CSV
    keeps every column); columns that are zero in every row are dropped and named in the note.
    """
    out, zero = {}, []
    spread = [str(c) for c in df.columns if not pd.api.types.is_numeric_dtype(df[c]) and df[c].astype(str).str.contains(" ± ").any()]
    for col in df.columns:
        v, name = df[col], str(col)
        if (name.rsplit("_", 1)[0] in spread and name.endswith(("_mean", "_std"))) or (name in ("mean", "std") and spread):
            continue
        if pd.api.types.is_bool_dtype(v):
            out[name] = v.map({True: "yes", False: "no"})
        elif pd.api.types.is_numeric_dtype(v):
            x = v.astype(float)
            finite = x[np.isfinite(x)]
            if len(x) > 1 and len(finite) == len(x) and (finite == 0).all():
                zero.append(name)
                continue
            if PERCENT.match(name) and len(finite) and finite.abs().max() <= 1.0:
                out[f"{name} (%)"] = x.map(lambda f: "–" if not np.isfinite(f) else f"{100 * f:.1f}")
            elif len(finite) and (finite == finite.round()).all():
                out[name] = x.map(lambda f: "–" if not np.isfinite(f) else f"{int(f)}")
            else:
                out[name] = x.map(lambda f: "–" if not np.isfinite(f) else f"{f:.3g}")
        else:
            out[name] = v.map(
                lambda t: "–" if t is None or (isinstance(t, float) and not np.isfinite(t)) else str(t).replace(" ± ", f"{NBSP}±{NBSP}")
            )
    note = f"Zero in every row, not shown: {', '.join(zero)}." if zero else ""
    return pd.DataFrame(out, index=df.index), note


def pipe_table(header: list, rows) -> str:
    """A GitHub-flavoured Markdown pipe table, each cell on one line with `|` escaped (GFM splits cells on it,
    even inside code spans); no trailing newline."""
    cell = lambda v: str(v).replace("\n", " ").replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(map(cell, header)) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(map(cell, row)) + " |" for row in rows]
    return "\n".join(lines)


def markdown_table(df: pd.DataFrame) -> str:
    """The cells of `df` as given, as a pipe table ending in a newline."""
    return pipe_table(list(df.columns), df.itertuples(index=False)) + "\n"


def write_table(df: pd.DataFrame, stem: str | Path, title: str | None = None) -> tuple[Path, Path]:
    """`stem`.csv (every column, full precision) and `stem`.md (`readable`), written atomically."""
    stem = Path(stem)
    csv = write_text(stem.with_suffix(".csv"), df.to_csv(index=False))
    view, note = readable(df)
    md = write_text(stem.with_suffix(".md"), (f"# {title}\n\n" if title else "") + markdown_table(view) + (f"\n{note}\n" if note else ""))
    return csv, md


@dataclass(frozen=True)
class Table:
    """A table as a notebook shows it: HTML without the index, every row; plain text elsewhere."""

    view: pd.DataFrame
    caption: str = ""

    def _repr_html_(self) -> str:
        if self.view.empty:
            return f"<p>{self.caption} (no rows)</p>".replace("<p> ", "<p>")
        # ids from the content, not random: a re-executed notebook shows the same HTML
        uuid = hashlib.sha256(self.view.to_csv().encode()).hexdigest()[:8]
        styler = self.view.style.hide(axis="index").set_uuid(uuid)
        return (styler.set_caption(self.caption) if self.caption else styler).to_html()

    def __repr__(self) -> str:
        if self.view.empty:
            return f"{self.caption} (no rows)".strip()
        return (self.caption + "\n" if self.caption else "") + self.view.to_string(index=False)


def show(df: pd.DataFrame, caption: str | None = None) -> Table:
    """`df` for a notebook: `readable`, no index, nothing truncated; what was left out said in the caption."""
    view, note = readable(df)
    return Table(view, " ".join(t for t in (caption, note) if t))


def save_table(df: pd.DataFrame, stem: str | Path, title: str | None = None) -> Table:
    """`write_table`, and the table as the notebook shows it, under the same title as its `.md`."""
    write_table(df, stem, title)
    return show(df, title)


def save_figure(fig, path: str | Path, dpi: int = 120) -> Path:
    """Save a matplotlib figure as PNG atomically (deterministic metadata, so unchanged plots hash the same)."""
    with atomic(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    return Path(path)
