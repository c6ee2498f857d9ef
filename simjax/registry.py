"""Name -> constructor tables used by configs and the CLI (``type = "rsnn"`` etc.).

Names are resolved lazily so that optional components (e.g. tasks needing scikit-learn) only load
when used.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any, Callable

from .config import ConfigError

_TABLES: dict[str, dict[str, str]] = {
    "neuron": {
        "lif": "simjax.neurons:LIF",
        "alif": "simjax.neurons:ALIF",
        "qif": "simjax.neurons:QIF",
        "leaky_rate": "simjax.neurons:LeakyRate",
        "two_compartment": "simjax.neurons:TwoCompartment",
    },
    "surrogate": {
        "fast_sigmoid": "simjax.surrogates:FastSigmoid",
        "triangle": "simjax.surrogates:Triangle",
        "arctan": "simjax.surrogates:Arctan",
        "sigmoid": "simjax.surrogates:Sigmoid",
        "exponential": "simjax.surrogates:Exponential",
    },
    "model": {
        "rsnn": "simjax.networks:RSNN",
        "rate_rnn": "simjax.networks:RateRNN",
        "feedforward": "simjax.networks:FeedForward",
    },
    "task": {
        "pattern_generation": "simjax.tasks:PatternGeneration",
        "digits": "simjax.tasks:Digits",
        "teacher_student": "simjax.tasks:TeacherStudent",
        "delayed_xor": "simjax.tasks:DelayedXOR",
        "parity": "simjax.tasks:Parity",
        "store_recall": "simjax.tasks:StoreRecall",
        "evidence_accumulation": "simjax.tasks:EvidenceAccumulation",
        "yin_yang": "simjax.tasks:YinYang",
    },
    "optimizer": {
        "adam": "optax:adam",
        "sgd": "optax:sgd",
        "adamw": "optax:adamw",
        "rmsprop": "optax:rmsprop",
    },
}


def _rule_table() -> dict[str, str]:
    from .rules._names import RULE_NAMES

    return {name: f"simjax.rules:{cls}" for name, cls in RULE_NAMES.items()}


_TABLES["rule"] = _rule_table()


def _resolve(path: str) -> Callable | None:
    module, attr = path.split(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        return None


def available(kind: str) -> list[str]:
    """The names of ``kind`` (neuron, surrogate, model, task, rule, optimizer) that exist here."""
    return sorted(n for n, p in _TABLES[kind].items() if _resolve(p) is not None)


def lookup(kind: str, name: Any, where: str) -> Callable:
    """The constructor registered as ``name``; a `ConfigError` listing the known names otherwise."""
    table = _TABLES[kind]
    ctor = _resolve(table[name]) if isinstance(name, str) and name in table else None
    if ctor is None:
        raise ConfigError(f"{where} = {name!r} is not a known {kind}; expected one of {', '.join(available(kind))}")
    return ctor


def construct(kind: str, spec: dict, where: str, **extra: Any) -> Any:
    """Builds ``{type = name, **kwargs}``; unknown keywords and invalid values become `ConfigError`s
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
    try:
        return ctor(**kwargs)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{where} ({spec['type']}): {err}") from None
