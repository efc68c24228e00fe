"""Fetching MovieLens into a local cache from GroupLens, PyPI (RecBole's copy), TFDS or disk.

Why this exists: experiments need the raw MovieLens files on disk, fetched once, verified, and
never half-written, from whichever source the machine can reach. ``fetch_movielens`` returns a
directory ready for :func:`tfrec.data.parsers.parse_directory`.

Cache layout: ``<root>/movielens/<variant>/<source>/`` where ``<root>`` is the ``data_dir``
argument, else ``$TFREC_DATA_DIR``, else ``~/.cache/tfrec``. An entry counts only once its
``.complete.json`` manifest (variant, source, layout, origin, each file's size and sha256) exists;
entries are built in a temporary directory next to it and renamed into place. Every reuse checks
each file's size and SHA-256 against the manifest (see ``_manifest``): a corrupt entry of a
source that can be fetched again (grouplens, pypi, tfds, a local source still on disk) is
re-fetched with a :class:`DataWarning`, otherwise :class:`CacheCorruptError` says how to repair.
Every failure to fetch raises :class:`FetchError` with the cause and the fix.

Sources:

* ``grouplens``: the official zip ``<base>/ml-<variant>.zip`` (``base`` overridable by the
  ``grouplens_url`` argument or ``$TFREC_GROUPLENS_URL``), size and sha256 pinned as in TFDS.
* ``pypi`` (100k only): RecBole's atomic ml-100k files from the ``recbole==1.2.1`` wheel, fetched
  with ``python -m pip download`` (pip's own index settings apply) and checked file by file.
* ``tfds``: ``tensorflow_datasets.load("movielens/<variant>-ratings")`` and ``-movies`` (TFDS data
  under ``<root>/tfds``), converted to tfrec's ``tables`` layout.
* ``local``: a directory or zip already on disk (``path=``), GroupLens or RecBole layout. The copy
  is validated (parsed) before it is cached, and the manifest records the origin's fingerprint
  (size, mtime, SHA-256 of its files): when the origin changes it is re-imported.
* ``auto``: a complete cache entry from any source, else ``pypi`` for 100k, ``grouplens`` otherwise.
"""

from __future__ import annotations

import os
import shutil
import time
import urllib.parse
import warnings
from collections.abc import Callable
from pathlib import Path

from tfrec.data import parsers, schema
from tfrec.data._download import download, install_dir, make_temp_dir, remove_stale_temp_dirs
from tfrec.data._local import LocalSource, extract_layout, import_local, locate_local
from tfrec.data._manifest import (
    MANIFEST,
    check_entry,
    describe_problems,
    files_of,
    load_manifest,
    read_manifest,
    write_manifest,
)
from tfrec.data._pypi import fetch_recbole_100k
from tfrec.data.errors import CacheCorruptError, DataWarning, FetchError

__all__ = ["MANIFEST", "SOURCES", "cache_root", "entry_dir", "fetch_movielens", "read_manifest"]

SOURCES = ("auto", "grouplens", "pypi", "tfds", "local")
DATA_DIR_ENV = "TFREC_DATA_DIR"
GROUPLENS_URL_ENV = "TFREC_GROUPLENS_URL"
GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens"

GROUPLENS_PINS = {  # (size, sha256) as in tensorflow_datasets/url_checksums/movielens.txt
    "25m": (261978986, "8b21cfb7eb1706b4ec0aac894368d90acf26ebdfb6aced3ebd4ad5bd1eb9c6aa"),
    "latest-small": (978202, "696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436"),
    "100k": (4924029, "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229"),
    "1m": (5917549, "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20"),
    "20m": (198702078, "96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3"),
}
_CACHED_PREFERENCE = ("grouplens", "pypi", "tfds", "local")
_OTHER_SOURCES = (
    "use source='pypi' (100k only), source='tfds', or source='local' with path= pointing at "
    "a MovieLens zip or directory you obtained yourself."
)


def cache_root(data_dir: str | Path | None = None) -> Path:
    """Returns the cache root: ``data_dir``, else ``$TFREC_DATA_DIR``, else ``~/.cache/tfrec``."""
    chosen = data_dir or os.environ.get(DATA_DIR_ENV) or Path.home() / ".cache" / "tfrec"
    return Path(chosen).expanduser()


def entry_dir(variant: str, source: str, data_dir: str | Path | None = None) -> Path:
    """Returns where the cache entry of (variant, source) lives, complete or not."""
    return cache_root(data_dir) / "movielens" / variant / source


def describe_origin(manifest: dict) -> str:
    """Where an entry's files came from: URL, package, TFDS folder, or path and fingerprint."""
    origin = str(manifest.get("origin", ""))
    fingerprint = manifest.get("origin_fingerprint") or {}
    if fingerprint.get("sha256"):
        origin += (
            f" (content sha256 {fingerprint['sha256'][:16]}, imported {manifest.get('created')})"
        )
    return origin


