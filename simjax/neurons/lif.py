r"""Leaky integrate-and-fire neuron with delta or exponential synapses.

Continuous dynamics (time in ms, potentials in units of the threshold scale):

    tau_mem dv/dt = -(v - v_rest) + bias + i + I(t),      tau_syn di/dt = -i

A presynaptic spike of weight ``w`` makes ``v`` jump by ``w`` (delta synapses, ``tau_syn=None``)
or ``i`` jump by ``w`` (exponential synapses). When ``v`` reaches ``v_th`` the neuron spikes and
``v`` is reset by subtraction (``v -= v_th``) or to ``v_reset``; for ``t_ref`` afterwards ``v`` is
held and input to it is ignored.

`LIF.step` is the exact solution of these equations over ``dt`` for piecewise-constant input
(Rotter & Diesmann 1999), with synaptic input applied at the end of the step:

    v <- v_rest + a (v - v_rest) + (1 - a) bias + c i + drive,    a = exp(-dt/tau_mem)
    i <- a_s i (+ drive instead, for exponential synapses),      a_s = exp(-dt/tau_syn)
    c  = tau_syn / (tau_syn - tau_mem) (a_s - a)   (-> (dt/tau) a when tau_syn = tau_mem)

then spikes ``s = H(v - v_th)`` and resets. The reset uses ``stop_gradient(s)`` by default
(``detach_reset=True``), as in e-prop and most surrogate-gradient work.
"""

from __future__ import annotations

from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._checks import as_float_array, as_optional_float, check_choice, check_positive
from ..surrogates import AbstractSurrogate, FastSigmoid
from ._base import AbstractSpikingNeuron


class LIFState(eqx.Module):
    """``v``: membrane potential; ``i``: synaptic current (zero for delta synapses);
    ``refractory``: refractory time left (ms)."""

    v: Float[Array, "..."]
    i: Float[Array, "..."]
    refractory: Float[Array, "..."]


def synaptic_coupling(dt, tau_mem, tau_syn):
    r"""``c(dt) = tau_s / (tau_s - tau_m) (exp(-dt/tau_s) - exp(-dt/tau_m))``: the voltage at time
    ``dt`` caused by a unit synaptic current at time 0 (its limit ``(dt/tau) exp(-dt/tau)`` when the
    two time constants coincide, with gradients that stay finite)."""
    same = jnp.abs(tau_syn - tau_mem) < 1e-6 * tau_mem
    safe_diff = jnp.where(same, 1.0, tau_syn - tau_mem)
    general = tau_syn / safe_diff * (jnp.exp(-dt / tau_syn) - jnp.exp(-dt / tau_mem))
    limit = dt / tau_mem * jnp.exp(-dt / tau_mem)
    return jnp.where(same, limit, general)


class LIF(AbstractSpikingNeuron):
    """Leaky integrate-and-fire neuron (see the module docstring for the equations).

    **Arguments:**
    - ``tau_mem``: membrane time constant (ms, > 0).
    - ``v_th``: threshold. ``v_reset``: reset value for ``reset="zero"``. ``v_rest``: resting potential.
    - ``reset``: ``"subtract"`` (``v -= v_th``) or ``"zero"`` (``v = v_reset``).
    - ``tau_syn``: ``None`` for delta synapses, else the synaptic time constant (ms, > 0).
    - ``t_ref``: absolute refractory period (ms, >= 0).
    - ``bias``: constant input current (same units as ``v``).
    - ``surrogate``: pseudo-derivative used by `step` (default fast sigmoid, slope 25).
    - ``detach_reset``: stop gradients through the reset term.
    """

    tau_mem: Float[Array, "*pop"] = eqx.field(converter=as_float_array, default=20.0)
    v_th: Float[Array, "*pop"] = eqx.field(converter=as_float_array, default=1.0)
    v_reset: Float[Array, "*pop"] = eqx.field(converter=as_float_array, default=0.0)
    v_rest: Float[Array, "*pop"] = eqx.field(converter=as_float_array, default=0.0)
    tau_syn: Float[Array, "*pop"] | None = eqx.field(converter=as_optional_float, default=None)
    t_ref: Float[Array, "*pop"] = eqx.field(converter=as_float_array, default=0.0)
    bias: Float[Array, "*pop"] = eqx.field(converter=as_float_array, default=0.0)
    reset_mode: Literal["subtract", "zero"] = eqx.field(static=True, default="subtract")
    surrogate: AbstractSurrogate = eqx.field(default_factory=FastSigmoid)
    detach_reset: bool = eqx.field(static=True, default=True)

    def __init__(self, tau_mem=20.0, v_th=1.0, v_reset=0.0, reset="subtract", *, tau_syn=None,
                 t_ref=0.0, v_rest=0.0, bias=0.0, surrogate=None, detach_reset=True):
        check_choice("reset", reset, ("subtract", "zero"), owner="LIF")
        self.tau_mem = as_float_array(tau_mem)
        self.v_th = as_float_array(v_th)
        self.v_reset = as_float_array(v_reset)
        self.v_rest = as_float_array(v_rest)
        self.tau_syn = as_optional_float(tau_syn)
        self.t_ref = as_float_array(t_ref)
        self.bias = as_float_array(bias)
        self.reset_mode = reset
        self.surrogate = FastSigmoid() if surrogate is None else surrogate
        self.detach_reset = detach_reset

    def __check_init__(self):
        check_positive("tau_mem", self.tau_mem, owner="LIF")
        check_positive("tau_syn", self.tau_syn, owner="LIF")
        check_positive("t_ref", self.t_ref, allow_zero=True, owner="LIF")

    @property
    def reset_kind(self) -> str:
        return self.reset_mode

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
        """The exact state after ``dt`` without synaptic input (refractory hold included)."""
        # Within the step, the neuron integrates only for the part of dt after its refractory hold.
        # (a where, not a clip: full derivative in dt when not refractory, also at dt = 0)
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
        refractory = jnp.maximum(state.refractory - dt, 0.0)
        return LIFState(v=v, i=i, refractory=refractory)

    def step(self, state, drive, dt):
        new = self.free_flow(state, dt)
        if self.tau_syn is None:
            # Input arriving while refractory is lost (the neuron is held).
            v = new.v + jnp.where(new.refractory > 0, 0.0, drive)
            new = LIFState(v=v, i=new.i, refractory=new.refractory)
        else:
            new = LIFState(v=new.v, i=new.i + drive, refractory=new.refractory)
        spikes = self.surrogate(self.threshold(new))
        s = jax.lax.stop_gradient(spikes) if self.detach_reset else spikes
        after = self.reset(new)
        v = new.v + s * (after.v - new.v) if self.reset_mode == "subtract" else new.v * (1 - s) + s * after.v
        refractory = jnp.where(jax.lax.stop_gradient(spikes) > 0, after.refractory, new.refractory)
        return LIFState(v=v, i=new.i, refractory=refractory), spikes

    def output(self, state):
        return state.v
