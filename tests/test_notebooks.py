"""The analyst notebooks run top to bottom against a store the sandbox produced.

A three-night demo store is built once; each notebook is executed with nbclient on a kernel
that runs this interpreter (a kernelspec written to a temporary directory points at
``sys.executable``), with ``MPLBACKEND=Agg``. Cells tagged ``plot``/``trend`` must show an
image, cells tagged ``table`` an HTML table. Committed notebooks carry no outputs.
"""

from __future__ import annotations

import os
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

import nbformat
import pytest
from ipykernel.kernelspec import install as install_kernelspec
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

from auditor.demo import run_demo

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOK_FILES = sorted(NOTEBOOKS.glob("*.ipynb"))
AS_OF = datetime(2025, 3, 10, 2, 0, tzinfo=UTC)
KERNEL = "auditor-test"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    outcome = run_demo(out, as_of=AS_OF, companies=150, nights=3, progress="off")
    return outcome.store


@pytest.fixture(scope="module")
def one_night_store(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding only the last night (a copy of its directory: a store is just files)."""
    root = tmp_path_factory.mktemp("one-night") / "store"
    last = max(store.glob("snapshot_date=*/*"))
    shutil.copytree(last, root / last.parent.name / last.name)
    return root


@pytest.fixture(scope="module")
def kernel_dirs(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """A kernelspec pointing at this interpreter, in a private directory."""
    prefix = tmp_path_factory.mktemp("kernels")
    install_kernelspec(kernel_name=KERNEL, prefix=str(prefix))
    kernels = prefix / "share" / "jupyter" / "kernels"
    spec = KernelSpecManager(kernel_dirs=[str(kernels)]).get_kernel_spec(KERNEL)
    assert spec.argv[0] == sys.executable
    return [str(kernels)]


def execute(path: Path, store: Path, kernel_dirs: list[str]) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    km = KernelManager(
        kernel_name=KERNEL, kernel_spec_manager=KernelSpecManager(kernel_dirs=kernel_dirs)
    )
    env = {**os.environ, "AUDITOR_STORE": str(store), "MPLBACKEND": "Agg"}
    env.pop("AUDITOR_CONFIG", None)
    client = NotebookClient(
        nb, km=km, timeout=120, resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    client.execute(env=env)
    return nb


def mimetypes(cell: nbformat.NotebookNode) -> set[str]:
    return {kind for out in cell.get("outputs", []) for kind in out.get("data", {})}


def stream_text(nb: nbformat.NotebookNode) -> str:
    return "".join(
        out.get("text", "")
        for cell in nb.cells
        for out in cell.get("outputs", [])
        if out.get("output_type") == "stream"
    )


def test_there_are_notebooks() -> None:
    names = {p.name for p in NOTEBOOK_FILES}
    assert {"fleet_overview.ipynb", "cross_type_consistency.ipynb"} <= names


@pytest.mark.parametrize("path", NOTEBOOK_FILES, ids=lambda p: p.stem)
def test_committed_notebook_has_no_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.cells[0].cell_type == "markdown"
    assert "auditor demo --nights" in nb.cells[0].source
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: outputs committed"
            assert cell.execution_count is None, f"{path.name}: execution count committed"
            assert "execution" not in cell.metadata, f"{path.name}: run timings committed"


@pytest.mark.parametrize("path", NOTEBOOK_FILES, ids=lambda p: p.stem)
def test_notebook_runs_over_several_nights(
    path: Path, store: Path, kernel_dirs: list[str]
) -> None:
    nb = execute(path, store, kernel_dirs)
    errors = [
        out for cell in nb.cells for out in cell.get("outputs", [])
        if out.get("output_type") == "error"
    ]
    assert not errors
    tagged = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tags = set(cell.metadata.get("tags", []))
        kinds = mimetypes(cell)
        if tags & {"plot", "trend"}:
            assert "image/png" in kinds, f"no plot from: {cell.source[:80]!r}"
            tagged += 1
        if "table" in tags:
            assert "text/html" in kinds, f"no table from: {cell.source[:80]!r}"
            tagged += 1
    assert tagged >= 6
    assert "3 night(s)" in stream_text(nb)
    assert "no trend yet" not in stream_text(nb)


@pytest.mark.parametrize("path", NOTEBOOK_FILES, ids=lambda p: p.stem)
def test_notebook_runs_on_a_single_night(
    path: Path, one_night_store: Path, kernel_dirs: list[str]
) -> None:
    nb = execute(path, one_night_store, kernel_dirs)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tags = set(cell.metadata.get("tags", []))
        if "plot" in tags:
            assert "image/png" in mimetypes(cell)
        if "trend" in tags:  # one night: a message instead of a chart, and still a table
            assert "image/png" not in mimetypes(cell)
            assert "text/html" in mimetypes(cell)
    assert "1 night(s)" in stream_text(nb)
    assert "no trend yet" in stream_text(nb)
