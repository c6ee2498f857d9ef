"""Closed-form responses of a leaky membrane to synaptic kernels, shared by neurons and synapses."""

from __future__ import annotations

import jax.numpy as jnp


def synaptic_coupling(dt, tau_mem, tau_syn):
    r"""`c(dt) = tau_s / (tau_s - tau_m) (exp(-dt/tau_s) - exp(-dt/tau_m))`: the voltage at time
    `dt` caused by a unit synaptic current at time 0.

    Written as `c = (dt/tau_m) exp(-dt/tau_m) (e^x - 1)/x` with `x = dt (tau_s - tau_m) / (tau_m tau_s)`,
    and evaluated by the series of `(e^x - 1)/x` where `|x|` is small, so the value and its
    derivatives in `dt`, `tau_mem` and `tau_syn` are exact and finite also when the two time
    constants coincide (limit `(dt/tau) exp(-dt/tau)`).
    """
    x = dt * (tau_syn - tau_mem) / (tau_mem * tau_syn)
    small = jnp.abs(x) < 1e-3
    xs = jnp.where(small, x, 0.0)
    expm1_ratio = 1.0 + xs / 2.0 * (1.0 + xs / 3.0 * (1.0 + xs / 4.0 * (1.0 + xs / 5.0)))
    series = dt / tau_mem * jnp.exp(-dt / tau_mem) * expm1_ratio
    safe_diff = jnp.where(small, 1.0, tau_syn - tau_mem)
    general = tau_syn / safe_diff * (jnp.exp(-dt / tau_syn) - jnp.exp(-dt / tau_mem))
    return jnp.where(small, series, general)
