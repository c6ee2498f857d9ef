"""The projection interface: a linear map from presynaptic activity to postsynaptic drive."""

from __future__ import annotations

import abc

import equinox as eqx
from jaxtyping import Array, Float


def project(pre: Float[Array, "... n_pre"], weight: Float[Array, "n_pre n_post"]) -> Float[Array, "... n_post"]:
    """`pre @ weight` with every leading axis of `pre` merged into one before the product.

    Same values as `pre @ weight`; the difference is the weight gradient of a whole trace
    (`pre [T, B, n_pre]`): autodiff then contracts one merged `T B` axis, a single 2-D matmul,
    instead of two axes, which XLA's CPU backend runs several times slower.
    """
    if pre.ndim <= 2:
        return pre @ weight
    return (pre.reshape(-1, pre.shape[-1]) @ weight).reshape(*pre.shape[:-1], weight.shape[-1])


class AbstractProjection(eqx.Module):
    """A linear map `post = pre @ W` from `n_pre` to `n_post` neurons (last axis).

    `trainable` names the fields whose inexact arrays learning rules update (bounds and fixed
    parts are data, not parameters); constraints that must survive any update (Dale signs, bounds)
    live in `constrain`, which `simjax.fit` applies after every update.
    """

    trainable: eqx.AbstractClassVar[tuple[str, ...]]

    @abc.abstractmethod
    def __call__(self, pre: Float[Array, "... n_pre"]) -> Float[Array, "... n_post"]:
        """Postsynaptic drive from presynaptic activity."""

    @property
    @abc.abstractmethod
    def shape(self) -> tuple[int, int]:
        """`(n_pre, n_post)`."""

    @abc.abstractmethod
    def dense(self) -> Float[Array, "n_pre n_post"]:
        """The effective weights as a dense `(n_pre, n_post)` matrix."""

    @abc.abstractmethod
    def without_self_connections(self) -> AbstractProjection:
        """The projection with its `i -> i` synapses removed (square projections of a recurrent
        population); the same projection where that has no meaning."""

    @abc.abstractmethod
    def constrain(self) -> AbstractProjection:
        """Projects the parameters back onto their allowed set (Dale signs, bounds); the same
        projection where nothing is constrained."""
