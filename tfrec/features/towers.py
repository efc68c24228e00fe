"""Towers: the encoders of one side of a recommendation (the query or the candidate).

A tower is the unit every tfrec model is wired from. It exists so that one description of the
query side (a user, with demographics and history) and one of the candidate side (a movie, with
genres and title) serve every model: ranking heads read the per-field embeddings and first-order
weights, retrieval heads read the pooled vector, sequential heads read the ordered history.
A model's features are declared once, as columns (`tfrec.features.columns`).
"""

from __future__ import annotations

import tensorflow as tf

from tfrec.features.columns import Categorical, MultiCategorical, Numeric, Text
from tfrec.features.encoders import CategoricalEncoder, NumericEncoder
from tfrec.features.sequence import SequenceEncoder

RECENT_MOVIES = "recent_movie_ids"
"""Feature key of the user's latest movies strictly before the interaction, oldest to newest,
left-padded with "" (see `tfrec.data.recent_history`)."""


def movielens_user_columns(history: bool = True) -> list:
    """The query tower's default MovieLens columns (fields absent from a variant are skipped)."""
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
    """The candidate tower's default columns: id, genres, title words, release-year buckets."""
    return [
        Categorical("movie_id"),
        MultiCategorical("movie_genres", padding="-1"),
        Text("movie_title", min_count=2),
        Numeric("movie_title", num_buckets=10, transform="title_year"),
    ]


@tf.keras.utils.register_keras_serializable(package="tfrec")
class Tower(tf.keras.layers.Layer):
    """Embeds one side of an interaction: F pooled fields of size k, and optionally a sequence.

    Args:
      encoders: Field encoders (`CategoricalEncoder`, `NumericEncoder`) and at most one
        `SequenceEncoder`, all with one shared `embedding_dim`; usually made by `build_tower`.

    Call arguments:
      features: Dict of feature tensors with a leading batch dimension, raw or as returned by
        `preprocess` (keys ``"<tower>/<field>"``).

    Returns:
      Dict with, when the tower has fields, ``embeddings`` ``[B, F, k]`` (FM/DNN input),
      ``weights`` ``[B, F]`` (first order) and ``pooled`` ``[B, k]`` (the sum of the fields,
      exactly the side's vector in FM's cross term); and, with a sequence encoder,
      ``sequence`` ``[B, L, k]`` with its ``sequence_mask`` ``[B, L]``.

    Example:
      >>> tower = build_tower(table, [Categorical("user_id")], embedding_dim=8)
      >>> tower({"user_id": tf.constant(["196"])})["pooled"].shape
      TensorShape([1, 8])
    """

    def __init__(self, encoders, **kwargs):
        super().__init__(**kwargs)
        encoders = [tf.keras.layers.deserialize(e) if isinstance(e, dict) else e for e in encoders]
        if not encoders:
            raise ValueError("A Tower needs at least one encoder. Received: encoders=[]")
        dims = sorted({e.embedding_dim for e in encoders})
        if len(dims) != 1:
            raise ValueError(f"All encoders of a tower must share embedding_dim. Received: {dims}")
        names = [e.name for e in encoders]
        if len(set(names)) != len(names):
            raise ValueError(f"Encoder names must be unique within a tower. Received: {names}")
        sequences = [e for e in encoders if isinstance(e, SequenceEncoder)]
        if len(sequences) > 1:
            raise ValueError(
                f"A Tower holds at most one sequence. Received: {[e.name for e in sequences]}"
            )
        self.encoders = encoders
        self.embedding_dim = dims[0]

    @property
    def fields(self) -> list:
        """The pooled field encoders (everything but the sequence), in order."""
        return [e for e in self.encoders if not isinstance(e, SequenceEncoder)]

    @property
    def sequence(self) -> SequenceEncoder | None:
        """The tower's sequence encoder, or None."""
        found = [e for e in self.encoders if isinstance(e, SequenceEncoder)]
        return found[0] if found else None

    @property
    def field_names(self) -> list[str]:
        return [e.name for e in self.fields]

    @property
    def feature_keys(self) -> list[str]:
        """Raw feature keys the tower reads."""
        return sorted({e.key for e in self.encoders})

    def encoder(self, name: str):
        """The encoder called `name` (a clear KeyError names the choices)."""
        for encoder in self.encoders:
            if encoder.name == name:
                return encoder
        raise KeyError(f"Tower '{self.name}' has no encoder '{name}'. Has: {self.field_names}")

    def tie(self, other: Tower) -> None:
        """Ties this tower's shared sequence to `other`'s item field (a no-op without one)."""
        sequence = self.sequence
        if sequence is not None and sequence.shared_item_field is not None:
            sequence.tie(other.encoder(sequence.shared_item_field))

    def preprocessed_key(self, encoder) -> str:
        return f"{self.name}/{encoder.name}"

    def preprocess(self, features) -> dict:
        """String and numeric preprocessing only (lookups, tokenising, bucketizing): returns
        ``{"<tower>/<encoder>": ids}``. Feeding these back to `call` skips the work, so
        pipelines run it once per user or item instead of once per example."""
        return {self.preprocessed_key(e): e.preprocess(features) for e in self.encoders}

    def call(self, features):
        def embed(encoder):
            key = self.preprocessed_key(encoder)
            return encoder.embed(features[key]) if key in features else encoder(features)

        out = {}
        fields = [embed(e) for e in self.fields]
        if fields:
            embeddings = tf.stack([f[0] for f in fields], axis=1)
            out["embeddings"] = embeddings
            out["weights"] = tf.stack([f[1] for f in fields], axis=1)
            out["pooled"] = tf.reduce_sum(embeddings, axis=1)
        if self.sequence is not None:
            sequence = embed(self.sequence)
            out["sequence"], out["sequence_mask"] = sequence["embeddings"], sequence["mask"]
        return out

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


def scale_towers(schema: dict, embedding_dim: int = 16) -> tuple[Tower, Tower, dict]:
    """Query and candidate towers over a `tfrec.data.scale` schema, and the input `rename` map.

    Categorical columns become id embeddings with one row per id (encoders fed pre-computed ids,
    so no string work per row); dense columns become numeric fields. Columns with
    ``side == "user"`` form the query tower, the rest the candidate tower. `rename` maps each
    column to the tower's preprocessed input key, as `tfrec.data.scale.read_dataset` needs.
    """
    encoders, rename = {"user": [], "item": []}, {}
    names = {"user": "user_tower", "item": "item_tower"}
    for name, column in schema["columns"].items():
        if column["side"] == "label":
            continue
        if column["vocabulary"]:
            encoder = CategoricalEncoder(
                name, hash_bins=column["vocabulary"], embedding_dim=embedding_dim, name=name
            )
        else:
            encoder = NumericEncoder(name, embedding_dim=embedding_dim, name=name)
        encoders[column["side"]].append(encoder)
        rename[name] = f"{names[column['side']]}/{name}"
    query = Tower(encoders["user"], name=names["user"])
    candidate = Tower(encoders["item"], name=names["item"])
    return query, candidate, rename