def fetch_movielens(
    variant: str = "100k",
    source: str = "auto",
    data_dir: str | Path | None = None,
    *,
    path: str | Path | None = None,
    grouplens_url: str | None = None,
    progress: bool = True,
) -> Path:
    """Makes sure the raw files of ``variant`` are in the cache and returns their directory.

    Idempotent: a cache entry whose files match their manifest (size and SHA-256) is reused
    without touching the network; a corrupt one is fetched again. ``path`` (a directory or zip
    on disk) implies ``source="local"``; a local entry is re-imported when its origin changed.
    Raises ValueError for an unknown variant or source, :class:`FetchError` when a download or
    its verification fails, :class:`CacheCorruptError` for a corrupt entry that cannot be
    re-fetched, and a ``DataError`` (ValueError) when local files do not parse.
    """
    schema.check_variant(variant)
    if source not in SOURCES:
        raise ValueError(
            f"Unknown MovieLens source. Received: source={source!r}. "
            f"Fix: use one of {', '.join(SOURCES)}."
        )
    if path is not None and source not in ("auto", "local"):
        raise ValueError(
            f"path= is only used with source='local'. Received: source={source!r}, "
            f"path={str(path)!r}. Fix: drop path= or pass source='local'."
        )
    if path is not None:
        source = "local"
    if source == "auto":
        for candidate in _CACHED_PREFERENCE:
            directory = entry_dir(variant, candidate, data_dir)
            if load_manifest(directory) is not None:
                return fetch_movielens(
                    variant, candidate, data_dir, grouplens_url=grouplens_url, progress=progress
                )
        source = "pypi" if variant == "100k" else "grouplens"
    if source == "pypi" and variant != "100k":
        raise ValueError(
            f"source='pypi' only provides MovieLens 100k. Received: variant={variant!r}. "
            "Fix: use source='grouplens', 'tfds' or 'local' for this variant."
        )
    final = entry_dir(variant, source, data_dir)
    manifest = load_manifest(final)
    if source == "local":
        return _fetch_local(variant, final, manifest, path)

    def produce(work: Path) -> str:
        if source == "grouplens":
            base = grouplens_url or os.environ.get(GROUPLENS_URL_ENV) or GROUPLENS_URL
            return _fetch_grouplens(variant, work, base, GROUPLENS_PINS[variant], progress)
        if source == "pypi":
            return fetch_recbole_100k(work)
        return _fetch_tfds(variant, work, cache_root(data_dir) / "tfds")

    if manifest is None:
        return _build_entry(variant, source, final, produce)
    problems = check_entry(final, manifest)
    if not problems:
        return final
    message = describe_problems(final, problems)
    warnings.warn(f"{message}. Fetching it again from {source}.", DataWarning, stacklevel=2)
    try:
        return _build_entry(variant, source, final, produce)
    except FetchError as error:
        raise CacheCorruptError(
            f"{message}. Fetching it again from {source} failed: {error}",
            tuple(map(str, problems)),
        ) from error


def _fetch_local(variant: str, final: Path, manifest: dict | None, path) -> Path:
    """Reuses, re-imports or imports the local entry (see ``fetch_movielens``)."""
    recorded = ((manifest or {}).get("origin_fingerprint") or {}).get("sha256")
    if path is not None:
        source = locate_local(variant, path)
        fingerprint = source.fingerprint()
        same = manifest is not None and manifest.get("origin") == str(source.path)
        if same and recorded == fingerprint["sha256"]:
            problems = check_entry(final, manifest)
            if not problems:
                return final
            message = f"{describe_problems(final, problems)}. Importing it again from {path}."
            warnings.warn(message, DataWarning, stacklevel=3)
        return _build_local(variant, final, source, fingerprint)
    if manifest is None:
        raise ValueError(
            f"source='local' needs path= (a MovieLens directory or zip) the first time. "
            f"Received: path=None, no cached local copy of {variant} in {final.parent}. "
            "Fix: pass path=..."
        )
    origin = str(manifest.get("origin", ""))
    try:
        source = locate_local(variant, origin) if origin else None
    except FileNotFoundError:
        source = None  # the original is gone: the cached copy is all there is
    problems = check_entry(final, manifest)
    if source is not None:
        fingerprint = source.fingerprint()
        if fingerprint["sha256"] != recorded or problems:
            why = "it changed since it was imported" if not problems else "the copy is corrupt"
            message = f"Importing MovieLens {variant} again from {origin}: {why}."
            warnings.warn(message, DataWarning, stacklevel=3)
            return _build_local(variant, final, source, fingerprint)
        return final
    if problems:
        fix = (
            f"delete {final} and import a good copy again (`tfrec data fetch --variant {variant}"
            f" --source local --path DIR_OR_ZIP`, or fetch_movielens(..., path=...))."
        )
        raise CacheCorruptError(
            f"{describe_problems(final, problems)}. Its origin {origin or '(unknown)'} is gone, "
            f"so it cannot be imported again. Fix: {fix}",
            tuple(map(str, problems)),
        )
    return final


