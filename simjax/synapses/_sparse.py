"""Fixed sparse projection: a connectivity given by index arrays, one trainable weight per synapse."""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from .._checks import as_float_array, check_int, check_positive, is_concrete
from ._base import AbstractProjection


class Sparse(AbstractProjection):
    r"""`post_j = sum_{k: post_idx[k] = j} w_k pre_{pre_idx[k]}` (gather + segment sum).

    The structure (`pre_idx`, `post_idx`: int32, one entry per synapse) is fixed and never
    trained; `weight` holds one value per synapse.

    **Arguments:** `weight`, `pre_idx`, `post_idx` (same length), `n_pre`, `n_post`.
    """

    trainable: ClassVar[tuple[str, ...]] = ("weight",)

    weight: Float[Array, " synapses"] = eqx.field(converter=as_float_array)
    pre_idx: Int[Array, " synapses"] = eqx.field(converter=lambda x: jnp.asarray(x, jnp.int32))
    post_idx: Int[Array, " synapses"] = eqx.field(converter=lambda x: jnp.asarray(x, jnp.int32))
    n_pre: int = eqx.field(static=True)
    n_post: int = eqx.field(static=True)

    def __check_init__(self):
        for name, n in (("n_pre", self.n_pre), ("n_post", self.n_post)):
            check_int(name, n, owner="Sparse")
        shapes = {a.shape for a in (self.weight, self.pre_idx, self.post_idx)}
        if len(shapes) != 1 or self.weight.ndim != 1:
            raise ValueError(f"Sparse: weight {self.weight.shape}, pre_idx {self.pre_idx.shape} and post_idx "
                             f"{self.post_idx.shape} must be 1-D arrays of the same length (one entry per synapse)")
        for name, idx, n in (("pre_idx", self.pre_idx, self.n_pre), ("post_idx", self.post_idx, self.n_post)):
            if not is_concrete(idx) or idx.size == 0:
                continue
            values = np.asarray(idx)  # host copy: jnp reductions would be staged inside jit
            lo, hi = int(values.min()), int(values.max())
            if lo < 0 or hi >= n:
                raise ValueError(f"Sparse: {name} must lie in [0, {n}), got values in [{lo}, {hi}]")

    @classmethod
    def random(cls, n_pre: int, n_post: int, p: float, *, key, scale: float = 1.0,
               self_connections: bool = True) -> Sparse:
        """Erdos-Renyi connectivity with probability `p` (drawn once, fixed) and weights
        `N(0, (scale / sqrt(p n_pre))^2)`; `self_connections=False` drops `i -> i`."""
        check_positive("p", p, owner="Sparse.random")
        if p > 1:
            raise ValueError(f"Sparse.random: p must be in (0, 1], got {p!r}")
        k_mask, k_w = jax.random.split(key)
        mask = np.array(jax.random.uniform(k_mask, (n_pre, n_post)) < p)
        if not self_connections:
            np.fill_diagonal(mask, False)
        pre, post = np.nonzero(mask)
        w = scale / np.sqrt(p * n_pre) * jax.random.normal(k_w, (pre.size,), dtype=jnp.result_type(float))
        return cls(w, pre, post, n_pre, n_post)

    def __call__(self, pre):
        contributions = pre[..., self.pre_idx] * self.weight
        moved = jnp.moveaxis(contributions, -1, 0)
        summed = jax.ops.segment_sum(moved, self.post_idx, num_segments=self.n_post)
        return jnp.moveaxis(summed, 0, -1)

    @property
    def shape(self):
        return (self.n_pre, self.n_post)

    def without_self_connections(self):
        return eqx.tree_at(lambda p: p.weight, self, jnp.where(self.pre_idx == self.post_idx, 0.0, self.weight))

    def dense(self):
        return jnp.zeros(self.shape, self.weight.dtype).at[self.pre_idx, self.post_idx].add(self.weight)

    def constrain(self):
        return self
