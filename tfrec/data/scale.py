"""Synthetic interaction logs of any size, written as sharded TFRecords and streamed back.

Exists because MovieLens-100k is far too small to show how training cost and memory grow, and
the small generator in `tfrec.data.synthetic` scores every user-movie pair (O(users x items)).
Here every column is drawn row by row in vectorised chunks, with O(1) memory per id: ids come
from a continuous power law (inverse CDF) mapped through a bijection of ``[0, n)``, and side
features and the hidden click model are hashes of the ids (splitmix64), so 10M+ rows over 1M+
ids cost seconds and a few hundred MB at a time.

Two modes:

* ``movielens``: ``user_id`` (power-law activity), ``movie_id`` (power-law popularity), user
  side features (gender, age bucket, occupation, zip prefix) and movie side features (genre,
  year bucket), and a ``label`` that depends on a hidden user taste matching the genre.
* ``criteo``: ``fields`` categorical columns ``c0..`` with vocabularies spread geometrically up
  to ``ids``, 13 dense columns ``d0..d12`` (log-normal, log1p-scaled) and a ``label`` from a
  hidden logistic model (about 25% positives).

Files: ``part-XXXXX-of-YYYYY.tfrecord`` shards of records that each hold a block of rows (one
``tf.train.Example`` with one serialized tensor per column), plus ``schema.json``. Every file
is written to a temporary name in the same directory and renamed when complete.

    python -m tfrec.data.scale --rows 10000000 --ids 1000000 --out /tmp/scale
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

MODES = ("movielens", "criteo")
SCHEMA_FILE = "schema.json"
_MOVIELENS_SIDE = {  # column -> (vocabulary size, hash salt); derived from the owning id
    "user_gender": ("user_id", 2, 11),
    "user_age": ("user_id", 7, 12),
    "user_occupation": ("user_id", 21, 13),
    "user_zip": ("user_id", 100, 14),
    "movie_genre": ("movie_id", 19, 21),
    "movie_year": ("movie_id", 10, 22),
}
_NUM_DENSE = 13
_MULTIPLIERS = (2654435761, 2246822519, 3266489917, 668265263, 374761393)


def mix(values, salt: int = 0) -> np.ndarray:
    """splitmix64 of integer `values` (salted): a fast vectorised hash to uint64."""
    x = np.asarray(values).astype(np.uint64) + np.uint64((salt * 0x9E3779B97F4A7C15) % 2**64)
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def power_law_ids(rng, num_ids: int, size: int, exponent: float) -> np.ndarray:
    """`size` ids in ``[0, num_ids)`` whose k-th most frequent has probability ~ k**-exponent.

    Ranks come from the inverse CDF of a continuous power law on ``[1, num_ids + 1)``; a
    bijection ``rank * m mod num_ids`` scatters popular ranks over the id space."""
    u = rng.random(size)
    top = float(num_ids + 1)
    if abs(exponent - 1.0) < 1e-9:
        x = np.exp(u * math.log(top))
    else:
        a = 1.0 - exponent
        x = (1.0 + u * (top**a - 1.0)) ** (1.0 / a)
    rank = np.minimum(x.astype(np.int64) - 1, num_ids - 1)
    m = next((p % num_ids for p in _MULTIPLIERS if math.gcd(p % num_ids, num_ids) == 1), 1)
    return (rank * m) % num_ids


def make_schema(
    mode="movielens",
    rows=1_000_000,
    ids=100_000,
    items=None,
    fields=26,
    user_exponent=0.8,
    item_exponent=1.0,
    seed=0,
    chunk_rows=1 << 20,
    block_rows=8192,
) -> dict:
    """The JSON-able description of a data set: mode, sizes, columns (dtype, vocabulary)."""
    checks = {"rows": rows, "ids": ids, "fields": fields, "block_rows": block_rows}
    for name, value in checks.items():
        if not isinstance(value, int | np.integer) or value < (2 if name == "ids" else 1):
            raise ValueError(
                f"`{name}` must be a positive integer (ids >= 2). Received: {name}={value!r}"
            )
    if mode not in MODES:
        raise ValueError(f"`mode` must be one of {MODES}. Received: mode={mode!r}")
    if chunk_rows % block_rows:
        raise ValueError(
            f"`chunk_rows` must be a multiple of block_rows={block_rows}. Received: "
            f"chunk_rows={chunk_rows}. Fix: round it to a multiple."
        )
    columns = {}
    if mode == "movielens":
        columns["user_id"] = {"dtype": "int32", "vocabulary": int(ids), "side": "user"}
        columns["movie_id"] = {"dtype": "int32", "vocabulary": int(items or ids), "side": "item"}
        for name, (owner, size, _) in _MOVIELENS_SIDE.items():
            columns[name] = {"dtype": "int32", "vocabulary": size, "side": columns[owner]["side"]}
    else:
        sizes = np.geomspace(4, max(ids, 4), fields).round().astype(np.int64)
        for i, size in enumerate(sizes):
            side = "user" if i < fields // 2 else "item"
            columns[f"c{i}"] = {"dtype": "int32", "vocabulary": int(size), "side": side}
        for i in range(_NUM_DENSE):
            columns[f"d{i}"] = {"dtype": "float32", "vocabulary": 0, "side": "user"}
    columns["label"] = {"dtype": "float32", "vocabulary": 0, "side": "label"}
    return {
        "mode": mode,
        "rows": int(rows),
        "seed": int(seed),
        "user_exponent": float(user_exponent),
        "item_exponent": float(item_exponent),
        "chunk_rows": int(chunk_rows),
        "block_rows": int(block_rows),
        "columns": columns,
    }


def _movielens_chunk(schema, rng, size) -> dict:
    cols = schema["columns"]
    user = power_law_ids(rng, cols["user_id"]["vocabulary"], size, schema["user_exponent"])
    movie = power_law_ids(rng, cols["movie_id"]["vocabulary"], size, schema["item_exponent"])
    out = {"user_id": user, "movie_id": movie}
    for name, (owner, vocab, salt) in _MOVIELENS_SIDE.items():
        out[name] = (mix(out[owner], salt) % np.uint64(vocab)).astype(np.int64)
    taste = (mix(user, 31) % np.uint64(19)).astype(np.int64)  # hidden favourite genre
    p = np.where(taste == out["movie_genre"], 0.7, 0.15)
    out["label"] = rng.random(size) < p
    return out


def _criteo_chunk(schema, rng, size) -> dict:
    out, logit = {}, np.full(size, -1.5)
    for name, column in schema["columns"].items():
        if name.startswith("c"):
            vocab = column["vocabulary"]
            out[name] = power_law_ids(rng, vocab, size, schema["item_exponent"])
            weight = mix(out[name], int(name[1:]) + 100) >> np.uint64(11)
            logit += (weight.astype(np.float64) / 2.0**53 - 0.5) * (1.2 if vocab > 100 else 0.6)
        elif name.startswith("d"):
            out[name] = np.log1p(rng.lognormal(1.0, 1.5, size))
    out["label"] = rng.random(size) < 1.0 / (1.0 + np.exp(-logit))
    return out


def generate_chunk(schema: dict, index: int) -> dict:
    """Rows ``[index * chunk_rows, ...)`` of the data set as numpy columns (schema dtypes).

    Each chunk has its own generator seeded by (seed, index), so chunks can be made in any
    order and the data depends only on the schema."""
    start = index * schema["chunk_rows"]
    size = min(schema["chunk_rows"], schema["rows"] - start)
    if size <= 0:
        raise ValueError(
            f"Chunk {index} is past the end ({schema['rows']} rows). Received: index={index}"
        )
    rng = np.random.default_rng([schema["seed"], index])
    make = _movielens_chunk if schema["mode"] == "movielens" else _criteo_chunk
    out = make(schema, rng, size)
    return {k: np.asarray(out[k]).astype(c["dtype"]) for k, c in schema["columns"].items()}


def generate(schema: dict):
    """Yields every chunk of the data set in order (see `generate_chunk`)."""
    for index in range(math.ceil(schema["rows"] / schema["chunk_rows"])):
        yield generate_chunk(schema, index)


def _record(block: dict) -> bytes:
    feature = {
        k: tf.train.Feature(
            bytes_list=tf.train.BytesList(value=[tf.make_tensor_proto(v).SerializeToString()])
        )
        for k, v in block.items()
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def write_dataset(schema: dict, out_dir, shards: int | None = None) -> list[Path]:
    """Generates the data set chunk by chunk into `shards` contiguous TFRecord shards.

    Defaults to one shard per ~1M rows. Returns the shard paths. Each shard and the schema
    are written under a temporary name and renamed, so a reader never sees a partial file."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    block = schema["block_rows"]
    blocks = math.ceil(schema["rows"] / block)
    shards = int(shards or max(1, round(schema["rows"] / 1_000_000)))
    if not 1 <= shards <= blocks:
        raise ValueError(
            f"`shards` must be in [1, {blocks}] (one block of {block} rows at least per shard). "
            f"Received: shards={shards}"
        )
    bounds = np.linspace(0, blocks, shards + 1).astype(np.int64)  # blocks per shard
    paths = [out_dir / f"part-{s:05d}-of-{shards:05d}.tfrecord" for s in range(shards)]
    shard, writer, tmp, done = -1, None, None, 0
    try:
        for chunk in generate(schema):
            for start in range(0, len(chunk["label"]), block):
                if writer is None or done == bounds[shard + 1]:
                    if writer is not None:
                        writer.close()
                        os.replace(tmp, paths[shard])
                    shard += 1
                    tmp = paths[shard].with_name(f".tmp-{paths[shard].name}-{os.getpid()}")
                    writer = tf.io.TFRecordWriter(str(tmp))
                writer.write(_record({k: v[start : start + block] for k, v in chunk.items()}))
                done += 1
        writer.close()
        os.replace(tmp, paths[shard])
        writer = None
    finally:
        if writer is not None:
            writer.close()
            Path(tmp).unlink(missing_ok=True)
    meta = out_dir / f".tmp-{SCHEMA_FILE}-{os.getpid()}"
    meta.write_text(json.dumps(dict(schema, shards=shards), indent=2))
    os.replace(meta, out_dir / SCHEMA_FILE)
    return paths


