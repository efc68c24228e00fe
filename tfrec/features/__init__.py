"""Declarative feature columns, the field encoders they build, and the side-feature store."""

from tfrec.features.columns import Categorical, MultiCategorical, Numeric, Text, column_from_config
from tfrec.features.encoders import CategoricalEncoder, NumericEncoder
from tfrec.features.store import FeatureStore

__all__ = [
    "Categorical",
    "CategoricalEncoder",
    "FeatureStore",
    "MultiCategorical",
    "Numeric",
    "NumericEncoder",
    "Text",
    "column_from_config",
]
