"""Networks: compositions of populations and projections with leaky readouts, and one-step
convolutional spiking networks (StereoSpike and its building blocks)."""

from ._base import AbstractFastScanNetwork as AbstractFastScanNetwork
from ._base import AbstractLayeredNetwork as AbstractLayeredNetwork
from ._base import AbstractNetwork as AbstractNetwork
from ._base import AbstractWrappedNetwork as AbstractWrappedNetwork
from ._conv_snn import DecoderStage as DecoderStage
from ._conv_snn import DepthReadout as DepthReadout
from ._conv_snn import SEWBlock as SEWBlock
from ._conv_snn import SpikingConv as SpikingConv
from ._conv_snn import StatelessIF as StatelessIF
from ._conv_snn import UpsampleConv as UpsampleConv
from ._ei import EINetwork as EINetwork
from ._ei import EIState as EIState
from ._ei import SpikeLog as SpikeLog
from ._feedforward import FeedForward as FeedForward
from ._feedforward import FeedForwardState as FeedForwardState
from ._feedforward import LayerActivity as LayerActivity
from ._learned_connectivity import AbstractUpdate as AbstractUpdate
from ._learned_connectivity import FullUpdate as FullUpdate
from ._learned_connectivity import LowRankUpdate as LowRankUpdate
from ._learned_connectivity import SubspaceUpdate as SubspaceUpdate
from ._learned_connectivity import random_coupling as random_coupling
from ._rate_rnn import RateRNN as RateRNN
from ._rate_rnn import RateRNNState as RateRNNState
from ._rsnn import RSNN as RSNN
from ._rsnn import RSNNState as RSNNState
from ._spiking_feedforward import SpikingFeedForward as SpikingFeedForward
from ._stereospike import FULL_CHANNELS as FULL_CHANNELS
from ._stereospike import SCALED_CHANNELS as SCALED_CHANNELS
from ._stereospike import DepthOutput as DepthOutput
from ._stereospike import StereoSpike as StereoSpike
from ._stereospike import firing_rates as firing_rates
from ._two_layer import AbstractTwoLayer as AbstractTwoLayer
from ._two_layer import ConvexReLUNetwork as ConvexReLUNetwork
from ._two_layer import LeakyReLUStudent as LeakyReLUStudent
from ._two_layer import MaxPoolDetector as MaxPoolDetector
