"""Synapses: projections between populations (dense, fixed sparse, Dale-signed, 2-D convolution,
event-driven sparse) and synapse dynamics with explicit state (current and conductance receptors,
short-term plasticity, transmission delays)."""

from ._base import AbstractProjection as AbstractProjection
from ._conductance import ExponentialConductance as ExponentialConductance
from ._conductance import MgBlock as MgBlock
from ._conv import Conv2d as Conv2d
from ._conv import resize_nearest as resize_nearest
from ._conv import upsample_nearest as upsample_nearest
from ._current import AlphaCurrent as AlphaCurrent
from ._current import AlphaState as AlphaState
from ._current import DeltaCurrent as DeltaCurrent
from ._current import DualExponentialCurrent as DualExponentialCurrent
from ._current import DualExponentialState as DualExponentialState
from ._current import ExponentialCurrent as ExponentialCurrent
from ._dale import Dale as Dale
from ._delay import DelayBuffer as DelayBuffer
from ._delay import delay_steps as delay_steps
from ._dense import Dense as Dense
from ._event import EventProjection as EventProjection
from ._event import fixed_in_degree as fixed_in_degree
from ._event import fixed_probability as fixed_probability
from ._event import spike_indices as spike_indices
from ._short_term import TsodyksMarkram as TsodyksMarkram
from ._short_term import TsodyksMarkramState as TsodyksMarkramState
from ._sparse import Sparse as Sparse
from ._synapse import AbstractConductanceSynapse as AbstractConductanceSynapse
from ._synapse import AbstractCurrentSynapse as AbstractCurrentSynapse
from ._synapse import AbstractSynapse as AbstractSynapse
