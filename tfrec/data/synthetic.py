"""Synthetic MovieLens-shaped data with a learnable signal, for tests, tutorials and scale.

Exists because MovieLens may not be redistributed: tests and examples that need data make it.
The generator mimics what matters to a recommender: power-law item popularity, uneven user
activity, demographics and genres with the TFDS schema, and a taste signal (users of a
"taste cluster" mostly watch movies of the matching genre, in a drifting order), so a model
that learns something beats popularity and a model that learns nothing does not.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tfrec.data import schema
from tfrec.data.movielens import MovieLens, from_tables
from tfrec.data.parsers import Tables

_FLAGS_100K = (
    "Unknown", "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)  # fmt: skip
_OCCUPATIONS = ("student", "engineer", "educator", "writer", "other", "technician")


def _genre_label(name: str) -> int:
    return schema.GENRE_NAMES.index(name)


def synthetic_tables(
    num_users: int = 200,
    num_movies: int = 300,
    ratings_per_user: int = 30,
    num_tastes: int = 6,
    taste_strength: float = 0.8,
    seed: int = 0,
) -> Tables:
    """Ratings, movies and users tables (100k schema) drawn from a seeded generator."""
    for name, value in (("num_users", num_users), ("num_movies", num_movies)):
        if value < 2:
            raise ValueError(f"`{name}` must be >= 2. Received: {name}={value}")
    if ratings_per_user < 3 or ratings_per_user > num_movies:
        raise ValueError(
            f"`ratings_per_user` must be in [3, num_movies]. Received: ratings_per_user={ratings_per_user}"
        )
    rng = np.random.default_rng(seed)
    genres = np.array([n for n in _FLAGS_100K[1:] if n != "Children"][:num_tastes])
    movie_taste = rng.integers(0, len(genres), num_movies)
    second = rng.integers(0, len(genres), num_movies)
    genre_ids = np.full((num_movies, 2), -1, np.int64)
    genre_ids[:, 0] = [_genre_label(g) for g in genres[movie_taste]]
    has_second = (rng.random(num_movies) < 0.4) & (second != movie_taste)
    genre_ids[has_second, 1] = [_genre_label(g) for g in genres[second[has_second]]]
    years = rng.integers(1930, 1999, num_movies)
    movie_ids = np.arange(1, num_movies + 1).astype(str)
    titles = np.char.add(np.char.add(np.char.add("Movie ", movie_ids), " ("), years.astype(str))
    titles = np.char.add(titles, ")")
    popularity = 1.0 / np.arange(1, num_movies + 1) ** 0.8
    popularity = popularity[rng.permutation(num_movies)]

    user_taste = rng.integers(0, len(genres), num_users)
    counts = np.minimum(
        ratings_per_user + rng.poisson(ratings_per_user * 0.5, num_users), num_movies
    ).astype(np.int64)
    # Score every (user, movie) pair once, vectorised: taste match dominates, popularity
    # breaks ties, Gumbel noise makes the top-`count` choice a weighted sample.
    match = (movie_taste[None, :] == user_taste[:, None]) * np.log(
        taste_strength / (1 - taste_strength) * len(genres)
    )
    keys = match + np.log(popularity)[None, :] + rng.gumbel(size=(num_users, num_movies))
    order = np.argsort(-keys, axis=1)
    take = np.arange(num_movies)[None, :] < counts[:, None]
    users = np.repeat(np.arange(num_users), counts)
    movies = order[take]
    # Timestamps: each user watches in order of their preference key, plus noise, so recent
    # history says something about the next movie.
    start = rng.integers(874_000_000, 890_000_000, num_users)
    step = np.arange(take.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    timestamps = start[users] + step * 3600 + rng.integers(0, 600, users.size)
    ratings = {
        "user_id": (users + 1).astype(str),
        "movie_id": movie_ids[movies],
        "user_rating": rng.integers(1, 6, users.size).astype(np.float32),
        "timestamp": timestamps.astype(np.int64),
    }
    shuffle = rng.permutation(users.size)
    ratings = {k: v[shuffle] for k, v in ratings.items()}
    ages = rng.integers(15, 70, num_users)
    occupation = rng.integers(0, len(_OCCUPATIONS), num_users)
    occupations = np.array(_OCCUPATIONS)[occupation]
    labels = [
        schema.OCCUPATION_NAMES.index(schema.OCCUPATION_100K_TO_LABEL[o]) for o in _OCCUPATIONS
    ]
    users_table = {
        "user_id": np.arange(1, num_users + 1).astype(str),
        "user_gender": rng.random(num_users) < 0.6,
        "raw_user_age": ages.astype(np.float32),
        "bucketized_user_age": schema.bucketize_age(ages).astype(np.float32),
        "user_occupation_text": occupations,
        "user_occupation_label": np.array(labels, np.int64)[occupation],
        "user_zip_code": rng.integers(10000, 99999, num_users).astype(str),
    }
    movies_table = {"movie_id": movie_ids, "movie_title": titles, "movie_genres": genre_ids}
    return Tables(ratings, movies_table, users_table)


def synthetic_movielens(**kwargs) -> MovieLens:
    """A `MovieLens` (100k schema, source "synthetic") from `synthetic_tables(**kwargs)`."""
    return from_tables(synthetic_tables(**kwargs), "100k", "synthetic")


def write_grouplens_100k(tables: Tables, directory: str | Path) -> Path:
    """Writes tables as GroupLens ml-100k files (u.data, u.item, u.user) for `source="local"`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    r = tables.ratings
    rows = np.char.add(np.char.add(np.char.add(r["user_id"], "\t"), r["movie_id"]), "\t")
    rows = np.char.add(np.char.add(rows, r["user_rating"].astype(int).astype(str)), "\t")
    rows = np.char.add(rows, r["timestamp"].astype(str))
    (directory / "u.data").write_text("\n".join(rows) + "\n", encoding="latin-1")
    m = tables.movies
    labels = np.array([schema.GENRE_NAMES[i] if i >= 0 else "" for i in m["movie_genres"].ravel()])
    labels = labels.reshape(m["movie_genres"].shape)
    flags = np.stack([(labels == name).any(axis=1) for name in _FLAGS_100K], axis=1)
    flag_text = ["|".join(row) for row in flags.astype(int).astype(str)]
    years = np.char.rstrip(np.char.rpartition(m["movie_title"], "(")[:, 2], ")")
    items = [
        f"{i}|{t}|01-Jan-{y}||http://example.com/{i}|{f}"
        for i, t, y, f in zip(m["movie_id"], m["movie_title"], years, flag_text, strict=True)
    ]
    (directory / "u.item").write_text("\n".join(items) + "\n", encoding="latin-1")
    u = tables.users
    gender = np.where(u["user_gender"], "M", "F")
    users = [
        f"{i}|{int(a)}|{g}|{o}|{z}"
        for i, a, g, o, z in zip(
            u["user_id"],
            u["raw_user_age"],
            gender,
            u["user_occupation_text"],
            u["user_zip_code"],
            strict=True,
        )
    ]
    (directory / "u.user").write_text("\n".join(users) + "\n", encoding="latin-1")
    return directory
