"""Networks: compositions of populations and projections with leaky readouts."""

from ._base import AbstractNetwork, AbstractWrappedNetwork, Record
from .feedforward import FeedForward, FeedForwardState, LayerActivity
from .learned_connectivity import AbstractUpdate, FullUpdate, LowRankUpdate, SubspaceUpdate, random_coupling
from .rate_rnn import RateRNN, RateRNNState
from .rsnn import RSNN, RSNNState
from .spiking_feedforward import SpikingFeedForward

__all__ = ["AbstractNetwork", "AbstractWrappedNetwork", "Record", "RSNN", "RSNNState", "RateRNN", "RateRNNState", "FeedForward",
           "FeedForwardState", "LayerActivity"]
__all__ += ["AbstractUpdate", "FullUpdate", "LowRankUpdate", "SubspaceUpdate", "random_coupling"]
__all__ += ["SpikingFeedForward"]
