"""Learning rules behind one contract: `rule(model, task, batch, key) -> (loss, updates, aux)`."""

from ._base import AbstractRule as AbstractRule
from ._base import AbstractStatelessRule as AbstractStatelessRule
from ._btsp import BTSP as BTSP
from ._btsp import NormalizedHebbian as NormalizedHebbian
from ._btsp import btsp_delta as btsp_delta
from ._direct_feedback_alignment import DirectFeedbackAlignment as DirectFeedbackAlignment
from ._eprop import EProp as EProp
from ._exact import Exact as Exact
from ._feedback_alignment import FeedbackAlignment as FeedbackAlignment
from ._feedback_alignment import SignSymmetry as SignSymmetry
from ._feedback_projection import FeedbackProjection as FeedbackProjection
from ._hebbian import BCM as BCM
from ._hebbian import AbstractHebbian as AbstractHebbian
from ._hebbian import Hebbian as Hebbian
from ._hebbian import Oja as Oja
from ._names import get as get
from ._names import names as names
from ._noisy_gradient import NoisyGradient as NoisyGradient
from ._perturbation import NodePerturbation as NodePerturbation
from ._perturbation import PerturbedNetwork as PerturbedNetwork
from ._perturbation import WeightPerturbation as WeightPerturbation
from ._rtrl import RTRL as RTRL
from ._truncated import TruncatedBPTT as TruncatedBPTT
from ._truncated import TruncatedNetwork as TruncatedNetwork
