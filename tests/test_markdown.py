"""Generated Markdown renders the same in GitHub, JupyterLab and strict CommonMark/GFM readers (pandoc,
markdown-it): every pipe table is parsed as a table (a blank line before and after it), README figures have
captions, local links resolve; and the results index lists the executed notebooks first."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from hgrlib.reproduce.results_index import README_FIGURES, results_index, table_title, update_readme, write_manifest

markdown_it = pytest.importorskip("markdown_it")  # the `test` extra

REPO = Path(__file__).resolve().parents[1]
MD = markdown_it.MarkdownIt("commonmark").enable("table")  # CommonMark + GFM tables, no run-on leniency added


def _fenced(lines: list[str]) -> set[int]:
    """Line numbers inside fenced code blocks (``` or ~~~)."""
    inside, fence, out = False, "", set()
    for i, line in enumerate(lines):
        s = line.lstrip()
        if not inside and s.startswith(("```", "~~~")):
            inside, fence = True, s[:3]
            out.add(i)
        elif inside:
            out.add(i)
            if s.startswith(fence):
                inside = False
    return out


def pipe_blocks(text: str) -> list[tuple[int, int]]:
    """(first line, line after the last) of every run of consecutive lines starting with `|`, outside code."""
    lines = text.splitlines()
    code = _fenced(lines)
    blocks, start = [], None
    for i, line in enumerate(lines + [""]):
        piped = i < len(lines) and i not in code and line.startswith("|")
        if piped and start is None:
            start = i
        elif not piped and start is not None:
            blocks.append((start, i))
            start = None
    return blocks


def _cells(row: str) -> int:
    r = row.strip()
    r = r.removeprefix("|")
    r = r[:-1] if r.endswith("|") and not r.endswith("\\|") else r
    return len(re.split(r"(?<!\\)\|", r))


def _is_local(target: str) -> bool:
    return bool(target) and not urlparse(target).scheme and not target.startswith(("#", "//", "mailto:"))


def problems(text: str, path: Path | None = None) -> list[str]:
    """What would not render as meant in a strict reader: pipe lines that are not exactly one table, a table
    without a blank line before or after, rows with another number of cells than the header, local links
    (when `path` is given) to files that do not exist."""
    where = f"{path.name}: " if path else ""
    lines, out = text.splitlines(), []
    tokens = MD.parse(text)
    tables = [tuple(t.map) for t in tokens if t.type == "table_open"]
    blocks = pipe_blocks(text)
    for a, b in blocks:
        if (a, b) not in tables:
            got = [t for t in tables if t[0] <= a < t[1] or a <= t[0] < b]
            out.append(f"{where}lines {a + 1}-{b}: pipe lines not parsed as one table (parsed: {got or 'no table'})")
        if a > 0 and lines[a - 1].strip():
            out.append(f"{where}line {a + 1}: no blank line before the table (strict readers merge it into the text above)")
        if b < len(lines) and lines[b].strip() and not lines[b].startswith("<!--"):  # a marker comment ends it everywhere
            out.append(f"{where}line {b + 1}: no blank line after the table (it would become a table row)")
        n = _cells(lines[a])
        bad = [i + 1 for i in range(a + 1, b) if _cells(lines[i]) != n]
        if bad:
            out.append(f"{where}lines {bad[:5]}: not {n} cells as in the header")
    for t in tables:
        if t not in blocks:
            out.append(f"{where}lines {t[0] + 1}-{t[1]}: a table that is not a block of pipe lines")
    if path is not None:
        for tok in tokens:
            for child in tok.children or []:
                target = child.attrs.get("href") if child.type == "link_open" else child.attrs.get("src") if child.type == "image" else None
                if target and _is_local(str(target)):
                    f = (path.parent / unquote(urlparse(str(target)).path)).resolve()
                    if not f.exists():
                        out.append(f"{where}link to {target}: no such file")
    return out


def generated_markdown() -> list[Path]:
    return [REPO / "README.md"] + sorted((REPO / "results").rglob("*.md"))


def _columns_repeat(text: str) -> list[str]:
    """Columns of a table with several rows that hold the same cell on every row."""
    out, lines = [], text.splitlines()
    for a, b in pipe_blocks(text):
        rows = [[c.strip() for c in re.split(r"(?<!\\)\|", line.strip()[1:-1])] for line in lines[a + 2 : b]]
        header = [c.strip() for c in re.split(r"(?<!\\)\|", lines[a].strip()[1:-1])]
        if len(rows) > 1:
            out += [
                f"line {a + 1}: column {h!r} is {rows[0][k]!r} on every row"
                for k, h in enumerate(header)
                if len({r[k] for r in rows if k < len(r)}) == 1
            ]
    return out


# ------------------------------------------------------------------------------------- the checker itself


def test_checker_catches_what_strict_readers_break():
    assert problems("text\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\nafter\n") == []
    assert any("blank line before" in p for p in problems("**caption**\n| a | b |\n|---|---|\n| 1 | 2 |\n"))
    assert any("blank line after" in p for p in problems("| a | b |\n|---|---|\n| 1 | 2 |\nnext line\n"))
    assert problems("| a | b |\n|---|---|\n| 1 | 2 |\n<!-- section:end -->\n") == []  # HTML blocks end tables
    assert any("not parsed" in p for p in problems("| a | b |\n| 1 | 2 |\n"))  # no delimiter row
    assert any("cells" in p for p in problems("| a | b |\n|---|---|\n| 1 | 2 | 3 |\n"))
    assert problems("| a | b |\n|---|---|\n| x \\| y | 2 |\n") == []  # an escaped pipe is part of a cell
    assert problems("```\n| not a table\n```\n") == []
    assert any("no such file" in p for p in problems("[x](missing.md)\n", REPO / "README.md"))


# ------------------------------------------------------------------------------------- the committed files


@pytest.mark.parametrize("path", generated_markdown(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_generated_markdown_parses_strictly(path):
    assert problems(path.read_text(), path) == []


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (but - and _), spaces to -."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchor_problems(text: str, path: Path) -> list[str]:
    """Links to `file.md#anchor` (or `#anchor`) whose file has no heading with that anchor."""
    out = []
    for tok in MD.parse(text):
        for child in tok.children or []:
            target = str(child.attrs.get("href") or "") if child.type == "link_open" else ""
            url = urlparse(target)
            if not url.fragment or url.scheme or not (url.path == "" or url.path.endswith(".md")):
                continue
            f = (path.parent / unquote(url.path)).resolve() if url.path else path
            if f.is_file():
                headings = [line.lstrip("#") for line in f.read_text().splitlines() if re.match(r"#{1,6} ", line)]
                if url.fragment not in {_slug(h) for h in headings}:
                    out.append(f"{path.name}: link to {target}: no such heading")
    return out


@pytest.mark.parametrize("path", [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))], ids=lambda p: p.relative_to(REPO).as_posix())
def test_readme_and_docs_links_resolve(path):
    """Every relative link of the README and of docs/*.md names a file that exists (and a heading that exists,
    for `#anchor` links to Markdown), and every table parses strictly."""
    text = path.read_text()
    assert problems(text, path) == []
    assert anchor_problems(text, path) == []


def test_anchor_checker():
    assert _slug(" How firm a verdict is") == "how-firm-a-verdict-is"
    assert _slug(" Portable dispatch: `./run_all.sh --dispatch portable`") == "portable-dispatch-run_allsh---dispatch-portable"
    assert anchor_problems("[x](docs/paper.md#how-the-claims-are-tested)\n", REPO / "README.md") == []
    assert anchor_problems("[x](docs/paper.md#no-such-heading)\n", REPO / "README.md") != []


def test_readme_tables_and_figures_have_captions():
    text = (REPO / "README.md").read_text()
    section = text[text.index("<!-- results:start -->") : text.index("<!-- results:end -->")]
    lines = section.splitlines()
    for a, _ in pipe_blocks(section):
        caption = lines[a - 2]
        assert lines[a - 1] == "" and caption.startswith("**"), caption  # bold heading, then the file's title
    tokens = MD.parse(section)
    images = [(i, t.children[0]) for i, t in enumerate(tokens) if t.type == "inline" and any(c.type == "image" for c in t.children)]
    figures = [f for f in README_FIGURES if (REPO / "figures" / "synthetic-default" / f).exists()]
    assert len(images) == len(figures)
    for i, img in images:
        assert len(tokens[i].children) == 1, "an image alone in its paragraph"
        alt = img.content
        assert len(alt.split()) >= 5 and not alt.endswith(".png"), alt  # alt text says what it shows
        nxt = tokens[i + 3]  # paragraph_close, paragraph_open, inline
        assert nxt.type == "inline" and nxt.children[0].type == "em_open" and nxt.content.startswith("*Figure"), nxt.content


def test_results_index_lists_the_executed_notebooks_first():
    text = (REPO / "results" / "README.md").read_text()
    runs, outputs = text.index("## Executed notebooks"), text.index("## Tables and figures")
    for nb in sorted((REPO / "results").glob("*/[0-9][0-9]_*.ipynb")):
        rel = nb.relative_to(REPO / "results").as_posix()
        assert runs < text.index(f"]({rel})") < outputs, rel
        assert f"]({rel[: -len('.ipynb')]}.html)" not in text  # HTML is built locally, not committed: no link to it
    assert _columns_repeat(text) == []
    assert not re.search(r"\b[0-9a-f]{16,}\b", text)  # hashes stay in manifest.json; commits are 12 characters


@pytest.mark.skipif(shutil.which("pandoc") is None, reason="pandoc not installed")
@pytest.mark.parametrize("name", ["README.md", "results/README.md"])
def test_pandoc_reads_every_table(name):
    text = (REPO / name).read_text()
    html = subprocess.run(["pandoc", "-f", "gfm", "-t", "html"], input=text, capture_output=True, text=True, check=True).stdout
    assert html.count("<table") == len(pipe_blocks(text))


# ------------------------------------------------------------------------------------- on a small tree


COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _tree(root: Path, commits: tuple[str, str] = (COMMIT, COMMIT)) -> Path:
    for nb in ("01_data_prep", "02_supervised", "03_semi_supervised"):
        (root / "notebooks").mkdir(exist_ok=True)
        (root / "notebooks" / f"{nb}.ipynb").write_text("{}")
    res, fig = root / "results" / "t", root / "figures" / "t"
    res.mkdir(parents=True), fig.mkdir(parents=True)
    common = {"profile": "default", "dataset": "synthetic", "root": None}
    for (nb, own, sec), commit in zip((("01_data_prep", {"workers": 2}, 154.5), ("02_supervised", {"runs_dir": "runs"}, 836.1)), commits):
        (res / f"{nb}.ipynb").write_text('{"cells": []}')
        (res / f"{nb}.html").write_text("<html></html>")
        (res / f".{nb}.stamp.json").write_text(
            json.dumps(
                {
                    "commit": commit,
                    "finished": f"2026-01-0{nb[1]}T10:00:00+00:00",
                    "parameters": common | own,
                    "seconds": sec,
                    "stamp": "x",
                    "outputs": {},
                }
            )
        )
    (res / "01_class_counts.csv").write_text("emotion,clips\nanger,4\n")
    (res / "01_class_counts.md").write_text("# Clips per emotion (t)\n\n| emotion | clips |\n|---|---|\n| anger | 4 |\n")
    (res / "02_supervised_table.csv").write_text("condition,acc\nfusion,60.0 ± 1.0\n")
    (res / "02_supervised_table.md").write_text(
        "# Test accuracy, % mean ± std over every fold × seed (t)\n\n| condition | acc |\n|---|---|\n| fusion \\| CE | 60.0 ± 1.0 |\n"
        "\nZero in every row, not shown: nonfinite_steps.\n"
    )
    (res / "02_supervised_runs.md").write_text("| fold | acc |\n|---|---|\n| 0 | 0.6 |\n| 1 | 0.6 |\n")
    for f in ("01_examples.png", "02_accuracy.png", "02_confusion.png"):
        (fig / f).write_bytes(b"\x89PNG fake " + f.encode())
    (root / "README.md").write_text(
        "# T\n\nIntro.\n<!-- results:start -->\nold\n<!-- results:end -->\nAfter.\n\n"
        "<!-- claims:start -->\nold\n<!-- claims:end -->\n\n## Next\n"
    )
    return root


def test_write_manifest_on_a_small_tree(tmp_path):
    repo = _tree(tmp_path)
    manifest = json.loads(write_manifest(repo).read_text())
    text = (repo / "results" / "README.md").read_text()
    assert problems(text, repo / "results" / "README.md") == [] and _columns_repeat(text) == []
    runs, outputs = text.index("## Executed notebooks"), text.index("## Tables and figures")
    for link in ("](t/01_data_prep.ipynb)", "](t/02_supervised.ipynb)"):
        assert runs < text.index(link) < outputs, link
    assert ".html)" not in text
    section = text[runs:outputs]
    assert section.count(f"`{COMMIT[:12]}`") == 1 and COMMIT not in text  # once per folder: all ran at one commit
    assert section.count("`profile=default`") == 1 and section.count("`workers=2`") == 1 and "`runs_dir=runs`" in section
    assert "Not executed here: `03_semi_supervised`" in section
    assert "2026-01-01 10:00:00" in section and "2.6 min" in section and "13.9 min" in section
    assert "sha256 |" not in text and not re.search(r"\b[0-9a-f]{16,}\b", text)
    after = text[outputs:]
    assert after.index("### 01_data_prep (t)") < after.index("### 02_supervised (t)")
    assert "| 01_class_counts | [csv](t/01_class_counts.csv) · [md](t/01_class_counts.md) | Clips per emotion (t) |" in after
    assert "[png](../figures/t/02_accuracy.png)" in after and "every training run, one row each" in after
    # manifest.json: the same form as before, the executed notebooks added (not their local HTML)
    files = {e["file"]: e for e in manifest}
    assert all(set(e) == {"file", "notebook", "parameters", "commit", "machine", "time", "sha256"} for e in manifest)
    nb = files["results/t/02_supervised.ipynb"]
    assert nb["notebook"] == "02_supervised.ipynb" and nb["parameters"]["runs_dir"] == "runs" and nb["commit"] == COMMIT
    assert nb["time"] == "2026-01-02T10:00:00+00:00" and "results/t/01_data_prep.ipynb" in files
    assert not any(f.endswith(".html") for f in files)
    for f, e in files.items():
        assert e["sha256"] == hashlib.sha256((repo / f).read_bytes()).hexdigest()
    for f in (repo / "results").rglob("*"):  # as on a fresh clone: file times are checkout times
        os.utime(f, (1, 1))
    write_manifest(repo)
    assert (repo / "results" / "README.md").read_text() == text


def test_results_index_shows_a_commit_column_when_commits_differ(tmp_path):
    repo = _tree(tmp_path, commits=(COMMIT, "fedcba9876543210" * 2 + "fedcba98"))
    text = results_index(repo)
    assert "| commit |" in text and "ran at commit" not in text
    assert f"`{COMMIT[:12]}`" in text and "`fedcba987654`" in text
    assert problems(text) == [] and _columns_repeat(text) == []


def test_update_readme_on_a_small_tree(tmp_path):
    repo = _tree(tmp_path)
    assert update_readme(repo, "t") is True
    text = (repo / "README.md").read_text()
    assert problems(text, repo / "README.md") == []
    assert text.startswith("# T\n\nIntro.\n<!-- results:start -->\n\n") and text.endswith("<!-- claims:end -->\n\n## Next\n")
    lines = text.splitlines()
    i = lines.index(next(line for line in lines if line.startswith("**Main table (notebook 02).**")))
    assert "Test accuracy, % mean ± std over every fold × seed (t)." in lines[i]  # the file's title: the units
    assert "](results/t/02_supervised_table.md)" in lines[i]
    assert lines[i + 1] == "" and lines[i + 2] == "| condition | acc |" and "| fusion \\| CE |" in text
    assert "Zero in every row, not shown: nonfinite_steps." in text  # the table file's note stays with it
    assert "Clips per emotion" not in text  # only the README_TABLES
    shown = [f for f in README_FIGURES if (repo / "figures" / "t" / f).exists()]
    assert shown == ["02_accuracy.png"]  # the README shows one figure; results/README.md lists them all
    for n, f in enumerate(shown, 1):
        img = next(k for k, line in enumerate(lines) if line.startswith("![") and line.endswith(f"(figures/t/{f})"))
        assert lines[img + 1] == "" and lines[img + 2].startswith(f"*Figure {n} (notebook 02, [{f}](figures/t/{f})): ")
        assert lines[img + 3] == ""
        assert not lines[img].startswith(f"![{f}]")  # alt text says what it shows
    assert "*No claims.csv yet: run `./run_all.sh`.*" in text
    update_readme(repo, "t")
    assert (repo / "README.md").read_text() == text  # stable: a second run changes nothing


def test_stamps_are_read_once_for_the_manifest_and_both_readmes(tmp_path, monkeypatch):
    """As run_all.sh writes them: one read of the stamps for manifest.json, results/README.md and README.md's
    section, the same bytes as each reading its own."""
    import hgrlib.reproduce.results_index as ri

    repo = _tree(tmp_path)
    write_manifest(repo), update_readme(repo, "t")
    own = [(repo / f).read_bytes() for f in ("results/manifest.json", "results/README.md", "README.md")]
    read, stamps = [], ri._stamps
    monkeypatch.setattr(ri, "_stamps", lambda folder: read.append(folder.name) or stamps(folder))
    given = ri.read_stamps(repo / "results")
    write_manifest(repo, stamps=given), update_readme(repo, "t", stamps=given["t"])
    assert read == ["t"]
    assert [(repo / f).read_bytes() for f in ("results/manifest.json", "results/README.md", "README.md")] == own
    read.clear()
    write_manifest(repo)  # reading them itself: once, not again for results/README.md
    assert read == ["t"]


def test_table_title():
    assert table_title("# Title, %\n\n| a |\n|---|\n| 1 |\n") == ("Title, %", "| a |\n|---|\n| 1 |")
    assert table_title("| a |\n|---|\n") == ("", "| a |\n|---|")


def test_results_index_describes_every_output_headline_tables_first(tmp_path):
    from hgrlib.reproduce.results_index import DATA_DESCRIPTIONS, FIGURE_CAPTIONS

    repo = _tree(tmp_path)
    res = repo / "results" / "t"
    (res / "01_prep_report.json").write_text("{}")
    (res / "02_replication_runs.csv").write_text("fold,acc\n0,0.6\n")
    (res / "02_replication_table.md").write_text("# The main comparison on a second corpus, %\n\n| a |\n|---|\n| 1 |\n")
    text = results_index(repo)
    section = text[text.index("### 02_supervised (t)") :]
    stems = ("02_replication_table", "02_supervised_table", "02_replication_runs", "02_supervised_runs")
    order = [section.index(f"| {s} |") for s in stems]
    assert order == sorted(order), "headline tables before the run tables"
    assert "| — |" not in text and DATA_DESCRIPTIONS["01_prep_report.json"] in text
    # every figure and data file the committed results hold has its description
    for f in (REPO / "figures").glob("*/*.png"):
        assert f.name in FIGURE_CAPTIONS, f
    for f in (REPO / "results").glob("*/[0-9][0-9]_*.json"):
        assert f.name in DATA_DESCRIPTIONS, f
