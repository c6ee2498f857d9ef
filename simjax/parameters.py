"""Which leaves of a model learn, and the constraints every update must respect.

A network names its trainable fields in ``trainable``; every inexact array inside those fields is a
parameter, every other leaf is frozen. Models without a ``trainable`` attribute train all inexact
arrays. Learning rules return updates shaped like `params` (``None`` at frozen leaves), so
``eqx.apply_updates(model, updates)`` and optax work unchanged.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax

from .synapses._base import AbstractProjection


def trainable_filter(model: Any) -> Any:
    """A pytree of bools shaped like ``model``: True at trainable leaves."""
    names = getattr(model, "trainable", None)
    if names is None or not isinstance(model, eqx.Module):
        return jax.tree.map(eqx.is_inexact_array, model)
    spec = jax.tree.map(lambda _: False, model)
    for name in names:
        if not hasattr(model, name):
            raise ValueError(f"{type(model).__name__}: trainable field {name!r} does not exist")
        sub = trainable_filter(getattr(model, name))
        spec = eqx.tree_at(lambda m: getattr(m, name), spec, sub, is_leaf=lambda x: x is None)
    return spec


def partition(model: Any) -> tuple[Any, Any]:
    """``(params, static)`` with ``eqx.combine(params, static) == model``."""
    return eqx.partition(model, trainable_filter(model))


def params(model: Any) -> Any:
    """The trainable parameters of ``model`` (``None`` at frozen leaves)."""
    return partition(model)[0]


def constrain(model: Any) -> Any:
    """Applies every projection's `constrain` (Dale signs, bounds) throughout ``model``."""
    is_proj = lambda x: isinstance(x, AbstractProjection)
    return jax.tree.map(lambda x: x.constrain() if is_proj(x) else x, model, is_leaf=is_proj)
