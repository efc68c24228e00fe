"""`replica_mean` (tfrec/tasks/reduction.py): the global batch's mean, however many replicas.

With one replica it is the plain mean (checked by hand); inside a strategy's replica context
it divides by the replicas in sync, so the gradient all-reduce (a sum) yields the global mean:
checked with two logical CPUs in a child process (devices must be split before TF starts).
"""

import tfrec  # noqa: F401  # isort: skip
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfrec.tasks.reduction import replica_mean

ROOT = Path(__file__).resolve().parents[2]


def test_one_replica_is_the_plain_mean():
    assert float(replica_mean(tf.constant([1.0, 2.0, 6.0]))) == 3.0
    assert float(replica_mean(tf.zeros([0]))) == 0.0  # an empty slice adds nothing
    strategy = tf.distribute.MirroredStrategy()
    value = strategy.run(lambda: replica_mean(tf.constant([2.0, 4.0])))
    assert float(strategy.reduce("SUM", value, axis=None)) == 3.0


def test_two_replicas_sum_to_the_global_mean():
    code = textwrap.dedent(
        """
        import tfrec
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from tfrec.tasks.reduction import replica_mean
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        data = tf.constant([1.0, 2.0, 3.0, 10.0])  # replica 0 gets [1, 2], replica 1 [3, 10]
        ds = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(data).unbatch().batch(4))
        per_replica = strategy.run(replica_mean, args=(next(iter(ds)),))
        print(float(strategy.reduce("SUM", per_replica, axis=None)))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert np.isclose(float(done.stdout.strip().splitlines()[-1]), 4.0)  # mean of all four
