"""Stale staging folders (issue 14, finding 11): removed only when old and their maker is gone."""

import os
import subprocess
import sys
import time

import pytest

from tfrec._staging import STALE_AFTER, clean_stale, is_stale, pid_alive, staging_prefix


@pytest.fixture(scope="module")
def dead_pid():
    """The id of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not pid_alive(child.pid)
    return child.pid


def _make(path, age: float, directory=True):
    path.mkdir() if directory else path.write_text("partial")
    if directory:
        (path / "saved_model.pb").write_bytes(b"half")
    then = time.time() - age
    os.utime(path, (then, then))
    return path


def test_staging_names_carry_this_process_id():
    assert staging_prefix() == f".tmp-{os.getpid()}-"
    assert pid_alive(os.getpid()) and not pid_alive(0) and not pid_alive(2**40)


def test_only_old_entries_of_gone_processes_are_removed(tmp_path, dead_pid):
    old = STALE_AFTER + 60
    killed = _make(tmp_path / f".tmp-{dead_pid}-abc", old)  # a killed export
    killed_file = _make(tmp_path / f".tmp-{dead_pid}-x.config", old, directory=False)
    legacy = _make(tmp_path / ".tmp-deepfm-123abc", old)  # no pid in the name: age decides
    live = _make(tmp_path / f".tmp-{os.getppid()}-def", old)  # another live process's
    mine = _make(tmp_path / f".tmp-{os.getpid()}-ghi", old)  # this process's own
    fresh = _make(tmp_path / f".tmp-{dead_pid}-new", 10)  # maker gone, but just written
    fresh_legacy = _make(tmp_path / ".tmp-stale", 10)
    version = _make(tmp_path / "3", old)  # never a staging entry, however old
    removed = clean_stale(tmp_path)
    assert removed == sorted([killed, killed_file, legacy])
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(p.name for p in (live, mine, fresh, fresh_legacy, version))
    assert clean_stale(tmp_path) == []  # idempotent
    assert clean_stale(tmp_path / "missing") == []


def test_min_age_is_the_threshold(tmp_path, dead_pid):
    entry = _make(tmp_path / f".tmp-{dead_pid}-abc", 120)
    assert not is_stale(entry, min_age=300)
    assert is_stale(entry, min_age=60)
    assert not is_stale(tmp_path / "not-staging", min_age=0)
