"""The local source follows its origin: content fingerprints, re-imports, validation first.

Issue 14 finding 2: a local import was cached by path only, so a changed source kept serving the
first copy and a copy that failed validation kept failing after the source was fixed.
"""

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 before TensorFlow loads)
import hashlib
import json
import warnings

import pytest

from tfrec.data import (
    CacheCorruptError,
    DataError,
    DataWarning,
    fetch_movielens,
    load_movielens,
    sources,
)


def _drop_last_rating(directory):
    data = directory / "u.data"
    lines = data.read_text(encoding="latin-1").splitlines(keepends=True)
    data.write_text("".join(lines[:-1]), encoding="latin-1")


def _manifest(directory):
    return json.loads((directory / ".complete.json").read_text())


def test_changed_directory_is_reimported(tmp_path, files):
    raw = files.write_100k(tmp_path / "raw")
    assert load_movielens("100k", path=raw).num_ratings == 10
    entry = sources.entry_dir("100k", "local")
    first = _manifest(entry)["origin_fingerprint"]["sha256"]
    _drop_last_rating(raw)  # the source shrinks: the cache must follow
    assert load_movielens("100k", path=raw).num_ratings == 9
    assert _manifest(entry)["origin_fingerprint"]["sha256"] != first
    with warnings.catch_warnings(record=True) as caught:  # no path: still follows the origin
        warnings.simplefilter("always")
        _drop_last_rating(raw)
        assert load_movielens("100k", source="local").num_ratings == 8
    assert any("changed since it was imported" in str(w.message) for w in caught)
    assert [w.category for w in caught if "changed" in str(w.message)] == [DataWarning]


def test_unchanged_source_is_reused_without_copying(tmp_path, files):
    raw = files.write_100k(tmp_path / "raw")
    directory = fetch_movielens("100k", path=raw)
    created = (directory / "u.data").stat().st_mtime_ns
    (raw / "u.data").touch()  # a new mtime alone (same bytes) does not re-import
    assert fetch_movielens("100k", path=raw) == directory
    assert (directory / "u.data").stat().st_mtime_ns == created


def test_changed_zip_is_reimported(tmp_path, files):
    raw = files.write_100k(tmp_path / "raw")
    archive = files.zip_dir(raw, tmp_path / "ml-100k.zip", "ml-100k")
    assert load_movielens("100k", path=archive).num_ratings == 10
    _drop_last_rating(raw)
    archive.unlink()
    files.zip_dir(raw, archive, "ml-100k")
    assert load_movielens("100k", path=archive).num_ratings == 9


def test_failed_validation_is_not_cached_and_names_the_source(tmp_path, files):
    raw = files.write_100k(tmp_path / "raw")
    good = (raw / "u.data").read_text()
    (raw / "u.data").write_text(good.replace("1\t5\t2\t300", "1\t5\t2"))
    with pytest.raises(DataError, match=rf"{raw / 'u.data'} line 4: expected 4 fields"):
        load_movielens("100k", path=raw)
    assert not sources.entry_dir("100k", "local").exists()  # nothing broken was cached
    (raw / "u.data").write_text(good)  # the fix is picked up at once
    assert load_movielens("100k", path=raw).num_ratings == 10


def test_zip_errors_name_the_member(tmp_path, files):
    raw = files.write_100k(tmp_path / "raw")
    data = raw / "u.data"
    data.write_text(data.read_text().replace("2\t4\t1\t60", "2\t4\t-4\t60"))
    archive = files.zip_dir(raw, tmp_path / "ml.zip", "ml-100k")
    with pytest.raises(DataError, match=r"ml\.zip:ml-100k/u\.data line 6: invalid user_rating"):
        fetch_movielens("100k", path=archive)


def test_manifest_and_movielens_say_where_the_copy_came_from(tmp_path, files):
    raw = files.write_100k(tmp_path / "raw")
    ml = load_movielens("100k", path=raw)
    fingerprint = _manifest(sources.entry_dir("100k", "local"))["origin_fingerprint"]
    data = fingerprint["files"]["u.data"]
    assert data["sha256"] == hashlib.sha256((raw / "u.data").read_bytes()).hexdigest()
    assert data["size"] == (raw / "u.data").stat().st_size
    assert data["mtime_ns"] == (raw / "u.data").stat().st_mtime_ns
    assert sorted(fingerprint["files"]) == ["README", "u.data", "u.item", "u.user"]
    digest = hashlib.sha256()
    for name, info in sorted(fingerprint["files"].items()):
        digest.update(f"{name}\0{info['size']}\0{info['sha256']}\n".encode())
    assert fingerprint["sha256"] == digest.hexdigest()
    assert ml.origin.startswith(f"{raw} (content sha256 {digest.hexdigest()[:16]}, imported ")
    assert ml.source_description == f"local: {ml.origin}"


def test_corrupt_copy_is_reimported_while_the_origin_exists(tmp_path, files):
    raw = files.write_100k(tmp_path / "raw")
    directory = fetch_movielens("100k", path=raw)
    cached = directory / "u.data"
    cached.write_text(cached.read_text().replace("3\t3\t3\t20", "3\t3\t9\t20"))  # same size
    with pytest.warns(DataWarning, match="the copy is corrupt"):
        assert fetch_movielens("100k", source="local") == directory
    assert cached.read_text() == (raw / "u.data").read_text()
    cached.write_text(cached.read_text().replace("3\t3\t3\t20", "3\t3\t9\t20"))
    with pytest.warns(DataWarning, match=r"u\.data: sha256 .* Importing it again"):
        fetch_movielens("100k", path=raw)
    assert cached.read_text() == (raw / "u.data").read_text()


def test_corrupt_copy_of_a_vanished_origin_says_how_to_repair(tmp_path, files):
    raw = files.write_100k(tmp_path / "raw")
    directory = fetch_movielens("100k", path=raw)
    for path in raw.iterdir():
        path.unlink()
    raw.rmdir()
    assert load_movielens("100k", source="local").num_ratings == 10  # the copy still serves
    cached = directory / "u.data"
    expected = hashlib.sha256(cached.read_bytes()).hexdigest()
    cached.write_text(cached.read_text().replace("1\t1\t5\t100", "2\t1\t5\t100"))  # user 1 -> 2
    actual = hashlib.sha256(cached.read_bytes()).hexdigest()
    with pytest.raises(CacheCorruptError) as error:
        load_movielens("100k")  # auto picks the local entry
    message = str(error.value)
    assert f"u.data: sha256 {actual}, expected {expected}" in message
    assert f"Fix: delete {directory} and import a good copy again" in message
    assert "--source local --path" in message
    assert error.value.problems == (f"u.data: sha256 {actual}, expected {expected} "
                                    "(same size: edited or corrupted in place)",)  # fmt: skip
