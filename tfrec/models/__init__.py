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

from tfrec.models.two_tower import TwoTower, build_two_tower  # noqa: E402

__all__ += ["TwoTower", "build_two_tower"]

# The ranking model family (FM, FFM, NCF, Wide&Deep, DCN-v2): importing registers them.
from tfrec.models.dcn import DCN  # noqa: E402
from tfrec.models.ffm import FFM  # noqa: E402
from tfrec.models.fm import FM  # noqa: E402
from tfrec.models.ncf import GMF, NCFMLP, NeuMF  # noqa: E402
from tfrec.models.wide_deep import WideDeep  # noqa: E402

__all__ += ["DCN", "FFM", "FM", "GMF", "NCFMLP", "NeuMF", "WideDeep"]
