"""get_task: tasks by name, by serialized config, or as layers; anything else is an error."""

import tfrec  # noqa: F401  # isort: skip  (selects Keras 2 before TensorFlow loads)
import pytest
import tensorflow as tf

from tfrec.tasks import TASKS, CatalogueSoftmax, InBatchSoftmax, RankingTask, SampledBCE, get_task


def test_names_build_each_task_with_options():
    assert TASKS == {
        "ranking": RankingTask,
        "in_batch": InBatchSoftmax,
        "catalogue": CatalogueSoftmax,
        "negatives": SampledBCE,
    }
    assert type(get_task("ranking")) is RankingTask
    assert get_task("ranking", metrics=False).track_metrics is False
    retrieval = get_task("in_batch", logq="none", mixed_negatives=False)
    assert (retrieval.logq, retrieval.mixed_negatives) == ("none", False)
    softmax = get_task("catalogue", num_items=7, num_sampled=3)
    assert (softmax.num_items, softmax.num_sampled) == (7, 3)
    needs_items = ("catalogue", "negatives")
    assert {
        get_task(n, **({"num_items": 2} if n in needs_items else {})).objective for n in TASKS
    } == {"pointwise", "in_batch", "catalogue", "negatives"}


def test_configs_and_layers():
    task = InBatchSoftmax(logq="feature", catalogue_size=9, name="retrieval")
    rebuilt = get_task(tf.keras.layers.serialize(task))
    assert type(rebuilt) is InBatchSoftmax and rebuilt.get_config() == task.get_config()
    assert get_task(task) is task


@pytest.mark.parametrize(
    ("task", "error", "pattern"),
    [
        ("pairwise", ValueError, r"Unknown task. Received: task='pairwise'. Fix: use one of"),
        (tf.keras.layers.Dense(1), TypeError, "must be a tfrec task.*Received: task=Dense"),
        (3, TypeError, "Received: task=int"),
    ],
)
def test_errors(task, error, pattern):
    with pytest.raises(error, match=pattern):
        get_task(task)
