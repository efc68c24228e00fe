"""Two-tower retrieval model: user and movie vectors whose dot product ranks the whole catalogue.

A two-tower model exists for the first stage of a recommender: because the score is a dot
product of a query vector and a candidate vector, every candidate vector can be computed once
and put in an (approximate) nearest-neighbour index, and a user is matched against millions of
movies in milliseconds. Each tower reads the same feature columns as the ranking models (a
`tfrec.features.Tower`), optionally runs an MLP, and L2-normalises, so logits are cosines
divided by a temperature. It trains with the injected task, by default the corrected in-batch
softmax (`tfrec.tasks.InBatchSoftmax`: log-Q, accidental hits, mixed negatives).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfrec.features.inputs import example_table
from tfrec.layers import MLP, L2Normalize
from tfrec.models.base import Recommender
from tfrec.models.deepfm import check_units
from tfrec.models.fm import movielens_towers
from tfrec.models.registry import register_model
from tfrec.tasks import InBatchSoftmax

REPRESENTATIONS = ("pooled", "concat")


@register_model(
    "two_tower",
    embedding_dim=32,
    units=(64,),
    representation="pooled",
    temperature=0.05,
    logq="streaming",
    mixed_negatives=True,
    remove_accidental_hits=True,
    catalogue_size=None,
    l2=0.0,
    history_length=20,
)
@tf.keras.utils.register_keras_serializable(package="tfrec")
class TwoTower(Recommender):
    """Two-tower model: normalised query and candidate vectors, logits = cosine / temperature.

    Args:
      query_tower: `tfrec.features.Tower` of the query side (or its serialized config).
      candidate_tower: Tower of the candidate side.
      units: Sizes of the MLP after each tower (last = output size); () for no MLP.
      representation: "pooled" (the tower's sum of field embeddings, FM's user/movie vector)
        or "concat" (the field embeddings concatenated; needs `units` when the towers have
        different numbers of fields).
      temperature: Logits are cosine / temperature.
      **kwargs: `tfrec.models.Recommender` arguments (task, history_length, l2).

    Call arguments:
      features: Dict of per-pair feature tensors.
      training: Whether the MLPs run in training mode.

    Returns:
      Logits ``[B]`` (cosine / temperature); encodings carry the unit ``vector`` an index
      stores (`dot_product` is True).

    Example:
      >>> model = build_model("two_tower", data, embedding_dim=32)
      >>> fit(model, data, epochs=5)
      >>> vectors = model.encode_candidates(items)["vector"]
    """

    dot_product = True
    """`score_all` is ``query["vector"] @ candidates["vector"].T`` scaled: indexes can serve it."""

    def __init__(self, query_tower, candidate_tower, units, representation, temperature,
                 **kwargs):  # fmt: skip
        super().__init__(query_tower, candidate_tower, **kwargs)
        if representation not in REPRESENTATIONS:
            raise ValueError(
                f"`representation` must be one of {REPRESENTATIONS}. "
                f"Received: representation={representation!r}"
            )
        if isinstance(temperature, bool) or not float(temperature) > 0:
            raise ValueError(f"`temperature` must be > 0. Received: temperature={temperature!r}")
        self.units = check_units(units, "units", allow_empty=True)
        fields = (len(self.query_tower.fields), len(self.candidate_tower.fields))
        if representation == "concat" and not self.units and fields[0] != fields[1]:
            raise ValueError(
                "With representation='concat' the towers give vectors of different sizes "
                f"({fields[0]} and {fields[1]} fields). Received: units=(). Fix: pass units, "
                "e.g. units=(64,)."
            )
        self.representation = representation
        self.temperature = float(temperature)
        self.query_mlp = self._mlp("user_mlp")
        self.candidate_mlp = self._mlp("movie_mlp")
        self.normalize = L2Normalize(name="l2_normalize")

    def _mlp(self, name):
        if not self.units:
            return None
        return MLP(self.units[:-1], output_units=self.units[-1], name=name)

    def _encode(self, tower, mlp, features, training):
        out = tower(features)
        if self.representation == "pooled":
            x = out["pooled"]
        else:
            e = out["embeddings"]
            x = tf.reshape(e, [-1, e.shape[1] * e.shape[2]])
        if mlp is not None:
            x = mlp(x, training=training)
        return {"vector": self.normalize(tf.cast(x, tf.float32)), "embeddings": out["embeddings"]}

    def encode_query(self, features, training=False):
        return self._encode(self.query_tower, self.query_mlp, features, training)

    def encode_candidates(self, features, training=False):
        return self._encode(self.candidate_tower, self.candidate_mlp, features, training)

    def score_pairs(self, query, candidates, training=False):
        return tf.reduce_sum(query["vector"] * candidates["vector"], axis=1) / self.temperature

    def score_all(self, query, candidates, training=False):
        logits = tf.matmul(query["vector"], candidates["vector"], transpose_b=True)
        return logits / self.temperature

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units, representation=self.representation, temperature=self.temperature
        )
        return config

    @classmethod
    def from_data(cls, data, embedding_dim, units, representation, temperature, logq,
                  mixed_negatives, remove_accidental_hits, catalogue_size, l2, history_length):  # fmt: skip
        """TwoTower on the default MovieLens columns, trained with `InBatchSoftmax`.

        ``catalogue_size`` (for mixed negatives' log-Q) defaults to the number of items the
        negatives are drawn from: the catalogue of a `SplitData` (items absent from the train
        split included), or the distinct movies of a joined table.
        """
        table = example_table(data, history_length)
        if catalogue_size is None:
            catalogue_size = getattr(data, "num_items", None)
        if catalogue_size is None and "movie_id" in table:
            catalogue_size = int(np.unique(table["movie_id"]).size)
        task = InBatchSoftmax(
            logq=logq,
            mixed_negatives=mixed_negatives,
            remove_accidental_hits=remove_accidental_hits,
            catalogue_size=catalogue_size,
            name="retrieval",
        )
        towers = movielens_towers(table, embedding_dim, history_length)
        return cls(*towers, units=units, representation=representation, temperature=temperature,
                   task=task, history_length=history_length, l2=l2)  # fmt: skip
