r"""Event-driven simulation of spiking networks: exact spike times, exact gradients.

`simulate(net, spike_train, method="event", t1=..., max_events=...)` integrates a
`simjax.networks.RSNN` from one event to the next instead of on a clock grid. Between events every
neuron follows its exact free flow (`free_flow`: leak, bias current, synaptic decay, refractory
hold); an event is either an input spike or the first threshold crossing of any neuron
(`time_to_spike`, closed forms or bracketed root finding). Each iteration

1. takes the earliest of the next input spike and the earliest `time_to_spike` of any neuron
   (a neuron reaching threshold at the same instant as an input spike fires first);
2. advances every neuron to that time with `free_flow`;
3. applies the event (without `delay`, at once): an input spike of channel `c` calls
   `receive(W_in[c])` on the population; a spike of neuron `j` applies `reset` to `j` and
   then `receive(W_rec[j])` (`W_rec` = `RSNN.recurrent_weight`, diagonal masked unless
   `self_connections`).

**Transmission delays.** With `delay=d` (ms, `>= 0`, one value for every recurrent synapse) a
spike of neuron `j` at `t` resets `j` and moves the readout at `t`, but reaches the recurrent
synapses at `t + d` exactly: the pending arrivals wait in a first-in-first-out queue (a uniform
delay keeps them in emission order), and the arrival at the head of the queue is a third kind of
event, applied with `receive(W_rec[j])`. At equal times a threshold crossing comes first, then an
arrival, then an input spike. Arrivals still pending at `t1` are dropped with the trial (the state
carries no queue), and the network starts with none. `d -> 0` gives the undelayed network, and the
arrival times are differentiable in `d`.

**One delay per synapse.** With `delay` a matrix `D [n_rec, n_rec]` (`D[j, i]` from neuron `j` to
neuron `i`), each synapse's arrival is an event of its own: spike `k` of neuron `j` at `t_k`
reaches neuron `i` at `t_k + D[j, i]` with `receive` of that one weight. The queue holds each
spike's emission time and how many of its synapses have arrived; its next arrival is at its next
delay in sorted order, and the earliest over the queue is the next arrival event (`O(max_events)`
per iteration, and `n_rec` arrival events per spike count towards `max_events`). Equal delays give
the same spike times as the scalar `delay`, arriving synapse by synapse at the same instant.

Simultaneous events are applied one per iteration, at the same time: a neuron pushed to threshold
by a synaptic jump fires at that instant (`time_to_spike = 0`), and one still at or above
threshold after its reset fires again. Each iteration costs `O(n_rec)` (every neuron's
`time_to_spike`, one row of `W_rec` or `W_in`).

The loop is a `lax.scan` over a static budget of `max_events` iterations (reverse-mode
differentiable, unlike `lax.while_loop`); iterations after `t1` is reached change nothing.
If the budget ends before `t1` the result is incomplete: this raises an error naming
`max_events` (`on_exhausted="raise"`, the default) or is flagged in `info["exhausted"]`
(`on_exhausted="flag"`); it is never truncated silently.

**Readout.** The leaky readout relaxes to `b_out` with time constant `tau_out` and jumps by
`W_out[j]` at each spike of neuron `j`:

    o(t) = b_out + (o(0) - b_out) exp(-t / tau_out) + sum_k W_out[j_k] exp(-(t - t_k) / tau_out)

so the clock-driven readout `o_t = kappa o_{t-1} + s_t W_out + b_out` converges to it as
`dt -> 0` when `b_out = 0` (the clock-driven form accumulates `b_out` once per step).

**Gradients.** Spike times are closed forms or roots with implicit-function-theorem derivatives,
and every state update is a smooth function of the event times, so autodiff through the scan
gives the exact gradient of any loss on spike times, final state or readout with respect to the
weights, neuron parameters and input spike times (as long as the order of events does not
change, as for any exact spike-time gradient: Bohte et al. 2002; Wunderlich & Pehle 2021).
"""

