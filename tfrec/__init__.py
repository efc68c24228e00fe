"""tfrec: recommender systems on TensorFlow and Keras 2.

Importing tfrec selects Keras 2 for TensorFlow (TensorFlow Recommenders requires it), keeps
an installed ScaNN whose TensorFlow ops cannot load from breaking TFRS's import (see
`tfrec._scann_guard`), and does nothing else heavy: subpackages load when first used.
"""

from tfrec._keras import select_keras2
from tfrec._scann_guard import block_unloadable_scann

select_keras2()
block_unloadable_scann()

__version__ = "0.1.0"

__all__ = ["__version__"]
