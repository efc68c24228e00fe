"""Tests for tfrec/data/scale.py: shapes, determinism, power-law skew, TFRecord round trip."""

from __future__ import annotations

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 first)
import numpy as np
import pytest
import tensorflow as tf

from tfrec.data import scale
from tfrec.features import scale_towers
from tfrec.models import DeepFM


def _all(schema) -> dict:
    chunks = list(scale.generate(schema))
    return {k: np.concatenate([c[k] for c in chunks]) for k in schema["columns"]}


def test_movielens_shapes_ranges_and_dtypes():
    schema = scale.make_schema(
        "movielens", rows=5000, ids=300, items=50, chunk_rows=2048, block_rows=512
    )
    data = _all(schema)
    assert set(data) == set(schema["columns"])
    for name, column in schema["columns"].items():
        assert data[name].shape == (5000,)
        assert data[name].dtype == np.dtype(column["dtype"])
        if column["vocabulary"]:
            assert data[name].min() >= 0 and data[name].max() < column["vocabulary"]
    assert schema["columns"]["movie_id"]["vocabulary"] == 50
    # Side features are functions of the id they describe.
    for user in np.unique(data["user_id"])[:20]:
        assert len(np.unique(data["user_zip"][data["user_id"] == user])) == 1
    assert set(np.unique(data["label"])) == {0.0, 1.0}


def test_criteo_fields_and_vocabularies():
    schema = scale.make_schema(
        "criteo", rows=3000, ids=10_000, fields=5, chunk_rows=1024, block_rows=512
    )
    sizes = [schema["columns"][f"c{i}"]["vocabulary"] for i in range(5)]
    assert sizes == [4, 28, 200, 1414, 10_000]  # 4 * sqrt(50) ** i: geometric from 4 to ids
    data = _all(schema)
    assert len(data) == 5 + 13 + 1
    assert data["d0"].dtype == np.float32 and (data["d0"] >= 0).all()
    assert 0.1 < data["label"].mean() < 0.5


def test_same_seed_same_data_other_seed_other_data():
    a = _all(scale.make_schema(rows=3000, ids=100, chunk_rows=1024, block_rows=512, seed=1))
    b = _all(scale.make_schema(rows=3000, ids=100, chunk_rows=1024, block_rows=512, seed=1))
    c = _all(scale.make_schema(rows=3000, ids=100, chunk_rows=1024, block_rows=512, seed=2))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["user_id"], c["user_id"])


def test_power_law_skew_matches_the_exponent():
    rng = np.random.default_rng(0)
    ids = scale.power_law_ids(rng, 10_000, 400_000, exponent=1.0)
    counts = np.sort(np.bincount(ids, minlength=10_000))[::-1]
    # Zipf(1) over 10^4 ids: the top 1% of ids draw ln(101)/ln(10001) ~ 50% of the rows.
    assert counts[:100].sum() / counts.sum() == pytest.approx(np.log(101) / np.log(10001), abs=0.02)
    ranks = np.arange(1, 101)
    slope = np.polyfit(np.log(ranks[4:]), np.log(counts[4:100]), 1)[0]
    assert slope == pytest.approx(-1.0, abs=0.15)
    flat = scale.power_law_ids(rng, 10_000, 400_000, exponent=0.5)
    assert np.sort(np.bincount(flat))[::-1][:100].sum() < counts[:100].sum() / 2


def test_power_law_maps_ranks_through_a_bijection():
    rng = np.random.default_rng(0)
    ids = scale.power_law_ids(rng, 7, 5000, exponent=1.0)
    assert set(np.unique(ids)) == set(range(7))


def test_write_then_read_equals_generated(tmp_path):
    schema = scale.make_schema(rows=5000, ids=200, chunk_rows=2048, block_rows=512)
    paths = scale.write_dataset(schema, tmp_path, shards=3)
    assert [p.name for p in paths] == [f"part-0000{i}-of-00003.tfrecord" for i in range(3)]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [p.name for p in paths] + [scale.SCHEMA_FILE]
    )  # no temporary files left
    expected = _all(schema)
    batches = list(scale.read_dataset(tmp_path, batch_size=700))
    assert [len(b["label"]) for b in batches[:-1]] == [700] * 7 and len(batches[-1]["label"]) == 100
    got = {k: np.concatenate([b[k].numpy() for b in batches]) for k in expected}
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name])
    shuffled = scale.read_dataset(tmp_path, batch_size=1000, shuffle=True, seed=3)
    rows = np.concatenate([b["user_id"].numpy() for b in shuffled])
    assert np.array_equal(np.sort(rows), np.sort(expected["user_id"]))


def test_read_renames_and_selects_columns(tmp_path):
    schema = scale.make_schema(rows=1024, ids=50, chunk_rows=1024, block_rows=512)
    scale.write_dataset(schema, tmp_path, shards=1)
    ds = scale.read_dataset(tmp_path, 256, columns=["user_id", "label"], rename={"user_id": "u"})
    batch = next(iter(ds))
    assert set(batch) == {"u", "label"} and batch["u"].dtype == tf.int32


def test_deepfm_trains_on_streamed_batches(tmp_path):
    schema = scale.make_schema(rows=2048, ids=100, chunk_rows=1024, block_rows=512)
    scale.write_dataset(schema, tmp_path, shards=2)
    query, candidate, rename = scale_towers(schema, embedding_dim=4)
    assert (
        rename["user_id"] == "user_tower/user_id"
        and rename["movie_genre"] == "item_tower/movie_genre"
    )
    model = DeepFM(
        query, candidate, dnn_units=[8], dropout=0.0, batch_norm=False, retrieval_weight=0.0
    )
    model.compile(tf.keras.optimizers.Adam(1e-2))
    history = model.fit(scale.read_dataset(tmp_path, 512, rename=rename), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert model.query_tower.encoder("user_id").embedding.input_dim == 100


def test_bad_arguments_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="mode"):
        scale.make_schema("netflix")
    with pytest.raises(ValueError, match="rows"):
        scale.make_schema(rows=0)
    with pytest.raises(ValueError, match="chunk_rows"):
        scale.make_schema(chunk_rows=1000, block_rows=512)
    with pytest.raises(ValueError, match="shards"):
        scale.write_dataset(
            scale.make_schema(rows=600, chunk_rows=1024, block_rows=512), tmp_path, 5
        )
    with pytest.raises(FileNotFoundError, match="schema.json"):
        scale.read_dataset(tmp_path / "missing")


def test_cli_writes_a_dataset(tmp_path, capsys):
    scale.main(["--rows", "20000", "--ids", "100", "--out", str(tmp_path), "--shards", "2"])
    assert "wrote 20,000 rows" in capsys.readouterr().out
    assert scale.load_schema(tmp_path)["shards"] == 2
