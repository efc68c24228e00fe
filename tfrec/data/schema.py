"""MovieLens vocabularies and feature specs, matching TensorFlow Datasets (TFDS) `movielens`.

Why this exists: tfrec builds its tables from several sources (GroupLens zips, RecBole atomic
files, TFDS itself) and every one of them must come out with the same label ids and dtypes as
``tfds.load("movielens/<variant>-ratings")``. The facts below (label sets, the 100k and 1m
occupation maps, the age buckets) are those of TFDS 4.9 ``structured/movielens.py`` and
``movielens_parsing.py``; tests compare the feature specs with TFDS's own.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

VARIANTS = ("100k", "1m", "20m", "25m", "latest-small")
"""MovieLens variants tfrec knows, spelled as in TFDS config names."""

VARIANTS_WITH_USERS = ("100k", "1m")

GENRE_NAMES = (
    "Action",
    "Adventure",
    "Animation",
    "Children",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "IMAX",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "Unknown",
    "War",
    "Western",
    "(no genres listed)",
)
"""TFDS ``movie_genres`` ClassLabel names: a genre's label id is its position here."""

GENRE_ALIASES = {"Children's": "Children", "unknown": "Unknown"}
"""Spellings in the raw files that TFDS folds onto a label (1m/100k/RecBole use these)."""

GENRES_100K_FLAGS = (
    "Unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
"""Meaning of the 19 genre flag columns of ml-100k ``u.item``, in file order."""

OCCUPATION_NAMES = (
    "academic/educator",
    "artist",
    "clerical/admin",
    "customer service",
    "doctor/health care",
    "entertainment",
    "executive/managerial",
    "farmer",
    "homemaker",
    "lawyer",
    "librarian",
    "other/not specified",
    "programmer",
    "retired",
    "sales/marketing",
    "scientist",
    "self-employed",
    "student",
    "technician/engineer",
    "tradesman/craftsman",
    "unemployed",
    "writer",
)
"""TFDS ``user_occupation_label`` ClassLabel names (shared by 100k and 1m)."""

OCCUPATION_100K_TO_LABEL = {
    "administrator": "clerical/admin",
    "artist": "artist",
    "doctor": "doctor/health care",
    "educator": "academic/educator",
    "engineer": "technician/engineer",
    "entertainment": "entertainment",
    "executive": "executive/managerial",
    "healthcare": "doctor/health care",
    "homemaker": "homemaker",
    "lawyer": "lawyer",
    "librarian": "librarian",
    "marketing": "sales/marketing",
    "none": "other/not specified",
    "other": "other/not specified",
    "programmer": "programmer",
    "retired": "retired",
    "salesman": "sales/marketing",
    "scientist": "scientist",
    "student": "student",
    "technician": "technician/engineer",
    "writer": "writer",
}
"""ml-100k ``u.user`` occupation text -> TFDS label name."""

OCCUPATIONS_1M = (
    "other/not specified",
    "academic/educator",
    "artist",
    "clerical/admin",
    "college/grad student",
    "customer service",
    "doctor/health care",
    "executive/managerial",
    "farmer",
    "homemaker",
    "K-12 student",
    "lawyer",
    "programmer",
    "retired",
    "sales/marketing",
    "scientist",
    "self-employed",
    "technician/engineer",
    "tradesman/craftsman",
    "unemployed",
    "writer",
)
"""ml-1m ``users.dat`` occupation code -> text (TFDS ``user_occupation_text``)."""

STUDENTS_1M = ("K-12 student", "college/grad student")
"""1m occupation texts that TFDS labels ``student``."""

AGE_THRESHOLDS = (18, 25, 35, 45, 50, 56)
"""TFDS bucketizes a raw age to the largest threshold <= age, or 1 below 18."""

AGE_BUCKETS_1M = (1, 18, 25, 35, 45, 50, 56)
"""Values the ml-1m ``users.dat`` age column may take (already bucketized)."""

MOVIE_FEATURES = {
    "movie_id": tf.TensorSpec((), tf.string),
    "movie_title": tf.TensorSpec((), tf.string),
    "movie_genres": tf.TensorSpec((None,), tf.int64),
}
_RATING_FEATURES = {
    "user_id": tf.TensorSpec((), tf.string),
    "user_rating": tf.TensorSpec((), tf.float32),
    "timestamp": tf.TensorSpec((), tf.int64),
}
_DEMOGRAPHIC_FEATURES = {
    "user_gender": tf.TensorSpec((), tf.bool),
    "bucketized_user_age": tf.TensorSpec((), tf.float32),
    "user_occupation_label": tf.TensorSpec((), tf.int64),
    "user_occupation_text": tf.TensorSpec((), tf.string),
    "user_zip_code": tf.TensorSpec((), tf.string),
}

USER_COLUMNS = ("user_id",) + tuple(_DEMOGRAPHIC_FEATURES) + ("raw_user_age",)
"""Every column a users table may hold (``raw_user_age`` only for 100k)."""


def ratings_features(variant: str) -> dict[str, tf.TensorSpec]:
    """Returns the element spec of TFDS ``movielens/<variant>-ratings`` (what as_dataset yields)."""
    check_variant(variant)
    spec = dict(MOVIE_FEATURES)
    spec.update(_RATING_FEATURES)
    if variant in VARIANTS_WITH_USERS:
        spec.update(_DEMOGRAPHIC_FEATURES)
    if variant == "100k":
        spec["raw_user_age"] = tf.TensorSpec((), tf.float32)
    return spec


def check_variant(variant: str) -> str:
    """Raises a ValueError listing the valid variants unless ``variant`` is one of them."""
    if variant not in VARIANTS:
        raise ValueError(
            f"Unknown MovieLens variant. Received: variant={variant!r}. "
            f"Fix: use one of {', '.join(VARIANTS)}."
        )
    return variant


def bucketize_age(raw_age: np.ndarray) -> np.ndarray:
    """Maps exact ages onto TFDS's ``bucketized_user_age`` values (float32)."""
    buckets = np.asarray((1,) + AGE_THRESHOLDS, dtype=np.float32)
    return buckets[np.searchsorted(np.asarray(AGE_THRESHOLDS), raw_age, side="right")]


RATING_SCALES = {
    "100k": (1.0, 5.0, 1.0),
    "1m": (1.0, 5.0, 1.0),
    "20m": (0.5, 5.0, 0.5),
    "25m": (0.5, 5.0, 0.5),
    "latest-small": (0.5, 5.0, 0.5),
}
"""Variant -> (lowest, highest, step) of its ``user_rating`` values (GroupLens READMEs)."""


def invalid_ratings(ratings: np.ndarray, variant: str) -> np.ndarray:
    """Mask of ratings outside ``variant``'s scale: non-finite, out of range or off the step."""
    low, high, step = RATING_SCALES[check_variant(variant)]
    values = np.asarray(ratings, np.float64)
    with np.errstate(invalid="ignore"):
        steps = (values - low) / step
        return ~np.isfinite(values) | (values < low) | (values > high) | (steps != np.round(steps))


def rating_rule(variant: str, name: str | None = None) -> str:
    """Human description of ``variant``'s rating scale (``name`` replaces "MovieLens <variant>")."""
    low, high, step = RATING_SCALES[check_variant(variant)]
    name = name or f"MovieLens {variant}"
    if step == 1.0:
        return f"{name} ratings are whole stars {low:g} to {high:g}"
    return f"{name} ratings are half stars {low:g} to {high:g} in steps of {step:g}"


def plain_number(value) -> float:
    """A float32 (or any) value as the short Python float it prints as (4.2, not 4.19999...)."""
    return float(str(value))
