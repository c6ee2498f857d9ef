"""Networks: compositions of populations and projections with leaky readouts."""

from ._base import AbstractNetwork, Record
from .rsnn import RSNN, RSNNState

__all__ = ["AbstractNetwork", "Record", "RSNN", "RSNNState"]
