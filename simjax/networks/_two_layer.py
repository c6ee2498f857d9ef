r"""Static two-layer classifiers with fixed output layers, the students of the implicit-bias
studies (Sarussi, Brutzkus & Globerson 2021; Brutzkus & Globerson 2019; Bronstein, Brutzkus &
Globerson 2022).

The output weights are fields like the others but are trained only with `train_output=True`
(`trainable` names the fields a training loop updates): the theory assumes them fixed, and training
them changes the implicit bias.
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .._checks import as_float_array, check_int, check_positive


class AbstractTwoLayer(eqx.Module):
    """A static classifier `N(x)`: `__call__` maps a batch of inputs to one real output each; the
    predicted label is `sign(N(x))`. `trainable` names the fields that training updates."""

    train_output: eqx.AbstractVar[bool]

    @property
    @abc.abstractmethod
    def trainable(self) -> tuple[str, ...]:
        """Names of the fields that training updates."""

    @abc.abstractmethod
    def __call__(self, inputs: Float[Array, "n ..."]) -> Float[Array, " n"]:
        """The network's outputs on a batch."""


def _gaussian(key, shape, scale):
    return as_float_array(scale) * jax.random.normal(key, shape, jnp.result_type(float))


def _check_init(owner, width, init_scale):
    width = check_int("width", width, what="hidden units per group", owner=owner)
    check_positive("init_scale", init_scale, allow_zero=True, owner=owner)
    return width


class LeakyReLUStudent(AbstractTwoLayer):
    r"""The two-sided Leaky-ReLU network of Sarussi, Brutzkus & Globerson (ICML 2021),

        N(x) = sum_i v_i sigma(w_i . x) - sum_i a_i sigma(u_i . x),   sigma(z) = max(z, alpha z),

    with `k = width` neurons per sign, output weights `v = a = 1` (fixed unless `train_output`)
    and `w_i, u_i ~ N(0, init_scale^2 I)`. When the `w_i` align with one direction and the
    `u_i` with the opposite one, `N` is linear; `linear` is the network
    `(sum_i w_i - sum_i u_i) . x` it then agrees with in sign.

    **Arguments:**

    - `d`: input dimension; `width`: neurons per sign `k >= 1`.
    - `alpha`: the Leaky-ReLU slope in `(0, 1)`.
    - `init_scale`: standard deviation of the initial weights.
    - `train_output`: also train `v` and `a`.
    - `key`: PRNG key of the initialisation.
    """

    w: Float[Array, "k d"]
    u: Float[Array, "k d"]
    v: Float[Array, " k"]
    a: Float[Array, " k"]
    alpha: Float[Array, ""]
    train_output: bool = eqx.field(static=True)

    def __init__(self, d: int, width: int, *, alpha: Float[ArrayLike, ""] = 0.1,
                 init_scale: Float[ArrayLike, ""] = 1e-4, train_output: bool = False, key: PRNGKeyArray):
        d = check_int("d", d, owner="LeakyReLUStudent")
        width = _check_init("LeakyReLUStudent", width, init_scale)
        check_positive("alpha", alpha, owner="LeakyReLUStudent")
        kw, ku = jax.random.split(key)
        self.w, self.u = _gaussian(kw, (width, d), init_scale), _gaussian(ku, (width, d), init_scale)
        self.v = self.a = jnp.ones((width,), jnp.result_type(float))
        self.alpha = as_float_array(alpha)
        self.train_output = train_output

    @property
    def trainable(self) -> tuple[str, ...]:
        return ("w", "u", "v", "a") if self.train_output else ("w", "u")

    def _sigma(self, z):
        return jnp.maximum(z, self.alpha * z)

    def __call__(self, inputs: Float[Array, "n d"]) -> Float[Array, " n"]:
        return self._sigma(inputs @ self.w.T) @ self.v - self._sigma(inputs @ self.u.T) @ self.a

    def linear(self, inputs: Float[Array, "n d"]) -> Float[Array, " n"]:
        """The linear network `(sum_i w_i - sum_i u_i) . x`."""
        return inputs @ (jnp.sum(self.w, axis=0) - jnp.sum(self.u, axis=0))


