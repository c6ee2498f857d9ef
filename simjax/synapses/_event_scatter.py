r"""The scatter of one step's spikes whose trip count is the number of spikes that occurred.

`event_scatter_add(out, weight, value, prefix, budget, routing, aux)` adds, for each of the
first `budget` presynaptic neurons that spiked, its row of weights times its spike value into
`out` at the flat positions `routing(aux, rows)` (positions outside `out` are dropped). The
rows are processed in chunks of `CHUNK` in a `lax.while_loop` that stops after
`ceil(count / CHUNK)` chunks (each chunk's rows found by a binary search in the prefix sum of
the spike flags), so the work is the spikes that occurred times the out-degree, not the
budget. Under `vmap` the loop runs for the largest count of the batch.

A while loop has no reverse-mode derivative, so the function has a custom VJP, computed by the
same chunked loop: with `g` the cotangent of `out`,

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

CHUNK = 16
"""Spikes per iteration of the loop: one iteration covers the few spikes of a typical step."""


def _chunks(prefix, budget):
    return (jnp.minimum(prefix[-1], budget) + CHUNK - 1) // CHUNK


COMPARE_ALL_UP_TO = 16384
"""Up to this many presynaptic neurons a chunk's rows are found by counting the prefix entries
below each rank (one fused `CHUNK x n_pre` comparison) rather than by an unrolled binary search
(one kernel per halving): on XLA's CPU backend the count is the faster of the two for the COBA
step up to at least 16k neurons (see the synapses page)."""


def spike_rows(prefix, budget, c, chunk: int = CHUNK):
    """The rows of the spikes ranked `c chunk + 1 ... (c + 1) chunk` (the number of prefix-sum
    entries below each rank: the first row whose prefix reaches it), `n_pre` past the count or
    the budget."""
    ranks = c * chunk + jnp.arange(1, chunk + 1, dtype=prefix.dtype)
    if prefix.shape[0] <= COMPARE_ALL_UP_TO:
        rows = jnp.sum(prefix[None, :] < ranks[:, None], axis=1, dtype=jnp.int32)
    else:
        rows = jnp.searchsorted(prefix, ranks, side="left", method="scan_unrolled").astype(jnp.int32)
    return jnp.where(ranks <= budget, rows, prefix.shape[0])


def _gather(array, rows):
    return array.at[rows].get(mode="fill", fill_value=0)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5))
def _scatter(out, weight, value, prefix, budget, routing, aux):
    def body(c, out):
        rows = spike_rows(prefix, budget, c)
        contributions = _gather(value, rows)[:, None] * _gather(weight, rows)
        return out.at[routing(aux, rows).ravel()].add(contributions.ravel(), mode="drop")

    return jax.lax.fori_loop(0, _chunks(prefix, budget), body, out)


def _scatter_fwd(out, weight, value, prefix, budget, routing, aux):
    return _scatter(out, weight, value, prefix, budget, routing, aux), (weight, value, prefix, aux)


def _scatter_bwd(budget, routing, residuals, g):
    weight, value, prefix, aux = residuals

    def body(c, grads):
        d_weight, d_value = grads
        rows = spike_rows(prefix, budget, c)
        g_rows = g.at[routing(aux, rows)].get(mode="fill", fill_value=0)
        d_weight = d_weight.at[rows].add(_gather(value, rows)[:, None] * g_rows, mode="drop")
        d_value = d_value.at[rows].add(jnp.sum(_gather(weight, rows) * g_rows, axis=-1), mode="drop")
        return d_weight, d_value

    d_weight, d_value = jax.lax.fori_loop(0, _chunks(prefix, budget), body,
                                          (jnp.zeros_like(weight), jnp.zeros_like(value)))
    return g, d_weight, d_value, None, jax.tree.map(lambda _: None, aux)


_scatter.defvjp(_scatter_fwd, _scatter_bwd)


def event_scatter_add(out: Float[Array, " m"], weight: Float[Array, "n_pre max_out"], value: Float[Array, " n_pre"],
                      prefix: Int[Array, " n_pre"], budget: int,
                      routing: Callable[[Any, Int[Array, " chunk"]], Int[Array, "chunk max_out"]],
                      aux: Any) -> Float[Array, " m"]:
    """`out` plus, for each of the first `budget` presynaptic neurons that spiked, `value[j]
    weight[j]` at the positions `routing(aux, rows)` (module docstring).

    **Arguments:**

    - `out`: the flat array the spikes are added into.
    - `weight`, `value`: the rows of weights and the presynaptic spike values.
    - `prefix`: the inclusive prefix sum of the spike flags (`value != 0`); its last entry is
      the number of spikes, and the rows of each chunk are found in it by binary search.
    - `budget`: at most this many spikes (the first in index order) are added.
    - `routing`: a function of `(aux, rows)` giving the flat target of every weight of the rows
      (out-of-range positions, including those of padding rows, are dropped); hashable (a
      module-level function or a `functools.partial` of one).
    - `aux`: the integer arrays `routing` reads (targets, channels, delays, ...).
    """
    return _scatter(out, weight, value, prefix, budget, routing, aux)
