"""Parsers for every MovieLens file layout, producing numpy column tables in TFDS's meanings.

Why this exists: the same MovieLens variant reaches tfrec in several layouts (GroupLens's
``u.data``/``ratings.dat``/``ratings.csv`` files, RecBole's atomic files, tables converted from
TFDS) and each must yield identical columns. A *table* is a ``dict[str, np.ndarray]`` of equal-
length columns; strings are numpy unicode arrays. Parsing is vectorized (numpy's C reader plus
array operations) so the 25M-row files load without per-row Python work.

Layouts (``detect_layout`` picks one from the file names in a directory):

================  =================================================  ==========================
layout            files                                              variants
================  =================================================  ==========================
grouplens-100k    u.data (tab), u.item, u.user ('|', latin-1)         100k
grouplens-1m      ratings.dat, movies.dat, users.dat ('::', latin-1)  1m
grouplens-csv     ratings.csv, movies.csv (header, quoted, utf-8)     20m, 25m, latest-small
recbole-100k      ml-100k.inter, ml-100k.item, ml-100k.user (tab)     100k
tables            ratings.npz, movies.npz [, users.npz]               any (tfrec's own format)
================  =================================================  ==========================
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

from tfrec.data import schema
from tfrec.data._textio import (
    DataError,
    TextFile,
    digit_ids,
    load_columns,
    load_strings,
    row_error,
    to_numbers,
)

Table = dict[str, np.ndarray]


class Tables(NamedTuple):
    """Parsed MovieLens tables: ratings (file order), movies and users (None if absent)."""

    ratings: Table
    movies: Table
    users: Table | None


LAYOUTS = {
    "grouplens-100k": ("u.data", "u.item", "u.user"),
    "grouplens-1m": ("ratings.dat", "movies.dat", "users.dat"),
    "grouplens-csv": ("ratings.csv", "movies.csv"),
    "recbole-100k": ("ml-100k.inter", "ml-100k.item", "ml-100k.user"),
    "tables": ("ratings.npz", "movies.npz"),
}
"""Layout name -> the files that identify it (and that the parser reads)."""

LAYOUT_VARIANTS = {
    "grouplens-100k": ("100k",),
    "grouplens-1m": ("1m",),
    "grouplens-csv": ("20m", "25m", "latest-small"),
    "recbole-100k": ("100k",),
    "tables": schema.VARIANTS,
}
"""Layout name -> the variants it can hold."""

_RATING_FIELDS = (
    ("user_id", str),
    ("movie_id", str),
    ("user_rating", np.float32),
    ("timestamp", np.int64),
)
_GENRE_IDS = {name: i for i, name in enumerate(schema.GENRE_NAMES)}
_GENRE_IDS.update({alias: _GENRE_IDS[name] for alias, name in schema.GENRE_ALIASES.items()})
_RECBOLE_UNKNOWN = "unkonwn"  # RecBole's (misspelled) placeholder for movie 267's title and year


def detect_layout(directory: str | Path) -> str:
    """Returns the layout name of the MovieLens files in ``directory`` (see module docstring)."""
    directory = Path(directory)
    for layout, files in LAYOUTS.items():
        if all((directory / name).is_file() for name in files):
            return layout
    expected = "; ".join(f"{layout}: {', '.join(files)}" for layout, files in LAYOUTS.items())
    found = sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []
    raise FileNotFoundError(
        f"No MovieLens layout recognised in {directory}. Received: files={found}. "
        f"Fix: point at a directory holding one of these file sets ({expected})."
    )


def parse_directory(directory: str | Path, layout: str | None = None) -> Tables:
    """Parses the MovieLens files in ``directory`` (layout auto-detected unless given)."""
    directory = Path(directory)
    layout = layout or detect_layout(directory)
    parsers = {
        "grouplens-100k": parse_100k,
        "grouplens-1m": parse_1m,
        "grouplens-csv": parse_csv,
        "recbole-100k": parse_recbole_100k,
        "tables": load_tables,
    }
    if layout not in parsers:
        raise ValueError(f"Unknown layout. Received: layout={layout!r}. Fix: use one of {parsers}.")
    return parsers[layout](directory)


def parse_100k(directory: str | Path) -> Tables:
    """Parses GroupLens ml-100k (``u.data``, ``u.item``, ``u.user``)."""
    directory = Path(directory)
    ratings = _load_ratings(TextFile(directory / "u.data", "\t", "latin-1"), "100k")
    item = TextFile(directory / "u.item", "|", "latin-1")
    names = ["movie_id", "movie_title", "release_date", "video_release_date", "imdb_url"]
    raw = load_strings(item, names + [f"genre_{g}" for g in schema.GENRES_100K_FLAGS])
    flags = raw[:, 5:]
    bad = (flags != "0") & (flags != "1")
    if bad.any():
        row, col = np.argwhere(bad)[0]
        field = f"genre flag {schema.GENRES_100K_FLAGS[col]}"
        raise row_error(item, int(row), field, str(flags[row, col]), "flags must be 0 or 1.")
    on = flags == "1"
    label_of_flag = np.array([_GENRE_IDS[g] for g in schema.GENRES_100K_FLAGS], np.int64)
    genres = pad_lists(np.broadcast_to(label_of_flag, on.shape)[on], on.sum(axis=1))
    movies = {"movie_id": raw[:, 0], "movie_title": raw[:, 1], "movie_genres": genres}
    users = _users_100k(TextFile(directory / "u.user", "|", "latin-1"))
    return Tables(ratings, _unique_ids(item, movies, "movie_id"), users)


def parse_1m(directory: str | Path) -> Tables:
    """Parses GroupLens ml-1m (``ratings.dat``, ``movies.dat``, ``users.dat``)."""
    directory = Path(directory)
    ratings = _load_ratings(TextFile(directory / "ratings.dat", "::", "latin-1"), "1m")
    movie_file = TextFile(directory / "movies.dat", "::", "latin-1")
    raw = load_strings(movie_file, ["movie_id", "movie_title", "movie_genres"])
    movies = {
        "movie_id": raw[:, 0],
        "movie_title": raw[:, 1],
        "movie_genres": genre_matrix(raw[:, 2], "|", movie_file),
    }
    user_file = TextFile(directory / "users.dat", "::", "latin-1")
    raw = load_strings(user_file, ["user_id", "gender", "age", "occupation", "zip_code"])
    age = to_numbers(user_file, raw[:, 2], "age", np.int64)
    bad = ~np.isin(age, schema.AGE_BUCKETS_1M)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        fix = f"1m ages are bucket codes, one of {schema.AGE_BUCKETS_1M}."
        raise row_error(user_file, row, "age", str(raw[row, 2]), fix)
    code = to_numbers(user_file, raw[:, 3], "occupation", np.int64)
    bad = (code < 0) | (code >= len(schema.OCCUPATIONS_1M))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        fix = f"1m occupations are codes 0..{len(schema.OCCUPATIONS_1M) - 1}."
        raise row_error(user_file, row, "occupation", str(raw[row, 3]), fix)
    texts = np.array(schema.OCCUPATIONS_1M)[code]
    label_names = ["student" if t in schema.STUDENTS_1M else t for t in schema.OCCUPATIONS_1M]
    labels = np.array([schema.OCCUPATION_NAMES.index(n) for n in label_names], np.int64)[code]
    users = {
        "user_id": raw[:, 0],
        "user_gender": _gender(user_file, raw[:, 1]),
        "bucketized_user_age": age.astype(np.float32),
        "user_occupation_label": labels,
        "user_occupation_text": texts,
        "user_zip_code": raw[:, 4],
    }
    return Tables(
        ratings,
        _unique_ids(movie_file, movies, "movie_id"),
        _unique_ids(user_file, users, "user_id"),
    )


def parse_csv(directory: str | Path) -> Tables:
    """Parses GroupLens 20m / 25m / latest-small (``ratings.csv``, ``movies.csv``)."""
    directory = Path(directory)
    header = ("userId", "movieId", "rating", "timestamp")
    ratings_file = TextFile(directory / "ratings.csv", ",", header=header)
    ratings = _load_ratings(ratings_file, "20m", name="MovieLens 20m / 25m / latest-small")
    header = ("movieId", "title", "genres")
    movie_file = TextFile(directory / "movies.csv", ",", header=header, quoted=True)
    raw = load_strings(movie_file, ["movie_id", "movie_title", "movie_genres"])
    movies = {
        "movie_id": raw[:, 0],
        "movie_title": raw[:, 1],
        "movie_genres": genre_matrix(raw[:, 2], "|", movie_file),
    }
    return Tables(ratings, _unique_ids(movie_file, movies, "movie_id"), None)


def parse_recbole_100k(directory: str | Path) -> Tables:
    """Parses RecBole's atomic ml-100k files (as shipped in the ``recbole`` wheel).

    Differences from GroupLens's files that this rebuilds: titles are split into
    ``movie_title`` + ``release_year`` (rejoined here as ``"<title> (<year>)"``, which restores
    e.g. ``"... (1995) (V)"`` for movie 1412); movie 267's title and year are RecBole's
    placeholder ``"unkonwn"`` (GroupLens: title ``"unknown"``, restored here); genres are
    space-separated names (``Children's``/``unknown`` folded onto TFDS's labels); the files are
    UTF-8 where GroupLens's are latin-1 (same characters); timestamps are declared float.
    """
    directory = Path(directory)
    header = ("user_id:token", "item_id:token", "rating:float", "timestamp:float")
    inter = TextFile(directory / "ml-100k.inter", "\t", header=header)
    fields = _RATING_FIELDS[:3] + (("timestamp", np.float64),)
    ratings = _load_ratings(inter, "100k", fields)
    stamp = ratings["timestamp"]
    bad = (stamp != np.floor(stamp)) | (np.abs(stamp) > 2.0**62)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise row_error(inter, row, "timestamp", str(stamp[row]), "use whole seconds.")
    ratings["timestamp"] = stamp.astype(np.int64)
    header = ("item_id:token", "movie_title:token_seq", "release_year:token", "class:token_seq")
    item = TextFile(directory / "ml-100k.item", "\t", header=header)
    raw = load_strings(item, ["movie_id", "movie_title", "release_year", "class"])
    title, year = raw[:, 1], raw[:, 2]
    placeholder = (title == _RECBOLE_UNKNOWN) & (year == _RECBOLE_UNKNOWN)
    rebuilt = np.strings.add(np.strings.add(np.strings.add(title, " ("), year), ")")
    title = np.where(placeholder, "unknown", np.where(year == "", title, rebuilt))
    movies = {
        "movie_id": raw[:, 0],
        "movie_title": title,
        "movie_genres": genre_matrix(raw[:, 3], " ", item),
    }
    header = ("user_id:token", "age:token", "gender:token", "occupation:token", "zip_code:token")
    users = _users_100k(TextFile(directory / "ml-100k.user", "\t", header=header))
    return Tables(ratings, _unique_ids(item, movies, "movie_id"), users)


def _load_ratings(f: TextFile, variant: str, fields=_RATING_FIELDS, name=None) -> Table:
    """Reads a ratings file and checks its ids (decimal digits) and ``variant``'s rating scale."""
    ratings = load_columns(f, fields)
    for key in ("user_id", "movie_id"):
        _check_ids(f, ratings[key], key)
    bad = schema.invalid_ratings(ratings["user_rating"], variant)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        value = schema.plain_number(ratings["user_rating"][row])
        fix = f"{schema.rating_rule(variant, name)}; repair or delete that line, or re-fetch."
        raise row_error(f, row, "user_rating", value, fix)
    return ratings


