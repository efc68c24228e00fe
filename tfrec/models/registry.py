"""A name -> builder registry, so `tfrec train <model>` and the benchmarks find every model.

Exists so that adding a model means writing one file that registers itself: the CLI, the
trainer, the evaluator and the exporter only ever call `build_model(name, table, ...)`.
"""

from __future__ import annotations

from collections.abc import Callable

_BUILDERS: dict[str, tuple[Callable, dict]] = {}


def register_model(name: str, **defaults):
    """Decorator registering `builder(table, **hparams) -> RankingModel` under `name`."""

    def decorate(builder):
        if name in _BUILDERS:
            raise ValueError(f"A model is already registered as '{name}'.")
        _BUILDERS[name] = (builder, defaults)
        return builder

    return decorate


def available_models() -> list[str]:
    return sorted(_BUILDERS)


def model_defaults(name: str) -> dict:
    """The registered default hyperparameters of a model (a copy)."""
    return dict(_lookup(name)[1])


def _lookup(name: str):
    if name not in _BUILDERS:
        raise ValueError(
            f"Unknown model. Received: model={name!r}. Available: {', '.join(available_models())}."
        )
    return _BUILDERS[name]


def build_model(name: str, table: dict, **hparams):
    """Builds model `name` with its columns adapted to `table` (joined training rows).

    Unknown hyperparameters raise a TypeError naming them, so a typo in a config file or a
    flag never silently falls back to a default.
    """
    builder, defaults = _lookup(name)
    unknown = sorted(set(hparams) - set(defaults))
    if unknown:
        raise TypeError(
            f"Unknown hyperparameter(s) {unknown} for model '{name}'. Valid: {sorted(defaults)}."
        )
    return builder(table, **{**defaults, **hparams})
