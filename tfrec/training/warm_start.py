"""Warm start: retrain a model on newer data without forgetting what it learned.

Why this exists: new users and movies arrive every day, and training from scratch throws away
every trained embedding to learn the new ids. A warm start builds the model for the new data
with the *previous* model's vocabularies extended by the new ids (old ids keep their index, new
ids are appended), so every table that an old id indexes keeps its trained row: field
embeddings and first-order weights of every encoder (tower fields, a sequence encoder's own
table, the tied item table of sequential models, NeuMF's side-by-side GMF|MLP rows, FFM's
field-aware rows), while new ids get freshly initialised rows. Everything whose shape does not
depend on the data is copied as is: hashed tables (Wide&Deep's crosses, hashed ids keep their
size), bucketized and standardised numeric fields (their boundaries and statistics are kept,
so their rows keep their meaning), dense layers and heads. Data-dependent non-trainable state
whose shape changes with the catalogue (a sampled softmax's per-item log-probabilities) is
rebuilt for the new data, as training recomputes it.

The optimizer state is kept too, when the previous model has one (a model fresh from `fit`,
or a run directory restored with its optimizer): Adam's moments (or Adagrad's accumulators)
are copied row for row like the weights, new rows start from the optimizer's initial state,
and the step count continues, so bias correction does not re-amplify old moments. Pass the
returned optimizer to `tfrec.training.fit` (``optimizer=warm.optimizer``).

Training on all new data, or only on what is new plus a replayed share of old interactions
(`replay_data`), is the caller's choice.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from tfrec.data.context import recent_history
from tfrec.data.splitdata import SplitData
from tfrec.data.splits import take
from tfrec.features.encoders import CategoricalEncoder
from tfrec.features.inputs import ModelInputs
from tfrec.features.sequence import SequenceEncoder
from tfrec.features.towers import RECENT_MOVIES
from tfrec.models.registry import build_model
from tfrec.training.pipelines import training_dataset

VOCABULARY_ENCODERS = ("CategoricalEncoder", "SequenceEncoder")
KEPT_STATISTICS = {"NumericEncoder": ("mean", "variance", "boundaries")}
"""Per encoder class, the adapted statistics the new model keeps from the previous one (so a
bucket row or a standardised vector keeps its meaning)."""


class WarmStartError(ValueError):
    """The previous model cannot seed a model for the new data (different architecture)."""


@dataclasses.dataclass
class WarmStart:
    """A model for new data seeded from a previous one, and what was carried over.

    Attributes:
      model: The new model (built), ready for `tfrec.training.fit`.
      optimizer: An optimizer holding the previous optimizer's state (same class and
        settings, learning rate as asked), to pass as ``fit(..., optimizer=...)``; None when
        the state was reset (then train with a fresh optimizer).
      vocabularies: ``{field: (ids kept, ids added)}`` for every vocabulary that was extended.
      variables: How each variable of the new model started: "copied", "rows" (known rows
        copied, new rows fresh) or "rebuilt" (data-dependent state made for the new data).
      optimizer_state: "kept (<n> steps)" or "reset: <why>".
    """

    model: tf.keras.Model
    optimizer: tf.keras.optimizers.Optimizer | None
    vocabularies: dict
    variables: dict
    optimizer_state: str

    @property
    def new_ids(self) -> int:
        """Ids added across all extended vocabularies."""
        return int(sum(added for _, added in self.vocabularies.values()))


# ---------------------------------------------------------------------- configurations


def _mismatch(path: str, old, new) -> WarmStartError:
    return WarmStartError(
        f"The previous model and the model for the new data differ at {path or 'the top'}. "
        f"Received: previous={_short(old)}, new={_short(new)}. Fix: warm start with the "
        "previous run's hyperparameters and data with the same columns."
    )


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def merge_configs(old, new, path: str = "", vocabularies: dict | None = None):
    """`new` (a model config built for the new data) with `old`'s vocabularies extended and
    `old`'s numeric statistics kept. Structure (classes, list lengths) must match."""
    vocabularies = {} if vocabularies is None else vocabularies
    if isinstance(new, dict):
        if not isinstance(old, dict):
            raise _mismatch(path, old, new)
        name = new.get("class_name")
        if name is not None and "config" in new:
            if old.get("class_name") != name:
                raise _mismatch(path, old.get("class_name"), name)
            if name in KEPT_STATISTICS:
                kept = {k: old["config"][k] for k in KEPT_STATISTICS[name] if k in old["config"]}
                return {**new, "config": {**new["config"], **kept}}
            if name in VOCABULARY_ENCODERS:
                return _extend_encoder(old, new, path, vocabularies)
        return {
            key: merge_configs(old[key], value, f"{path}/{key}", vocabularies)
            if key in old
            else value
            for key, value in new.items()
        }
    if isinstance(new, list):
        if not isinstance(old, list) or len(old) != len(new):
            raise _mismatch(path, old, new)
        return [
            merge_configs(o, n, f"{path}[{i}]", vocabularies)
            for i, (o, n) in enumerate(zip(old, new, strict=True))
        ]
    return new


