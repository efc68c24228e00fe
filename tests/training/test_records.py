"""`fit_records` (tfrec/training/records.py): training on TFRecord shards, shared out by file.

Checked here in one process: each input pipeline of a multi-worker run reads its own files
(disjoint, together every row once per pass), a parameter-server pipeline reads them all, and
DeepFM trains on the stream (loss falling over epochs, a resumable backup removed at the end).
Two real workers reading their files are measured in benchmarks/bench_distribute.py.
"""

import tfrec  # noqa: F401  # isort: skip
from collections import Counter

import pytest
import tensorflow as tf

from tfrec.data import scale
from tfrec.features import scale_towers
from tfrec.models import DeepFM
from tfrec.training.records import fit_records, records_dataset_fn


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    directory = tmp_path_factory.mktemp("records")
    schema = scale.make_schema("movielens", rows=12288, ids=300, seed=0, chunk_rows=4096,
                               block_rows=512)  # fmt: skip
    scale.write_dataset(schema, directory, shards=4)
    return directory, schema


def rows(batches) -> Counter:
    keys = ("user_id", "movie_id", "movie_genre", "label")
    return Counter(
        row for b in batches for row in zip(*(b[k].numpy().tolist() for k in keys), strict=True)
    )


def test_each_worker_reads_its_own_files(records):
    directory, schema = records
    everything = rows(scale.read_dataset(directory, 1024))
    assert sum(everything.values()) == schema["rows"]
    per_worker = []
    for index in range(2):
        context = tf.distribute.InputContext(2, index, 2)
        ds = records_dataset_fn(directory, 512, {}, seed=1)(context)
        assert next(iter(ds))["label"].shape == (256,)  # the per-replica share of 512
        per_worker.append(rows(ds.take(schema["rows"] // 2 // 256)))
    assert sum(per_worker, Counter()) == everything  # disjoint files, every row once
    salted = records_dataset_fn(directory, 512, {}, seed=1, salted=True)
    one = tf.distribute.InputContext(1, 0, 1)
    firsts = [next(iter(salted(one)))["user_id"].numpy() for _ in range(5)]
    assert firsts[0].shape == (512,)
    assert len({first.tobytes() for first in firsts}) > 1  # pipelines start at their own offset


def test_deepfm_trains_on_the_stream_resumably(records, tmp_path):
    directory, schema = records

    def builder():
        query, candidate, _ = scale_towers(schema, 4)
        return DeepFM(query, candidate, dnn_units=[8], dropout=0.0, batch_norm=False,
                      retrieval_weight=0.0, task="ranking", history_length=0, l2=0.0)  # fmt: skip

    rename = scale_towers(schema, 4)[2]
    history = fit_records(builder, directory, rename, epochs=3, batch_size=512,
                          learning_rate=5e-3, backup_dir=tmp_path / "backup", verbose=0)  # fmt: skip
    losses = history.history["loss"]
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert not (tmp_path / "backup").exists()
    with pytest.raises(ValueError, match="Received: shard=\\(8, 0\\)"):
        next(iter(scale.read_dataset(directory, 64, shard=(8, 0))))
