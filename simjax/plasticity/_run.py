r"""Running a plasticity rule inside the clock-driven scan.

- `run`: the rule driven by given pre- and postsynaptic spike trains (open loop: the STDP window,
  pairing protocols, meta-learning a rule from weight changes).
- `simulate`: a `simjax.networks.EINetwork` whose recurrent weights (a dense matrix, or the stored
  synapses of an event-driven projection) learn while it runs (closed loop): the weights and the
  rule's traces are part of the scanned state (`PlasticState`); each step is the network's
  `transition` with the current weights, then the rule with this step's spikes (presynaptic =
  postsynaptic = the population's spikes). With `method="event"`, a `simjax.networks.RSNN` whose
  recurrent (and optionally input) weights learn at the exact events of the event-driven method
  (`simjax.plasticity._event`).

Both are pure functions of arrays: `jax.vmap` runs many seeds or rule parameters at once, and
`jax.grad` differentiates the final weights (or activity) in the rule's parameters. For long
differentiable runs, `memory="checkpoint"` keeps the state only every `segment` steps and
recomputes each segment in the backward pass (memory ~ `T / segment + segment` states).
"""

from __future__ import annotations

import functools
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, PRNGKeyArray, PyTree

from .._checks import check_choice, check_int, check_positive, check_shape, is_concrete
from .._simulate.output import Output
from .._spike_train import SpikeTrain
from ..networks._ei import EINetwork, EIState
from ..networks._rsnn import RSNN, RSNNState
from ..synapses._dense import Dense
from ..synapses._event import EventProjection, spike_indices
from ..synapses._spike_ranks import spike_ranks, spike_rows
from ._base import AbstractPlasticityRule, AbstractSpikeTriggeredRule, modulator_fits, take
from ._event import simulate_event

CHUNK = 8
"""Spiking neurons per iteration of the spike-driven update's loop (smaller than the propagation's:
each neuron brings a whole row and column, and a typical step has a few spikes)."""


class PlasticState(eqx.Module):
    """The state of a plastic network run: the network's state, the plastic weights (shaped like the
    projection's `weight`) and the rule's traces."""

    network: EIState
    weights: Float[Array, "n_pre m"]
    traces: PyTree[Array]


