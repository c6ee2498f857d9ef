"""The projection interface: a linear map from presynaptic activity to postsynaptic drive."""

from __future__ import annotations

import abc

import equinox as eqx
from jaxtyping import Array, Float


class AbstractProjection(eqx.Module):
    """A linear map ``post = pre @ W`` from ``n_pre`` to ``n_post`` neurons (last axis).

    Learning rules see the trainable array leaves; constraints that must survive any update (Dale
    signs, bounds) live in `constrain`, which `simjax.fit` applies after every update.
    """

    @abc.abstractmethod
    def __call__(self, pre: Float[Array, "... n_pre"]) -> Float[Array, "... n_post"]:
        """Postsynaptic drive from presynaptic activity."""

    @property
    @abc.abstractmethod
    def shape(self) -> tuple[int, int]:
        """``(n_pre, n_post)``."""

    @abc.abstractmethod
    def dense(self) -> Float[Array, "n_pre n_post"]:
        """The effective weights as a dense ``(n_pre, n_post)`` matrix."""

    def without_self_connections(self) -> "AbstractProjection":
        """The projection with its ``i -> i`` synapses removed (square projections of a recurrent
        population); the same projection where that has no meaning."""
        return self

    def constrain(self) -> "AbstractProjection":
        """Projects the parameters back onto their allowed set (identity by default)."""
        return self
