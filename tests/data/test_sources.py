"""Sources and cache: GroupLens over a local HTTP server, PyPI via a fake wheel, local files."""

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 before TensorFlow loads)
import functools
import hashlib
import http.server
import json
import os
import re
import shutil
import socket
import sys
import threading
import zipfile

import pytest

from tfrec.data import (
    CacheCorruptError,
    DataWarning,
    FetchError,
    _pypi,
    fetch_movielens,
    load_movielens,
    sources,
)
from tfrec.data._download import download


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; under /truncated/ it promises the full length but sends half."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path.startswith("/truncated/"):
            data = (self.served / self.path.rsplit("/", 1)[1]).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.close_connection = True
            return
        super().do_GET()


@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving tmp_path/served; yields (base_url, folder)."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(
        type("Handler", (_Handler,), {"served": served}), directory=str(served)
    )
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", served
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture
def official_zip(tmp_path, server, files, monkeypatch):
    """Serves a GroupLens-style ml-100k.zip and pins its real size and checksum."""
    url, served = server
    archive = files.zip_dir(files.write_100k(tmp_path / "raw"), served / "ml-100k.zip", "ml-100k")
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr("ml-100k/u.genre", "unused\n")
    pin = (archive.stat().st_size, _sha(archive))
    monkeypatch.setitem(sources.GROUPLENS_PINS, "100k", pin)
    return url, archive


def _leftovers(cache):
    return sorted(p.name for p in (cache / "movielens" / "100k").glob(".tmp-*"))


def test_grouplens_download_verifies_extracts_and_is_reused(tmp_path, official_zip):
    url, archive = official_zip
    cache = tmp_path / "cache"
    directory = fetch_movielens("100k", "grouplens", grouplens_url=url, progress=False)
    assert directory == cache / "movielens" / "100k" / "grouplens"
    names = sorted(p.name for p in directory.iterdir())
    assert names == [".complete.json", "README", "u.data", "u.item", "u.user"]
    manifest = json.loads((directory / ".complete.json").read_text())
    assert manifest["source"] == "grouplens" and manifest["layout"] == "grouplens-100k"
    assert manifest["origin"] == f"{url}/ml-100k.zip"
    assert manifest["files"]["u.data"]["sha256"] == _sha(directory / "u.data")
    assert _leftovers(cache) == []
    archive.unlink()  # no network needed any more: the complete entry is reused
    assert fetch_movielens("100k", "grouplens", grouplens_url=url) == directory
    assert fetch_movielens("100k") == directory  # auto prefers any complete entry
    assert load_movielens("100k").source == "grouplens"


def test_grouplens_url_from_environment(official_zip, monkeypatch):
    url, _ = official_zip
    monkeypatch.setenv("TFREC_GROUPLENS_URL", url)
    assert (fetch_movielens("100k", "grouplens", progress=False) / "u.data").is_file()


def test_wrong_checksum_leaves_nothing(tmp_path, official_zip, monkeypatch):
    url, archive = official_zip
    monkeypatch.setitem(sources.GROUPLENS_PINS, "100k", (archive.stat().st_size, "0" * 64))
    with pytest.raises(FetchError, match=f"expected sha256 0{{64}}, got {_sha(archive)}.*Fix"):
        fetch_movielens("100k", "grouplens", grouplens_url=url, progress=False)
    assert not (tmp_path / "cache" / "movielens").exists()  # not even an empty folder


def test_truncated_download_leaves_nothing(tmp_path, official_zip):
    url, _ = official_zip
    with pytest.raises(FetchError, match="(truncated|Download failed).*Fix: retry"):
        fetch_movielens("100k", "grouplens", grouplens_url=f"{url}/truncated", progress=False)
    assert not (tmp_path / "cache" / "movielens").exists()


