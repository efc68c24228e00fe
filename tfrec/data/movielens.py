"""The MovieLens schema: numpy tables with TFDS meanings, and tf.data views shaped like TFDS.

Why this exists: models, splits and evaluation need one in-memory form of MovieLens that is fast
to slice (numpy columns, integer indices) yet can still be served exactly as
``tfds.load("movielens/<variant>-ratings")`` would, whichever source produced the files.

How each source's files map onto the schema (``tfrec/data/README.md`` has the long form):

==========================  ==================  ==================  ===============  ================
field                       GroupLens 100k      GroupLens 1m        GroupLens csv    RecBole 100k
==========================  ==================  ==================  ===============  ================
user_id, movie_id           u.data cols 1-2     ratings.dat 1-2     ratings.csv 1-2  .inter 1-2
user_rating, timestamp      u.data cols 3-4     ratings.dat 3-4     ratings.csv 3-4  .inter 3-4
movie_title                 u.item col 2        movies.dat col 2    movies.csv 2     .item "t (year)"
movie_genres                u.item 19 flags     movies.dat '|'      movies.csv '|'   .item class ' '
user_gender                 u.user col 3 == M   users.dat 2 == M    --               .user gender
bucketized_user_age         bucket(u.user 2)    users.dat col 3     --               bucket(age)
raw_user_age                u.user col 2        --                  --               .user age
user_occupation_text        u.user col 4        code -> text        --               .user occ.
user_occupation_label       text -> TFDS label  text -> label       --               text -> label
user_zip_code               u.user col 5        users.dat col 5     --               .user zip
==========================  ==================  ==================  ===============  ================

The ``tfds`` source stores these columns already decoded (``tables`` layout).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfrec.data import parsers, schema
from tfrec.data._arrays import as_int_ids, index_of, unique_sorted
from tfrec.data._tfds import sort_by_id
from tfrec.data.checks import check_ratings, deduplicate_ratings
from tfrec.data.errors import DataError
from tfrec.data.sources import describe_origin, fetch_movielens, read_manifest

Table = dict[str, np.ndarray]
_BATCH = 4096


@dataclass(frozen=True, eq=False)
class MovieLens:
    """One MovieLens variant in memory: ratings, movies and (100k/1m) users as numpy tables.

    ``ratings`` (file order) holds user_id (U), movie_id (U), user_rating (float32), timestamp
    (int64) and user_index / movie_index (int64) into :attr:`user_ids` / :attr:`movie_ids`.
    ``movies`` holds movie_id, movie_title (TFDS form "Toy Story (1995)") and movie_genres (int64
    [M, G] TFDS genre label ids, padded with -1). ``users`` holds user_id and TFDS's demographic
    features, or is None for variants without them. ``origin`` says where the data came from
    (URL, package, TFDS folder, or a local path with the content fingerprint of its files) and
    ``duplicates_dropped`` how many repeated (user, movie) ratings the duplicate policy removed.
    """

    variant: str
    source: str
    ratings: Table
    movies: Table
    users: Table | None
    origin: str = ""
    duplicates_dropped: int = 0

    @property
    def source_description(self) -> str:
        """``source`` plus where its files came from, e.g. ``"local: /data/ml-100k (...)"``."""
        return f"{self.source}: {self.origin}" if self.origin else self.source

    @cached_property
    def user_ids(self) -> np.ndarray:
        """The user universe (users table order, else sorted ids); user_index indexes it."""
        if self.users is not None:
            return self.users["user_id"]
        return _user_universe(self.ratings["user_id"])

    @property
    def movie_ids(self) -> np.ndarray:
        """The movie universe, ``movies["movie_id"]``; movie_index indexes it."""
        return self.movies["movie_id"]

    @property
    def num_users(self) -> int:
        """Number of users in the universe."""
        return int(self.user_ids.size)

    @property
    def num_movies(self) -> int:
        """Number of movies in the movies table."""
        return int(self.movie_ids.size)

    @property
    def num_ratings(self) -> int:
        """Number of ratings."""
        return int(self.ratings["user_id"].size)

    def as_dataset(self, ratings: Table | None = None) -> tf.data.Dataset:
        """One element per rating with TFDS ``movielens/<variant>-ratings`` names and dtypes.

        ``ratings`` is a row subset of :attr:`ratings` (e.g. a split; needs user_index and
        movie_index); default all ratings.
        """
        ratings = self.ratings if ratings is None else ratings
        for column in ("user_id", "user_rating", "timestamp", "user_index", "movie_index"):
            if column not in ratings:
                raise ValueError(
                    f"as_dataset needs a ratings table with column {column!r}. Received: "
                    f"columns={sorted(ratings)}. Fix: pass a row subset of MovieLens.ratings."
                )
        spec = schema.ratings_features(self.variant)
        movie_cols = _tensors(self.movies, ("movie_id", "movie_title"))
        genres = _genres(self.movies["movie_genres"])
        user_names = [n for n in spec if n in schema.USER_COLUMNS and n != "user_id"]
        if user_names and self.users is None:
            raise ValueError(f"MovieLens {self.variant} needs a users table for {user_names}.")
        user_cols = _tensors(self.users, user_names) if user_names else {}
        rows = tf.data.Dataset.from_tensor_slices(
            {
                "user_id": ratings["user_id"],
                "user_rating": ratings["user_rating"].astype(np.float32),
                "timestamp": ratings["timestamp"].astype(np.int64),
                "user_index": ratings["user_index"].astype(np.int64),
                "movie_index": ratings["movie_index"].astype(np.int64),
            }
        )

        def gather(batch):
            out = {name: tf.gather(col, batch["movie_index"]) for name, col in movie_cols.items()}
            out["movie_genres"] = tf.gather(genres, batch["movie_index"])
            out.update({k: tf.gather(c, batch["user_index"]) for k, c in user_cols.items()})
            out.update({k: batch[k] for k in ("user_id", "user_rating", "timestamp")})
            return {name: out[name] for name in spec}

        dataset = rows.batch(_BATCH).map(gather).unbatch()
        return dataset.map(_densify)  # ragged rows come out as plain [None] tensors, as in TFDS

    def movies_dataset(self) -> tf.data.Dataset:
        """One element per movie with TFDS ``movielens/<variant>-movies`` names and dtypes."""
        cols = _tensors(self.movies, ("movie_id", "movie_title"))
        cols["movie_genres"] = _genres(self.movies["movie_genres"])
        dataset = tf.data.Dataset.from_tensor_slices(cols)
        return dataset.map(_densify)


def _densify(element: dict) -> dict:
    return {name: tf.identity(value) for name, value in element.items()}


def _tensors(table: Table, names) -> dict[str, tf.Tensor]:
    return {name: tf.constant(table[name]) for name in names}


def _genres(padded: np.ndarray) -> tf.RaggedTensor:
    return tf.RaggedTensor.from_tensor(tf.constant(padded, tf.int64), padding=np.int64(-1))


def _user_universe(user_ids: np.ndarray) -> np.ndarray:
    """Sorted distinct user ids (numerically when they are integers, the MovieLens case)."""
    numbers = as_int_ids(user_ids)
    if numbers is None:
        return sort_by_id({"user_id": unique_sorted(user_ids)}, "user_id")["user_id"]
    distinct = unique_sorted(numbers).astype(str)
    return distinct.astype(f"U{max(1, int(np.strings.str_len(distinct).max(initial=0)))}")


def from_tables(tables: parsers.Tables, variant: str, source: str, origin: str = "") -> MovieLens:
    """Validates parsed tables, adds user_index / movie_index, and wraps them in MovieLens.

    Ratings must be on ``variant``'s scale (:data:`schema.RATING_SCALES`; a
    :class:`~tfrec.data.errors.DataError` names the first bad row); repeated (user, movie)
    pairs keep their latest rating (timestamp, then file order) with a
    :class:`~tfrec.data.errors.DataWarning`.
    """
    schema.check_variant(variant)
    expected = schema.ratings_features(variant)
    required = {
        "ratings": ("user_id", "movie_id", "user_rating", "timestamp"),
        "movies": tuple(schema.MOVIE_FEATURES),
        "users": tuple(n for n in schema.USER_COLUMNS if n in expected),
    }
    with_users = variant in schema.VARIANTS_WITH_USERS
    for name, table in zip(("ratings", "movies", "users"), tables, strict=True):
        if table is None:
            if name != "users" or with_users:
                raise ValueError(f"MovieLens {variant} needs a {name} table. Received: None.")
            continue
        missing = [c for c in required[name] if c not in table]
        if missing:
            raise ValueError(
                f"The {name} table lacks columns. Received: missing={missing}, "
                f"columns={sorted(table)}. Fix: re-fetch the data."
            )
    ratings = dict(tables.ratings)
    movies = dict(tables.movies)
    users = dict(tables.users) if with_users else None
    ratings["user_rating"] = ratings["user_rating"].astype(np.float32)
    ratings["timestamp"] = ratings["timestamp"].astype(np.int64)
    universe = users["user_id"] if users is not None else _user_universe(ratings["user_id"])
    ratings["user_index"] = index_of(ratings["user_id"], universe, "user_id", "the users table")
    ratings["movie_index"] = index_of(
        ratings["movie_id"], movies["movie_id"], "movie_id", "the movies table"
    )
    if users is not None:
        users = {name: users[name] for name in required["users"]}
    where = f"MovieLens {variant} ratings (source {source}{', ' + origin if origin else ''})"
    check_ratings(ratings, variant, where)
    kept = deduplicate_ratings(ratings, where=where)
    dropped = len(ratings["user_id"]) - len(kept["user_id"])
    return MovieLens(variant, source, kept, movies, users, origin, dropped)


def load_movielens(
    variant: str = "100k",
    source: str = "auto",
    data_dir: str | Path | None = None,
    path: str | Path | None = None,
) -> MovieLens:
    """Fetches (or reuses the cached) ``variant`` and parses it into a :class:`MovieLens`."""
    directory = fetch_movielens(variant, source, data_dir, path=path)
    manifest = read_manifest(directory) or {}
    source = manifest.get("source", source)
    origin = describe_origin(manifest)
    try:
        tables = parsers.parse_directory(directory, manifest.get("layout"))
    except DataError as error:
        if source == "local":
            note = f"fix the original ({origin}) and load again: a changed source is re-imported"
        else:
            note = (
                f"these files match the checksums of {origin or source}, so tfrec cannot read "
                "an official copy: please report it, and meanwhile try another source="
            )
        raise type(error)(f"{error} (Cached copy in {directory}: {note}.)") from error
    return from_tables(tables, variant, source, origin)
