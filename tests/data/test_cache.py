"""Cache verification: hashes checked on reuse, large-file memo, and the full verify_cache.

Issue 14 finding 3: reuse compared sizes only, so a same-size edit of a cached file (a rating
3 -> 9) was used silently. (Re-fetching a corrupt grouplens / pypi entry: test_sources.py.)
"""

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 before TensorFlow loads)
import hashlib
import os

import pytest

from tfrec.data import CacheCorruptError, _manifest, fetch_movielens, verify_cache
from tfrec.data._manifest import check_entry, load_manifest


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _edit_keeping_size_and_mtime(path, old, new):
    info = path.stat()
    text = path.read_text()
    assert len(old) == len(new) and old in text
    path.write_text(text.replace(old, new, 1))
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert path.stat().st_size == info.st_size


def test_verify_cache_reports_every_entry(tmp_path, files):
    raw = files.write_100k(tmp_path / "raw")
    fetch_movielens("100k", path=raw)
    fetch_movielens("20m", path=files.write_csv(tmp_path / "csv"))
    reports = verify_cache()
    assert [(r.variant, r.source, r.ok, r.origin_status) for r in reports] == [
        ("100k", "local", True, "unchanged"),
        ("20m", "local", True, "unchanged"),
    ]
    first = reports[0]
    assert first.num_files == 4
    assert first.num_bytes == sum(
        (raw / n).stat().st_size for n in ("README", "u.data", "u.item", "u.user")
    )
    assert str(first).startswith(f"movielens/100k/local: OK, 4 files, {first.num_bytes:,} bytes")
    assert [r.variant for r in verify_cache("20m", "local")] == ["20m"]
    (raw / "u.data").write_text("1\t1\t5\t100\n")
    assert verify_cache("100k")[0].origin_status == "changed (re-imported on next load)"


def test_verify_cache_names_file_hashes_and_fix(tmp_path, files):
    directory = fetch_movielens("100k", path=files.write_100k(tmp_path / "raw"))
    cached = directory / "u.data"
    expected = _sha(cached)
    _edit_keeping_size_and_mtime(cached, "3\t3\t3\t20", "3\t3\t9\t20")  # rating 3 -> 9
    with pytest.raises(CacheCorruptError) as error:
        verify_cache("100k")
    message = str(error.value)
    assert f"u.data: sha256 {_sha(cached)}, expected {expected}" in message
    assert "Fix: run `tfrec data fetch --variant 100k --source local --path " in message
    assert error.value.problems[0].startswith("u.data: sha256")


def test_nothing_to_verify(tmp_path):
    with pytest.raises(FileNotFoundError, match="No MovieLens cache entries to verify"):
        verify_cache("1m")
    with pytest.raises(ValueError, match="Unknown MovieLens source"):
        verify_cache("1m", "kaggle")


def test_small_files_are_hashed_on_every_check(tmp_path, files):
    directory = fetch_movielens("100k", path=files.write_100k(tmp_path / "raw"))
    manifest = load_manifest(directory)
    assert check_entry(directory, manifest) == []
    _edit_keeping_size_and_mtime(directory / "u.data", "3\t3\t3\t20", "3\t3\t9\t20")
    [problem] = check_entry(directory, manifest)
    assert problem.name == "u.data" and problem.actual_size == problem.expected_size


def test_large_files_are_hashed_once_per_stat(tmp_path, files, monkeypatch):
    monkeypatch.setattr(_manifest, "FULL_HASH_BYTES", 0)  # every file counts as large
    monkeypatch.setattr(_manifest, "_MEMO", {})
    calls = []
    real = _manifest.sha256_file
    monkeypatch.setattr(_manifest, "sha256_file", lambda p: calls.append(p.name) or real(p))
    directory = fetch_movielens("100k", path=files.write_100k(tmp_path / "raw"))
    manifest = load_manifest(directory)
    calls.clear()
    assert check_entry(directory, manifest) == []
    assert calls == ["README", "u.data", "u.item", "u.user"]  # first check in this process
    calls.clear()
    assert check_entry(directory, manifest) == [] and calls == []  # then the memo answers
    cached = directory / "u.data"
    # An edit that keeps size *and* mtime evades the per-process memo (documented limit) ...
    _edit_keeping_size_and_mtime(cached, "3\t3\t3\t20", "3\t3\t9\t20")
    assert check_entry(directory, manifest) == []
    # ... but not the full verification, nor any edit that moves the mtime.
    assert [p.name for p in check_entry(directory, manifest, full=True)] == ["u.data"]
    os.utime(cached, ns=(0, 10**9))
    calls.clear()
    assert [p.name for p in check_entry(directory, manifest)] == ["u.data"]
    assert calls == ["u.data"]


def test_truncated_and_missing_files_are_problems(tmp_path, files):
    directory = fetch_movielens("100k", path=files.write_100k(tmp_path / "raw"))
    manifest = load_manifest(directory)
    size = (directory / "u.item").stat().st_size
    (directory / "u.item").write_text("1|x\n")
    (directory / "u.user").unlink()
    problems = [str(p) for p in check_entry(directory, manifest)]
    assert problems[0].startswith(f"u.item: size 4 bytes, expected {size} (sha256 ")
    assert problems[1].startswith("u.user: missing (expected ")
