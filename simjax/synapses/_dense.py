"""Dense all-to-all projection."""

from __future__ import annotations

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
        w = scale / jnp.sqrt(n_pre) * jax.random.normal(key, (n_pre, n_post), dtype=jnp.result_type(float))
        if zero_diagonal:
            w = w * (1.0 - jnp.eye(n_pre, n_post, dtype=w.dtype))
        return cls(w)

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