def _scan(body, carry, xs, steps: int, memory: str, segment: int):
    if memory == "checkpoint" and steps % segment == 0 and steps > segment:
        chunks = jax.tree.map(lambda a: a.reshape(steps // segment, segment, *a.shape[1:]), xs)

        @jax.checkpoint
        def outer(c, chunk):
            return jax.lax.scan(body, c, chunk)

        carry, ys = jax.lax.scan(outer, carry, chunks)
        return carry, jax.tree.map(lambda a: a.reshape(steps, *a.shape[2:]), ys)
    return jax.lax.scan(body, carry, xs)


def _check_modulator_series(owner, rule, modulator, steps, post_shape):
    if rule.needs_modulator and modulator is None:
        raise ValueError(f"{owner}: {type(rule).__name__} needs a modulator (the third factor): an array "
                         f"[time] or [time, *post] with time = {steps}, got None")
    if not rule.needs_modulator and modulator is not None:
        raise ValueError(f"{owner}: {type(rule).__name__} has no third factor; pass modulator=None "
                         f"(got an array of shape {tuple(np.shape(modulator))})")
    if modulator is None:
        return
    shape = tuple(np.shape(modulator))
    if not shape or shape[0] != steps:
        raise ValueError(f"{owner}: the modulator has shape {shape}; expected [time, ...] with time = {steps} "
                         "(one value per step, the number of steps of the spike trains)")
    if not modulator_fits(shape[1:], post_shape):
        raise ValueError(f"{owner}: the modulator has shape {shape}; expected [time] or [time, *m] with m a shape "
                         f"that broadcasts to the postsynaptic neurons' {post_shape} (one value per step, or one "
                         "per step and neuron)")


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


def _spiking_synapses(rule: AbstractSpikeTriggeredRule, targets, incoming, idx, spikes, traces, flat_w, flat_mask, dt,
                      written=None):
    """For the spiking neurons `idx` (padded with `n_pre`) of an `EventProjection`, the flat slots
    of their outgoing stored synapses (rows) and of their incoming ones (`incoming_slots`), and the
    rule's new values there from the weights `flat_w` (the old value where `flat_mask` is off), as
    one flat `(slots, values)` pair: every synapse is a batch entry with its own pre- and
    postsynaptic neuron, so one evaluation of the rule serves both kinds. Slots whose other end
    `written(neurons)` marks are dropped (padding slots are `n_pre * max_out`, dropped too)."""
    n_pre, max_out = targets.shape
    size = n_pre * max_out
    spiking = idx[:, None]
    # outgoing: pre = the spiking neuron, post = its targets [B, max_out]
    row_slots = jnp.where(spiking < n_pre, spiking * max_out + jnp.arange(max_out), size)
    row_post = jnp.take(targets, idx, axis=0, mode="clip")
    # incoming: pre = its presynaptic neurons [B, max_in], post = the spiking neuron
    in_slots = jnp.take(incoming, idx, axis=0, mode="fill", fill_value=size)
    in_pre = in_slots // max_out
    if written is not None:
        row_slots = jnp.where(written(row_post), size, row_slots)
        in_slots = jnp.where(written(in_pre), size, in_slots)
    slots = jnp.concatenate([row_slots, in_slots], axis=1).reshape(-1, 1)
    pre = jnp.concatenate([jnp.broadcast_to(spiking, row_slots.shape), in_pre], axis=1).reshape(-1, 1)
    post = jnp.concatenate([row_post, jnp.broadcast_to(spiking, in_slots.shape)], axis=1).reshape(-1, 1)
    old = flat_w.at[slots].get(mode="fill", fill_value=0)
    selected = rule.select(traces, pre_index=pre, post_index=post)
    new = rule(take(spikes, pre), take(spikes, post), selected, old[:, :, None], None, dt)[0][:, :, 0]
    new = jnp.where(flat_mask.at[slots].get(mode="fill", fill_value=False), new, old)
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


def _spike_driven_forward(rule, targets, incoming, spikes, traces, weights, mask, dt):
    """`_event_spike_update`'s weights for any number of spikes (`_chunked_in_place` over the
    outgoing and incoming stored synapses of the spiking neurons)."""
    return _chunked_in_place(spikes, weights, lambda idx, written, flat_w: _spiking_synapses(
        rule, targets, incoming, idx, spikes, traces, flat_w, mask.reshape(-1), dt, written))


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
def _spike_driven_update(max_spikes, rule, targets, incoming, spikes, traces, weights, mask, dt):
    """The update of the synapses of the neurons that spiked, with a forward pass whose cost
    follows the spikes that occurred (a loop, which has no reverse-mode derivative) and the
    derivative of the same function with a static budget of `max_spikes` spiking neurons as its
    VJP: for an `EventProjection` (`targets`, `incoming` given) `_spike_driven_forward` and
    `_event_spike_update`, for a dense matrix (`targets = incoming = None`)
    `_dense_spike_driven_forward` and `_sparse_update`."""
    return _spike_driven_forward_any(rule, targets, incoming, spikes, traces, weights, mask, dt)


def _spike_driven_forward_any(rule, targets, incoming, spikes, traces, weights, mask, dt):
    if targets is None:
        return _dense_spike_driven_forward(rule, spikes, traces, weights, mask, dt)
    return _spike_driven_forward(rule, targets, incoming, spikes, traces, weights, mask, dt)


def _spike_driven_fwd(max_spikes, rule, targets, incoming, spikes, traces, weights, mask, dt):
    out = _spike_driven_forward_any(rule, targets, incoming, spikes, traces, weights, mask, dt)
    return out, (rule, targets, incoming, spikes, traces, weights, mask, dt)


def _spike_driven_bwd(max_spikes, residuals, g):
    rule, targets, incoming, spikes, traces, weights, mask, dt = residuals

    def reference(rule, spikes, traces, weights, dt):
        if targets is None:
            return _sparse_update(rule, spikes, traces, weights, mask, dt, max_spikes)
        return _event_spike_update(rule, targets, incoming, spikes, traces, weights, mask, dt, max_spikes)

    d_rule, d_spikes, d_traces, d_weights, d_dt = jax.vjp(reference, rule, spikes, traces, weights, dt)[1](g)
    return d_rule, None, None, d_spikes, d_traces, d_weights, None, d_dt


_spike_driven_update.defvjp(_spike_driven_fwd, _spike_driven_bwd)


def _check_common(owner, rule, dt, memory, segment):
    if not isinstance(rule, AbstractPlasticityRule):
        raise TypeError(f"{owner}: rule must be a simjax.plasticity rule (AbstractPlasticityRule), "
                        f"got {type(rule).__name__}")
    check_positive("dt", dt, owner=owner)
    check_choice("memory", memory, ("store", "checkpoint"), owner=owner)
    check_int("segment", segment, owner=owner)


def run(rule: AbstractPlasticityRule, pre: Float[Array, "time *batch n_pre"], post: Float[Array, "time *batch n_post"],
        weights: Float[Array, "*batch n_pre n_post"], *, dt: Any, modulator: Float[Array, "time ..."] | None = None,
        traces: PyTree[Array] | None = None, memory: str = "store", segment: int = 100
        ) -> tuple[Float[Array, "*batch n_pre n_post"], PyTree[Array]]:
    r"""Applies `rule` at every step of given spike trains (open loop).

    **Arguments:**

    - `rule`: a plasticity rule (`PairSTDP`, `TripletSTDP`, `RewardModulatedSTDP`, `InhibitorySTDP`, ...).
    - `pre`, `post`: spikes (0/1) per step, `[time, *batch, n_pre]` and `[time, *batch, n_post]`.
    - `weights`: the initial weights `[*batch, n_pre, n_post]`.
    - `dt`: the step (ms).
    - `modulator`: the third factor per step, `[time]` or `[time, *post]` (only for rules that
      have one).
    - `traces`: the initial traces (default: at rest, `rule.init`).
    - `memory`: `"store"` or `"checkpoint"` (segments of `segment` steps recomputed in the
      backward pass; used when `segment` divides the number of steps).

    **Returns:** `(weights, traces)` after the last step.
    """
    owner = "plasticity.run"
    _check_common(owner, rule, dt, memory, segment)
    pre, post, weights = jnp.asarray(pre), jnp.asarray(post), jnp.asarray(weights)
    if weights.ndim < 2:
        raise ValueError(f"{owner}: weights must be [*batch, n_pre, n_post], got shape {weights.shape}")
    check_shape("pre", pre, (None, *weights.shape[:-1]), owner=owner)
    check_shape("post", post, (pre.shape[0], *weights.shape[:-2], weights.shape[-1]), owner=owner)
    steps = pre.shape[0]
    _check_modulator_series(owner, rule, modulator, steps, post.shape[1:])
    if traces is None:
        traces = rule.init(weights)
    dtype = weights.dtype
    xs = (pre.astype(dtype), post.astype(dtype), None if modulator is None else jnp.asarray(modulator, dtype))

    def body(carry, x):
        w, tr = carry
        s_pre, s_post, m = x
        return rule(s_pre, s_post, tr, w, m, dt), None

    (weights, traces), _ = _scan(body, (weights, traces), xs, steps, memory, segment)
    return weights, traces


def simulate(net: EINetwork | RSNN, rule: AbstractPlasticityRule, inputs: Float[Array, "time 1"] | SpikeTrain, *,
             method: str = "clock", dt: Any = None, t1: Any = None, key: PRNGKeyArray | None = None,
             mask: Bool[Array, "n_pre n_syn"] | None = None, input_mask: Bool[Array, "n_in n_rec"] | None = None,
             modulator: Float[Array, "time ..."] | None = None, memory: str = "store", segment: int = 100,
             max_spikes: int | None = None, max_events: int = 1024, delay: Any = None,
             state: RSNNState | None = None, record_dt: Any = None, on_exhausted: str = "raise"
             ) -> tuple[EINetwork | RSNN, Output]:
    r"""Runs `net` with plastic recurrent weights (closed loop; module docstring), clock-driven
    (`method="clock"`, an `EINetwork` on a grid of `dt`) or event-driven (`method="event"`, an
    `RSNN` driven by a `simjax.SpikeTrain` up to `t1`, the rule applied exactly at the events:
    `simjax.plasticity._event`).

    The event-driven form is this function's `method=` rather than a keyword of
    `simjax.simulate`, so that every online-plasticity run has one entry point and one return
    contract (`(net, out)`), and the simulation layer does not depend on the rules.

    **Arguments:**

    - `net`: an `simjax.networks.EINetwork` with a `simjax.synapses.Dense` recurrent projection
      (weights `[n, n]`, inhibitory rows negative), or, for an `AbstractSpikeTriggeredRule`, an
      `simjax.synapses.EventProjection` (its stored weights `[n, max_out]` learn).
    - `rule`: the plasticity rule of the plastic synapses.
    - `inputs`: the external input per step, `[time, 1]` (one trial; `jax.vmap` for several).
    - `dt`: the step (ms).
    - `key`: draws the initial potentials and the Poisson background (`EINetwork.init`).
    - `mask`: booleans shaped like the weights (`[n, n]`, or `[n, max_out]` for an
      `EventProjection`), which synapses learn (default: every stored nonzero weight). Their
      weights must have the rule's sign (`sign * w >= 0`).
    - `modulator`: the third factor per step, `[time]` or `[time, n]` (rules that have one).
    - `memory`, `segment`: as for `run`.
    - `method`: `"clock"` (default) or `"event"`.
    - `max_spikes`: for an `AbstractSpikeTriggeredRule`, update only the synapses of the neurons
      that spiked in a step: the rows and columns of a `Dense` matrix (`O(k n)` instead of
      `O(n^2)` per step), or the outgoing and incoming stored synapses of an `EventProjection`
      (`O(k (max_out + max_in))` instead of every stored synapse). The forward pass loops over
      chunks of the spikes that occurred and updates the weights in place (the update of a
      step's spikes is applied at the start of the next step, which gives the same weights);
      `max_spikes` is the budget of the backward pass, which differentiates the update of up to
      `max_spikes` spiking neurons (of every synapse in a step with more). The weights are the
      same as without `max_spikes`; gradients through the surrogate derivatives of neurons that
      did not spike (which the full update carries) are left out. Default `None`: every synapse
      every step.

    With `method="event"` (an `AbstractSpikeTriggeredRule`: `PairSTDP`, `TripletSTDP`,
    `InhibitorySTDP`; other rules raise a `TypeError`), instead of `dt`, `modulator`, `memory`,
    `segment` and `max_spikes`:

    - `net`: a `simjax.networks.RSNN` of event-driven neurons (`LIF`, `ALIF`, `QIF`) with a
      `simjax.synapses.Dense` `w_rec` (and `w_in`, if it learns).
    - `inputs`: a `simjax.SpikeTrain` of one trial (1-D `times`; `jax.vmap` for several).
    - `t1`, `max_events`, `delay`, `record_dt`, `on_exhausted`, `state`, `key`: as for
      `simjax.simulate(..., method="event")`.
    - `mask`: `[n_rec, n_rec]`, which recurrent synapses learn (default: every nonzero weight off
      the diagonal; all `False` keeps them fixed).
    - `input_mask`: `[n_in, n_rec]`, which input synapses learn (default `None`: none).

    **Returns:** `(net, out)`: the network with its final weights, and the `simjax.Output` of the
    run (its `final_state` a `PlasticState`; with `method="event"` an `EventPlasticState`, with
    the final weights and the traces at `t1`, and `out.spikes` a `simjax.SpikeTrain`).
    """
    owner = "plasticity.simulate"
    check_choice("method", method, ("clock", "event"), owner=owner)
    if method == "event":
        wrong = [name for name, v in (("dt", dt), ("modulator", modulator), ("max_spikes", max_spikes))
                 if v is not None] + (["memory"] if memory != "store" else [])
        if wrong:
            raise TypeError(f"{owner}: method='event' takes no {', '.join(wrong)} (exact event times, no step; "
                            "rules without a third factor); drop them")
        if not isinstance(rule, AbstractPlasticityRule):
            raise TypeError(f"{owner}: rule must be a simjax.plasticity rule (AbstractPlasticityRule), "
                            f"got {type(rule).__name__}")
        return simulate_event(net, rule, inputs, t1=t1, key=key, state=state, mask=mask, input_mask=input_mask,
                              max_events=max_events, delay=delay, record_dt=record_dt, on_exhausted=on_exhausted)
    wrong = [name for name, v in (("t1", t1), ("input_mask", input_mask), ("delay", delay), ("state", state),
                                  ("record_dt", record_dt)) if v is not None]
    if wrong:
        raise TypeError(f"{owner}: {', '.join(wrong)} belong to method='event'; drop them for method='clock'")
    if dt is None:
        raise ValueError(f"{owner}: method='clock' needs dt (the time step, e.g. dt=1.0)")
    _check_common(owner, rule, dt, memory, segment)
    if not isinstance(net, EINetwork):
        raise TypeError(f"{owner}: net must be a simjax.networks.EINetwork, got {type(net).__name__}")
    event = isinstance(net.recurrent, EventProjection)
    if not (isinstance(net.recurrent, Dense) or (event and isinstance(rule, AbstractSpikeTriggeredRule))):
        what = ("the dense weights of a simjax.synapses.Dense recurrent projection (a rule whose weights change "
                "only at spikes, AbstractSpikeTriggeredRule, also serves an EventProjection)")
        raise TypeError(f"{owner}: {type(rule).__name__} needs {what}, got {type(net.recurrent).__name__}")
    if event and max_spikes is not None and not is_concrete(net.recurrent.targets):
        raise ValueError(f"{owner}: max_spikes with an EventProjection needs its targets as concrete arrays (the "
                         "index of each neuron's incoming synapses is built on the host); build the network "
                         "outside the traced function")
    inputs = jnp.asarray(inputs)
    check_shape("inputs", inputs, (None, 1), owner=owner)
    steps = inputs.shape[0]
    weights = net.recurrent.weight
    n = net.n
    if mask is None:
        mask = (net.recurrent.targets < n) & (weights != 0) if event else weights != 0
    check_shape("mask", mask, weights.shape, owner=owner)
    mask = jnp.asarray(mask, bool)
    if is_concrete(weights) and is_concrete(mask):
        bad = np.asarray(mask) & (rule.sign * np.asarray(weights) < 0)
        if np.any(bad):
            i, j = np.argwhere(bad)[0]
            post = int(net.recurrent.targets[i, j]) if event else int(j)
            kind = "excitatory (w >= 0)" if rule.sign == 1 else "inhibitory (w <= 0)"
            raise ValueError(f"{owner}: {type(rule).__name__} with sign={rule.sign:+d} serves {kind} synapses, but "
                             f"the plastic synapse {int(i)} -> {post} has weight {float(weights[i, j])!r}; restrict "
                             "mask to synapses of that sign")
    _check_modulator_series(owner, rule, modulator, steps, (n,))
    if max_spikes is not None:
        check_int("max_spikes", max_spikes, owner=owner)
        if not isinstance(rule, AbstractSpikeTriggeredRule):
            raise TypeError(f"{owner}: max_spikes needs a rule whose weights change only at spikes "
                            f"(AbstractSpikeTriggeredRule), got {type(rule).__name__}; drop max_spikes")
    incoming = (jnp.asarray(incoming_slots(np.asarray(net.recurrent.targets), n))
                if event and max_spikes is not None else None)
    traces = rule.init(jax.ShapeDtypeStruct((n, n), weights.dtype) if event else weights)
    state = PlasticState(network=net.init(key, ()), weights=weights, traces=traces)
    xs = (inputs.astype(weights.dtype), None if modulator is None else jnp.asarray(modulator, weights.dtype))

    targets = net.recurrent.targets if event else None

    def spike_driven(spikes, traces, weights):
        w = _spike_driven_update(max_spikes, rule, targets, incoming, spikes, traces, weights, mask, dt)
        return w, rule.advance(spikes, spikes, traces, dt)

    def body_spike_driven(carry: PlasticState, x):
        # the update of the previous step's spikes opens this step, so that XLA updates the carried
        # weights in place (an update after `transition`, whose propagation loop reads them, costs a
        # copy of every weight per step); the last step's update follows the scan
        w, traces = spike_driven(carry.network.spikes, carry.traces, carry.weights)
        proj = eqx.tree_at(lambda p: p.weight, net.recurrent, w)
        ei, record = net.transition(carry.network, x[0], dt, proj)
        return PlasticState(network=ei, weights=w, traces=traces), record

    def body(carry: PlasticState, x):
        x_t, m_t = x
        proj = eqx.tree_at(lambda p: p.weight, net.recurrent, carry.weights)
        ei, record = net.transition(carry.network, x_t, dt, proj)
        if event and max_spikes is None:
            w = _event_update(rule, net.recurrent.targets, ei.spikes, carry.traces, carry.weights, mask, dt)
            traces = rule.advance(ei.spikes, ei.spikes, carry.traces, dt)
        else:
            w, traces = rule(ei.spikes, ei.spikes, carry.traces, carry.weights, m_t, dt)
            w = jnp.where(mask, w, carry.weights)
        return PlasticState(network=ei, weights=w, traces=traces), record

    if max_spikes is not None:
        final, recs = _scan(body_spike_driven, state, xs, steps, memory, segment)
        w, traces = spike_driven(final.network.spikes, final.traces, final.weights)
        final = PlasticState(network=final.network, weights=w, traces=traces)
    else:
        final, recs = _scan(body, state, xs, steps, memory, segment)
    net = eqx.tree_at(lambda m: m.recurrent.weight, net, final.weights)
    return net, Output(spikes=recs.spikes, v=recs.v, readout=recs.readout, final_state=final, info={})
