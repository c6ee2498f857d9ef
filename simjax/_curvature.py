"""A model's loss as a function of its flattened trainable parameters, Hessian-vector products and
extreme Hessian eigenvectors — never a dense Hessian."""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from jaxtyping import PRNGKeyArray

from .networks._base import AbstractNetwork
from .parameters._parameters import partition
from .tasks._base import AbstractTask, Batch


def flat_loss(model: AbstractNetwork, task: AbstractTask, batch: Batch,
              key: PRNGKeyArray | None = None) -> tuple[jax.Array, Callable, Callable]:
    """`(theta, loss_fn, unravel)`: `loss_fn(theta)` is the task loss of `model` on `batch` with
    its trainable parameters set to the flat vector `theta`; `unravel(theta)` gives the pytree."""
    params, static = partition(model)
    theta, unravel = ravel_pytree(params)

    def loss_fn(flat):
        m = eqx.combine(unravel(flat), static)
        return task.loss(task.forward(m, batch, key), batch)

    return theta, loss_fn, unravel


def hvp(loss_fn: Callable, theta: jax.Array, v: jax.Array) -> jax.Array:
    """`H v` by forward-over-reverse differentiation (Pearlmutter 1994)."""
    return jax.jvp(jax.grad(loss_fn), (theta,), (v,))[1]


def extreme_eigenvector(loss_fn: Callable, theta: jax.Array, key: PRNGKeyArray, *, which: str = "top",
                        iterations: int = 50) -> tuple[jax.Array, jax.Array]:
    """Unit eigenvector and eigenvalue of the Hessian at `theta` for its largest (`"top"`) or
    smallest (`"bottom"`, by power iteration on `lambda_top I - H`) eigenvalue."""

    def power(matvec, v0):
        def body(v, _):
            w = matvec(v)
            return w / jnp.maximum(jnp.linalg.norm(w), 1e-30), None

        v, _ = jax.lax.scan(body, v0 / jnp.linalg.norm(v0), None, length=iterations)
        return v, jnp.vdot(v, matvec(v))

    v0 = jax.random.normal(key, theta.shape, theta.dtype)
    hv = lambda v: hvp(loss_fn, theta, v)
    top, lam_top = power(hv, v0)
    if which == "top":
        return top, lam_top
    shift = jnp.abs(lam_top) * 1.05 + 1e-12
    bottom, _ = power(lambda v: shift * v - hv(v), v0)
    return bottom, jnp.vdot(bottom, hv(bottom))
