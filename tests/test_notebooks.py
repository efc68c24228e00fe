"""Runs every tutorial notebook in notebooks/ top to bottom in small mode.

The notebooks are documentation that executes: this test keeps them in step with the package.
Each runs in a fresh Jupyter kernel on this interpreter (a kernelspec written to a temporary
directory, so no `ipykernel install` and no user-level kernel can change which Python runs),
with ``TFREC_NOTEBOOK_SMALL=1`` (small data, tiny models, 1-2 epochs), the Keras 2 switch and
the Agg matplotlib backend, in a temporary working directory so nothing lands in the repo.
The committed notebooks carry the outputs of a full run (so they read on GitHub); the run here
works on a copy and never writes them back.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")

from jupyter_client.kernelspec import KernelSpecManager  # noqa: E402
from jupyter_client.manager import KernelManager  # noqa: E402
from nbclient.exceptions import CellExecutionError, CellTimeoutError  # noqa: E402

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
CELL_TIMEOUT = 600  # seconds per cell: generous, a slow shared CI machine must not flake
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # colour codes in kernel tracebacks


def _execute_module():
    """notebooks/execute.py (what `make notebooks` runs), loaded by path: one kernelspec."""
    spec = importlib.util.spec_from_file_location("notebook_execute", NOTEBOOK_DIR / "execute.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def kernel_specs(tmp_path_factory) -> KernelSpecManager:
    """A kernelspec that runs ipykernel on this very interpreter (the venv's python)."""
    return _execute_module().kernel_specs(tmp_path_factory.mktemp("kernels"))


def kernel_env() -> dict:
    """The test process's environment plus the small-mode switches the notebooks read."""
    env = dict(os.environ)
    env.update(
        TFREC_NOTEBOOK_SMALL="1",
        TF_USE_LEGACY_KERAS="1",
        MPLBACKEND="Agg",
        TF_CPP_MIN_LOG_LEVEL="2",
        PYDEVD_DISABLE_FILE_VALIDATION="1",
    )
    return env


def failing_cell(nb) -> tuple[int, str, str]:
    """(index, source, error text) of the first code cell with an error output."""
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                error = f"{output.get('ename')}: {output.get('evalue')}"
                return index, cell.source, error
    return -1, "", ""


def test_notebooks_exist():
    names = [p.name for p in NOTEBOOKS]
    assert "01_deepfm.ipynb" in names, f"notebooks found: {names}"


def test_notebooks_saved_with_clean_full_run_outputs():
    """The notebooks are committed executed on the full ml-100k (so they read on GitHub), and
    those outputs must be a clean top-to-bottom run: every code cell ran, in order, once, with
    no error and no traceback, and the file stays small enough to review."""
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        code = [cell for cell in nb.cells if cell.cell_type == "code"]
        counts = [cell.execution_count for cell in code]
        assert counts == list(range(1, len(code) + 1)), (
            f"{path.name}: execution counts {counts}; re-run it top to bottom in a fresh kernel "
            "(TFREC_NOTEBOOK_SMALL unset) and save it with its outputs."
        )
        for index, cell in enumerate(nb.cells):
            for output in cell.get("outputs", []):
                assert output.get("output_type") != "error", f"{path.name}: cell {index} failed"
                text = output.get("text", "") + output.get("data", {}).get("text/plain", "")
                assert "Traceback" not in text, f"{path.name}: cell {index} printed a traceback"
                assert "small run" not in text, f"{path.name}: saved from a small run"
        assert path.stat().st_size < 1_500_000, f"{path.name}: {path.stat().st_size} bytes"


def test_notebooks_have_parameters_cell():
    """The first code cell is the papermill-style parameters cell reading the SMALL switch."""
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        first = next(cell for cell in nb.cells if cell.cell_type == "code")
        assert "parameters" in first.metadata.get("tags", []), path.name
        assert 'os.environ.get("TFREC_NOTEBOOK_SMALL", "0") == "1"' in first.source, path.name


@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, kernel_specs, tmp_path):
    nb = nbformat.read(path, as_version=4)
    km = KernelManager(kernel_name=_execute_module().KERNEL_NAME, kernel_spec_manager=kernel_specs)
    client = nbclient.NotebookClient(
        nb,
        km=km,
        timeout=CELL_TIMEOUT,
    )
    try:
        # The kernel works in tmp_path, so a stray relative write never lands in the repo.
        # cleanup_kc: shut the kernel down when the notebook ends (nbclient keeps a kernel it
        # was handed alive, so each chapter's kernel, TensorFlow loaded, would otherwise hold
        # its memory until the whole session exits).
        client.execute(env=kernel_env(), cwd=str(tmp_path), cleanup_kc=True)
    except CellTimeoutError as error:
        pytest.fail(f"{path.name}: a cell exceeded {CELL_TIMEOUT} s.\n{error}", pytrace=False)
    except CellExecutionError as error:
        index, source, message = failing_cell(nb)
        traceback = ANSI.sub("", "\n".join(error.traceback.splitlines()[-40:]))
        pytest.fail(
            f"{path.name}: cell {index} failed with {message or error.ename}\n"
            f"--- cell source ---\n{source}\n--- traceback (end) ---\n{traceback}",
            pytrace=False,
        )
