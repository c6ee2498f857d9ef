r"""The scatter of one step's spikes whose trip count is the number of spikes that occurred.

`event_scatter_add(out, weight, value, ranks, budget, routing, aux)` adds, for each of the
first `budget` presynaptic neurons that spiked, its row of weights times its spike value into
`out` at the flat positions `routing(aux, rows)` (positions outside `out` are dropped). The
rows are processed one per iteration of a `lax.while_loop` (chunks of `chunk_size(n)` rows under
`vmap`, see below) that stops after the spikes that occurred (each row found from the blocked
spike counts `ranks`, `simjax.synapses._spike_ranks`), so the work is the spikes that occurred
times the out-degree, not the budget.

**One row per iteration.** XLA's CPU gather and scatter cost a few ns per element, padding
included: a row is one contiguous slice of the weights, several rows a general gather, and a
chunk of rows pads the last iteration with empty ones. One row per iteration measured fastest
against chunks of 2, 4 and 8 rows on the COBA and CUBA steps from 4 k to 100 k neurons (one
thread, same process, alternating; the step with one row per iteration against chunks of 4:
0.85x for CUBA and COBA at 4 k neurons, about 2 spikes per step, and 0.88x at 100 k neurons
and about 200 spikes per step against chunks of 8). Under `vmap` (`per_trial`, or a `vmap` of a
whole simulation) the loop runs for the largest count of the batch and every iteration selects
each trial's output between its old and new value, a pass over the whole output, so there
(`jax.custom_batching.custom_vmap`) and in the derivative the rows come in chunks of
`chunk_size(n)`: 16 vmapped 4 k COBA networks (`benchmarks/coba.py`, one thread) gave 1.6
network-seconds per wall-second with one row per iteration, 1.8-1.9 with chunks of 4 (same
machine, same day).

A while loop has no reverse-mode derivative, so the function has a custom VJP, computed by the
same loop, in chunks: with `g` the cotangent of `out`,

- `d out`: `g` (the scatter adds to it);
- `d weight[j, k] = value[j] g[route(j, k)]` for the listed rows, 0 for the others;
- `d value[j] = sum_k weight[j, k] g[route(j, k)]` for the listed rows, 0 for the others

(the transpose of a scatter-add is a gather), which is what autodiff of a scatter over the
listed rows gives.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from ._spike_ranks import SpikeRanks, chunk_size, spike_rows


def _rows(ranks, weight, budget, chunk, c):
    return spike_rows(ranks, weight.shape[0], budget, c, chunk)


def _gather(array, rows):
    return array.at[rows].get(mode="fill", fill_value=0)


def _loop(budget, chunk, routing, out, weight, value, ranks, aux):
    def body(c, out):
        rows = _rows(ranks, weight, budget, chunk, c)
        contributions = _gather(value, rows)[:, None] * _gather(weight, rows)
        return out.at[routing(aux, rows).ravel()].add(contributions.ravel(), mode="drop")

    return jax.lax.fori_loop(0, ranks.chunks(chunk, budget), body, out)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5))
def _scatter(out, weight, value, ranks, budget, routing, aux):
    # one row per iteration; under `vmap` chunks of `chunk_size(n)` rows (module docstring)
    @jax.custom_batching.custom_vmap
    def loop(out, weight, value, ranks, aux):
        return _loop(budget, 1, routing, out, weight, value, ranks, aux)

    @loop.def_vmap
    def _(axis_size, in_batched, out, weight, value, ranks, aux):
        in_axes = jax.tree.map(lambda batched: 0 if batched else None, in_batched)
        chunked = functools.partial(_loop, budget, chunk_size(weight.shape[-2]), routing)
        return jax.vmap(chunked, in_axes=tuple(in_axes), axis_size=axis_size)(out, weight, value, ranks, aux), True

    return loop(out, weight, value, ranks, aux)


def _scatter_fwd(out, weight, value, ranks, budget, routing, aux):
    return _scatter(out, weight, value, ranks, budget, routing, aux), (weight, value, ranks, aux)


def _scatter_bwd(budget, routing, residuals, g):
    weight, value, ranks, aux = residuals
    chunk = chunk_size(weight.shape[0])  # (one row per iteration was measured for the forward loop only)

    def body(c, grads):
        d_weight, d_value = grads
        rows = _rows(ranks, weight, budget, chunk, c)
        g_rows = g.at[routing(aux, rows)].get(mode="fill", fill_value=0)
        d_weight = d_weight.at[rows].add(_gather(value, rows)[:, None] * g_rows, mode="drop")
        d_value = d_value.at[rows].add(jnp.sum(_gather(weight, rows) * g_rows, axis=-1), mode="drop")
        return d_weight, d_value

    d_weight, d_value = jax.lax.fori_loop(0, ranks.chunks(chunk, budget), body,
                                          (jnp.zeros_like(weight), jnp.zeros_like(value)))
    return g, d_weight, d_value, jax.tree.map(lambda _: None, ranks), jax.tree.map(lambda _: None, aux)


_scatter.defvjp(_scatter_fwd, _scatter_bwd)


def per_trial(fn: Callable[..., Any], *args: Any) -> Any:
    """`jax.vmap(fn)(*args)` over the leading axis, without `vmap` when it has one entry. A loop
    whose trip count is a trial's number of spikes runs, under `vmap`, for the largest count of
    the batch, and every iteration then selects each trial's carry between its old and new value
    (a pass over the whole carry: the postsynaptic array, a ring buffer, a spike log); one trial
    needs no such select. `None` arguments are passed as `None`."""
    if jax.tree.leaves(args)[0].shape[0] == 1:
        out = fn(*jax.tree.map(lambda a: a[0], args))
        return jax.tree.map(lambda a: a[None], out)
    return jax.vmap(fn, in_axes=tuple(None if a is None else 0 for a in args))(*args)


def event_scatter_add(out: Float[Array, " m"], weight: Float[Array, "n_pre max_out"], value: Float[Array, " n_pre"],
                      ranks: SpikeRanks, budget: int,
                      routing: Callable[[Any, Int[Array, " chunk"]], Int[Array, "chunk max_out"]],
                      aux: Any) -> Float[Array, " m"]:
    """`out` plus, for each of the first `budget` presynaptic neurons that spiked, `value[j]
    weight[j]` at the positions `routing(aux, rows)` (module docstring).

    **Arguments:**

    - `out`: the flat array the spikes are added into.
    - `weight`, `value`: the rows of weights and the presynaptic spike values.
    - `ranks`: `spike_ranks(value)`, where each iteration's rows are found
      (`simjax.synapses._spike_ranks`).
    - `budget`: at most this many spikes (the first in index order) are added.
    - `routing`: a function of `(aux, rows)` giving the flat target of every weight of the rows
      (out-of-range positions, including those of padding rows, are dropped); hashable (a
      module-level function or a `functools.partial` of one).
    - `aux`: the integer arrays `routing` reads (targets, channels, delays, ...).
    """
    return _scatter(out, weight, value, ranks, budget, routing, aux)
