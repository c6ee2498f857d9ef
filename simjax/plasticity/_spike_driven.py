r"""Spike-triggered rules that touch only the synapses of the neurons that spiked.

A rule whose weights change only at spikes (`AbstractSpikeTriggeredRule`) changes, in a step, the
outgoing and incoming synapses of the neurons that spiked and nothing else:

- `_sparse_update`, `_event_spike_update`: that update with a static budget of `max_spikes`
  spiking neurons (the update of every synapse in a step with more), for a dense matrix and for
  the stored synapses of an `EventProjection` (`incoming_slots` indexes each neuron's incoming
  synapses); differentiable by autodiff;
- `_spike_driven_update`: the dense matrix's weights for any number of spikes, by a loop over
  chunks of the spiking neurons that updates the weights in place (`_chunked_in_place`), with the
  budgeted update's derivative as its custom VJP; `simjax.plasticity._propagation_update` does the
  same for an `EventProjection` inside the loop that delivers the spikes.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ..synapses._event import spike_indices
from ..synapses._spike_ranks import spike_ranks, spike_rows
from ._base import AbstractSpikeTriggeredRule, take

CHUNK = 8
"""Spiking neurons per iteration of the spike-driven update's loop (smaller than the propagation's:
each neuron brings a whole row and column, and a typical step has a few spikes)."""


def _sparse_update(rule: AbstractSpikeTriggeredRule, spikes, traces, weights, mask, dt, max_spikes):
    """The weights after one step of a spike-triggered rule in a recurrent population (pre = post =
    `spikes`), touching only the rows and columns of the neurons that spiked; the dense update in a
    step with more than `max_spikes` spikes."""

    def dense(_):
        return jnp.where(mask, rule(spikes, spikes, traces, weights, None, dt)[0], weights)

    def sparse(_):
        idx, _ = spike_indices(spikes, max_spikes)  # padded with n: gathered clipped, scattered dropped
        rows_old = jnp.take(weights, idx, axis=0, mode="clip")
        rows = rule(take(spikes, idx), spikes, rule.select(traces, pre_index=idx), rows_old, None, dt)[0]
        rows = jnp.where(jnp.take(mask, idx, axis=0, mode="clip"), rows, rows_old)
        cols_old = jnp.take(weights, idx, axis=1, mode="clip")
        cols = rule(spikes, take(spikes, idx), rule.select(traces, post_index=idx), cols_old, None, dt)[0]
        cols = jnp.where(jnp.take(mask, idx, axis=1, mode="clip"), cols, cols_old)
        return weights.at[idx, :].set(rows, mode="drop").at[:, idx].set(cols, mode="drop")

    count = jnp.sum(jax.lax.stop_gradient(spikes) != 0)
    return jax.lax.cond(count > max_spikes, dense, sparse, None)


def _event_update(rule: AbstractSpikeTriggeredRule, targets, spikes, traces, weights, mask, dt):
    """One step of a spike-triggered rule on the stored synapses of an `EventProjection` (row `j`:
    the synapses from neuron `j` to `targets[j]`): each row is a batch entry with one presynaptic
    neuron and its targets as postsynaptic neurons."""
    rows = jnp.arange(weights.shape[0])[:, None]
    selected = rule.select(traces, pre_index=rows, post_index=targets)
    new = rule(take(spikes, rows), take(spikes, targets), selected, weights[:, None, :], None, dt)[0][:, 0, :]
    return jnp.where(mask, new, weights)


def incoming_slots(targets: np.ndarray, n_post: int) -> np.ndarray:
    """`[n_post, max_in]`: for each postsynaptic neuron, the flat positions `row * max_out + col`
    of its stored synapses in an `EventProjection`'s `[n_pre, max_out]` arrays, padded with
    `n_pre * max_out` (the transpose of the projection's ELLPACK rows, built once on the host)."""
    targets = np.asarray(targets)
    n_pre, max_out = targets.shape
    rows, cols = np.nonzero(targets < n_post)
    post = targets[rows, cols]
    order = np.argsort(post, kind="stable")
    counts = np.bincount(post, minlength=n_post)
    slots = np.full((n_post, max(int(counts.max(initial=0)), 1)), n_pre * max_out, np.int32)
    rank = np.arange(order.size) - np.repeat(np.cumsum(counts) - counts, counts)
    slots[post[order], rank] = (rows * max_out + cols)[order]
    return slots


def _rule_at_slots(rule: AbstractSpikeTriggeredRule, slots, pre, post, old, spikes, traces, flat_mask, dt):
    """The rule's new weights of the synapses at the flat `slots` (any shape), synapse `i` from
    neuron `pre[i]` to `post[i]` with weight `old[i]`, as one batch of one-synapse entries; the
    old weight where `flat_mask` is off or the slot is padding."""
    shape = slots.shape
    pre, post = pre.reshape(-1, 1), post.reshape(-1, 1)
    selected = rule.select(traces, pre_index=pre, post_index=post)
    old = old.reshape(-1, 1)
    new = rule(take(spikes, pre), take(spikes, post), selected, old[:, :, None], None, dt)[0][:, :, 0]
    new = jnp.where(flat_mask.at[slots.reshape(-1, 1)].get(mode="fill", fill_value=False), new, old)
    return new.reshape(shape)


def synapses_of(targets, incoming, n_post: int, idx):
    """The stored synapses of the neurons `idx` (`[C]`, padded with `n_pre`) of an
    `EventProjection`: `(row_slots, row_post, in_slots, in_pre)`, the flat slots and postsynaptic
    neurons of their outgoing synapses (`[C, max_out]`) and the flat slots and presynaptic neurons
    of their incoming ones (`[C, max_in]`, `incoming_slots`). Padding slots are `n_pre * max_out`,
    padding neurons `n_post` (targets) and `n_pre` (sources)."""
    n_pre, max_out = targets.shape
    size = n_pre * max_out
    spiking = idx[:, None]
    row_slots = jnp.where(spiking < n_pre, spiking * max_out + jnp.arange(max_out, dtype=idx.dtype), size)
    row_post = targets.at[idx].get(mode="fill", fill_value=n_post)
    in_slots = incoming.at[idx].get(mode="fill", fill_value=size)
    return row_slots, row_post, in_slots, in_slots // max_out


def pre_post(idx, row_post, in_pre):
    """`(pre, post)` of the synapses of `synapses_of`, rows then incoming: every synapse its own
    batch entry, so one evaluation of the rule serves both kinds."""
    spiking = idx[:, None]
    pre = jnp.concatenate([jnp.broadcast_to(spiking, row_post.shape), in_pre], axis=1)
    post = jnp.concatenate([row_post, jnp.broadcast_to(spiking, in_pre.shape)], axis=1)
    return pre, post


def _spiking_synapses(rule: AbstractSpikeTriggeredRule, targets, incoming, idx, spikes, traces, flat_w, flat_mask, dt):
    """For the spiking neurons `idx` (padded with `n_pre`) of an `EventProjection`, the flat slots
    of their outgoing and incoming stored synapses (`synapses_of`) and the rule's new values there
    from the weights `flat_w` (the old value where `flat_mask` is off), as one flat
    `(slots, values)` pair (padding slots are `n_pre * max_out`, dropped)."""
    row_slots, row_post, in_slots, in_pre = synapses_of(targets, incoming, targets.shape[0], idx)  # (recurrent)
    slots = jnp.concatenate([row_slots, in_slots], axis=1)
    pre, post = pre_post(idx, row_post, in_pre)
    old = flat_w.at[slots].get(mode="fill", fill_value=0)
    new = _rule_at_slots(rule, slots, pre, post, old, spikes, traces, flat_mask, dt)
    return slots.reshape(-1), new.reshape(-1)


def _event_spike_update(rule: AbstractSpikeTriggeredRule, targets, incoming, spikes, traces, weights, mask, dt,
                        max_spikes):
    """One step of a spike-triggered rule on the stored synapses of an `EventProjection`, touching
    only the synapses of the neurons that spiked: the rows (outgoing synapses) of each spiking
    neuron and its incoming synapses (`incoming_slots`), each computed from the old weights with
    the whole rule (a synapse whose both ends spiked gets the same value from both); the update
    of every stored synapse in a step with more than `max_spikes` spikes."""

    def every(_):
        return _event_update(rule, targets, spikes, traces, weights, mask, dt)

    def spiking(_):
        idx, _ = spike_indices(spikes, max_spikes)  # padded with n_pre: gathered clipped, written dropped
        flat_w = weights.reshape(-1)
        slots, values = _spiking_synapses(rule, targets, incoming, idx, spikes, traces, flat_w, mask.reshape(-1), dt)
        return flat_w.at[slots].set(values, mode="drop").reshape(weights.shape)

    count = jnp.sum(jax.lax.stop_gradient(spikes) != 0)
    return jax.lax.cond(count > max_spikes, every, spiking, None)


def _chunked_in_place(spikes, weights, synapses):
    """The weights after the update of the synapses of the neurons that spiked, in chunks of
    `CHUNK` spiking neurons by a loop whose trip count follows the number of spikes (as the
    event-driven propagation, `simjax.synapses._event_scatter`), the weights updated in place.
    `synapses(idx, written, flat_w)` gives the chunk's flat `(slots, values)` of its neurons'
    rows and columns, dropping (slot past the end) those whose other end `written(neurons)` marks
    (`written` is `None` for the first chunk):
    a synapse between two neurons that spiked is written by the chunk of whichever end comes first,
    so every synapse gets the rule applied once to its old weight."""
    n_pre = weights.shape[0]
    ranks = spike_ranks(spikes)

    def body(c, flat_w, first):
        idx = spike_rows(ranks, n_pre, n_pre, c, CHUNK)  # padded with n_pre

        def written(neurons):  # spiked in an earlier chunk (chunks go in index order): written
            return ranks.spiked(neurons) & (neurons < idx[0])

        slots, values = synapses(idx, None if first else written, flat_w)
        return flat_w.at[slots].set(values, mode="drop")  # one scatter (two would make XLA copy the weights)

    # the first chunk has no earlier chunk (a loop of at most one trip: it updates in place, as
    # the loop over the others)
    chunks = ranks.chunks(CHUNK)
    flat_w = jax.lax.fori_loop(0, jnp.minimum(chunks, 1), lambda c, w: body(c, w, True), weights.reshape(-1))
    return jax.lax.fori_loop(1, chunks, lambda c, w: body(c, w, False), flat_w).reshape(weights.shape)


def _dense_spike_driven_forward(rule, spikes, traces, weights, mask, dt):
    """`_sparse_update`'s weights for any number of spikes (`_chunked_in_place` over the rows and
    columns of the spiking neurons in a dense matrix)."""
    n = weights.shape[0]
    size = n * n
    every = jnp.arange(n)
    flat_mask = mask.reshape(-1)

    def synapses(idx, written, flat_w):
        earlier = jnp.zeros(n, bool) if written is None else written(every)  # rows and columns written
        # rows: pre = the chunk [C], post = every neuron [n]
        row_slots = jnp.where((idx[:, None] < n) & ~earlier[None, :], idx[:, None] * n + every, size)
        old = flat_w.at[row_slots].get(mode="fill", fill_value=0)
        rows = rule(take(spikes, idx), spikes, rule.select(traces, pre_index=idx), old, None, dt)[0]
        rows = jnp.where(flat_mask.at[row_slots].get(mode="fill", fill_value=False), rows, old)
        # columns: pre = every neuron [n], post = the chunk [C]
        col_slots = jnp.where((idx[None, :] < n) & ~earlier[:, None], every[:, None] * n + idx[None, :], size)
        old_col = flat_w.at[col_slots].get(mode="fill", fill_value=0)
        cols = rule(spikes, take(spikes, idx), rule.select(traces, post_index=idx), old_col, None, dt)[0]
        cols = jnp.where(flat_mask.at[col_slots].get(mode="fill", fill_value=False), cols, old_col)
        return jnp.concatenate([row_slots.ravel(), col_slots.ravel()]), jnp.concatenate([rows.ravel(), cols.ravel()])

    return _chunked_in_place(spikes, weights, synapses)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _spike_driven_update(max_spikes, rule, spikes, traces, weights, mask, dt):
    """The update of the rows and columns of the neurons that spiked in a dense matrix, with a
    forward pass whose cost follows the spikes that occurred (`_dense_spike_driven_forward`, a
    loop, which has no reverse-mode derivative) and the derivative of the same function with a
    static budget of `max_spikes` spiking neurons (`_sparse_update`) as its VJP. (The stored
    synapses of an `EventProjection` are updated inside the propagation loop:
    `simjax.plasticity._propagation_update`.)"""
    return _dense_spike_driven_forward(rule, spikes, traces, weights, mask, dt)


def _spike_driven_fwd(max_spikes, rule, spikes, traces, weights, mask, dt):
    out = _dense_spike_driven_forward(rule, spikes, traces, weights, mask, dt)
    return out, (rule, spikes, traces, weights, mask, dt)


def _spike_driven_bwd(max_spikes, residuals, g):
    rule, spikes, traces, weights, mask, dt = residuals

    def reference(rule, spikes, traces, weights, dt):
        return _sparse_update(rule, spikes, traces, weights, mask, dt, max_spikes)

    d_rule, d_spikes, d_traces, d_weights, d_dt = jax.vjp(reference, rule, spikes, traces, weights, dt)[1](g)
    return d_rule, d_spikes, d_traces, d_weights, None, d_dt


_spike_driven_update.defvjp(_spike_driven_fwd, _spike_driven_bwd)
