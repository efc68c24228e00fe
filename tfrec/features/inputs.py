"""A model's inputs from a `SplitData`: side tables, histories as of a split, preprocessed once.

Why this exists: string work (vocabulary lookups, title tokenising, year parsing) is by far the
most expensive part of a small recommender's step, yet it depends only on the user, the item or
the training row. `ModelInputs` runs each tower's preprocessing once per user, once per item and
once per training row, then gathers ids per batch by index, which makes training and
full-catalogue scoring several times faster than joining raw strings per example. Histories
(`RECENT_MOVIES`) are derived here from what is known at a point in time: strictly earlier per
training row, or the latest `history_length` items as of "valid", "test" or "all".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from tfrec.data.context import last_history, recent_history
from tfrec.data.splitdata import SplitData
from tfrec.features.store import FeatureStore, string_tensor
from tfrec.features.towers import RECENT_MOVIES


def _take(table: dict, rows: np.ndarray) -> dict:
    return {k: np.asarray(v)[rows] for k, v in table.items()}


def example_table(data, history_length: int = 0) -> dict:
    """Training interactions joined with their side features, to adapt columns to.

    `data` is a `SplitData` (its train rows, items and users are joined and, with
    `history_length`, each row's strictly-earlier history added) or an already joined table
    (a dict of equal-length numpy columns), returned as is.
    """
    if isinstance(data, dict):
        return data
    if not isinstance(data, SplitData):
        raise TypeError(
            "`data` must be a tfrec.data.SplitData or a joined table (dict of numpy columns). "
            f"Received: data={type(data).__name__}"
        )
    table = dict(data.train)
    table.update(_take(data.items, data.train["movie_index"]))
    table.update(_take(data.users, data.train["user_index"]))
    if history_length:
        table[RECENT_MOVIES] = recent_history(data.train, length=history_length)
    return table


def user_table(data: SplitData, as_of: str, history_length: int) -> dict:
    """One row per user (user-index order): side features plus the history known at `as_of`
    (none for "train": training rows carry their own strictly-earlier histories)."""
    table = data.users
    if history_length and as_of != "train":
        last = last_history(data.known(as_of), user_ids=data.user_ids, length=history_length)
        table[RECENT_MOVIES] = last["history"]
    return table


def feature_store(data: SplitData, as_of: str = "all", history_length: int = 20) -> FeatureStore:
    """The id-keyed side-feature store an export serves from: users, items, and each user's
    latest `history_length` items known at `as_of` (everything, by default)."""
    history = None
    if history_length:
        last = last_history(data.known(as_of), user_ids=data.user_ids, length=history_length)
        history = {"user_id": last["user_id"], RECENT_MOVIES: last["history"]}
    users = data.movielens.users
    return FeatureStore(users, data.items, history)


@dataclass
class ModelInputs:
    """A model's preprocessed inputs split by where they vary: per user, per item, per row.

    Raw ids (``user_id``, ``movie_id``) are always included; raw features a model reads
    outside its towers (`raw_query_keys`, `raw_candidate_keys`) are included unprocessed.

    Example:
      >>> inputs = ModelInputs.build(model, data, "test")     # histories as of test time
      >>> features = inputs.gather(user_index, item_index)    # one model input batch
    """

    per_user: dict
    per_item: dict
    per_row: dict

    @classmethod
    def build(cls, model, data: SplitData, as_of: str, rows: dict | None = None) -> ModelInputs:
        """Preprocesses `model`'s inputs for `data` as of `as_of`; `rows` (e.g. the training
        rows with their histories) provides the query-side features that neither the users
        table nor the histories as of `as_of` have. Candidate features always come per item:
        a row's own item would leak the label into its sampled negatives."""
        users = user_table(data, as_of, model.history_length)
        rows = rows or {}
        per_user = {"user_id": string_tensor(data.user_ids)}
        per_item = {"movie_id": string_tensor(data.item_ids)}
        per_row = {}
        sides = (
            (model.query_tower, getattr(model, "raw_query_keys", ()), users, per_user, rows,
             "user"),
            (model.candidate_tower, getattr(model, "raw_candidate_keys", ()), data.items,
             per_item, {}, "item"),
        )  # fmt: skip
        for tower, raw_keys, table, out, row_table, side in sides:
            for encoder in tower.encoders:
                key = tower.preprocessed_key(encoder)
                if encoder.key in table:
                    out[key] = encoder.preprocess({encoder.key: string_tensor(table[encoder.key])})
                elif encoder.key in row_table:
                    per_row[key] = encoder.preprocess(
                        {encoder.key: string_tensor(row_table[encoder.key])}
                    )
                else:
                    raise KeyError(
                        f"Field '{encoder.name}' reads '{encoder.key}', which neither the {side} "
                        f"table ({sorted(table)}) nor the rows have. Fix: give the model a "
                        "history_length, or drop the column."
                    )
            for name in raw_keys:
                if name in table:
                    out[name] = string_tensor(table[name])
                elif name in row_table:
                    per_row[name] = string_tensor(row_table[name])
                else:
                    raise KeyError(f"The model reads '{name}' raw, which the {side} table lacks.")
        return cls(per_user, per_item, per_row)

    def gather(self, user_index, item_index, row_index=None) -> dict:
        """One batch of model features for aligned (user, item[, row]) indices."""
        features = {k: tf.gather(v, user_index) for k, v in self.per_user.items()}
        features.update({k: tf.gather(v, item_index) for k, v in self.per_item.items()})
        if row_index is not None:
            features.update({k: tf.gather(v, row_index) for k, v in self.per_row.items()})
        return features

    def items(self, item_index) -> dict:
        """Candidate-side features of `item_index` (any shape: ``[P, G]`` gives ``[P, G, ...]``)."""
        return {k: tf.gather(v, item_index) for k, v in self.per_item.items()}

    def rows(self, user_index, row_index) -> dict:
        """Query-side features of training rows (per-user inputs plus the rows' own)."""
        features = {k: tf.gather(v, user_index) for k, v in self.per_user.items()}
        features.update({k: tf.gather(v, row_index) for k, v in self.per_row.items()})
        return features

    def users(self, user_index) -> dict:
        """Query-side features of `user_index` (per-user inputs only)."""
        return {k: tf.gather(v, user_index) for k, v in self.per_user.items()}
