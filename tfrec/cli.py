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

The production loop (see README, "Production loop"):

    tfrec train deepfm --warm-start runs/deepfm --data newer/ml-100k   # retrain with new ids
    tfrec export --as-of test                # held-out export: knows train + valid only
    tfrec evaluate --export saved_models/deepfm --split test           # judge the servable
    tfrec compare --export saved_models/a --export saved_models/b      # B - A with paired CIs
    tfrec recommend --all-users --k 10 --output recs.csv               # everyone's top-k

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


def _source(args) -> dict:
    """The data arguments of `tfrec.workflow.load_data` from the data flags."""
    if getattr(args, "data", None):
        if args.path is not None or args.source not in ("auto", "local"):
            raise UsageError(
                f"--data is --source local --path DATA. Received: --data {args.data} with "
                f"--source {args.source} --path {args.path}. Fix: give one of them."
            )
        args.source, args.path = "local", args.data
    return {
        **data_source(args),
        "time_slice": getattr(args, "time_slice", None),
        "split_by": getattr(args, "split_by", None),
    }


def cmd_train_warm(args, settings: dict) -> None:
    from tfrec import production, workflow

    try:
        previous = production.read_run(args.warm_start)
    except FileNotFoundError as err:
        raise UsageError(f"--warm-start: {err}") from None
    if args.model not in (None, previous["model"]):
        raise UsageError(
            f"The run {args.warm_start} trained {previous['model']!r}. Received: "
            f"model={args.model!r}. Fix: drop the model name (a warm start keeps the model)."
        )
    train_cfg, model_hp = _split_settings(settings)
    if model_hp:
        raise UsageError(
            f"A warm start keeps the previous run's hyperparameters. Received: {model_hp}. "
            "Fix: drop them, or train from scratch."
        )
    output = Path(args.output or f"runs/{previous['model']}")
    result, warm = production.warm_start_run(
        args.warm_start, _source(args), train_cfg, output, replay=args.replay,
        keep_optimizer=not args.reset_optimizer,
    )  # fmt: skip
    print(workflow.format_results({f"{previous['model']} (warm start)": result.metrics}))
    print(
        f"warm start from {args.warm_start}: {warm.new_ids} new ids, optimizer "
        f"{warm.optimizer_state}, {result.metrics['epochs']} epochs, "
        f"{result.metrics['train_seconds']} s"
    )
    print(f"saved to {output}")


def cmd_train(args) -> None:
    from tfrec import workflow
    from tfrec.models import preset

    if args.warm_start is None and (args.replay is not None or args.reset_optimizer):
        raise UsageError("--replay and --reset-optimizer only apply with --warm-start RUN_DIR.")

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
    if model is None and args.warm_start is None:
        raise UsageError("Name a model (e.g. `tfrec train deepfm`) or a --preset.")
    config, sets = load_config(args.config), parse_sets(args.set)
    if model is not None:
        check_settings(model, config, f"in config file {args.config}")
        check_settings(model, sets, "from --set")
    settings.update(config)
    settings.update(sets)
    for flag in ("epochs", "batch_size", "learning_rate"):
        if getattr(args, flag) is not None:
            settings[flag] = getattr(args, flag)
    if args.warm_start is not None:
        return cmd_train_warm(args, settings)
    train_cfg, model_hp = _split_settings(settings)
    output = Path(args.output or f"runs/{model}")
    strategy, backup = _distribution(args, output)
    result = workflow.train(model, _source(args), model_hp, train_cfg, output,
                            strategy=strategy, backup_dir=backup,
                            save_freq=args.save_freq)  # fmt: skip
    print(workflow.format_results({model: result.metrics}))
    if _is_chief(strategy):
        print(f"saved to {output}")


def _distribution(args, output: Path):
    """The strategy `--strategy` names (cluster from TF_CONFIG) and the backup directory."""
    from tfrec.training.distribute import strategy_from_name

    try:
        strategy = strategy_from_name(args.strategy, min_shard_bytes=args.min_shard_bytes)
    except ValueError as err:  # no usable TF_CONFIG for the strategy named
        raise UsageError(str(err)) from None
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


def _ks(text: str) -> tuple[int, ...]:
    try:
        ks = tuple(int(k) for k in text.split(","))
    except ValueError:
        raise UsageError(f"--ks takes cut-offs like 10 or 5,10,20. Received: --ks {text}") from None
    if not ks or min(ks) < 1:
        raise UsageError(f"--ks cut-offs must be positive. Received: --ks {text}")
    return ks


def _judged_data(args):
    from tfrec import production

    return production.judged_data(run=args.run, source=_source(args))


def cmd_evaluate(args) -> None:
    from tfrec import production, workflow

    if args.export:
        data = _judged_data(args)
        for export in args.export:
            evaluation = production.evaluate_export_job(
                export, data, args.split, _ks(args.ks), args.depth
            )
            for line in production.describe_evaluation(evaluation):
                print(line)
        return
    print(workflow.format_results(workflow.evaluate_run(Path(args.model_dir), with_baseline=True)))


