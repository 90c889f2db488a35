"""Convolutional image features for scikit-learn."""

from ._limits import MemoryLimitError
from ._transformer import ConvFeatureTransformer

__version__ = "0.1.0"

__all__ = ["ConvFeatureTransformer", "MemoryLimitError", "__version__"]
