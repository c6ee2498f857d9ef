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
from ..synapses._event import EventProjection
from ._base import AbstractPlasticityRule, AbstractSpikeTriggeredRule, modulator_fits
from ._event import simulate_event
from ._propagation_update import propagate_and_update
from ._spike_driven import _event_update, _spike_driven_update, incoming_slots


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
      chunks of the spikes that occurred and updates the weights in place (for a `Dense` matrix
      the update of a step's spikes is applied at the start of the next step, which gives the
      same weights; for an `EventProjection` inside the loop that delivers the spikes,
      `simjax.plasticity._propagation_update`);
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

    def spike_driven(spikes, traces, weights):
        w = _spike_driven_update(max_spikes, rule, spikes, traces, weights, mask, dt)
        return w, rule.advance(spikes, spikes, traces, dt)

    def body_spike_driven(carry: PlasticState, x):
        # the update of the previous step's spikes opens this step, so that XLA updates the carried
        # weights in place (an update after `transition`, whose propagation loop reads them, costs a
        # copy of every weight per step); the last step's update follows the scan
        w, traces = spike_driven(carry.network.spikes, carry.traces, carry.weights)
        proj = eqx.tree_at(lambda p: p.weight, net.recurrent, w)
        ei, record = net.transition(carry.network, x[0], dt, proj)
        return PlasticState(network=ei, weights=w, traces=traces), record

    def body_in_propagation(carry: PlasticState, x):
        # an EventProjection: the update of this step's spikes runs inside the loop that delivers them
        proj = eqx.tree_at(lambda p: p.weight, net.recurrent, carry.weights)

        def deliver(spikes, released, buffer, ranks):
            first = jax.tree.map(lambda a: a[0], ranks)  # one trial
            return propagate_and_update(max_spikes, rule, proj, incoming, spikes, released, first, buffer,
                                        carry.traces, mask, dt)

        ei, record, w = net.transition_with(carry.network, x[0], dt, deliver)
        traces = rule.advance(ei.spikes, ei.spikes, carry.traces, dt)
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

    if max_spikes is not None and event:
        final, recs = _scan(body_in_propagation, state, xs, steps, memory, segment)
    elif max_spikes is not None:
        final, recs = _scan(body_spike_driven, state, xs, steps, memory, segment)
        w, traces = spike_driven(final.network.spikes, final.traces, final.weights)
        final = PlasticState(network=final.network, weights=w, traces=traces)
    else:
        final, recs = _scan(body, state, xs, steps, memory, segment)
    net = eqx.tree_at(lambda m: m.recurrent.weight, net, final.weights)
    return net, Output(spikes=recs.spikes, v=recs.v, readout=recs.readout, final_state=final, info={})
