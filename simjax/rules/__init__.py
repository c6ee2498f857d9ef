"""Learning rules behind one contract: ``rule(model, task, batch, key) -> (loss, updates, aux)``."""

from ._base import AbstractRule
from .exact import Exact
from .noisy_gradient import NoisyGradient
from .direct_feedback_alignment import DirectFeedbackAlignment
from .feedback_alignment import FeedbackAlignment, SignSymmetry
from .feedback_projection import FeedbackProjection
from .truncated import TruncatedBPTT, TruncatedNetwork
from .hebbian import BCM, AbstractHebbian, Hebbian, Oja
from .perturbation import NodePerturbation, PerturbedNetwork, WeightPerturbation
from ._names import get, names

__all__ = ["AbstractRule", "Exact", "NoisyGradient", "TruncatedBPTT", "TruncatedNetwork", "FeedbackAlignment",
           "DirectFeedbackAlignment", "SignSymmetry", "FeedbackProjection",
           "NodePerturbation", "WeightPerturbation", "PerturbedNetwork", "AbstractHebbian", "Hebbian", "Oja", "BCM",
           "get", "names"]
from .eprop import EProp
from .rtrl import RTRL

__all__ += ["EProp", "RTRL"]
