r"""Leaky integrate-and-fire neuron driven through explicit synapse models (current- or conductance-based).

Membrane equation (time in ms; potentials, currents and the bias in mV-like membrane units;
conductances in units of the leak conductance):

    tau_mem dv/dt = -(v - v_rest) + bias + sum_k I_k(v),      I_k(v) = i_k - g_k v

where receptor `k` (`simjax.synapses.AbstractSynapse`) contributes `i_k - g_k v`: a current
synapse `I_k = i_k`, a conductance synapse `I_k = g_k (E_k - v)`. Spike at `v > v_th`, then
`v = v_reset` held for `t_ref` (the receptors keep evolving during the hold, input included).

**Why a neuron that owns its receptors.** The receptors are the postsynaptic neuron's: their
state lives per neuron, they decay with their own time constants, and conductance terms couple
them to `v` inside the membrane equation, so the membrane update needs them; the weight maps
(projections) stay outside, in the network, and deliver one input per receptor. The same neuron
therefore serves the current-based (CUBA) and the conductance-based (COBA) E/I networks, and any
receptor model that implements the synapse interface plugs in without a new neuron class.

**Clock-driven step** (`SynapticLIF.step`, Brian2's default schedule when `drive` is the input
of the spikes emitted at the end of the previous step):

1. the receptors `receive` `drive` (spikes emitted at the end of the previous step arrive at
   that same instant: zero delay);
2. the membrane flows over `dt`: exactly (Rotter & Diesmann 1999) when every receptor is
   current-based, `v <- v_rest + a (v - v_rest) + (1 - a) bias + sum_k response_k` with
   `a = exp(-dt/tau_mem)` (`AbstractCurrentSynapse.membrane_response`); otherwise by the
   exponential-Euler scheme with the receptors' `(g, i)` frozen at the start of the step,
   `G = 1 + sum g_k`, `v_inf = (v_rest + bias + sum i_k) / G`,
   `v <- v_inf + (v - v_inf) exp(-G dt / tau_mem)` (Brian2's `exponential_euler`; first
   order in `dt`, exact for constant conductances);
3. the receptors decay exactly over `dt`;
4. threshold (surrogate Heaviside), reset, refractory hold.

Unlike `LIF`, `drive` arrives at the *start* of the step: that is the only ordering in which a
spike's conductance jump reaches the membrane at the spike time itself (Brian2 adds this step's
spikes to the conductances after the threshold, which is the same instant as the start of the
next step). While refractory, `v` is held for the first `t_ref` of a step and integrates for
the rest, so holds that end on the grid hold whole steps, as in Brian2.

Reversal potentials bound the potential: with only conductance synapses and no bias, `v`
stays in the interval spanned by `v_rest`, `v_reset` and the reversal potentials (every
update is a convex combination of them), which `SynapticLIF` checks where the values are
concrete (`v_th` must be reachable: below the largest reversal potential or the resting drive).

**Event-driven form** (`simulate(..., method="event")`, `spike_times`): between events the
neuron follows its free flow `free_flow` (exact: a sum of exponentials for current receptors,
closed form; with exponential conductances the linear membrane equation with decaying
coefficients, `simjax.neurons._conductance_flow`, to float precision). A presynaptic spike's
weights go to the receptors by sign when there are two (`receive`: positive weights to the first
receptor, negative ones to the second, which a conductance opens by their magnitude), so a
Dale-signed recurrent matrix drives an excitatory and an inhibitory receptor. `time_to_spike`
samples the flow at times that grow geometrically after the refractory hold, then refines the
first crossing (implicit-function gradients). The clock-driven step's exponential Euler
converges to this flow as `dt -> 0` (first order; tested).
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PyTree

from .._checks import as_float_array, check_positive, is_concrete
from ..surrogates._surrogates import AbstractSurrogate, FastSigmoid
from ..synapses._conductance import ExponentialConductance
from ..synapses._synapse import AbstractConductanceSynapse, AbstractCurrentSynapse, AbstractSynapse
from ._base import AbstractEventNeuron
from ._conductance_flow import SETTLE, conductance_flow
from ._lif import may_be_refractory
from ._roots import first_crossing

# `time_to_spike` samples the flow at `hold + T (r^i - 1) / (r^K - 1)`, i = 1..K, with T the
# time after which the receptors have decayed (SETTLE times their longest time constant): the
# first sample 5.6e-4 T after the hold (0.22 ms with a 10 ms receptor), each gap 15 % longer.
_SAMPLES = 40
_GROWTH = 1.15
_FRACTIONS = (_GROWTH ** np.arange(1, _SAMPLES + 1) - 1.0) / (_GROWTH ** _SAMPLES - 1.0)


class SynapticLIFState(eqx.Module):
    """`v`: membrane potential; `refractory`: hold time left (ms); `synapses`: one state per
    receptor, in the order of `SynapticLIF.receptors`."""

    v: Float[Array, "*pop"]
    refractory: Float[Array, "*pop"]
    synapses: tuple[PyTree[Array], ...]


class SynapticLIF(AbstractEventNeuron):
    """LIF neuron with receptor models (see the module docstring for the equations and the step).

    **Arguments:**

    - `receptors`: one `simjax.synapses.AbstractSynapse` per input channel, e.g.
      `(ExponentialConductance(5.0, 0.0), ExponentialConductance(10.0, -80.0))` for COBA or
      `(ExponentialCurrent(5.0), ExponentialCurrent(10.0))` for CUBA.
    - `tau_mem`: membrane time constant (ms, > 0).
    - `v_rest`, `v_th`, `v_reset`: resting potential, threshold, reset value.
    - `t_ref`: refractory period (ms, >= 0).
    - `bias`: constant input (membrane units: the resting drive is `v_rest + bias`).
    - `surrogate`: pseudo-derivative of the spike (default fast sigmoid, slope 25).
    - `detach_reset`: stop gradients through the reset.

    `drive` in `step` is a tuple with one input per receptor (summed weights of the spikes
    arriving at the start of the step), or an array when there is exactly one receptor.
    """

    receptors: tuple[AbstractSynapse, ...]
    tau_mem: Float[Array, "*pop"]
    v_rest: Float[Array, "*pop"]
    v_th: Float[Array, "*pop"]
    v_reset: Float[Array, "*pop"]
    t_ref: Float[Array, "*pop"]
    bias: Float[Array, "*pop"]
    surrogate: AbstractSurrogate
    detach_reset: bool = eqx.field(static=True)
    refractoriness: bool = eqx.field(static=True)
    exact: bool = eqx.field(static=True)

    def __init__(self, receptors, tau_mem=20.0, v_rest=0.0, v_th=1.0, v_reset=0.0, *, t_ref=0.0, bias=0.0,
                 surrogate: AbstractSurrogate | None = None, detach_reset: bool = True):
        receptors = tuple(receptors) if isinstance(receptors, (tuple, list)) else (receptors,)
        if not receptors or not all(isinstance(r, AbstractSynapse) for r in receptors):
            raise TypeError("SynapticLIF: receptors must be one or more simjax.synapses synapse models (e.g. "
                            f"ExponentialConductance, ExponentialCurrent), got {receptors!r}")
        self.receptors = receptors
        self.tau_mem = as_float_array(tau_mem)
        self.v_rest = as_float_array(v_rest)
        self.v_th = as_float_array(v_th)
        self.v_reset = as_float_array(v_reset)
        self.t_ref = as_float_array(t_ref)
        self.bias = as_float_array(bias)
        check_positive("tau_mem", self.tau_mem, owner="SynapticLIF")
        check_positive("t_ref", self.t_ref, allow_zero=True, owner="SynapticLIF")
        self.surrogate = FastSigmoid() if surrogate is None else surrogate
        self.detach_reset = detach_reset
        self.refractoriness = may_be_refractory(self.t_ref)
        self.exact = all(isinstance(r, AbstractCurrentSynapse) for r in receptors)
        self._check_bounded()

    def _check_bounded(self):
        """Conductance receptors with reversal potentials that no threshold crossing can come
        from: `v` is a convex combination of `v_rest + bias`, `v_reset` and the reversal
        potentials (conductance-only receptors), so a threshold above all of them is never reached;
        and a non-finite reversal potential makes the membrane unbounded."""
        conductances = [r for r in self.receptors if isinstance(r, AbstractConductanceSynapse)]
        values = [r.e_rev for r in conductances] + [self.v_th, self.v_rest, self.bias]
        if not conductances or not all(is_concrete(x) for x in values):
            return
        e_max = max(float(np.max(np.asarray(r.e_rev))) for r in conductances)
        if len(conductances) == len(self.receptors):
            top = max(e_max, float(np.max(np.asarray(self.v_rest + self.bias))))
            if float(np.min(np.asarray(self.v_th))) >= top:
                raise ValueError(f"SynapticLIF: v_th={self.v_th!r} is at or above every reversal potential and the "
                                 f"resting drive (largest {top:g}): the reversal potentials bound v below the "
                                 "threshold, so the neuron can never spike; check e_rev and v_th (same units)")

    def init(self, key, shape):
        del key
        dtype = jnp.result_type(self.tau_mem)
        zeros = jnp.zeros(shape, dtype)
        return SynapticLIFState(v=zeros + self.v_rest, refractory=zeros,
                                synapses=tuple(r.init(shape, dtype) for r in self.receptors))

    def split_drive(self, drive) -> tuple[Float[Array, "*pop"], ...]:
        """`drive` as one input per receptor (a bare array only when there is one receptor)."""
        if isinstance(drive, (tuple, list)):
            if len(drive) != len(self.receptors):
                raise ValueError(f"SynapticLIF: drive has {len(drive)} inputs, expected one per receptor "
                                 f"({len(self.receptors)})")
            return tuple(drive)
        if len(self.receptors) != 1:
            raise ValueError(f"SynapticLIF: with {len(self.receptors)} receptors, drive must be a tuple of "
                             f"{len(self.receptors)} arrays (one per receptor), got a single array")
        return (drive,)

    def receive(self, state: SynapticLIFState, drive) -> SynapticLIFState:
        """The receptors after the input `drive` arrives (`v` unchanged): a tuple with one input
        per receptor, or the signed weights of one presynaptic spike (an array: all to a single
        receptor; with two receptors, `max(w, 0)` to the first and `min(w, 0)` to the second)."""
        if not isinstance(drive, (tuple, list)) and len(self.receptors) == 2:
            drive = (jnp.maximum(drive, 0.0), jnp.minimum(drive, 0.0))
        synapses = tuple(r.receive(s, d) for r, s, d in zip(self.receptors, state.synapses, self.split_drive(drive)))
        return SynapticLIFState(v=state.v, refractory=state.refractory, synapses=synapses)

    def check_event_form(self, owner: str) -> None:
        """Raises `TypeError` unless every conductance receptor is an `ExponentialConductance`
        without a Mg block (a voltage-dependent conductance makes the flow nonlinear in `v`) and
        there are at most two receptors (weights are routed by sign), each with its
        `time_constants`."""
        for r in self.receptors:
            try:
                r.time_constants()
            except NotImplementedError as err:
                raise TypeError(f"{owner}: {err}; use method='clock'") from None
            if isinstance(r, AbstractConductanceSynapse) and not (
                    isinstance(r, ExponentialConductance) and r.mg_block is None):
                raise TypeError(f"{owner}: SynapticLIF receptor {r!r} has no exact event-driven flow (only current "
                                "receptors and ExponentialConductance without mg_block); use method='clock'")
        if len(self.receptors) > 2:
            raise TypeError(f"{owner}: the event-driven SynapticLIF routes a spike's weights to at most two receptors "
                            f"(by sign), got {len(self.receptors)}; use method='clock'")

    def free_flow(self, state: SynapticLIFState, dt: Any) -> SynapticLIFState:
        """The exact state after `dt` without input: `v` held during the refractory hold, then the
        membrane equation integrated exactly (see the module docstring), receptors decayed."""
        t_free = self._free_time(state, dt)
        released = tuple(r.decay(s, dt - t_free) for r, s in zip(self.receptors, state.synapses))
        rest = self.v_rest + self.bias
        currents = [(r, s) for r, s in zip(self.receptors, released) if isinstance(r, AbstractCurrentSynapse)]
        conductances = [(r.tau, r.e_rev, s) for r, s in zip(self.receptors, released)
                        if isinstance(r, AbstractConductanceSynapse)]
        if conductances:
            v = conductance_flow(state.v, t_free, self.tau_mem, rest, currents, conductances)
        else:
            v = self._current_membrane(state.v, released, t_free)
        syn = tuple(r.decay(s, dt) for r, s in zip(self.receptors, state.synapses))
        refractory = jnp.maximum(state.refractory - dt, 0.0) if self.refractoriness else state.refractory
        return SynapticLIFState(v=v, refractory=refractory, synapses=syn)

    def _current_membrane(self, v, synapses, t):
        """`v` after `t` of free flow driven by current receptors only (exact, Rotter & Diesmann 1999)."""
        rest = self.v_rest + self.bias
        v = rest + jnp.exp(-t / self.tau_mem) * (v - rest)
        for r, s in zip(self.receptors, synapses):
            v = v + r.membrane_response(s, t, self.tau_mem)
        return v

    def _free_time(self, state, dt):
        """The part of `dt` after the refractory hold (a where, not a clip: full derivative in `dt`
        when not refractory)."""
        if not self.refractoriness:
            return jnp.zeros_like(state.v) + dt
        return jnp.where(state.refractory > 0, jnp.maximum(dt - state.refractory, 0.0), dt)

    def time_to_spike(self, state: SynapticLIFState, horizon: Any) -> Float[Array, "*pop"]:
        """Time until `v` first reaches `v_th` under `free_flow`; `0` if already there, `inf` if
        not within `horizon`.

        The flow is sampled after the hold `r` at `r + T f_i` (`T` = 40 times the longest receptor
        time constant, `f_i` growing geometrically from 5.6e-4 to 1, 40 samples). After `r + T`
        the receptors have decayed and `v` relaxes monotonically to `v_rest + bias`, so the search
        ends where that relaxation reaches `v_th` (or at `r + T` when it does not). The first
        bracket is refined to float precision (`first_crossing`, implicit-function gradients).
        A crossing and its return both between two samples (an excursion above threshold shorter
        than the gap, which is 0.22 ms after a 10 ms receptor's jump and grows 15 % per sample)
        is missed, as on a clock grid with that step.
        """
        sg = jax.lax.stop_gradient
        dtype = jnp.result_type(state.v)
        horizon = jnp.asarray(horizon, dtype)
        held = jnp.zeros_like(sg(state.v))
        if self.refractoriness:
            held = held + jnp.where(sg(state.refractory) > 0, sg(state.refractory), 0.0)
        longest = jnp.max(jnp.stack([sg(_longest_time_constant(r, dtype)) for r in self.receptors]))
        settle = SETTLE * jnp.maximum(longest, 1e-3 * sg(jnp.min(self.tau_mem)))
        frozen = sg(state)
        v_end = self.free_flow(frozen, held + settle).v
        rest, v_th = sg(self.v_rest + self.bias), sg(self.v_th)
        rises = (rest > v_th) & (v_end < v_th)
        ratio = jnp.where(rises, (rest - v_end) / jnp.where(rises, rest - v_th, 1.0), 1.0)
        tail = jnp.where(rises, sg(self.tau_mem) * jnp.log(jnp.maximum(ratio, 1.0)), 0.0)
        search = jnp.minimum(horizon, (held + settle + tail) * (1.0 + 1e-6) + 1e-9)
        fractions = jnp.asarray(_FRACTIONS, dtype).reshape((-1,) + (1,) * held.ndim)
        knots = held + settle * fractions

        def distance(t, args):
            neuron, s = args
            return neuron.threshold(neuron.free_flow(s, t))

        t = first_crossing(distance, (self, state), search, knots=jnp.concatenate([held[None], knots]), grid=2)
        return jnp.where(t <= horizon, t, jnp.inf)

    def flow(self, state: SynapticLIFState, dt: Any) -> SynapticLIFState:
        """The state after `dt` without new input: the membrane update of the module docstring
        (exact for current receptors, exponential Euler otherwise), receptors decayed exactly."""
        v, syn = state.v, state.synapses
        t_free = self._free_time(state, dt)
        if self.exact and not self.refractoriness:
            v = self._current_membrane(v, syn, dt)
        elif self.exact:
            # Where every hold ends on the grid (the usual t_ref, a whole number of steps), each
            # neuron either flows for all of dt or is held: the coefficients are the same for all
            # neurons, a few exponentials per step instead of several per neuron. A countdown
            # within sqrt(eps) dt of the grid counts as on it (the rounding of `refractory - dt`).
            tol = float(np.sqrt(np.finfo(jnp.result_type(v)).eps)) * dt
            r = state.refractory
            # computed outside the branch, so that a compiled loop of steps hoists the
            # coefficients (scalars when the parameters are) out of the loop
            on_grid = jnp.where(r > tol, v, self._current_membrane(v, syn, dt))

            def off_grid(_):
                # The currents decay during the hold; only what is left at its end reaches v.
                released = tuple(rc.decay(sc, dt - t_free) for rc, sc in zip(self.receptors, syn))
                return self._current_membrane(v, released, t_free)

            v = jax.lax.cond(jnp.any((r > tol) & (r < dt - tol)), off_grid, lambda _: on_grid, None)
        else:
            g_total, i_total = 1.0, self.v_rest + self.bias
            for r, s in zip(self.receptors, syn):
                g, i = r.linearised(s, v)
                g_total, i_total = g_total + g, i_total + i
            target = i_total / g_total
            v = target + (v - target) * jnp.exp(-g_total * t_free / self.tau_mem)
        syn = tuple(r.decay(s, dt) for r, s in zip(self.receptors, syn))
        refractory = jnp.maximum(state.refractory - dt, 0.0) if self.refractoriness else state.refractory
        return SynapticLIFState(v=v, refractory=refractory, synapses=syn)

    def threshold(self, state):
        return state.v - self.v_th

    def reset(self, state):
        shape = state.v.shape
        return SynapticLIFState(v=jnp.broadcast_to(self.v_reset, shape).astype(state.v.dtype),
                                refractory=jnp.broadcast_to(self.t_ref, shape).astype(state.v.dtype),
                                synapses=state.synapses)

    def step(self, state, drive, dt):
        new = self.flow(self.receive(state, self.split_drive(drive)), dt)  # (a bare array only for one receptor)
        spikes = self.surrogate(self.threshold(new))
        s = jax.lax.stop_gradient(spikes) if self.detach_reset else spikes
        v = new.v * (1 - s) + s * self.v_reset
        if self.refractoriness:
            t_ref = jnp.broadcast_to(self.t_ref, new.v.shape).astype(new.v.dtype)
            refractory = jnp.where(jax.lax.stop_gradient(spikes) > 0, t_ref, new.refractory)
        else:
            refractory = new.refractory
        return SynapticLIFState(v=v, refractory=refractory, synapses=new.synapses), spikes

    def vector_field(self, t, state, drive):
        """`d state / dt` with `drive` an extra continuous current (synaptic spikes enter as
        jumps through `receive`)."""
        active = state.refractory <= 0
        current = self.v_rest + self.bias + drive - state.v
        for r, s in zip(self.receptors, state.synapses):
            g, i = r.linearised(s, state.v)
            current = current + i - g * state.v
        dv = jnp.where(active, current / self.tau_mem, 0.0)
        synapses = tuple(r.vector_field(t, s) for r, s in zip(self.receptors, state.synapses))
        return SynapticLIFState(v=dv, refractory=jnp.where(active, 0.0, -1.0), synapses=synapses)

    def output(self, state):
        return state.v


def _longest_time_constant(receptor: AbstractSynapse, dtype) -> Float[Array, ""]:
    """The slowest decay of a receptor's state (`0` for a delta synapse)."""
    taus = receptor.time_constants()
    return jnp.max(jnp.stack([jnp.max(jnp.asarray(t, dtype)) for t in taus] + [jnp.zeros((), dtype)]))