def test_http_error_and_bad_zip(tmp_path, server, monkeypatch):
    url, served = server
    with pytest.raises(FetchError, match="HTTP 404.*ml-1m.zip.*source='local'"):
        fetch_movielens("1m", "grouplens", grouplens_url=url, progress=False)
    junk = served / "ml-1m.zip"
    junk.write_bytes(b"this is not a zip file")
    monkeypatch.setitem(sources.GROUPLENS_PINS, "1m", (junk.stat().st_size, _sha(junk)))
    with pytest.raises(FetchError, match="not a readable zip"):
        fetch_movielens("1m", "grouplens", grouplens_url=url, progress=False)
    assert not (tmp_path / "cache" / "movielens" / "1m").exists()


def test_incomplete_entries_and_stale_temp_dirs_are_replaced(tmp_path, official_zip):
    url, _ = official_zip
    variant_dir = tmp_path / "cache" / "movielens" / "100k"
    partial = variant_dir / "grouplens"
    partial.mkdir(parents=True)
    (partial / "u.data").write_text("half a file")  # no manifest: never used
    stale = variant_dir / ".tmp-grouplens-999999999-abc"  # its process is gone
    stale.mkdir()
    directory = fetch_movielens("100k", "grouplens", grouplens_url=url, progress=False)
    assert directory == partial and sources.read_manifest(partial) is not None
    assert (partial / "u.data").read_text().startswith("1\t1\t5\t100\n")
    assert not stale.exists()


def _fake_wheel(tmp_path, files, broken_item=False):
    data = files.write_recbole(tmp_path / "recbole-src")
    wheels = tmp_path / "wheels"
    wheels.mkdir(exist_ok=True)
    wheel = wheels / _pypi.RECBOLE_WHEEL
    with zipfile.ZipFile(wheel, "w") as zf:
        for path in sorted(data.iterdir()):
            zf.write(path, f"recbole/dataset_example/ml-100k/{path.name}")
        info = "recbole-1.2.1.dist-info"
        zf.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: recbole\nVersion: 1.2.1\n")
        zf.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        zf.writestr(f"{info}/RECORD", "")
    checksums = {p.name: _sha(p) for p in data.iterdir()}
    if broken_item:
        checksums["ml-100k.item"] = "f" * 64
    return wheels, _sha(wheel), checksums


@pytest.fixture
def offline_pip(monkeypatch):
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    for name in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS"):
        monkeypatch.delenv(name, raising=False)


def test_pypi_auto_for_100k_uses_pip_settings(tmp_path, files, offline_pip, monkeypatch):
    wheels, wheel_sha, checksums = _fake_wheel(tmp_path, files)
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # pip's own settings apply to the subprocess
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    monkeypatch.setattr(_pypi, "RECBOLE_WHEEL_SHA256", wheel_sha)
    monkeypatch.setattr(_pypi, "RECBOLE_FILES", checksums)
    monkeypatch.setattr(sources, "_fetch_grouplens", _never)
    ml = load_movielens("100k")
    assert ml.source == "pypi" and (ml.num_users, ml.num_movies, ml.num_ratings) == (3, 5, 10)
    directory = sources.entry_dir("100k", "pypi")
    assert sorted(p.name for p in directory.iterdir()) == [
        ".complete.json", "ml-100k.inter", "ml-100k.item", "ml-100k.user",
    ]  # fmt: skip


def _never(*args, **kwargs):
    raise AssertionError("auto must not contact GroupLens for 100k")


@pytest.mark.parametrize("problem", ["wheel", "file", "missing"])
def test_pypi_failures_are_explained(tmp_path, files, offline_pip, problem):
    wheels, wheel_sha, checksums = _fake_wheel(tmp_path, files, broken_item=problem == "file")
    if problem == "wheel":
        wheel_sha = "0" * 64
    if problem == "missing":
        wheels = tmp_path / "empty"
        wheels.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    patterns = {
        "wheel": f"Checksum mismatch for {_pypi.RECBOLE_WHEEL}: expected sha256 0{{64}}",
        "file": "Checksum mismatch for ml-100k.item in .*expected sha256 f{64}",
        "missing": "pip download recbole==1.2.1` failed.*Fix: check that pip",
    }
    with pytest.raises(FetchError, match=f"(?s){patterns[problem]}"):
        _pypi.fetch_recbole_100k(
            work, ("--no-index", "--find-links", str(wheels)), wheel_sha, checksums
        )
    assert not (work / ".pip").exists()


