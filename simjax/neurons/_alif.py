r"""Adaptive leaky integrate-and-fire neuron: LIF with a spike-triggered, decaying threshold.

The adaptive LIF of long short-term memory spiking networks and e-prop (Bellec et al., NeurIPS
2018; Nature Communications 11:3625, 2020). The membrane is `simjax.neurons.LIF`'s; on top,

    A = v_th + beta a,        tau_adapt da/dt = -a,        a -> a + 1 at each spike,

and the neuron spikes when `v` crosses the adaptive threshold `A` (`ALIF.threshold` is
`v - A`). `ALIF.step` follows LIF's order: exact free flow over `dt` (`a` decays by
`rho = exp(-dt / tau_adapt)`), add the drive, `z = H(v - A)`, reset, refractory hold. With the
stored adaptation `a^t` including the jump of the spike of step `t`,

    a^{t+1} = rho a^t + z^{t+1},      z^{t+1} = H(v^{t+1} - v_th - beta rho a^t),

that is, e-prop's `a^{t+1} = rho a^t + z^t` with the jump timed at the spike (the exact solution
of the continuous dynamics, which the event-driven methods share): the threshold seen one step
after a spike is `v_th + beta rho (...)` instead of `v_th + beta (...)`, so `ALIF(beta=b)`
gives e-prop's adaptation with `beta = rho b`.

**Reset.** `reset="subtract"` (default) subtracts the adaptive threshold crossed at the spike,
`v -= v_th + beta a` (`a` before its jump), as the LSNN reference implementation does: the
overshoot above threshold is kept, exactly as LIF's `v -= v_th`, so adaptation acts on the
whole next inter-spike climb. `reset="subtract_base"` subtracts `v_th` only, as the ALIF
cells of the e-prop reference code do (`v^{t+1} = alpha v^t + ... - z^t v_th`);
`reset="zero"` sets `v = v_reset`. `detach_reset` stops gradients through the voltage
reset only: the adaptation jump always carries the surrogate derivative (it is the path e-prop's
adaptation eligibility trace follows).
"""

from __future__ import annotations

from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._checks import as_float_array, check_choice, check_positive
from ..surrogates._surrogates import AbstractSurrogate, FastSigmoid
from ._base import AbstractEventNeuron
from ._lif import LIF, LIFState, may_be_refractory, membrane_parameters
from ._roots import first_crossing

_RESETS = ("subtract", "subtract_base", "zero")


class ALIFState(eqx.Module):
    """`v`: membrane potential; `i`: synaptic current (zero for delta synapses); `a`:
    adaptation (spike count decaying with `tau_adapt`); `refractory`: refractory time left."""

    v: Float[Array, "..."]
    i: Float[Array, "..."]
    a: Float[Array, "..."]
    refractory: Float[Array, "..."]