def _extend_encoder(old: dict, new: dict, path: str, vocabularies: dict) -> dict:
    old_vocab = old["config"].get("vocabulary")
    new_vocab = new["config"].get("vocabulary")
    merged = merge_configs(
        {**old["config"], "vocabulary": None}, {**new["config"], "vocabulary": None}, path
    )
    if (old_vocab is None) != (new_vocab is None):
        raise _mismatch(f"{path} vocabulary", old_vocab is None, new_vocab is None)
    if old_vocab is not None:
        known = set(old_vocab)
        added = [token for token in new_vocab if token not in known]
        merged["vocabulary"] = list(old_vocab) + added
        vocabularies[new["config"].get("name", path)] = (len(old_vocab), len(added))
    return {**new, "config": merged}


def _build(model, data: SplitData, previous) -> tf.keras.Model:
    """Creates every weight of `model` that `previous` has: one inference call on real inputs
    (as a loaded run is built), then, if layers that only training builds are still missing
    (e.g. a streaming frequency estimator), the loss of one small training batch. Every
    variable is overwritten afterwards, so that batch leaves no trace."""
    inputs = ModelInputs.build(model, data, "test")
    model(inputs.gather(tf.constant([0]), tf.constant([0])), training=False)
    if len(model.weights) < len(previous.weights):
        batch = next(iter(training_dataset(model, data, num_negatives=1, batch_size=8, seed=0)))
        model.compute_loss(batch, training=True)
    return model


# ---------------------------------------------------------------------- weights


def _extended_tables(model) -> set[int]:
    """Ids of the variables indexed by a vocabulary (rows = vocabulary + 1 OOV row)."""
    tables = set()
    for tower in (model.query_tower, model.candidate_tower):
        for encoder in tower.encoders:
            if isinstance(encoder, CategoricalEncoder) and encoder.vocabulary is not None:
                tables |= {id(encoder.embedding.embeddings), id(encoder.weight.embeddings)}
            elif isinstance(encoder, SequenceEncoder) and encoder.vocabulary is not None:
                tables.add(id(encoder.embedding.embeddings))
    return tables


def _pairs(old_variables, new_variables, what: str):
    old_variables, new_variables = list(old_variables), list(new_variables)
    if len(old_variables) != len(new_variables):
        raise WarmStartError(
            f"The previous model has {len(old_variables)} {what} and the new one "
            f"{len(new_variables)}. Fix: warm start with the previous run's hyperparameters."
        )
    for old, new in zip(old_variables, new_variables, strict=True):
        if _leaf(old) != _leaf(new) or old.shape.rank != new.shape.rank:
            raise WarmStartError(
                f"The previous model's {what} do not line up with the new one's: "
                f"{old.name} {list(old.shape)} against {new.name} {list(new.shape)}. Fix: warm "
                "start with the previous run's hyperparameters."
            )
    return zip(old_variables, new_variables, strict=True)


def _leaf(variable) -> str:
    """A variable's own name ("embeddings", "kernel"), without its layer path or ":0"."""
    return variable.name.split("/")[-1].split(":")[0]


