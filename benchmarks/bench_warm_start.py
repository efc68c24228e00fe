"""Warm start versus training from scratch on MovieLens-100k when new users and movies arrive.

Why this exists: a warm start is only worth having if it matches a model trained from scratch
on the new data in a fraction of the time. The setting rehearses a retraining: the *previous*
model is the `make run` DeepFM (preset ``movielens-100k``) trained on the earliest 70% of the
ratings (`tfrec.data.time_slice`, split by time); the *new* data is all of ml-100k split by
time (earliest 80% train, next 10% valid, latest 10% test), so the test split is full of users
and movies the previous model never saw. Training from scratch uses the preset's settings (at
most 12 epochs, early stopping on validation sampled NDCG@10 with patience 3, best epoch
restored); a warm start gets a retraining budget (at most 3 epochs, patience 1). Everyone is
judged on the same test rows (returning users, known to the previous model, and new users
apart), and the warm starts' differences from scratch get paired bootstrap intervals over
users (`tfrec.evaluation.compare_rows`), so "matches" means the interval covers zero or lies
above it. Time is wall time of the whole (re)training, warm start included, on a shared
machine (load average printed).

Contenders: the previous model as is (no retraining), training from scratch, warm start (known
rows, dense layers and Adam's state carried over), warm start with a fresh optimizer, and warm
start on the new interactions plus a 20% replay of the old ones.

Run: ``.venv/bin/python benchmarks/bench_warm_start.py`` (``--small`` for a smoke run on
generated data).
"""

from __future__ import annotations

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 before TensorFlow loads)
import argparse
import time

import numpy as np
from _bench_utils import emit, machine_info, table

from tfrec.data import SplitData, chronological_split, load_movielens, time_slice
from tfrec.data.synthetic import synthetic_movielens
from tfrec.evaluation import compare_rows, evaluate, per_row_metrics, rank_of_targets, score_fn
from tfrec.models import build_model, preset
from tfrec.training import fit, replay_data, warm_start
from tfrec.workflow import baseline_metrics

COLUMNS = ("sampled_hr@10", "sampled_ndcg@10", "full_hr@10", "full_ndcg@10", "full_mrr")


def by_time(ml) -> SplitData:
    return SplitData.from_movielens(ml, chronological_split(ml.ratings))


def test_ranks(model, data: SplitData) -> np.ndarray:
    """Full-ranking rank of every test target, as `evaluate` computes it."""
    users, targets = data.targets("test")
    scorer, seen, ranks = score_fn(model, data, "test"), data.seen("test"), []
    items = np.arange(data.num_items)
    for start in range(0, users.size, 256):
        batch = users[start : start + 256]
        scores = scorer(batch, np.broadcast_to(items, (batch.size, items.size)))
        ranks.append(rank_of_targets(scores, targets[start : start + 256], seen.dense_mask(batch)))
    return np.concatenate(ranks)


def judged(model, data: SplitData, returning: np.ndarray) -> tuple[dict, np.ndarray]:
    """Test metrics on every row, full HR@10 / NDCG@10 of returning and new users, and the
    rows' full-ranking ranks (for paired intervals)."""
    users, targets = data.targets("test")
    out = evaluate(score_fn(model, data, "test"), users, targets, data.num_items,
                   data.seen("test"))  # fmt: skip
    row = {c: out[c] for c in COLUMNS}
    ranks = test_ranks(model, data)
    values = per_row_metrics(ranks)
    for label, rows in (("returning", returning[users]), ("new", ~returning[users])):
        if rows.any():
            row[f"{label} full_hr@10"] = float(values["hr@10"][rows].mean())
            row[f"{label} full_ndcg@10"] = float(values["ndcg@10"][rows].mean())
    return row, ranks


