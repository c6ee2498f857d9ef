"""`simjax.rules.get`: build a rule from its snake-case name (for configs and the command line)."""

from __future__ import annotations

from typing import Any

from ._base import AbstractRule
from ._btsp import BTSP, NormalizedHebbian
from ._direct_feedback_alignment import DirectFeedbackAlignment
from ._eprop import EProp
from ._exact import Exact
from ._feedback_alignment import FeedbackAlignment, SignSymmetry
from ._hebbian import BCM, Hebbian, Oja
from ._noisy_gradient import NoisyGradient
from ._perturbation import NodePerturbation, WeightPerturbation
from ._rtrl import RTRL
from ._truncated import TruncatedBPTT

RULES: dict[str, type[AbstractRule]] = {
    "exact": Exact,
    "truncated_bptt": TruncatedBPTT,
    "eprop": EProp,
    "rtrl": RTRL,
    "feedback_alignment": FeedbackAlignment,
    "direct_feedback_alignment": DirectFeedbackAlignment,
    "sign_symmetry": SignSymmetry,
    "node_perturbation": NodePerturbation,
    "weight_perturbation": WeightPerturbation,
    "hebbian": Hebbian,
    "oja": Oja,
    "bcm": BCM,
    "noisy_gradient": NoisyGradient,
    "btsp": BTSP,
    "normalized_hebbian": NormalizedHebbian,
}


def names() -> tuple[str, ...]:
    """The rule names `get` accepts."""
    return tuple(RULES)


def get(name: str, **kwargs: Any) -> AbstractRule:
    """Builds a rule from its snake-case name, e.g. `get("node_perturbation", sigma=1e-2)`.

    **Arguments:**

    - `name`: one of `names()`.
    - `kwargs`: keywords for the rule's constructor.

    **Returns:** the rule. An unknown name raises `ValueError` listing the known names.
    """
    if not isinstance(name, str):
        raise TypeError(f"simjax.rules.get: name must be a string, got {name!r}")
    if name not in RULES:
        raise ValueError(f"simjax.rules.get: unknown rule {name!r}; known rules: {', '.join(RULES)}")
    return RULES[name](**kwargs)
