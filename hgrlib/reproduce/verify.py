"""`run_all.sh --verify`: regenerate everything from nothing in a scratch folder, compare with what is committed.

Two tiers, chosen by where the committed results were made (the `machine` their run stamps record,
hgrlib.base.provenance.machine_identity) against this machine:

- **exact**, on the same machine identity: every table (CSV) under results/<dataset>-<profile>/ is
  compared cell by cell with the regenerated one; only the wall-clock columns (TIMING_COLUMNS) may differ.
- **claims**, on another CPU model, instruction set, MKL/oneDNN/torch version or pinned dispatch, where the
  last bits of every run differ and training turns them into points: the claims are the contract. Each
  claim's regenerated effect must lie inside the committed interval and the committed effect inside the
  regenerated one, with the same verdict; a changed verdict is named fragile. Every table's drift is
  summarised (the largest difference per column), not listed cell by cell. The exit status is the claims'.

Figures are compared byte for byte and reported, but they do not decide the verdict (a new matplotlib can
move a pixel without any number changing).
"""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from hgrlib.base.io import read_json
from hgrlib.base.project import project_dir
from hgrlib.base.provenance import DISPATCHES, file_sha256, machine_identity, machine_text
from hgrlib.experiment.profiles import get_profile

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


def committed_machines(results_dir: Path) -> list[dict | None]:
    """The machine identity each run stamp under `results_dir` records (None for a stamp that records none)."""
    out = []
    for f in sorted(Path(results_dir).glob(".*.stamp.json")):
        try:
            out.append(read_json(f).get("machine"))
        except (OSError, ValueError):
            out.append(None)
    return out


def choose_tier(committed: list[dict | None], here: dict, asked: str = "auto") -> tuple[str, str]:
    """("exact" | "claims", why): exact where every committed stamp names this machine identity, else claims."""
    if asked != "auto":
        return asked, f"asked for with --tier {asked}"
    if not committed:
        return "claims", "the committed results have no run stamps saying where they were made"
    if any(m is None for m in committed):
        return "claims", "the committed run stamps do not all say where they were made"
    if any(m != committed[0] for m in committed):
        return "claims", "the committed notebooks were made on more than one machine identity"
    there = committed[0]
    if there == here:
        return "exact", f"same machine identity as the committed results: {machine_text(here)}"
    fields = [k for k in dict.fromkeys([*here, *there]) if there.get(k) != here.get(k)]
    return "claims", (
        f"committed on {machine_text(there)}; this machine is {machine_text(here)} (differs in {', '.join(fields)}): "
        "another CPU model or dispatch computes other last bits, so tables are compared through the claims"
    )


def compare_claims(committed: Path, regenerated: Path) -> tuple[list[str], list[str]]:
    """(failures, agreements) between two claims.csv: a claim agrees when each effect lies inside the other's
    interval and the verdict is the same; a changed verdict is named fragile."""
    if not regenerated.is_file():
        return [f"{regenerated.name}: not regenerated"], []
    a, b = (pd.read_csv(f).set_index("claim") for f in (committed, regenerated))
    bad, good = [], []
    for claim in a.index.union(b.index, sort=False):
        if claim not in b.index or claim not in a.index:
            bad.append(f"{claim}: {'not regenerated' if claim not in b.index else 'regenerated but not committed'}")
            continue
        ca, cb = a.loc[claim], b.loc[claim]
        said = f"{ca.verdict} {_effect(ca)} committed, {cb.verdict} {_effect(cb)} regenerated"
        if ca.verdict == cb.verdict == "not run":
            good.append(f"{claim}: not run on either side")
        elif ca.verdict != cb.verdict:
            bad.append(f"{claim}: FRAGILE, the verdict changed: {said}")
        elif not (_inside(cb.effect, ca) and _inside(ca.effect, cb)):
            bad.append(f"{claim}: the effect moved outside the other's interval: {said}")
        else:
            good.append(f"{claim}: {said}")
    return bad, good


def _effect(r) -> str:
    return "(no effect)" if pd.isna(r.effect) else f"{r.effect:+.1f} [{r.ci_low:+.1f}, {r.ci_high:+.1f}]"


def _inside(x: float, r) -> bool:
    return bool(r.ci_low <= x <= r.ci_high)