def _carry(old: tf.Variable, new: tf.Variable, tables: set[int], owner=None) -> str:
    """Copies `old` into `new` (whole, or its rows when `new` is a grown table)."""
    old_shape, new_shape = tuple(old.shape), tuple(new.shape)
    if old_shape == new_shape:
        new.assign(tf.cast(old, new.dtype))
        return "copied"
    grown = (
        len(old_shape) == len(new_shape) >= 1
        and old_shape[1:] == new_shape[1:]
        and new_shape[0] > old_shape[0]
    )
    if grown and id(owner if owner is not None else new) in tables:
        rows = old_shape[0]
        new.assign(tf.concat([tf.cast(old, new.dtype), new[rows:]], axis=0))
        return "rows"
    if not new.trainable and owner is None:
        return "rebuilt"
    raise WarmStartError(
        f"Cannot carry {old.name} {list(old_shape)} into {new.name} {list(new_shape)}. "
        "Fix: warm start with the previous run's hyperparameters."
    )


def _optimizer_slots(optimizer, variables) -> list | None:
    """Each trainable variable's slot variables (in order), or None if the layout is unknown."""
    slots = list(optimizer.variables)
    if not slots or slots[0] is not optimizer.iterations or not variables:
        return None
    slots = slots[1:]
    per, rest = divmod(len(slots), len(variables))
    if rest or per < 1:
        return None
    grouped = [slots[i * per : (i + 1) * per] for i in range(len(variables))]
    for var, group in zip(variables, grouped, strict=True):
        if any(tuple(s.shape) != tuple(var.shape) for s in group):
            return None
    return grouped


def _carry_optimizer(previous, model, tables: set[int], learning_rate):
    """A new optimizer with `previous.optimizer`'s state mapped onto `model`, or (None, why)."""
    old_opt = getattr(previous, "optimizer", None)
    if old_opt is None or not isinstance(old_opt, tf.keras.optimizers.Optimizer):
        return None, "reset: the previous model has no optimizer (train it, or restore a run)"
    steps = int(old_opt.iterations.numpy())
    if steps == 0:
        return None, "reset: the previous optimizer never stepped (no saved state)"
    old_vars, new_vars = previous.trainable_variables, model.trainable_variables
    old_slots = _optimizer_slots(old_opt, old_vars)
    if old_slots is None:
        return None, f"reset: unknown slot layout of {type(old_opt).__name__}"
    config = old_opt.get_config()
    if learning_rate is not None:
        config["learning_rate"] = float(learning_rate)
    optimizer = type(old_opt).from_config(config)
    optimizer.build(new_vars)
    new_slots = _optimizer_slots(optimizer, new_vars)
    for (_, new_var), olds, news in zip(
        _pairs(old_vars, new_vars, "trainable variables"), old_slots, new_slots, strict=True
    ):
        for old_slot, new_slot in zip(olds, news, strict=True):
            _carry(old_slot, new_slot, tables, owner=new_var)
    optimizer.iterations.assign(steps)
    return optimizer, f"kept ({steps} steps)"