from __future__ import annotations

import abc
import math
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PyTree, Shaped

from .._checks import check_choice, check_int, check_positive, grid_count, is_concrete
from .._spike_train import SpikeTrain
from ..networks._rsnn import RSNN, RSNNState
from ..networks._spiking_feedforward import SpikingFeedForward
from ._spikes import check_event_neuron, check_pseudo_drive, check_spike_inputs, sorted_inputs
from .event_layers import simulate_layers
from .output import Output


def _where(mask, new, old):
    return jax.tree.map(lambda a, b: jnp.where(mask, a, b), new, old)


class AbstractEventPlasticity(eqx.Module):
    """Synapses whose weights change at events (online plasticity inside the event loop; built by
    `simjax.plasticity.simulate(..., method="event")`). The loop carries their state, reads the
    current weights from it to apply each event, and then calls `update` with the time since the
    previous event and the event itself. A delayed arrival (`delay`) applies the weights current at
    its arrival and calls `update` as a pure decay."""

    @abc.abstractmethod
    def weights(self, state: PyTree[Array]) -> tuple[Float[Array, "n_in n_rec"], Float[Array, "n_rec n_rec"]]:
        """The current input and recurrent weights (`W_in`, `W_rec` with its diagonal masked)."""

    @abc.abstractmethod
    def update(self, state: PyTree[Array], elapsed: Float[Array, ""], channel: Any, given: Any, neuron: Any,
               spike: Any) -> PyTree[Array]:
        """The state after `elapsed` ms without events followed by the event: an input spike of
        `channel` if `given`, a spike of `neuron` if `spike` (neither: the decay alone)."""


def weight_row(w: Shaped[Array, "n_pre n_post"], i: Any) -> Shaped[Array, " n_post"]:
    """Row `i` of `w`, read as a gather of its flat positions: the plastic event loop and the
    plasticity update read a row by this same expression, so XLA reads it once and the update's
    write can happen in place (a second, separately fused read of the carried weights would make
    XLA copy them at every event)."""
    n_post = w.shape[-1]
    return w.reshape(-1)[i * n_post + jnp.arange(n_post)]


class _Weights(eqx.Module):
    w_in: Float[Array, "n_in n_rec"]
    w_rec: Float[Array, "n_rec n_rec"]
    w_out: Float[Array, "n_rec n_out"]
    b_out: Float[Array, " n_out"]
    tau_out: Float[Array, ""]


def _pseudo(neuron, w_rec, ns, t1, drive, n_pseudo):
    """`n_pseudo` events of the pseudodynamics from the state `ns` at `t1`: the network
    continues without inputs, every neuron's constant current raised by `drive`."""
    boosted = eqx.tree_at(lambda m: m.bias, neuron, neuron.bias + drive)
    n_rec = w_rec.shape[0]
    inf = jnp.asarray(jnp.inf, t1.dtype)

    def body(carry, _):
        t, ns = carry
        to_spike = boosted.time_to_spike(ns, inf)
        j = jnp.argmin(to_spike)
        fires = jnp.isfinite(to_spike[j])
        dt = jnp.where(fires, to_spike[j], 0.0)
        flowed = boosted.free_flow(ns, dt)
        flowed = _where((jnp.arange(n_rec) == j) & fires, boosted.reset(flowed), flowed)
        ns = boosted.receive(flowed, jnp.where(fires, w_rec[j], 0.0))
        t = t + dt
        return (t, ns), (jnp.where(fires, t, inf), j.astype(jnp.int32))

    _, (times, ids) = jax.lax.scan(body, (t1, ns), None, length=n_pseudo)
    return times, ids


