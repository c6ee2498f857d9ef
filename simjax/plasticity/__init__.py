"""Online synaptic plasticity: rules that change weights while the network runs (pair and triplet
STDP, reward-modulated three-factor STDP, inhibitory plasticity, synaptic scaling, behavioural-timescale
plasticity), each a pure per-step map `(pre, post, traces, weights, modulator, dt) -> (weights, traces)`
run inside the clock scan, and the spike-triggered ones also exactly at the events of the event-driven
method; the place-field protocol of BTSP."""

from ._base import AbstractPlasticityRule as AbstractPlasticityRule
from ._base import AbstractSpikeTriggeredRule as AbstractSpikeTriggeredRule
from ._btsp import BTSP as BTSP
from ._btsp import BTSPTraces as BTSPTraces
from ._btsp import scaled_rectified_sigmoid as scaled_rectified_sigmoid
from ._event import EventPlasticState as EventPlasticState
from ._inhibitory import InhibitorySTDP as InhibitorySTDP
from ._place_field import Track as Track
from ._place_field import place_field as place_field
from ._place_field import signal_maxima as signal_maxima
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
