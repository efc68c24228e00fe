"""The `tfrec` command: fetch data, train, evaluate, export and recommend from a shell.

    tfrec data fetch --variant 100k          # download (or reuse the cache) and summarise
    tfrec models                             # registered models, defaults, presets
    tfrec train deepfm --epochs 20           # train on the leave-one-out split, save to runs/
    tfrec train --preset movielens-100k      # the tuned configuration `make run` trains
    tfrec train deepfm --strategy multi_worker   # on a cluster (TF_CONFIG); resumable
    tfrec evaluate --model-dir runs/deepfm   # sampled and full ranking next to popularity
    tfrec export --model-dir runs/deepfm     # a TF Serving SavedModel in saved_models/deepfm/<n>
    tfrec recommend --user 196 --k 10        # top-k titles from the latest export
    tfrec run                                # everything above, as `make run` does

Hyperparameters and training settings come from a preset (`--preset`), a JSON config file
(`--config`) and/or `--set name=value` flags (values parsed as JSON, e.g.
`--set dnn_units=[128,64]`); later sources win. Every default lives in the model registry
(`tfrec models` prints them): training settings are the keys of `TRAIN_DEFAULTS`, everything
else is a hyperparameter of the model.

Errors print one line, ``tfrec: error: <what, the value received, the fix>``, without a
traceback (add ``--debug`` for it). Exit status: 0 on success; 2 for a usage error, found
before any work starts (a bad flag, a ``--set`` value of the wrong type, a config file that
is not a UTF-8 JSON object, an unknown model, preset or setting); 1 when the command ran and
failed (data that cannot be fetched, a missing run directory, a corrupt export, ...).
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path

from tfrec._cli_args import (
    UsageError,
    check_settings,
    data_source,
    k_value,
    load_config,
    parse_sets,
    positive_int,
)


def _split_settings(settings: dict) -> tuple[dict, dict]:
    """Separates training settings (`TRAIN_DEFAULTS` keys) from model hyperparameters."""
    from tfrec.models import TRAIN_DEFAULTS

    train = {k: v for k, v in settings.items() if k in TRAIN_DEFAULTS}
    model_hp = {k: v for k, v in settings.items() if k not in TRAIN_DEFAULTS}
    return train, model_hp


def cmd_data_fetch(args) -> None:
    from tfrec.data import leave_one_out, load_movielens

    ml = load_movielens(**data_source(args))
    split = leave_one_out(ml.ratings)
    print(
        f"MovieLens {ml.variant} (source: {ml.source_description}): {ml.num_users:,} users, "
        f"{ml.num_movies:,} movies, {ml.num_ratings:,} ratings"
    )
    sizes = " / ".join(f"{len(part['user_index']):,}" for part in split)
    print(f"leave-one-out split (train / valid / test): {sizes}")


def cmd_data_verify(args) -> None:
    from tfrec.data import verify_cache

    for report in verify_cache(args.variant, args.source, data_dir=args.data_dir):
        print(report)


def cmd_train(args) -> None:
    from tfrec import workflow
    from tfrec.models import preset

    model, settings = args.model, {}
    if args.preset:
        try:
            chosen = preset(args.preset)
        except ValueError as err:
            raise UsageError(str(err)) from None
        if model not in (None, chosen.model):
            raise UsageError(
                f"Preset {args.preset!r} trains {chosen.model!r}. Received: model={model!r}. "
                "Fix: drop the model name or the preset."
            )
        model, settings = chosen.model, {**chosen.hparams, **chosen.train}
    if model is None:
        raise UsageError("Name a model (e.g. `tfrec train deepfm`) or a --preset.")
    config, sets = load_config(args.config), parse_sets(args.set)
    check_settings(model, config, f"in config file {args.config}")
    check_settings(model, sets, "from --set")
    settings.update(config)
    settings.update(sets)
    for flag in ("epochs", "batch_size", "learning_rate"):
        if getattr(args, flag) is not None:
            settings[flag] = getattr(args, flag)
    train_cfg, model_hp = _split_settings(settings)
    output = Path(args.output or f"runs/{model}")
    strategy, backup = _distribution(args, output)
    result = workflow.train(model, data_source(args), model_hp, train_cfg, output,
                            strategy=strategy, backup_dir=backup,
                            save_freq=args.save_freq)  # fmt: skip
    print(workflow.format_results({model: result.metrics}))
    if _is_chief(strategy):
        print(f"saved to {output}")


def _distribution(args, output: Path):
    """The strategy `--strategy` names (cluster from TF_CONFIG) and the backup directory."""
    from tfrec.training.distribute import strategy_from_name

    strategy = strategy_from_name(args.strategy, min_shard_bytes=args.min_shard_bytes)
    backup = None if args.no_backup else Path(args.backup_dir or f"{output}.backup")
    return strategy, backup


def _is_chief(strategy) -> bool:
    from tfrec.training.distribute import is_chief

    return is_chief(strategy)


def _save_freq(value: str):
    """``epoch`` or a number of steps, for --save-freq."""
    if value == "epoch":
        return value
    try:
        steps = int(value)
    except ValueError:
        steps = 0
    if steps < 1:
        raise argparse.ArgumentTypeError(
            f"expects 'epoch' or a number of steps >= 1. Received: --save-freq {value}"
        )
    return steps


def cmd_evaluate(args) -> None:
    from tfrec import workflow

    print(workflow.format_results(workflow.evaluate_run(Path(args.model_dir), with_baseline=True)))


def cmd_export(args) -> None:
    from tfrec import workflow
    from tfrec.serving.export import check_name

    if args.name is not None:
        try:
            check_name(args.name)
        except ValueError as err:
            raise UsageError(f"--name: {err}") from None

    path = workflow.export_run(
        Path(args.model_dir), base_dir=Path(args.base_dir), name=args.name, as_of=args.as_of
    )
    print(f"exported to {path}")


def cmd_recommend(args) -> None:
    from tfrec import workflow

    for line in workflow.recommend_lines(Path(args.model), args.user, args.k):
        print(line)


def cmd_run(args) -> None:
    from tfrec import workflow

    workflow.main_job(epochs=args.epochs, base_dir=Path(args.base_dir), user=args.user)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tfrec", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--debug", action="store_true", help="print the traceback of an error")
    # Accepted after the subcommand too; SUPPRESS keeps a --debug given before it.
    debug = argparse.ArgumentParser(add_help=False)
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="same")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name, help):
        return sub.add_parser(name, help=help, parents=[debug])

    def data_args(p):
        p.add_argument("--variant", default="100k", help="100k, 1m, 20m, 25m or latest-small")
        p.add_argument("--source", default="auto", help="auto, grouplens, pypi, tfds or local")
        p.add_argument("--data-dir", help="cache root (default $TFREC_DATA_DIR or ~/.cache/tfrec)")
        p.add_argument("--path", help="with --source local: a directory or zip you already have")

    data = command("data", "fetch and inspect MovieLens").add_subparsers(
        dest="data_command", required=True
    )
    fetch = data.add_parser(
        "fetch", help="download MovieLens (or reuse the cache) and summarise it", parents=[debug]
    )
    data_args(fetch)
    fetch.set_defaults(func=cmd_data_fetch)
    verify = data.add_parser(
        "verify",
        help="re-hash every cached MovieLens file against its manifest (sizes and SHA-256)",
        parents=[debug],
    )
    verify.add_argument("--variant", help="one variant (default: every cached one)")
    verify.add_argument("--source", help="one source (default: every cached one)")
    verify.add_argument("--data-dir", help="cache root (default $TFREC_DATA_DIR or ~/.cache/tfrec)")
    verify.set_defaults(func=cmd_data_verify)

    train = command("train", "train a model on the leave-one-out split")
    train.add_argument("model", nargs="?", help="model name, e.g. deepfm (see `tfrec models`)")
    train.add_argument("--preset", help="a tuned configuration (see `tfrec models`)")
    data_args(train)
    train.add_argument("--config", help="JSON file of hyperparameters and training settings")
    train.add_argument("--set", action="append", metavar="NAME=VALUE", help="override one setting")
    train.add_argument("--epochs", type=positive_int)
    train.add_argument("--batch-size", type=positive_int, dest="batch_size")
    train.add_argument("--learning-rate", type=float, dest="learning_rate")
    train.add_argument("--output", help="run directory (default runs/<model>)")
    train.add_argument(
        "--strategy",
        default="default",
        choices=("default", "mirrored", "multi_worker", "parameter_server"),
        help="tf.distribute strategy; the cluster comes from TF_CONFIG (README: Training on a "
        "cluster)",
    )
    train.add_argument(
        "--backup-dir",
        help="where the run is backed up while it trains, so that rerunning the same command "
        "after a crash resumes it (default <output>.backup; deleted when training ends)",
    )
    train.add_argument("--no-backup", action="store_true", help="train without a backup")
    train.add_argument(
        "--save-freq",
        type=_save_freq,
        default="epoch",
        help="back up every epoch (default) or every N steps as well",
    )
    train.add_argument(
        "--min-shard-bytes",
        type=int,
        default=256 << 10,
        help="parameter_server: variables of at least this size are split across the "
        "parameter servers into shards of at least this size (default 262144)",
    )
    train.set_defaults(func=cmd_train)

    evaluate = command("evaluate", "sampled and full ranking metrics of a trained run")
    evaluate.add_argument("--model-dir", default="runs/deepfm")
    evaluate.set_defaults(func=cmd_evaluate)

    export = command("export", "export a trained run for TF Serving")
    export.add_argument("--model-dir", default="runs/deepfm")
    export.add_argument("--base-dir", default="saved_models")
    export.add_argument("--name", help="model name under base-dir (default: the run's model)")
    export.add_argument(
        "--as-of",
        default="all",
        choices=("all", "test", "valid"),
        help="what the export knows: all ratings (serving) or only those before a split",
    )
    export.set_defaults(func=cmd_export)

    rec = command("recommend", "top-k movies for a user from an exported model")
    rec.add_argument("--user", required=True, help="MovieLens user id, e.g. 196")
    rec.add_argument(
        "--k", type=k_value, default=10, help="number of movies (clipped to the catalogue size)"
    )
    rec.add_argument("--model", default="saved_models/deepfm", help="model dir or version dir")
    rec.set_defaults(func=cmd_recommend)

    models = command("models", "list the registered models and their defaults")
    models.set_defaults(func=cmd_models)

    run = command("run", "the `make run` job: train, evaluate, export, recommend")
    run.add_argument("--epochs", type=positive_int, default=None)
    run.add_argument("--base-dir", default="saved_models")
    run.add_argument("--user", default="196")
    run.set_defaults(func=cmd_run)
    return parser


def cmd_models(args) -> None:
    from tfrec.models import PRESETS, TRAIN_DEFAULTS, available_models, model_defaults

    print("models (hyperparameter defaults):")
    for name in available_models():
        print(f"  {name}: {json.dumps(model_defaults(name))}")
    print(f"training settings (defaults): {json.dumps(TRAIN_DEFAULTS)}")
    print("presets:")
    for name, chosen in PRESETS.items():
        settings = {**chosen.hparams, **chosen.train}
        print(f"  {name}: {chosen.model} {json.dumps(settings)}")


def _message(error: BaseException) -> str:
    """One line for the user: the exception's own message (tfrec's name field, value and fix)."""
    from tfrec.data import FetchError

    if isinstance(error, UsageError | FetchError | ValueError | TypeError):
        return str(error)
    if isinstance(error, KeyError) and error.args:
        return str(error.args[0])
    if isinstance(error, OSError):  # FileNotFoundError("No trained run at ...") or errno ones
        where = f": {error.filename}" if error.filename else ""
        return f"{error.strerror}{where}" if error.strerror else str(error)
    return f"{type(error).__name__}: {error} (run with --debug for the traceback)"


def main(argv: list[str] | None = None) -> int:
    """Runs one command; returns the exit status (2 usage error, 1 failure, 0 success)."""
    args = build_parser().parse_args(argv)  # a bad flag exits with status 2 here
    try:
        args.func(args)
    except Exception as error:  # one error path: a clear line, a traceback only with --debug
        if args.debug:
            traceback.print_exc()
        print(f"tfrec: error: {_message(error)}", file=sys.stderr)
        return 2 if isinstance(error, UsageError) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
