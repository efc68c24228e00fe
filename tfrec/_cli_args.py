"""Argument checks of the `tfrec` command: usage errors, found before any work starts.

Exists so that a wrong command line fails at once with exit status 2 and a message naming the
flag or setting, the value received and the fix ("dnn_units must be a list of positive
integers. Received: 'oops'"), instead of a traceback from deep inside training minutes later.
Settings are checked against the model registry: names against the model's hyperparameters
and `TRAIN_DEFAULTS`, values against the type of their default.
"""

from __future__ import annotations

import json
from pathlib import Path


class UsageError(Exception):
    """A command line the CLI refuses before doing any work (exit status 2)."""


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


positive_int.__name__ = "positive integer"


def k_value(text: str) -> int:
    """argparse type for ``--k``: an integer >= 0 (larger than the catalogue is clipped)."""
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


k_value.__name__ = "k (an integer >= 0)"


def parse_sets(items: list[str]) -> dict:
    out = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(
                f"--set expects name=value. Received: --set {item!r}. Fix: e.g. "
                "--set dnn_units=[128,64]"
            )
        try:
            out[name.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[name.strip()] = value
    return out


def load_config(path: str | None) -> dict:
    """The settings in a JSON config file: a UTF-8 JSON object (anything else: UsageError)."""
    if not path:
        return {}
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise UsageError(f"Config file not found. Received: --config {path}") from None
    except OSError as err:
        raise UsageError(f"Cannot read config file {path}: {err.strerror}.") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        raise UsageError(
            f"Config file {path} is not UTF-8 text: byte {data[err.start]:#04x} at line {line}, "
            f"column {column}. Fix: save it as UTF-8 JSON."
        ) from None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as err:
        raise UsageError(
            f"Config file {path} is not valid JSON: {err.msg} at line {err.lineno}, column "
            f"{err.colno}."
        ) from None
    if not isinstance(config, dict):
        from tfrec.serving.rest import json_type  # the REST errors' names; loads TF only here

        raise UsageError(
            f"Config file {path} must hold a JSON object of settings, e.g. "
            f'{{"embedding_dim": 32, "epochs": 10}}. Received: a JSON {json_type(config)}.'
        )
    return config


def _expected(default) -> tuple[str, object] | None:
    """(description, check) of the values a setting with this default takes; None: unchecked."""
    if isinstance(default, bool):
        return "true or false", lambda v: isinstance(v, bool)
    if isinstance(default, int):
        return "an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)
    if isinstance(default, float):
        return "a number", lambda v: isinstance(v, int | float) and not isinstance(v, bool)
    if isinstance(default, str):
        return "a string", lambda v: isinstance(v, str)
    if isinstance(default, tuple | list) and default and all(type(v) is int for v in default):
        return (
            "a list of positive integers",
            lambda v: isinstance(v, list) and all(type(x) is int and x > 0 for x in v),
        )
    return None


def check_settings(model: str, settings: dict, where: str = "") -> None:
    """Raises UsageError for an unknown model, an unknown setting or a value of the wrong type.

    `where` says where the settings come from (e.g. "in config file my.json"), for messages.
    """
    from tfrec.models import TRAIN_DEFAULTS, model_class, model_defaults

    try:
        model_class(model)
    except ValueError as err:
        raise UsageError(str(err)) from None
    hparams = model_defaults(model)
    defaults = {**hparams, **TRAIN_DEFAULTS}
    origin = f" ({where})" if where else ""
    unknown = sorted(set(settings) - set(defaults))
    if unknown:
        raise UsageError(
            f"Unknown setting(s) {unknown}{origin} for model {model!r}. Hyperparameters: "
            f"{sorted(hparams)}; training settings: {sorted(TRAIN_DEFAULTS)}. Fix: see "
            "`tfrec models`."
        )
    for name, value in settings.items():
        expected = _expected(defaults[name])
        if expected is not None and not expected[1](value):
            example = json.dumps(defaults[name], separators=(",", ":"))
            raise UsageError(
                f"{name} must be {expected[0]}. Received: {value!r}{origin}. Fix: e.g. "
                f"{name}={example}"
            )


def data_source(args) -> dict:
    """The data source flags, checked (UsageError) before anything is fetched."""
    from tfrec.data import SOURCES, VARIANTS

    if args.variant not in VARIANTS:
        raise UsageError(f"Unknown --variant. Received: {args.variant!r}. Valid: {VARIANTS}.")
    if args.source not in SOURCES:
        raise UsageError(f"Unknown --source. Received: {args.source!r}. Valid: {SOURCES}.")
    if args.source == "local" and not args.path:
        raise UsageError("--source local needs --path DIR (a MovieLens directory or zip).")
    return {
        "variant": args.variant,
        "source": args.source,
        "data_dir": args.data_dir,
        "path": args.path,
    }
