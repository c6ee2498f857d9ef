r"""Online plasticity inside the exact event-driven method (`simjax.plasticity.simulate(net, rule,
spike_train, method="event", t1=...)`).

A rule whose weights jump only at spikes and whose traces decay exponentially between them
(`AbstractSpikeTriggeredRule`: `PairSTDP`, `TripletSTDP`, `InhibitorySTDP`) can be applied
exactly at the events of `simjax.simulate(..., method="event")`: between two events every trace
decays in closed form, `x(t') = x(t) exp(-(t' - t) / tau)` (the rule's `advance` without
spikes), and at an event the rule's own step with `dt = 0` applies the jump. The plastic
weights and the traces are part of the event loop's carry, so a changed weight acts on every
later event, and the run stays differentiable: spike times, final weights and traces in the
initial weights, the neuron parameters and the rule's parameters (`A+`, `A-`, `tau+`, `tau-`, ...),
exactly (as long as the order of events does not change).

**One event** at time `t` (after the loop has applied it with the weights before it):

1. every trace decays over the time since the previous event;
2. a spike of neuron `j` depresses the recurrent synapses from `j` (row `j` of `W_rec`, from
   the postsynaptic traces) and potentiates the synapses onto `j` (column `j` of `W_rec` and of
   `W_in`, from the presynaptic traces); an input spike of channel `c` depresses the input
   synapses from `c` (row `c` of `W_in`);
3. the traces of the spiking neuron (or channel) jump (`+1`, or to `1` with `pairing="nearest"`).

Only the row and the column of the spiking neuron are computed (`O(n)` per event, as the event
loop itself), each with the whole rule from the weights before the event (the rule's weight
dependence, bounds and `sign`), so a synapse whose both ends fire at once (a self-connection)
gets the same value from both.

**Conventions** (those of the clock-driven `simjax.plasticity.simulate`, whose limit `dt -> 0`
this is): a spike is delivered with the weight before its own plasticity update (NEST delivers
the depressed weight); events at the same instant pair in the order the loop applies them, so an
input spike that makes a neuron fire at once pairs at `Delta t = 0+` (potentiation `A+`), as a
spike that makes another fire in the next step of the clock method pairs at `Delta t = dt`. With a
transmission `delay`, the rule sees spikes at their emission times and a delayed arrival is
applied with the weights current when it arrives, the presynaptic spike's own depression included
(so `delay=0` differs from no delay by that update).

Rules that change weights between spikes (`RewardModulatedSTDP`, whose weights follow a
continuous modulator; `SynapticScaling`; `BTSP`) have no such exact form and are refused;
use the clock method for them.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PyTree

from .._checks import check_shape, is_concrete
from .._simulate.event import AbstractEventPlasticity, run_events, weight_row
from .._simulate.output import Output
from .._spike_train import SpikeTrain
from ..networks._rsnn import RSNN, RSNNState
from ..synapses._dense import Dense
from ._base import AbstractPlasticityRule, AbstractSpikeTriggeredRule

OWNER = "plasticity.simulate(method='event')"


class EventPlasticState(eqx.Module):
    """The state of a plastic event-driven run: the network's state, the input and recurrent
    weights (`W_rec` with its diagonal masked), and the rule's traces of each projection at the
    end of the run (`traces_in` is `None` unless the input weights learn)."""

    network: RSNNState
    w_in: Float[Array, "n_in n_rec"]
    w_rec: Float[Array, "n_rec n_rec"]
    traces_in: PyTree[Array] | None
    traces_rec: PyTree[Array] | None


def spike_jump(rule: AbstractSpikeTriggeredRule, weights: Float[Array, "n_pre n_post"], traces: PyTree[Array],
               mask: Bool[Array, "n_pre n_post"], elapsed: Any, pre: Int[Array, ""], pre_fires: Any,
               post: Int[Array, ""], post_fires: Any) -> tuple[Float[Array, "n_pre n_post"], PyTree[Array]]:
    """One event on one projection: the traces decay over `elapsed`, then a spike of the
    presynaptic neuron `pre` (if `pre_fires`) updates row `pre` and a spike of the postsynaptic
    neuron `post` (if `post_fires`) updates column `post` (where `mask`), each with the rule's
    own step at `dt = 0`, and the spiking neurons' traces jump."""
    n_pre, n_post = weights.shape
    dtype = weights.dtype
    s_pre = ((jnp.arange(n_pre) == pre) & pre_fires).astype(dtype)
    s_post = ((jnp.arange(n_post) == post) & post_fires).astype(dtype)
    traces = rule.advance(jnp.zeros_like(s_pre), jnp.zeros_like(s_post), traces, elapsed)
    zero = jnp.zeros((), dtype)
    # the row and column read as gathers of the flat weights (the row by the event loop's own
    # expression) and written by one scatter of values computed from them: XLA then updates the
    # loop-carried weights in place instead of copying them at every event
    old_row = weight_row(weights, pre)
    col_slots = jnp.arange(n_pre) * n_post + post
    flat = weights.reshape(-1)
    old_col = flat[col_slots]
    row = rule(s_pre[pre][None], s_post, rule.select(traces, pre_index=pre[None]), old_row[None, :], None, zero)[0]
    col = rule(s_pre, s_post[post][None], rule.select(traces, post_index=post[None]), old_col[:, None], None, zero)[0]
    # a synapse both ends of which fire (a self-connection) gets the same value from the row and the column
    size = n_pre * n_post
    row_slots = jnp.where(pre_fires & weight_row(mask, pre), pre * n_post + jnp.arange(n_post), size)
    col_slots = jnp.where(post_fires & mask.reshape(-1)[col_slots], col_slots, size)
    flat = flat.at[jnp.concatenate([row_slots, col_slots])].set(jnp.concatenate([row[0], col[:, 0]]), mode="drop")
    weights = flat.reshape(n_pre, n_post)
    return weights, rule.advance(s_pre, s_post, traces, zero)


