r"""Homeostatic synaptic scaling: every input weight of a neuron is scaled up when its rate is below
a target and down when it is above (Turrigiano et al. 1998, Nature 391:892; the multiplicative form
of van Rossum, Bi & Turrigiano 2000, J. Neurosci. 20:8812):

    dw_ij/dt = beta w_ij (rho0 - nu_i),        tau dA_i/dt = -A_i + tau sum_k delta(t - t_i^k),

with `nu_i = 1000 A_i / tau` the postsynaptic rate (Hz) estimated by a slow trace `A_i` (`tau`
in ms). Clock-driven, per step: `A` decays exactly over `dt`, the weights change by
`dt beta w (rho0 - nu)` (on their magnitude, with the bounds of `AbstractPlasticityRule`), then the
step's postsynaptic spikes enter `A`. Presynaptic spikes do not matter.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._checks import as_float_array, check_positive
from ._base import AbstractPlasticityRule, check_options, check_taus, decay


class RateTrace(eqx.Module):
    """`post`: the postsynaptic rate trace `A` (`[*batch, n_post]`; rate `1000 A / tau` Hz)."""

    post: Float[Array, "*batch n_post"]


class SynapticScaling(AbstractPlasticityRule):
    r"""Multiplicative synaptic scaling towards a target rate (module docstring).

    **Arguments:**

    - `beta`: scaling rate (per ms and Hz, `>= 0`).
    - `rho0`: target postsynaptic rate (Hz, `>= 0`).
    - `tau`: time constant of the rate estimate (ms, `> 0`).
    - `w_min`, `w_max`, `sign`: as for `PairSTDP` (`weight_dependence` and `pairing` are fixed:
      the scaling is multiplicative by construction and the rate trace adds every spike).
    """

    beta: Float[Array, ""]
    rho0: Float[Array, ""]
    tau: Float[Array, ""]
    w_min: Float[Array, ""]
    w_max: Float[Array, ""]
    weight_dependence: str = eqx.field(static=True)
    pairing: str = eqx.field(static=True)
    sign: int = eqx.field(static=True)

    def __init__(self, beta=1e-5, rho0=5.0, tau=1000.0, *, w_min=0.0, w_max=jnp.inf, sign: int = 1):
        owner = "SynapticScaling"
        check_taus(owner, tau=tau)
        check_positive("beta", beta, allow_zero=True, owner=owner)
        check_positive("rho0", rho0, allow_zero=True, owner=owner)
        self.beta, self.rho0, self.tau = as_float_array(beta), as_float_array(rho0), as_float_array(tau)
        (self.w_min, self.w_max, self.weight_dependence, self.pairing,
         self.sign) = check_options(owner, w_min=w_min, w_max=w_max, weight_dependence="additive", pairing="all",
                                    sign=sign)

    def rate(self, traces: RateTrace) -> Float[Array, "*batch n_post"]:
        """The estimated postsynaptic rate (Hz)."""
        return 1000.0 * traces.post / self.tau

    def init(self, weights):
        return RateTrace(post=jnp.zeros(weights.shape[:-2] + weights.shape[-1:], weights.dtype))

    def __call__(self, pre, post, traces: RateTrace, weights, modulator=None, dt: Any = 1.0):
        a = RateTrace(post=traces.post * decay(self.tau, dt))
        change = dt * self.beta * (self.sign * weights) * (self.rho0 - self.rate(a))[..., None, :]
        weights = self.apply(weights, jnp.maximum(change, 0.0), jnp.maximum(-change, 0.0))
        return weights, RateTrace(post=a.post + post)