class ALIF(AbstractEventNeuron):
    """Adaptive-threshold LIF neuron (see the module docstring for the equations).

    **Arguments:**

    - `tau_mem`: membrane time constant (ms, > 0). `v_th`: baseline threshold.
    - `tau_adapt`: adaptation time constant (ms, > 0). `beta`: threshold increase per unit of
      adaptation (>= 0; `beta = 0` is LIF).
    - `reset`: `"subtract"` (`v -= v_th + beta a`), `"subtract_base"` (`v -= v_th`) or
      `"zero"` (`v = v_reset`).
    - `v_reset`, `t_ref`, `bias`, `tau_syn`, `v_rest`: as for `simjax.neurons.LIF`.
    - `surrogate`: pseudo-derivative applied to `v - A` (default fast sigmoid, slope 25;
      e-prop's is `Triangle(dampening=0.3, width=v_th)`).
    - `detach_reset`: stop gradients through the voltage reset.
    """

    tau_mem: Float[Array, "*pop"]
    v_th: Float[Array, "*pop"]
    tau_adapt: Float[Array, "*pop"]
    beta: Float[Array, "*pop"]
    v_reset: Float[Array, "*pop"]
    v_rest: Float[Array, "*pop"]
    tau_syn: Float[Array, "*pop"] | None
    t_ref: Float[Array, "*pop"]
    bias: Float[Array, "*pop"]
    reset_mode: Literal["subtract", "subtract_base", "zero"] = eqx.field(static=True)
    surrogate: AbstractSurrogate
    detach_reset: bool = eqx.field(static=True)
    refractoriness: bool = eqx.field(static=True)

    def __init__(self, tau_mem=20.0, v_th=1.0, tau_adapt=200.0, beta=0.07, reset="subtract", *, v_reset=0.0,
                 t_ref=0.0, bias=0.0, tau_syn=None, v_rest=0.0, surrogate=None, detach_reset=True):
        check_choice("reset", reset, _RESETS, owner="ALIF")
        membrane = membrane_parameters("ALIF", tau_mem=tau_mem, v_th=v_th, v_reset=v_reset, v_rest=v_rest,
                                       tau_syn=tau_syn, t_ref=t_ref, bias=bias)
        for name, value in membrane.items():
            setattr(self, name, value)
        self.tau_adapt = as_float_array(tau_adapt)
        self.beta = as_float_array(beta)
        check_positive("tau_adapt", self.tau_adapt, owner="ALIF")
        check_positive("beta", self.beta, allow_zero=True, owner="ALIF")
        self.reset_mode = reset
        self.surrogate = FastSigmoid() if surrogate is None else surrogate
        self.detach_reset = detach_reset
        self.refractoriness = may_be_refractory(self.t_ref)

    def membrane(self) -> LIF:
        """The LIF membrane (`v`, `i`, refractory hold) without adaptation (the hold compiled in
        only if this neuron's `t_ref` may be nonzero, as decided when it was built)."""
        return LIF(self.tau_mem, self.v_th, self.v_reset, "zero" if self.reset_mode == "zero" else "subtract",
                   tau_syn=self.tau_syn, t_ref=self.t_ref if self.refractoriness else 0.0, v_rest=self.v_rest,
                   bias=self.bias, surrogate=self.surrogate, detach_reset=self.detach_reset)

    def adaptive_threshold(self, state: ALIFState) -> Float[Array, "..."]:
        """`A = v_th + beta a`."""
        return self.v_th + self.beta * state.a

    def init(self, key, shape):
        m = self.membrane().init(key, shape)
        return ALIFState(v=m.v, i=m.i, a=jnp.zeros_like(m.v), refractory=m.refractory)

    def vector_field(self, t, state, drive):
        d = self.membrane().vector_field(t, LIFState(v=state.v, i=state.i, refractory=state.refractory), drive)
        return ALIFState(v=d.v, i=d.i, a=-state.a / self.tau_adapt, refractory=d.refractory)

    def threshold(self, state):
        return state.v - self.adaptive_threshold(state)

    def reset(self, state):
        if self.reset_mode == "subtract":
            v = state.v - self.adaptive_threshold(state)
        elif self.reset_mode == "subtract_base":
            v = state.v - self.v_th
        else:
            v = jnp.broadcast_to(self.v_reset, state.v.shape).astype(state.v.dtype)
        refractory = jnp.broadcast_to(self.t_ref, state.v.shape).astype(state.v.dtype)
        return ALIFState(v=v, i=state.i, a=state.a + 1.0, refractory=refractory)

    def free_flow(self, state, dt):
        """The exact state after `dt` without synaptic input: LIF's free flow, `a` decays."""
        m = self.membrane().free_flow(LIFState(v=state.v, i=state.i, refractory=state.refractory), dt)
        return ALIFState(v=m.v, i=m.i, a=state.a * jnp.exp(-dt / self.tau_adapt), refractory=m.refractory)

    def receive(self, state, weight):
        """Delta synapses: `v += weight` unless refractory; exponential synapses: `i += weight`."""
        if self.tau_syn is None:
            held = jnp.where(state.refractory > 0, 0.0, weight) if self.refractoriness else weight
            return ALIFState(v=state.v + held, i=state.i, a=state.a, refractory=state.refractory)
        return ALIFState(v=state.v, i=state.i + weight, a=state.a, refractory=state.refractory)

    def time_to_spike(self, state, horizon):
        """Time until `v` first reaches the decaying threshold `A(t)` under `free_flow` (`inf`
        if not within `horizon`). No closed form: bracketed root finding on `v(t) - A(t)` with
        implicit-function-theorem gradients (`simjax.neurons._roots.first_crossing`)."""
        def distance(t, args):
            neuron, s = args
            return neuron.threshold(neuron.free_flow(s, t))

        return first_crossing(distance, (self, state), horizon)

    def step(self, state, drive, dt):
        new = self.receive(self.free_flow(state, dt), drive)
        spikes = self.surrogate(self.threshold(new))
        s = jax.lax.stop_gradient(spikes) if self.detach_reset else spikes
        after = self.reset(new)
        v = new.v + s * (after.v - new.v)
        refractory = (jnp.where(jax.lax.stop_gradient(spikes) > 0, after.refractory, new.refractory)
                      if self.refractoriness else new.refractory)
        return ALIFState(v=v, i=new.i, a=new.a + spikes, refractory=refractory), spikes

    def output(self, state):
        return state.v
