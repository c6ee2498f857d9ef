"""`simjax.rules.get`: build a rule from its snake-case name (for configs and the command line)."""

from __future__ import annotations

from typing import Any

# Resolved lazily (at call time) against `simjax.rules`, so a name whose rule is not part of this
# installation only fails when it is asked for.
RULE_NAMES: dict[str, str] = {
    "exact": "Exact",
    "truncated_bptt": "TruncatedBPTT",
    "eprop": "EProp",
    "rtrl": "RTRL",
    "feedback_alignment": "FeedbackAlignment",
    "direct_feedback_alignment": "DirectFeedbackAlignment",
    "sign_symmetry": "SignSymmetry",
    "node_perturbation": "NodePerturbation",
    "weight_perturbation": "WeightPerturbation",
    "hebbian": "Hebbian",
    "oja": "Oja",
    "bcm": "BCM",
    "noisy_gradient": "NoisyGradient",
}


def names() -> tuple[str, ...]:
    """The rule names `get` accepts and can build in this installation."""
    from .. import rules

    return tuple(n for n, cls in RULE_NAMES.items() if hasattr(rules, cls))


def get(name: str, **kwargs: Any):
    """Builds a rule from its snake-case name, e.g. ``get("node_perturbation", sigma=1e-2)``.

    **Arguments:** ``name`` (one of `names`), ``kwargs`` for the rule's constructor.

    **Raises:** ``ValueError`` listing the known names for an unknown name.
    """
    from .. import rules

    if not isinstance(name, str):
        raise TypeError(f"simjax.rules.get: name must be a string, got {name!r}")
    if name not in RULE_NAMES:
        raise ValueError(f"simjax.rules.get: unknown rule {name!r}; known rules: {', '.join(RULE_NAMES)}")
    cls = getattr(rules, RULE_NAMES[name], None)
    if cls is None:
        available = ", ".join(names())
        raise ValueError(f"simjax.rules.get: rule {name!r} ({RULE_NAMES[name]}) is not available in this "
                         f"installation; available rules: {available}")
    return cls(**kwargs)
