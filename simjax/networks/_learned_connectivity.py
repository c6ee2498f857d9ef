r"""Recurrent weights split into a fixed part and a learned part (Schuessler, Mastrogiuseppe, Ostojic &
Barak 2020, "The interplay between randomness and structure during learning in RNNs"):

    J = J_0 + Delta J,      J_0 = g chi / sqrt(N),  chi_ij ~ N(0, 1) fixed

with the learned `Delta J` either full rank (`FullUpdate`), of rank `R` as `U V^T / N`
(`LowRankUpdate`), or confined to the span of `K` fixed basis vectors `P = [p_1 ... p_K]` as
`P M P^T / N` (`SubspaceUpdate`; `K = 2` with `P = [a b]` is the reduced 2x2 model).

Projections act on the presynaptic side (`post = pre @ W`, `W` of shape `(n_pre, n_post)`), so
`W = J^T` for `J` in the `post x pre` convention of the equations. Each class names its learned
fields in `trainable`; `simjax.parameters` leaves the fixed part frozen, so
`RateRNN(..., w_rec=FullUpdate(...), trainable=("w_rec",))` learns `Delta J` only.
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._checks import as_float_array, check_int, check_shape
from ..synapses._base import AbstractProjection


def random_coupling(n: int, g, *, key) -> Float[Array, "n n"]:
    """`g chi / sqrt(n)` with `chi_ij ~ N(0, 1)`: the fixed random part (`g` may be traced)."""
    chi = jax.random.normal(key, (n, n), dtype=jnp.result_type(float))
    return jnp.asarray(g, chi.dtype) * chi / jnp.sqrt(jnp.asarray(n, chi.dtype))


class AbstractUpdate(AbstractProjection):
    """`W = base + learned` with a frozen `base` of shape `(n_pre, n_post)`."""

    base: eqx.AbstractVar[Float[Array, "n_pre n_post"]]
    trainable: eqx.AbstractClassVar[tuple[str, ...]]

    @abc.abstractmethod
    def learned(self) -> Float[Array, "n_pre n_post"]:
        """The learned part as a dense `(n_pre, n_post)` matrix (`Delta J^T`)."""

    def dense(self):
        return self.base + self.learned()

    def __call__(self, pre):
        return pre @ self.dense()

    @property
    def shape(self):
        return tuple(self.base.shape)

    def without_self_connections(self):
        return self

    def constrain(self):
        return self


class FullUpdate(AbstractUpdate):
    """`W = base + delta` with a full-rank learned `delta` (zeros by default).

    **Arguments:** `base [n_pre, n_post]` (fixed), `delta` (same shape, learned).
    """

    base: Float[Array, "n_pre n_post"]
    delta: Float[Array, "n_pre n_post"]
    trainable = ("delta",)

    def __init__(self, base, delta=None):
        self.base = as_float_array(base)
        self.delta = jnp.zeros_like(self.base) if delta is None else as_float_array(delta)

    def __check_init__(self):
        check_shape("base", self.base, (None, None), owner="FullUpdate")
        check_shape("delta", self.delta, self.base.shape, owner="FullUpdate")

    def learned(self):
        return self.delta


class LowRankUpdate(AbstractUpdate):
    r"""`W = base + v u^T / N` (that is `Delta J = u v^T / N`): rank `R`.

    **Arguments:** `base [N, N]` (fixed); `u, v [N, R]` (learned; `u` the output, `v` the
    input side of `Delta J`). Both must be nonzero for the gradient to move them: start from small
    random factors, e.g. `LowRankUpdate.init`.
    """

    base: Float[Array, "n n"]
    u: Float[Array, "n rank"]
    v: Float[Array, "n rank"]
    trainable = ("u", "v")

    def __init__(self, base, u, v):
        self.base, self.u, self.v = as_float_array(base), as_float_array(u), as_float_array(v)

    def __check_init__(self):
        n = self.base.shape[0]
        check_shape("base", self.base, (n, n), owner="LowRankUpdate")
        check_shape("u", self.u, (n, None), owner="LowRankUpdate")
        check_shape("v", self.v, self.u.shape, owner="LowRankUpdate")

    @classmethod
    def init(cls, base, rank: int, *, key, scale=0.1) -> LowRankUpdate:
        """Factors `u, v ~ N(0, scale^2)` of rank `rank`."""
        check_int("rank", rank, owner="LowRankUpdate")
        base = as_float_array(base)
        k_u, k_v = jax.random.split(key)
        shape = (base.shape[0], rank)
        return cls(base, scale * jax.random.normal(k_u, shape, base.dtype),
                   scale * jax.random.normal(k_v, shape, base.dtype))

    def learned(self):
        return self.v @ self.u.T / self.base.shape[0]

    def __call__(self, pre):
        n = self.base.shape[0]
        return pre @ self.base + ((pre @ self.v) @ self.u.T) / n


class SubspaceUpdate(AbstractUpdate):
    r"""`Delta J = P M P^T / N` for a fixed basis `P [N, K]` and learned `M [K, K]`.

    `M[i, j]` couples basis direction `j` (presynaptic) to direction `i` (postsynaptic). With
    `P = [a b]` (`|a| = |b| = sqrt(N)`, `a . b = 0`) this is the reduced 2x2 model of
    `simjax.analysis._reduced_model`.

    **Arguments:** `base [N, N]` (fixed), `basis [N, K]` (fixed), `m [K, K]` (learned, default 0).
    """

    base: Float[Array, "n n"]
    basis: Float[Array, "n k"]
    m: Float[Array, "k k"]
    trainable = ("m",)

    def __init__(self, base, basis, m=None):
        self.base, self.basis = as_float_array(base), as_float_array(basis)
        k = jnp.shape(basis)[-1]
        self.m = jnp.zeros((k, k), jnp.result_type(float)) if m is None else as_float_array(m)

    def __check_init__(self):
        n, k = self.base.shape[0], self.basis.shape[-1]
        check_shape("base", self.base, (n, n), owner="SubspaceUpdate")
        check_shape("basis", self.basis, (n, None), owner="SubspaceUpdate")
        check_shape("m", self.m, (k, k), owner="SubspaceUpdate")

    def learned(self):
        return self.basis @ self.m.T @ self.basis.T / self.base.shape[0]

    def __call__(self, pre):
        n = self.base.shape[0]
        return pre @ self.base + ((pre @ self.basis) @ self.m.T) @ self.basis.T / n
