r"""Measures of interference between sequentially learned tasks.

- `relative_interference`: `(L_A(after B) - L_A(after A)) / L_A(init)` from the losses recorded by
  `simjax.train_sequence` (`history["losses"]`, rows: init, after A, after B).
- `update_overlap`: cosine between the weight changes of two phases, `cos(theta_A - theta_0,
  theta_B - theta_A)` over the trainable parameters.
- `angle`: the angle (degrees) between two states, e.g. the fixed points reached from A's cue after
  A and after B (`simjax.analysis.find_fixed_points`).
- `spearman`: Spearman's rank correlation (average ranks for ties), for trends along a sweep.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float, PRNGKeyArray

from ..networks._base import AbstractNetwork
from ..networks._rate_rnn import RateRNN
from ..parameters._parameters import params
from ..tasks._base import AbstractTask


def relative_interference(losses: Float[Array, "*runs phases_plus_one tasks"], task: int = 0) -> Float[Array, "*runs"]:
    """`(L(end) - L(after the task's own phase)) / L(init)` for `task` (index of the training
    phase, which is also its column in `losses` when the evaluation tasks are the training tasks)."""
    losses = jnp.asarray(losses)
    return (losses[..., -1, task] - losses[..., task + 1, task]) / losses[..., 0, task]


def _flat(model: AbstractNetwork) -> Float[Array, " p"]:
    return ravel_pytree(params(model))[0]


def update_overlap(initial: Any, after_a: Any, after_b: Any) -> Float[Array, ""]:
    """Cosine between `after_a - initial` and `after_b - after_a` (trainable parameters only);
    0 where either change is zero."""
    d_a = _flat(after_a) - _flat(initial)
    d_b = _flat(after_b) - _flat(after_a)
    norm = jnp.linalg.norm(d_a) * jnp.linalg.norm(d_b)
    return jnp.where(norm > 0, jnp.vdot(d_a, d_b) / jnp.where(norm > 0, norm, 1.0), 0.0)


def angle(x: Float[Array, "... n"], y: Float[Array, "... n"]) -> Float[Array, "..."]:
    """The angle in degrees between `x` and `y` (along the last axis)."""
    cos = jnp.sum(x * y, -1) / (jnp.linalg.norm(x, axis=-1) * jnp.linalg.norm(y, axis=-1))
    return jnp.degrees(jnp.arccos(jnp.clip(cos, -1.0, 1.0)))


def trial_end(model: RateRNN, task: AbstractTask, key: PRNGKeyArray | None = None) -> Float[Array, " n"]:
    """The state `x` at the end of one trial of `task` (a start for Newton's method)."""
    batch = task.sample(jax.random.key(0) if key is None else key, 1)
    out = task.forward(model, batch)
    return out.final_state.neuron[0]
