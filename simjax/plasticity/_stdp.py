r"""Spike-timing-dependent plasticity with traces: the pair rule and the triplet rule.

**Pair STDP** (Song, Miller & Abbott 2000; van Rossum, Bi & Turrigiano 2000; trace form of
Morrison, Diesmann & Gerstner 2008). A presynaptic trace `x` (time constant `tau_plus`) and a
postsynaptic trace `y` (`tau_minus`) jump at their neuron's spikes; a postsynaptic spike
potentiates by `A+ x`, a presynaptic spike depresses by `A- y`. For one pair at
`Delta t = t_post - t_pre`:

    Delta w = A+ exp(-Delta t / tau_plus)     (Delta t > 0)
    Delta w = -A- exp(Delta t / tau_minus)    (Delta t < 0)

**Triplet STDP** (Pfister & Gerstner 2006, J. Neurosci. 26:9673). Two presynaptic traces
`r1` (`tau_plus`), `r2` (`tau_x`) and two postsynaptic traces `o1` (`tau_minus`),
`o2` (`tau_y`); at a presynaptic spike

    w <- w - o1 (A2- + A3- r2(t - eps)),

and at a postsynaptic spike

    w <- w + r1 (A2+ + A3+ o2(t - eps)),

the second factor read *before* the current spike's own increment. The defaults are the
visual-cortex, all-to-all, full-model row of the paper's Table 4, as NEST's
`stdp_triplet_synapse` example ships them: `tau_plus = 16.8`, `tau_minus = 33.7`,
`tau_x = 101`, `tau_y = 125` ms, `A2+ = 5e-10`, `A3+ = 6.2e-3`, `A2- = 7e-3`,
`A3- = 2.3e-4`.

Both rules follow the clock convention, pairing, weight dependence and bounds of
`AbstractPlasticityRule`.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._checks import as_float_array, check_positive
from ._base import AbstractSpikeTriggeredRule, check_options, check_taus, decay, outer, take


class PairTraces(eqx.Module):
    """`pre`: presynaptic traces `[*batch, n_pre]`; `post`: postsynaptic traces `[*batch, n_post]`."""

    pre: Float[Array, "*batch n_pre"]
    post: Float[Array, "*batch n_post"]


class PairSTDP(AbstractSpikeTriggeredRule):
    r"""Pair-based STDP with exponential windows (module docstring).

    **Arguments:**

    - `a_plus`, `a_minus`: potentiation and depression amplitudes (`>= 0`).
    - `tau_plus`, `tau_minus`: time constants of the pre- and postsynaptic traces (ms, `> 0`).
    - `weight_dependence`: `"additive"` (Song et al. 2000), `"multiplicative"` (van Rossum
      et al. 2000: depression proportional to the weight) or `"soft"` (soft bounds).
    - `pairing`: `"all"` (all-to-all) or `"nearest"` (nearest spike).
    - `w_min`, `w_max`: hard bounds on the weight magnitude (default `0`, `inf`).
    - `sign`: `+1` (excitatory weights) or `-1` (inhibitory weights stored negative).
    """

    a_plus: Float[Array, ""]
    a_minus: Float[Array, ""]
    tau_plus: Float[Array, ""]
    tau_minus: Float[Array, ""]
    w_min: Float[Array, ""]
    w_max: Float[Array, ""]
    weight_dependence: str = eqx.field(static=True)
    pairing: str = eqx.field(static=True)
    sign: int = eqx.field(static=True)

    def __init__(self, a_plus=0.01, a_minus=0.0105, tau_plus=20.0, tau_minus=20.0, *,
                 weight_dependence: str = "additive", pairing: str = "all", w_min=0.0, w_max=jnp.inf, sign: int = 1):
        owner = "PairSTDP"
        check_taus(owner, tau_plus=tau_plus, tau_minus=tau_minus)
        check_positive("a_plus", a_plus, allow_zero=True, owner=owner)
        check_positive("a_minus", a_minus, allow_zero=True, owner=owner)
        self.a_plus, self.a_minus = as_float_array(a_plus), as_float_array(a_minus)
        self.tau_plus, self.tau_minus = as_float_array(tau_plus), as_float_array(tau_minus)
        (self.w_min, self.w_max, self.weight_dependence, self.pairing,
         self.sign) = check_options(owner, w_min=w_min, w_max=w_max, weight_dependence=weight_dependence,
                                    pairing=pairing, sign=sign)

    def init(self, weights):
        return PairTraces(pre=jnp.zeros(weights.shape[:-1], weights.dtype),
                          post=jnp.zeros(weights.shape[:-2] + weights.shape[-1:], weights.dtype))

    def __call__(self, pre, post, traces: PairTraces, weights, modulator=None, dt: Any = 1.0):
        x = traces.pre * decay(self.tau_plus, dt)
        y = traces.post * decay(self.tau_minus, dt)
        weights = self.apply(weights, self.a_plus * outer(x, post), self.a_minus * outer(pre, y))
        return weights, PairTraces(pre=self.bump(x, pre), post=self.bump(y, post))

    def advance(self, pre, post, traces: PairTraces, dt: Any = 1.0):
        return PairTraces(pre=self.bump(traces.pre * decay(self.tau_plus, dt), pre),
                          post=self.bump(traces.post * decay(self.tau_minus, dt), post))

    def select(self, traces: PairTraces, pre_index=None, post_index=None):
        return PairTraces(pre=take(traces.pre, pre_index), post=take(traces.post, post_index))


class TripletTraces(eqx.Module):
    """Presynaptic `r1` (`tau_plus`), `r2` (`tau_x`); postsynaptic `o1` (`tau_minus`),
    `o2` (`tau_y`)."""

    r1: Float[Array, "*batch n_pre"]
    r2: Float[Array, "*batch n_pre"]
    o1: Float[Array, "*batch n_post"]
    o2: Float[Array, "*batch n_post"]


class TripletSTDP(AbstractSpikeTriggeredRule):
    r"""Triplet STDP of Pfister & Gerstner (2006) (module docstring; defaults: their Table 4,
    visual cortex, all-to-all, full model).

    **Arguments:**

    - `a2_plus`, `a3_plus`, `a2_minus`, `a3_minus`: pair and triplet amplitudes (`>= 0`).
    - `tau_plus`, `tau_x`: presynaptic trace time constants (ms, `> 0`).
    - `tau_minus`, `tau_y`: postsynaptic trace time constants (ms, `> 0`).
    - `weight_dependence`, `pairing`, `w_min`, `w_max`, `sign`: as for `PairSTDP`
      (`pairing="nearest"` is the paper's nearest-spike variant).
    """

    a2_plus: Float[Array, ""]
    a3_plus: Float[Array, ""]
    a2_minus: Float[Array, ""]
    a3_minus: Float[Array, ""]
    tau_plus: Float[Array, ""]
    tau_x: Float[Array, ""]
    tau_minus: Float[Array, ""]
    tau_y: Float[Array, ""]
    w_min: Float[Array, ""]
    w_max: Float[Array, ""]
    weight_dependence: str = eqx.field(static=True)
    pairing: str = eqx.field(static=True)
    sign: int = eqx.field(static=True)

    def __init__(self, a2_plus=5e-10, a3_plus=6.2e-3, a2_minus=7e-3, a3_minus=2.3e-4, tau_plus=16.8, tau_x=101.0,
                 tau_minus=33.7, tau_y=125.0, *, weight_dependence: str = "additive", pairing: str = "all",
                 w_min=0.0, w_max=jnp.inf, sign: int = 1):
        owner = "TripletSTDP"
        check_taus(owner, tau_plus=tau_plus, tau_x=tau_x, tau_minus=tau_minus, tau_y=tau_y)
        for name, a in (("a2_plus", a2_plus), ("a3_plus", a3_plus), ("a2_minus", a2_minus), ("a3_minus", a3_minus)):
            check_positive(name, a, allow_zero=True, owner=owner)
        self.a2_plus, self.a3_plus = as_float_array(a2_plus), as_float_array(a3_plus)
        self.a2_minus, self.a3_minus = as_float_array(a2_minus), as_float_array(a3_minus)
        self.tau_plus, self.tau_x = as_float_array(tau_plus), as_float_array(tau_x)
        self.tau_minus, self.tau_y = as_float_array(tau_minus), as_float_array(tau_y)
        (self.w_min, self.w_max, self.weight_dependence, self.pairing,
         self.sign) = check_options(owner, w_min=w_min, w_max=w_max, weight_dependence=weight_dependence,
                                    pairing=pairing, sign=sign)

    def init(self, weights):
        pre = jnp.zeros(weights.shape[:-1], weights.dtype)
        post = jnp.zeros(weights.shape[:-2] + weights.shape[-1:], weights.dtype)
        return TripletTraces(r1=pre, r2=pre, o1=post, o2=post)

    def __call__(self, pre, post, traces: TripletTraces, weights, modulator=None, dt: Any = 1.0):
        r1 = traces.r1 * decay(self.tau_plus, dt)
        r2 = traces.r2 * decay(self.tau_x, dt)
        o1 = traces.o1 * decay(self.tau_minus, dt)
        o2 = traces.o2 * decay(self.tau_y, dt)
        ltp = outer(r1, post * (self.a2_plus + self.a3_plus * o2))
        ltd = outer(pre * (self.a2_minus + self.a3_minus * r2), o1)
        weights = self.apply(weights, ltp, ltd)
        return weights, TripletTraces(r1=self.bump(r1, pre), r2=self.bump(r2, pre),
                                      o1=self.bump(o1, post), o2=self.bump(o2, post))

    def advance(self, pre, post, traces: TripletTraces, dt: Any = 1.0):
        return TripletTraces(r1=self.bump(traces.r1 * decay(self.tau_plus, dt), pre),
                             r2=self.bump(traces.r2 * decay(self.tau_x, dt), pre),
                             o1=self.bump(traces.o1 * decay(self.tau_minus, dt), post),
                             o2=self.bump(traces.o2 * decay(self.tau_y, dt), post))

    def select(self, traces: TripletTraces, pre_index=None, post_index=None):
        return TripletTraces(r1=take(traces.r1, pre_index), r2=take(traces.r2, pre_index),
                             o1=take(traces.o1, post_index), o2=take(traces.o2, post_index))
