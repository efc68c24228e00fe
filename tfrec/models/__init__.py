"""Models: each file wires named blocks from `tfrec.layers` into the `Recommender` contract.

Every model registers itself where it is defined, with its defaults, so
`build_model("deepfm", data)` (and `tfrec train deepfm`) finds it; `available_models()` lists
them and `model_defaults(name)` shows the defaults.
"""

from tfrec.models.base import CANDIDATES, Recommender, example_features, take, ungroup
from tfrec.models.bert4rec import BERT4Rec
from tfrec.models.dcn import DCN
from tfrec.models.deepfm import DeepFM
from tfrec.models.ffm import FFM
from tfrec.models.fm import FM
from tfrec.models.gru4rec import GRU4Rec
from tfrec.models.ncf import GMF, NCFMLP
from tfrec.models.neumf import NeuMF
from tfrec.models.registry import (
    PRESETS,
    TRAIN_DEFAULTS,
    Preset,
    available_models,
    build_model,
    model_class,
    model_defaults,
    preset,
    register_model,
    train_defaults,
)
from tfrec.models.sasrec import SASRec
from tfrec.models.sequential import SequentialRecommender
from tfrec.models.two_tower import TwoTower
from tfrec.models.wide_deep import WideDeep

__all__ = [
    "BERT4Rec",
    "CANDIDATES",
    "DCN",
    "FFM",
    "FM",
    "GMF",
    "GRU4Rec",
    "NCFMLP",
    "PRESETS",
    "TRAIN_DEFAULTS",
    "DeepFM",
    "NeuMF",
    "Preset",
    "Recommender",
    "SASRec",
    "SequentialRecommender",
    "TwoTower",
    "WideDeep",
    "available_models",
    "build_model",
    "example_features",
    "model_class",
    "model_defaults",
    "preset",
    "register_model",
    "take",
    "train_defaults",
    "ungroup",
]
