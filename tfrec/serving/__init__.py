"""SavedModels that TF Serving loads as is: named signatures, versioned atomic exports.

`export_model` writes ``saved_models/<name>/<version>/`` (plus ``models.config`` and warmup
requests) from a trained ranking model and its feature store; `load_recommender` and
`LocalServing` use an export in process, without a server.
"""

from tfrec.serving.export import (
    export_model,
    latest_export,
    models_config_text,
    next_version,
    write_models_config,
)
from tfrec.serving.local import LocalServing, Recommender, load_recommender
from tfrec.serving.module import COLD_START_STRATEGIES, SIGNATURES, ServingModule
from tfrec.serving.warmup import read_warmup

__all__ = [
    "COLD_START_STRATEGIES",
    "SIGNATURES",
    "LocalServing",
    "Recommender",
    "ServingModule",
    "export_model",
    "latest_export",
    "load_recommender",
    "models_config_text",
    "next_version",
    "read_warmup",
    "write_models_config",
]
