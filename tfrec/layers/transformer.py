"""Self-attention over item sequences: the encoders of SASRec (causal) and BERT4Rec (bidirectional).

A sequential recommender reads a user as the ordered list of what they watched. Self-attention
lets every position look at every earlier position (causal, SASRec: Kang & McAuley 2018) or at
the whole sequence (bidirectional, BERT4Rec: Sun et al. 2019), weighting the items that matter
for what comes next. `SequenceTransformer` adds learned position embeddings to the item
embeddings and runs `TransformerBlock`s, masking padding (and the future, when causal).
"""

from __future__ import annotations

import tensorflow as tf

from tfrec.layers._checks import is_positive_int


def _check(name, value, low=0.0, high=1.0):
    if isinstance(value, bool) or not low <= float(value) < high:
        raise ValueError(f"`{name}` must be in [{low}, {high}). Received: {name}={value!r}")
    return float(value)


def attention_mask(mask: tf.Tensor, causal: bool) -> tf.Tensor:
    """``[B, L, L]`` bool: query i may attend key j (j is real, and j <= i when causal)."""
    length = tf.shape(mask)[1]
    keys = tf.tile(mask[:, None, :], [1, length, 1])
    if not causal:
        return keys
    lower = tf.linalg.band_part(tf.ones([length, length], tf.bool), -1, 0)
    return keys & lower[None, :, :]


@tf.keras.utils.register_keras_serializable(package="tfrec")
class TransformerBlock(tf.keras.layers.Layer):
    """Multi-head self-attention and a position-wise feed-forward net, with residuals.

    ``norm_first=True`` is SASRec's block (layer norm before attention and before the
    feed-forward net, ReLU); ``False`` is BERT's (layer norm after each residual, GELU).

    Args:
      num_heads: Attention heads (the model width must be divisible by it).
      dropout: Dropout on attention weights and after each sub-layer.
      activation: Feed-forward activation ("relu" or "gelu").
      norm_first: Pre-norm (SASRec) or post-norm (BERT) residual blocks.
      ff_multiplier: Feed-forward hidden size as a multiple of the width.

    Call arguments:
      x: ``[B, L, d]`` sequence.
      mask: ``[B, L, L]`` bool attention mask (see `attention_mask`).
      training: Whether dropout is active.

    Returns:
      ``[B, L, d]``.

    Example:
      >>> block = TransformerBlock(num_heads=2)
      >>> x = tf.random.normal([3, 5, 8])
      >>> block(x, attention_mask(tf.ones([3, 5], tf.bool), causal=True)).shape
      TensorShape([3, 5, 8])
    """

    def __init__(self, num_heads=1, dropout=0.2, activation="relu", norm_first=True,
                 ff_multiplier=1, **kwargs):  # fmt: skip
        super().__init__(**kwargs)
        if not is_positive_int(num_heads):
            raise ValueError(
                f"`num_heads` must be a positive integer. Received: num_heads={num_heads!r}"
            )
        if not is_positive_int(ff_multiplier):
            raise ValueError(
                f"`ff_multiplier` must be a positive integer. Received: ff_multiplier={ff_multiplier!r}"
            )
        self.num_heads = int(num_heads)
        self.dropout = _check("dropout", dropout)
        self.activation = activation
        self.norm_first = bool(norm_first)
        self.ff_multiplier = int(ff_multiplier)

    def build(self, input_shape):
        width = int(input_shape[-1])
        if width % self.num_heads:
            raise ValueError(
                f"The sequence width {width} must be divisible by num_heads={self.num_heads}. "
                f"Received: num_heads={self.num_heads} for inputs of width {width}. Fix: use a "
                "number of heads that divides the embedding size."
            )
        self.attention = tf.keras.layers.MultiHeadAttention(
            self.num_heads, width // self.num_heads, dropout=self.dropout, name="attention"
        )
        # Create the attention weights now: built lazily on first call, Keras' SavedModel
        # loader never restores them (a reloaded model would attend with fresh weights).
        probe = tf.zeros([1, 1, width])
        self.attention(probe, probe)
        self.hidden = tf.keras.layers.Dense(
            width * self.ff_multiplier, activation=self.activation, name="ff_hidden"
        )
        self.output_dense = tf.keras.layers.Dense(width, name="ff_output")
        self.norm_attention = tf.keras.layers.LayerNormalization(epsilon=1e-6, name="norm_1")
        self.norm_ff = tf.keras.layers.LayerNormalization(epsilon=1e-6, name="norm_2")
        self.drop = tf.keras.layers.Dropout(self.dropout)
        super().build(input_shape)

    def _feed_forward(self, x, training):
        return self.drop(
            self.output_dense(self.drop(self.hidden(x), training=training)), training=training
        )

    def attention_scores(self, x, mask):
        """The attention weights ``[B, heads, L, L]`` this block gives `x` (inference)."""
        query = self.norm_attention(x) if self.norm_first else x
        _, scores = self.attention(query, x, attention_mask=mask, return_attention_scores=True)
        return scores

    def call(self, x, mask, training=False):
        if self.norm_first:
            query = self.norm_attention(x)
            x = query + self.drop(
                self.attention(query, x, attention_mask=mask, training=training), training=training
            )
            return x + self._feed_forward(self.norm_ff(x), training)
        attended = self.attention(x, x, attention_mask=mask, training=training)
        x = self.norm_attention(x + self.drop(attended, training=training))
        return self.norm_ff(x + self._feed_forward(x, training))

    def get_config(self):
        config = super().get_config()
        config.update(
            num_heads=self.num_heads,
            dropout=self.dropout,
            activation=self.activation,
            norm_first=self.norm_first,
            ff_multiplier=self.ff_multiplier,
        )
        return config


