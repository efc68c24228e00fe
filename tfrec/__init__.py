"""tfrec: recommender systems on TensorFlow and Keras 2.

Importing tfrec selects Keras 2 for TensorFlow (TensorFlow Recommenders requires it) and
does nothing else heavy: subpackages load when first used.
"""

from tfrec._keras import guard_scann, select_keras2

guard_scann()
select_keras2()

__version__ = "0.1.0"

__all__ = ["__version__"]