def _trial(neuron, w: _Weights, times, ids, ns, o0, t1, max_events, grid, drive=None, n_pseudo=0, delay=None,
           plastic=None, p0=()):
    """One trial: `times`/`ids` are sorted input spikes padded with one trailing `inf`; `o0`
    the readout at `t = 0` minus `b_out`; `grid` the readout sample times; `delay` the recurrent
    transmission delay (`None`: spikes act at once); `plastic` an `AbstractEventPlasticity` with
    initial state `p0` (`None`: the weights of `w`).

    The scan runs `max_events + 1` iterations; an event found by the last one means the budget
    was too small (`exhausted`) and is not applied."""
    n_rec, n_in = w.w_rec.shape[0], w.w_in.shape[0]
    dtype = o0.dtype
    inf = jnp.asarray(jnp.inf, dtype)

    def body(carry, n):
        t, ns, o, k, queue, p = carry
        w_in, w_rec = (w.w_in, w.w_rec) if plastic is None else plastic.weights(p)
        to_spike = neuron.time_to_spike(ns, t1 - t)
        j = jnp.argmin(to_spike)
        t_spike = t + to_spike[j]
        if delay is None:
            t_arrival = inf
        elif per_synapse:
            queue_t, queue_j, queue_p, tail = queue
            # each queued spike's next arrival: its sorted delays, from the first not yet delivered
            pending = queue_p < n_rec
            next_t = jnp.where(pending, queue_t + sorted_delay[queue_j, jnp.minimum(queue_p, n_rec - 1)], inf)
            head = jnp.argmin(next_t)
            t_arrival = next_t[head]
        else:
            queue_t, queue_j, head, tail = queue
            t_arrival = queue_t[head]
        # a neuron at threshold fires first, then a delayed arrival, then a simultaneous input spike
        spike = t_spike <= jnp.minimum(t_arrival, times[k])
        arrival = ~spike & (t_arrival <= times[k])
        t_next = jnp.where(spike, t_spike, jnp.where(arrival, t_arrival, times[k]))
        due = t_next <= t1
        active = due & (n < max_events)
        spike, arrival = spike & active, arrival & active
        given = active & ~spike & ~arrival
        dt = jnp.where(active, t_next - t, 0.0)
        flowed = neuron.free_flow(ns, dt)
        flowed = _where((jnp.arange(n_rec) == j) & spike, neuron.reset(flowed), flowed)
        channel = jnp.clip(ids[k], 0, n_in - 1)
        row = (lambda w, i: w[i]) if plastic is None else weight_row
        w_input = row(w_in, channel)
        if delay is None:
            weight = jnp.where(spike, row(w_rec, j), jnp.where(given, w_input, 0.0))
        elif per_synapse:
            # one synapse per arrival: the queued spike's next target in delay order
            source = queue_j[head]
            target = order[source, jnp.minimum(queue_p[head], n_rec - 1)]
            synapse = jnp.where(jnp.arange(n_rec) == target, w_rec[source, target], 0.0)
            weight = jnp.where(arrival, synapse, jnp.where(given, w_input, 0.0))
            queue_t = queue_t.at[tail].set(jnp.where(spike, t_next, inf))
            queue_j = queue_j.at[tail].set(jnp.where(spike, j, 0).astype(jnp.int32))
            queue_p = queue_p.at[head].add(arrival.astype(queue_p.dtype))
            queue = (queue_t, queue_j, queue_p, tail + spike.astype(tail.dtype))
        else:
            weight = jnp.where(arrival, w_rec[queue_j[head]], jnp.where(given, w_input, 0.0))
            # slot `tail` is still empty (inf, 0) unless this event is a spike: one entry written
            queue_t = queue_t.at[tail].set(jnp.where(spike, t_next + delay, inf))
            queue_j = queue_j.at[tail].set(jnp.where(spike, j, 0).astype(jnp.int32))
            queue = (queue_t, queue_j, head + arrival.astype(head.dtype), tail + spike.astype(tail.dtype))
        ns = _where(active, neuron.receive(flowed, weight), ns)
        o = jnp.where(active, o * jnp.exp(-dt / w.tau_out) + jnp.where(spike, w.w_out[j], 0.0), o)
        t = jnp.where(active, t_next, t)
        k = k + given.astype(k.dtype)
        if plastic is not None:  # after the event was applied with the weights before it
            p = plastic.update(p, dt, channel, given, j, spike)
        record = (jnp.where(spike, t, inf), j.astype(jnp.int32), jnp.where(active, t, inf), o, due & ~active)
        return (t, ns, o, k, queue, p), record

    zero = jnp.zeros((), dtype)
    count = jnp.zeros((), jnp.int32)
    # With a delay, the queue of pending arrivals: slot i holds the i-th spike's (arrival time,
    # neuron); `head` counts the arrivals applied, `tail` the spikes emitted (at most `max_events`).
    # With one delay per synapse, slot i holds the i-th spike's (emission time, neuron, number of
    # its synapses delivered), the synapses taken in the order of their delays.
    per_synapse = delay is not None and jnp.ndim(delay) == 2
    if per_synapse:
        order = jnp.argsort(jax.lax.stop_gradient(delay), axis=1)
        sorted_delay = jnp.take_along_axis(delay, order, axis=1)
        queue = (jnp.full(max_events + 1, jnp.inf, dtype), jnp.zeros(max_events + 1, jnp.int32),
                 jnp.zeros(max_events + 1, jnp.int32), count)
    else:
        queue = () if delay is None else (jnp.full(max_events + 1, jnp.inf, dtype),
                                          jnp.zeros(max_events + 1, jnp.int32), count, count)
    (t, ns, o, k, queue, p), (spike_t, spike_j, event_t, event_o, left) = jax.lax.scan(
        body, (zero, ns, o0, count, queue, p0), jnp.arange(max_events + 1))
    arrivals = count if delay is None else (jnp.sum(queue[2]) if per_synapse else queue[2])
    spike_t, spike_j, event_t, event_o = spike_t[:-1], spike_j[:-1], event_t[:-1], event_o[:-1]
    exhausted = left[-1]
    final = neuron.free_flow(ns, jnp.maximum(t1 - t, 0.0))
    if plastic is not None:
        p = plastic.update(p, jnp.maximum(t1 - t, 0.0), count, False, count, False)
    # The readout at each grid time decays from the last event at or before it (t = 0: o0).
    event_t = jnp.concatenate([zero[None], event_t])
    event_o = jnp.concatenate([o0[None], event_o])
    last = jnp.searchsorted(event_t, grid, side="right") - 1
    lag = grid - event_t[last]
    readout = event_o[last] * jnp.exp(-lag / w.tau_out)[:, None] + w.b_out
    # Spikes first, in time order (padding inf last).
    order = jnp.argsort(spike_t, stable=True)
    n_spikes = jnp.sum(jnp.isfinite(spike_t)).astype(k.dtype)
    info = {"exhausted": exhausted, "n_events": k + n_spikes + arrivals, "n_spikes": n_spikes,
            "t_reached": jnp.where(exhausted, t, t1)}
    if n_pseudo:
        info["pseudospike_times"], info["pseudospike_ids"] = _pseudo(neuron, w.w_rec, final, t1, drive, n_pseudo)
    return spike_t[order], spike_j[order], readout, final, info, p


