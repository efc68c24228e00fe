"""The one place for defaults: each model's hyperparameters, the training settings, presets.

Why this exists: adding a model must mean writing one file, and a default must have one home.
A model class registers itself where it is defined (`@register_model("deepfm", **defaults)`),
with every hyperparameter's default; `build_model` (and `tfrec train <model>`, the benchmarks,
the notebooks) build from those, `tfrec models` prints them, and a typo fails loudly. Training
settings have their defaults here too (`TRAIN_DEFAULTS`), and tuned combinations of model and
training settings are named `PRESETS` (``make run`` is the "movielens-100k" preset).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

_MODELS: dict[str, type] = {}
_DEFAULTS: dict[str, dict] = {}
_TRAIN: dict[str, dict] = {}

TRAIN_DEFAULTS = {
    "epochs": 20,
    "batch_size": 2048,
    "learning_rate": 2e-3,
    "optimizer": "adam",
    "num_negatives": 8,
    "negative_distribution": "uniform",
    "patience": 3,
    "monitor": "val_full_ndcg@10",
    "seed": 0,
    "steps_per_execution": 8,
}
"""Training settings of `tfrec.training.fit` and `tfrec train`; anything else is a model
hyperparameter. ``monitor`` is the validation ranking metric early stopping watches;
``steps_per_execution`` runs that many training steps per call into TensorFlow (Keras'
setting: per-step Python overhead paid once per call; batch-level callbacks see every N-th
step), the 16% measured on small models in benchmarks/RESULTS.md; `fit` runs one step per
call when an epoch is too short to pay for tracing the loop (`tfrec.training.fit.CALLS_PER_EPOCH`)."""


@dataclass(frozen=True)
class Preset:
    """A tuned model + training configuration, by name (see `PRESETS`)."""

    model: str
    hparams: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    note: str = ""


PRESETS = {
    "movielens-100k": Preset(
        model="deepfm",
        hparams={"embedding_dim": 32, "dnn_units": [128, 64], "dropout": 0.1},
        train={"epochs": 12, "num_negatives": 8, "monitor": "val_sampled_ndcg@10"},
        note="What `make run` trains: the best of the search in benchmarks/RESULTS.md "
        "(DeepFM on ml-100k leave-one-out).",
    ),
}


def register_model(name: str, train: dict | None = None, **defaults):
    """Class decorator: registers a `tfrec.models.Recommender` subclass under `name`.

    `defaults` holds every hyperparameter of the class's ``from_data`` builder (which must
    accept exactly these keywords); they are the only defaults tfrec has for the model.
    `train` overrides `TRAIN_DEFAULTS` for this model (e.g. a smaller batch of sequences).
    """
    check_settings(train or {}, TRAIN_DEFAULTS, f"training setting(s) for model '{name}'")

    def decorate(cls):
        if name in _MODELS:
            raise ValueError(f"A model is already registered as '{name}'.")
        params = inspect.signature(cls.from_data).parameters
        accepted = {p for p in params if p not in ("data", "cls")}
        if set(defaults) != accepted:
            raise TypeError(
                f"{cls.__name__}.from_data takes {sorted(accepted)} but register_model('{name}') "
                f"gives defaults for {sorted(defaults)}. Fix: give exactly one default for each."
            )
        cls.registry_name = name
        _MODELS[name] = cls
        _DEFAULTS[name] = dict(defaults)
        _TRAIN[name] = dict(train or {})
        return cls

    return decorate


def available_models() -> list[str]:
    return sorted(_MODELS)


def model_class(name: str) -> type:
    """The registered class of model `name`."""
    if name not in _MODELS:
        raise ValueError(
            f"Unknown model. Received: model={name!r}. Available: {', '.join(available_models())}."
        )
    return _MODELS[name]


def model_defaults(name: str) -> dict:
    """The registered default hyperparameters of a model (a copy)."""
    model_class(name)
    return dict(_DEFAULTS[name])


def train_defaults(name: str | None) -> dict:
    """The training settings model `name` trains with by default (`TRAIN_DEFAULTS` plus the
    model's registered overrides; just `TRAIN_DEFAULTS` for None or an unregistered model)."""
    return {**TRAIN_DEFAULTS, **_TRAIN.get(name, {})}


def check_settings(settings: dict, allowed, what: str) -> None:
    """Raises a TypeError naming unknown keys of `settings`."""
    unknown = sorted(set(settings) - set(allowed))
    if unknown:
        raise TypeError(f"Unknown {what} {unknown}. Valid: {sorted(allowed)}.")


def build_model(name: str, data, **hparams):
    """Builds model `name` with its columns adapted to `data` (a `SplitData` or a joined table).

    Unknown hyperparameters raise a TypeError naming them, so a typo in a config file or a
    flag never silently falls back to a default.
    """
    cls = model_class(name)
    check_settings(hparams, _DEFAULTS[name], f"hyperparameter(s) for model '{name}'")
    return cls.from_data(data, **{**_DEFAULTS[name], **hparams})


def preset(name: str) -> Preset:
    """The named `Preset` (a clear error lists the names)."""
    if name not in PRESETS:
        raise ValueError(
            f"Unknown preset. Received: preset={name!r}. Available: {sorted(PRESETS)}."
        )
    return PRESETS[name]
