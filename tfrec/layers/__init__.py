"""Model building blocks: Keras 2 layers that take embeddings/tensors, never raw features.

Models in ``tfrec.models`` look up the features and wire these blocks together. Every layer
is registered under the ``tfrec`` package, so saved models reload without custom_objects.
"""

from tfrec.layers.cross import CrossNetwork
from tfrec.layers.crossed import CrossedCategorical
from tfrec.layers.dropout import StatelessDropout
from tfrec.layers.ffm import FieldAwareEmbedding, FieldAwareInteraction
from tfrec.layers.fm import FactorizationMachine
from tfrec.layers.linear import LinearTerm
from tfrec.layers.mlp import MLP
from tfrec.layers.normalize import L2Normalize
from tfrec.layers.pooling import ElementwiseProduct, MaskedMeanPooling
from tfrec.layers.transformer import SequenceTransformer, TransformerBlock, attention_mask

__all__ = [
    "MLP",
    "CrossNetwork",
    "CrossedCategorical",
    "ElementwiseProduct",
    "FactorizationMachine",
    "FieldAwareEmbedding",
    "FieldAwareInteraction",
    "L2Normalize",
    "LinearTerm",
    "MaskedMeanPooling",
    "SequenceTransformer",
    "StatelessDropout",
    "TransformerBlock",
    "attention_mask",
]
