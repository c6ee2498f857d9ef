r"""Tsodyks-Markram short-term plasticity: depression and facilitation of a presynaptic neuron's
release, through the resources `x` and the utilisation `u`.

Between spikes (Tsodyks, Pawelzik & Markram 1998, Neural Comput. 10:821; Markram, Wang & Tsodyks
1998, PNAS 95:5323):

    tau_d dx/dt = 1 - x,        tau_f du/dt = -u

At a presynaptic spike, first `u` is facilitated, then a fraction `u` of the resources is
released, and the synaptic jump is the weight times that fraction:

    u+ = u- + U (1 - u-),     efficacy = u+ x-,     x+ = x- - u+ x-

(`u` starts at 0, `x` at 1; the first spike releases `U`). The state is per *presynaptic*
neuron: every outgoing synapse of a neuron shares its release (the model's original mean-field
reading). Without facilitation (`tau_f -> 0`) `u = U` at every spike; a regular train of
interval `T` then depresses to the
steady state `x_ss = (1 - exp(-T/tau_d)) / (1 - (1 - U) exp(-T/tau_d))`.

Between spikes both variables relax exactly: `x <- 1 + (x - 1) exp(-dt/tau_d)`,
`u <- u exp(-dt/tau_f)`, so the clock-driven update (`TsodyksMarkram.step`) is exact
for spikes on the grid and the event-driven one (`decay` to the spike, then `release`) is exact.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._checks import as_float_array, check_positive, is_concrete


class TsodyksMarkramState(eqx.Module):
    """`u`: utilisation (release probability); `x`: available resources (fraction)."""

    u: Float[Array, "*pre"]
    x: Float[Array, "*pre"]


class TsodyksMarkram(eqx.Module):
    """Tsodyks-Markram depression and facilitation (see the module docstring for the equations).

    **Arguments:**

    - `U`: utilisation increment (in (0, 1]): the fraction the first spike releases.
    - `tau_d`: recovery time constant of the resources (ms, > 0).
    - `tau_f`: facilitation time constant (ms, >= 0; 0: no facilitation, `u = U` at every spike).
    """

    U: Float[Array, "*pre"]
    tau_d: Float[Array, "*pre"]
    tau_f: Float[Array, "*pre"]

    def __init__(self, U=0.5, tau_d=200.0, tau_f=0.0):
        self.U = as_float_array(U)
        self.tau_d = as_float_array(tau_d)
        self.tau_f = as_float_array(tau_f)
        check_positive("tau_d", self.tau_d, owner="TsodyksMarkram")
        check_positive("tau_f", self.tau_f, allow_zero=True, owner="TsodyksMarkram")
        if is_concrete(self.U) and not bool(jnp.all((self.U > 0) & (self.U <= 1))):
            raise ValueError(f"TsodyksMarkram: U must lie in (0, 1], got {U!r}")

    def init(self, shape: tuple[int, ...], dtype: Any) -> TsodyksMarkramState:
        """Rest: `u = 0`, `x = 1`."""
        return TsodyksMarkramState(u=jnp.zeros(shape, dtype), x=jnp.ones(shape, dtype))

    def decay(self, state: TsodyksMarkramState, dt: Any) -> TsodyksMarkramState:
        """Exact relaxation over `dt` without spikes (`u` drops to 0 at once when `tau_f = 0`)."""
        a_f = jnp.where(self.tau_f > 0, jnp.exp(-dt / jnp.where(self.tau_f > 0, self.tau_f, 1.0)), 0.0)
        return TsodyksMarkramState(u=state.u * a_f,
                                   x=1.0 + (state.x - 1.0) * jnp.exp(-dt / self.tau_d))

    def release(self, state: TsodyksMarkramState, spikes: Float[Array, "*pre"]
                ) -> tuple[TsodyksMarkramState, Float[Array, "*pre"]]:
        """The spikes (0/1) of the presynaptic neurons at this instant: `(state after, efficacy)`,
        where `efficacy = u+ x-` for a neuron that spikes (the factor on its weights) and 0 else.
        The spike values multiply the efficacy, so surrogate gradients flow through them."""
        s = jax.lax.stop_gradient(spikes)
        u = state.u + s * self.U * (1.0 - state.u)
        fraction = u * state.x
        return TsodyksMarkramState(u=u, x=state.x - s * fraction), spikes * fraction

    def step(self, state: TsodyksMarkramState, spikes: Float[Array, "*pre"], dt: Any
             ) -> tuple[TsodyksMarkramState, Float[Array, "*pre"]]:
        """One clock step: `release` at the spikes of this step, then `decay` over `dt` to the
        next step's spike time. **Returns:** `(state, efficacy)`."""
        state, efficacy = self.release(state, spikes)
        return self.decay(state, dt), efficacy
