r"""Leaky integrate-and-fire neuron with delta or exponential synapses.

Continuous dynamics (time in ms, potentials in units of the threshold scale):

    tau_mem dv/dt = -(v - v_rest) + bias + i + I(t),      tau_syn di/dt = -i

A presynaptic spike of weight `w` makes `v` jump by `w` (delta synapses, `tau_syn=None`)
or `i` jump by `w` (exponential synapses). When `v` reaches `v_th` the neuron spikes and
`v` is reset by subtraction (`v -= v_th`) or to `v_reset`; for `t_ref` afterwards `v` is
held and input to it is ignored.

`LIF.step` is the exact solution of these equations over `dt` for piecewise-constant input
(Rotter & Diesmann 1999), with synaptic input applied at the end of the step:

    v <- v_rest + a (v - v_rest) + (1 - a) bias + c i + drive,    a = exp(-dt/tau_mem)
    i <- a_s i (+ drive instead, for exponential synapses),      a_s = exp(-dt/tau_syn)
    c  = tau_syn / (tau_syn - tau_mem) (a_s - a)   (-> (dt/tau) a when tau_syn = tau_mem)

then spikes `s = H(v - v_th)` and resets. The reset uses `stop_gradient(s)` by default
(`detach_reset=True`), as in e-prop and most surrogate-gradient work.
"""

from __future__ import annotations

from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._checks import as_float_array, as_optional_float, check_choice, check_positive, is_concrete
from ..surrogates._surrogates import AbstractSurrogate, FastSigmoid
from ..synapses._kernels import synaptic_coupling
from ._base import AbstractEventNeuron, AbstractSpikingNeuron
from ._roots import first_crossing


class LIFState(eqx.Module):
    """`v`: membrane potential; `i`: synaptic current (zero for delta synapses);
    `refractory`: refractory time left (ms)."""

    v: Float[Array, "..."]
    i: Float[Array, "..."]
    refractory: Float[Array, "..."]


def membrane_parameters(owner: str, *, tau_mem, v_th, v_reset, v_rest, tau_syn, t_ref, bias) -> dict:
    """The LIF membrane's parameters (shared by `LIF` and `ALIF`) as strongly typed arrays, checked:
    `tau_mem > 0`, `tau_syn > 0` (or `None`: delta synapses), `t_ref >= 0`."""
    values = dict(tau_mem=as_float_array(tau_mem), v_th=as_float_array(v_th), v_reset=as_float_array(v_reset),
                  v_rest=as_float_array(v_rest), tau_syn=as_optional_float(tau_syn), t_ref=as_float_array(t_ref),
                  bias=as_float_array(bias))
    check_positive("tau_mem", values["tau_mem"], owner=owner)
    check_positive("tau_syn", values["tau_syn"], owner=owner)
    check_positive("t_ref", values["t_ref"], allow_zero=True, owner=owner)
    return values


def may_be_refractory(t_ref) -> bool:
    """Whether refractory bookkeeping must be compiled in: `t_ref` is not known to be zero (a
    traced `t_ref` counts)."""
    return not (is_concrete(t_ref) and bool(np.all(np.asarray(t_ref) == 0)))


