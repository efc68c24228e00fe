"""Vectorized loading of delimited text files into numpy columns, with exact error locations.

Why this exists: MovieLens files range from 100k to 25M rows, so parsing must stay in numpy's C
reader (``np.loadtxt``), yet a malformed row must still be reported by file, line number, field and
value. The fast path never loops over rows in Python; only when numpy rejects a file (or a later
vectorized check fails) does a diagnostic pass walk the lines to locate the culprit.
"""

from __future__ import annotations

import csv
import io
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_ID_WIDTH = 8  # MovieLens ids have <= 6 digits; longer values are detected and re-read exactly
_SUBSTITUTE = "\x1f"  # stands in for multi-character separators such as '::'


class EmptyFileError(ValueError):
    """Raised when a data file holds no rows (a truncated or placeholder copy)."""


@dataclass(frozen=True)
class TextFile:
    """A delimited text file and how to read it (separator, encoding, header, quoting)."""

    path: Path
    separator: str
    encoding: str = "utf-8"
    header: tuple[str, ...] | None = None
    quoted: bool = False

    @property
    def delimiter(self) -> str:
        """The single-character delimiter numpy sees (multi-char separators are substituted)."""
        return self.separator if len(self.separator) == 1 else _SUBSTITUTE

    @property
    def skiprows(self) -> int:
        """Number of header lines before the data."""
        return 1 if self.header is not None else 0

    def open(self) -> io.TextIOBase:
        """Opens the file as text whose delimiter is ``self.delimiter``."""
        if len(self.separator) == 1:
            return open(self.path, encoding=self.encoding, newline=None)
        text = self.path.read_text(encoding=self.encoding)
        if _SUBSTITUTE in text:
            raise ValueError(
                f"{self.path}: contains the control character U+001F, which tfrec reserves to "
                f"split {self.separator!r}-separated files. Fix: remove it from the file."
            )
        return io.StringIO(text.replace(self.separator, _SUBSTITUTE))

    def lines(self) -> Iterator[tuple[int, list[str]]]:
        """Yields (1-based line number, fields) for each non-blank data line (diagnostics only)."""
        with self.open() as handle:
            for number, line in enumerate(handle, start=1):
                if number <= self.skiprows or not line.strip():
                    continue
                line = line.rstrip("\r\n")
                if self.quoted:
                    fields = next(csv.reader([line], delimiter=self.delimiter))
                else:
                    fields = line.split(self.delimiter)
                yield number, fields


def check_header(f: TextFile) -> None:
    """Raises unless the first line of ``f`` is exactly the expected header."""
    if f.header is None:
        return
    with f.open() as handle:
        first = handle.readline().rstrip("\r\n")
    found = tuple(next(csv.reader([first], delimiter=f.delimiter))) if first else ()
    if found != f.header:
        raise ValueError(
            f"{f.path} line 1: unexpected header. Received: header={first!r}. "
            f"Fix: the file must start with {f.separator.join(f.header)!r} (is it the right "
            f"file for this layout?)."
        )


def line_number(f: TextFile, row: int) -> int:
    """Returns the line number of data row ``row`` (error path only: walks the file)."""
    for index, (number, _) in enumerate(f.lines()):
        if index == row:
            return number
    return -1


def row_error(f: TextFile, row: int, field: str, value: object, fix: str) -> ValueError:
    """Builds the standard 'file, line, field, value, fix' error for a bad data row."""
    return ValueError(
        f"{f.path} line {line_number(f, row)}: invalid {field}. Received: {field}={value!r}. "
        f"Fix: {fix}"
    )


def _numeric_ok(value: str, kind: type) -> bool:
    try:
        parsed = float(value) if np.issubdtype(kind, np.floating) else int(value)
    except ValueError:
        return False
    return bool(np.isfinite(parsed))


