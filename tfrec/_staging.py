"""Hidden staging names that say who made them, and the cleanup of those a killed process left.

Exports and run directories are written into a hidden ``.tmp-*`` sibling and renamed into
place when complete, so nothing half-written is ever used. A process killed mid-write (``kill
-9``, a power cut) cannot remove its staging folder, and each one may hold a whole SavedModel.
Staging names therefore start with ``.tmp-<pid>-``: the next export or training run into the
same directory removes a staging entry only when it is older than `STALE_AFTER` seconds *and*
the process that made it is gone (for a name without a pid, age alone decides), so another
live process's staging folder is never touched.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

PREFIX = ".tmp-"
STALE_AFTER = 3600.0
"""Seconds since its last change before a staging entry may be removed (if its maker is gone)."""
_PID = re.compile(r"\.tmp-([0-9]+)-")


def staging_prefix() -> str:
    """``.tmp-<pid>-``: the start of every staging name this process creates."""
    return f"{PREFIX}{os.getpid()}-"


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (one owned by another user counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OSError, OverflowError):  # e.g. an id too large for the platform: no such process
        return False
    return True


def is_stale(path: Path, now: float | None = None, min_age: float = STALE_AFTER) -> bool:
    """Whether staging entry `path` was left behind: old enough, and its maker is not running."""
    if not path.name.startswith(PREFIX):
        return False
    try:
        age = (time.time() if now is None else now) - path.lstat().st_mtime
    except FileNotFoundError:
        return False
    if age < min_age:
        return False
    match = _PID.match(path.name)
    return match is None or not pid_alive(int(match.group(1)))


def clean_stale(directory, min_age: float = STALE_AFTER) -> list[Path]:
    """Removes the stale ``.tmp-*`` entries directly inside `directory`; returns them.

    Never raises for an entry that disappears meanwhile (another process cleaning up too).
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    now, removed = time.time(), []
    for path in directory.iterdir():
        if not is_stale(path, now, min_age):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        if not path.exists():
            removed.append(path)
    return sorted(removed)
