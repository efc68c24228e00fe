"""Property tests (Hypothesis) of the feature columns: adapt to random tables, serve random inputs.

Every column (Categorical, MultiCategorical, Text, Numeric) adapted to a generated training
table either builds or raises a ValueError naming the column; applied to generated inputs
(unknown ids, empty strings, padding-only rows, NaN, extreme numbers) it returns an embedding
[B, k] and a weight [B] that are finite, and maps each value where it should (known values to
their vocabulary slot, unknown ones to the out-of-vocabulary slot, NaN to "missing").
Derandomized and few examples (each builds Keras layers); TFREC_PROPERTY_EXAMPLES scales them.
"""

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 before TensorFlow loads)
import os

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tfrec.features import Categorical, MultiCategorical, Numeric, Text

EXAMPLES = int(os.environ.get("TFREC_PROPERTY_EXAMPLES", 20))
PROPERTIES = settings(
    derandomize=True,
    database=None,
    max_examples=EXAMPLES,
    deadline=None,  # the first call of a fresh layer traces TF functions: slow and variable
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
DIM = 3
# Characters from integers (st.characters would first compute a Unicode table, ~15 s on a fresh
# checkout); no surrogates, no NUL (numpy drops trailing NULs from unicode arrays).
CHARS = st.sampled_from(list("aZ09 ()'-é\xa0\u2028€😀\U00020000")) | st.integers(
    1, 0x10FFFF
).filter(lambda c: not 0xD800 <= c <= 0xDFFF).map(chr)
TEXT = st.text(CHARS, max_size=6)
IDS = st.one_of(TEXT, st.sampled_from(["", "1", "01", "é", "a b"]))
LARGE = st.floats(-1e30, 1e30, allow_nan=False) | st.sampled_from([0.0, -0.0, 1e-30])


def _check_outputs(encoder, inputs, batch):
    embedding, weight = (t.numpy() for t in encoder({encoder.key: inputs}))
    assert embedding.shape == (batch, DIM) and weight.shape == (batch,)
    assert np.isfinite(embedding).all() and np.isfinite(weight).all()
    return embedding, weight


def _build_or_explain(column, table):
    try:
        return column.build(table, DIM)
    except ValueError as error:
        assert f"'{column.key}'" in str(error) and "Fix:" in str(error)
        return None


@given(
    train=st.lists(IDS, min_size=1, max_size=12),
    serve=st.lists(IDS, min_size=1, max_size=8),
    max_tokens=st.none() | st.integers(1, 4),
    min_count=st.integers(1, 3),
    hashed=st.booleans(),
)
@PROPERTIES
def test_categorical_strings(train, serve, max_tokens, min_count, hashed):
    column = Categorical("u", max_tokens, min_count, hash_bins=7 if hashed else None)
    encoder = _build_or_explain(column, {"u": np.array(train)})
    if encoder is None:
        return
    _check_outputs(encoder, tf.constant(serve, tf.string), len(serve))
    ids = encoder.preprocess({"u": tf.constant(serve, tf.string)}).numpy()
    if hashed:
        assert ((ids >= 0) & (ids < 7)).all()
        return
    counts = {v: train.count(v) for v in set(train) if v != ""}
    kept = sorted((v for v, c in counts.items() if c >= min_count), key=lambda v: (-counts[v], v))
    assert encoder.vocabulary == kept[:max_tokens]
    expected = [encoder.vocabulary.index(v) + 1 if v in encoder.vocabulary else 0 for v in serve]
    assert ids.tolist() == expected


@given(
    train=st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=10),
    serve=st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=6),
)
@PROPERTIES
def test_categorical_integers_including_extremes(train, serve):
    encoder = Categorical("movie").build({"movie": np.array(train, np.int64)}, DIM)
    _check_outputs(encoder, tf.constant(serve, tf.int64), len(serve))
    ids = encoder.preprocess({"movie": tf.constant(serve, tf.int64)}).numpy()
    known = {str(v) for v in train}
    assert [(i > 0) for i in ids] == [str(v) in known for v in serve]