def _diagnose(f: TextFile, fields: Sequence[tuple[str, object]], cause: Exception) -> ValueError:
    """Walks ``f`` to find the first row numpy could not parse and describes it."""
    names = [name for name, _ in fields]
    for number, parts in f.lines():
        if len(parts) != len(fields):
            return ValueError(
                f"{f.path} line {number}: expected {len(fields)} fields ({', '.join(names)}) "
                f"separated by {f.separator!r}, found {len(parts)}. Received: "
                f"line={f.separator.join(parts)!r}. Fix: repair or delete that line."
            )
        for (name, kind), value in zip(fields, parts, strict=True):
            if kind is not str and not _numeric_ok(value, kind):
                return ValueError(
                    f"{f.path} line {number}: field {name} must be a finite number. "
                    f"Received: {name}={value!r}. Fix: repair or delete that line."
                )
    return ValueError(f"{f.path}: could not be parsed ({cause}). Fix: check the file format.")


def load_columns(f: TextFile, fields: Sequence[tuple[str, object]]) -> dict[str, np.ndarray]:
    """Reads ``f`` into columns; ``fields`` lists (name, str | numpy scalar type) in file order.

    String columns come back as numpy unicode arrays sized to their longest value; numeric
    columns with the given dtype. Raises ValueError naming file, line, field and value on a
    malformed row (wrong field count, non-numeric or non-finite number).
    """
    check_header(f)
    dtype = [(name, f"U{_ID_WIDTH}" if kind is str else kind) for name, kind in fields]
    try:
        table = _loadtxt(f, dtype=dtype, ndmin=1)
    except EmptyFileError:
        raise
    except ValueError as error:
        raise _diagnose(f, fields, error) from error
    columns = {}
    for position, (name, kind) in enumerate(fields):
        column = table[name]
        if kind is str:
            longest = int(np.strings.str_len(column).max(initial=0))
            if longest >= _ID_WIDTH:  # possibly truncated: re-read this column exactly
                column = _load_strings(f, usecols=position)
                longest = int(np.strings.str_len(column).max(initial=0))
            column = column.astype(f"U{max(longest, 1)}")
        else:
            bad = ~np.isfinite(column) if np.issubdtype(kind, np.floating) else None
            if bad is not None and bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise row_error(f, row, name, str(column[row]), "use finite numbers only.")
            column = np.ascontiguousarray(column)
        columns[name] = column
    return columns


def _loadtxt(f: TextFile, **kwargs) -> np.ndarray:
    with f.open() as handle, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="loadtxt: input contained no data")
        table = np.loadtxt(
            handle,
            delimiter=f.delimiter,
            skiprows=f.skiprows,
            comments=None,
            quotechar='"' if f.quoted else None,
            **kwargs,
        )
    if table.shape[0] == 0:
        raise EmptyFileError(
            f"{f.path}: contains no data rows. Fix: use a complete copy of the file."
        )
    return table


def _load_strings(f: TextFile, usecols: int | None = None) -> np.ndarray:
    return _loadtxt(f, dtype=str, usecols=usecols, ndmin=1 if usecols is not None else 2)


def load_strings(f: TextFile, names: Sequence[str]) -> np.ndarray:
    """Reads a small file entirely as strings: a [rows, len(names)] unicode array."""
    check_header(f)
    try:
        table = _load_strings(f)
    except EmptyFileError:
        raise
    except ValueError as error:
        raise _diagnose(f, [(name, str) for name in names], error) from error
    if table.shape[1] != len(names):
        raise _diagnose(f, [(name, str) for name in names], ValueError("field count"))
    return table.reshape(-1, len(names))


def to_numbers(f: TextFile, column: np.ndarray, field: str, dtype: type) -> np.ndarray:
    """Converts a string column to ``dtype``, naming the first bad row if any value is not one."""
    try:
        values = column.astype(np.float64 if np.issubdtype(dtype, np.floating) else np.int64)
    except ValueError:
        values = None
    if values is not None and np.issubdtype(values.dtype, np.floating):
        if not np.isfinite(values).all():
            values = None
    if values is None:
        for row, value in enumerate(column.tolist()):  # error path only
            if not _numeric_ok(value, dtype):
                raise row_error(f, row, field, value, "use a number in that field.")
        raise ValueError(f"{f.path}: field {field} is not numeric.")
    return values.astype(dtype)
