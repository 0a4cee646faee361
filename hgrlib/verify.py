"""`run_all.sh --verify`: regenerate everything from nothing in a scratch folder, compare with what is committed.

Every table (CSV) under results/<dataset>-<profile>/ is compared cell by cell with the regenerated
one; only the wall-clock columns (TIMING_COLUMNS) may differ. Figures are compared byte for byte
and reported, but they do not decide the verdict (a new matplotlib can move a pixel without any
number changing).
"""

from __future__ import annotations

import csv
import tempfile
from pathlib import Path

from hgrlib.provenance import file_sha256

TIMING_COLUMNS = ("seconds",)  # wall-clock time of a run: never reproducible, never compared


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    return (rows[0], rows[1:]) if rows else ([], [])


def compare_table(committed: Path, regenerated: Path, max_cells: int = 20) -> list[str]:
    """Differences between two CSV tables, cell by cell, as readable lines (empty: identical)."""
    name = committed.name
    if not regenerated.exists():
        return [f"{name}: not regenerated"]
    head_a, rows_a = _read_csv(committed)
    head_b, rows_b = _read_csv(regenerated)
    if head_a != head_b:
        return [f"{name}: columns differ: committed {head_a}, regenerated {head_b}"]
    out = []
    if len(rows_a) != len(rows_b):
        out.append(f"{name}: {len(rows_a)} rows committed, {len(rows_b)} regenerated")
    keep = [i for i, c in enumerate(head_a) if c not in TIMING_COLUMNS]
    for r, (a, b) in enumerate(zip(rows_a, rows_b)):
        for i in keep:
            if a[i] != b[i]:
                out.append(f"{name} row {r + 1} ({head_a[0]}={a[0]}) {head_a[i]}: committed {a[i]!r}, regenerated {b[i]!r}")
    if len(out) > max_cells:
        out = out[:max_cells] + [f"{name}: ... {len(out) - max_cells} more differing cells"]
    return out


def compare_results(committed_dir: Path, regenerated_dir: Path) -> tuple[list[str], int]:
    """(difference lines over every committed or regenerated table, number of tables compared)."""
    names = sorted({p.name for d in (committed_dir, regenerated_dir) for p in d.glob("*.csv")})
    out = []
    for n in names:
        if not (committed_dir / n).exists():
            out.append(f"{n}: regenerated but not committed")
        else:
            out += compare_table(committed_dir / n, regenerated_dir / n)
    return out, len(names)


def compare_figures(committed_dir: Path, regenerated_dir: Path) -> list[str]:
    """Figures whose bytes differ (or that one side lacks)."""
    names = sorted({p.name for d in (committed_dir, regenerated_dir) for p in d.glob("*.png")})
    a = {n: file_sha256(committed_dir / n) for n in names if (committed_dir / n).exists()}
    b = {n: file_sha256(regenerated_dir / n) for n in names if (regenerated_dir / n).exists()}
    return [n for n in names if a.get(n) != b.get(n)]


def verify(
    profile: str = "default",
    dataset: str = "synthetic",
    root: str | None = None,
    classes: int = 6,
    jobs: int = 0,
    scratch: str | None = None,
    results_dir: str = "results",
    figures_dir: str = "figures",
) -> int:
    """Regenerate `profile` from nothing under `scratch` and compare; prints the verdict, returns 0 if every table matches."""
    from hgrlib.profiles import get_profile
    from hgrlib.report import project_dir
    from hgrlib.runner import run

    repo = project_dir()
    tag = f"{dataset}-{profile}"
    committed = repo / results_dir / tag
    if not committed.is_dir():
        print(f"--verify: nothing committed to compare with ({committed} does not exist)")
        return 2
    base = Path(scratch) if scratch else Path(tempfile.mkdtemp(prefix="hgrlib-verify-"))
    if base.exists() and any(base.iterdir()):
        print(f"--verify: {base} is not empty; give an empty or new folder, so that nothing cached is reused")
        return 2
    base = base.resolve()
    if dataset == "synthetic" and root is None:  # the corpus too is made from nothing
        root = str(base / "data" / Path(get_profile(profile).config.data.root).name)
    print(f"--verify: regenerating {tag} from nothing in {base}", flush=True)
    run(
        profile,
        dataset,
        root,
        classes,
        None,
        jobs,
        True,
        str(base / "results"),
        str(base / "figures"),
        str(base / "cache"),
        str(base / "runs"),
    )
    diffs, n = compare_results(committed, base / "results" / tag)
    figs = compare_figures(repo / figures_dir / tag, base / "figures" / tag)
    print(f"\n--verify: {n} tables compared cell by cell (timing columns {', '.join(TIMING_COLUMNS)} ignored)")
    for line in diffs:
        print(f"  DIFF {line}")
    if figs:
        print(f"  figures whose bytes differ (not part of the verdict): {', '.join(figs)}")
    print(
        "--verify: every committed table is reproduced exactly"
        if not diffs
        else f"--verify: FAILED, {len(diffs)} difference(s); regenerated results are in {base}"
    )
    return 1 if diffs else 0