class LIF(AbstractEventNeuron):
    """Leaky integrate-and-fire neuron (see the module docstring for the equations).

    **Arguments:**

    - `tau_mem`: membrane time constant (ms, > 0).
    - `v_th`: threshold. `v_reset`: reset value for `reset="zero"`. `v_rest`: resting potential.
    - `reset`: `"subtract"` (`v -= v_th`) or `"zero"` (`v = v_reset`).
    - `tau_syn`: `None` for delta synapses, else the synaptic time constant (ms, > 0).
    - `t_ref`: absolute refractory period (ms, >= 0).
    - `bias`: constant input current (same units as `v`).
    - `surrogate`: pseudo-derivative used by `step` (default fast sigmoid, slope 25).
    - `detach_reset`: stop gradients through the reset term.
    """

    tau_mem: Float[Array, "*pop"]
    v_th: Float[Array, "*pop"]
    v_reset: Float[Array, "*pop"]
    v_rest: Float[Array, "*pop"]
    tau_syn: Float[Array, "*pop"] | None
    t_ref: Float[Array, "*pop"]
    bias: Float[Array, "*pop"]
    reset_mode: Literal["subtract", "zero"] = eqx.field(static=True)
    surrogate: AbstractSurrogate
    detach_reset: bool = eqx.field(static=True)
    refractoriness: bool = eqx.field(static=True)

    def __init__(self, tau_mem=20.0, v_th=1.0, v_reset=0.0, reset="subtract", *, tau_syn=None,
                 t_ref=0.0, v_rest=0.0, bias=0.0, surrogate=None, detach_reset=True):
        check_choice("reset", reset, ("subtract", "zero"), owner="LIF")
        membrane = membrane_parameters("LIF", tau_mem=tau_mem, v_th=v_th, v_reset=v_reset, v_rest=v_rest,
                                       tau_syn=tau_syn, t_ref=t_ref, bias=bias)
        for name, value in membrane.items():
            setattr(self, name, value)
        self.reset_mode = reset
        self.surrogate = FastSigmoid() if surrogate is None else surrogate
        self.detach_reset = detach_reset
        self.refractoriness = may_be_refractory(self.t_ref)

    def init(self, key, shape):
        del key
        zeros = jnp.zeros(shape, dtype=jnp.result_type(self.tau_mem))
        return LIFState(v=zeros + self.v_rest, i=zeros, refractory=zeros)

    def vector_field(self, t, state, drive):
        del t
        active = state.refractory <= 0
        dv = (-(state.v - self.v_rest) + self.bias + state.i + drive) / self.tau_mem
        di = jnp.zeros_like(state.i) if self.tau_syn is None else -state.i / self.tau_syn
        dref = jnp.where(active, 0.0, -1.0)
        return LIFState(v=jnp.where(active, dv, 0.0), i=di, refractory=dref)

    def threshold(self, state):
        return state.v - self.v_th

    def reset(self, state):
        v = state.v - self.v_th if self.reset_mode == "subtract" else jnp.broadcast_to(self.v_reset, state.v.shape)
        return LIFState(v=v, i=state.i, refractory=jnp.broadcast_to(self.t_ref, state.v.shape).astype(state.v.dtype))

    def free_flow(self, state, dt):
        """The exact state after `dt` without synaptic input (refractory hold included)."""
        # Within the step, the neuron integrates only for the part of dt after its refractory hold.
        # (a where, not a clip: full derivative in dt when not refractory, also at dt = 0)
        if not self.refractoriness:
            t_free = dt
        else:
            t_free = jnp.where(state.refractory > 0, jnp.maximum(dt - state.refractory, 0.0), dt)
        a = jnp.exp(-t_free / self.tau_mem)
        v = self.v_rest + a * (state.v - self.v_rest) + (1.0 - a) * self.bias
        if self.tau_syn is None:
            i = state.i
        else:
            # The current decays over the whole step; only its post-hold part reaches v.
            i_release = state.i * jnp.exp(-(dt - t_free) / self.tau_syn)
            v = v + synaptic_coupling(t_free, self.tau_mem, self.tau_syn) * i_release
            i = state.i * jnp.exp(-dt / self.tau_syn)
        refractory = jnp.maximum(state.refractory - dt, 0.0) if self.refractoriness else state.refractory
        return LIFState(v=v, i=i, refractory=refractory)

    def receive(self, state, weight):
        """A presynaptic spike of `weight`: `v += weight` unless refractory (delta synapses), or
        `i += weight` (exponential synapses)."""
        if self.tau_syn is None:
            v = state.v + (jnp.where(state.refractory > 0, 0.0, weight) if self.refractoriness else weight)
            return LIFState(v=v, i=state.i, refractory=state.refractory)
        return LIFState(v=state.v, i=state.i + weight, refractory=state.refractory)

    def time_to_spike(self, state, horizon):
        r"""Time until `v` first reaches `v_th` under `free_flow`; `0` if `v >= v_th` already,
        `inf` if not within `horizon`.

        After the refractory hold `r` (during which `v` is held), with `A = v_rest + bias`:

        - delta synapses: `t* = r + tau_mem ln((A - v) / (A - v_th))` if `A > v_th` (closed form;
          its derivatives are finite everywhere, NaN-free where no spike comes);
        - exponential synapses: `v(r + s) = A + B exp(-s/tau_mem) + C exp(-s/tau_syn)` has at most
          one extremum, at `s_e` (closed form). The hold end `r` and `r + s_e` split time into
          monotone pieces, and a finite bound (after which `v` stays above `v_th` if
          `A > v_th`, and below it otherwise) ends the search, so the first crossing is bracketed
          exactly, then refined to float precision (`simjax.neurons._roots.first_crossing`;
          gradients by the implicit function theorem, exact and finite).
        """
        horizon = jnp.asarray(horizon, dtype=jnp.result_type(state.v))
        if self.tau_syn is None:
            return self._time_to_spike_delta(state, horizon)
        return self._time_to_spike_exponential(state, horizon)

    def _time_to_spike_delta(self, state, horizon):
        held = jnp.where(state.refractory > 0, state.refractory, 0.0) if self.refractoriness else 0.0
        target = self.v_rest + self.bias
        crossed = state.v >= self.v_th
        fires = ~crossed & (target > self.v_th)
        # (safe operands: no NaN/inf in either branch, so gradients stay finite where no spike comes)
        ratio = jnp.where(fires, target - state.v, 1.0) / jnp.where(fires, target - self.v_th, 1.0)
        climb = self.tau_mem * jnp.log(ratio)
        t = jnp.where(crossed, 0.0, held + climb)
        return jnp.where((crossed | fires) & (t <= horizon), t, jnp.inf)

    def _time_to_spike_exponential(self, state, horizon):
        # Monotone pieces of v(t) (no gradient needed: they only bracket the crossing).
        sg = jax.lax.stop_gradient
        tau_m, tau_s, v_th = sg(self.tau_mem), sg(self.tau_syn), sg(self.v_th)
        held = jnp.where(sg(state.refractory) > 0, sg(state.refractory), 0.0) if self.refractoriness else 0.0
        held = jnp.zeros_like(sg(state.v)) + held
        target = sg(self.v_rest + self.bias)
        i_r = sg(state.i) * jnp.exp(-held / tau_s)  # synaptic current when the hold ends
        gap_v = sg(state.v) - target
        # v'(s) = 0  <=>  exp(s (tau_s - tau_m) / (tau_m tau_s)) = 1 + z,  z = (tau_s - tau_m) q / tau_m,
        # q = 1 - (v - A) / i: one root s_e = tau_s q log1p(z) / z at most (none if z <= -1 or s_e <= 0).
        has_i = i_r != 0
        q = 1.0 - gap_v / jnp.where(has_i, i_r, 1.0)
        z = (tau_s - tau_m) * q / tau_m
        small = jnp.abs(z) < 1e-6
        z_safe = jnp.where(small | (z <= -1.0), 0.5, z)
        ratio = jnp.where(small, 1.0 - z / 2.0 + z**2 / 3.0, jnp.log1p(z_safe) / z_safe)
        s_e = tau_s * q * ratio
        s_e = jnp.where(has_i & (z > -1.0) & (s_e > 0), s_e, 0.0)
        # |v(r + s) - A| <= M exp(-s / (2 tau_max)), M = |v - A| + |i| 2 tau_max / (e tau_m): if A > v_th,
        # v >= v_th + (A - v_th) / 2 after `settle`; if A <= v_th, v cannot rise to v_th after the extremum.
        tau_max = jnp.maximum(tau_m, tau_s)
        m = jnp.abs(gap_v) + jnp.abs(i_r) * 2.0 * tau_max / (jnp.e * tau_m)
        gap_th = target - v_th
        rises = gap_th > 0
        settle = 2.0 * tau_max * jnp.log(jnp.where(rises, 2.0 * m / jnp.where(rises, gap_th, 1.0), 1.0))
        bound = held + jnp.maximum(s_e, jnp.where(rises, jnp.maximum(settle, 0.0), 0.0))
        bound = bound * (1.0 + 1e-6) + 1e-12
        search = jnp.minimum(sg(horizon), bound)

        def distance(t, args):
            neuron, s = args
            return neuron.threshold(neuron.free_flow(s, t))

        knots = jnp.stack(jnp.broadcast_arrays(held, held + s_e))
        t = first_crossing(distance, (self, state), search, knots=knots, grid=2)
        return jnp.where(t <= horizon, t, jnp.inf)

    def step(self, state, drive, dt):
        new = self.free_flow(state, dt)
        if self.tau_syn is None:
            # Input arriving while refractory is lost (the neuron is held).
            v = new.v + (jnp.where(new.refractory > 0, 0.0, drive) if self.refractoriness else drive)
            new = LIFState(v=v, i=new.i, refractory=new.refractory)
        else:
            new = LIFState(v=new.v, i=new.i + drive, refractory=new.refractory)
        spikes = self.surrogate(self.threshold(new))
        s = jax.lax.stop_gradient(spikes) if self.detach_reset else spikes
        if self.reset_mode == "subtract":
            v = new.v - s * self.v_th
        else:
            v = new.v * (1 - s) + s * self.v_reset
        if self.refractoriness:
            t_ref = jnp.broadcast_to(self.t_ref, new.v.shape).astype(new.v.dtype)
            refractory = jnp.where(jax.lax.stop_gradient(spikes) > 0, t_ref, new.refractory)
        else:
            refractory = new.refractory
        return LIFState(v=v, i=new.i, refractory=refractory), spikes

    def output(self, state):
        return state.v


def half_synaptic_lif(neuron: AbstractSpikingNeuron) -> bool:
    """True for `LIF` with exponential synapses, `tau_syn = tau_mem / 2` and no refractoriness
    (concrete values), where the first threshold crossing has a closed form (Göltz et al. 2021)."""
    if not isinstance(neuron, LIF) or neuron.tau_syn is None or neuron.refractoriness:
        return False
    if not (is_concrete(neuron.tau_syn) and is_concrete(neuron.tau_mem)):
        return False
    return bool(np.allclose(2.0 * np.asarray(neuron.tau_syn), np.asarray(neuron.tau_mem), rtol=1e-12, atol=0.0))
