"""Neuron models: pure dynamics with explicit state (`init`, `vector_field`, `step`, `threshold`, `reset`)."""

from ._alif import ALIF as ALIF
from ._alif import ALIFState as ALIFState
from ._base import AbstractEventNeuron as AbstractEventNeuron
from ._base import AbstractNeuron as AbstractNeuron
from ._base import AbstractRateNeuron as AbstractRateNeuron
from ._base import AbstractSpikingNeuron as AbstractSpikingNeuron
from ._lif import LIF as LIF
from ._lif import LIFState as LIFState
from ._qif import QIF as QIF
from ._qif import QIFState as QIFState
from ._rate import InstantaneousRate as InstantaneousRate
from ._rate import LeakyRate as LeakyRate
from ._synaptic_lif import SynapticLIF as SynapticLIF
from ._synaptic_lif import SynapticLIFState as SynapticLIFState
from ._two_compartment import TwoCompartment as TwoCompartment
from ._two_compartment import TwoCompartmentDrive as TwoCompartmentDrive
from ._two_compartment import TwoCompartmentState as TwoCompartmentState