@tf.keras.utils.register_keras_serializable(package="tfrec")
class SequenceTransformer(tf.keras.layers.Layer):
    """Learned positions plus a stack of `TransformerBlock`s over a masked item sequence.

    Args:
      max_length: L, the number of positions (inputs are ``[B, L, d]``, newest last).
      num_blocks: Number of blocks.
      num_heads: Attention heads per block.
      dropout: Dropout on the embeddings, attention and feed-forward outputs.
      causal: Each position sees only itself and earlier ones (SASRec) or everything (BERT4Rec).
      activation: Feed-forward activation.
      norm_first: Pre-norm blocks and a final layer norm (SASRec) or post-norm (BERT).

    Call arguments:
      x: ``[B, L, d]`` item embeddings (zeros at padding).
      mask: ``[B, L]`` bool, True at real items.
      training: Whether dropout is active.

    Returns:
      ``[B, L, d]`` states, zeros at padding.

    Example:
      >>> encoder = SequenceTransformer(max_length=5, num_blocks=2, num_heads=1, causal=True)
      >>> encoder(tf.random.normal([2, 5, 8]), tf.constant([[False] * 2 + [True] * 3] * 2)).shape
      TensorShape([2, 5, 8])
    """

    def __init__(self, max_length=50, num_blocks=2, num_heads=1, dropout=0.2, causal=True,
                 activation="relu", norm_first=True, **kwargs):  # fmt: skip
        super().__init__(**kwargs)
        for name, value in (("max_length", max_length), ("num_blocks", num_blocks)):
            if not is_positive_int(value):
                raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
        self.max_length = int(max_length)
        self.num_blocks = int(num_blocks)
        self.num_heads = int(num_heads)
        self.dropout = _check("dropout", dropout)
        self.causal = bool(causal)
        self.activation = activation
        self.norm_first = bool(norm_first)
        self.blocks = [
            TransformerBlock(
                num_heads, self.dropout, activation, self.norm_first, name=f"block_{i}"
            )
            for i in range(self.num_blocks)
        ]
        self.drop = tf.keras.layers.Dropout(self.dropout)
        self.norm = tf.keras.layers.LayerNormalization(epsilon=1e-6, name="norm")

    def build(self, input_shape):
        self.positions = self.add_weight(
            name="positions",
            shape=(self.max_length, int(input_shape[-1])),
            initializer=tf.keras.initializers.RandomNormal(0.0, 0.05),
        )
        super().build(input_shape)

    def _embed(self, x, mask, training):
        keep = tf.cast(mask, x.dtype)[..., None]
        if self.norm_first:  # SASRec scales item embeddings by sqrt(d) before adding positions
            x = x * float(x.shape[-1]) ** 0.5
        x = self.drop(x + tf.cast(self.positions, x.dtype)[None], training=training) * keep
        return self.norm(x) if not self.norm_first else x

    def attention_maps(self, x, mask) -> list:
        """Each block's attention weights ``[B, heads, L, L]`` for `x` (inference), e.g. to
        plot which earlier items a user's newest position looks at."""
        keep = tf.cast(mask, x.dtype)[..., None]
        attend = attention_mask(mask, self.causal)
        x = self._embed(x, mask, False)
        maps = []
        for block in self.blocks:
            maps.append(block.attention_scores(x, attend))
            x = block(x, attend, training=False) * keep
        return maps

    def call(self, x, mask, training=False):
        keep = tf.cast(mask, x.dtype)[..., None]
        x = self._embed(x, mask, training)
        attend = attention_mask(mask, self.causal)
        for block in self.blocks:
            x = block(x, attend, training=training) * keep
        if self.norm_first:
            x = self.norm(x) * keep
        return x

    def get_config(self):
        config = super().get_config()
        config.update(
            max_length=self.max_length,
            num_blocks=self.num_blocks,
            num_heads=self.num_heads,
            dropout=self.dropout,
            causal=self.causal,
            activation=self.activation,
            norm_first=self.norm_first,
        )
        return config
