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
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _parse_sets(items: list[str]) -> dict:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise SystemExit(f"--set expects name=value. Received: --set {item!r}")
        name, value = item.split("=", 1)
        try:
            out[name.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[name.strip()] = value
    return out


def _load_config(path: str | None) -> dict:
    if not path:
        return {}
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise SystemExit(f"Config file not found. Received: --config {path}") from None
    except json.JSONDecodeError as err:
        raise SystemExit(f"Config file {path} is not valid JSON: {err}") from None


def _split_settings(settings: dict) -> tuple[dict, dict]:
    """Separates training settings (`TRAIN_DEFAULTS` keys) from model hyperparameters."""
    from tfrec.models import TRAIN_DEFAULTS

    train = {k: v for k, v in settings.items() if k in TRAIN_DEFAULTS}
    model_hp = {k: v for k, v in settings.items() if k not in TRAIN_DEFAULTS}
    return train, model_hp


def cmd_data_fetch(args) -> None:
    from tfrec.data import leave_one_out, load_movielens

    ml = load_movielens(args.variant, source=args.source, data_dir=args.data_dir, path=args.path)
    split = leave_one_out(ml.ratings)
    print(
        f"MovieLens {ml.variant} (source: {ml.source}): {ml.num_users:,} users, "
        f"{ml.num_movies:,} movies, {ml.num_ratings:,} ratings"
    )
    sizes = " / ".join(f"{len(part['user_index']):,}" for part in split)
    print(f"leave-one-out split (train / valid / test): {sizes}")


def cmd_train(args) -> None:
    from tfrec import workflow
    from tfrec.models import preset

    model, settings = args.model, {}
    if args.preset:
        chosen = preset(args.preset)
        if model not in (None, chosen.model):
            raise ValueError(
                f"Preset {args.preset!r} trains {chosen.model!r}. Received: model={model!r}. "
                "Fix: drop the model name or the preset."
            )
        model, settings = chosen.model, {**chosen.hparams, **chosen.train}
    if model is None:
        raise ValueError("Name a model (e.g. `tfrec train deepfm`) or a --preset.")
    settings.update(_load_config(args.config))
    settings.update(_parse_sets(args.set))
    for flag in ("epochs", "batch_size", "learning_rate"):
        if getattr(args, flag) is not None:
            settings[flag] = getattr(args, flag)
    train_cfg, model_hp = _split_settings(settings)
    output = Path(args.output or f"runs/{model}")
    source = {
        "variant": args.variant,
        "source": args.source,
        "data_dir": args.data_dir,
        "path": args.path,
    }
    strategy, backup = _distribution(args, output)
    result = workflow.train(model, source, model_hp, train_cfg, output, strategy=strategy,
                            backup_dir=backup, save_freq=args.save_freq)  # fmt: skip
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
    sub = parser.add_subparsers(dest="command", required=True)

    def data_args(p):
        p.add_argument("--variant", default="100k", help="100k, 1m, 20m, 25m or latest-small")
        p.add_argument("--source", default="auto", help="auto, grouplens, pypi, tfds or local")
        p.add_argument("--data-dir", help="cache root (default $TFREC_DATA_DIR or ~/.cache/tfrec)")
        p.add_argument("--path", help="with --source local: a directory or zip you already have")

    data = sub.add_parser("data", help="fetch and inspect MovieLens").add_subparsers(
        dest="data_command", required=True
    )
    fetch = data.add_parser(
        "fetch", help="download MovieLens (or reuse the cache) and summarise it"
    )
    data_args(fetch)
    fetch.set_defaults(func=cmd_data_fetch)

    train = sub.add_parser("train", help="train a model on the leave-one-out split")
    train.add_argument("model", nargs="?", help="model name, e.g. deepfm (see `tfrec models`)")
    train.add_argument("--preset", help="a tuned configuration (see `tfrec models`)")
    data_args(train)
    train.add_argument("--config", help="JSON file of hyperparameters and training settings")
    train.add_argument("--set", action="append", metavar="NAME=VALUE", help="override one setting")
    train.add_argument("--epochs", type=int)
    train.add_argument("--batch-size", type=int, dest="batch_size")
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

    evaluate = sub.add_parser("evaluate", help="sampled and full ranking metrics of a trained run")
    evaluate.add_argument("--model-dir", default="runs/deepfm")
    evaluate.set_defaults(func=cmd_evaluate)

    export = sub.add_parser("export", help="export a trained run for TF Serving")
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

    rec = sub.add_parser("recommend", help="top-k movies for a user from an exported model")
    rec.add_argument("--user", required=True, help="MovieLens user id, e.g. 196")
    rec.add_argument("--k", type=int, default=10)
    rec.add_argument("--model", default="saved_models/deepfm", help="model dir or version dir")
    rec.set_defaults(func=cmd_recommend)

    models = sub.add_parser("models", help="list the registered models and their defaults")
    models.set_defaults(func=cmd_models)

    run = sub.add_parser("run", help="the `make run` job: train, evaluate, export, recommend")
    run.add_argument("--epochs", type=int, default=None)
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, KeyError, TypeError, FileNotFoundError) as err:
        print(f"tfrec: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
