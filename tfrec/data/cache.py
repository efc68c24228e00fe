"""Full verification of the MovieLens cache: every file of every entry, re-hashed.

Why this exists: loads check each cached file against its manifest, but files larger than
64 MiB (the 20m / 25m ratings) are hashed once per process and then trusted while their size and
mtime stay put. :func:`verify_cache` (the ``tfrec data verify`` command) re-reads everything,
reports what it checked, and for local imports whether the original has changed since.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from tfrec.data import schema
from tfrec.data._local import locate_local
from tfrec.data._manifest import FileProblem, check_entry, describe_problems, load_manifest
from tfrec.data.errors import CacheCorruptError
from tfrec.data.sources import SOURCES, cache_root, describe_origin, entry_dir


@dataclass(frozen=True)
class CacheReport:
    """What :func:`verify_cache` found in one cache entry.

    ``origin_status`` is "" for remote sources; for ``local`` entries "unchanged", "changed"
    (re-imported on next load) or "missing" (the cached copy is the only one left).
    """

    variant: str
    source: str
    directory: Path
    origin: str
    num_files: int
    num_bytes: int
    seconds: float
    problems: tuple[FileProblem, ...] = field(default=())
    origin_status: str = ""
    fix: str = ""  # how to repair the entry when it has problems

    @property
    def ok(self) -> bool:
        """True when every file matches its manifest."""
        return not self.problems

    def __str__(self) -> str:
        state = "OK" if self.ok else f"CORRUPT ({len(self.problems)} files)"
        text = (
            f"movielens/{self.variant}/{self.source}: {state}, {self.num_files} files, "
            f"{self.num_bytes:,} bytes hashed in {self.seconds:.2f} s, from {self.origin}"
        )
        if self.origin_status:
            text += f"; origin {self.origin_status}"
        return text + "".join(f"\n  {problem}" for problem in self.problems)


def verify_cache(
    variant: str | None = None, source: str | None = None, data_dir: str | Path | None = None
) -> list[CacheReport]:
    """Re-hashes every file of the matching cache entries and returns one report per entry.

    ``variant`` / ``source`` None (or source "auto") mean all. Raises FileNotFoundError when no
    entry matches, and :class:`~tfrec.data.errors.CacheCorruptError` (listing every bad file with
    expected and actual size / SHA-256, and the fix) when any entry fails.
    """
    variants = schema.VARIANTS if variant is None else (schema.check_variant(variant),)
    if source not in (None, *SOURCES):
        raise ValueError(
            f"Unknown MovieLens source. Received: source={source!r}. "
            f"Fix: use one of {', '.join(SOURCES)}."
        )
    sources = SOURCES[1:] if source in (None, "auto") else (source,)
    reports = []
    for name in variants:
        for kind in sources:
            directory = entry_dir(name, kind, data_dir)
            manifest = load_manifest(directory)
            if manifest is not None:
                reports.append(_verify_entry(name, kind, directory, manifest))
    if not reports:
        raise FileNotFoundError(
            f"No MovieLens cache entries to verify in {cache_root(data_dir) / 'movielens'}. "
            f"Received: variant={variant!r}, source={source!r}. Fix: fetch first "
            "(`tfrec data fetch --variant ...`), or pass the right data_dir."
        )
    bad = [report for report in reports if not report.ok]
    if bad:
        message = "\n".join(
            f"{describe_problems(r.directory, list(r.problems))}. Fix: {r.fix}." for r in bad
        )
        raise CacheCorruptError(message, tuple(str(p) for r in bad for p in r.problems))
    return reports


def _verify_entry(variant: str, source: str, directory: Path, manifest: dict) -> CacheReport:
    start = time.perf_counter()
    problems = tuple(check_entry(directory, manifest, full=True))
    status = _origin_status(variant, manifest) if source == "local" else ""
    origin = str(manifest.get("origin", ""))
    if status == "missing":
        fix = (
            f"delete {directory} and import a good copy again with `tfrec data fetch --variant "
            f"{variant} --source local --path DIR_OR_ZIP`"
        )
    else:
        path = f" --path {origin}" if source == "local" else ""
        fix = (
            f"run `tfrec data fetch --variant {variant} --source {source}{path}`, which fetches "
            f"it again (or delete {directory})"
        )
    return CacheReport(
        variant=variant,
        source=source,
        directory=directory,
        origin=describe_origin(manifest),
        num_files=len(manifest["files"]),
        num_bytes=sum(int(info["size"]) for info in manifest["files"].values()),
        seconds=time.perf_counter() - start,
        problems=problems,
        origin_status=status,
        fix=fix,
    )


def _origin_status(variant: str, manifest: dict) -> str:
    origin = str(manifest.get("origin", ""))
    try:
        current = locate_local(variant, origin).fingerprint() if origin else None
    except FileNotFoundError:
        current = None
    if current is None:
        return "missing"
    recorded = (manifest.get("origin_fingerprint") or {}).get("sha256")
    return "unchanged" if current["sha256"] == recorded else "changed (re-imported on next load)"
