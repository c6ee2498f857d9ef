"""Online synaptic plasticity: rules that change weights while the network runs (pair and triplet
STDP, reward-modulated three-factor STDP, inhibitory plasticity, synaptic scaling), each a pure per-step map
`(pre, post, traces, weights, modulator, dt) -> (weights, traces)` run inside the clock scan."""

from ._base import AbstractPlasticityRule as AbstractPlasticityRule
from ._base import AbstractSpikeTriggeredRule as AbstractSpikeTriggeredRule
from ._inhibitory import InhibitorySTDP as InhibitorySTDP
from ._run import PlasticState as PlasticState
from ._run import run as run
from ._run import simulate as simulate
from ._scaling import RateTrace as RateTrace
from ._scaling import SynapticScaling as SynapticScaling
from ._stdp import PairSTDP as PairSTDP
from ._stdp import PairTraces as PairTraces
from ._stdp import TripletSTDP as TripletSTDP
from ._stdp import TripletTraces as TripletTraces
from ._three_factor import EligibilityTraces as EligibilityTraces
from ._three_factor import RewardModulatedSTDP as RewardModulatedSTDP
