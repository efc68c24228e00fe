"""Optimizers for models whose embedding tables are far larger than one batch touches.

Why this exists: tf.keras' Adam, given a sparse (``IndexedSlices``) embedding gradient, still
decays both moment slots and moves *every* row of the table on every step, so a step costs
O(ids x dim) however small the batch is. With 10^6 ids per field that full-table work dominates
training (the knee in `benchmarks/RESULTS.md`). `LazyAdam` applies Adam only to the rows the
batch touched, the rule of TF Addons' LazyAdam and PyTorch's SparseAdam, so a step costs
O(batch) on embeddings while dense layers get plain Adam. For tables small enough that the
full-table work is cheap, `DenseAdam` (what ``"adam"`` means) computes tf.keras' Adam rule
but sums each sparse gradient into a dense one first, skipping the per-step sort that
deduplicates sparse indices (the largest single cost of a small model's step, measured in
`benchmarks/RESULTS.md`). Both run each dense update as one fused kernel (`_FusedAdam`).
`get_optimizer` turns the `optimizer` setting of `tfrec.training.fit` (and ``tfrec train --set
optimizer=...``) into an instance.
"""

from __future__ import annotations

import tensorflow as tf

OPTIMIZERS = ("adam", "lazy_adam", "adagrad")
"""Names accepted by `get_optimizer`."""


class _FusedAdam(tf.keras.optimizers.Adam):
    """tf.keras' Adam whose dense updates run as TensorFlow's fused Adam kernel.

    Why this exists: tf.keras' Adam updates a dense gradient with several elementwise ops
    per variable (two moment updates, square, sqrt, divide, ...), each a kernel launch and a
    pass over the variable: the profiler counted 90 executed Adam ops per step of a six-field
    DeepFM (19 variables), 29 with this kernel (`benchmarks/RESULTS.md`).
    ``ResourceApplyAdam`` computes the same rule in one pass (same formula, same epsilon-hat
    form; results agree to float32 rounding). Sparse gradients, amsgrad and variables without a
    resource handle take tf.keras' own path.
    """

    def _step_terms(self, variable) -> dict:
        """This step's Adam terms in `variable`'s dtype and its two moment slots (shared by the
        fused dense update and `LazyAdam`'s row-wise one)."""
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        beta_2_power = tf.pow(beta_2, step)
        epsilon = tf.cast(self.epsilon, dtype)
        if self.adaptive_epsilon:
            epsilon *= tf.sqrt(1 - beta_2_power)
        index = self._index_dict[self._var_key(variable)]
        return dict(
            lr=tf.cast(self.learning_rate, dtype),
            beta_1=beta_1,
            beta_2=beta_2,
            beta_1_power=tf.pow(beta_1, step),
            beta_2_power=beta_2_power,
            epsilon=epsilon,
            m=self._momentums[index],
            v=self._velocities[index],
        )

    def update_step(self, gradient, variable):
        """One fused kernel per dense gradient; tf.keras' Adam otherwise."""
        t = self._step_terms(variable)
        if (
            isinstance(gradient, tf.IndexedSlices)
            or self.amsgrad
            or not all(hasattr(x, "handle") for x in (variable, t["m"], t["v"]))
        ):
            return super().update_step(gradient, variable)
        return tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=t["m"].handle,
            v=t["v"].handle,
            beta1_power=t["beta_1_power"],
            beta2_power=t["beta_2_power"],
            lr=t["lr"],
            beta1=t["beta_1"],
            beta2=t["beta_2"],
            epsilon=t["epsilon"],
            grad=tf.cast(gradient, variable.dtype),
        )


@tf.keras.utils.register_keras_serializable(package="tfrec")
class DenseAdam(_FusedAdam):
    """tf.keras' Adam with sparse gradients summed into dense ones before the update.

    tf.keras' Adam already touches every row of a table on a sparse update (its moments decay
    densely), so the rule is the same; what changes is the cost: the sparse path first
    deduplicates the gradient's indices (a sort of B x L ids per field and step), which for a
    small model costs more than the whole forward pass. ``unsorted_segment_sum`` into the dense
    shape sums duplicates without sorting, and the dense update is one fused kernel
    (`_FusedAdam`: equal to tf.keras' up to float32 rounding of ``1 - beta_2``). Use `LazyAdam`
    instead once tables reach ~10^5 ids, where touching every row is what costs.

    Args:
      learning_rate, beta_1, beta_2, epsilon, amsgrad, **kwargs: As for
        `tf.keras.optimizers.Adam`.

    Example:

    >>> opt = DenseAdam(1e-3)
    >>> table = tf.Variable(tf.zeros([4, 2]))
    >>> grad = tf.IndexedSlices(tf.ones([2, 2]), tf.constant([2, 2]), tf.constant([4, 2]))
    >>> _ = opt.apply_gradients([(grad, table)])
    >>> [round(float(x), 4) for x in table[:, 0]]
    [0.0, 0.0, -0.001, 0.0]
    """

    def apply_gradients(
        self, grads_and_vars, name=None, skip_gradients_aggregation=False, **kwargs
    ):
        dense = [
            (_dense(g, v), v) if isinstance(g, tf.IndexedSlices) else (g, v)
            for g, v in grads_and_vars
        ]
        return super().apply_gradients(dense, name, skip_gradients_aggregation, **kwargs)