def _check_ids(f: TextFile, ids: np.ndarray, key: str) -> None:
    bad = ~digit_ids(ids)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        fix = f"MovieLens {key} values are decimal digits only; repair or delete that line."
        raise row_error(f, row, key, str(ids[row]), fix)


def _users_100k(f: TextFile) -> Table:
    raw = load_strings(f, ["user_id", "age", "gender", "occupation", "zip_code"])
    age = to_numbers(f, raw[:, 1], "age", np.float32)
    occupations, inverse = np.unique(raw[:, 3], return_inverse=True)
    labels = []
    for position, text in enumerate(occupations.tolist()):  # one step per distinct occupation
        if text not in schema.OCCUPATION_100K_TO_LABEL:
            row = int(np.flatnonzero(inverse == position)[0])
            fix = f"use one of {sorted(schema.OCCUPATION_100K_TO_LABEL)}."
            raise row_error(f, row, "occupation", text, fix)
        labels.append(schema.OCCUPATION_NAMES.index(schema.OCCUPATION_100K_TO_LABEL[text]))
    users = {
        "user_id": raw[:, 0],
        "user_gender": _gender(f, raw[:, 2]),
        "bucketized_user_age": schema.bucketize_age(age),
        "user_occupation_label": np.array(labels, np.int64)[inverse].reshape(-1),
        "user_occupation_text": raw[:, 3],
        "user_zip_code": raw[:, 4],
        "raw_user_age": age,
    }
    return _unique_ids(f, users, "user_id")


