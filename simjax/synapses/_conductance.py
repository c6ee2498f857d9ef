r"""Conductance-based synapses: exponentially decaying conductances with a reversal potential,
optionally with the voltage-dependent magnesium block of NMDA receptors.

    tau dg/dt = -g,      I_syn = g B(v) (E_rev - v)

A spike of weight `w` adds `|w|` to `g` (conductances in units of the leak conductance, so
`g = 1` doubles the membrane's conductance). `B(v) = 1` unless a `MgBlock` is given:

    B(v) = 1 / (1 + [Mg] / mg_scale exp(-slope v))

(Jahr & Stevens 1990, J. Neurosci. 10:3178; `mg_scale = 3.57 mM`, `slope = 0.062 / mV`, which
assumes potentials in mV).
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._checks import as_float_array, check_positive, is_concrete
from ._synapse import AbstractConductanceSynapse


class MgBlock(eqx.Module):
    """The NMDA magnesium block `B(v) = 1 / (1 + mg / mg_scale exp(-slope v))` (Jahr & Stevens 1990).

    **Arguments:**

    - `mg`: extracellular magnesium concentration (mM, >= 0).
    - `mg_scale`: concentration scale (mM, > 0; 3.57 in Jahr & Stevens).
    - `slope`: voltage sensitivity (1/mV, > 0; 0.062 in Jahr & Stevens).
    """

    mg: Float[Array, ""]
    mg_scale: Float[Array, ""]
    slope: Float[Array, ""]

    def __init__(self, mg=1.0, mg_scale=3.57, slope=0.062):
        self.mg = as_float_array(mg)
        self.mg_scale = as_float_array(mg_scale)
        self.slope = as_float_array(slope)
        check_positive("mg", self.mg, allow_zero=True, owner="MgBlock")
        check_positive("mg_scale", self.mg_scale, owner="MgBlock")
        check_positive("slope", self.slope, owner="MgBlock")

    def __call__(self, v: Float[Array, ...]) -> Float[Array, ...]:
        return 1.0 / (1.0 + self.mg / self.mg_scale * jnp.exp(-self.slope * v))


class ExponentialConductance(AbstractConductanceSynapse):
    """Exponentially decaying conductance with reversal potential `e_rev` (see the module docstring).

    **Arguments:**

    - `tau`: decay time constant (ms, > 0).
    - `e_rev`: reversal potential (membrane units; 0 mV for AMPA, -80 mV for GABA-A in the
      Vogels-Abbott network).
    - `mg_block`: a `MgBlock` for NMDA-like voltage dependence, or `None`.
    """

    tau: Float[Array, "*pop"]
    e_rev: Float[Array, "*pop"]
    mg_block: MgBlock | None

    def __init__(self, tau=5.0, e_rev=0.0, *, mg_block: MgBlock | None = None):
        self.tau = as_float_array(tau)
        self.e_rev = as_float_array(e_rev)
        self.mg_block = mg_block
        check_positive("tau", self.tau, owner="ExponentialConductance")
        if is_concrete(self.e_rev) and not np.all(np.isfinite(np.asarray(self.e_rev))):
            raise ValueError(f"ExponentialConductance: e_rev must be finite, got {e_rev!r}")

    def init(self, shape, dtype):
        return jnp.zeros(shape, dtype)

    def decay(self, state, dt):
        return state * jnp.exp(-dt / self.tau)

    def receive(self, state, weight):
        return state + jnp.abs(weight)

    def vector_field(self, t, state):
        return -state / self.tau

    def conductance(self, state, v):
        return state if self.mg_block is None else state * self.mg_block(v)

    def time_constants(self):
        return (self.tau,)
