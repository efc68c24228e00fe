"""Fetching MovieLens into a local cache from GroupLens, PyPI (RecBole's copy), TFDS or disk.

Why this exists: experiments need the raw MovieLens files on disk, fetched once, verified, and
never half-written, from whichever source the machine can reach. ``fetch_movielens`` returns a
directory ready for :func:`tfrec.data.parsers.parse_directory`.

Cache layout: ``<root>/movielens/<variant>/<source>/`` where ``<root>`` is the ``data_dir``
argument, else ``$TFREC_DATA_DIR``, else ``~/.cache/tfrec``. An entry is *complete* only when its
``.complete.json`` manifest (variant, source, layout, origin, each file's size and sha256) exists
and lists files that are present with those sizes; entries are built in a temporary directory
next to it and renamed into place, and incomplete ones are deleted when met.

Sources:

* ``grouplens``: the official zip ``<base>/ml-<variant>.zip`` (``base`` overridable by the
  ``grouplens_url`` argument or ``$TFREC_GROUPLENS_URL``), size and sha256 pinned as in TFDS.
* ``pypi`` (100k only): RecBole's atomic ml-100k files from the ``recbole==1.2.1`` wheel, fetched
  with ``python -m pip download`` (pip's own index settings apply) and checked file by file.
* ``tfds``: ``tensorflow_datasets.load("movielens/<variant>-ratings")`` and ``-movies`` (TFDS data
  under ``<root>/tfds``), converted to tfrec's ``tables`` layout.
* ``local``: a directory or zip already on disk (``path=``), GroupLens or RecBole layout.
* ``auto``: a complete cache entry from any source, else ``pypi`` for 100k, ``grouplens`` otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import zipfile
from pathlib import Path

from tfrec.data import parsers, schema
from tfrec.data._download import (
    FetchError,
    download,
    install_dir,
    make_temp_dir,
    remove_stale_temp_dirs,
    sha256_file,
)
from tfrec.data._pypi import fetch_recbole_100k

SOURCES = ("auto", "grouplens", "pypi", "tfds", "local")
DATA_DIR_ENV = "TFREC_DATA_DIR"
GROUPLENS_URL_ENV = "TFREC_GROUPLENS_URL"
GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens"
MANIFEST = ".complete.json"

GROUPLENS_PINS = {  # (size, sha256) as in tensorflow_datasets/url_checksums/movielens.txt
    "25m": (261978986, "8b21cfb7eb1706b4ec0aac894368d90acf26ebdfb6aced3ebd4ad5bd1eb9c6aa"),
    "latest-small": (978202, "696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436"),
    "100k": (4924029, "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229"),
    "1m": (5917549, "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20"),
    "20m": (198702078, "96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3"),
}
_CACHED_PREFERENCE = ("grouplens", "pypi", "tfds", "local")
_OPTIONAL = ("users.npz", "README", "README.txt", "README.md")  # copied along when present
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


def read_manifest(directory: str | Path) -> dict | None:
    """Returns the manifest of a complete cache entry, or None if it is missing or incomplete."""
    directory = Path(directory)
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
        files = manifest["files"]
        for name, info in files.items():
            if (directory / name).stat().st_size != info["size"]:
                return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return manifest


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

    Idempotent: a complete cache entry is reused without touching the network. ``path`` (a
    directory or zip on disk) implies ``source="local"``. Raises ValueError for an unknown
    variant or source, :class:`FetchError` when a download or its verification fails.
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
            if read_manifest(directory) is not None:
                return directory
        source = "pypi" if variant == "100k" else "grouplens"
    if source == "pypi" and variant != "100k":
        raise ValueError(
            f"source='pypi' only provides MovieLens 100k. Received: variant={variant!r}. "
            "Fix: use source='grouplens', 'tfds' or 'local' for this variant."
        )
    final = entry_dir(variant, source, data_dir)
    manifest = read_manifest(final)
    if manifest is not None and (source != "local" or path is None):
        return final
    if source == "local" and path is None:
        raise ValueError(
            f"source='local' needs path= (a MovieLens directory or zip) the first time. "
            f"Received: path=None, no cached local copy of {variant} in {final.parent}. "
            "Fix: pass path=..."
        )
    if manifest is not None and manifest.get("origin") == str(Path(path).expanduser().resolve()):
        return final
    return _build_entry(variant, source, final, data_dir, path, grouplens_url, progress)


def _build_entry(variant, source, final, data_dir, path, grouplens_url, progress) -> Path:
    remove_stale_temp_dirs(final.parent, source)
    work = make_temp_dir(final.parent, source)
    try:
        if source == "grouplens":
            base = grouplens_url or os.environ.get(GROUPLENS_URL_ENV) or GROUPLENS_URL
            origin = _fetch_grouplens(variant, work, base, GROUPLENS_PINS[variant], progress)
        elif source == "pypi":
            origin = fetch_recbole_100k(work)
        elif source == "tfds":
            origin = _fetch_tfds(variant, work, cache_root(data_dir) / "tfds")
        else:
            origin = _import_local(variant, work, Path(path))
        layout = parsers.detect_layout(work)
        files = {
            p.name: {"size": p.stat().st_size, "sha256": sha256_file(p)}
            for p in sorted(work.iterdir())
        }
        manifest = {
            "variant": variant,
            "source": source,
            "layout": layout,
            "origin": origin,
            "files": files,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        temp_manifest = work / (MANIFEST + ".part")
        temp_manifest.write_text(json.dumps(manifest, indent=2, sort_keys=True))
        os.replace(temp_manifest, work / MANIFEST)
        if final.exists():  # incomplete, or a local import being replaced
            trash = make_temp_dir(final.parent, f"{source}-old")
            os.rename(final, trash / "entry")
            shutil.rmtree(trash, ignore_errors=True)
        return install_dir(work, final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        for folder in (final.parent, final.parent.parent):  # drop folders we left empty
            try:
                folder.rmdir()
            except OSError:
                break
        raise


def _fetch_grouplens(variant: str, work: Path, base_url: str, pin, progress: bool) -> str:
    """Downloads and verifies the GroupLens zip, then extracts the layout files into ``work``."""
    size, sha256 = pin
    url = f"{base_url.rstrip('/')}/ml-{variant}.zip"
    fix = f"retry later (the download may have been interrupted), or {_OTHER_SOURCES}"
    archive = download(
        url, work / f"ml-{variant}.zip", size=size, sha256=sha256, fix=fix, progress=progress
    )
    try:
        _extract_layout(archive, work, variant)
    finally:
        archive.unlink(missing_ok=True)
    return url


def _extract_layout(archive: Path, work: Path, variant: str) -> None:
    """Copies the layout files (and README) of ``variant`` out of a zip into ``work``."""
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.namelist() if not m.endswith("/")]
            folders = sorted({m.rsplit("/", 1)[0] if "/" in m else "" for m in members})
            for folder in folders:
                prefix = f"{folder}/" if folder else ""
                names = {m[len(prefix) :] for m in members if m.startswith(prefix)}
                layout = _layout_of(names, variant)
                if layout is not None:
                    optional = tuple(n for n in _OPTIONAL if n in names)
                    wanted = parsers.LAYOUTS[layout] + optional
                    for name in wanted:
                        with zf.open(prefix + name) as src, open(work / name, "wb") as dst:
                            shutil.copyfileobj(src, dst, 1 << 20)
                    return
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as error:
        raise FetchError(
            f"{archive.name} is not a readable zip ({error}). Fix: retry, or {_OTHER_SOURCES}"
        ) from error
    raise FetchError(
        f"{archive.name} holds no MovieLens {variant} files (expected one of "
        f"{_expected_files(variant)}). Fix: use the ml-{variant} zip."
    )


def _layout_of(names, variant: str) -> str | None:
    for layout, files in parsers.LAYOUTS.items():
        if variant in parsers.LAYOUT_VARIANTS[layout] and all(f in names for f in files):
            return layout
    return None


def _expected_files(variant: str) -> list[tuple[str, ...]]:
    return [
        files
        for layout, files in parsers.LAYOUTS.items()
        if variant in parsers.LAYOUT_VARIANTS[layout]
    ]


def _fetch_tfds(variant: str, work: Path, tfds_dir: Path) -> str:
    """Loads the variant with TensorFlow Datasets and stores it as tfrec ``tables``."""
    import tensorflow_datasets as tfds

    from tfrec.data._tfds import tables_from_tfds

    try:
        ratings = tfds.load(f"movielens/{variant}-ratings", split="train", data_dir=str(tfds_dir))
        movies = tfds.load(f"movielens/{variant}-movies", split="train", data_dir=str(tfds_dir))
    except Exception as error:  # TFDS raises many kinds (network, checksum, builder errors)
        raise FetchError(
            f"TensorFlow Datasets could not load movielens/{variant} into {tfds_dir}: "
            f"{type(error).__name__}: {error}. Fix: retry, or use source='grouplens', "
            "source='pypi' (100k only) or source='local' with path=."
        ) from error
    parsers.save_tables(work, tables_from_tfds(ratings, movies, variant))
    return f"tfds:movielens/{variant} in {tfds_dir}"


def _import_local(variant: str, work: Path, path: Path) -> str:
    """Copies a MovieLens directory or zip already on disk into ``work``."""
    path = path.expanduser().resolve()
    if path.is_file():
        _extract_layout(path, work, variant)
        return str(path)
    if not path.is_dir():
        raise FileNotFoundError(
            f"No such MovieLens directory or zip. Received: path={str(path)!r}. "
            "Fix: pass an existing directory or .zip."
        )
    candidates = [path, path / f"ml-{variant}", *sorted(p for p in path.iterdir() if p.is_dir())]
    for folder in candidates:
        names = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
        layout = _layout_of(names, variant)
        if layout is not None:
            for name in parsers.LAYOUTS[layout] + _OPTIONAL:
                if (folder / name).is_file():
                    shutil.copyfile(folder / name, work / name)
            return str(path)
    raise FileNotFoundError(
        f"No MovieLens {variant} files found in {path} (nor in its sub-directories). "
        f"Fix: point path= at a folder holding one of {_expected_files(variant)}."
    )
