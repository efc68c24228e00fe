"""An export seen only through what it serves: its signatures, its catalogue, its known users.

Why this exists: offline judgement (`tfrec.serving.offline`) and batch recommendations
(`tfrec.serving.batch`) must treat any servable the same way TF Serving would, whichever model
or tfrec version made it: a SavedModel with a ``recommend`` signature (and ``serving_default``
for pair scores). `ServedExport` loads one with plain `tf.saved_model.load` and wraps those
calls with numpy in and out, in bounded batches; the catalogue size, the users the export
knows and the split it was exported for are read from the module when it records them
(tfrec exports do), and are None otherwise.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfrec.serving.catalogue import as_strings
from tfrec.serving.export import latest_export


def _decode(values: np.ndarray) -> np.ndarray:
    return np.char.decode(np.asarray(values).astype(bytes), "utf-8")


def _encode(ids) -> tf.Tensor:
    return tf.constant(np.char.encode(as_strings(np.atleast_1d(ids), "user ids"), "utf-8"))


class ServedExport:
    """A loaded SavedModel and numpy access to its ``recommend`` / ``serving_default``.

    Args:
      path: A version directory, or a model directory (its latest version is used).

    Example:
      >>> served = ServedExport("saved_models/deepfm")
      >>> ids, scores = served.recommend(["196", "186"], k=10)
    """

    def __init__(self, path):
        self.path = latest_export(path)
        self._loaded = tf.saved_model.load(str(self.path))
        self.signatures = dict(self._loaded.signatures)
        if "recommend" not in self.signatures:
            raise ValueError(
                f"The SavedModel at {self.path} has no 'recommend' signature (it has "
                f"{sorted(self.signatures)}). Fix: export it with tfrec.serving.export_model "
                "(or `tfrec export`)."
            )

    @property
    def catalogue_size(self) -> int | None:
        """Number of items the export can recommend (None if it does not record it)."""
        ids = getattr(self._loaded, "catalogue_ids", None)
        return None if ids is None else int(ids.shape[0])

    @property
    def as_of(self) -> str | None:
        """What the export knows ("all", "test", "valid"; None if not recorded)."""
        value = getattr(self._loaded, "as_of", None)
        return None if value is None else value.numpy().decode("utf-8")

    def users(self) -> np.ndarray:
        """Every user id the export knows (seen items, side features or a history), in the
        order of its lookup table."""
        seen = getattr(self._loaded, "seen", None)
        table = getattr(seen, "table", None)
        if table is None:
            raise ValueError(
                f"The SavedModel at {self.path} does not list its users (no seen-items table). "
                "Fix: pass the user ids to recommend for explicitly."
            )
        keys, rows = tf.raw_ops.LookupTableExportV2(
            table_handle=table.resource_handle, Tkeys=tf.string, Tvalues=tf.int64
        )
        return _decode(keys.numpy()[np.argsort(rows.numpy(), kind="stable")])

    def recommend(self, user_ids, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(movie_ids, scores, titles)`` ``[B, k']`` of one request (k' = min(k, catalogue));
        empty slots have movie id ""."""
        out = self.signatures["recommend"](user_id=_encode(user_ids), k=tf.constant(k, tf.int32))
        return (
            _decode(out["movie_ids"].numpy()),
            out["scores"].numpy(),
            _decode(out["titles"].numpy()),
        )

    def score_pairs(self, user_ids, movie_ids, batch_size: int = 8192) -> np.ndarray:
        """``serving_default`` scores of aligned (user_id, movie_id) pairs, in batches."""
        if "serving_default" not in self.signatures:
            raise ValueError(
                f"The SavedModel at {self.path} has no 'serving_default' signature (pair "
                f"scores), only {sorted(self.signatures)}. Fix: judge it with "
                "protocols=('full',)."
            )
        users = np.atleast_1d(user_ids)
        movies = np.atleast_1d(movie_ids)
        score = self.signatures["serving_default"]
        out = [
            score(
                user_id=_encode(users[start : start + batch_size]),
                movie_id=_encode(movies[start : start + batch_size]),
            )["score"].numpy()
            for start in range(0, users.size, batch_size)
        ]
        return np.concatenate(out) if out else np.zeros(0, np.float32)
