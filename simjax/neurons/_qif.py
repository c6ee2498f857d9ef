r"""Quadratic integrate-and-fire neuron in phase form (the theta neuron).

With time in units of the membrane time constant (Ermentrout & Kopell 1986; Klos & Memmesheimer,
Phys. Rev. Lett. 2025, "Smooth exact gradient descent learning in spiking neural networks"):

    tau_mem dtheta/dt = (1 - cos theta) + (1 + cos theta) I,      I = bias + I_syn(t)

which is the QIF neuron `tau_mem dV/dt = V^2 + I` in the coordinate `V = tan(theta / 2)`. The
neuron spikes when `theta` crosses `pi` (where `V` blows up); `theta` then continues from
`-pi` (the same point of the circle), so the jump map `QIF.reset` is `theta -> theta - 2 pi`.
`QIF.threshold` is `theta - pi` on the unwrapped phase: smooth, with an upward zero crossing at
each spike. States live in `[-pi, pi]` between spikes; `QIF.free_flow` returns the unwrapped phase
(it may exceed `pi` when the flow passes a spike).

A presynaptic spike of weight `w` is a kick `V -> V + w` (`QIF.receive`). Between kicks `I`
is constant and the flow has a closed form: writing `V = p / q` with
`(p, q) = (sin(theta/2), cos(theta/2))` the Riccati equation becomes linear,
`d(p, q)/ds = (I q, -p)` with `s = t / tau_mem`, solved by

    (p, q)(s) = (C p0 + S I q0,  C q0 - S p0),
    C = cos(sqrt(I) s), S = sin(sqrt(I) s) / sqrt(I)          (I > 0: the tan form)
    C = cosh(sqrt(-I) s), S = sinh(sqrt(-I) s) / sqrt(-I)     (I < 0: the tanh form)
    C = 1, S = s                                              (I = 0: V grows as 1 / (1/V0 - s))

`C` and `S / s` are entire functions of `I s^2`; they are evaluated by their Taylor series near
zero, so values and gradients stay finite through `I = 0`. The phase advances by twice the angle
between `(q0, p0)` and `(q, p)` (plus `2 pi` per full period for `I > 0`).

The first spike time from `theta0` (`V0 = tan(theta0/2)`, `r = 1 / V0`) is

    I > 0:  t* = tau atan2(sqrt(I) cos(theta0/2), sin(theta0/2)) / sqrt(I)
            (= tau pi / sqrt(I), the period, from theta0 = -pi)
    I = 0:  t* = tau r                          (V0 > 0, else no spike)
    I < 0:  t* = tau atanh(sqrt(-I) r) / sqrt(-I)  (V0 > sqrt(-I), else no spike)
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._checks import as_float_array, check_positive
from ..surrogates._surrogates import AbstractSurrogate, FastSigmoid
from ._base import AbstractEventNeuron

_SERIES_CUTOFF = 0.1  # |I s^2| (or |I r^2|) below which Taylor series replace the closed forms
_SERIES_TERMS = 8     # truncation error < 0.1^8 / 16! ~ 5e-22


class QIFState(eqx.Module):
    """`theta`: the phase, in `[-pi, pi]` between spikes (`V = tan(theta/2)`)."""

    theta: Float[Array, "..."]


def _series(y, coefficient):
    """`sum_k coefficient(k) (-y)^k` for `k < _SERIES_TERMS` (Horner's scheme)."""
    out = jnp.zeros_like(y) + coefficient(_SERIES_TERMS - 1)
    for k in range(_SERIES_TERMS - 2, -1, -1):
        out = coefficient(k) - y * out
    return out


def qif_propagator(current, s):
    r"""`(c, sg) = lambda (C(s), S(s))` for some `lambda > 0` (see the module docstring).

    `lambda = 1` except for `I s^2 <= -0.1`, where `lambda = 1 / cosh` keeps both bounded.
    """
    u = current * s**2
    small = jnp.abs(u) < _SERIES_CUTOFF
    u_small = jnp.where(small, u, 0.0)
    c_small = _series(u_small, lambda k: 1.0 / math.factorial(2 * k))
    sg_small = _series(u_small, lambda k: 1.0 / math.factorial(2 * k + 1))
    w = jnp.sqrt(jnp.where(u >= _SERIES_CUTOFF, u, 1.0))
    k = jnp.sqrt(jnp.where(u <= -_SERIES_CUTOFF, -u, 1.0))
    c = jnp.where(small, c_small, jnp.where(u > 0, jnp.cos(w), 1.0))
    sg = jnp.where(small, sg_small, jnp.where(u > 0, jnp.sin(w) / w, jnp.tanh(k) / k))
    return c, s * sg


def _atan_ratio(y):
    r"""`atan(sqrt(y)) / sqrt(y)` for `y > 0`, `atanh(sqrt(-y)) / sqrt(-y)` for `-1 < y < 0`
    (one analytic function, `sum_k (-y)^k / (2k + 1)`), for `y` in the series range."""
    return _series(y, lambda k: 1.0 / (2 * k + 1))


class QIF(AbstractEventNeuron):
    r"""Quadratic integrate-and-fire (theta) neuron with kick synapses (see the module docstring).

    **Arguments:**

    - `tau_mem`: membrane time constant (> 0); `1.0` measures time in its units.
    - `bias`: constant input current `I` (dimensionless, as `V`). `I > 0`: tonic firing
      with period `pi tau_mem / sqrt(I)`; `I < 0`: excitable, rest at `V = -sqrt(-I)`.
    - `surrogate`: pseudo-derivative used by `step` on `theta - pi` (radians). Default
      `FastSigmoid(slope=4.0)`: the phase spans `2 pi` where LIF's potential spans about one
      threshold unit, so this matches LIF's default slope of 25 per threshold unit.
    - `detach_reset`: stop gradients through the `-2 pi` jump of `step`.

    **Clock-driven step.** Exact flow over `dt` (`free_flow`), then the drive as a kick
    (`V += drive`), then `spike = H(theta - pi)` with the surrogate, then
    `theta -= 2 pi spike`. A kick never moves `theta` across `pi` (`V` stays finite), so
    spikes come from the flow only. Near the spike `dtheta/dt = 2 / tau_mem` whatever `I`, so the
    surrogate's argument `theta - pi ~ 2 (t - t_spike) / tau_mem` is the signed time since the
    threshold crossing in units of `tau_mem / 2`. A step longer than the inter-spike interval
    keeps the extra `2 pi` turns and emits them on the following steps (one spike per step).
    """

    tau_mem: Float[Array, "*pop"]
    bias: Float[Array, "*pop"]
    surrogate: AbstractSurrogate
    detach_reset: bool = eqx.field(static=True)

    def __init__(self, tau_mem=1.0, bias=0.0, *, surrogate=None, detach_reset=True):
        self.tau_mem = as_float_array(tau_mem)
        self.bias = as_float_array(bias)
        self.surrogate = FastSigmoid(slope=4.0) if surrogate is None else surrogate
        self.detach_reset = detach_reset

    def __check_init__(self):
        check_positive("tau_mem", self.tau_mem, owner="QIF")

    def init(self, key, shape):
        """The stable fixed point `theta = -2 atan(sqrt(-I))` for `I <= 0` (`theta = 0` at
        `I = 0`); for `I > 0` (no rest state) `theta = -pi`, the state right after a spike,
        from which the first spike comes after one period `pi tau_mem / sqrt(I)`."""
        del key
        current = jnp.broadcast_to(self.bias, shape)
        negative = current < 0
        kappa = jnp.sqrt(jnp.where(negative, -current, 1.0))
        rest = jnp.where(negative, -2.0 * jnp.arctan(kappa), jnp.where(current == 0, 0.0, -jnp.pi))
        return QIFState(theta=rest.astype(jnp.result_type(self.tau_mem)))

    def vector_field(self, t, state, drive):
        del t
        cos = jnp.cos(state.theta)
        return QIFState(theta=((1.0 - cos) + (1.0 + cos) * (self.bias + drive)) / self.tau_mem)

    def threshold(self, state):
        return state.theta - jnp.pi

    def reset(self, state):
        return QIFState(theta=state.theta - 2.0 * jnp.pi)

    def output(self, state):
        return state.theta

    def free_flow(self, state, dt):
        """The unwrapped phase after `dt` under the constant current `bias` (closed form)."""
        current = self.bias
        s = dt / self.tau_mem
        theta = state.theta
        # Whole periods (I > 0) advance theta by exactly 2 pi each; the remainder advances it by
        # less than 2 pi, which the relative angle below resolves without branch ambiguity.
        positive = current > 0
        omega = jnp.sqrt(jnp.where(positive, current, 1.0))
        turns = jax.lax.stop_gradient(jnp.where(positive, jnp.floor(omega * s / jnp.pi), 0.0))
        s_rem = s - jnp.where(turns > 0, turns * jnp.pi / omega, 0.0)
        p, q = jnp.sin(theta / 2), jnp.cos(theta / 2)
        c, sg = qif_propagator(current, s_rem)
        half = jnp.arctan2(sg * (p**2 + current * q**2), c + sg * (current - 1.0) * p * q)
        # For I > 0 the half-angle advance lies in [0, pi]; rounding at pi must not flip its branch.
        half = jnp.where(positive & (half < -jnp.pi / 2), half + 2.0 * jnp.pi, half)
        return QIFState(theta=theta + 2.0 * jnp.pi * turns + 2.0 * half)

    def receive(self, state, weight):
        """The kick `V -> V + weight`: `theta/2` turns by `atan2(w q^2, 1 + w p q)` with
        `(p, q) = (sin(theta/2), cos(theta/2))` (smooth everywhere, including `theta = ±pi`)."""
        p, q = jnp.sin(state.theta / 2), jnp.cos(state.theta / 2)
        return QIFState(theta=state.theta + 2.0 * jnp.arctan2(weight * q**2, 1.0 + weight * p * q))

    def time_to_spike(self, state, horizon):
        """Closed-form time until `theta` reaches `pi` under `free_flow` (`inf` if never or
        after `horizon`); `0` when `theta >= pi`. Phases below `-pi` count as `-pi`.
        Differentiable (no NaN) in the state, `bias` and `tau_mem` across all three regimes."""
        theta, current = jnp.broadcast_arrays(state.theta, self.bias)
        crossed = theta >= jnp.pi
        theta = jnp.where(crossed, jnp.pi, jnp.where(theta < -jnp.pi, -jnp.pi, theta))
        # cos(theta/2) >= 0 on [-pi, pi]; the max removes rounding below zero at theta = -pi.
        p, q = jnp.sin(theta / 2), jnp.maximum(jnp.cos(theta / 2), 0.0)
        # V0 > 0: the time is r f(I r^2), r = 1/V0, f analytic (series near 0).
        above = p > math.sqrt(jnp.finfo(theta.dtype).tiny)
        r = q / jnp.where(above, p, 1.0)
        y = current * r**2
        near = above & (jnp.abs(y) <= _SERIES_CUTOFF)
        s_near = r * _atan_ratio(jnp.where(near, y, 0.0))
        # V0 > sqrt(-I) > 0 (tanh form): atanh(kappa r) / kappa, kappa r = sqrt(-y) < 1.
        tanh_form = above & (y < -_SERIES_CUTOFF)
        x = jnp.sqrt(jnp.where(tanh_form, -y, 0.25))
        reaches = x < 1.0 - 1e-12
        x = jnp.where(reaches, x, 0.5)
        s_tanh = r * jnp.arctanh(x) / x
        # I > 0 otherwise (tan form, any V0): atan2(omega q, p) / omega.
        omega = jnp.sqrt(jnp.where(current > 0, current, 1.0))
        s_tan = jnp.arctan2(omega * q, p) / omega
        tan_form = ~near & ~tanh_form & (current > 0)
        fires = near | (tanh_form & reaches) | tan_form
        t = self.tau_mem * jnp.where(near, s_near, jnp.where(tanh_form, s_tanh, s_tan))
        t = jnp.where(crossed, 0.0, t)
        return jnp.where(fires & (t <= horizon), t, jnp.inf)

    def step(self, state, drive, dt):
        new = self.receive(self.free_flow(state, dt), drive)
        spikes = self.surrogate(self.threshold(new))
        s = jax.lax.stop_gradient(spikes) if self.detach_reset else spikes
        return QIFState(theta=new.theta - 2.0 * jnp.pi * s), spikes
