"""Executes tutorial notebooks in place on the full data, so they are committed with outputs.

Why this exists: the committed notebooks carry the outputs of a clean top-to-bottom run on
MovieLens-100k (so they read on GitHub without running), and `tests/test_notebooks.py` checks
exactly that. This runs each one in a fresh kernel on this interpreter, with
``TFREC_NOTEBOOK_SMALL`` unset, and writes it back only when every cell succeeded (to a
temporary file, then renamed). ``make notebooks`` runs every chapter.

    .venv/bin/python notebooks/execute.py notebooks/05_sequential.ipynb
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import nbclient
import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

KERNEL_NAME = "tfrec-notebook-python"


def kernel_specs(root: Path) -> KernelSpecManager:
    """A kernelspec that runs ipykernel on this very interpreter (the venv's python)."""
    spec_dir = root / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "tfrec",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    return KernelSpecManager(kernel_dirs=[str(root)])


NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\).*|[IWE]\d{4} [\d:.]+ +\d+ \S+:\d+\] .*"
    r"|.*TqdmWarning: IProgress not found.*|  from \.autonotebook import tqdm as notebook_tqdm)$"
)
"""Lines TensorFlow's C++ runtime and tqdm print to stderr when a kernel starts (no GPU driver,
no ipywidgets): noise in a tutorial, so they are dropped from the saved outputs."""


def drop_noise(nb) -> None:
    """Removes `NOISE` lines from the stderr outputs of `nb` (and outputs left empty)."""
    for cell in nb.cells:
        kept = []
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                lines = [
                    x
                    for x in output["text"].splitlines(keepends=True)
                    if not NOISE.match(x.rstrip("\n"))
                ]
                if not "".join(lines).strip():
                    continue
                output["text"] = "".join(lines)
            kept.append(output)
        if cell.cell_type == "code":
            cell.outputs = kept


def execute(path: Path, specs: KernelSpecManager, timeout: int) -> float:
    """Runs `path` top to bottom on the full data; rewrites it only if every cell succeeded."""
    nb = nbformat.read(path, as_version=4)
    # No MPLBACKEND: the kernel's own inline backend puts the plots into the saved outputs.
    env = {k: v for k, v in os.environ.items() if k not in ("TFREC_NOTEBOOK_SMALL", "MPLBACKEND")}
    env.update(TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
    km = KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=specs)
    client = nbclient.NotebookClient(nb, km=km, timeout=timeout)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:  # stray relative writes never land in the repo
        client.execute(env=env, cwd=work)
    seconds = time.perf_counter() - start
    drop_noise(nb)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".ipynb")
    os.close(fd)
    try:
        nbformat.write(nb, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    parser.add_argument("--clean-only", action="store_true", help="only drop stderr noise")
    args = parser.parse_args()
    if args.clean_only:
        for path in args.notebooks:
            nb = nbformat.read(path, as_version=4)
            drop_noise(nb)
            nbformat.write(nb, path)
        return 0
    with tempfile.TemporaryDirectory() as root:
        specs = kernel_specs(Path(root))
        for path in args.notebooks:
            print(f"{path}: running on the full data ...", flush=True)
            print(f"{path}: done in {execute(path, specs, args.timeout):.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