def warm_start(previous, data: SplitData, hparams: dict | None = None, *, keep_optimizer=True,
               learning_rate=None) -> WarmStart:  # fmt: skip
    """A model for `data` that starts from the trained `previous` model (see module docstring).

    Args:
      previous: The trained model (built; e.g. from `fit`, or `tfrec.workflow.load_model`).
      data: The new `SplitData` (newer ratings, possibly new users and movies).
      hparams: The hyperparameters `previous` was built with (`build_model` overrides); the
        new model must have the same architecture.
      keep_optimizer: Carry `previous.optimizer`'s state over (if it has one).
      learning_rate: Learning rate of the returned optimizer (default: the previous one's).

    Returns:
      A `WarmStart`. Known ids' rows equal the previous model's before any training.

    Example:
      >>> warm = warm_start(old_model, new_data, {"embedding_dim": 32})
      >>> fit(warm.model, new_data, optimizer=warm.optimizer or "adam", epochs=3)
    """
    name = getattr(previous, "registry_name", None)
    if name is None:
        raise TypeError(
            "`previous` must be a registered tfrec model (built with build_model). Received: "
            f"previous={type(previous).__name__}"
        )
    if not previous.built:
        raise ValueError("`previous` has no weights yet. Fix: train (or load) it first.")
    fresh = build_model(name, data, **(hparams or {}))
    vocabularies: dict = {}
    config = merge_configs(
        tf.keras.layers.serialize(previous), tf.keras.layers.serialize(fresh), "", vocabularies
    )
    for key in ("compile_config", "build_config"):
        config.pop(key, None)
    try:
        model = tf.keras.layers.deserialize(config)
    except (TypeError, ValueError) as error:
        raise WarmStartError(
            f"The previous model's layout does not fit the model for the new data ({error}). "
            "Fix: warm start with the previous run's hyperparameters."
        ) from error
    model = _build(model, data, previous)
    tables = _extended_tables(model)
    variables = {
        new.name: _carry(old, new, tables)
        for old, new in _pairs(previous.weights, model.weights, "weights")
    }
    optimizer, state = None, "reset: keep_optimizer=False"
    if keep_optimizer:
        optimizer, state = _carry_optimizer(previous, model, tables, learning_rate)
    return WarmStart(model, optimizer, vocabularies, variables, state)


# ---------------------------------------------------------------------- replay


@dataclasses.dataclass
class ReplayData(SplitData):
    """A `SplitData` whose training rows are the new interactions plus a replayed share of
    the old ones, while what is *known* (seen items, validation masks, popularity) stays the
    whole train split. Training rows keep the histories computed on the whole train split,
    so a new interaction's history still holds the old items before it."""

    rows: np.ndarray | None = None
    history_length: int = 0
    _rows_table: dict | None = dataclasses.field(default=None, repr=False)

    @property
    def train(self) -> dict:
        if self._rows_table is None:
            full = self.split.train
            table = take(full, self.rows)
            if self.history_length:
                table[RECENT_MOVIES] = recent_history(full, length=self.history_length)[self.rows]
            self._rows_table = table
        return dict(self._rows_table)


def _pair_keys(users, movies) -> np.ndarray:
    users, movies = np.asarray(users).astype(str), np.asarray(movies).astype(str)
    return np.char.add(np.char.add(users, "\x1f"), movies)


def replay_data(data: SplitData, previous_train: dict, share: float, model, *,
                seed: int = 0) -> ReplayData:  # fmt: skip
    """`data` training `model` on its new interactions and a `share` of the old ones.

    An interaction is old when its (user_id, movie_id) pair is in `previous_train` (the
    ratings the previous model was trained on); every other training row is new. `share` in
    [0, 1] of the old rows is drawn uniformly (seeded) and replayed, to keep what the model
    knows from drifting away. Interaction models only: a sequential model learns from whole
    histories (windows of each user's sequence), so it trains on all the new data.
    """
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
        raise ValueError(
            f"`share` (the replayed share of old interactions) must be in [0, 1]. "
            f"Received: share={share!r}. Fix: e.g. 0.2."
        )
    if getattr(model, "examples", "interactions") != "interactions":
        raise ValueError(
            f"Replay trains on a subset of interactions, but {type(model).__name__} learns from "
            f"whole user sequences. Received: share={share!r}. Fix: train it on all the new "
            "data (no replay share)."
        )
    train = data.split.train
    old = np.isin(
        _pair_keys(train["user_id"], train["movie_id"]),
        _pair_keys(previous_train["user_id"], previous_train["movie_id"]),
    )
    rng = np.random.default_rng(seed)
    replayed = old & (rng.random(old.size) < share)
    rows = np.flatnonzero(~old | replayed)
    if rows.size == 0:
        raise ValueError(
            "Nothing to train on: every training interaction is old and share=0. "
            f"Received: {old.size} training rows, all in the previous run. Fix: raise share."
        )
    return ReplayData(data.movielens, data.split, rows=rows, history_length=model.history_length)