def cmd_compare(args) -> None:
    from tfrec import production

    if len(args.export) != 2:
        raise UsageError(
            f"compare takes two exports, A then B. Received: --export {args.export}. Fix: "
            "--export saved_models/a --export saved_models/b"
        )
    data = _judged_data(args)
    comparison = production.compare_job(
        *args.export, data, args.split, _ks(args.ks), reps=args.reps,
        confidence=args.confidence, seed=args.seed, depth=args.depth,
    )  # fmt: skip
    print(f"A = {comparison.a.path}\nB = {comparison.b.path}")
    print(f"{len(comparison.a.users):,} held-out rows of {len(set(comparison.a.users)):,} users "
          f"({args.split} split); paired bootstrap over users, {args.reps} resamples")  # fmt: skip
    print(comparison.table())


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
    if args.as_of != "all":
        known = "train + valid" if args.as_of == "test" else "train"
        print(
            f"held-out export: it knows the {known} interactions only; judge it with "
            f"`tfrec evaluate --export {path} --split {args.as_of} --run {args.model_dir}`"
        )


def cmd_recommend(args) -> None:
    from tfrec import production, workflow

    if args.all_users == (args.user is not None):
        raise UsageError("Give exactly one of --user ID and --all-users (with --output FILE).")
    if args.all_users:
        if not args.output:
            raise UsageError("--all-users writes a file. Fix: add --output recs.csv (or .parquet).")
        report = production.batch_job(args.model, args.output, args.k, args.batch_size)
        print(
            f"wrote {report.rows:,} recommendations for {report.users:,} users to {report.path} "
            f"in {report.seconds:.1f} s ({report.users_per_second:,.0f} users/s)"
        )
        return
    if args.output:
        raise UsageError("--output is for --all-users. Fix: drop it, or add --all-users.")
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

    def version_args(p):
        p.add_argument("--data", help="newer ratings: a MovieLens directory or zip (= --source "
                       "local --path DATA)")  # fmt: skip
        p.add_argument("--time-slice", type=float, dest="time_slice", metavar="FRACTION",
                       help="keep only the earliest FRACTION of ratings (a past snapshot)")  # fmt: skip
        p.add_argument("--split-by", dest="split_by", choices=("leave-one-out", "chronological"),
                       help="leave-one-out (default) or chronological: the latest 10%% of "
                       "ratings are the test split, so later users and movies are new")  # fmt: skip

    def judge_args(p):
        data_args(p)
        version_args(p)
        p.add_argument("--run", help="judge on the data this run directory was trained on")
        p.add_argument("--split", default="test", choices=("valid", "test"))
        p.add_argument("--ks", default="10", help="cut-offs, e.g. 5,10,20")
        p.add_argument("--depth", type=int, help="recommend list length for full ranking "
                       "(default: the whole catalogue, exact; shorter: MRR truncated)")  # fmt: skip

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
    version_args(train)
    train.add_argument("--warm-start", dest="warm_start", metavar="RUN_DIR",
                       help="start from this run: its model with vocabularies extended by the "
                       "new ids, trained on the new data")  # fmt: skip
    train.add_argument("--replay", type=float, metavar="SHARE",
                       help="with --warm-start: train on the new interactions plus this share "
                       "of the old ones (default: all of the new data)")  # fmt: skip
    train.add_argument("--reset-optimizer", action="store_true", dest="reset_optimizer",
                       help="with --warm-start: fresh optimizer state instead of the run's")  # fmt: skip
    train.set_defaults(func=cmd_train)

    evaluate = command("evaluate", "sampled and full ranking metrics of a trained run")
    evaluate.add_argument("--model-dir", default="runs/deepfm")
    evaluate.add_argument("--export", action="append", metavar="DIR",
                          help="judge this export through its signatures instead (repeatable)")  # fmt: skip
    judge_args(evaluate)
    evaluate.set_defaults(func=cmd_evaluate)

    compare = command("compare", "two exports on the same held-out users, with CIs")
    compare.add_argument("--export", action="append", required=True, metavar="DIR",
                         help="give twice: A (e.g. the live model), then B (the candidate)")  # fmt: skip
    judge_args(compare)
    compare.add_argument("--reps", type=int, default=2000, help="bootstrap resamples")
    compare.add_argument("--confidence", type=float, default=0.95)
    compare.add_argument("--seed", type=int, default=0)
    compare.set_defaults(func=cmd_compare)

    export = command("export", "export a trained run for TF Serving")
    export.add_argument("--model-dir", default="runs/deepfm")
    export.add_argument("--base-dir", default="saved_models")
    export.add_argument("--name", help="model name under base-dir (default: the run's model)")
    export.add_argument(
        "--as-of",
        default="all",
        choices=("all", "test", "valid"),
        help="what the export knows (its seen items, histories, popularity): 'all' every "
        "rating (serving); 'test' what the model was trained AND validated on (train + valid), "
        "so the export is judged on the test split; 'valid' only train, judged on valid",
    )
    export.set_defaults(func=cmd_export)

    rec = command("recommend", "top-k movies for a user from an exported model")
    rec.add_argument("--user", help="MovieLens user id, e.g. 196")
    rec.add_argument(
        "--k", type=k_value, default=10, help="number of movies (clipped to the catalogue size)"
    )
    rec.add_argument("--model", default="saved_models/deepfm", help="model dir or version dir")
    rec.add_argument("--all-users", action="store_true", dest="all_users",
                     help="every user the export knows, written to --output")  # fmt: skip
    rec.add_argument("--output", help="with --all-users: recs.csv, or recs.parquet (pyarrow)")
    rec.add_argument("--batch-size", type=int, default=256, dest="batch_size",
                     help="users per recommend call (bounds memory)")  # fmt: skip
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
