"""Synthetic data for retrieval: clustered embeddings and MovieLens-shaped catalogues of any size.

Exists because approximate indexes and the two-stage pipeline must be measured at catalogue
sizes (10^5, 10^6 movies) that no MovieLens variant has, and tested on tiny data that loads in
milliseconds. Embeddings come from a Gaussian mixture (real two-tower embeddings are clustered
by genre and taste, which is what makes partition-based indexes work); interactions come from
users with a few favourite topics, so a model trained on them has something to learn.
"""

from __future__ import annotations

import numpy as np

from tfrec.data.movielens import MovieLens

_WORDS = np.array(
    "star toy story wars alien heat love night day the man woman city dark last lost "
    "king queen blue red house river game world secret".split()
)
_OCCUPATIONS = np.array(["writer", "student", "engineer", "artist", "doctor", "other"])
_AGES = np.array([1.0, 18.0, 25.0, 35.0, 45.0, 50.0, 56.0], np.float32)


def _check_positive(value, name):
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    return int(value)


def clustered_embeddings(
    num_items: int,
    dim: int = 64,
    num_clusters: int | None = None,
    num_queries: int = 0,
    spread: float = 0.5,
    normalize: bool = True,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Item vectors ``[num_items, dim]`` and query vectors ``[num_queries, dim]`` (float32).

    Both are drawn from one Gaussian mixture with cluster sizes following a power law (a few
    big genres, many small niches) and per-cluster scales, then L2-normalised like two-tower
    outputs. `spread` is the within-cluster standard deviation relative to the distance
    between cluster centres (per dimension, the centres have unit variance).
    """
    num_items = _check_positive(num_items, "num_items")
    dim = _check_positive(dim, "dim")
    if num_clusters is None:
        num_clusters = max(1, int(np.sqrt(num_items) / 2))
    num_clusters = _check_positive(num_clusters, "num_clusters")
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((num_clusters, dim)).astype(np.float32)
    weights = 1.0 / np.arange(1, num_clusters + 1) ** 0.8
    weights /= weights.sum()
    scales = (spread * rng.uniform(0.5, 1.5, num_clusters)).astype(np.float32)

    def draw(n):
        cluster = rng.choice(num_clusters, size=n, p=weights)
        noise = rng.standard_normal((n, dim), dtype=np.float32)
        x = centres[cluster] + scales[cluster, None] * noise
        if normalize:
            x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        return x.astype(np.float32)

    return draw(num_items), draw(num_queries)


def _titles(rng, n):
    words = rng.choice(_WORDS, (n, 2))
    years = rng.integers(1930, 2020, n).astype(str)
    titles = np.char.add(np.char.add(words[:, 0], " "), words[:, 1])
    return np.char.add(np.char.add(titles, " ("), np.char.add(years, ")"))


def synthetic_catalogue(
    num_users: int = 200,
    num_movies: int = 300,
    ratings_per_user: int = 20,
    num_topics: int = 10,
    topic_affinity: float = 0.8,
    seed: int = 0,
) -> MovieLens:
    """A `MovieLens` with 100k-style users, movies and ratings drawn from a topic model.

    Every movie has one topic (its first genre is the topic, so side features carry signal)
    and a Zipf popularity; every user has two favourite topics and draws
    ``topic_affinity`` of their movies from them (popularity-weighted), the rest from the whole
    catalogue. Each user rates `ratings_per_user` distinct movies at increasing timestamps.
    Rows are generated with vectorised numpy, so 10^6 movies take seconds.
    """
    num_users = _check_positive(num_users, "num_users")
    num_movies = _check_positive(num_movies, "num_movies")
    per_user = _check_positive(ratings_per_user, "ratings_per_user")
    num_topics = _check_positive(num_topics, "num_topics")
    if per_user * 2 > num_movies:
        raise ValueError(
            "`ratings_per_user` must be at most half the catalogue so users can rate distinct "
            f"movies. Received: ratings_per_user={per_user}, num_movies={num_movies}"
        )
    if not 0.0 <= topic_affinity <= 1.0:
        raise ValueError(f"`topic_affinity` must be in [0, 1]. Received: {topic_affinity!r}")
    rng = np.random.default_rng(seed)
    topic = rng.integers(0, num_topics, num_movies)
    genres = np.full((num_movies, 3), -1, np.int64)
    genres[:, 0] = topic % 19
    extra = rng.random(num_movies) < 0.5
    genres[extra, 1] = rng.integers(0, 19, int(extra.sum()))
    popularity = rng.permutation(1.0 / np.arange(1, num_movies + 1) ** 0.9)
    movies = {
        "movie_id": np.arange(1, num_movies + 1).astype(str),
        "movie_title": _titles(rng, num_movies),
        "movie_genres": genres,
    }
    users = {
        "user_id": np.arange(1, num_users + 1).astype(str),
        "user_gender": rng.random(num_users) < 0.5,
        "bucketized_user_age": rng.choice(_AGES, num_users),
        "user_occupation_text": rng.choice(_OCCUPATIONS, num_users),
        "user_zip_code": rng.integers(10000, 99999, num_users).astype(str),
    }
    # Movies sorted by topic, with per-topic cumulative popularity, for one searchsorted draw.
    by_topic = np.argsort(topic, kind="stable")
    weight = popularity[by_topic]
    starts = np.searchsorted(topic[by_topic], np.arange(num_topics + 1))
    cumulative = np.concatenate([[0.0], np.cumsum(weight)])
    favourite = rng.integers(0, num_topics, (num_users, 2))
    draws = per_user * 3  # oversample, then keep each user's first distinct movies
    chosen_topic = np.take_along_axis(favourite, rng.integers(0, 2, (num_users, draws)), axis=1)
    low, high = cumulative[starts[chosen_topic]], cumulative[starts[chosen_topic + 1]]
    position = np.searchsorted(cumulative, low + rng.random(low.shape) * (high - low), "right") - 1
    in_topic = by_topic[np.clip(position, 0, num_movies - 1)]
    anywhere = rng.choice(num_movies, (num_users, draws), p=popularity / popularity.sum())
    empty = (high - low) <= 0
    pick = np.where((rng.random(low.shape) < topic_affinity) & ~empty, in_topic, anywhere)
    pick = np.concatenate([pick, rng.choice(num_movies, (num_users, per_user * 4))], axis=1)
    user_rows, movie_rows, order = _first_distinct(pick, per_user)
    ratings = {
        "user_id": users["user_id"][user_rows],
        "movie_id": movies["movie_id"][movie_rows],
        "user_rating": rng.integers(1, 6, user_rows.size).astype(np.float32),
        "timestamp": (874_000_000 + user_rows * 10_000 + order * 60).astype(np.int64),
        "user_index": user_rows.astype(np.int64),
        "movie_index": movie_rows.astype(np.int64),
    }
    return MovieLens("synthetic", "synthetic", ratings, movies, users)


def _first_distinct(pick: np.ndarray, per_user: int):
    """Each row's first `per_user` distinct values: (row, value, position) arrays."""
    rows = np.repeat(np.arange(pick.shape[0]), pick.shape[1])
    values = pick.reshape(-1)
    keys = rows.astype(np.int64) * (int(values.max()) + 1) + values
    _, first = np.unique(keys, return_index=True)
    first = np.sort(first)
    rows, values = rows[first], values[first]
    rank = np.arange(first.size) - np.searchsorted(rows, rows)
    keep = rank < per_user
    return rows[keep], values[keep], rank[keep]
