"""The error and warning types of ``tfrec.data``, so callers (and the CLI) can tell them apart.

Why this exists: a bad data file, a failed download and a corrupt cache need different answers
(repair the file; retry or pick another source; re-fetch or delete the entry). Each gets its own
type, and every message says what failed, where (file, line, field, value) and the fix.

* :class:`DataError` (a ``ValueError``): a data file or table is malformed.
* :class:`FetchError` (a ``RuntimeError``): fetching or verifying a source failed.
* :class:`CacheCorruptError` (a :class:`FetchError`): a cache entry no longer matches its
  manifest and could not be repaired automatically.
* :class:`DataWarning` (a ``UserWarning``): tfrec changed what it loaded (dropped duplicated
  ratings, re-fetched a corrupt entry, re-imported a changed local source) and says so.
"""

from __future__ import annotations


class DataError(ValueError):
    """A data file or table is malformed; the message names file, line, field, value and fix."""


class EmptyFileError(DataError):
    """A data file holds no rows (a truncated or placeholder copy)."""


class FetchError(RuntimeError):
    """A dataset could not be fetched or verified; the message says what happened and the fix."""


class CacheCorruptError(FetchError):
    """A cache entry failed verification and cannot be re-fetched automatically.

    ``problems`` lists one line per bad file (name, expected and actual size or sha256).
    """

    def __init__(self, message: str, problems: tuple[str, ...] = ()):
        super().__init__(message)
        self.problems = tuple(problems)


class DataWarning(UserWarning):
    """tfrec changed what it loaded (deduplicated, re-fetched, re-imported) and says how."""