def _gender(f: TextFile, column: np.ndarray) -> np.ndarray:
    bad = (column != "M") & (column != "F")
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise row_error(f, row, "gender", str(column[row]), "use M or F.")
    return column == "M"


def _unique_ids(f: TextFile, table: Table, key: str) -> Table:
    ids = table[key]
    _check_ids(f, ids, key)
    order = np.argsort(ids, kind="stable")
    repeated = ids[order][1:] == ids[order][:-1]
    if repeated.any():
        row = int(order[1:][repeated].min())
        raise row_error(f, row, key, str(ids[row]), f"each {key} may appear only once.")
    return {name: _compact(column) for name, column in table.items()}


def _compact(column: np.ndarray) -> np.ndarray:
    """Copies a column contiguously; unicode columns shrink to their longest value."""
    if column.dtype.kind == "U":
        return column.astype(f"U{max(1, int(np.strings.str_len(column).max(initial=0)))}")
    return np.ascontiguousarray(column)


def genre_matrix(genres: np.ndarray, separator: str, f: TextFile) -> np.ndarray:
    """Turns genre strings ("Action|Comedy") into TFDS label ids, an int64 [M, G] padded by -1."""
    lengths = np.where(genres == "", 0, np.strings.count(genres, separator) + 1)
    if not lengths.any():  # ("".split gives [""], not [])
        return pad_lists(np.zeros(0, np.int64), lengths)
    names = np.array(separator.join(genres[lengths > 0].tolist()).split(separator))
    distinct, inverse = np.unique(names, return_inverse=True)
    ids = np.array([_GENRE_IDS.get(name, -1) for name in distinct.tolist()], np.int64)
    if (ids < 0).any():
        bad = int(np.flatnonzero(ids < 0)[0])
        position = int(np.flatnonzero(inverse == bad)[0])
        row = int(np.searchsorted(np.cumsum(lengths), position, side="right"))
        fix = f"genres must be among {list(schema.GENRE_NAMES)} (or {list(schema.GENRE_ALIASES)})."
        raise row_error(f, row, "genre", str(distinct[bad]), fix)
    return pad_lists(ids[inverse.reshape(-1)], lengths)