@eqx.filter_jit
def _run(neuron, w, times, ids, ns, o0, t1, max_events, grid, drive=None, n_pseudo=0, delay=None, plastic=None,
         p0=()):
    trial = lambda tm, i, s, o, p: _trial(neuron, w, tm, i, s, o, t1, max_events, grid, drive, n_pseudo, delay,
                                          plastic, p)
    return jax.vmap(trial)(times, ids, ns, o0, p0)


def _readout_grid(t1, record_dt, dtype):
    """Readout sample times: `record_dt, 2 record_dt, ..., t1` (just `t1` without `record_dt`)."""
    if record_dt is None:
        return jnp.reshape(jnp.asarray(t1, dtype=dtype), (1,))
    check_positive("record_dt", record_dt, owner="simulate(method='event')")
    if not (is_concrete(record_dt) and is_concrete(t1)):
        raise ValueError("simulate(method='event'): record_dt needs concrete t1 and record_dt (the number of "
                         "readout samples is static); leave record_dt=None under jit to get the readout at t1")
    n = grid_count(t1, record_dt, names=("t1", "record_dt"), owner="simulate(method='event')")
    return jnp.asarray(np.arange(1, n + 1) * (float(t1) / n), dtype=dtype)


def simulate_event(net: RSNN | SpikingFeedForward, inputs: SpikeTrain, *, t1: Any, state: PyTree[Array] | None = None,
                   key: Any = None,
                   record: tuple[str, ...] = ("spikes", "v", "readout"), checks: bool = True,
                   max_events: int = 1024, record_dt: Any = None,
                   on_exhausted: Literal["raise", "flag"] = "raise", pseudo_drive: Any = None,
                   max_pseudospikes: int | None = None, delay: Any = None) -> Output:
    r"""Event-driven simulation of `net` driven by the input spikes `inputs` on `[0, t1]`.

    Called by `simulate(net, inputs, method="event", t1=..., ...)`; see the module docstring for
    the algorithm and its semantics.

    **Arguments:**

    - `net`: a `simjax.networks.RSNN` whose neuron implements `free_flow`, `receive` and
      `time_to_spike` (LIF, ALIF, QIF, SynapticLIF), with a leaky readout (`tau_out` not `None`).
    - `inputs`: a `simjax.SpikeTrain` with `n = net.n_in`; leading axes of `times`/`ids` are
      batch axes. Input spikes at times outside `[0, t1]` (and `inf` padding) are ignored.
    - `t1`: end time (ms).
    - `state`: initial `RSNNState` (default `net.init(key, batch)`: rest, readout 0).
    - `record`: `"spikes"` and `"readout"` are recorded when listed; `"v"` is not recorded
      (`Output.v` is `None`: potentials are only defined at events).
    - `checks`: reject NaN input spike times (when they are concrete).
    - `max_events`: the static budget of loop iterations (input spikes plus network spikes,
      plus their delayed arrivals with `delay`, within `[0, t1]`, per trial).
    - `record_dt`: sample the readout every `record_dt` ms up to `t1` (concrete values only).
    - `on_exhausted`: `"raise"` (default) errors if a trial needs more than `max_events`
      events (a `RuntimeError` when values are concrete, `eqx.error_if` under `jit`/`grad`);
      `"flag"` only reports it in `info["exhausted"]` (the result then stops at
      `info["t_reached"]`).
    - `pseudo_drive`: pseudodynamics (Klos & Memmesheimer, Phys. Rev. Lett. 2025): after `t1`
      the network continues from its state at `t1` without inputs, every neuron's constant
      current raised by `pseudo_drive` (large enough that every neuron fires: `bias +
      pseudo_drive > 0` for QIF), for `max_pseudospikes` more spikes (default `n_rec`), which
      keep interacting through `W_rec`. These *pseudospikes* (times `> t1`) extend the spike
      times continuously (QIF) and change nothing in `[0, t1]`; losses that use them let
      gradient descent add and remove spikes (`simjax.losses`).
      `simjax.networks.SpikingFeedForward` networks take `pseudo_drive` too
      (`simjax._simulate.event_layers`: there every neuron emits its first spike, real or pseudo).
    - `delay`: the recurrent transmission delay (ms, `>= 0`; default `None`: none), exact
      (see the module docstring): one value for every synapse, or a matrix `[n_rec, n_rec]`
      with one per synapse; not combined with `pseudo_drive`.

    **Returns:** an `Output` with
    - `spikes`: `simjax.SpikeTrain` of the network's spikes, `times [*batch, max_events]`
      in time order padded with `inf`, `ids` the neuron indices, `n = n_rec`;
    - `readout`: `[time, *batch, n_out]` at the times `record_dt, 2 record_dt, ..., t1`
      (only `t1` when `record_dt` is `None`; `info["readout_times"]` holds the times);
    - `final_state`: the `RSNNState` at `t1` (its `spikes` field is zero);
    - `info`: `exhausted` (bool), `n_events`, `n_spikes`, `t_reached` (`t1` unless
      exhausted), each `[*batch]`, and `readout_times`; with `pseudo_drive`,
      `pseudospikes`: a `simjax.SpikeTrain` (`times [*batch, max_pseudospikes]`, in time order).
    """
    owner = "simulate(method='event')"
    if isinstance(net, SpikingFeedForward):
        if state is not None or record_dt is not None:
            raise TypeError(f"{owner}: SpikingFeedForward starts from rest and records first spike times; "
                            "drop state and record_dt")
        if max_pseudospikes is not None:
            raise TypeError(f"{owner}: SpikingFeedForward gives every neuron one (pseudo)spike; drop max_pseudospikes")
        return simulate_layers(net, inputs, t1=t1, pseudo_drive=pseudo_drive, checks=checks, record=record)
    return run_events(net, inputs, t1=t1, state=state, key=key, record=record, checks=checks, max_events=max_events,
                      record_dt=record_dt, on_exhausted=on_exhausted, pseudo_drive=pseudo_drive,
                      max_pseudospikes=max_pseudospikes, delay=delay)[0]


