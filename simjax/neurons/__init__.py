"""Neuron models: pure dynamics with explicit state (`init`, `vector_field`, `step`, `threshold`, `reset`)."""

from ._base import AbstractNeuron, AbstractRateNeuron, AbstractSpikingNeuron
from .alif import ALIF, ALIFState
from .lif import LIF, LIFState
from .qif import QIF, QIFState
from .rate import InstantaneousRate, LeakyRate
from .two_compartment import TwoCompartment, TwoCompartmentDrive, TwoCompartmentState

__all__ = ["AbstractNeuron", "AbstractRateNeuron", "AbstractSpikingNeuron", "ALIF", "ALIFState", "LIF", "LIFState",
           "QIF", "QIFState", "LeakyRate", "InstantaneousRate", "TwoCompartment", "TwoCompartmentDrive",
           "TwoCompartmentState"]
