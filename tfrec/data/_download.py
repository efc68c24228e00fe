"""Checked, atomic file plumbing for dataset fetching: streamed downloads, hashing, temp dirs.

Why this exists: a dataset cache must never contain half-written files. Everything here writes
to a temporary name in the destination directory and renames into place only after the size and
SHA-256 match, and every failure removes what it wrote and says what went wrong and how to fix it.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

from tfrec._staging import pid_alive
from tfrec.data.errors import FetchError

__all__ = ["FetchError", "download", "install_dir", "make_temp_dir", "sha256_file"]

_CHUNK = 1 << 20


def sha256_file(path: str | Path) -> str:
    """Returns the hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(
    url: str,
    destination: str | Path,
    *,
    size: int | None = None,
    sha256: str | None = None,
    fix: str = "retry",
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Streams ``url`` to ``destination`` (temp file + rename), verifying size and SHA-256.

    On any failure (HTTP or network error, truncated body, size or checksum mismatch) the
    partial file is deleted and a :class:`FetchError` is raised whose message ends with ``fix``.
    """
    destination = Path(destination)
    handle, temp_name = tempfile.mkstemp(prefix=f".{destination.name}.", dir=destination.parent)
    digest = hashlib.sha256()
    received = 0
    try:
        with os.fdopen(handle, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    total = size or int(response.headers.get("Content-Length") or 0) or None
                    bar = tqdm(
                        total=total,
                        unit="B",
                        unit_scale=True,
                        desc=destination.name,
                        disable=None if progress else True,  # None: only on a terminal
                        leave=False,
                    )
                    with bar:
                        while chunk := response.read(_CHUNK):
                            _write(out, chunk, destination)
                            digest.update(chunk)
                            received += len(chunk)
                            bar.update(len(chunk))
            except urllib.error.HTTPError as error:
                raise FetchError(
                    f"Download failed: HTTP {error.code} {error.reason} for {url}. Fix: {fix}"
                ) from error
            except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
                raise FetchError(
                    f"Download failed after {received} bytes from {url}: {error}. Fix: {fix}"
                ) from error
            except ValueError as error:  # urllib's answer to a malformed URL
                raise FetchError(f"Cannot download {url!r}: {error}. Fix: {fix}") from error
        if size is not None and received != size:
            raise FetchError(
                f"Download from {url} is truncated or wrong: expected {size} bytes, got "
                f"{received}. Fix: {fix}"
            )
        got = digest.hexdigest()
        if sha256 is not None and got != sha256:
            raise FetchError(
                f"Checksum mismatch for {url}: expected sha256 {sha256}, got {got}. Fix: {fix}"
            )
        os.replace(temp_name, destination)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return destination


def _write(out, chunk: bytes, destination: Path) -> None:
    try:
        out.write(chunk)
    except OSError as error:  # disk full, quota, read-only: not the network's fault
        raise FetchError(
            f"Could not write the download to {destination.parent}: {error}. Fix: free disk "
            "space, or set data_dir= (or $TFREC_DATA_DIR) to a folder with room."
        ) from error


def make_temp_dir(parent: Path, label: str) -> Path:
    """Creates a fresh working directory ``parent/.tmp-<label>-<pid>-<random>``."""
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".tmp-{label}-{os.getpid()}-", dir=parent))


def remove_stale_temp_dirs(parent: Path, label: str) -> None:
    """Deletes leftover ``.tmp-<label>-<pid>-*`` dirs whose creating process is gone."""
    if not parent.is_dir():
        return
    for path in parent.glob(f".tmp-{label}-*"):
        pid_text = path.name[len(f".tmp-{label}-") :].split("-", 1)[0]
        if pid_text.isdigit() and pid_alive(int(pid_text)):
            continue  # possibly still being written by a running process (maybe this one)
        shutil.rmtree(path, ignore_errors=True)

    return True


def install_dir(temp_dir: Path, final_dir: Path) -> Path:
    """Renames a finished ``temp_dir`` to ``final_dir`` atomically.

    Callers remove an incomplete ``final_dir`` first and only pass a ``temp_dir`` whose manifest
    is written. If another process installed ``final_dir`` meanwhile, that copy is kept and
    ``temp_dir`` discarded.
    """
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(temp_dir, final_dir)
    except OSError:
        if not final_dir.exists():
            shutil.rmtree(temp_dir, ignore_errors=True)
            raise
        shutil.rmtree(temp_dir, ignore_errors=True)
    return final_dir