class _SpikeTriggered(AbstractEventPlasticity):
    """A spike-triggered rule on the recurrent and/or input weights of an `RSNN` (module docstring);
    its state is `(w_in, w_rec, traces_in, traces_rec)`."""

    rule: AbstractSpikeTriggeredRule
    mask_in: Bool[Array, "n_in n_rec"] | None
    mask_rec: Bool[Array, "n_rec n_rec"] | None

    def weights(self, state):
        return state[0], state[1]

    def update(self, state, elapsed, channel, given, neuron, spike):
        w_in, w_rec, tr_in, tr_rec = state
        neuron, channel = jnp.asarray(neuron), jnp.asarray(channel)
        if self.mask_rec is not None:
            w_rec, tr_rec = spike_jump(self.rule, w_rec, tr_rec, self.mask_rec, elapsed, neuron, spike, neuron, spike)
        if self.mask_in is not None:
            w_in, tr_in = spike_jump(self.rule, w_in, tr_in, self.mask_in, elapsed, channel, given, neuron, spike)
        return w_in, w_rec, tr_in, tr_rec


def _plastic_mask(name: str, mask: Any, weights: Float[Array, "n_pre n_post"], rule: AbstractPlasticityRule
                  ) -> Bool[Array, "n_pre n_post"]:
    check_shape(name, mask, weights.shape, owner=OWNER)
    mask = jnp.asarray(mask, bool)
    if is_concrete(weights) and is_concrete(mask):
        bad = np.asarray(mask) & (rule.sign * np.asarray(weights) < 0)
        if np.any(bad):
            i, j = np.argwhere(bad)[0]
            kind = "excitatory (w >= 0)" if rule.sign == 1 else "inhibitory (w <= 0)"
            raise ValueError(f"{OWNER}: {type(rule).__name__} with sign={rule.sign:+d} serves {kind} synapses, but "
                             f"the plastic synapse {int(i)} -> {int(j)} of {name.replace('mask', 'weights')} has "
                             f"weight {float(weights[i, j])!r}; restrict {name} to synapses of that sign")
    return mask


def simulate_event(net: RSNN, rule: AbstractPlasticityRule, inputs: SpikeTrain, *, t1: Any, key: Any = None,
                   state: RSNNState | None = None, mask: Any = None, input_mask: Any = None, max_events: int = 1024,
                   delay: Any = None, record_dt: Any = None, on_exhausted: str = "raise"
                   ) -> tuple[RSNN, Output]:
    """`simjax.plasticity.simulate` with `method="event"` (see there and the module docstring)."""
    if not isinstance(rule, AbstractSpikeTriggeredRule):
        raise TypeError(f"{OWNER}: {type(rule).__name__} changes weights between spikes (or needs a modulator), "
                        "which the event method cannot apply exactly; expected a rule whose weights jump only at "
                        "spikes and whose traces decay exponentially between them (AbstractSpikeTriggeredRule: "
                        "PairSTDP, TripletSTDP, InhibitorySTDP), or use method='clock'")
    if not isinstance(net, RSNN):
        raise TypeError(f"{OWNER}: net must be a simjax.networks.RSNN, got {type(net).__name__}")
    if not isinstance(inputs, SpikeTrain) or jnp.ndim(inputs.times) != 1:
        what = type(inputs).__name__ if not isinstance(inputs, SpikeTrain) else f"times {jnp.shape(inputs.times)}"
        raise ValueError(f"{OWNER}: inputs must be one trial, a simjax.SpikeTrain with 1-D times (jax.vmap for "
                         f"several), got {what}")
    w_rec = net.recurrent_weight()
    if mask is None:
        mask = w_rec != 0
    mask_rec = _plastic_mask("mask", mask, w_rec, rule)
    w_in = net.w_in.dense()
    mask_in = None if input_mask is None else _plastic_mask("input_mask", input_mask, w_in, rule)
    for name, proj, m in (("w_rec", net.w_rec, mask_rec), ("w_in", net.w_in, mask_in)):
        if m is not None and not isinstance(proj, Dense):
            raise TypeError(f"{OWNER}: plastic {name} must be a simjax.synapses.Dense projection, got "
                            f"{type(proj).__name__}")
    plastic = _SpikeTriggered(rule=rule, mask_in=mask_in, mask_rec=mask_rec)
    p0 = (w_in, w_rec, None if mask_in is None else rule.init(w_in), rule.init(w_rec))
    out, (w_in, w_rec, traces_in, traces_rec) = run_events(
        net, inputs, t1=t1, state=state, key=key, max_events=max_events, record_dt=record_dt,
        on_exhausted=on_exhausted, delay=delay, plastic=plastic, plastic_state=p0, owner=OWNER)
    final = EventPlasticState(network=out.final_state, w_in=w_in, w_rec=w_rec, traces_in=traces_in,
                              traces_rec=traces_rec)
    net = eqx.tree_at(lambda m: m.w_rec.weight, net, jnp.where(jnp.eye(net.n_rec, dtype=bool), net.w_rec.weight,
                                                                 w_rec))
    if mask_in is not None:
        net = eqx.tree_at(lambda m: m.w_in.weight, net, w_in)
    return net, Output(spikes=out.spikes, v=None, readout=out.readout, final_state=final, info=out.info)

