"""Property tests (Hypothesis) of the MovieLens parsers and the duplicate policy.

Generated files in every text layout (GroupLens u.data / ratings.dat / ratings.csv, RecBole
atomic) must parse to exactly the generated tables; corrupted ones (bad separators, missing
columns, non-numeric ids, out-of-range ratings, truncation, random bytes) must either parse to
what a small reference reader of the format spec says, or raise ``DataError`` naming the file,
never another exception type and never a silently different table. Examples are derandomized
(the same in every run) and few, so the file runs in seconds; set TFREC_PROPERTY_EXAMPLES (e.g.
2000) for a deeper search.
"""

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 before TensorFlow loads)
import csv
import io
import os
import re
import tempfile
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tfrec.data import DataError, deduplicate_ratings, leave_one_out, parsers, random_split, schema

PROPERTIES = settings(
    derandomize=True,  # the same examples in every run: deterministic CI
    database=None,
    max_examples=int(os.environ.get("TFREC_PROPERTY_EXAMPLES", 50)),
    deadline=timedelta(seconds=5),  # a parse of these tiny files takes milliseconds
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
LAYOUTS = ("grouplens-100k", "grouplens-1m", "grouplens-csv", "recbole-100k")
RATINGS_FILE = {
    "grouplens-100k": ("u.data", "\t", "latin-1", None),
    "grouplens-1m": ("ratings.dat", "::", "latin-1", None),
    "grouplens-csv": ("ratings.csv", ",", "utf-8", "userId,movieId,rating,timestamp"),
    "recbole-100k": (
        "ml-100k.inter",
        "\t",
        "utf-8",
        "user_id:token\titem_id:token\trating:float\ttimestamp:float",
    ),
}
VARIANT = {"grouplens-100k": "100k", "grouplens-1m": "1m", "grouplens-csv": "20m"}
VARIANT["recbole-100k"] = "100k"
GENRES = ["Action", "Comedy", "Drama", "Film-Noir", "Sci-Fi", "War"]
OCCUPATIONS = sorted(schema.OCCUPATION_100K_TO_LABEL)


def chars(top: int = 0x10FFFF, exclude: str = "") -> st.SearchStrategy:
    """Single characters up to code point ``top`` (no surrogates), awkward ones often.

    Built from integers rather than ``st.characters`` so no Unicode table is computed (that
    costs ~15 s on a fresh checkout).
    """
    awkward = st.sampled_from(
        list("aZ09 ,;:|\t\"'()-.é\xa0\x85\x0b\x0c\u2028€😀\U00020000\U0010ffff")
    )
    anything = st.integers(1, top).filter(lambda c: not 0xD800 <= c <= 0xDFFF).map(chr)
    return (awkward | anything).filter(lambda c: ord(c) <= top and c not in exclude)


def _stars(layout):
    low, high, step = schema.RATING_SCALES[VARIANT[layout]]
    return st.sampled_from(list(np.arange(low, high + step / 2, step)))


@st.composite
def datasets(draw, layout):
    """Rows (user, movie, rating, timestamp) plus the movies and users they reference."""
    users = draw(st.lists(st.integers(1, 999), min_size=1, max_size=6, unique=True))
    movies = draw(st.lists(st.integers(1, 99_999_999), min_size=1, max_size=6, unique=True))
    row = st.tuples(
        st.sampled_from(users), st.sampled_from(movies), _stars(layout), st.integers(0, 2**31)
    )
    rows = draw(st.lists(row, min_size=1, max_size=12))
    banned = {"grouplens-100k": "|", "grouplens-1m": ":", "recbole-100k": "\t"}.get(layout, "")
    top = 0xFF if layout in ("grouplens-100k", "grouplens-1m") else 0x10FFFF  # latin-1 files
    letters = chars(top, exclude="\n\r\x00\x1f\x1e\x1c\x1d" + banned)
    titles = draw(
        st.lists(st.text(letters, max_size=12), min_size=len(movies), max_size=len(movies))
    )
    genres = draw(
        st.lists(st.sets(st.sampled_from(GENRES)), min_size=len(movies), max_size=len(movies))
    )
    ages = draw(st.lists(st.integers(1, 99), min_size=len(users), max_size=len(users)))
    jobs = draw(st.lists(st.sampled_from(OCCUPATIONS), min_size=len(users), max_size=len(users)))
    return (
        rows,
        list(zip(movies, titles, genres, strict=True)),
        list(zip(users, ages, jobs, strict=True)),
    )


def _num(value):
    return f"{value:g}"


def write_layout(directory: Path, layout: str, data) -> None:
    """Writes ``data`` in ``layout``; the reference for what each file holds."""
    rows, movies, users = data
    name, sep, encoding, header = RATINGS_FILE[layout]
    lines = [header] if header else []
    lines += [sep.join((str(u), str(m), _num(r), str(t))) for u, m, r, t in rows]
    (directory / name).write_bytes(("\n".join(lines) + "\n").encode(encoding))
    gender = {True: "M", False: "F"}
    if layout == "grouplens-100k":
        flags = lambda g: "|".join("1" if f in g else "0" for f in schema.GENRES_100K_FLAGS)  # noqa: E731
        item = [f"{m}|{t}|||x|{flags(g)}" for m, t, g in movies]
        user = [f"{u}|{a}|{gender[a % 2 == 0]}|{j}|{u:05d}" for u, a, j in users]
        _write(directory, {"u.item": item, "u.user": user}, "latin-1")
    elif layout == "grouplens-1m":
        item = [f"{m}::{t}::{'|'.join(sorted(g))}" for m, t, g in movies]
        user = [f"{u}::{gender[a % 2 == 0]}::18::{a % 21}::{u}" for u, a, j in users]
        _write(directory, {"movies.dat": item, "users.dat": user}, "latin-1")
    elif layout == "grouplens-csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)
        writer.writerow(["movieId", "title", "genres"])
        for m, t, g in movies:
            writer.writerow([str(m), t, "|".join(sorted(g)) or "(no genres listed)"])
        text = out.getvalue().replace('"movieId","title","genres"', "movieId,title,genres")
        (directory / "movies.csv").write_text(text, encoding="utf-8")
    else:
        item = ["item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq"]
        item += [f"{m}\t{t}\t\t{' '.join(sorted(g))}" for m, t, g in movies]
        user = ["user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token"]
        user += [f"{u}\t{a}\t{gender[a % 2 == 0]}\t{j}\t{u:05d}" for u, a, j in users]
        _write(directory, {"ml-100k.item": item, "ml-100k.user": user}, "utf-8")


def _write(directory, texts, encoding):
    for name, lines in texts.items():
        (directory / name).write_bytes(("\n".join(lines) + "\n").encode(encoding))


@given(data=st.data(), layout=st.sampled_from(LAYOUTS))
@PROPERTIES
def test_valid_files_parse_to_the_generated_tables(data, layout):
    rows, movies, users = generated = data.draw(datasets(layout))
    with tempfile.TemporaryDirectory() as folder:
        write_layout(Path(folder), layout, generated)
        assert parsers.detect_layout(folder) == layout
        tables = parsers.parse_directory(folder)
    r = tables.ratings
    assert r["user_id"].tolist() == [str(u) for u, *_ in rows]
    assert r["movie_id"].tolist() == [str(m) for _, m, *_ in rows]
    assert r["user_rating"].tolist() == [float(np.float32(s)) for *_, s, _ in rows]
    assert r["timestamp"].tolist() == [t for *_, t in rows]
    assert tables.movies["movie_id"].tolist() == [str(m) for m, *_ in movies]
    assert tables.movies["movie_title"].tolist() == [t for _, t, _ in movies]
    labels = [sorted(schema.GENRE_NAMES.index(n) for n in g) for *_, g in movies]
    got = [sorted(x for x in row if x >= 0) for row in tables.movies["movie_genres"].tolist()]
    if layout == "grouplens-csv":  # "(no genres listed)" is a label of its own
        labels = [ids or [schema.GENRE_NAMES.index("(no genres listed)")] for ids in labels]
    assert got == labels
    if tables.users is not None:
        assert tables.users["user_id"].tolist() == [str(u) for u, *_ in users]
        assert tables.users["user_gender"].tolist() == [a % 2 == 0 for _, a, _ in users]


# A reference reader of the ratings formats, written from the spec (not from tfrec's code).
_FLOAT = re.compile(r"\s*[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf(?:inity)?|nan)\s*", re.I)  # fmt: skip
_INT = re.compile(r"\s*[+-]?[0-9]+\s*")


def reference_ratings(data: bytes, layout: str):
    """Rows the file holds, or None when it is not a valid ratings file of ``layout``."""
    name, sep, encoding, header = RATINGS_FILE[layout]
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        return None
    if "\x00" in text or (sep == "::" and "\x1f" in text):
        return None
    lines = [line.removesuffix("\n") for line in io.StringIO(text, newline=None)]
    if header is not None:
        first = next(csv.reader([lines[0]], delimiter=sep)) if lines and lines[0] else []
        if first != header.split(sep):
            return None
        lines = lines[1:]
    rows = []
    for line in lines:
        if not line:
            continue
        parts = line.split(sep)
        if len(parts) != 4:
            return None
        user, movie, rating, stamp = parts
        for identifier in (user, movie):
            if not (identifier.isascii() and identifier.isdigit()):
                return None
        if not _FLOAT.fullmatch(rating):
            return None
        star = float(np.float32(float(rating)))
        if schema.invalid_ratings(np.array([star]), VARIANT[layout]).any():
            return None
        if layout == "recbole-100k":
            if not _FLOAT.fullmatch(stamp) or not np.isfinite(float(stamp)):
                return None
            seconds = float(stamp)
            if seconds != np.floor(seconds) or abs(seconds) > 2.0**62:
                return None
            stamp = int(seconds)
        elif not _INT.fullmatch(stamp) or not -(2**63) <= int(stamp) < 2**63:
            return None
        rows.append((user, movie, star, int(stamp)))
    return rows or None


_TOKENS = st.sampled_from(
    ["", " ", "x", "-4", "9", "1e6", "nan", "inf", "3.5", "0.5", "07", "\xff"]
)


@st.composite
def corruptions(draw, data: bytes, separator: str):
    """One realistic damage to ``data`` (a ratings file), as new bytes."""
    kind = draw(st.sampled_from(["field", "separator", "drop", "truncate", "bytes", "text"]))
    event(f"damage: {kind}")
    lines = data.split(b"\n")
    number = draw(st.integers(0, len(lines) - 1))
    fields = lines[number].split(separator.encode())
    if kind == "field":  # non-numeric ids, out-of-range ratings, odd numbers
        position = draw(st.integers(0, len(fields) - 1))
        fields[position] = draw(_TOKENS | st.text(chars(), max_size=4)).encode("utf-8")
    elif kind == "separator":
        position = draw(st.integers(0, max(0, len(fields) - 2)))
        glue = draw(st.sampled_from([b",", b";", b" ", b"\t", b":", b"|", b""]))
        fields[position : position + 2] = [glue.join(fields[position : position + 2])]
    elif kind == "drop":  # a missing column
        del fields[draw(st.integers(0, len(fields) - 1))]
    lines[number] = separator.encode().join(fields)
    joined = b"\n".join(lines)
    if kind == "truncate":
        return joined[: draw(st.integers(0, len(joined)))]
    if kind in ("bytes", "text"):
        at = draw(st.integers(0, len(joined)))
        noise = draw(
            st.binary(min_size=1, max_size=6) if kind == "bytes" else st.text(chars(), max_size=6)
        )
        noise = noise if isinstance(noise, bytes) else noise.encode("utf-8")
        return joined[:at] + noise + joined[at:]
    return joined


@given(data=st.data(), layout=st.sampled_from(LAYOUTS))
@PROPERTIES
def test_damaged_ratings_parse_as_the_reference_says_or_name_the_file(data, layout):
    generated = data.draw(datasets(layout))
    name, separator, *_ = RATINGS_FILE[layout]
    with tempfile.TemporaryDirectory() as folder:
        write_layout(Path(folder), layout, generated)
        path = Path(folder) / name
        damaged = data.draw(corruptions(path.read_bytes(), separator))
        path.write_bytes(damaged)
        expected = reference_ratings(damaged, layout)
        event("rejected" if expected is None else "still valid")
        if expected is None:
            with pytest.raises(DataError, match=re.escape(str(path))):
                parsers.parse_directory(folder)
            return
        r = parsers.parse_directory(folder).ratings
    got = zip(r["user_id"].tolist(), r["movie_id"].tolist(), r["user_rating"].tolist(), r["timestamp"].tolist(), strict=True)  # fmt: skip
    assert list(got) == expected


@given(data=st.data(), layout=st.sampled_from(LAYOUTS))
@PROPERTIES
def test_damaged_movie_and_user_files_name_the_file_or_stay_consistent(data, layout):
    generated = data.draw(datasets(layout))
    with tempfile.TemporaryDirectory() as folder:
        write_layout(Path(folder), layout, generated)
        others = [n for n in parsers.LAYOUTS[layout] if n != RATINGS_FILE[layout][0]]
        path = Path(folder) / data.draw(st.sampled_from(others))
        separator = {"grouplens-100k": "|", "grouplens-1m": "::", "grouplens-csv": ","}
        path.write_bytes(data.draw(corruptions(path.read_bytes(), separator.get(layout, "\t"))))
        try:
            tables = parsers.parse_directory(folder)
        except DataError as error:
            event("rejected")
            assert str(path) in str(error)
            return
    event("parsed")
    for table in (tables.movies, tables.users):
        if table is None:
            continue
        lengths = {len(column) for column in table.values()}
        assert len(lengths) == 1
        key = "movie_id" if "movie_id" in table else "user_id"
        ids = table[key].tolist()
        assert len(set(ids)) == len(ids) and all(i.isascii() and i.isdigit() for i in ids)
    genres = tables.movies["movie_genres"]
    assert ((genres >= -1) & (genres < len(schema.GENRE_NAMES))).all()


def _reference_dedupe(rows):
    latest = {}
    for position, (user, movie, _, stamp) in enumerate(rows):
        key = (user, movie)
        if key not in latest or (stamp, position) >= latest[key]:
            latest[key] = (stamp, position)
    return sorted(position for _, position in latest.values())


@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from("123"), st.sampled_from("45"), st.integers(1, 5), st.integers(0, 3)
        ),
        min_size=1,
        max_size=30,
    )
)
@PROPERTIES
def test_deduplication_keeps_each_pairs_latest_and_splits_stay_disjoint(rows):
    users, movies, stars, times = map(np.array, zip(*rows, strict=True))
    ratings = {
        "user_id": users,
        "movie_id": movies,
        "user_rating": stars.astype(np.float32),
        "timestamp": times.astype(np.int64),
        "row": np.arange(len(rows)),
    }
    with pytest.warns() if len(_reference_dedupe(rows)) < len(rows) else _nothing():
        kept = deduplicate_ratings(ratings)
    assert kept["row"].tolist() == _reference_dedupe(rows)
    for protocol in (leave_one_out, random_split):
        try:
            split = protocol(kept)
        except ValueError as error:  # too few ratings for a non-empty split: said clearly
            assert "empty" in str(error)
            continue
        pairs = [set(zip(p["user_id"], p["movie_id"], strict=True)) for p in split]
        assert sum(map(len, pairs)) == len(set().union(*pairs)) == len(kept["row"])


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *args):
        return False
