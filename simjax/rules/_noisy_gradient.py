r"""`NoisyGradient`: the controlled estimator of Ghosh et al. (ICLR 2023).

    g_hat = g + bias * |g| * u + sigma * xi,      xi ~ N(0, I / P)

with `g` the exact gradient, `P` the number of trainable parameters and `u` a fixed unit
direction: a random one drawn from `seed`, or the Hessian's top / bottom eigenvector at the
current parameters (power iteration on Hessian-vector products). Its relative bias is `bias` and
its relative variance `sigma^2 / |g|^2`, by construction.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float

from .._checks import as_float_array, check_choice, check_positive
from .._curvature import extreme_eigenvector, flat_loss
from ._base import AbstractStatelessRule
from ._exact import Exact


class NoisyGradient(AbstractStatelessRule):
    """Exact gradient + scaled bias along `direction` + isotropic noise (see the module docstring).

    **Arguments:** `bias` (beta >= 0), `sigma` (>= 0), `direction` in `"random"`,
    `"top_hessian"`, `"bottom_hessian"`, `seed` (the random direction and the power-iteration
    start), `iterations` (power iterations).
    """

    bias: Float[Array, ""] = eqx.field(converter=as_float_array, default=0.0)
    sigma: Float[Array, ""] = eqx.field(converter=as_float_array, default=0.0)
    direction: str = eqx.field(static=True, default="random")
    seed: int = eqx.field(static=True, default=0)
    iterations: int = eqx.field(static=True, default=50)

    def __check_init__(self):
        check_positive("bias", self.bias, allow_zero=True, owner="NoisyGradient")
        check_positive("sigma", self.sigma, allow_zero=True, owner="NoisyGradient")
        check_choice("direction", self.direction, ("random", "top_hessian", "bottom_hessian"), owner="NoisyGradient")

    def unit_direction(self, model, task, batch, key=None):
        """The bias direction `u` (flat, unit norm) at `model`'s parameters."""
        theta, loss_fn, _ = flat_loss(model, task, batch, key)
        k = jax.random.key(self.seed)
        if self.direction == "random":
            u = jax.random.normal(k, theta.shape, theta.dtype)
            return u / jnp.linalg.norm(u)
        which = "top" if self.direction == "top_hessian" else "bottom"
        return extreme_eigenvector(loss_fn, theta, k, which=which, iterations=self.iterations)[0]

    def __call__(self, model, task, batch, key):
        loss, grads, aux = Exact()(model, task, batch, key)
        g, unravel = ravel_pytree(grads)
        u = self.unit_direction(model, task, batch, key)
        xi = jax.random.normal(jax.random.fold_in(key, 1), g.shape, g.dtype) / jnp.sqrt(g.size)
        return loss, unravel(g + self.bias * jnp.linalg.norm(g) * u + self.sigma * xi), aux
