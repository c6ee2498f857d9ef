"""Small helpers shared by the rule tests."""

import equinox as eqx
import jax
import jax.numpy as jnp

import simjax as sj


def jit_rule(rule):
    """One compiled program per rule call: far cheaper than dispatching the rule op by op."""
    return eqx.filter_jit(rule)


def max_rel_error(a, b):
    """`max |a - b| / max |a|`."""
    return float(jnp.max(jnp.abs(a - b)) / jnp.maximum(jnp.max(jnp.abs(a)), 1e-300))


def spike_regression_batch(steps, batch, n_in, n_out, p):
    """Bernoulli(`p`) input spikes `[steps, batch, n_in]` and Gaussian targets `[steps, batch, n_out]`."""
    x = (jax.random.uniform(jax.random.key(0), (steps, batch, n_in)) < p).astype(jnp.float64)
    y = jax.random.normal(jax.random.key(1), (steps, batch, n_out))
    return sj.tasks.Batch(inputs=x, targets=y)