@given(
    rows=st.lists(st.lists(st.integers(-1, 30), min_size=3, max_size=3), min_size=1, max_size=8),
    serve=st.lists(st.lists(st.integers(-1, 99), min_size=3, max_size=3), min_size=1, max_size=6),
)
@PROPERTIES
def test_multi_categorical_pools_only_real_entries(rows, serve):
    column = MultiCategorical("genres", padding="-1")
    encoder = _build_or_explain(column, {"genres": np.array(rows, np.int64)})
    if encoder is None:
        assert all(v == -1 for row in rows for v in row)  # only padding: nothing to learn
        return
    embedding, weight = _check_outputs(encoder, tf.constant(serve, tf.int64), len(serve))
    table = encoder.embedding.embeddings.numpy()
    ids = encoder.preprocess({"genres": tf.constant(serve, tf.int64)}).numpy()
    for row, (values, out) in enumerate(zip(serve, embedding, strict=True)):
        real = [v for v in values if v != -1]
        slots = [encoder.vocabulary.index(str(v)) + 1 if str(v) in encoder.vocabulary else 0
                 for v in real]  # fmt: skip
        assert sorted(i for i in ids[row] if i >= 0) == sorted(slots)
        expected = table[slots].mean(axis=0) if slots else np.zeros(DIM)
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-7)


@given(train=st.lists(TEXT, min_size=1, max_size=8), serve=st.lists(TEXT, min_size=1, max_size=5))
@PROPERTIES
def test_text_titles(train, serve):
    encoder = _build_or_explain(Text("title", length=4), {"title": np.array(train)})
    if encoder is not None:
        _check_outputs(encoder, tf.constant(serve, tf.string), len(serve))


@given(
    train=st.lists(LARGE | st.just(float("nan")), min_size=1, max_size=12),
    serve=st.lists(LARGE | st.just(float("nan")), min_size=1, max_size=6),
    buckets=st.none() | st.integers(1, 6),
)
@PROPERTIES
def test_numeric_values_nan_and_extremes(train, serve, buckets):
    column = Numeric("x", num_buckets=buckets)
    encoder = _build_or_explain(column, {"x": np.array(train, np.float64)})
    if encoder is None:
        assert all(np.isnan(train))  # only missing values: nothing to adapt to
        return
    inputs = tf.constant(serve, tf.float32)
    embedding, weight = _check_outputs(encoder, inputs, len(serve))
    missing = np.isnan(serve)
    if buckets is not None:
        ids = encoder.preprocess({"x": inputs}).numpy()
        assert (ids[missing] == len(encoder.boundaries) + 1).all()  # a bucket of its own
        assert (ids[~missing] <= len(encoder.boundaries)).all()
    else:
        assert (embedding[missing] == 0).all()  # missing sits at the mean
        assert encoder.variance > 0


def test_numeric_rejects_infinite_training_values():
    with pytest.raises(ValueError, match=r"Numeric column 'x' holds 1 infinite .*x=inf.*Fix"):
        Numeric("x").build({"x": np.array([1.0, np.inf, np.nan])}, DIM)
    with pytest.raises(ValueError, match=r"out-of-float32-range values.*x=1e\+300"):
        Numeric("x").build({"x": np.array([1.0, 1e300])}, DIM)


def test_constant_numeric_column_is_centred_not_amplified():
    encoder = Numeric("x").build({"x": np.array([5.0, 5.0, 5.0])}, DIM)
    assert (encoder.mean, encoder.variance) == (5.0, 1.0)
    embedding, weight = _check_outputs(encoder, tf.constant([6.0, 1e30]), 2)
    np.testing.assert_allclose(embedding[0], encoder.vector.numpy(), rtol=1e-6)  # (6 - 5) / 1


def test_empty_vocabulary_is_explained():
    with pytest.raises(ValueError, match=r"Column 'genres' has no value.*padding \('-1'\)"):
        MultiCategorical("genres", padding="-1").build({"genres": np.array([[-1, -1]])}, DIM)
    with pytest.raises(ValueError, match=r"Column 'u' has no value.*min_count=3"):
        Categorical("u", min_count=3).build({"u": np.array(["a", "b", "a"])}, DIM)


def test_prefix_of_non_ascii_values():
    encoder = Categorical("zip", prefix_length=1).build({"zip": np.array(["é1", "a2"])}, DIM)
    assert encoder.vocabulary == ["a", "é"]


def test_extreme_input_against_a_narrow_training_range_stays_finite():
    encoder = Numeric("x").build({"x": np.array([0.0, 1e-3])}, DIM)
    _check_outputs(encoder, tf.constant([1e36]), 1)