def table_drift(committed: Path, regenerated: Path) -> str | None:
    """One line on how far a regenerated table drifted from the committed one: the largest absolute difference
    of each numeric column that differs, and how many cells of each text column differ (None: identical)."""
    if not regenerated.exists():
        return f"{committed.name}: not regenerated"
    a, b = pd.read_csv(committed), pd.read_csv(regenerated)
    if list(a.columns) != list(b.columns) or len(a) != len(b):
        return f"{committed.name}: shape differs ({len(a)} x {len(a.columns)} committed, {len(b)} x {len(b.columns)} regenerated)"
    parts = []
    for col in a.columns:
        if col in TIMING_COLUMNS:
            continue
        x, y = a[col], b[col]
        if pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y):
            d = (x - y).abs().max()
            if d > 0:
                parts.append(f"{col} {d:.3g}")
        elif (n := int((x.astype(str) != y.astype(str)).sum())) > 0:
            parts.append(f"{col} {n} cell(s)")
    return f"{committed.name}: largest differences: {', '.join(parts)}" if parts else None


def verify(
    run: Callable[..., list[dict]],
    profile: str = "default",
    dataset: str = "synthetic",
    root: str | None = None,
    classes: int = 6,
    jobs: int = 0,
    scratch: str | None = None,
    results_dir: str = "results",
    figures_dir: str = "figures",
    tier: str = "auto",
    dispatch: str = "native",
) -> int:
    """Regenerate `profile` from nothing under `scratch` and compare in the tier `tier` (auto: exact on the machine
    identity that made the committed results, claims elsewhere); prints the tier, why, and the verdict; returns 0
    when the tier's contract holds, 1 when not, 2 when nothing could be compared."""
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
    tier, why = choose_tier(committed_machines(committed), machine_identity(DISPATCHES[dispatch]), tier)
    print(f"--verify: {tier} tier: {why}", flush=True)
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
        dispatch=dispatch,
    )
    regenerated = base / "results" / tag
    figs = compare_figures(repo / figures_dir / tag, base / "figures" / tag)
    return (_exact if tier == "exact" else _claims)(committed, regenerated, figs, base)


def _exact(committed: Path, regenerated: Path, figs: list[str], base: Path) -> int:
    diffs, n = compare_results(committed, regenerated)
    print(f"\n--verify (exact): {n} tables compared cell by cell (timing columns {', '.join(TIMING_COLUMNS)} ignored)")
    for line in diffs:
        print(f"  DIFF {line}")
    return _finish(figs, diffs, "every committed table is reproduced exactly", f"{len(diffs)} difference(s)", base)


def _claims(committed: Path, regenerated: Path, figs: list[str], base: Path) -> int:
    if not (committed / "claims.csv").is_file():
        print(f"--verify: nothing to compare in the claims tier: {committed / 'claims.csv'} does not exist")
        return 2
    bad, good = compare_claims(committed / "claims.csv", regenerated / "claims.csv")
    names = sorted({p.name for d in (committed, regenerated) for p in d.glob("*.csv")} - {"claims.csv"})
    drift = [d for n in names if (d := table_drift(committed / n, regenerated / n))]
    print(f"\n--verify (claims): {len(good) + len(bad)} claims compared (effect inside the other's 95% interval, same verdict)")
    for line in good:
        print(f"  agrees   {line}")
    for line in bad:
        print(f"  DISAGREE {line}")
    print(f"  table drift (information; {len(drift)} of {len(names)} tables differ):")
    for line in drift:
        print(f"    {line}")
    return _finish(figs, bad, "every claim agrees with the committed one", f"{len(bad)} claim(s) disagree", base)


def _finish(figs: list[str], failures: list[str], passed: str, failed: str, base: Path) -> int:
    """The verdict's last lines, either tier: the figures whose bytes differ (information), then `passed`, or
    FAILED with `failed` and where the regenerated results are; 1 when there are `failures`, else 0."""
    if figs:
        print(f"  figures whose bytes differ (not part of the verdict): {', '.join(figs)}")
    print(f"--verify: FAILED, {failed}; regenerated results are in {base}" if failures else f"--verify: {passed}")
    return 1 if failures else 0