def test_local_directory_zip_and_recbole(tmp_path, files):
    raw = files.write_100k(tmp_path / "downloads" / "ml-100k")
    directory = fetch_movielens("100k", "local", path=raw.parent)  # finds the ml-100k folder
    manifest = sources.read_manifest(directory)
    assert manifest["origin"] == str(raw.parent.resolve()) and manifest["source"] == "local"
    assert fetch_movielens("100k", source="local") == directory  # cached, no path needed
    archive = files.zip_dir(raw, tmp_path / "ml-100k.zip", "ml-100k")
    assert load_movielens("100k", path=archive).num_ratings == 10  # re-imported from the zip
    assert sources.read_manifest(directory)["origin"] == str(archive.resolve())
    recbole = files.write_recbole(tmp_path / "rb")
    assert load_movielens("100k", source="local", path=recbole).movies["movie_title"][0] == (
        "Toy Story (1995)"
    )


def test_local_errors(tmp_path, files):
    with pytest.raises(ValueError, match="source='local' needs path="):
        fetch_movielens("100k", "local")
    with pytest.raises(FileNotFoundError, match="No MovieLens 1m files found"):
        fetch_movielens("1m", path=files.write_100k(tmp_path / "raw"))
    with pytest.raises(FileNotFoundError, match="No such MovieLens directory or zip"):
        fetch_movielens("100k", path=tmp_path / "nowhere")
    assert not (tmp_path / "cache" / "movielens" / "1m").exists()


def test_bad_arguments():
    with pytest.raises(ValueError, match="auto, grouplens, pypi, tfds, local"):
        fetch_movielens("100k", "kaggle")
    with pytest.raises(ValueError, match="Unknown MovieLens variant.*'100m'"):
        fetch_movielens("100m")
    with pytest.raises(ValueError, match="only provides MovieLens 100k"):
        fetch_movielens("1m", "pypi")
    with pytest.raises(ValueError, match="path= is only used with source='local'"):
        fetch_movielens("100k", "grouplens", path="x.zip")


def test_auto_uses_grouplens_for_other_variants(tmp_path, files, monkeypatch):
    def fake_grouplens(variant, work, base_url, pin, progress):
        files.write_1m(work)
        return "fake"

    monkeypatch.setattr(sources, "_fetch_grouplens", fake_grouplens)
    assert load_movielens("1m").source == "grouplens"


def test_cache_root_precedence(tmp_path, monkeypatch):
    assert sources.cache_root(tmp_path / "x") == tmp_path / "x"
    assert sources.cache_root() == tmp_path / "cache"
    monkeypatch.delenv("TFREC_DATA_DIR")
    assert str(sources.cache_root()).endswith(os.path.join(".cache", "tfrec"))


# Issue 14 finding 3: a cached file edited in place (same size) is detected and fetched again.


def _edit_in_place(path, old, new):
    text = path.read_text()
    assert len(old) == len(new) and old in text
    path.write_text(text.replace(old, new, 1))


def test_same_size_edit_of_a_grouplens_entry_is_fetched_again(tmp_path, official_zip):
    url, archive = official_zip
    directory = fetch_movielens("100k", "grouplens", grouplens_url=url, progress=False)
    cached = directory / "u.data"
    original = cached.read_text()
    _edit_in_place(cached, "3\t3\t3\t20", "3\t3\t9\t20")  # rating 3 -> 9
    _edit_in_place(cached, "1\t1\t5\t100", "2\t1\t5\t100")  # user 1 -> 2
    with pytest.warns(DataWarning, match=r"u\.data: sha256 [0-9a-f]{64}, expected .*Fetching it"):
        assert fetch_movielens("100k", grouplens_url=url, progress=False) == directory
    assert cached.read_text() == original
    assert load_movielens("100k").ratings["user_rating"][7] == 3.0


