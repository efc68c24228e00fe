"""`check_k`: the k every in-graph index and `recommend` signature validates."""

import tfrec  # noqa: F401  # isort: skip
import pytest
import tensorflow as tf

from tfrec.retrieval.topk import check_k


def test_check_k_casts_valid_values_to_int32():
    for k in (0, 7, tf.constant(7, tf.int64), tf.constant(2**31 - 1, tf.int64)):
        checked = check_k(k)
        assert checked.dtype == tf.int32 and int(checked) == int(k)


@pytest.mark.parametrize("run", [lambda k: check_k(k), tf.function(lambda k: check_k(k))])
def test_check_k_refuses_negative_and_int32_overflow_before_casting(run):
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"(?s)`k` must be >= 0.*-1"):
        run(tf.constant(-1))
    # 2**32 + 2 would wrap around to 2 in the cast (issue 14, finding 6).
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"(?s)at most 2147483647.*4294967298"):
        run(tf.constant(2**32 + 2, tf.int64))
