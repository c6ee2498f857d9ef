r"""Two-compartment (soma + apical dendrite) rate neuron with dendritic plateaus.

The neuron of the dendritic-target-propagation / BTSP networks (Galloni, Peddada, Chennawar &
Milstein 2025; EIANN). The soma integrates the basal (feed-forward) input; the dendrite sums the
top-down excitation and the dendrite-targeting inhibition, bounded to `[dend_min, dend_max]`
(`[-1, 1]`); a dendritic *plateau* is the dendritic state where it passes a threshold:

    tau ds/dt = -s + bias + basal
    d         = clip(apical, dend_min, dend_max)                 (instantaneous dendrite, default)
    tau_dend dd/dt = -d + clip(apical, dend_min, dend_max)       (leaky dendrite, if tau_dend given)
    plateau   = d if d > theta_plus;  d if d < theta_minus;  0 otherwise
    nudge     = plateau if plateau > 0 else 0                     (only positive plateaus reach the soma)
    r         = phi(s + nudge)                                    (phi = ReLU by default)

The nudge enters the activity, not the somatic integration (EIANN's `dend_to_soma`).

**Input.** `drive` is a `TwoCompartmentDrive(basal, apical)`; a plain array is basal input with no
apical input. `apical` is the signed net dendritic input (excitation minus inhibition).

`step` integrates the soma exactly for basal input held constant over the step,
`s <- a s + (1 - a)(bias + basal)`, `a = exp(-dt/tau)`, and sets (or relaxes, with `tau_dend`)
the dendrite to the clipped apical input of the step.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from .._checks import as_float_array, as_optional_float, check_positive, is_concrete
from ._base import AbstractRateNeuron
from ._rate import Activation, get_activation


class TwoCompartmentState(eqx.Module):
    """`soma`: somatic state `s`; `dendrite`: dendritic state `d` in `[dend_min, dend_max]`."""

    soma: Float[Array, "..."]
    dendrite: Float[Array, "..."]


class TwoCompartmentDrive(eqx.Module):
    """Input to a `TwoCompartment` population: `basal` (to the soma) and `apical` (to the
    dendrite: top-down excitation minus dendritic inhibition). Either may be a scalar 0."""

    basal: Float[ArrayLike, "..."]
    apical: Float[ArrayLike, "..."]


def _split(drive) -> tuple[Array, Array]:
    if isinstance(drive, TwoCompartmentDrive):
        return jnp.asarray(drive.basal), jnp.asarray(drive.apical)
    basal = jnp.asarray(drive)
    return basal, jnp.zeros((), basal.dtype)


class TwoCompartment(AbstractRateNeuron):
    """Soma + dendrite rate neuron with plateau nonlinearity (equations in the module docstring).

    **Arguments:**

    - `tau`: somatic time constant (> 0; EIANN uses 3 with unit Euler steps).
    - `theta_plus` (> `theta_minus`), `theta_minus`: plateau thresholds (defaults 0.0996 and
      -0.163: hidden-layer values tuned for the one-hidden-layer BTSP network with this neuron).
    - `tau_dend`: `None` for an instantaneous dendrite, else its time constant (> 0; needed
      for `vector_field`).
    - `bias`: constant somatic input. `dend_min`, `dend_max`: dendritic bounds.
    - `activation`: somatic activation (default `"relu"`).
    """

    tau: Float[Array, "*pop"]
    theta_plus: Float[Array, "*pop"]
    theta_minus: Float[Array, "*pop"]
    tau_dend: Float[Array, "*pop"] | None
    bias: Float[Array, "*pop"]
    dend_min: Float[Array, ""]
    dend_max: Float[Array, ""]
    activation: Activation = eqx.field(static=True)

    def __init__(self, tau=3.0, theta_plus=0.0996, theta_minus=-0.163, *, tau_dend=None, bias=0.0,
                 dend_min=-1.0, dend_max=1.0, activation: Activation = "relu"):
        get_activation(activation, owner="TwoCompartment")
        self.tau = as_float_array(tau)
        self.theta_plus = as_float_array(theta_plus)
        self.theta_minus = as_float_array(theta_minus)
        self.tau_dend = as_optional_float(tau_dend)
        self.bias = as_float_array(bias)
        self.dend_min = as_float_array(dend_min)
        self.dend_max = as_float_array(dend_max)
        self.activation = activation

    def __check_init__(self):
        check_positive("tau", self.tau, owner="TwoCompartment")
        check_positive("tau_dend", self.tau_dend, owner="TwoCompartment")
        pairs = (("theta_minus", self.theta_minus, "theta_plus", self.theta_plus),
                 ("dend_min", self.dend_min, "dend_max", self.dend_max))
        for lo_name, lo, hi_name, hi in pairs:
            if is_concrete(lo) and is_concrete(hi) and not bool(jnp.all(lo < hi)):
                raise ValueError(f"TwoCompartment: {lo_name} must be < {hi_name}, got {lo_name}={lo!r} and "
                                 f"{hi_name}={hi!r}")

    def phi(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        """The somatic activation function."""
        return get_activation(self.activation)(x)

    def init(self, key, shape):
        del key
        zeros = jnp.zeros(shape, dtype=jnp.result_type(self.tau))
        return TwoCompartmentState(soma=zeros, dendrite=zeros)

    def dendrite_target(self, apical: Float[Array, "..."]) -> Float[Array, "..."]:
        """`clip(apical, dend_min, dend_max)`: the dendritic state an apical input sets."""
        return jnp.clip(apical, self.dend_min, self.dend_max)

    def plateau(self, state: TwoCompartmentState) -> Float[Array, "..."]:
        """`d` where `d > theta_plus` (positive plateau) or `d < theta_minus` (negative), else 0."""
        d = state.dendrite
        return jnp.where((d > self.theta_plus) | (d < self.theta_minus), d, jnp.zeros_like(d))

    def nudge(self, state: TwoCompartmentState) -> Float[Array, "..."]:
        """The dendrite-to-soma nudge: the positive plateaus (0 elsewhere)."""
        d = state.dendrite
        return jnp.where(d > self.theta_plus, d, jnp.zeros_like(d))

    def vector_field(self, t, state, drive):
        del t
        if self.tau_dend is None:
            raise NotImplementedError("TwoCompartment with an instantaneous dendrite (tau_dend=None) has no "
                                      "vector field for the dendrite; give tau_dend > 0 for continuous time")
        basal, apical = _split(drive)
        d_soma = (self.bias + basal - state.soma) / self.tau
        d_dend = (self.dendrite_target(apical) - state.dendrite) / self.tau_dend
        return TwoCompartmentState(soma=d_soma, dendrite=jnp.broadcast_to(d_dend, state.dendrite.shape))

    def step(self, state, drive, dt):
        basal, apical = _split(drive)
        a = jnp.exp(-dt / self.tau)
        soma = a * state.soma + (1.0 - a) * (self.bias + basal)
        target = self.dendrite_target(apical)
        if self.tau_dend is None:
            dendrite = jnp.broadcast_to(target, state.dendrite.shape)
        else:
            a_d = jnp.exp(-dt / self.tau_dend)
            dendrite = a_d * state.dendrite + (1.0 - a_d) * target
        new = TwoCompartmentState(soma=jnp.broadcast_to(soma, state.soma.shape), dendrite=dendrite)
        return new, self.output(new)

    def output(self, state):
        """Activity `phi(soma + nudge)`."""
        return self.phi(state.soma + self.nudge(state))
