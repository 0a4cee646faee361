"""What readers see: one-line progress in batch runs, tables formatted for reading, findings from the
tables themselves, executed notebooks checked for noise."""

from __future__ import annotations

import nbformat
import numpy as np
import pandas as pd

from hgrlib.analysis.stability import probe_findings
from hgrlib.base import progress
from hgrlib.experiment.claims import findings
from hgrlib.report.tables import markdown_table, readable, write_table
from hgrlib.reproduce.runner import notebook_problems, notebook_title


def test_batch_progress_prints_one_line_on_stdout(monkeypatch, capsys):
    monkeypatch.setenv("HGRLIB_BATCH", "1")
    with progress.bar(total=50, desc="runs", unit="run", mininterval=0) as b:
        for _ in range(50):
            b.update()
    for _ in progress.bar(range(5), desc="load", leave=False):
        pass
    out, err = capsys.readouterr()
    assert err == "" and out.splitlines() == [out.strip()] and out.startswith("runs: 50/50 runs in") and "runs/s" in out


def test_interactive_progress_is_tqdm_auto(monkeypatch):
    monkeypatch.delenv("HGRLIB_BATCH", raising=False)
    from tqdm.auto import tqdm

    b = progress.bar(total=1, disable=True)
    assert type(b) is tqdm and not isinstance(b, progress.OneLine)


def test_readable_tables():
    df = pd.DataFrame(
        {
            "condition": ["a", "b"],
            "runs": [12.0, 12.0],
            "acc": ["63.3 ± 2.3", "67.8 ± 2.2"],
            "acc_mean": [0.633, 0.678],
            "acc_std": [0.023, 0.022],
            "uar_mean": [0.6325, np.nan],
            "lam": [0.01, 7.9118],
            "nonfinite_steps": [0, 0],
            "chosen": [True, False],
        }
    )
    view, note = readable(df)
    assert list(view.columns) == ["condition", "runs", "acc", "uar_mean (%)", "lam", "chosen"]
    assert list(view["runs"]) == ["12", "12"] and list(view["uar_mean (%)"]) == ["63.2", "–"]
    assert list(view["lam"]) == ["0.01", "7.91"] and list(view["chosen"]) == ["yes", "no"]
    assert "\u00a0±\u00a0" in view["acc"].iloc[0]  # never broken across lines
    assert "nonfinite_steps" in note


def test_written_markdown_keeps_the_csv_whole(tmp_path):
    df = pd.DataFrame({"a|b": ["x|y"], "acc_mean": [0.5]})
    csv, md = write_table(df, tmp_path / "t", title="T")
    assert pd.read_csv(csv).equals(df)
    text = md.read_text()
    assert text.startswith("# T\n\n|") and "x\\|y" in text and "50.0" in text
    assert markdown_table(pd.DataFrame({"c": [1]})).splitlines()[1] == "|---|"


def test_findings_come_from_the_tables(tmp_path):
    rng = np.random.default_rng(0)
    rows = [
        {"condition": c, "fold": f, "seed": s, "acc": 0.5 + (0.1 if c == "fusion (CE + Soft-HGR)" else 0) + rng.normal(0, 0.01)}
        for c in ("fusion (CE)", "fusion (CE + Soft-HGR)", "audio only (CE)", "visual only (CE)")
        for f in range(4)
        for s in range(3)
    ]
    df = pd.DataFrame(rows).assign(corpus="synthetic seed 0")
    df.to_csv(tmp_path / "02_supervised_runs.csv", index=False)
    acc = df.set_index(["condition", "fold", "seed"])["acc"]
    effect = 100 * (acc["fusion (CE + Soft-HGR)"] - acc["fusion (CE)"]).mean()
    text = findings(tmp_path, "02_")
    main = next(line for line in text.splitlines() if line.startswith("- **main claim**"))
    assert (
        f"= {effect:+.1f} points" in main
        and "over 4 corpus × fold units (12 runs a side)" in main
        and "the interval alone: supported" in main
    )
    assert "**supported**" not in text  # a notebook cannot give the family-wise verdict: claims.md does
    assert "- **the audio–visual pair helps**: not run (no rows in" in text  # the mechanism's table is missing
    assert findings(tmp_path, "04_") == ""


def test_probe_findings_name_the_nuisances_kept():
    rows = []
    for cond in ("CE", "CE + Soft-HGR"):
        for feat, skin in (("f", 0.0), ("g", 0.7)):
            rows += [
                {"factor": "skin", "kind": "video only", "metric": "R²", "feature": feat, "condition": cond, "score": skin},
                {"factor": "gain_db", "kind": "audio only", "metric": "R²", "feature": feat, "condition": cond, "score": 0.05},
                {"factor": "emotion", "kind": "shared", "metric": "acc", "feature": feat, "condition": cond, "score": 0.6},
            ]
    text = probe_findings(pd.DataFrame(rows))
    assert "skin in g (0.70 with CE, 0.70 with CE + Soft-HGR)" in text and "gain_db" not in text


