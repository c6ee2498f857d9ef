"""Projections between populations: dense, fixed sparse, Dale-signed, 2-D convolution."""

from ._base import AbstractProjection
from .dense import Dense

__all__ = ["AbstractProjection", "Dense"]
