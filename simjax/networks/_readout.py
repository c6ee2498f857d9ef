"""Leaky readout shared by the networks: `o_t = kappa o_{t-1} + W_out r_t + b`, `kappa = exp(-dt/tau_out)`."""

from __future__ import annotations

import jax.numpy as jnp


def readout_decay(tau_out, dt):
    """`kappa = exp(-dt / tau_out)`; `tau_out=None` means no leak memory (`kappa = 0`)."""
    if tau_out is None:
        return jnp.zeros((), dtype=jnp.result_type(float))
    return jnp.exp(-dt / tau_out)


def leaky_readout(previous, current, kappa):
    """One step of the leaky readout: `kappa * previous + current`."""
    return kappa * previous + current
