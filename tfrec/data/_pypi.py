"""The ``pypi`` source: RecBole's atomic ml-100k files, taken from the ``recbole`` wheel.

Why this exists: some machines reach only a Python package index, and RecBole's wheel ships a
copy of MovieLens-100k. pip itself fetches the wheel (so its index settings, mirrors and
proxies apply); the wheel and each extracted file are checked against pinned SHA-256s.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tfrec.data._download import sha256_file
from tfrec.data.errors import FetchError

RECBOLE_REQUIREMENT = "recbole==1.2.1"
RECBOLE_WHEEL = "recbole-1.2.1-py3-none-any.whl"
RECBOLE_WHEEL_SHA256 = "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407"
RECBOLE_FILES = {  # member of the wheel under recbole/dataset_example/ml-100k/ -> sha256
    "ml-100k.inter": "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
    "ml-100k.item": "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
    "ml-100k.user": "4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972",
}


def fetch_recbole_100k(
    work: Path,
    pip_args: tuple[str, ...] = (),
    wheel_sha256: str | None = None,
    file_sha256: dict[str, str] | None = None,
    requirement: str = RECBOLE_REQUIREMENT,
    wheel_name: str = RECBOLE_WHEEL,
) -> str:
    """Fetches RecBole's wheel with pip, verifies it and extracts the three ml-100k files.

    ``pip_args`` (e.g. ``("--no-index", "--find-links", folder)``) and the checksums are
    injectable so tests can use a fake local wheel.
    """
    wheel_sha256 = RECBOLE_WHEEL_SHA256 if wheel_sha256 is None else wheel_sha256
    file_sha256 = RECBOLE_FILES if file_sha256 is None else file_sha256
    fix = "check that pip can reach your package index (pip config, PIP_INDEX_URL), or use "
    fix += "source='grouplens', source='tfds' or source='local' with path=."
    downloads = work / ".pip"
    try:
        wheel = pip_download(requirement, wheel_name, downloads, pip_args, fix)
        got = sha256_file(wheel)
        if got != wheel_sha256:
            raise FetchError(
                f"Checksum mismatch for {wheel_name}: expected sha256 {wheel_sha256}, got {got}."
                f" Fix: {fix}"
            )
        with zipfile.ZipFile(wheel) as zf:
            for name, expected in file_sha256.items():
                target = work / name
                with zf.open(f"recbole/dataset_example/ml-100k/{name}") as src:
                    with open(target, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
                got = sha256_file(target)
                if got != expected:
                    raise FetchError(
                        f"Checksum mismatch for {name} in {wheel_name}: expected sha256 "
                        f"{expected}, got {got}. Fix: {fix}"
                    )
    except (zipfile.BadZipFile, KeyError) as error:
        raise FetchError(f"{wheel_name} lacks the ml-100k files ({error}). Fix: {fix}") from error
    finally:
        shutil.rmtree(downloads, ignore_errors=True)
    return f"pypi:{requirement}"


def pip_download(requirement, wheel_name, downloads: Path, pip_args, fix: str) -> Path:
    """Runs ``python -m pip download`` for one wheel into ``downloads``; returns its path."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    command += [requirement, "-d", str(downloads), *pip_args]
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise FetchError(f"`{' '.join(command)}` could not run: {error}. Fix: {fix}") from error
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        raise FetchError(f"`pip download {requirement}` failed:\n{tail}\nFix: {fix}")
    wheel = downloads / wheel_name
    if not wheel.is_file():
        found = sorted(p.name for p in downloads.iterdir()) if downloads.is_dir() else []
        raise FetchError(f"pip did not produce {wheel_name} (got {found}). Fix: {fix}")
    return wheel
