"""Which leaves of a model learn, and the constraints every update must respect.

Networks and projections name the fields that learn in `trainable` (declared on
`simjax.networks.AbstractNetwork` and `simjax.synapses.AbstractProjection`); every inexact array
inside those fields is a parameter, every other leaf of such a module is frozen. Other modules (and
plain pytrees) train all their inexact arrays. Learning rules return updates shaped like `params`
(`None` at frozen leaves), so `eqx.apply_updates(model, updates)` and optax work unchanged.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import equinox as eqx
import jax

from ..networks._base import AbstractNetwork
from ..synapses._base import AbstractProjection


def trainable_filter(model: Any) -> Any:
    """A pytree of bools shaped like `model`: True at trainable leaves.

    Every inexact array is trainable except inside the fields a network or projection leaves out of
    its `trainable` names (bounds, fixed parts, feedback matrices: arrays that are data, not
    parameters).
    """
    spec = jax.tree.map(eqx.is_inexact_array, model)
    for get in _frozen(model, lambda m: m):
        spec = eqx.tree_at(get, spec, replace_fn=lambda sub: jax.tree.map(lambda _: False, sub))
    return spec


def _frozen(node: Any, get: Any):
    """Accessors (relative to the root) of every frozen subtree below `node`."""
    if isinstance(node, (list, tuple)):
        for i, child in enumerate(node):
            yield from _frozen(child, lambda m, i=i: get(m)[i])
        return
    if not isinstance(node, eqx.Module):
        return
    names = node.trainable if isinstance(node, (AbstractNetwork, AbstractProjection)) else None
    for f in dataclasses.fields(node):
        if f.metadata.get("static", False):
            continue
        value = getattr(node, f.name)
        if not any(eqx.is_array(leaf) for leaf in jax.tree_util.tree_leaves(value)):
            continue
        field_get = lambda m, name=f.name: getattr(get(m), name)
        if names is not None and f.name not in names:
            yield field_get
        else:
            yield from _frozen(value, field_get)


def partition(model: Any) -> tuple[Any, Any]:
    """`(params, static)` with `eqx.combine(params, static) == model`."""
    return eqx.partition(model, trainable_filter(model))


def params(model: Any) -> Any:
    """The trainable parameters of `model` (`None` at frozen leaves)."""
    return partition(model)[0]


def constrain(model: Any) -> Any:
    """Applies every projection's `constrain` (Dale signs, bounds) throughout `model`."""
    is_proj = lambda x: isinstance(x, AbstractProjection)
    return jax.tree.map(lambda x: x.constrain() if is_proj(x) else x, model, is_leaf=is_proj)
