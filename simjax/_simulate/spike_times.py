r"""`spike_times`: exact spike times of uncoupled neurons under a constant input current.

Each neuron repeats `t_{n+1} = t_n + time_to_spike(reset(free_flow(state, t_n - t_{n-1})))`
with the neuron's closed-form (or root-finding) `time_to_spike`, so the times are exact and
differentiable with respect to the current, the neuron's parameters and the initial state
(implicit function theorem where no closed form exists). For LIF with `bias = I > v_th` from rest
and `reset="zero"` this gives `t_n = n t_ref + n tau ln(I / (I - v_th)) - t_ref`.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PyTree

from .._checks import check_int, check_positive
from ..neurons._base import AbstractEventNeuron
from ._spikes import check_event_neuron


def spike_times(neuron: AbstractEventNeuron, current: Any = 0.0, t1: Any = None, max_spikes: int | None = None,
                state: PyTree[Array] | None = None) -> Float[Array, "*pop max_spikes"]:
    r"""The first `max_spikes` spike times in `[0, t1]` of each neuron of `neuron` (uncoupled).

    **Arguments:**

    - `neuron`: a spiking neuron with the event-driven methods and a `bias` field (LIF, ALIF,
      QIF); its parameters may be arrays (a population).
    - `current`: constant input current added to `bias` (scalar or broadcastable array).
    - `t1`: end time (ms). `max_spikes`: number of spike times returned per neuron (static).
    - `state`: initial state (default `neuron.init(None, shape)`, e.g. rest for LIF).

    **Returns:** `[*pop, max_spikes]` spike times in increasing order, padded with `inf` when a
    neuron spikes fewer than `max_spikes` times before `t1` (later spikes are not returned).
    `*pop` is the broadcast shape of the neuron's parameters, `current` and `state`.
    """
    check_event_neuron(neuron, "spike_times")
    if t1 is None:
        raise ValueError("spike_times: needs t1, the end time (e.g. t1=100.0)")
    check_positive("t1", t1, owner="spike_times")
    check_int("max_spikes", max_spikes, owner="spike_times")
    current = jnp.asarray(current, dtype=jnp.result_type(neuron.bias))
    neuron = eqx.tree_at(lambda n: n.bias, neuron, neuron.bias + current)
    shapes = [jnp.shape(x) for x in jax.tree.leaves(eqx.filter(neuron, eqx.is_array))]
    if state is not None:
        shapes += [jnp.shape(x) for x in jax.tree.leaves(state)]
    shape = jnp.broadcast_shapes(*shapes)
    if state is None:
        state = neuron.init(None, shape)
    state = jax.tree.map(lambda x: jnp.broadcast_to(x, shape), state)
    dtype = jnp.result_type(current)
    t1 = jnp.asarray(t1, dtype=dtype)

    def body(carry, _):
        t, s = carry
        wait = neuron.time_to_spike(s, t1 - t)
        fires = jnp.isfinite(wait)
        dt = jnp.where(fires, wait, 0.0)
        after = neuron.reset(neuron.free_flow(s, dt))
        s = jax.tree.map(lambda a, b: jnp.where(fires, a, b), after, s)
        t = jnp.where(fires, t + dt, t)
        return (t, s), jnp.where(fires, t, jnp.inf)

    _, times = jax.lax.scan(body, (jnp.zeros(shape, dtype), state), None, length=int(max_spikes))
    return jnp.moveaxis(times, 0, -1)
