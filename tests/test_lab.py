"""Opening a committed notebook in JupyterLab 4 leaves it as it is: not marked modified, and an autosave
writes the same bytes, so git stays clean (scripts/build_notebooks.py writes them that way).

On open, Lab (NotebookPanel._onKernelChanged, @jupyterlab/notebook panel.ts) sets metadata.kernelspec to
{name, display_name, language} of the running kernel's spec and metadata.language_info to the kernel's
kernel_info reply; @jupyter/ydoc's YNotebook.setMetadata marks the notebook dirty only when the new value
differs (JSONExt.deepEqual). Cells keep their ids (nbformat 4.5); saving goes through jupyter_server's
contents manager.
"""

from __future__ import annotations

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
            f"{nb}: Lab would rewrite the kernelspec to that of {spec.resource_dir}; "
            "register the kernel with scripts/ensure_env.sh")


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
            warnings.warn(f"kernel runs Python {info['version']}, {nb} names {have['version']}: "
                          "Lab rewrites that one line on open (scripts/build_notebooks.py PYTHON_VERSION)")
            info = info | {"version": have["version"]}
        assert have == info, f"{nb}: Lab would rewrite language_info to {info}"
