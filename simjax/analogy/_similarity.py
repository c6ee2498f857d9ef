"""Similarities between node features and between relation vectors."""

from __future__ import annotations

import abc

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from .._checks import as_float_array, check_positive


class AbstractSimilarity(eqx.Module):
    """A similarity `s(x, y)` between vectors, evaluated for all pairs of two sets at once."""

    @abc.abstractmethod
    def matrix(self, x: Float[Array, "m d"], y: Float[Array, "k d"]) -> Float[Array, "m k"]:
        """`s(x_i, y_j)` for every `i`, `j`.

        **Arguments:**

        - `x`: `[m, d]` vectors.
        - `y`: `[k, d]` vectors.

        **Returns:**

        The `[m, k]` similarities.
        """


class Cosine(AbstractSimilarity):
    """Cosine similarity, `s(x, y) = x.y / (sqrt(|x|^2 + eps) sqrt(|y|^2 + eps))`, visiPAM's choice
    (Webb et al. 2023). The `eps` keeps zero vectors (absent relations, coincident parts) at
    similarity zero with finite gradients instead of 0/0.

    **Arguments:**

    - `eps`: the regulariser of the norms (default `1e-8`).
    """

    eps: Float[Array, ""]

    def __init__(self, eps: Float[ArrayLike, ""] = 1e-8):
        check_positive("eps", eps, owner="Cosine")
        self.eps = as_float_array(eps)

    def matrix(self, x: Float[Array, "m d"], y: Float[Array, "k d"]) -> Float[Array, "m k"]:
        nx = x / jnp.sqrt(jnp.sum(x * x, axis=-1, keepdims=True) + self.eps)
        ny = y / jnp.sqrt(jnp.sum(y * y, axis=-1, keepdims=True) + self.eps)
        return nx @ ny.T


class Gaussian(AbstractSimilarity):
    """Gaussian-kernel similarity, `s(x, y) = exp(-|x - y|^2 / (2 sigma^2))`, in `(0, 1]`, for
    features whose magnitude matters (digit values, signed differences).

    **Arguments:**

    - `sigma`: the kernel width (default `0.15`).
    """

    sigma: Float[Array, ""]

    def __init__(self, sigma: Float[ArrayLike, ""] = 0.15):
        check_positive("sigma", sigma, owner="Gaussian")
        self.sigma = as_float_array(sigma)

    def matrix(self, x: Float[Array, "m d"], y: Float[Array, "k d"]) -> Float[Array, "m k"]:
        d2 = jnp.sum((x[:, None, :] - y[None, :, :]) ** 2, axis=-1)
        return jnp.exp(-d2 / (2 * self.sigma**2))
