"""Cache entry manifests (``.complete.json``) and checking an entry's files against them.

Why this exists: a cached file edited in place (a rating 3 -> 9, same size) must not be used
silently. Every entry's manifest records each file's size and SHA-256; :func:`check_entry`
compares both on every reuse. Files up to :data:`FULL_HASH_BYTES` (all of 100k, 1m and
latest-small) are re-hashed on every check; larger ones (the 20m / 25m ratings) once per process
per (path, size, mtime, inode), so a file changed on disk is hashed again, and the full
:func:`tfrec.data.verify_cache` re-hashes everything.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from tfrec.data._download import sha256_file

MANIFEST = ".complete.json"
FULL_HASH_BYTES = 64 << 20
"""Files up to this size are hashed on every reuse; larger ones once per process and stat."""

_MEMO: dict[tuple, str] = {}  # (path, device, inode, size, mtime_ns) -> sha256; large files
_MEMO_LOCK = threading.Lock()


def file_sha256(path: str | Path, *, full: bool = False) -> str:
    """SHA-256 of ``path``; large files reuse this process's earlier hash of the same stat.

    ``full=True`` always reads the file (and refreshes the memo).
    """
    path = Path(path)
    info = path.stat()
    key = (str(path.resolve()), info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
    large = info.st_size > FULL_HASH_BYTES
    if large and not full:
        with _MEMO_LOCK:
            known = _MEMO.get(key)
        if known is not None:
            return known
    digest = sha256_file(path)
    if large:
        with _MEMO_LOCK:
            _MEMO[key] = digest
    return digest


def load_manifest(directory: str | Path) -> dict | None:
    """The manifest of an entry if it exists and is well formed (files not checked), else None."""
    try:
        manifest = json.loads((Path(directory) / MANIFEST).read_text())
        files = manifest["files"]
        for info in files.values():
            int(info["size"]), str(info["sha256"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return manifest if isinstance(manifest, dict) else None


def read_manifest(directory: str | Path) -> dict | None:
    """The manifest of a complete entry (every listed file present with its size), else None."""
    directory = Path(directory)
    manifest = load_manifest(directory)
    if manifest is None:
        return None
    for name, info in manifest["files"].items():
        try:
            if (directory / name).stat().st_size != info["size"]:
                return None
        except OSError:
            return None
    return manifest


def write_manifest(directory: Path, manifest: dict) -> None:
    """Writes ``directory/.complete.json`` atomically (temp name, then rename)."""
    temp = directory / (MANIFEST + ".part")
    temp.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    os.replace(temp, directory / MANIFEST)


def files_of(directory: Path) -> dict[str, dict]:
    """Size and SHA-256 of every file in a freshly built entry (for its manifest)."""
    return {
        p.name: {"size": p.stat().st_size, "sha256": file_sha256(p, full=True)}
        for p in sorted(directory.iterdir())
        if p.is_file() and p.name != MANIFEST
    }


@dataclass(frozen=True)
class FileProblem:
    """One cached file that does not match its manifest (missing, resized or altered)."""

    name: str
    expected_size: int
    expected_sha256: str
    actual_size: int | None  # None: the file is missing
    actual_sha256: str | None  # None: not hashed (missing, or its size already differs)

    def __str__(self) -> str:
        if self.actual_size is None:
            return f"{self.name}: missing (expected {self.expected_size} bytes)"
        if self.actual_size != self.expected_size:
            return (
                f"{self.name}: size {self.actual_size} bytes, expected {self.expected_size} "
                f"(sha256 {self.expected_sha256})"
            )
        return (
            f"{self.name}: sha256 {self.actual_sha256}, expected {self.expected_sha256} "
            "(same size: edited or corrupted in place)"
        )


def check_entry(directory: Path, manifest: dict, *, full: bool = False) -> list[FileProblem]:
    """Compares every file listed in ``manifest`` with the files in ``directory``."""
    problems = []
    for name, info in sorted(manifest["files"].items()):
        size, expected = int(info["size"]), str(info["sha256"])
        path = directory / name
        try:
            actual_size = path.stat().st_size
        except OSError:
            problems.append(FileProblem(name, size, expected, None, None))
            continue
        if actual_size != size:
            problems.append(FileProblem(name, size, expected, actual_size, None))
            continue
        digest = file_sha256(path, full=full)
        if digest != expected:
            problems.append(FileProblem(name, size, expected, actual_size, digest))
    return problems


def describe_problems(directory: Path, problems: list[FileProblem]) -> str:
    """One sentence naming the entry and each bad file with expected and actual values."""
    listed = "; ".join(str(p) for p in problems)
    return f"The cache entry {directory} does not match its manifest {MANIFEST}: {listed}"
