"""Vectorized loading of delimited text files into numpy columns, with exact error locations.

Why this exists: MovieLens files range from 100k to 25M rows, so parsing must stay in numpy's C
reader (``np.loadtxt``), yet a malformed row must still be reported by file, line number, field and
value. The fast path never loops over rows in Python; only when numpy rejects a file (or a later
vectorized check fails) does a diagnostic pass walk the lines to locate the culprit. Bytes numpy
would silently alter (NUL, which numpy strips from the end of strings) or cannot decode are
reported with their line too. Every error is a :class:`~tfrec.data.errors.DataError`.
"""

from __future__ import annotations

import csv
import io
import mmap
import re
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tfrec.data.errors import DataError, EmptyFileError

_ID_WIDTH = 8  # MovieLens ids have <= 6 digits; longer values are detected and re-read exactly
_SUBSTITUTE = "\x1f"  # stands in for multi-character separators such as '::'
# numpy's number syntax: ASCII digits, surrounded by any (Unicode) whitespace.
_NUMBER = r"(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf(?:inity)?|nan)"
_FLOAT = re.compile(rf"\s*[+-]?{_NUMBER}\s*", re.IGNORECASE)
_INT = re.compile(r"\s*[+-]?[0-9]+\s*")
_INT64 = np.iinfo(np.int64)

__all__ = ["DataError", "EmptyFileError", "TextFile", "load_columns", "load_strings", "row_error"]


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
            line = _line_of(text, text.index(_SUBSTITUTE))
            raise DataError(
                f"{self.path} line {line}: contains the control character U+001F, which tfrec "
                f"reserves to split {self.separator!r}-separated files. Fix: remove it."
            )
        return io.StringIO(text.replace(self.separator, _SUBSTITUTE), newline=None)

    def lines(self) -> Iterator[tuple[int, list[str]]]:
        """Yields (1-based line number, fields) for each non-empty data line (diagnostics only).

        Rows are split exactly as numpy's reader splits them: empty lines are skipped, a line
        of blanks is a row, and quoted fields may span lines (numbered by their first line).
        """
        with self.open() as handle:
            if self.quoted:
                reader = csv.reader(handle, delimiter=self.delimiter)
                number = 1
                for fields in reader:
                    start, number = number, reader.line_num + 1
                    if start > self.skiprows and fields:
                        yield start, fields
                return
            for number, line in enumerate(handle, start=1):
                line = line.rstrip("\n")
                if number > self.skiprows and line:
                    yield number, line.split(self.delimiter)


def _line_of(text: str, position: int) -> int:
    return text.count("\n", 0, position) + 1


@contextmanager
def reading(f: TextFile):
    """Turns a decoding failure while reading ``f`` into a DataError naming line and byte."""
    try:
        yield
    except UnicodeDecodeError as error:
        raise encoding_error(f, error) from None


