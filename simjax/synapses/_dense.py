"""Dense all-to-all projection."""

from __future__ import annotations

import functools
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._checks import as_float_array
from ._base import AbstractProjection, project


class Dense(AbstractProjection):
    """`post = pre @ weight`, `weight` of shape `(n_pre, n_post)`.

    **Arguments:** `weight` — the matrix; or use `Dense.init` for a seeded Gaussian
    `N(0, (scale / sqrt(n_pre))^2)`.
    """

    trainable: ClassVar[tuple[str, ...]] = ("weight",)

    weight: Float[Array, "n_pre n_post"] = eqx.field(converter=as_float_array)

    def __check_init__(self):
        if self.weight.ndim != 2:
            raise ValueError(f"Dense: weight must be a 2-D (n_pre, n_post) array, got shape {self.weight.shape}")

    @classmethod
    def init(cls, n_pre: int, n_post: int, *, key, scale: float = 1.0, zero_diagonal: bool = False) -> Dense:
        return cls(_gaussian(key, scale, (n_pre, n_post), zero_diagonal, jnp.result_type(float)))

    def __call__(self, pre):
        return project(pre, self.weight)

    @property
    def shape(self):
        return tuple(self.weight.shape)

    def without_self_connections(self):
        mask = 1.0 - jnp.eye(*self.weight.shape, dtype=self.weight.dtype)
        return eqx.tree_at(lambda p: p.weight, self, self.weight * mask)

    def dense(self):
        return self.weight

    def constrain(self):
        return self


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def _gaussian(key, scale, shape: tuple[int, int], zero_diagonal: bool, dtype) -> Array:
    """`N(0, (scale / sqrt(n_pre))^2)` entries (the diagonal zero if asked), as one compiled program
    per shape (eagerly, each operation would compile on its own: a few per network built)."""
    w = scale / jnp.sqrt(jnp.asarray(shape[0], dtype)) * jax.random.normal(key, shape, dtype=dtype)
    return w * (1.0 - jnp.eye(*shape, dtype=dtype)) if zero_diagonal else w
