"""The config schema: the type of every key and, for keys whose meaning fixes one, the range of values
allowed.

Types come from the constructors (a keyword's default value, else its annotation) and from the
experiments' embedded defaults. Ranges come from one table keyed by the key's name and type, so a
new keyword named like an existing one (`tau_*`, `n_*`, `seed`, ...) is covered as soon as it is
added: time constants and time steps are positive, counts and sizes at least 1 (0 where it means
none or automatic), seeds and indices at least 0, probabilities in [0, 1], rates, noise levels and
learning rates non-negative. Keys absent from the table (biases, scales, potentials) take any number,
and their constructor checks what it needs.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable
from typing import Any

import jax
import numpy as np


class ConfigError(ValueError):
    """A config problem; the message names the key, the value and what is allowed."""


@dataclasses.dataclass(frozen=True)
class Range:
    """The interval `low <(=) value <(=) high` (either end may be absent)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        if isinstance(value, float) and math.isnan(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return False
        return True

    def __str__(self) -> str:
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"


POSITIVE = Range(0.0, low_open=True)
NON_NEGATIVE = Range(0.0)
AT_LEAST_ONE = Range(1.0)
UNIT = Range(0.0, 1.0)
UNIT_OPEN_ABOVE = Range(0.0, 1.0, high_open=True)

_POSITIVE_NUMBERS = (
    "dt", "t1", "duration", "period", "bit_duration", "cue_duration", "bin_ms", "seconds", "window", "slope",
    "tau", "tau_mem", "tau_adapt", "tau_out", "tau_e", "tau_plus", "tau_minus", "lif_tau", "lif_tau_syn",
    "early_tau", "lif_early_tau",
)
_NON_NEGATIVE_NUMBERS = (
    "learning_rate", "feedback_learning_rate", "lif_exact_learning_rate", "weight_decay", "eps", "eps_root",
    "noise", "sigma", "feature_noise", "position_noise", "rate", "max_rate", "background_rate", "rate_target",
    "rate_weight", "t_ref", "gap", "cue_gap", "delay", "drift_time", "transient", "present",
)
_COUNTS = (
    "n_in", "n_out", "n_rec", "n_bits", "n_cues", "n_periods", "n_train", "n_test", "n_exc", "n_inh", "n_pairs",
    "n_patterns", "n_per_pattern", "n_post", "n_pre", "hidden", "teacher_hidden", "channels", "iterations",
    "samples", "seeds", "epochs", "steps", "batch", "batch_size", "eval_batch_size", "eval_every", "log_every",
    "track_every", "online_every", "points", "problems", "train_problems", "presentations",
    "resolution", "segments", "terms", "inner", "newton_iterations", "power_iterations", "max_events",
    "max_params", "check_size", "k", "d", "dim", "rank", "choices", "width", "window",
    "sinkhorn", "p",
)
# seeds, indices, and counts where 0 means none or automatic
_NON_NEGATIVE_INTS = ("seed", "key", "direction_seed", "layer", "min_delay", "raster_neurons", "voltage_neurons",
                      "n_validation", "n_positive", "max_spikes", "track_steps", "chunk")
_FRACTIONS = ("p", "p_ei", "dampening")
_FRACTIONS_BELOW_ONE = ("b1", "b2", "test_fraction")

#: The range of each key, by (name, type); `number` ranges also apply to integers given for numbers.
RANGES: dict[tuple[str, str], Range] = {
    **{(name, "number"): POSITIVE for name in _POSITIVE_NUMBERS},
    **{(name, "number"): NON_NEGATIVE for name in _NON_NEGATIVE_NUMBERS},
    **{(name, "int"): AT_LEAST_ONE for name in _COUNTS},
    **{(name, "int"): NON_NEGATIVE for name in _NON_NEGATIVE_INTS},
    **{(name, "number"): UNIT for name in _FRACTIONS},
    **{(name, "number"): UNIT_OPEN_ABOVE for name in _FRACTIONS_BELOW_ONE},
}

_KINDS = {"bool": "true or false", "int": "an integer", "number": "a number", "string": "a string", "list": "a list"}


def value_kind(value: Any) -> str | None:
    """The config type of a plain value (`bool`, `int`, `number` for floats, `string`, `list`),
    `None` for anything else."""
    for types, kind in ((bool, "bool"), (int, "int"), (float, "number"), (str, "string"), ((tuple, list), "list")):
        if isinstance(value, types):
            return kind
    return None


def parameter_kinds(ctor: Callable) -> dict[str, str]:
    """The config type of each keyword of `ctor` that has one (the schema configs are checked
    against): from its default value (`bool`, `int`, `number` for floats, `string`, `list`), else
    from its annotation when that names a single plain type. Keywords without either take any value
    (e.g. nested tables such as a neuron) and are checked by the constructor itself."""
    try:
        params = inspect.signature(ctor).parameters
    except (TypeError, ValueError):
        return {}
    kinds = {}
    for name, p in params.items():
        default, note = p.default, str(p.annotation)
        if value_kind(default) is not None and default not in ((), []):
            kinds[name] = value_kind(default)
        elif note in ("int", "int | None"):
            kinds[name] = "int"
        elif note in ("float", "float | None", "RealScalarLike") or name == "learning_rate":
            kinds[name] = "number"
        elif note in ("bool",):
            kinds[name] = "bool"
    return kinds


def range_of(key: str, kind: str | None) -> Range | None:
    """The range allowed for a key named `key` (the last part of a dotted name) of type `kind`."""
    return RANGES.get((key.rsplit(".", 1)[-1], kind)) if kind is not None else None


def describe(key: str, kind: str | None) -> str:
    """What the schema allows for `key`: `an integer >= 1`, `a number in [0, 1]`, `any` ..."""
    if kind is None:
        return "any"
    allowed = range_of(key, kind)
    return _KINDS[kind] + ("" if allowed is None else f" {allowed}")


def check(where: str, value: Any, kind: str | None) -> None:
    """Raises `ConfigError` (one line naming `where`, the value and what is allowed) when `value` is
    not of the config type `kind` (ints pass as numbers; strings are never coerced; a `number` may be
    a list of numbers, one per neuron) or lies outside the range the schema gives `where`'s name."""
    ok = {"bool": lambda v: isinstance(v, bool),
          "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
          "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
          "string": lambda v: isinstance(v, str),
          "list": lambda v: isinstance(v, (list, str))}  # a one-name string stands for a list of one
    if kind is None or value is None or isinstance(value, (jax.Array, np.ndarray, np.generic)):
        return  # untyped, unset, or a swept value traced inside the sweep's program (the sweep checks its grid)
    allowed = range_of(where, kind)
    if kind == "number" and isinstance(value, list) and value and all(ok["number"](v) for v in value):
        values = value  # one number per neuron (neuron parameters broadcast over the population)
    else:
        values = [value] if ok[kind](value) else None
    if values is None or (allowed is not None and not all(v in allowed for v in values)):
        raise ConfigError(f"{where} = {value!r} is not allowed: expected {describe(where, kind)}")