def load_schema(directory) -> dict:
    """The schema a `write_dataset` directory was written with."""
    path = Path(directory) / SCHEMA_FILE
    if not path.exists():
        raise FileNotFoundError(
            f"No {SCHEMA_FILE} in {directory}: not a finished scale data set. Fix: run "
            f"`python -m tfrec.data.scale --out {directory}` first."
        )
    return json.loads(path.read_text())


def read_dataset(
    directory, batch_size=4096, shuffle=False, seed=0, cycle_length=4, columns=None, rename=None,
    shard=None,
) -> tf.data.Dataset:  # fmt: skip
    """Streams a written data set as dict batches, never holding more than a few blocks.

    Shards are listed and interleaved (``cycle_length`` read at once, in parallel); each
    record is a block of rows, parsed whole and re-batched to `batch_size`. With
    ``shuffle=False`` rows come back in generation order. `columns` selects columns and
    `rename` maps column names to model input keys (see `tfrec.features.scale_towers`).
    ``shard=(count, index)`` reads only every count-th file from the index-th (one reader of
    several, e.g. a `tf.distribute` worker; the file order is shuffled by `seed` first, so
    readers with the same seed split the files between them)."""
    schema = load_schema(directory)
    specs = {k: c for k, c in schema["columns"].items() if columns is None or k in columns}
    pattern = str(Path(directory) / "part-*.tfrecord")
    files = tf.data.Dataset.list_files(pattern, shuffle=shuffle, seed=seed)
    if shard is not None:
        count, index = shard
        if not 0 <= index < count or count > schema.get("shards", count):
            raise ValueError(
                f"`shard` must be (count, index) with 0 <= index < count <= the {schema.get('shards')} "
                f"files of {directory}. Received: shard={shard!r}. Fix: write the data set with "
                "at least one shard per reader (`--shards`)."
            )
        files = files.shard(count, index)
    records = files.interleave(
        tf.data.TFRecordDataset,
        cycle_length=1 if not shuffle else cycle_length,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=not shuffle,
    )
    parse_spec = {k: tf.io.FixedLenFeature([], tf.string) for k in specs}
    rename = rename or {}

    def parse(record):
        raw = tf.io.parse_single_example(record, parse_spec)
        return {
            rename.get(k, k): tf.ensure_shape(tf.io.parse_tensor(raw[k], c["dtype"]), [None])
            for k, c in specs.items()
        }

    ds = records.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=not shuffle)
    if shuffle:
        ds = ds.shuffle(8, seed=seed)
    return ds.rebatch(batch_size).prefetch(tf.data.AUTOTUNE)


def main(argv=None) -> None:
    """CLI: generate and write a data set, then print its size and the time taken."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--ids", type=int, default=100_000, help="ids per id field")
    parser.add_argument("--items", type=int, default=None, help="movies (default: --ids)")
    parser.add_argument("--mode", choices=MODES, default="movielens")
    parser.add_argument("--fields", type=int, default=26, help="categorical fields (criteo)")
    parser.add_argument("--shards", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    schema = make_schema(args.mode, args.rows, args.ids, args.items, args.fields, seed=args.seed)
    start = time.perf_counter()
    paths = write_dataset(schema, args.out, args.shards)
    seconds = time.perf_counter() - start
    size = sum(p.stat().st_size for p in paths)
    print(
        f"wrote {args.rows:,} rows ({args.mode}) in {len(paths)} shards, {size / 1e6:,.0f} MB, "
        f"in {seconds:.1f} s ({args.rows / seconds:,.0f} rows/s) to {args.out}"
    )


if __name__ == "__main__":
    main()
