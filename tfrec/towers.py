"""User and movie towers: a set of field encoders that share one latent size.

A tower is the unit every tfrec model is wired from. It exists so that one description of
the user side and one of the movie side serve ranking (DeepFM and friends read the per-field
embeddings and first-order weights) and retrieval (two-tower models read the pooled vector),
and so that a model's side features are declared once, as columns.
"""

from __future__ import annotations

import tensorflow as tf

from tfrec.features.columns import (
    Categorical,
    MultiCategorical,
    Numeric,
    Text,
)

RECENT_MOVIES = "recent_movie_ids"
"""Feature key of the user's most recent movies strictly before the interaction."""


def movielens_user_columns(history: bool = True) -> list:
    """The user tower's default columns for MovieLens (fields absent from a variant are skipped)."""
    columns = [
        Categorical("user_id"),
        Categorical("user_gender"),
        Categorical("bucketized_user_age"),
        Categorical("user_occupation_text"),
        Categorical("user_zip_code", prefix_length=2),
    ]
    if history:
        columns.append(MultiCategorical(RECENT_MOVIES))
    return columns


def movielens_movie_columns() -> list:
    """The movie tower's default columns: id, genres, title words, release-year buckets."""
    return [
        Categorical("movie_id"),
        MultiCategorical("movie_genres", padding="-1"),
        Text("movie_title", min_count=2),
        Numeric("movie_title", num_buckets=10, transform="title_year"),
    ]


@tf.keras.utils.register_keras_serializable(package="tfrec")
class Tower(tf.keras.layers.Layer):
    """Embeds one side (user or movie) of an interaction as F fields of size k.

    Args:
      encoders: Field encoders (`CategoricalEncoder`, `NumericEncoder`) with one shared
        `embedding_dim`; usually made by `build_tower` from columns.

    Call arguments:
      features: Dict of feature tensors with a leading batch dimension.

    Returns:
      Dict with ``embeddings`` ``[B, F, k]`` (FM/DNN input), ``weights`` ``[B, F]`` (first
      order) and ``pooled`` ``[B, k]``: the sum of the field embeddings, which is exactly the
      side's vector in FM's user-item cross term, so it doubles as a retrieval embedding.

    Example:
      >>> tower = build_tower(table, [Categorical("user_id")], embedding_dim=8)
      >>> tower({"user_id": tf.constant(["196"])})["pooled"].shape
      TensorShape([1, 8])
    """

    def __init__(self, encoders, **kwargs):
        super().__init__(**kwargs)
        encoders = [tf.keras.layers.deserialize(e) if isinstance(e, dict) else e for e in encoders]
        if not encoders:
            raise ValueError("A Tower needs at least one field encoder. Received: encoders=[]")
        dims = sorted({e.embedding_dim for e in encoders})
        if len(dims) != 1:
            raise ValueError(f"All fields of a tower must share embedding_dim. Received: {dims}")
        names = [e.name for e in encoders]
        if len(set(names)) != len(names):
            raise ValueError(f"Field names must be unique within a tower. Received: {names}")
        self.encoders = encoders
        self.embedding_dim = dims[0]

    @property
    def field_names(self) -> list[str]:
        return [e.name for e in self.encoders]

    @property
    def feature_keys(self) -> list[str]:
        return sorted({e.key for e in self.encoders})

    def preprocessed_key(self, encoder) -> str:
        return f"{self.name}/{encoder.name}"

    def preprocess(self, features) -> dict:
        """String and numeric preprocessing only (lookups, tokenising, bucketizing): returns
        ``{"<tower>/<field>": ids}``. Feeding these back to `call` skips the work, so
        pipelines can run it once per user or movie instead of once per example."""
        return {self.preprocessed_key(e): e.preprocess(features) for e in self.encoders}

    def call(self, features):
        outputs = []
        for encoder in self.encoders:
            key = self.preprocessed_key(encoder)
            if key in features:
                outputs.append(encoder.embed(features[key]))
            else:
                outputs.append(encoder(features))
        embeddings = tf.stack([o[0] for o in outputs], axis=1)
        weights = tf.stack([o[1] for o in outputs], axis=1)
        return {
            "embeddings": embeddings,
            "weights": weights,
            "pooled": tf.reduce_sum(embeddings, axis=1),
        }

    def get_config(self):
        config = super().get_config()
        config.update(encoders=[tf.keras.layers.serialize(e) for e in self.encoders])
        return config


def build_tower(table: dict, columns, embedding_dim: int = 16, name: str | None = None) -> Tower:
    """Adapts each column to `table` (a dict of numpy columns) and returns the Tower.

    Columns whose key is missing from the table are skipped, so the MovieLens defaults work
    for variants without user demographics (20m, 25m, latest-small).
    """
    present = [c for c in columns if c.key in table]
    if not present:
        raise ValueError(
            f"None of the columns {[c.key for c in columns]} is in the table (fields: "
            f"{sorted(table)}). Fix: pass columns that match the data."
        )
    return Tower([c.build(table, embedding_dim) for c in present], name=name)
