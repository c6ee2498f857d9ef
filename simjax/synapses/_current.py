r"""Current-based synapses: delta, exponential, alpha and dual-exponential postsynaptic currents.

Each kernel is the current `I(t)` one presynaptic spike of weight `w` at `t = 0` injects
(membrane units, the membrane obeying `tau_mem dv/dt = -(v - v_rest) + bias + I`):

- `DeltaCurrent`: `I(t) = w tau_mem delta(t)`: the potential jumps by `w`;
- `ExponentialCurrent`: `I(t) = w exp(-t/tau)`;
- `AlphaCurrent`: `I(t) = w (t/tau) exp(1 - t/tau)` (peak `w` at `t = tau`; Rall 1967);
- `DualExponentialCurrent`: `I(t) = w n (exp(-t/tau_decay) - exp(-t/tau_rise))` with `n` such
  that the peak is `w` (Sterratt et al. 2011, *Principles of Computational Modelling in
  Neuroscience*, ch. 7).

All are linear between spikes, so their free decay and the potential they cause in a leaky
membrane are closed forms (`membrane_response`); a membrane driven only by these synapses is
integrated exactly (Rotter & Diesmann 1999).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._checks import as_float_array, check_positive
from ._kernels import synaptic_coupling
from ._synapse import AbstractCurrentSynapse


class DeltaCurrent(AbstractCurrentSynapse):
    """Delta synapses: a spike of weight `w` makes the potential jump by `w` at its arrival.

    The state is the jump that has arrived and not yet been applied (`pending`); the membrane
    applies it at the start of its next interval, so it decays with the membrane from the spike's
    arrival on: `membrane_response` is `pending exp(-dt / tau_mem)`. `decay` clears it.

    **Arguments:** none.
    """

    def init(self, shape, dtype):
        return jnp.zeros(shape, dtype)

    def decay(self, state, dt):
        return jnp.zeros_like(state)

    def receive(self, state, weight):
        return state + weight

    def vector_field(self, t, state):
        return jnp.zeros_like(state)

    def current(self, state):
        # (an instantaneous jump carries no finite current; the jump enters via membrane_response)
        return jnp.zeros_like(state)

    def membrane_response(self, state, dt, tau_mem):
        return state * jnp.exp(-dt / tau_mem)

    def time_constants(self):
        return ()


class ExponentialCurrent(AbstractCurrentSynapse):
    """Exponentially decaying current, `tau di/dt = -i`; a spike adds its weight to `i`.

    **Arguments:**

    - `tau`: decay time constant (ms, > 0).
    """

    tau: Float[Array, "*pop"]

    def __init__(self, tau=5.0):
        self.tau = as_float_array(tau)
        check_positive("tau", self.tau, owner="ExponentialCurrent")

    def init(self, shape, dtype):
        return jnp.zeros(shape, dtype)

    def decay(self, state, dt):
        return state * jnp.exp(-dt / self.tau)

    def receive(self, state, weight):
        return state + weight

    def vector_field(self, t, state):
        return -state / self.tau

    def current(self, state):
        return state

    def membrane_response(self, state, dt, tau_mem):
        return synaptic_coupling(dt, tau_mem, self.tau) * state

    def time_constants(self):
        return (self.tau,)


class AlphaState(eqx.Module):
    """`h`: the rising input (jumps with each spike); `i`: the current."""

    h: Float[Array, "*pop"]
    i: Float[Array, "*pop"]


class AlphaCurrent(AbstractCurrentSynapse):
    r"""Alpha-function current, `I(t) = w (t/tau) exp(1 - t/tau)` per spike (peak `w` at `tau`).

    Two linear variables: `tau dh/dt = -h`, `tau di/dt = -i + e h`; a spike adds `w` to `h`.
    Free decay over `dt`: `h <- h exp(-dt/tau)`, `i <- (i + e h dt / tau) exp(-dt/tau)`.

    The potential the `h` part causes is `e h tau dc/dtau`, with `c(dt; tau_mem, tau)` the
    exponential kernel's response (`simjax.neurons._lif.synaptic_coupling`), since
    `(s/tau^2) exp(-s/tau) = d/dtau exp(-s/tau)`; the derivative is taken by forward-mode
    autodiff of that closed form (finite also when `tau = tau_mem`).

    **Arguments:**

    - `tau`: time to peak (ms, > 0).
    """

    tau: Float[Array, "*pop"]

    def __init__(self, tau=2.0):
        self.tau = as_float_array(tau)
        check_positive("tau", self.tau, owner="AlphaCurrent")

    def init(self, shape, dtype):
        zeros = jnp.zeros(shape, dtype)
        return AlphaState(h=zeros, i=zeros)

    def decay(self, state, dt):
        a = jnp.exp(-dt / self.tau)
        return AlphaState(h=state.h * a, i=(state.i + jnp.e * state.h * dt / self.tau) * a)

    def receive(self, state, weight):
        return AlphaState(h=state.h + weight, i=state.i)

    def vector_field(self, t, state):
        return AlphaState(h=-state.h / self.tau, i=(-state.i + jnp.e * state.h) / self.tau)

    def current(self, state):
        return state.i

    def membrane_response(self, state, dt, tau_mem):
        tau = jnp.broadcast_to(self.tau, jnp.shape(state.h)).astype(state.h.dtype)
        c, dc_dtau = jax.jvp(lambda s: synaptic_coupling(dt, tau_mem, s), (tau,), (jnp.ones_like(tau),))
        return c * state.i + jnp.e * tau * dc_dtau * state.h

    def time_constants(self):
        return (self.tau,)


class DualExponentialState(eqx.Module):
    """`decay` and `rise`: the two exponentials whose difference is the current."""

    decay: Float[Array, "*pop"]
    rise: Float[Array, "*pop"]


class DualExponentialCurrent(AbstractCurrentSynapse):
    r"""Difference of exponentials, `I(t) = w n (exp(-t/tau_decay) - exp(-t/tau_rise))`, peak `w`.

    `n = 1 / (exp(-t_p/tau_decay) - exp(-t_p/tau_rise))` at the peak time
    `t_p = tau_rise tau_decay / (tau_decay - tau_rise) ln(tau_decay / tau_rise)`. Both
    exponentials jump by `n w` per spike and decay with their own time constant.

    **Arguments:**

    - `tau_rise`, `tau_decay`: time constants (ms, `0 < tau_rise < tau_decay`; for equal time
      constants use `AlphaCurrent`).
    """

    tau_rise: Float[Array, "*pop"]
    tau_decay: Float[Array, "*pop"]

    def __init__(self, tau_rise=1.0, tau_decay=5.0):
        self.tau_rise = as_float_array(tau_rise)
        self.tau_decay = as_float_array(tau_decay)
        check_positive("tau_rise", self.tau_rise, owner="DualExponentialCurrent")
        check_positive("tau_decay", self.tau_decay, owner="DualExponentialCurrent")
        check_positive("tau_decay - tau_rise", self.tau_decay - self.tau_rise, owner="DualExponentialCurrent")

    def normalisation(self) -> Float[Array, "*pop"]:
        """`n`, the factor that makes the kernel's peak equal to the weight."""
        t_peak = (self.tau_rise * self.tau_decay / (self.tau_decay - self.tau_rise)
                  * jnp.log(self.tau_decay / self.tau_rise))
        return 1.0 / (jnp.exp(-t_peak / self.tau_decay) - jnp.exp(-t_peak / self.tau_rise))

    def init(self, shape, dtype):
        zeros = jnp.zeros(shape, dtype)
        return DualExponentialState(decay=zeros, rise=zeros)

    def decay(self, state, dt):
        return DualExponentialState(decay=state.decay * jnp.exp(-dt / self.tau_decay),
                                    rise=state.rise * jnp.exp(-dt / self.tau_rise))

    def receive(self, state, weight):
        jump = self.normalisation() * weight
        return DualExponentialState(decay=state.decay + jump, rise=state.rise + jump)

    def vector_field(self, t, state):
        return DualExponentialState(decay=-state.decay / self.tau_decay, rise=-state.rise / self.tau_rise)

    def current(self, state):
        return state.decay - state.rise

    def membrane_response(self, state, dt, tau_mem):
        return (synaptic_coupling(dt, tau_mem, self.tau_decay) * state.decay
                - synaptic_coupling(dt, tau_mem, self.tau_rise) * state.rise)

    def time_constants(self):
        return (self.tau_rise, self.tau_decay)
