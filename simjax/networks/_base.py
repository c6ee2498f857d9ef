"""The network interface used by `simjax.simulate` and the learning rules."""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import equinox as eqx
from jaxtyping import Array, Float, PyTree

from .._checks import check_shape
from ..synapses._base import AbstractProjection
from ..synapses.dense import Dense


class Record(eqx.Module):
    """What one clock-driven step exposes: spikes (or rates), the state observable, the readout."""

    spikes: Float[Array, "... n"] | None
    v: Float[Array, "... n"] | None
    readout: Float[Array, "... n_out"] | None


class AbstractNetwork(eqx.Module):
    """A composition of populations and projections with a readout.

    Clock-driven simulation calls `prepare` once on the whole input sequence (work that does not
    depend on the state, e.g. the input projection as one large matmul), then `step` in a
    ``lax.scan``. Continuous-time simulation (``method="ode"``) uses `vector_field` and
    `observe`. ``trainable`` names the fields whose inexact arrays learning rules update.
    """

    trainable: eqx.AbstractVar[tuple[str, ...]]

    @property
    @abc.abstractmethod
    def n_in(self) -> int: ...

    @property
    @abc.abstractmethod
    def n_out(self) -> int: ...

    @abc.abstractmethod
    def init(self, key: Any, batch_shape: tuple[int, ...]) -> PyTree[Array]:
        """The initial network state for a batch of ``batch_shape`` trials."""

    #: Whether `prepare` treats every time step on its own (so that it may run on segments of the
    #: sequence, as ``simulate(..., memory="checkpoint")`` does). Networks whose `prepare` uses the
    #: whole sequence (step counters, per-run noise) leave it False.
    local_prepare: ClassVar[bool] = False

    def prepare(self, inputs: Float[Array, "time *batch n_in"], dt: Any) -> PyTree[Array]:
        """State-independent preprocessing of the input sequence; the identity by default."""
        del dt
        return inputs

    @abc.abstractmethod
    def step(self, state: PyTree[Array], prepared_t: PyTree[Array], dt: Any) -> tuple[PyTree[Array], Record]:
        """One clock-driven step from the prepared input of that step."""

    def step_fn(self, dt: Any):
        """``(state, prepared_t) -> (state, Record)`` for a scan; networks override it to hoist
        loop-invariant work (masked weights, decay factors) out of the loop."""
        return lambda state, prepared_t: self.step(state, prepared_t, dt)

    def vector_field(self, t: Any, state: PyTree[Array], inputs_t: Float[Array, "*batch n_in"]) -> PyTree[Array]:
        raise NotImplementedError(f"{type(self).__name__} has no continuous-time (method='ode') form")

    def observe(self, state: PyTree[Array]) -> Record:
        raise NotImplementedError(f"{type(self).__name__} has no continuous-time (method='ode') form")


class AbstractLayeredNetwork(AbstractNetwork):
    """A network made of a chain of projections ``layers`` (input -> hidden ... -> output)."""

    layers: eqx.AbstractVar[tuple[AbstractProjection, ...]]

    @property
    def n_in(self) -> int:
        return self.layers[0].shape[0]

    @property
    def n_out(self) -> int:
        return self.layers[-1].shape[1]

    @property
    def sizes(self) -> tuple[int, ...]:
        """Units per layer, input first."""
        return (self.n_in, *(p.shape[1] for p in self.layers))


class AbstractWrappedNetwork(AbstractNetwork):
    """A network that wraps ``net`` and changes how it is simulated (truncated gradients, injected
    noise, ...): sizes, initial state and the learnable parameters are ``net``'s."""

    net: eqx.AbstractVar[AbstractNetwork]

    @property
    def trainable(self):
        return ("net",)

    @property
    def n_in(self):
        return self.net.n_in

    @property
    def n_out(self):
        return self.net.n_out

    def init(self, key, batch_shape):
        return self.net.init(key, batch_shape)


def as_projection(weight, expected: tuple[int, int], name: str, owner: str) -> AbstractProjection:
    """An array or a projection of shape ``expected``, as a projection (arrays become `Dense`)."""
    if isinstance(weight, AbstractProjection):
        if tuple(weight.shape) != expected:
            raise ValueError(f"{owner}: {name} has shape {tuple(weight.shape)}, expected {expected}")
        return weight
    check_shape(name, weight, expected, owner=owner)
    return Dense(weight)


def check_sizes(owner: str, **sizes) -> None:
    for name, n in sizes.items():
        if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
            raise ValueError(f"{owner}: {name} must be a positive int, got {n!r}")
