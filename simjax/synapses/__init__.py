"""Projections between populations: dense, fixed sparse, Dale-signed, 2-D convolution."""

from ._base import AbstractProjection
from .conv import Conv2d, upsample_nearest
from .dale import Dale
from .dense import Dense
from .sparse import Sparse

__all__ = ["AbstractProjection", "Conv2d", "Dale", "Dense", "Sparse", "upsample_nearest"]
