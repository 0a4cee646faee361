"""The results index and the README's generated sections, written after every `./run_all.sh`.

* `results/manifest.json`: every executed notebook (`.ipynb`), table, figure and data file, with
  the notebook and parameters that made it, the commit and time of that run (from its stamp, so that a
  re-run that skips everything, or a fresh clone, rewrites the same file) and a sha256.
* `results/README.md`: the same for people: first every executed notebook per results folder (links to the
  `.ipynb` and its HTML; commit, finish time and parameters once per notebook), then the tables and figures
  grouped by the notebook that wrote them. Hashes stay in the manifest.
* `README.md`: the main table and figure (`README_TABLES`, `README_FIGURES`) between `<!-- results:start -->` and
  `<!-- results:end -->`, the claims between `<!-- claims:start -->` and `<!-- claims:end -->`.

All Markdown written here keeps a blank line before and after every table, image and caption, so that
strict CommonMark/GFM readers (pandoc, markdown-it) render it as GitHub does (tests/test_markdown.py).
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timezone
from pathlib import Path

from hgrlib.base.io import read_json, rel_path, write_json, write_text
from hgrlib.base.project import git_commit
from hgrlib.base.provenance import machine_text
from hgrlib.report.plots import CAPTIONS
from hgrlib.report.tables import pipe_table

NOTEBOOK_DIR = "notebooks"
MANIFEST_SUFFIXES = (".ipynb", ".csv", ".md", ".json", ".png")  # not .html: built locally, not committed

# The README is a front door: its results section shows the main table and one figure; results/README.md (the
# full index, linked from the README) lists every table and figure.
README_TABLES = [  # (file under results/<tag>/, heading) shown in the README's results section
    ("02_supervised_table.md", "Main table (notebook 02)"),
]
README_FIGURES = ["02_accuracy.png"]

# What each figure shows (the README's figure captions and alt text, the index's description): set beside the
# function that draws the figure, with hgrlib.report.plots.caption.
FIGURE_CAPTIONS = CAPTIONS
DATA_DESCRIPTIONS = {  # what each data file (neither table nor figure) holds: the index's description
    "01_prep_report.json": "Data preparation report: clips indexed and skipped, features extracted or read from the "
    "cache, face key frames detected, borrowed or centre-cropped.",
}


# ---------------------------------------------------------------------------------------------- Markdown pieces


def _link(text: str, target: str) -> str:
    """`[text](target)`, the target in <...> when it holds a space or a parenthesis."""
    return f"[{text}](<{target}>)" if re.search(r"[\s()<>]", target) else f"[{text}]({target})"


def _blocks(*parts: str) -> str:
    """Markdown blocks joined by one blank line each (empty parts dropped)."""
    return "\n\n".join(p.strip("\n") for p in parts if p and p.strip())


def table_title(md_text: str) -> tuple[str, str]:
    """(title, the rest) of a table file written by `hgrlib.report.tables.write_table`: its title is the first
    line, `# title` (empty when it has none); the rest is the table (and any notes), stripped."""
    lines = md_text.strip("\n").splitlines()
    i = next((k for k, line in enumerate(lines) if line.strip()), None)
    if i is not None and lines[i].startswith("# "):
        return lines[i][2:].strip(), "\n".join(lines[i + 1 :]).strip("\n")
    return "", "\n".join(lines).strip("\n")


# ---------------------------------------------------------------------------------------------- stamps and files


def _stamps(folder: Path) -> dict[str, dict]:
    """The run stamps of one results folder, by notebook stem (`.NN_name.stamp.json`); unreadable ones skipped."""
    out = {}
    for f in sorted(folder.glob(".*.stamp.json")) if folder.is_dir() else []:
        try:
            out[f.name[1 : -len(".stamp.json")]] = read_json(f)
        except (OSError, ValueError):
            continue
    return out


def read_stamps(results: Path) -> dict[str, dict[str, dict]]:
    """The run stamps of every results folder (tag) under `results`, by tag, then notebook stem."""
    return {d.name: _stamps(d) for d in _folders(results)}


def _latest(stamps: dict[str, dict]) -> dict:
    return max((st for st in stamps.values() if "finished" in st), key=lambda st: st["finished"], default={})


def _notebook_of(name: str, repo: Path) -> str | None:
    """The source notebook (`NN_name.ipynb` under notebooks/) that wrote the file `name` (its `NN_` prefix)."""
    nb = name.split("_")[0]
    return next((s.name for s in sorted((repo / NOTEBOOK_DIR).glob(f"{nb}_*.ipynb"))), None) if nb.isdigit() else None


def _hidden(f: Path, base: Path) -> bool:
    """Whether `f` or a folder between `base` and it is hidden (its name starts with "."), e.g. the
    `.ipynb_checkpoints/` JupyterLab writes when a reader opens an executed notebook."""
    return any(part.startswith(".") for part in f.relative_to(base).parts)


def _folders(base: Path) -> list[Path]:
    """The results folders (tags) directly under `base`, hidden ones left out."""
    return [d for d in sorted(base.iterdir()) if d.is_dir() and not _hidden(d, base)] if base.is_dir() else []


def _listed(base: Path) -> list[Path]:
    """The files under `base` the manifest lists (nothing hidden, not the index itself)."""
    return (
        [
            f
            for f in sorted(base.rglob("*"))
            if f.is_file() and not _hidden(f, base) and f.suffix in MANIFEST_SUFFIXES and f.name not in ("manifest.json", "README.md")
        ]
        if base.is_dir()
        else []
    )


def _when(iso: str | None) -> str:
    if not iso:
        return "—"
    try:
        return datetime.fromisoformat(iso).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return iso


def _took(seconds: object) -> str:
    if not isinstance(seconds, (int, float)):
        return "—"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def _params(p: dict) -> str:
    return ", ".join(f"`{k}={v}`" for k, v in sorted(p.items())) or "—"


# ---------------------------------------------------------------------------------------------- manifest + index


def write_manifest(repo: Path, results_dir: str = "results", figures_dir: str = "figures", stamps: dict | None = None) -> Path:
    """results/manifest.json and results/README.md: every executed notebook (and its HTML), table, figure and
    data file, who made it, at which commit, when; the manifest also gives each file's sha256. `stamps`:
    `read_stamps` of the results folder, if the caller has them."""
    repo = Path(repo)
    results, figures = repo / results_dir, repo / figures_dir
    commit = git_commit(repo)
    stamps = read_stamps(results) if stamps is None else stamps
    entries = []
    for f in _listed(results) + _listed(figures):
        tag = f.parent.name
        notebook = _notebook_of(f.name, repo)
        meta = stamps.get(tag, {}).get(Path(notebook).stem, {}) if notebook else {}
        if f.stem == "claims":  # made by hgrlib/experiment/claims.py from the run tables: dated by the newest notebook run
            notebook, meta = "hgrlib/experiment/claims.py", _latest(stamps.get(tag, {}))
        entries.append(
            {
                "file": rel_path(f, repo),
                "notebook": notebook,
                # when and at which commit the notebook that wrote it ran (its stamp), so that a re-run that
                # skips everything, or a fresh clone, rewrites the same manifest
                "parameters": meta.get("parameters"),
                "commit": meta.get("commit", commit),
                "machine": machine_text(meta["machine"]) if meta.get("machine") else None,  # where it was computed
                "time": meta.get("finished") or datetime.fromtimestamp(f.stat().st_mtime, timezone.utc).isoformat(timespec="seconds"),
                "sha256": hashlib.sha256(f.read_bytes()).hexdigest(),
            }
        )
    write_json(results / "manifest.json", entries)
    write_text(results / "README.md", results_index(repo, results_dir, figures_dir, stamps))
    return results / "manifest.json"


def results_index(repo: Path, results_dir: str = "results", figures_dir: str = "figures", stamps: dict | None = None) -> str:
    """The text of results/README.md (see the module's docstring); deterministic: stamps and names only.
    `stamps`: `read_stamps` of the results folder (read here if not given)."""
    repo = Path(repo)
    results, figures = repo / results_dir, repo / figures_dir
    stamps = read_stamps(results) if stamps is None else stamps
    here = results  # links are relative to results/README.md
    tags = sorted({d.name for base in (results, figures) for d in _folders(base)})
    sources = sorted(s.stem for s in (repo / NOTEBOOK_DIR).glob("[0-9][0-9]_*.ipynb"))
    head = (
        "# Results index\n\n"
        "Written by `./run_all.sh` (`hgrlib/reproduce/results_index.py`) from the notebooks' run stamps; do not edit by hand. "
        "First the executed notebooks, the main rendered results with every output cell (GitHub and JupyterLab "
        "render the `.ipynb`; `./run_all.sh` also writes an `.html` beside each, not committed), with the commit, "
        "time and parameters of each run; then every "
        "table and figure under the notebook that wrote it. The sha256 of every file is in "
        f"{_link('manifest.json', 'manifest.json')}."
    )
    if not tags:
        return _blocks(head, "Nothing yet: run `./run_all.sh`.") + "\n"
    runs, outputs = ["## Executed notebooks"], ["## Tables and figures, by notebook"]
    for tag in tags:
        own = stamps.get(tag, {})  # a tag with figures only has no results folder: no stamps
        runs += [f"### {tag}", *_notebooks_section(results / tag, own, sources, here)]
        outputs += _outputs_section(tag, results / tag, figures / tag, own, sources, here)
    return _blocks(head, *runs, *outputs) + "\n"


def _notebooks_section(folder: Path, stamps: dict[str, dict], sources: list[str], here: Path) -> list[str]:
    """Blocks listing a results folder's executed notebooks: what all share once, then a row per notebook."""
    executed = sorted(f.stem for f in folder.glob("[0-9][0-9]_*.ipynb")) if folder.is_dir() else []
    if not executed:
        return ["No executed notebook here."]
    known = [stamps[n] for n in executed if n in stamps]
    commits = {st.get("commit") for st in known}
    one_commit = len(known) == len(executed) and len(commits) == 1 and None not in commits
    params = [st.get("parameters") or {} for st in known]
    common = {k: v for k, v in params[0].items() if all(k in p and p[k] == v for p in params)} if len(params) > 1 else {}
    said = []
    if one_commit:
        said.append(("It" if len(executed) == 1 else f"All {len(executed)}") + f" ran at commit `{next(iter(commits))[:12]}`.")
    machines = {machine_text(st["machine"]) if st.get("machine") else None for st in known}
    if len(known) == len(executed) and len(machines) == 1 and None not in machines:
        said.append(("It" if len(executed) == 1 else f"All {len(executed)}") + f" ran on {next(iter(machines))}.")
    elif machines - {None}:
        said.append("They ran on " + "; ".join(sorted(m for m in machines if m)) + ".")
    if common:
        said.append(f"Parameters of all {len(known)}" + (" with a stamp" if len(known) < len(executed) else "") + f": {_params(common)}.")
    missing = [s for s in sources if s not in executed]
    if missing:
        said.append("Not executed here: " + ", ".join(f"`{s}`" for s in missing) + ".")
    own = {n: {k: v for k, v in (stamps.get(n, {}).get("parameters") or {}).items() if k not in common} for n in executed}
    with_params = any(own.values()) or len(known) < len(executed)
    header = ["notebook", "finished (UTC)", "run time"] + ["commit"] * (not one_commit)
    header += ["its other parameters" if common else "parameters"] * with_params
    rows = []
    for n in executed:
        st = stamps.get(n, {})
        row = [_link(f"{n}.ipynb", rel_path(folder / f"{n}.ipynb", here)), _when(st.get("finished")), _took(st.get("seconds"))]
        if not one_commit:
            row.append(f"`{st['commit'][:12]}`" if st.get("commit") else "— (no stamp)")
        if with_params:
            row.append(_params(own[n]) if n in stamps else "— (no stamp)")
        rows.append(row)
    return [" ".join(said), pipe_table(header, rows)] if said else [pipe_table(header, rows)]


def _outputs_section(tag: str, res: Path, fig: Path, stamps: dict[str, dict], sources: list[str], here: Path) -> list[str]:
    """Blocks listing a results folder's tables, figures and data files, one table per notebook."""
    files = [
        f
        for base in (res, fig)
        if base.is_dir()
        for f in sorted(base.iterdir())
        if f.is_file() and not f.name.startswith(".") and f.suffix in (".csv", ".md", ".json", ".png")
    ]
    executed = {f.stem for f in res.glob("[0-9][0-9]_*.ipynb")} if res.is_dir() else set()
    groups: dict[str, dict[str, list[Path]]] = {}
    for f in files:
        nb = f.name.split("_")[0]
        key = "claims" if f.stem == "claims" else nb if nb.isdigit() and len(nb) == 2 else "other"
        groups.setdefault(key, {}).setdefault(f.stem, []).append(f)
    order = {".csv": 0, ".md": 1, ".json": 2, ".png": 3}
    blocks = []
    for key in sorted(groups, key=lambda k: (k == "claims", k == "other", k)):
        stems = groups[key]
        name = next((s for s in sorted(executed | set(stamps)) + sources if s.startswith(key + "_")), None) if key.isdigit() else None
        if key == "claims":
            blocks += [f"### claims ({tag})", "Made by `hgrlib/experiment/claims.py` from the notebooks' run tables, after the notebooks."]
        elif name:
            nb = res / f"{name}.ipynb"
            blocks += [
                f"### {name} ({tag})",
                "Written by " + (_link(f"{name}.ipynb", rel_path(nb, here)) if nb.is_file() else f"`{name}.ipynb`") + ".",
            ]
        else:
            blocks += [f"### {key if key != 'other' else 'other files'} ({tag})"]
        rows = []
        kinds = {"table": 0, "figure": 1, "data": 2}
        for stem, fs in stems.items():
            fs = sorted(fs, key=lambda f: order.get(f.suffix, 9))
            md = next((f for f in fs if f.suffix == ".md"), None)
            png = next((f for f in fs if f.suffix == ".png"), None)
            kind = "table" if md or any(f.suffix == ".csv" for f in fs) else "figure" if png else "data"
            runs = stem.endswith("_runs")
            if kind == "table":
                what = (table_title(md.read_text())[0] if md else "") or ("every training run, one row each" if runs else "—")
            elif png:
                what = FIGURE_CAPTIONS.get(png.name, "—")
            else:
                what = next((DATA_DESCRIPTIONS[f.name] for f in fs if f.name in DATA_DESCRIPTIONS), "—")
            rows.append((kinds[kind], runs, stem, [stem, " · ".join(_link(f.suffix[1:], rel_path(f, here)) for f in fs), what]))
        # tables first, the headline tables before their run tables; then figures, then data
        blocks.append(pipe_table(["output", "files", "what it shows"], [r for *_, r in sorted(rows, key=lambda r: r[:3])]))
    return blocks


# ---------------------------------------------------------------------------------------------- README.md


def _fill(text: str, start: str, end: str, body: str) -> str | None:
    """`text` with what lies between the markers `start` and `end` replaced by `body`, a blank line on either
    side (None: no such markers)."""
    if start not in text or end not in text[text.index(start) :]:
        return None
    i, j = text.index(start) + len(start), text.index(end, text.index(start))
    return text[:i] + "\n\n" + body.strip("\n") + "\n\n" + text[j:]


def readme_results(
    repo: Path, tag: str = "synthetic-default", results_dir: str = "results", figures_dir: str = "figures", stamps: dict | None = None
) -> str:
    """The README's results section: each table under a bold heading and its file's title (what the numbers
    are, in which units), then each figure with a caption; blank lines around every block. `stamps`: the
    tag's run stamps (read here if not given)."""
    repo = Path(repo)
    res, fig = repo / results_dir / tag, repo / figures_dir / tag
    stamps = _stamps(res) if stamps is None else stamps
    commit = _latest(stamps).get("commit") or git_commit(repo)  # the code that last ran a notebook, not today's HEAD
    where = {machine_text(st["machine"]) for st in stamps.values() if st.get("machine")}
    on = f", on {'; '.join(sorted(where))}" if where else ""
    parts = [f"*Regenerated by `./run_all.sh` ({tag}), commit `{commit[:12]}`{on}. Do not edit by hand.*"]
    for name, heading in README_TABLES:
        f = res / name
        if f.exists():
            title, body = table_title(f.read_text())
            caption = f"**{heading}.** " + (f"{title.rstrip('.')}. " if title else "") + _link(name, rel_path(f, repo))
            parts += [caption, body]
    for n, name in enumerate((x for x in README_FIGURES if (fig / x).exists()), 1):
        caption = FIGURE_CAPTIONS.get(name, name)
        src = rel_path(fig / name, repo)
        alt = caption.replace("[", "(").replace("]", ")")  # alt text: brackets would end it
        parts += [f"![{alt}]({src})", f"*Figure {n} (notebook {name[:2]}, {_link(name, src)}): {caption}*"]
    return _blocks(*parts)


def update_readme(
    repo: Path, tag: str = "synthetic-default", results_dir: str = "results", figures_dir: str = "figures", stamps: dict | None = None
) -> bool:
    """Rewrite the README's generated sections from the regenerated outputs: the results (tables and figures,
    between `<!-- results:start -->` and `<!-- results:end -->`) and the claims (claims.md's table, between
    `<!-- claims:start -->` and `<!-- claims:end -->`). False if it has neither. `stamps`: as `readme_results`'."""
    repo = Path(repo)
    readme = repo / "README.md"
    text = readme.read_text() if readme.exists() else ""
    new, filled = text, False
    if "<!-- results:start -->" in text:
        done = _fill(new, "<!-- results:start -->", "<!-- results:end -->", readme_results(repo, tag, results_dir, figures_dir, stamps))
        new, filled = done or new, filled or done is not None
    if "<!-- claims:start -->" in text:
        claims_csv, claims_md = (repo / results_dir / tag / f"claims.{ext}" for ext in ("csv", "md"))
        body = (
            (  # claims.md below its title: formatted once from the unrounded effects, as the notebooks show them
                f"*Generated from {_link('claims.csv', rel_path(claims_csv, repo))} ({tag}). Do not edit by hand.*\n\n"
                + claims_md.read_text().split("\n\n", 1)[1]
            )
            if claims_md.is_file()
            else "*No claims.csv yet: run `./run_all.sh`.*"
        )
        done = _fill(new, "<!-- claims:start -->", "<!-- claims:end -->", body)
        new, filled = done or new, filled or done is not None
    if new != text:
        write_text(readme, new)
    return filled
