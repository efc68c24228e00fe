"""MovieLens files already on disk: finding a layout in folders and zips, fingerprints, import.

Why this exists: the ``local`` source copies a user's directory or zip into the cache, and the
copy must follow the original: a source that changes is re-imported, and one that does not
parse never enters the cache. A :class:`LocalSource` names the files an import reads; its
:meth:`~LocalSource.fingerprint` (size, mtime and SHA-256 of each, plus one digest of them all)
is stored in the entry's manifest and compared on every use. The zip helpers are shared with
the ``grouplens`` source.
"""

from __future__ import annotations

import hashlib
import shutil
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tfrec.data import parsers
from tfrec.data._manifest import file_sha256
from tfrec.data.errors import DataError, DataWarning, FetchError

OPTIONAL = ("users.npz", "README", "README.txt", "README.md")  # copied along when present


def layout_of(names, variant: str) -> str | None:
    """The layout whose files are all among ``names`` and that can hold ``variant``."""
    for layout, files in parsers.LAYOUTS.items():
        if variant in parsers.LAYOUT_VARIANTS[layout] and all(f in names for f in files):
            return layout
    return None


def expected_files(variant: str) -> list[tuple[str, ...]]:
    """The file sets that can hold ``variant`` (for error messages)."""
    return [
        files
        for layout, files in parsers.LAYOUTS.items()
        if variant in parsers.LAYOUT_VARIANTS[layout]
    ]


def extract_layout(archive: Path, work: Path, variant: str, fix: str) -> str:
    """Copies the layout files (and README) of ``variant`` out of a zip into ``work``.

    Returns the folder inside the zip that held them ("" for the top level).
    """
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.namelist() if not m.endswith("/")]
            folders = sorted({m.rsplit("/", 1)[0] if "/" in m else "" for m in members})
            for folder in folders:
                prefix = f"{folder}/" if folder else ""
                names = {m[len(prefix) :] for m in members if m.startswith(prefix)}
                layout = layout_of(names, variant)
                if layout is not None:
                    optional = tuple(n for n in OPTIONAL if n in names)
                    for name in parsers.LAYOUTS[layout] + optional:
                        with zf.open(prefix + name) as src, open(work / name, "wb") as dst:
                            shutil.copyfileobj(src, dst, 1 << 20)
                    return folder
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as error:
        raise FetchError(f"{archive} is not a readable zip ({error}). Fix: {fix}") from error
    raise FetchError(
        f"{archive} holds no MovieLens {variant} files (expected one of "
        f"{expected_files(variant)}). Fix: use the ml-{variant} zip."
    )


@dataclass(frozen=True)
class LocalSource:
    """The directory or zip a local import reads, and exactly which files of it."""

    path: Path  # the resolved directory or zip the caller named
    folder: Path | None  # the folder holding the layout files; None for a zip
    files: tuple[Path, ...]  # the zip, or the layout files (and README) in ``folder``

    def fingerprint(self) -> dict:
        """Size, mtime and SHA-256 of every file read, and one SHA-256 over all of them."""
        files = {}
        for file in self.files:
            info = file.stat()
            name = file.relative_to(self.path).as_posix() if self.folder else file.name
            files[name] = {
                "size": info.st_size,
                "mtime_ns": info.st_mtime_ns,
                "sha256": file_sha256(file),
            }
        digest = hashlib.sha256()
        for name, info in sorted(files.items()):
            digest.update(f"{name}\0{info['size']}\0{info['sha256']}\n".encode())
        return {"sha256": digest.hexdigest(), "files": files}


def locate_local(variant: str, path: str | Path) -> LocalSource:
    """Finds the ``variant`` files in a zip, a directory, its ``ml-<variant>/`` or a sub-folder."""
    path = Path(path).expanduser().resolve()
    if path.is_file():
        return LocalSource(path, None, (path,))
    if not path.is_dir():
        raise FileNotFoundError(
            f"No such MovieLens directory or zip. Received: path={str(path)!r}. "
            "Fix: pass an existing directory or .zip."
        )
    candidates = [path, path / f"ml-{variant}", *sorted(p for p in path.iterdir() if p.is_dir())]
    for folder in candidates:
        names = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
        layout = layout_of(names, variant)
        if layout is not None:
            wanted = parsers.LAYOUTS[layout] + OPTIONAL
            files = tuple(folder / n for n in wanted if (folder / n).is_file())
            return LocalSource(path, folder, files)
    raise FileNotFoundError(
        f"No MovieLens {variant} files found in {path} (nor in its sub-directories). "
        f"Fix: point path= at a folder holding one of {expected_files(variant)}."
    )


def import_local(variant: str, work: Path, source: LocalSource) -> str:
    """Copies ``source`` into ``work`` and parses the copy; returns the origin (its path).

    A copy that does not parse or validate raises a DataError naming the *original* file, so
    nothing broken is cached and the message points at what to repair.
    """
    if source.folder is None:
        fix = "pass a valid MovieLens zip, or the folder it was extracted to."
        inner = extract_layout(source.path, work, variant, fix)
        shown = f"{source.path}:{inner}" if inner else f"{source.path}:"
    else:
        for file in source.files:
            shutil.copyfile(file, work / file.name)
        shown = str(source.folder)
    from tfrec.data.movielens import from_tables  # movielens imports sources, which imports us

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)  # reported again when loaded
            from_tables(parsers.parse_directory(work), variant, "local")
    except ValueError as error:
        message = str(error).replace(str(work), shown)
        if shown not in message:
            message = f"{source.path}: {message}"
        kind = type(error) if isinstance(error, DataError) else DataError
        raise kind(f"{message} (nothing was imported)") from error
    return str(source.path)
