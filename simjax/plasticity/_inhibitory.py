r"""Inhibitory spike-timing-dependent plasticity that sets a target postsynaptic rate (Vogels,
Sprekeler, Zenke, Clopath & Gerstner 2011, Science 334:1569).

One trace per neuron (time constant `tau`, +1 per spike); for the inhibitory synapse from
`j` to `i`, at a presynaptic spike and at a postsynaptic spike

    w_ij <- w_ij + eta (x_i - alpha),        w_ij <- w_ij + eta x_j,

with the depression factor `alpha = 2 rho0 tau` (`rho0` the target rate). For independent
Poisson spiking the mean drift is `eta rho_j (2 rho_i tau - alpha)`: inhibition grows while the
postsynaptic rate is above `rho0` and shrinks while it is below, so the rate settles at `rho0`.
`w` is the magnitude of the inhibitory weight (`sign=-1` for weights stored negative, as in a
Dale-signed `simjax.networks.EINetwork`), with the hard bounds of `AbstractPlasticityRule`.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._checks import as_float_array, check_positive
from ._base import AbstractSpikeTriggeredRule, check_options, check_taus, decay, outer, take
from ._stdp import PairTraces


class InhibitorySTDP(AbstractSpikeTriggeredRule):
    r"""Vogels et al. (2011) inhibitory plasticity (module docstring).

    **Arguments:**

    - `eta`: learning rate (`>= 0`; weight units per pair).
    - `rho0`: target postsynaptic rate (Hz, `>= 0`).
    - `tau`: time constant of both traces (ms, `> 0`; the paper: 20 ms).
    - `weight_dependence`, `pairing`, `w_min`, `w_max`: as for `PairSTDP`.
    - `sign`: `-1` (default) for inhibitory weights stored negative, `+1` for magnitudes.
    """

    eta: Float[Array, ""]
    rho0: Float[Array, ""]
    tau: Float[Array, ""]
    w_min: Float[Array, ""]
    w_max: Float[Array, ""]
    weight_dependence: str = eqx.field(static=True)
    pairing: str = eqx.field(static=True)
    sign: int = eqx.field(static=True)

    def __init__(self, eta=1e-3, rho0=3.0, tau=20.0, *, weight_dependence: str = "additive", pairing: str = "all",
                 w_min=0.0, w_max=jnp.inf, sign: int = -1):
        owner = "InhibitorySTDP"
        check_taus(owner, tau=tau)
        check_positive("eta", eta, allow_zero=True, owner=owner)
        check_positive("rho0", rho0, allow_zero=True, owner=owner)
        self.eta, self.rho0, self.tau = as_float_array(eta), as_float_array(rho0), as_float_array(tau)
        (self.w_min, self.w_max, self.weight_dependence, self.pairing,
         self.sign) = check_options(owner, w_min=w_min, w_max=w_max, weight_dependence=weight_dependence,
                                    pairing=pairing, sign=sign)

    @property
    def alpha(self) -> Float[Array, ""]:
        """The depression factor `2 rho0 tau` (`rho0` in Hz, `tau` in ms)."""
        return 2.0 * self.rho0 * self.tau / 1000.0

    def init(self, weights):
        return PairTraces(pre=jnp.zeros(weights.shape[:-1], weights.dtype),
                          post=jnp.zeros(weights.shape[:-2] + weights.shape[-1:], weights.dtype))

    def __call__(self, pre, post, traces: PairTraces, weights, modulator=None, dt: Any = 1.0):
        a = decay(self.tau, dt)
        x, y = traces.pre * a, traces.post * a
        ltp = self.eta * (outer(pre, y) + outer(x, post))
        ltd = self.eta * self.alpha * outer(pre, jnp.ones_like(post))
        weights = self.apply(weights, ltp, ltd)
        return weights, PairTraces(pre=self.bump(x, pre), post=self.bump(y, post))

    def advance(self, pre, post, traces: PairTraces, dt: Any = 1.0):
        a = decay(self.tau, dt)
        return PairTraces(pre=self.bump(traces.pre * a, pre), post=self.bump(traces.post * a, post))

    def select(self, traces: PairTraces, pre_index=None, post_index=None):
        return PairTraces(pre=take(traces.pre, pre_index), post=take(traces.post, post_index))