def test_corrupt_entry_that_cannot_be_fetched_again(tmp_path, official_zip):
    url, archive = official_zip
    directory = fetch_movielens("100k", "grouplens", grouplens_url=url, progress=False)
    _edit_in_place(directory / "u.data", "3\t3\t3\t20", "3\t3\t9\t20")
    archive.unlink()  # the server no longer has it
    with pytest.warns(DataWarning), pytest.raises(CacheCorruptError) as error:
        fetch_movielens("100k", "grouplens", grouplens_url=url, progress=False)
    message = str(error.value)
    assert f"The cache entry {directory} does not match its manifest" in message
    assert "Fetching it again from grouplens failed: Download failed: HTTP 404" in message
    assert isinstance(error.value, FetchError)


def test_same_size_edit_of_a_pypi_entry_is_fetched_again(tmp_path, files, offline_pip, monkeypatch):
    wheels, wheel_sha, checksums = _fake_wheel(tmp_path, files)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    monkeypatch.setattr(_pypi, "RECBOLE_WHEEL_SHA256", wheel_sha)
    monkeypatch.setattr(_pypi, "RECBOLE_FILES", checksums)
    directory = fetch_movielens("100k", "pypi")
    inter = directory / "ml-100k.inter"
    original = inter.read_text()
    _edit_in_place(inter, "3\t3\t3\t20", "3\t3\t9\t20")
    with pytest.warns(DataWarning, match=r"ml-100k\.inter: sha256"):
        load_movielens("100k")
    assert inter.read_text() == original


# Issue 14 finding 8 (data part): every fetch failure is a FetchError saying what and the fix.


def test_network_failure_is_a_fetch_error():
    with pytest.raises(
        FetchError, match=r"Download failed after 0 bytes from http://127\.0\.0\.1:9"
    ):
        fetch_movielens("1m", progress=False)  # $TFREC_GROUPLENS_URL points at a closed port


def test_malformed_grouplens_url_names_the_setting(tmp_path):
    with pytest.raises(ValueError, match=r"http\(s\):// or file:// URL.*grouplens_url='mirror'"):
        fetch_movielens("1m", "grouplens", grouplens_url="mirror", progress=False)
    for url in ("http://", "https://[::1/x"):
        with pytest.raises(ValueError, match=re.escape(f"Received: grouplens_url={url!r}")):
            fetch_movielens("1m", "grouplens", grouplens_url=url, progress=False)
    with pytest.raises(FetchError, match="Cannot download 'no-scheme/ml-1m.zip': unknown url"):
        download("no-scheme/ml-1m.zip", tmp_path / "ml.zip", progress=False)


def test_disk_full_while_downloading(tmp_path, official_zip, monkeypatch):
    url, _ = official_zip
    real_fdopen = os.fdopen

    class Full:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *args):
            self.handle.close()

        def write(self, chunk):
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fdopen", lambda fd, mode: Full(real_fdopen(fd, mode)))
    with pytest.raises(FetchError, match="Could not write the download.*No space left.*free disk"):
        fetch_movielens("100k", "grouplens", grouplens_url=url, progress=False)
    assert not (tmp_path / "cache" / "movielens").exists()


def test_unwritable_cache_and_failed_copy_are_fetch_errors(tmp_path, files, monkeypatch):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    raw = files.write_100k(tmp_path / "raw")
    with pytest.raises(FetchError, match=r"Cannot create the cache folder .*not-a-dir.*data_dir="):
        fetch_movielens("100k", data_dir=blocker / "cache", path=raw)

    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(shutil, "copyfile", no_space)
    with pytest.raises(FetchError, match="into .*100k failed: .*No space left.*free disk space"):
        fetch_movielens("100k", path=raw)
    assert not (tmp_path / "cache" / "movielens").exists()


def test_missing_tensorflow_datasets_is_a_fetch_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    with pytest.raises(FetchError, match="source='tfds' needs tensorflow-datasets.*pip install"):
        fetch_movielens("1m", "tfds")


def test_stalled_server_times_out(tmp_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts connections but never answers
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/ml-100k.zip"
    try:
        with pytest.raises(
            FetchError, match="Download failed after 0 bytes.*timed out.*Fix: retry"
        ):
            download(url, tmp_path / "ml.zip", timeout=0.5, fix="retry", progress=False)
    finally:
        listener.close()
    assert list(tmp_path.iterdir()) == []