def run_events(net: RSNN, inputs: SpikeTrain, *, t1: Any, state: PyTree[Array] | None = None, key: Any = None,
               record: tuple[str, ...] = ("spikes", "v", "readout"), checks: bool = True, max_events: int = 1024,
               record_dt: Any = None, on_exhausted: Literal["raise", "flag"] = "raise", pseudo_drive: Any = None,
               max_pseudospikes: int | None = None, delay: Any = None, plastic: AbstractEventPlasticity | None = None,
               plastic_state: PyTree[Array] = (), owner: str = "simulate(method='event')"
               ) -> tuple[Output, PyTree[Array]]:
    """`simulate_event` for an `RSNN`, optionally with synapses that change at events: `plastic`
    with initial state `plastic_state` (one for every trial).

    **Returns:** `(out, plastic_state)`: the `Output` and the plastic synapses' state at `t1`,
    `[*batch, ...]`.
    """
    if not isinstance(net, RSNN):
        raise TypeError(f"{owner}: supports simjax.networks.RSNN and SpikingFeedForward, got {type(net).__name__}")
    check_event_neuron(net.neuron, owner)
    if net.tau_out is None:
        raise ValueError(f"{owner}: needs a leaky readout (tau_out=None is a sum of Dirac deltas in continuous "
                         "time); build the RSNN with tau_out > 0")
    check_spike_inputs(inputs, net.n_in, t1, owner)
    check_int("max_events", max_events, owner=owner)
    check_choice("on_exhausted", on_exhausted, ("raise", "flag"), owner=owner)
    n_pseudo = 0
    if pseudo_drive is not None:
        n_pseudo = net.n_rec if max_pseudospikes is None else max_pseudospikes
        check_int("max_pseudospikes", n_pseudo, owner=owner)
        check_pseudo_drive(net.neuron, pseudo_drive, owner)
    elif max_pseudospikes is not None:
        raise TypeError(f"{owner}: max_pseudospikes needs pseudo_drive (the current added after t1)")
    if plastic is not None and pseudo_drive is not None:
        raise TypeError(f"{owner}: pseudo_drive does not combine with plastic weights; drop pseudo_drive")
    if delay is not None:
        if pseudo_drive is not None:
            raise TypeError(f"{owner}: delay and pseudo_drive do not combine (pseudodynamics assume instant "
                            "transmission); drop one")
        if np.ndim(delay) not in (0, 2) or (np.ndim(delay) == 2 and np.shape(delay) != (net.n_rec, net.n_rec)):
            raise ValueError(f"{owner}: delay has shape {np.shape(delay)}, expected one delay (a scalar) or one per "
                             f"recurrent synapse ({net.n_rec}, {net.n_rec})")
        if is_concrete(delay) and not np.all((np.asarray(delay) >= 0.0) & (np.asarray(delay) < np.inf)):
            raise ValueError(f"{owner}: delay={delay!r} is not allowed: expected transmission delays in ms, "
                             "finite numbers >= 0")
    record = tuple(record)
    for f in record:
        check_choice("record field", f, ("spikes", "v", "readout"), owner=owner)

    dtype = jnp.result_type(net.b_out)
    grid = _readout_grid(t1, record_dt, dtype)
    t1 = jnp.asarray(t1, dtype=dtype)
    # Sorted input spikes, times outside [0, t1] as padding, one trailing inf per trial.
    times, ids = sorted_inputs(inputs, t1, checks=checks, owner=owner)
    batch = times.shape[:-1]
    if state is None:
        state = net.init(key, batch)
    w = _Weights(w_in=net.w_in.dense(), w_rec=net.recurrent_weight(), w_out=net.w_out.dense(), b_out=net.b_out,
                 tau_out=net.tau_out)
    times = jnp.concatenate([times, jnp.full((*batch, 1), jnp.inf, dtype)], axis=-1)
    ids = jnp.concatenate([ids, jnp.zeros((*batch, 1), ids.dtype)], axis=-1)

    size = math.prod(batch)
    flat = lambda a: jnp.reshape(a, (size, *a.shape[len(batch):]))
    ns = jax.tree.map(flat, state.neuron)
    o0 = flat(jnp.broadcast_to(state.readout, (*batch, net.n_out))) - net.b_out

    drive = None if pseudo_drive is None else jnp.asarray(pseudo_drive, dtype)
    delay = None if delay is None else jnp.asarray(delay, dtype)
    p0 = jax.tree.map(lambda a: jnp.broadcast_to(a, (size, *jnp.shape(a))), plastic_state)
    spike_t, spike_j, readout, final, info, plastic_state = _run(
        net.neuron, w, flat(times), flat(ids), ns, o0, t1, int(max_events), grid, drive, int(n_pseudo), delay,
        plastic, p0)
    unflat = lambda a: jnp.reshape(a, (*batch, *a.shape[1:]))
    spike_t, spike_j, readout, final, info, plastic_state = jax.tree.map(
        unflat, (spike_t, spike_j, readout, final, info, plastic_state))
    readout = jnp.moveaxis(readout, len(batch), 0)

    if on_exhausted == "raise":
        message = (f"{owner}: the event budget max_events={max_events} ran out before t1; raise max_events "
                   "(it must cover the input spikes plus the network's spikes in [0, t1], and with a delay their "
                   "arrivals: one per spike, or n_rec per spike with a delay per synapse), or pass "
                   "on_exhausted='flag' to get the truncated result with info['exhausted']")
        exhausted = info["exhausted"]
        if is_concrete(exhausted):
            if np.any(np.asarray(exhausted)):
                reached = float(np.min(np.asarray(info["t_reached"])))
                raise RuntimeError(message.replace("ran out before t1",
                                                   f"ran out at t={reached:g} ms before t1={float(t1):g} ms"))
        else:
            spike_t, readout, final, plastic_state = eqx.error_if((spike_t, readout, final, plastic_state),
                                                                  jnp.any(exhausted), message)

    final_state = RSNNState(neuron=final, spikes=jnp.zeros((*batch, net.n_rec), dtype), readout=readout[-1])
    info["readout_times"] = grid
    if n_pseudo:
        info["pseudospikes"] = SpikeTrain(info.pop("pseudospike_times"), info.pop("pseudospike_ids"), n=net.n_rec)
    spikes = SpikeTrain(spike_t, spike_j, n=net.n_rec) if "spikes" in record else None
    return Output(spikes=spikes, v=None, readout=readout if "readout" in record else None,
                  final_state=final_state, info=info), plastic_state
