r"""Behavioural-timescale synaptic plasticity (BTSP) as a two-state kinetic scheme: the
weight-dependent model of Milstein et al. (2021, eLife 10:e73046, model "WD_D").

Every synapse `i -> j` has a normalised weight `u = (w - w_min) / (w_max - w_min)` in `[0, 1]`
(the fraction of its plasticity sites in the "active" state). Two slow signals drive it:

- the **eligibility trace** `ET_i(t)`: the presynaptic rate `r_i(t)` (peak 1) filtered by a
  causal exponential of unit sum, `tau_ET dET/dt = r - ET` (step `k`:
  `ET <- a ET + (1 - a) r_k`, `a = exp(-dt / tau_ET)`), divided by the normalisation constant
  `et_norm`;
- the **instructive signal** `IS_j(t)`: the dendritic plateau of the postsynaptic cell (the gate
  `p_j(t)`, 1 during a plateau and 0 otherwise) filtered the same way with `tau_IS`, divided by
  `is_norm`.

With `x = ET_i IS_j` (clipped to `[0, 1]`), the forward (potentiation) and reverse (depression)
rates are `k_pot q_pot(x)` and `k_dep q_dep(x)`, and

    du/dt = k_pot q_pot(x) (1 - u) - k_dep q_dep(x) u,

so weak synapses potentiate and strong ones depress: the change depends on the current weight and
on the timing of presynaptic activity relative to the plateau (seconds), not on postsynaptic
firing. `q` is a *scaled rectified sigmoid* on `[0, 1]`: with `s(x) = 1 / (1 + exp(-2 (x - theta)
/ width))`, `q(x) = (s(x) - s(0)) / (s(1) - s(0))`, so `q(0) = 0` and `q(1) = 1`.

Two ways to apply the change (`update`):

- `"continuous"`: the kinetic equation integrated at every step, exactly for rates held over the
  step: `u <- u_inf + (u - u_inf) exp(-(a + b) dt)` with `a = k_pot q_pot`, `b = k_dep q_dep`,
  `u_inf = a / (a + b)`.
- `"gated"` (the published model): the weights stay fixed while the integrals
  `P = int k_pot q_pot dt` and `D = int k_dep q_dep dt` accumulate, and at a step where the
  modulator is nonzero (the end of a lap) the change `u <- clip(u + (1 - u) P - u D, 0, 1)` is
  applied and the integrals restart from zero.

The published model normalises both signals by their maximum over the fitted data set; here the
normalisation constants `et_norm` and `is_norm` are explicit parameters
(`simjax.plasticity.place_field` can set them to the maxima of a run). Unlike the published code,
the filters are not truncated (the truncation at 0.1 % of the peak changes the sums by < 0.1 %).
Times are in ms and rates per ms.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._checks import as_float_array, check_choice, check_positive, is_concrete
from ._base import AbstractPlasticityRule, check_modulator, check_options, check_taus, decay

UPDATES = ("continuous", "gated")


class BTSPTraces(eqx.Module):
    """The state of `simjax.plasticity.BTSP`: the eligibility trace per presynaptic input (`[*batch,
    n_pre]`, before normalisation), the instructive signal per postsynaptic cell (`[*batch, n_post]`,
    before normalisation), and the integrals of the potentiation and depression rates per synapse
    since the last gated update (`[*batch, n_pre, n_post]`; zero in the `"continuous"` update)."""

    eligibility: Float[Array, "*batch n_pre"]
    instructive: Float[Array, "*batch n_post"]
    potentiation: Float[Array, "*batch n_pre n_post"]
    depression: Float[Array, "*batch n_pre n_post"]


def scaled_rectified_sigmoid(x: Float[ArrayLike, "*shape"], theta: Float[ArrayLike, ""],
                             width: Float[ArrayLike, ""]) -> Float[Array, "*shape"]:
    r"""The scaled rectified sigmoid of Milstein et al. (2021): a logistic with threshold `theta` and
    slope `2 / width`, evaluated at `x` clipped to `[0, 1]` and rescaled so that `q(0) = 0` and
    `q(1) = 1`.

    **Arguments:**

    - `x`: where to evaluate it.
    - `theta`: the threshold (in `[0, 1]`).
    - `width`: the half-width (`> 0`).

    **Returns:** `q(x)`, in `[0, 1]`.
    """
    x = jnp.clip(jnp.asarray(x), 0.0, 1.0)
    s = lambda v: jnp.reciprocal(1.0 + jnp.exp(-2.0 * (v - theta) / width))  # noqa: E731
    lo, hi = s(jnp.zeros_like(x)), s(jnp.ones_like(x))
    return (s(x) - lo) / (hi - lo)


class BTSP(AbstractPlasticityRule):
    r"""The two-state kinetic BTSP rule (module docstring), with the population fit of Milstein et
    al. (2021, model WD_D) as defaults.

    In `__call__`, `pre` is the presynaptic rate (peak 1) and `post` the plateau gate of the
    postsynaptic cells (1 during a plateau); `modulator` is needed only by the `"gated"` update,
    where a nonzero value (a scalar, or one per postsynaptic cell) applies the accumulated change.

    **Arguments:**

    - `tau_et`: time constant of the eligibility trace (ms, `> 0`; fit: 1664 ms).
    - `tau_is`: time constant of the instructive signal (ms, `> 0`; fit: 437 ms).
    - `k_pot`, `k_dep`: the potentiation and depression rates (per ms, `>= 0`; fit: 1.110 and
      0.425 per s).
    - `theta_pot`, `width_pot`: threshold (in `[0, 1]`) and half-width (`> 0`) of `q_pot` (fit:
      0.415, 0.454).
    - `theta_dep`, `width_dep`: the same for `q_dep` (fit: 0.0262, 0.0998).
    - `et_norm`, `is_norm`: the normalisation constants of the two signals (`> 0`; the signals are
      divided by them).
    - `w_min`, `w_max`: the weight bounds (`w_min < w_max`, both finite; default `[0, 4.68]`:
      a silent input at weight 1 can gain the fitted peak change of 3.68).
    - `update`: `"continuous"` or `"gated"` (module docstring).
    """

    tau_et: Float[Array, ""]
    tau_is: Float[Array, ""]
    k_pot: Float[Array, ""]
    k_dep: Float[Array, ""]
    theta_pot: Float[Array, ""]
    width_pot: Float[Array, ""]
    theta_dep: Float[Array, ""]
    width_dep: Float[Array, ""]
    et_norm: Float[Array, ""]
    is_norm: Float[Array, ""]
    w_min: Float[Array, ""]
    w_max: Float[Array, ""]
    update: str = eqx.field(static=True)
    weight_dependence: str = eqx.field(static=True)
    pairing: str = eqx.field(static=True)
    sign: int = eqx.field(static=True)

    def __init__(self, tau_et=1664.0, tau_is=437.0, k_pot=1.110e-3, k_dep=0.425e-3, theta_pot=0.415,
                 width_pot=0.454, theta_dep=0.0262, width_dep=0.0998, *, et_norm=1.0, is_norm=1.0, w_min=0.0,
                 w_max=4.68, update: str = "continuous"):
        owner = "BTSP"
        check_taus(owner, tau_et=tau_et, tau_is=tau_is)
        check_choice("update", update, UPDATES, owner=owner)
        for name, k in (("k_pot", k_pot), ("k_dep", k_dep)):
            check_positive(name, k, allow_zero=True, owner=owner)
        for name, v in (("width_pot", width_pot), ("width_dep", width_dep), ("et_norm", et_norm),
                        ("is_norm", is_norm)):
            check_positive(name, v, owner=owner)
        for name, theta in (("theta_pot", theta_pot), ("theta_dep", theta_dep)):
            if is_concrete(theta) and not np.all((np.asarray(theta) >= 0) & (np.asarray(theta) <= 1)):
                raise ValueError(f"{owner}: {name} must lie in [0, 1] (the range of ET * IS), got {theta!r}")
        if is_concrete(w_max) and np.any(np.isinf(np.asarray(w_max))):
            raise ValueError(f"{owner}: w_max must be finite (the two-state scheme needs both bounds), got {w_max!r}")
        self.tau_et, self.tau_is = as_float_array(tau_et), as_float_array(tau_is)
        self.k_pot, self.k_dep = as_float_array(k_pot), as_float_array(k_dep)
        self.theta_pot, self.width_pot = as_float_array(theta_pot), as_float_array(width_pot)
        self.theta_dep, self.width_dep = as_float_array(theta_dep), as_float_array(width_dep)
        self.et_norm, self.is_norm = as_float_array(et_norm), as_float_array(is_norm)
        self.update = update
        (self.w_min, self.w_max, self.weight_dependence, self.pairing,
         self.sign) = check_options(owner, w_min=w_min, w_max=w_max, weight_dependence="soft", pairing="all",
                                    sign=1)

    @property
    def needs_modulator(self) -> bool:
        return self.update == "gated"

    def init(self, weights):
        return BTSPTraces(eligibility=jnp.zeros(weights.shape[:-1], weights.dtype),
                          instructive=jnp.zeros(weights.shape[:-2] + weights.shape[-1:], weights.dtype),
                          potentiation=jnp.zeros(weights.shape, weights.dtype),
                          depression=jnp.zeros(weights.shape, weights.dtype))

    def signals(self, pre: Float[Array, "*batch n_pre"], post: Float[Array, "*batch n_post"], traces: BTSPTraces,
                dt: Any) -> tuple[Float[Array, "*batch n_pre"], Float[Array, "*batch n_post"]]:
        """The eligibility trace and instructive signal after one step with rate `pre` and plateau
        gate `post` (not normalised)."""
        a, b = decay(self.tau_et, dt), decay(self.tau_is, dt)
        return a * traces.eligibility + (1.0 - a) * pre, b * traces.instructive + (1.0 - b) * post

    def rates(self, eligibility: Float[Array, "*batch n_pre"], instructive: Float[Array, "*batch n_post"]
              ) -> tuple[Float[Array, "*batch n_pre n_post"], Float[Array, "*batch n_pre n_post"]]:
        """The potentiation and depression rates `k_pot q_pot(x)`, `k_dep q_dep(x)` per synapse,
        `x = (ET / et_norm) (IS / is_norm)`."""
        x = (eligibility / self.et_norm)[..., :, None] * (instructive / self.is_norm)[..., None, :]
        return (self.k_pot * scaled_rectified_sigmoid(x, self.theta_pot, self.width_pot),
                self.k_dep * scaled_rectified_sigmoid(x, self.theta_dep, self.width_dep))

    def __call__(self, pre, post, traces: BTSPTraces, weights, modulator=None, dt: Any = 1.0):
        et, is_ = self.signals(pre, post, traces, dt)
        a, b = self.rates(et, is_)
        lo, hi = self.w_min.astype(weights.dtype), self.w_max.astype(weights.dtype)
        u = (weights - lo) / (hi - lo)
        if self.update == "continuous":
            total = a + b
            safe = jnp.where(total > 0, total, 1.0)
            u_inf = jnp.where(total > 0, a / safe, u)
            u = u_inf + (u - u_inf) * jnp.exp(-total * dt)
            zero = jnp.zeros_like(weights)
            return lo + (hi - lo) * jnp.clip(u, 0.0, 1.0), BTSPTraces(et, is_, zero, zero)
        if modulator is None:
            raise ValueError("BTSP: update='gated' needs a modulator (nonzero at the steps where the accumulated "
                             "change is applied, e.g. the end of each lap), got None")
        check_modulator("BTSP", modulator, post.shape)
        pot, dep = traces.potentiation + dt * a, traces.depression + dt * b
        apply = (jnp.asarray(modulator) != 0)[..., None, :] if jnp.ndim(modulator) else jnp.asarray(modulator) != 0
        new = jnp.clip(u + (1.0 - u) * pot - u * dep, 0.0, 1.0)
        weights = jnp.where(apply, lo + (hi - lo) * new, weights)
        zero = jnp.zeros_like(pot)
        return weights, BTSPTraces(et, is_, jnp.where(apply, zero, pot), jnp.where(apply, zero, dep))
