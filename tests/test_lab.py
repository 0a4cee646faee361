"""Opening a committed notebook in JupyterLab 4 leaves it as it is: not marked modified, and a save writes the
same bytes to it and to its paired text source, so git stays clean (scripts/sync_notebooks.py writes them that
way).

On open, Lab (NotebookPanel._onKernelChanged, @jupyterlab/notebook panel.ts) sets metadata.kernelspec to
{name, display_name, language} of the running kernel's spec and metadata.language_info to the kernel's
kernel_info reply; @jupyter/ydoc's YNotebook.setMetadata marks the notebook dirty only when the new value
differs (JSONExt.deepEqual). Cells keep their ids (nbformat 4.5); saving goes through jupyter_server's
contents manager, which jupytext's server extension (jupyterlab_jupytext, installed with jupytext) replaces
with one that writes the pair notebooks/NN.ipynb + notebooks/src/NN.py (notebooks/jupytext.toml), after
adding the config's metadata filters to the notebook's metadata.jupytext on open.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import warnings
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted(Path("notebooks").glob("[0-9][0-9]_*.ipynb"))


def _metadata(nb: Path) -> dict:
    return json.loads(nb.read_text())["metadata"]


def test_notebooks_are_nbformat_4_5_with_valid_unique_cell_ids():
    assert NOTEBOOKS
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
        assert (nb.nbformat, nb.nbformat_minor) == (4, 5), path
        nbformat.validate(nb)
        ids = [c["id"] for c in nb.cells]
        assert all(re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", i) for i in ids) and len(set(ids)) == len(ids), path


def test_saving_through_jupyter_servers_contents_manager_rewrites_no_byte(tmp_path):
    """What Lab's save does on the server: GET the notebook model, PUT its JSON back."""
    from jupyter_server.services.contents.filemanager import FileContentsManager

    for nb in NOTEBOOKS:
        shutil.copy(nb, tmp_path / nb.name)
    cm = FileContentsManager(root_dir=str(tmp_path))
    for nb in NOTEBOOKS:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # e.g. nbformat's MissingIDFieldWarning: it would add random ids
            model = cm.get(nb.name)
            content = json.loads(json.dumps(model["content"]))  # over the wire, as Lab sends it back
            cm.save({"type": "notebook", "format": "json", "content": content}, nb.name)
        assert (tmp_path / nb.name).read_bytes() == nb.read_bytes(), f"{nb}: saving changes it"


def test_jupytext_pairs_notebooks_in_jupyterlab():
    """jupytext's server extension is enabled: Lab saves a notebook and its text source together."""
    from jupyter_core.paths import jupyter_config_path
    from jupyter_server.extension.config import ExtensionConfigManager

    enabled = ExtensionConfigManager(read_config_path=jupyter_config_path()).get_jpserver_extensions()
    assert enabled.get("jupyterlab_jupytext"), "jupytext's server extension is not enabled: pip install jupytext"


def _save_through_jupytexts_contents_manager(root: Path, edit=None):
    """What Lab's open and save do on a server with jupytext: GET each notebook model through jupytext's
    contents manager (derived from jupyter_server's default, AsyncLargeFileManager, as jupyterlab_jupytext
    does), PUT its JSON back, after `edit(content)` if given."""
    from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
    from jupytext.async_contentsmanager import build_async_jupytext_contents_manager_class

    cm = build_async_jupytext_contents_manager_class(AsyncLargeFileManager)(root_dir=str(root))

    async def roundtrip():
        for nb in NOTEBOOKS:
            model = await cm.get(nb.as_posix())
            content = json.loads(json.dumps(model["content"]))  # over the wire, as Lab sends it back
            if edit:
                edit(content)
            await cm.save({"type": "notebook", "format": "json", "content": content}, nb.as_posix())

    asyncio.run(roundtrip())


def _copy_notebooks(root: Path):
    (root / "notebooks" / "src").mkdir(parents=True)
    for f in [Path("notebooks/jupytext.toml"), *NOTEBOOKS, *(Path("notebooks/src") / f"{nb.stem}.py" for nb in NOTEBOOKS)]:
        shutil.copy(f, root / f)


