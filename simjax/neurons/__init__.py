"""Neuron models: pure dynamics with explicit state (`init`, `vector_field`, `step`, `threshold`, `reset`)."""

from ._base import AbstractNeuron, AbstractRateNeuron, AbstractSpikingNeuron
from .lif import LIF, LIFState

__all__ = ["AbstractNeuron", "AbstractRateNeuron", "AbstractSpikingNeuron", "LIF", "LIFState"]
