"""Name -> constructor tables used by configs and the CLI (`type = "rsnn"` etc.)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import optax

from ..networks import RSNN, FeedForward, RateRNN
from ..neurons import ALIF, LIF, QIF, LeakyRate, TwoCompartment
from ..rules._names import RULES
from ..surrogates import Arctan, Exponential, FastSigmoid, Sigmoid, Triangle
from ..tasks import (
    DelayedXOR,
    Digits,
    EvidenceAccumulation,
    Parity,
    PatternGeneration,
    Randman,
    StoreRecall,
    TeacherStudent,
    YinYang,
)
from .schema import ConfigError, check, parameter_kinds

_TABLES: dict[str, dict[str, Callable]] = {
    "neuron": {
        "lif": LIF,
        "alif": ALIF,
        "qif": QIF,
        "leaky_rate": LeakyRate,
        "two_compartment": TwoCompartment,
    },
    "surrogate": {
        "fast_sigmoid": FastSigmoid,
        "triangle": Triangle,
        "arctan": Arctan,
        "sigmoid": Sigmoid,
        "exponential": Exponential,
    },
    "model": {
        "rsnn": RSNN,
        "rate_rnn": RateRNN,
        "feedforward": FeedForward,
    },
    "task": {
        "pattern_generation": PatternGeneration,
        "digits": Digits,
        "teacher_student": TeacherStudent,
        "delayed_xor": DelayedXOR,
        "parity": Parity,
        "store_recall": StoreRecall,
        "evidence_accumulation": EvidenceAccumulation,
        "yin_yang": YinYang,
        "randman": Randman,
    },
    "rule": dict(RULES),
    "optimizer": {
        "adam": optax.adam,
        "sgd": optax.sgd,
        "adamw": optax.adamw,
        "rmsprop": optax.rmsprop,
    },
}


KINDS = ("neuron", "model", "surrogate", "rule", "task", "optimizer")


def available(kind: str) -> list[str]:
    """The names of `kind` (neuron, surrogate, model, task, rule, optimizer)."""
    return sorted(_TABLES[kind])


def lookup(kind: str, name: Any, where: str) -> Callable:
    """The constructor registered as `name`; a `ConfigError` listing the known names otherwise."""
    table = _TABLES[kind]
    ctor = table.get(name) if isinstance(name, str) else None
    if ctor is None:
        raise ConfigError(f"{where} = {name!r} is not a known {kind}; expected one of {', '.join(available(kind))}")
    return ctor


def construct(kind: str, spec: dict, where: str, **extra: Any) -> Any:
    """Builds `{type = name, **kwargs}`; unknown keywords and invalid values become `ConfigError`s
    that name the config key."""
    if not isinstance(spec, dict) or "type" not in spec:
        raise ConfigError(f"{where} must be a table with a 'type' key (one of {', '.join(available(kind))})")
    ctor = lookup(kind, spec["type"], f"{where}.type")
    kwargs = {k: v for k, v in spec.items() if k != "type"}
    kwargs.update(extra)
    try:
        params = inspect.signature(ctor).parameters
    except (TypeError, ValueError):
        params = {}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    if params and not takes_any:
        unknown = sorted(set(kwargs) - set(params))
        if unknown:
            allowed = [p for p in params if p not in ("self", "key") and p not in extra]
            raise ConfigError(f"unknown key {where}.{unknown[0]} for {spec['type']}; allowed: {', '.join(allowed)}")
    kinds = parameter_kinds(ctor)
    for name, value in kwargs.items():
        if name not in extra:
            check(f"{where}.{name}", value, kinds.get(name))
    try:
        return ctor(**kwargs)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{where} ({spec['type']}): {err}") from None