def _dense(gradient: tf.IndexedSlices, variable) -> tf.Tensor:
    rows = variable.shape[0] if variable.shape[0] is not None else tf.shape(variable)[0]
    return tf.math.unsorted_segment_sum(gradient.values, gradient.indices, rows)


@tf.keras.utils.register_keras_serializable(package="tfrec")
class LazyAdam(_FusedAdam):
    """Adam whose sparse updates touch only the rows present in the gradient.

    Dense gradients get tf.keras' Adam rule (as one fused kernel, `_FusedAdam`). For an
    ``IndexedSlices`` gradient (whose duplicate indices `apply_gradients` has already summed),
    for each touched row ``r``::

        m[r] = beta_1 * m[r] + (1 - beta_1) * g[r]
        v[r] = beta_2 * v[r] + (1 - beta_2) * g[r]^2
        w[r] -= alpha_t * m[r] / (sqrt(v[r]) + epsilon_hat)

    with Adam's bias-corrected ``alpha_t``. Rows the batch did not touch keep their weights and
    moments (plain Adam would keep moving them on their stale momentum). This is the usual
    trade: per-step cost independent of the table size, at slightly different dynamics for
    rare ids. `amsgrad` is not supported for sparse updates.

    Args:
      learning_rate, beta_1, beta_2, epsilon, **kwargs: As for `tf.keras.optimizers.Adam`.

    Example:

    >>> opt = LazyAdam(1e-3)
    >>> table = tf.Variable(tf.zeros([4, 2]))
    >>> grad = tf.IndexedSlices(tf.ones([1, 2]), tf.constant([2]), tf.constant([4, 2]))
    >>> _ = opt.apply_gradients([(grad, table)])
    >>> [round(float(x), 4) for x in table[:, 0]]
    [0.0, 0.0, -0.001, 0.0]
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        if kwargs.get("amsgrad"):
            raise ValueError(
                "LazyAdam does not support amsgrad. Received: amsgrad=True. Fix: use "
                "tf.keras.optimizers.Adam(amsgrad=True)."
            )
        kwargs.pop("amsgrad", None)
        super().__init__(learning_rate, beta_1, beta_2, epsilon, **kwargs)

    def update_step(self, gradient, variable):
        """Sparse gradients: lazy row-wise Adam; dense gradients: tf.keras Adam."""
        if not isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable)
        t = self._step_terms(variable)
        beta_1, beta_2, epsilon, m, v = (t[k] for k in ("beta_1", "beta_2", "epsilon", "m", "v"))
        alpha = t["lr"] * tf.sqrt(1 - t["beta_2_power"]) / (1 - t["beta_1_power"])
        # `apply_gradients` has already summed duplicate indices (Optimizer._deduplicate_sparse_grad).
        rows, values = gradient.indices, gradient.values
        m_rows = beta_1 * tf.gather(m, rows) + (1 - beta_1) * values
        v_rows = beta_2 * tf.gather(v, rows) + (1 - beta_2) * tf.square(values)
        m.scatter_update(tf.IndexedSlices(m_rows, rows))
        v.scatter_update(tf.IndexedSlices(v_rows, rows))
        variable.scatter_sub(tf.IndexedSlices(alpha * m_rows / (tf.sqrt(v_rows) + epsilon), rows))


def get_optimizer(optimizer, learning_rate: float):
    """An optimizer instance from a name in `OPTIMIZERS` (or an instance, returned as is).

    ``"adam"`` is `DenseAdam` (tf.keras' Adam, computed faster). ``"adam"`` and ``"lazy_adam"``
    run without XLA (jit-compiled Adam measured no faster on CPU,
    and slower under load, for sparse embedding gradients); ``"adagrad"`` is tf.keras' Adagrad,
    whose sparse updates are already row-wise.
    """
    if isinstance(optimizer, tf.keras.optimizers.Optimizer):
        return optimizer
    if optimizer == "adam":
        return DenseAdam(learning_rate, jit_compile=False)
    if optimizer == "lazy_adam":
        return LazyAdam(learning_rate, jit_compile=False)
    if optimizer == "adagrad":
        return tf.keras.optimizers.Adagrad(learning_rate, jit_compile=False)
    raise ValueError(
        f"Unknown optimizer. Received: optimizer={optimizer!r}. Fix: use one of "
        f"{', '.join(OPTIMIZERS)} or pass a tf.keras optimizer instance."
    )