def pad_lists(values: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Packs concatenated lists (``values`` split by ``lengths``) into a [M, G>=1] -1-padded array."""
    lengths = np.asarray(lengths, np.int64)
    width = max(1, int(lengths.max(initial=0)))
    out = np.full((lengths.size, width), -1, np.int64)
    rows = np.repeat(np.arange(lengths.size), lengths)
    starts = np.cumsum(lengths) - lengths
    cols = np.arange(rows.size) - np.repeat(starts, lengths)
    out[rows, cols] = values
    return out


def save_tables(directory: str | Path, tables: Tables) -> list[str]:
    """Writes ``tables`` as tfrec's ``tables`` layout (npz files); returns the file names.

    Each file is written under a temporary name and renamed, so no half-written file appears.
    """
    directory = Path(directory)
    written = []
    for name, table in zip(("ratings", "movies", "users"), tables, strict=True):
        if table is not None:
            temp = directory / f".{name}.npz.part"
            with open(temp, "wb") as handle:
                np.savez(handle, **table)
            os.replace(temp, directory / f"{name}.npz")
            written.append(f"{name}.npz")
    return written


def load_tables(directory: str | Path) -> Tables:
    """Reads tfrec's ``tables`` layout written by :func:`save_tables`."""
    directory = Path(directory)
    loaded = []
    for name in ("ratings", "movies", "users"):
        path = directory / f"{name}.npz"
        if name == "users" and not path.exists():
            loaded.append(None)
            continue
        try:
            with np.load(path, allow_pickle=False) as archive:
                loaded.append({key: archive[key] for key in archive.files})
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as error:
            raise DataError(
                f"{path}: not a readable tfrec table ({type(error).__name__}: {error}). "
                "Fix: re-fetch the data (delete the folder and fetch again)."
            ) from error
    return Tables(*loaded)
