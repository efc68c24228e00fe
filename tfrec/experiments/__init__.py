"""A/B tests beside the production loop: design, assignment, routing, analysis, simulation.

Plan the sample size (`conversion_sample_size`, `continuous_sample_size`), split users by
salted hashing (`Assignment`), route them to TF Serving version labels
(`write_canary_config`), analyse with fixed-horizon tests that refuse to be read early
(`proportion_test`, `welch_test`, `cuped_test`, `srm_check`) or with the always-valid mSPRT
(`msprt`), and simulate whole tests offline from two recommenders' lists (`ABSimulation`).

This package imports nothing from tfrec's models, training or serving, and scipy/statsmodels
(``pip install 'tfrec[experiments]'``) only when a statistical function first runs.
"""

from tfrec.experiments.analysis import proportion_test, srm_check, welch_test
from tfrec.experiments.assignment import Assignment, hash_ids, unit_interval
from tfrec.experiments.clicks import ClickModel, index_items, log_position_bias, truth_matrix
from tfrec.experiments.cuped import CupedResult, cuped_test
from tfrec.experiments.design import SampleSize, continuous_sample_size, conversion_sample_size
from tfrec.experiments.results import (
    ComparisonResult,
    PeekingError,
    PowerEstimate,
    SrmResult,
)
from tfrec.experiments.routing import (
    version_labels_config,
    write_canary_config,
    write_version_labels,
)
from tfrec.experiments.sequential import SequentialResult, msprt, msprt_from_observations
from tfrec.experiments.simulation import ABSimulation, SimulatedExperiment, false_positive_rate

__all__ = [
    "ABSimulation",
    "Assignment",
    "ClickModel",
    "ComparisonResult",
    "CupedResult",
    "PeekingError",
    "PowerEstimate",
    "SampleSize",
    "SequentialResult",
    "SimulatedExperiment",
    "SrmResult",
    "continuous_sample_size",
    "conversion_sample_size",
    "cuped_test",
    "false_positive_rate",
    "hash_ids",
    "index_items",
    "log_position_bias",
    "msprt",
    "msprt_from_observations",
    "proportion_test",
    "srm_check",
    "truth_matrix",
    "unit_interval",
    "version_labels_config",
    "welch_test",
    "write_canary_config",
    "write_version_labels",
]
