"""Declarative feature columns, the encoders they build, the towers made of them, side tables.

Layering: `tfrec.data` -> `tfrec.features` (columns adapt to data tables and build Keras
encoders; towers group encoders into one side of a model; the store joins side features by id)
-> `tfrec.layers` -> `tfrec.models`.
"""

from tfrec.features.columns import (
    Categorical,
    ItemSequence,
    MultiCategorical,
    Numeric,
    Text,
    column_from_config,
)
from tfrec.features.encoders import CategoricalEncoder, NumericEncoder
from tfrec.features.inputs import ModelInputs, example_table, feature_store
from tfrec.features.sequence import SequenceEncoder
from tfrec.features.store import FeatureStore
from tfrec.features.towers import (
    RECENT_MOVIES,
    Tower,
    build_tower,
    movielens_movie_columns,
    movielens_user_columns,
    scale_towers,
)

__all__ = [
    "RECENT_MOVIES",
    "Categorical",
    "CategoricalEncoder",
    "FeatureStore",
    "ItemSequence",
    "ModelInputs",
    "MultiCategorical",
    "Numeric",
    "NumericEncoder",
    "SequenceEncoder",
    "Text",
    "Tower",
    "build_tower",
    "column_from_config",
    "example_table",
    "feature_store",
    "movielens_movie_columns",
    "movielens_user_columns",
    "scale_towers",
]