def encoding_error(f: TextFile, error: UnicodeDecodeError) -> DataError:
    """Locates the first byte of ``f`` that is not valid in its encoding (error path only)."""
    with open(f.path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                raw.decode(f.encoding)
            except UnicodeDecodeError as bad:
                snippet = raw[max(0, bad.start - 20) : bad.start + 20]
                return DataError(
                    f"{f.path} line {number}: byte {bad.start + 1} (0x{raw[bad.start]:02x}) is "
                    f"not valid {f.encoding}. Received: bytes={snippet!r}. Fix: save the file as "
                    f"{f.encoding} (e.g. `iconv -f latin1 -t utf-8`), or re-fetch the data."
                )
    return DataError(f"{f.path}: not valid {f.encoding} ({error}). Fix: re-fetch the data.")


def check_text(f: TextFile, *, numeric: bool = False) -> None:
    """Rejects bytes numpy would mishandle, naming the line.

    NUL bytes: numpy silently drops them from the end of strings. With ``numeric`` (files of
    ids and numbers only), characters beyond U+FFFF in a UTF-8 file: they cannot be valid
    there, and numpy 2.4's integer reader can crash the process on some of them (a segfault
    seen on U+20000 and above), so the file never reaches it.
    """
    with open(f.path, "rb") as handle:
        if handle.seek(0, io.SEEK_END) == 0:
            return
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            position, what = data.find(b"\x00"), "a NUL byte (is it UTF-16 or a binary file?)"
            if numeric and position < 0 and f.encoding.replace("-", "").lower() == "utf8":
                position = _first_astral(data)
                what = "a character beyond U+FFFF, impossible in a file of ids and numbers"
            if position < 0:
                return
            prefix = data[:position].replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            start = data.rfind(b"\n", 0, position) + 1
            end = data.find(b"\n", position)
            raw = data[start : end if end >= 0 else len(data)]
    if what.startswith("a character"):
        try:
            raw.decode(f.encoding)
        except UnicodeDecodeError as error:  # not a character at all: say so instead
            raise encoding_error(f, error) from None
    line = prefix.count(b"\n") + 1
    raise DataError(
        f"{f.path} line {line}: contains {what}. Received: line={raw!r} (byte offset "
        f"{position}). Fix: repair or delete that line, or use the original file."
    )


def _first_astral(data, chunk: int = 1 << 26) -> int:
    """Offset of the first UTF-8 lead byte of a 4-byte sequence (code point >= U+10000), or -1."""
    for start in range(0, len(data), chunk):
        block = np.frombuffer(data[start : start + chunk], np.uint8)
        hits = np.flatnonzero((block >= 0xF0) & (block <= 0xF4))  # 0xF5.. are never UTF-8
        if hits.size:
            return start + int(hits[0])
    return -1


def check_header(f: TextFile) -> None:
    """Raises unless the first line of ``f`` is exactly the expected header."""
    if f.header is None:
        return
    with f.open() as handle:
        first = handle.readline().rstrip("\n")
    found = tuple(next(csv.reader([first], delimiter=f.delimiter))) if first else ()
    if found != f.header:
        raise DataError(
            f"{f.path} line 1: unexpected header. Received: header={first!r}. "
            f"Fix: the file must start with {f.separator.join(f.header)!r} (is it the right "
            f"file for this layout?)."
        )


def line_of_row(f: TextFile, row: int) -> tuple[int, list[str]]:
    """Returns the line number and fields of data row ``row`` (error path only: walks the file)."""
    for index, found in enumerate(f.lines()):
        if index == row:
            return found
    return -1, []


def row_error(f: TextFile, row: int, field: str, value: object, fix: str) -> DataError:
    """Builds the standard 'file, line, field, value, fix' error for a bad data row."""
    number, fields = line_of_row(f, row)
    line = f.separator.join(fields)
    shown = f" (line {line!r})" if line and line != str(value) else ""
    return DataError(
        f"{f.path} line {number}: invalid {field}. Received: {field}={value!r}{shown}. Fix: {fix}"
    )


def _numeric_ok(value: str, kind: type) -> bool:
    """Whether numpy reads ``value`` as a finite number of ``kind`` (mirrors its syntax)."""
    if np.issubdtype(kind, np.floating):
        if not _FLOAT.fullmatch(value):
            return False
        number = float(value)
        return bool(np.isfinite(number) and np.isfinite(np.asarray(number).astype(kind)))
    return bool(_INT.fullmatch(value)) and _INT64.min <= int(value) <= _INT64.max


def _diagnose(f: TextFile, fields: Sequence[tuple[str, object]], cause: Exception) -> DataError:
    """Walks ``f`` to find the first row numpy could not parse and describes it."""
    names = [name for name, _ in fields]
    for number, parts in f.lines():
        if len(parts) != len(fields):
            return DataError(
                f"{f.path} line {number}: expected {len(fields)} fields ({', '.join(names)}) "
                f"separated by {f.separator!r}, found {len(parts)}. Received: "
                f"line={f.separator.join(parts)!r}. Fix: repair or delete that line."
            )
        for (name, kind), value in zip(fields, parts, strict=True):
            if kind is not str and not _numeric_ok(value, kind):
                return DataError(
                    f"{f.path} line {number}: field {name} must be a finite number. "
                    f"Received: {name}={value!r}. Fix: repair or delete that line."
                )
    return DataError(f"{f.path}: could not be parsed ({cause}). Fix: check the file format.")


def load_columns(f: TextFile, fields: Sequence[tuple[str, object]]) -> dict[str, np.ndarray]:
    """Reads ``f`` into columns; ``fields`` lists (name, str | numpy scalar type) in file order.

    String columns come back as numpy unicode arrays sized to their longest value; numeric
    columns with the given dtype. Raises DataError naming file, line, field and value on a
    malformed row (wrong field count, non-numeric or non-finite number, undecodable byte).
    """
    check_text(f, numeric=True)
    with reading(f):
        check_header(f)
        dtype = [(name, f"U{_ID_WIDTH}" if kind is str else kind) for name, kind in fields]
        try:
            table = _loadtxt(f, dtype=dtype, ndmin=1)
        except (EmptyFileError, UnicodeDecodeError):
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
        warnings.filterwarnings("ignore", message="Input line .* contained no data")
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
    check_text(f)
    with reading(f):
        check_header(f)
        try:
            table = _load_strings(f)
        except (EmptyFileError, UnicodeDecodeError):
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
    except (ValueError, OverflowError):
        values = None
    if values is not None and np.issubdtype(values.dtype, np.floating):
        if not np.isfinite(values).all():
            values = None
    if values is None:
        for row, value in enumerate(column.tolist()):  # error path only
            if not _numeric_ok(value, dtype):
                raise row_error(f, row, field, value, "use a number in that field.")
        raise DataError(f"{f.path}: field {field} is not numeric. Fix: use numbers only.")
    return values.astype(dtype)


def digit_ids(column: np.ndarray) -> np.ndarray:
    """Mask of values that are non-empty ASCII decimal digit strings (MovieLens ids).

    Vectorized over the characters ([rows, width] code points), no per-row Python work.
    """
    column = np.ascontiguousarray(column)
    width = column.dtype.itemsize // 4
    if column.size == 0 or width == 0:
        return np.zeros(column.shape, bool)
    codes = column.reshape(-1).view(np.uint32).reshape(column.size, width)
    present = codes != 0
    digit = (codes >= ord("0")) & (codes <= ord("9"))
    contiguous = ~(present[:, 1:] & ~present[:, :-1]).any(axis=1)
    return (present[:, 0] & (digit | ~present).all(axis=1) & contiguous).reshape(column.shape)