def timed_fit(model, data, cfg, optimizer=None, started=None):
    start = time.perf_counter() if started is None else started
    settings = dict(cfg, **({"optimizer": optimizer} if optimizer is not None else {}))
    history = fit(model, data, verbose=0, **settings).history
    seconds = time.perf_counter() - start
    best = int(np.argmax(history[cfg.get("monitor", "val_full_ndcg@10")])) + 1
    return {"epochs": len(history["loss"]), "best epoch": best, "train s": seconds}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--previous", type=float, default=0.7, help="share of ratings known then")
    parser.add_argument("--replay", type=float, default=0.2)
    parser.add_argument("--epochs", type=int, help="override the preset's maximum epochs")
    parser.add_argument("--warm-epochs", type=int, default=3, help="a warm start's budget")
    parser.add_argument("--warm-patience", type=int, default=1)
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument("--small", action="store_true", help="generated data, tiny model")
    args = parser.parse_args(argv)
    print(machine_info())
    run = preset("movielens-100k")
    hparams, cfg = dict(run.hparams), dict(run.train)
    if args.small:
        ml = synthetic_movielens(num_users=200, num_movies=150, ratings_per_user=20, seed=0)
        hparams.update(embedding_dim=8, dnn_units=[16])
        cfg.update(epochs=2)
    else:
        ml = load_movielens("100k")
    if args.epochs:
        cfg["epochs"] = args.epochs
    cfg.setdefault("monitor", "val_full_ndcg@10")
    past = time_slice(ml, args.previous)
    previous_data, data = by_time(past), by_time(ml)
    returning = np.isin(data.user_ids, previous_data.train["user_id"])
    print(
        f"previous: {past.num_ratings:,} ratings ({previous_data.num_users} users, "
        f"{previous_data.num_items} movies); new: {ml.num_ratings:,} ratings "
        f"({data.num_users} users, {data.num_items} movies); test rows of new users: "
        f"{(~returning[data.targets('test')[0]]).sum():,} of {len(data.targets('test')[0]):,}"
    )
    print(f"model {run.model} {hparams}; training {cfg}")

    warm_cfg = dict(cfg, epochs=args.warm_epochs, patience=args.warm_patience)
    print(f"warm starts: {warm_cfg}")
    previous = build_model(run.model, previous_data, **hparams)
    times = {"previous model (on the earliest share)": timed_fit(previous, previous_data, cfg)}
    rows, ranks = {}, {}
    rows["previous model, not retrained"], ranks["previous"] = judged(previous, data, returning)

    scratch = build_model(run.model, data, **hparams)
    times["from scratch"] = timed_fit(scratch, data, cfg)
    times["from scratch"]["training rows"] = len(data.train["user_index"])
    rows["from scratch"], ranks["from scratch"] = judged(scratch, data, returning)

    variants = (
        ("warm start", True, None),
        ("warm start, fresh optimizer", False, None),
        (f"warm start, new + {args.replay:.0%} replay", True, args.replay),
    )
    for label, keep, replay in variants:
        start = time.perf_counter()
        warm = warm_start(previous, data, hparams, keep_optimizer=keep)
        train_data = data
        if replay is not None:
            train_data = replay_data(data, previous_data.train, replay, warm.model, seed=0)
        times[label] = timed_fit(warm.model, train_data, warm_cfg, warm.optimizer, start)
        times[label]["training rows"] = len(train_data.train["user_index"])
        rows[label], ranks[label] = judged(warm.model, data, returning)
        print(f"{label}: {warm.new_ids} new ids, optimizer {warm.optimizer_state}")
    rows["popularity"] = {c: baseline_metrics(data)[c] for c in COLUMNS}

    users = data.targets("test")[0]
    base = per_row_metrics(ranks["from scratch"])
    intervals = {}
    for label in [v[0] for v in variants] + ["previous"]:
        diffs = compare_rows(base, per_row_metrics(ranks[label]), users, reps=args.reps)
        intervals[f"{label} - scratch"] = {
            f"{m} {part}": getattr(diffs[m], attr)
            for m in ("hr@10", "ndcg@10")
            for part, attr in (("diff", "difference"), ("low", "low"), ("high", "high"))
        }
    print("\nTest split of the new data (latest 10% of ratings):")
    print(table({k: {c: v[c] for c in COLUMNS} for k, v in rows.items()}, digits=4))
    split = {k: {c: v[c] for c in v if c not in COLUMNS} for k, v in rows.items()}
    print("\nFull ranking by who the test rows belong to:")
    print(table(split, digits=4))
    scratch_s = times["from scratch"]["train s"]
    for value in times.values():
        value["vs scratch"] = value["train s"] / scratch_s
    print("\nTraining time (wall, including the warm start itself):")
    print(table(times, digits=2))
    print("\nFull ranking, difference from scratch with 95% paired bootstrap intervals (users):")
    print(table(intervals, digits=4))
    emit("warm_start", {"quality": rows, "time": times, "vs_scratch": intervals})


if __name__ == "__main__":
    main()