class MaxPoolDetector(AbstractTwoLayer):
    r"""The convolution + max-pool pattern detector of Brutzkus & Globerson (ICML 2019),

        N(x) = sum_i v_i max_j relu(w_i . x_j) - sum_i a_i max_j relu(u_i . x_j),

    over the `d` patterns `x_j in R^p` of an input (a convolution with stride = pattern size),
    `k = width` filters per sign, output weights `v = a = 1` (fixed unless `train_output`),
    `w_i, u_i ~ N(0, init_scale^2 I)`.

    **Arguments:**

    - `p`: pattern size (2 for XOR detection); `width`: filters per sign `k >= 1`.
    - `init_scale`, `train_output`, `key`: as `LeakyReLUStudent`.
    """

    w: Float[Array, "k p"]
    u: Float[Array, "k p"]
    v: Float[Array, " k"]
    a: Float[Array, " k"]
    train_output: bool = eqx.field(static=True)

    def __init__(self, p: int, width: int, *, init_scale: Float[ArrayLike, ""] = 1e-3, train_output: bool = False,
                 key: PRNGKeyArray):
        p = check_int("p", p, owner="MaxPoolDetector")
        width = _check_init("MaxPoolDetector", width, init_scale)
        kw, ku = jax.random.split(key)
        self.w, self.u = _gaussian(kw, (width, p), init_scale), _gaussian(ku, (width, p), init_scale)
        self.v = self.a = jnp.ones((width,), jnp.result_type(float))
        self.train_output = train_output

    @property
    def trainable(self) -> tuple[str, ...]:
        return ("w", "u", "v", "a") if self.train_output else ("w", "u")

    def __call__(self, inputs: Float[Array, "n d p"]) -> Float[Array, " n"]:
        n, d, p = inputs.shape
        flat = inputs.reshape(n * d, p)
        # max_j relu(z_j) = relu(max_j z_j): pool first, one ReLU per filter
        pool = lambda f: jax.nn.relu(jnp.max((flat @ f.T).reshape(n, d, -1), axis=1))
        return pool(self.w) @ self.v - pool(self.u) @ self.a


class ConvexReLUNetwork(AbstractTwoLayer):
    r"""The "convex" ReLU network of Bronstein, Brutzkus & Globerson (UAI 2022),

        N(x) = sum_i v_i relu(w_i . x + b_i) + offset,

    with `r = width` units, output weights `v = 1` (fixed unless `train_output`), a fixed
    `offset` (`-1`: a point is positive only if some unit is active), `w_i ~ N(0, init_scale^2 I)`
    and `b_i ~ N(0, init_scale^2)`.

    **Arguments:**

    - `dim`: input dimension; `width`: units `r >= 1`; `offset`: the fixed output offset.
    - `init_scale`, `train_output`, `key`: as `LeakyReLUStudent`.
    """

    w: Float[Array, "r dim"]
    b: Float[Array, " r"]
    v: Float[Array, " r"]
    offset: Float[Array, ""]
    train_output: bool = eqx.field(static=True)

    def __init__(self, dim: int, width: int, *, offset: Float[ArrayLike, ""] = -1.0,
                 init_scale: Float[ArrayLike, ""] = 1e-3, train_output: bool = False, key: PRNGKeyArray):
        dim = check_int("dim", dim, owner="ConvexReLUNetwork")
        width = _check_init("ConvexReLUNetwork", width, init_scale)
        kw, kb = jax.random.split(key)
        self.w, self.b = _gaussian(kw, (width, dim), init_scale), _gaussian(kb, (width,), init_scale)
        self.v = jnp.ones((width,), jnp.result_type(float))
        self.offset = as_float_array(offset)
        self.train_output = train_output

    @property
    def trainable(self) -> tuple[str, ...]:
        return ("w", "b", "v") if self.train_output else ("w", "b")

    def __call__(self, inputs: Float[Array, "n dim"]) -> Float[Array, " n"]:
        return jax.nn.relu(inputs @ self.w.T + self.b) @ self.v + self.offset
