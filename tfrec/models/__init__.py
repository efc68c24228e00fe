"""Ranking and retrieval models: each file wires named blocks from `tfrec.layers` together.

Every model registers itself, so `build_model("deepfm", table)` (and `tfrec train deepfm`)
finds it.
"""

from tfrec.models.base import RankingModel
from tfrec.models.deepfm import DeepFM
from tfrec.models.registry import available_models, build_model, model_defaults, register_model

__all__ = [
    "DeepFM",
    "RankingModel",
    "available_models",
    "build_model",
    "model_defaults",
    "register_model",
]