def test_notebook_problems_flag_stderr_errors_and_untitled_html(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# 09 · A title\ntext"), nbformat.v4.new_code_cell("1")]
    assert notebook_title(nb, "x") == "09 · A title"
    f = tmp_path / "09_x.ipynb"
    nbformat.write(nb, f)
    f.with_suffix(".html").write_text("<html><head><title>09 · A title</title></head></html>")
    assert notebook_problems(f) == []
    nb.cells[1].outputs = [
        nbformat.v4.new_output("stream", name="stderr", text="\rruns: 10%"),
        nbformat.v4.new_output("error", ename="ValueError", evalue="x", traceback=[]),
    ]
    nbformat.write(nb, f)
    f.with_suffix(".html").write_text("<html><head><title>Notebook</title></head></html>")
    problems = notebook_problems(f)
    assert len(problems) == 3 and any("stderr" in p for p in problems) and any("title" in p for p in problems)


def test_notebooks_run_over_ipc_not_tcp():
    """A kernel as papermill starts one for the runner answers over IPC files, no TCP port."""
    import asyncio

    from hgrlib.reproduce.runner import _ipc_kernel_manager

    out: list = []

    async def run_a_cell() -> dict:
        km = _ipc_kernel_manager()(kernel_name="python3")
        await km.start_kernel()
        kc = km.client()
        try:
            assert km.get_connection_info()["transport"] == "ipc"
            kc.start_channels()
            await kc.wait_for_ready(timeout=60)
            return await kc.execute_interactive("print(6 * 7)", timeout=60, output_hook=out.append)
        finally:
            kc.stop_channels()
            await km.shutdown_kernel(now=True)

    assert asyncio.run(run_a_cell())["content"]["status"] == "ok"
    assert any(m["msg_type"] == "stream" and m["content"]["text"] == "42\n" for m in out)


def test_layout_page_names_every_module():
    """docs/layout.md names every module under hgrlib/ by its whole path (`hgrlib/data/cache.py`), not a
    substring of something else: `io`, `cli` or `train` alone do not count."""
    import re
    from pathlib import Path

    text = Path("docs/layout.md").read_text()
    named = set(re.findall(r"(?<![\w./-])(hgrlib/[\w/]+\.py)(?![\w])", text))
    modules = sorted(p.as_posix() for p in Path("hgrlib").rglob("*.py") if p.stem != "__init__")
    missing = [m for m in modules if m not in named]
    assert not missing, f"docs/layout.md does not name {missing}"
    stale = sorted(m for m in named if not Path(m).is_file())
    assert not stale, f"docs/layout.md names modules that do not exist: {stale}"


def test_readme_code_map_names_real_code_early():
    """The README's paper → code map starts within its first 60 lines, the README stays a front door (at most
    150 lines), and every `hgrlib/x.py`: `name` in the map is a module with that attribute."""
    import importlib
    import re
    from pathlib import Path

    lines = Path("README.md").read_text().splitlines()
    assert len(lines) <= 150, f"README.md has {len(lines)} lines"
    start = lines.index("## Paper → code")
    assert start < 60
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("## "))
    refs = 0
    for line in lines[start:end]:
        for path, names in re.findall(r"`(hgrlib/[\w/]+\.py)`: ((?:`\w+`(?:, | \(and |\)|; |$)?)+)", line):
            module = importlib.import_module(path[: -len(".py")].replace("/", "."))
            for name in re.findall(r"`(\w+)`", names):
                assert hasattr(module, name), f"{path} has no {name}"
                refs += 1
    assert refs >= 10


def test_a_saved_table_shows_under_the_title_of_its_markdown(tmp_path):
    from hgrlib.report.tables import save_table
    from hgrlib.reproduce.results_index import table_title

    df = pd.DataFrame({"condition": ["a", "b"], "acc_mean": [0.5, 0.25], "nonfinite_steps": [0, 0]})
    shown = save_table(df, tmp_path / "t", title="Test accuracy, %")
    title, body = table_title((tmp_path / "t.md").read_text())
    assert title == "Test accuracy, %" and shown.caption.startswith(title) and "nonfinite_steps" in shown.caption
    assert f"<caption>{shown.caption}</caption>" in shown._repr_html_() and repr(shown).startswith(title)
    assert markdown_table(shown.view) in body + "\n"
    assert pd.read_csv(tmp_path / "t.csv").equals(df)
