"""SavedModels that TF Serving loads as is: named signatures, versioned atomic exports.

`export_model` writes ``saved_models/<name>/<version>/`` (plus ``models.config`` and warmup
requests) for any trained tfrec model; `CatalogueModule` is the base of every exported module
(`RecommenderModule` here, `tfrec.pipeline.TwoStagePipeline`); `load_recommender` and
`LocalServing` use an export in process, without a server.
"""

from tfrec.serving.batch import BatchReport, recommend_all
from tfrec.serving.catalogue import Catalogue, CatalogueModule, build_catalogue
from tfrec.serving.export import (
    export_model,
    export_module,
    latest_export,
    models_config_text,
    next_version,
    recommender_module,
    write_models_config,
)
from tfrec.serving.local import ExportedRecommender, LocalServing, load_recommender
from tfrec.serving.module import SIGNATURES, RecommenderModule
from tfrec.serving.offline import (
    ExportComparison,
    ExportEvaluation,
    compare_exports,
    evaluate_export,
)
from tfrec.serving.served import ServedExport
from tfrec.serving.warmup import read_warmup

__all__ = [
    "SIGNATURES",
    "BatchReport",
    "ExportComparison",
    "ExportEvaluation",
    "ServedExport",
    "compare_exports",
    "evaluate_export",
    "recommend_all",
    "Catalogue",
    "CatalogueModule",
    "LocalServing",
    "ExportedRecommender",
    "RecommenderModule",
    "build_catalogue",
    "export_model",
    "export_module",
    "latest_export",
    "load_recommender",
    "models_config_text",
    "next_version",
    "read_warmup",
    "recommender_module",
    "write_models_config",
]
