r"""A spike-triggered rule applied inside the propagation loop of a plastic `EventProjection`.

A step of a plastic event-driven network delivers the step's spikes through the stored synapses
(`EventProjection.deliver`) and applies the rule to the synapses of the neurons that spiked: their
outgoing synapses (rows) and their incoming ones (`incoming_slots`). Both visit the same neurons in
the same order, so `propagate_and_update` does both in one loop over chunks of the spiking
neurons, sharing the search for each chunk's neurons, the loop itself and the gathers of the
chunk's synapses (targets, slots and old weights).

**Old weights for the propagation.** The spikes are delivered with the weights before this step's
update (the schedule of `EventProjection.deliver` followed by the rule). A chunk writes the
incoming synapses of its neurons, which are also the outgoing synapses of neurons that spiked in
later chunks; so the chunk delivers those synapses itself, from the old weights it has just read,
and a later chunk's rows skip targets of earlier chunks. Every stored synapse of a spiking
neuron is delivered exactly once:

- row side: neuron `j` of chunk `c` delivers to every target `k` that did not spike in an earlier
  chunk;
- incoming side: neuron `k` of chunk `c` receives from every presynaptic `j` that spiked after the
  chunk's last neuron (a later chunk; same-chunk pairs go through the rows).

The rule's writes follow `simjax.plasticity._spike_driven._chunked_in_place`: a synapse whose other end
spiked in an earlier chunk was written there (from its old weight) and is skipped. The budget of
the propagation (`max_spikes` of the projection: spikes past it are dropped and counted) is kept:
a neuron delivers only if its rank among the step's spikes is within the budget; the rule's
update covers every spike.

**Derivative.** The loop's trip count follows the spikes, so the function has a custom VJP: the
derivative of the same step written as `EventProjection.deliver` and the update with a static
budget (`simjax.plasticity._spike_driven._event_spike_update`), as for the update alone.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from ..synapses._delay import DelayBuffer
from ..synapses._event import EventProjection, ring_position
from ..synapses._spike_ranks import SpikeRanks, chunk_size, spike_rows
from ._base import AbstractSpikeTriggeredRule, take
from ._spike_driven import _event_spike_update, _rule_at_slots, pre_post, synapses_of


def _forward(rule, proj, incoming, spikes, released, ranks, buffer, traces, mask, dt):
    n, max_out = proj.targets.shape
    size = n * max_out
    n_post = proj.n_post
    length = buffer.slots.shape[0]
    chunk = chunk_size(n)
    flat_mask = mask.reshape(-1)
    delays_flat = None if proj.delays is None else proj.delays.reshape(-1)
    # the neuron of rank `max_spikes` (n when fewer spiked): spikes of higher index are not delivered
    last = (spike_rows(ranks, n, n, jnp.asarray(proj.max_spikes - 1, jnp.int32), 1)[0] if proj.max_spikes < n
            else jnp.asarray(n, jnp.int32))

    position = functools.partial(ring_position, buffer.cursor, length, n_post, proj.n_channels)

    def body(c, carry, first):
        flat_w, slots = carry
        idx = spike_rows(ranks, n, n, c, chunk)  # [C], padded with n
        end = jnp.max(jnp.where(idx < n, idx, -1))
        spiking = idx[:, None]
        row_slots, row_post, in_slots, in_pre = synapses_of(proj.targets, incoming, n_post, idx)
        if first:  # no earlier chunk
            row_done = in_done = jnp.zeros((), bool)
        else:  # the other end spiked in an earlier chunk (chunks go in index order)
            row_done = ranks.spiked(row_post) & (row_post < idx[0])
            in_done = ranks.spiked(in_pre) & (in_pre < idx[0])
        old_row = flat_w.at[row_slots].get(mode="fill", fill_value=0)
        old_in = flat_w.at[in_slots].get(mode="fill", fill_value=0)
        # the rule: one flat batch of the chunk's synapses, each with its own pre and post neuron
        write = jnp.concatenate([jnp.where(row_done, size, row_slots), jnp.where(in_done, size, in_slots)], axis=1)
        pre, post = pre_post(idx, row_post, in_pre)
        old = jnp.concatenate([old_row, old_in], axis=1)
        new = _rule_at_slots(rule, write, pre, post, old, spikes, traces, flat_mask, dt)
        flat_w = flat_w.at[write.reshape(-1)].set(new.reshape(-1), mode="drop")
        # the delivery, from the old weights
        row_ok = ~row_done & (spiking <= last) & (row_post < n_post)
        in_ok = ranks.spiked(in_pre) & (in_pre > end) & (in_pre <= last)
        channel = (0, 0) if proj.channels is None else (
            proj.channels.at[idx].get(mode="fill", fill_value=0)[:, None],
            proj.channels.at[in_pre].get(mode="fill", fill_value=0))
        delay = (0, 0) if delays_flat is None else (
            proj.delays.at[idx].get(mode="fill", fill_value=0),
            delays_flat.at[in_slots].get(mode="fill", fill_value=0))
        where = jnp.concatenate([position(channel[0], row_post, delay[0], row_ok),
                                 position(channel[1], spiking, delay[1], in_ok)], axis=1)
        value = jnp.concatenate([take(released, idx)[:, None] * old_row, take(released, in_pre) * old_in], axis=1)
        slots = slots.at[where.reshape(-1)].add(value.reshape(-1), mode="drop")
        return flat_w, slots

    chunks = ranks.chunks(chunk)
    carry = (proj.weight.reshape(-1), buffer.slots.reshape(-1))
    carry = jax.lax.fori_loop(0, jnp.minimum(chunks, 1), lambda c, x: body(c, x, True), carry)
    flat_w, slots = jax.lax.fori_loop(1, chunks, lambda c, x: body(c, x, False), carry)
    out = DelayBuffer(slots=slots.reshape(buffer.slots.shape), cursor=(buffer.cursor + 1) % length)
    return out, jnp.maximum(ranks.count - proj.max_spikes, 0), flat_w.reshape(proj.weight.shape)


def _reference(max_spikes, rule, proj, incoming, spikes, released, ranks, buffer, traces, mask, dt):
    """The same step as `EventProjection.deliver` and the update with a static budget."""
    delivered, dropped = proj.deliver(released[None], _batched(buffer), jax.tree.map(lambda a: a[None], ranks))
    weights = _event_spike_update(rule, proj.targets, incoming, spikes, traces, proj.weight, mask, dt, max_spikes)
    return _unbatched(delivered), dropped[0], weights


def _batched(buffer: DelayBuffer) -> DelayBuffer:
    return DelayBuffer(slots=buffer.slots[:, None], cursor=buffer.cursor)


def _unbatched(buffer: DelayBuffer) -> DelayBuffer:
    return DelayBuffer(slots=buffer.slots[:, 0], cursor=buffer.cursor)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _step(max_spikes, rule, proj, incoming, spikes, released, ranks, buffer, traces, mask, dt):
    return _forward(rule, proj, incoming, spikes, released, ranks, buffer, traces, mask, dt)


def _step_fwd(max_spikes, rule, proj, incoming, spikes, released, ranks, buffer, traces, mask, dt):
    out = _forward(rule, proj, incoming, spikes, released, ranks, buffer, traces, mask, dt)
    return out, (rule, proj, incoming, spikes, released, ranks, buffer, traces, mask, dt)


def _step_bwd(max_spikes, residuals, g):
    rule, proj, incoming, spikes, released, ranks, buffer, traces, mask, dt = residuals

    def reference(rule, proj, spikes, released, buffer, traces, dt):
        return _reference(max_spikes, rule, proj, incoming, spikes, released, ranks, buffer, traces, mask, dt)

    grads = jax.vjp(reference, rule, proj, spikes, released, buffer, traces, dt)[1](g)
    d_rule, d_proj, d_spikes, d_released, d_buffer, d_traces, d_dt = grads
    return d_rule, d_proj, None, d_spikes, d_released, None, d_buffer, d_traces, None, d_dt


_step.defvjp(_step_fwd, _step_bwd)


def propagate_and_update(max_spikes: int, rule: AbstractSpikeTriggeredRule, proj: EventProjection, incoming,
                         spikes, released, ranks: SpikeRanks, buffer: DelayBuffer, traces, mask, dt
                         ) -> tuple[DelayBuffer, jax.Array, jax.Array]:
    """One trial's delivery of this step's spikes through `proj` and the spike-triggered update of
    its stored weights (module docstring).

    **Arguments:**

    - `max_spikes`: the budget of the derivative's update (as `simjax.plasticity.simulate`).
    - `rule`: the rule; `proj`: the projection with the weights before the step.
    - `incoming`: `incoming_slots(proj.targets, n)`.
    - `spikes`: this step's spikes `[n]` (0/1); `released`: the values delivered (the spikes, or
      the efficacies of short-term plasticity).
    - `ranks`: `spike_ranks(spikes)`; `buffer`: the delay buffer (`[L, n_channels, n]` slots).
    - `traces`, `mask`, `dt`: the rule's traces before the step, which stored synapses learn, and
      the step.

    **Returns:** `(buffer, dropped, weights)`, as `EventProjection.deliver` and the update.
    """
    return _step(max_spikes, rule, proj, incoming, spikes, released, ranks, buffer, traces, mask, dt)