def _build_local(variant: str, final: Path, source: LocalSource, fingerprint: dict) -> Path:
    extra = {"origin_fingerprint": fingerprint}
    return _build_entry(
        variant, "local", final, lambda work: import_local(variant, work, source), extra
    )


def _build_entry(
    variant: str, source: str, final: Path, produce: Callable[[Path], str], extra=None
) -> Path:
    """Fills a temp folder with ``produce``, writes its manifest and renames it to ``final``."""
    try:
        remove_stale_temp_dirs(final.parent, source)
        work = make_temp_dir(final.parent, source)
    except OSError as error:
        raise FetchError(
            f"Cannot create the cache folder {final.parent}: {error}. Fix: set data_dir= "
            "(or $TFREC_DATA_DIR, or --data-dir) to a writable folder."
        ) from error
    try:
        origin = produce(work)
        manifest = {
            "variant": variant,
            "source": source,
            "layout": parsers.detect_layout(work),
            "origin": origin,
            "files": files_of(work),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **(extra or {}),
        }
        write_manifest(work, manifest)
        if final.exists():  # incomplete, corrupt, or a local import being replaced
            trash = make_temp_dir(final.parent, f"{source}-old")
            os.rename(final, trash / "entry")
            shutil.rmtree(trash, ignore_errors=True)
        return install_dir(work, final)
    except BaseException as error:
        shutil.rmtree(work, ignore_errors=True)
        for folder in (final.parent, final.parent.parent):  # drop folders we left empty
            try:
                folder.rmdir()
            except OSError:
                break
        if isinstance(error, OSError):
            raise FetchError(
                f"Fetching MovieLens {variant} from {source} into {final.parent} failed: "
                f"{error}. Fix: check free disk space and that the folder is writable (or set "
                "data_dir= / $TFREC_DATA_DIR elsewhere), and that the source files are readable."
            ) from error
        raise


def _fetch_grouplens(variant: str, work: Path, base_url: str, pin, progress: bool) -> str:
    """Downloads and verifies the GroupLens zip, then extracts the layout files into ``work``."""
    if not _valid_base_url(base_url):
        raise ValueError(
            f"The GroupLens base URL must be an http(s):// or file:// URL. Received: "
            f"grouplens_url={base_url!r}. Fix: pass grouplens_url= or set ${GROUPLENS_URL_ENV} "
            f"to e.g. {GROUPLENS_URL!r}, or unset it."
        )
    size, sha256 = pin
    url = f"{base_url.rstrip('/')}/ml-{variant}.zip"
    fix = f"retry later (the download may have been interrupted), or {_OTHER_SOURCES}"
    archive = download(
        url, work / f"ml-{variant}.zip", size=size, sha256=sha256, fix=fix, progress=progress
    )
    try:
        extract_layout(archive, work, variant, f"retry, or {_OTHER_SOURCES}")
    finally:
        archive.unlink(missing_ok=True)
    return url


def _valid_base_url(url: str) -> bool:
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return False
    if parts.scheme in ("http", "https"):
        return bool(parts.hostname)
    return parts.scheme == "file"


def _fetch_tfds(variant: str, work: Path, tfds_dir: Path) -> str:
    """Loads the variant with TensorFlow Datasets and stores it as tfrec ``tables``."""
    from tfrec.data._tfds import tables_from_tfds

    fix = "retry, or use source='grouplens', source='pypi' (100k only) or source='local' with path="
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise FetchError(
            f"source='tfds' needs tensorflow-datasets ({error}). Fix: pip install "
            f"tensorflow-datasets, or {fix}."
        ) from error
    try:
        ratings = tfds.load(f"movielens/{variant}-ratings", split="train", data_dir=str(tfds_dir))
        movies = tfds.load(f"movielens/{variant}-movies", split="train", data_dir=str(tfds_dir))
    except Exception as error:  # TFDS raises many kinds (network, checksum, builder errors)
        raise FetchError(
            f"TensorFlow Datasets could not load movielens/{variant} into {tfds_dir}: "
            f"{type(error).__name__}: {error}. Fix: {fix}."
        ) from error
    parsers.save_tables(work, tables_from_tfds(ratings, movies, variant))
    return f"tfds:movielens/{variant} in {tfds_dir}"