def test_saving_with_jupytext_rewrites_no_byte_of_the_notebook_or_its_text_source(tmp_path):
    _copy_notebooks(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _save_through_jupytexts_contents_manager(tmp_path)
    for nb in NOTEBOOKS:
        src = Path("notebooks/src") / f"{nb.stem}.py"
        assert (tmp_path / nb).read_bytes() == nb.read_bytes(), f"{nb}: saving changes it"
        assert (tmp_path / src).read_bytes() == src.read_bytes(), f"{src}: saving {nb} changes it"


def test_an_edit_saved_in_jupyterlab_lands_in_the_text_source(tmp_path):
    """And scripts/sync_notebooks.py then gives the edited and the new cell their ids from their text."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("sync_notebooks", "scripts/sync_notebooks.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    def edit(content):
        params = next(c for c in content["cells"] if "parameters" in c["metadata"].get("tags", []))
        params["source"] += "\nedited_in_lab = 1"
        content["cells"].append(
            {
                "cell_type": "code",
                "id": "random-id-from-lab",
                "metadata": {},
                "execution_count": None,
                "outputs": [],
                "source": "added_in_lab = 2",
            }
        )

    _copy_notebooks(tmp_path)
    _save_through_jupytexts_contents_manager(tmp_path, edit)
    for nb in NOTEBOOKS:
        src = tmp_path / "notebooks" / "src" / f"{nb.stem}.py"
        text = src.read_text(encoding="utf-8")
        assert "\nedited_in_lab = 1\n" in text and text.endswith("\n# %%\nadded_in_lab = 2\n"), src
        assert text.startswith(Path(f"notebooks/src/{nb.stem}.py").read_text(encoding="utf-8").split("# %% tags=")[0])  # no header
        mod.build(src, tmp_path / nb)
        cells = nbformat.read(tmp_path / nb, as_version=4).cells
        ids = {c.id for c in nbformat.read(nb, as_version=4).cells}
        assert [c.id in ids for c in cells].count(False) == 2, f"{nb}: only the edited and the new cell get new ids"
        assert cells[-1].id == mod.cell_id(nbformat.v4.new_code_cell("added_in_lab = 2"), set()), nb


def test_kernelspec_is_the_registered_kernels():
    """Lab writes {name, display_name, language} of the kernel spec it starts (python3): the same value."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        pytest.skip("no python3 kernel registered")
    want = {"name": "python3", "display_name": spec.display_name, "language": spec.language}
    for nb in NOTEBOOKS:
        assert _metadata(nb)["kernelspec"] == want, (
            f"{nb}: Lab would rewrite the kernelspec to that of {spec.resource_dir}; register the kernel with scripts/ensure_env.sh"
        )


@pytest.mark.slow
def test_language_info_is_the_kernels_kernel_info_reply():
    """Lab copies the kernel_info reply's language_info in whole: the same value. Under another Python than
    the one the notebooks were built for, "version" differs: a warning, not a failure."""
    from jupyter_client.kernelspec import NoSuchKernel
    from jupyter_client.manager import start_new_kernel

    try:
        km, kc = start_new_kernel(kernel_name="python3", startup_timeout=60)
    except NoSuchKernel:
        pytest.skip("no python3 kernel registered")
    try:
        info = kc.kernel_info(reply=True, timeout=30)["content"]["language_info"]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    for nb in NOTEBOOKS:
        have = _metadata(nb)["language_info"]
        if "version" in have and info.get("version") != have["version"]:
            warnings.warn(
                f"kernel runs Python {info['version']}, {nb} names {have['version']}: "
                "Lab rewrites that one line on open (scripts/sync_notebooks.py PYTHON_VERSION)"
            )
            info = info | {"version": have["version"]}
        assert have == info, f"{nb}: Lab would rewrite language_info to {info}"


def test_opening_an_executed_notebook_in_lab_leaves_git_clean_after_the_bookkeeping(tmp_path, monkeypatch):
    """Lab's open (GET the model, then a checkpoint when it has none) writes .ipynb_checkpoints/ beside the
    executed notebook; run_all.sh's bookkeeping afterwards (claims, manifest, index, README) lists nothing
    hidden, so git status stays clean."""
    import subprocess

    from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager

    from hgrlib.reproduce import runner

    repo, res = tmp_path, tmp_path / "results" / "synthetic-default"
    (repo / "hgrlib").mkdir()  # what hgrlib.report.tables.project_dir recognises as the project
    shutil.copy("run_all.sh", repo)
    shutil.copy(".gitignore", repo)
    (repo / "README.md").write_text("# R\n\n<!-- results:start -->\n<!-- results:end -->\n\n<!-- claims:start -->\n<!-- claims:end -->\n")
    (repo / "notebooks").mkdir()
    res.mkdir(parents=True)
    for nb in NOTEBOOKS:
        shutil.copy(nb, repo / "notebooks")
    shutil.copy("notebooks/02_supervised.ipynb", res)
    (res / "02_supervised_table.md").write_text("# T\n\n| a |\n|---|\n| 1 |\n")
    stamp = {"stamp": "s", "parameters": {"profile": "default"}, "commit": "c" * 40, "finished": "2026-01-01T00:00:00+00:00", "outputs": {}}
    (res / ".02_supervised.stamp.json").write_text(json.dumps(stamp))
    monkeypatch.chdir(repo)
    monkeypatch.setenv("HGRLIB_JOBS", "1")

    def bookkeeping():  # ./run_all.sh with nothing to run: claims, manifest, results/README.md, README.md
        assert runner.run_notebooks("default", only=["none"]) == []

    def git(*args):
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout

    bookkeeping()
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "results")
    cm = AsyncLargeFileManager(root_dir=str(repo))
    for path in ("results/synthetic-default/02_supervised.ipynb", "results/README.md"):

        async def open_in_lab(path=path):
            await cm.get(path)
            if not await cm.list_checkpoints(path):
                await cm.create_checkpoint(path)

        asyncio.run(open_in_lab())
    assert (res / ".ipynb_checkpoints" / "02_supervised-checkpoint.ipynb").is_file()
    assert (repo / "results" / ".ipynb_checkpoints" / "README-checkpoint.md").is_file()
    bookkeeping()
    assert git("status", "--porcelain", "--untracked-files=all") == ""
    manifest = json.loads((repo / "results" / "manifest.json").read_text())
    assert manifest and not any("/." in e["file"] for e in manifest)
