"""DeepFM hyperparameter search on ml-100k leave-one-out (the numbers in RESULTS.md).

Each configuration trains with early stopping (on the registry's default monitor,
validation full-ranking NDCG@10, unless the configuration sets ``monitor``; the last grid
entry is the `make run` preset) and is scored on the test split under both protocols. Usage:

    python benchmarks/tune_deepfm.py                      # the recorded grid
    python benchmarks/tune_deepfm.py '{"hp": {"embedding_dim": 16}, "epochs": 3}'
"""

from __future__ import annotations

import json
import sys

import tfrec  # noqa: F401  # isort: skip
from _bench_utils import make_run

from tfrec.workflow import load_data, train_model

RUN = make_run()

GRID = [
    {"hp": {"embedding_dim": 16, "dnn_units": [128, 64], "dropout": 0.1}, "epochs": 3,
     "batch_size": 1024, "learning_rate": 1e-3},
    {"hp": {"embedding_dim": 32, "dnn_units": [256, 128], "dropout": 0.2, "l2": 1e-5},
     "epochs": 10, "batch_size": 1024, "learning_rate": 1e-3},
    {"hp": dict(RUN.hparams), **RUN.train},
]  # fmt: skip
COLUMNS = (
    "sampled_hr@10",
    "sampled_ndcg@10",
    "full_hr@10",
    "full_ndcg@10",
    "epochs",
    "train_seconds",
)


def main(argv: list[str]) -> None:
    grid = [json.loads(a) for a in argv] or GRID
    data = load_data("100k")
    print("| hyperparameters | training | " + " | ".join(COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 2) + "|")
    for config in grid:
        config = dict(config)
        hp = config.pop("hp")
        metrics = train_model("deepfm", data, hp, config, verbose=2).metrics
        values = " | ".join(
            f"{metrics[c]:.4f}" if c not in ("epochs", "train_seconds") else str(metrics[c])
            for c in COLUMNS
        )
        print(f"| {json.dumps(hp)} | {json.dumps(config)} | {values} |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
