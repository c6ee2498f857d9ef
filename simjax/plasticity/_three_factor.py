r"""Reward-modulated (three-factor) STDP: pair STDP writes into an eligibility trace, and a
neuromodulator turns the eligibility into a weight change.

Izhikevich (2007, Cereb. Cortex 17:2443), in the three-factor framework of Frémaux & Gerstner
(2016, Front. Neural Circuits 9:85):

    tau_e de/dt = -e + STDP(t),          dw/dt = eta M(t) e,

where `STDP(t)` is the pair rule's update (`simjax.plasticity.PairSTDP`: `A+ x` at
postsynaptic, `-A- y` at presynaptic spikes) and `M` the modulator (a reward, or a reward
prediction error `R - <R>`: the caller supplies it, a scalar or one value per postsynaptic
neuron). Clock-driven, per step: the traces and `e` decay exactly over `dt`, `e` takes the
step's STDP update, then `w <- w + dt eta M e` (split into its positive and negative parts for
the weight dependence and bounds of `AbstractPlasticityRule`). With `M = 0` the weights do not
change; without spikes `e` decays as `exp(-t / tau_e)`.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._checks import as_float_array, check_positive
from ._base import AbstractPlasticityRule, check_modulator, check_options, check_taus, decay, outer


class EligibilityTraces(eqx.Module):
    """Spike traces `pre` (`tau_plus`), `post` (`tau_minus`) and the eligibility `e` per synapse."""

    pre: Float[Array, "*batch n_pre"]
    post: Float[Array, "*batch n_post"]
    eligibility: Float[Array, "*batch n_pre n_post"]


class RewardModulatedSTDP(AbstractPlasticityRule):
    r"""Three-factor STDP with an eligibility trace (module docstring).

    **Arguments:**

    - `a_plus`, `a_minus`, `tau_plus`, `tau_minus`: the pair-STDP window that feeds the
      eligibility (as for `PairSTDP`).
    - `tau_e`: time constant of the eligibility trace (ms, `> 0`; Izhikevich 2007: 1000 ms).
    - `eta`: learning rate (per ms of modulator, `>= 0`).
    - `weight_dependence`, `pairing`, `w_min`, `w_max`, `sign`: as for `PairSTDP`.
    """

    a_plus: Float[Array, ""]
    a_minus: Float[Array, ""]
    tau_plus: Float[Array, ""]
    tau_minus: Float[Array, ""]
    tau_e: Float[Array, ""]
    eta: Float[Array, ""]
    w_min: Float[Array, ""]
    w_max: Float[Array, ""]
    weight_dependence: str = eqx.field(static=True)
    pairing: str = eqx.field(static=True)
    sign: int = eqx.field(static=True)

    def __init__(self, a_plus=1.0, a_minus=1.5, tau_plus=20.0, tau_minus=20.0, tau_e=1000.0, eta=1e-3, *,
                 weight_dependence: str = "additive", pairing: str = "all", w_min=0.0, w_max=jnp.inf,
                 sign: int = 1):
        owner = "RewardModulatedSTDP"
        check_taus(owner, tau_plus=tau_plus, tau_minus=tau_minus, tau_e=tau_e)
        for name, a in (("a_plus", a_plus), ("a_minus", a_minus), ("eta", eta)):
            check_positive(name, a, allow_zero=True, owner=owner)
        self.a_plus, self.a_minus = as_float_array(a_plus), as_float_array(a_minus)
        self.tau_plus, self.tau_minus = as_float_array(tau_plus), as_float_array(tau_minus)
        self.tau_e, self.eta = as_float_array(tau_e), as_float_array(eta)
        (self.w_min, self.w_max, self.weight_dependence, self.pairing,
         self.sign) = check_options(owner, w_min=w_min, w_max=w_max, weight_dependence=weight_dependence,
                                    pairing=pairing, sign=sign)

    @property
    def needs_modulator(self) -> bool:
        return True

    def init(self, weights):
        return EligibilityTraces(pre=jnp.zeros(weights.shape[:-1], weights.dtype),
                                 post=jnp.zeros(weights.shape[:-2] + weights.shape[-1:], weights.dtype),
                                 eligibility=jnp.zeros_like(weights))

    def __call__(self, pre, post, traces: EligibilityTraces, weights, modulator=None, dt: Any = 1.0):
        if modulator is None:
            raise ValueError("RewardModulatedSTDP: needs a modulator (the third factor: a scalar or one value per "
                             "postsynaptic neuron), got None")
        check_modulator("RewardModulatedSTDP", modulator, post.shape)
        x = traces.pre * decay(self.tau_plus, dt)
        y = traces.post * decay(self.tau_minus, dt)
        e = traces.eligibility * decay(self.tau_e, dt)
        e = e + self.a_plus * outer(x, post) - self.a_minus * outer(pre, y)
        change = dt * self.eta * jnp.asarray(modulator)[..., None, :] * e if jnp.ndim(modulator) else \
            dt * self.eta * modulator * e
        weights = self.apply(weights, jnp.maximum(change, 0.0), jnp.maximum(-change, 0.0))
        return weights, EligibilityTraces(pre=self.bump(x, pre), post=self.bump(y, post), eligibility=e)
