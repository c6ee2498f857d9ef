r"""Surrogate Heaviside functions: the exact step forward, a pseudo-derivative backward.

A surrogate `s` is called on the distance to threshold `x` (`x > 0` means a spike) and returns
`H(x) = 1[x > 0]` exactly; under `jax.jvp`/`jax.grad` the derivative of `H` is replaced by the
pseudo-derivative `s.derivative(x)` (Neftci, Mostafa & Zenke 2019). Parameters are arrays, so
surrogates can be vmapped over (slope sweeps).

| class | pseudo-derivative `h(x)` | source |
| --- | --- | --- |
| `FastSigmoid(slope)` | `1 / (1 + slope |x|)^2` | Zenke & Ganguli 2018 (SuperSpike) |
| `Triangle(dampening, width)` | `(dampening / width) max(0, 1 - |x| / width)` | Bellec et al. 2018/2020 (e-prop) |
| `Arctan(alpha)` | `(alpha / 2) / (1 + (pi alpha x / 2)^2)` | Fang et al. 2021 (SpikingJelly `ATan`) |
| `Sigmoid(slope)` | `slope sig(slope x) (1 - sig(slope x))` | derivative of a logistic |
| `Exponential(slope, scale)` | `scale exp(-slope |x|)` | Shrestha & Orchard 2018 (SLAYER) |
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._checks import as_float_array, as_optional_float, check_choice, check_positive


@jax.custom_jvp
def _heaviside(x, surrogate):
    return (x > 0).astype(x.dtype)


@_heaviside.defjvp
def _heaviside_jvp(primals, tangents):
    x, surrogate = primals
    dx, _ = tangents
    # the tangent keeps x's dtype (float64 surrogate parameters must not promote float32 activity)
    return _heaviside(x, surrogate), (surrogate.derivative(x) * dx).astype(dx.dtype)


class AbstractSurrogate(eqx.Module):
    """Heaviside step with a pseudo-derivative. Subclasses implement `derivative` only."""

    @abc.abstractmethod
    def derivative(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        """The pseudo-derivative `h(x)` used in place of the Dirac delta."""

    def __call__(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        """`1[x > 0]` (so `H(0) = 0`), with `derivative` as its derivative."""
        return _heaviside(jnp.asarray(x), self)


class FastSigmoid(AbstractSurrogate):
    """`h(x) = 1 / (1 + slope |x|)^2` (SuperSpike). `h(0) = 1`."""

    slope: Float[Array, ""] = eqx.field(converter=as_float_array, default=25.0)

    def __check_init__(self):
        check_positive("slope", self.slope, owner="FastSigmoid")

    def derivative(self, x):
        return 1.0 / (1.0 + self.slope * jnp.abs(x)) ** 2


class Triangle(AbstractSurrogate):
    """`h(x) = (dampening / width) max(0, 1 - |x| / width)` — e-prop's pseudo-derivative with
    `dampening = gamma = 0.3` and `width = v_th`."""

    dampening: Float[Array, ""] = eqx.field(converter=as_float_array, default=0.3)
    width: Float[Array, ""] = eqx.field(converter=as_float_array, default=1.0)

    def __check_init__(self):
        check_positive("dampening", self.dampening, owner="Triangle")
        check_positive("width", self.width, owner="Triangle")

    def derivative(self, x):
        return self.dampening / self.width * jnp.maximum(0.0, 1.0 - jnp.abs(x) / self.width)


class Arctan(AbstractSurrogate):
    """`h(x) = (alpha / 2) / (1 + (pi alpha x / 2)^2)`, the derivative of
    `arctan(pi alpha x / 2) / pi + 1/2` (StereoSpike uses `alpha = 2`)."""

    alpha: Float[Array, ""] = eqx.field(converter=as_float_array, default=2.0)

    def __check_init__(self):
        check_positive("alpha", self.alpha, owner="Arctan")

    def derivative(self, x):
        return (self.alpha / 2) / (1.0 + (jnp.pi / 2 * self.alpha * x) ** 2)


class Sigmoid(AbstractSurrogate):
    """`h(x) = slope sig(slope x) (1 - sig(slope x))`."""

    slope: Float[Array, ""] = eqx.field(converter=as_float_array, default=4.0)

    def __check_init__(self):
        check_positive("slope", self.slope, owner="Sigmoid")

    def derivative(self, x):
        s = jax.nn.sigmoid(self.slope * x)
        return self.slope * s * (1.0 - s)


class Exponential(AbstractSurrogate):
    """`h(x) = scale exp(-slope |x|)`; `scale` defaults to `slope / 2` (unit area)."""

    slope: Float[Array, ""] = eqx.field(converter=as_float_array, default=5.0)
    scale: Float[Array, ""] | None = eqx.field(converter=as_optional_float, default=None)

    def __check_init__(self):
        check_positive("slope", self.slope, owner="Exponential")
        check_positive("scale", self.scale, owner="Exponential")

    def derivative(self, x):
        scale = self.slope / 2 if self.scale is None else self.scale
        return scale * jnp.exp(-self.slope * jnp.abs(x))


def replace_surrogate(tree, surrogate: AbstractSurrogate):
    """`tree` (a model, a neuron) with every surrogate in it replaced by `surrogate`."""
    is_surrogate = lambda x: isinstance(x, AbstractSurrogate)
    return jax.tree.map(lambda x: surrogate if is_surrogate(x) else x, tree, is_leaf=is_surrogate)


_BY_NAME = {
    "fast_sigmoid": FastSigmoid,
    "triangle": Triangle,
    "arctan": Arctan,
    "sigmoid": Sigmoid,
    "exponential": Exponential,
}


def get(name: str, **kwargs) -> AbstractSurrogate:
    """Builds a surrogate from its snake-case name (`"fast_sigmoid"`, `"triangle"`, ...)."""
    check_choice("surrogate", name, tuple(_BY_NAME), owner="simjax.surrogates.get")
    return _BY_NAME[name](**kwargs)


__all__ = ["AbstractSurrogate", "FastSigmoid", "Triangle", "Arctan", "Sigmoid", "Exponential", "get",
           "replace_surrogate"]
