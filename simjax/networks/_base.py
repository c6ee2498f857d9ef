"""The network interface used by `simjax.simulate` and the learning rules."""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, ClassVar

import equinox as eqx
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from .._checks import check_int, check_shape
from .._simulate.output import Record
from ..synapses._base import AbstractProjection
from ..synapses._dense import Dense


class AbstractNetwork(eqx.Module):
    """A composition of populations and projections with a readout.

    Clock-driven simulation calls `prepare` once on the whole input sequence (work that does not
    depend on the state, e.g. the input projection as one large matmul), then the function
    `step_fn` returns in a `lax.scan`. Continuous-time simulation (`method="ode"`) uses
    `vector_field` and `observe`; networks without a continuous-time form raise
    `NotImplementedError` there. `trainable` names the fields whose inexact arrays learning
    rules update.
    """

    trainable: eqx.AbstractVar[tuple[str, ...]]
    #: Whether `prepare` treats every time step on its own, so that it may run on segments of the
    #: sequence (as `simulate(..., memory="checkpoint")` does). Networks whose `prepare` uses the
    #: whole sequence (step counters, per-run noise) set it False.
    local_prepare: eqx.AbstractClassVar[bool]

    @property
    @abc.abstractmethod
    def n_in(self) -> int:
        """Number of input channels."""

    @property
    @abc.abstractmethod
    def n_out(self) -> int:
        """Number of readout units."""

    @abc.abstractmethod
    def init(self, key: PRNGKeyArray | None, batch_shape: tuple[int, ...]) -> PyTree[Array]:
        """The initial network state for a batch of `batch_shape` trials."""

    @abc.abstractmethod
    def prepare(self, inputs: Float[Array, "time *batch n_in"], dt: Any) -> PyTree[Array]:
        """State-independent preprocessing of the input sequence (the input projection, or nothing)."""

    @abc.abstractmethod
    def step(self, state: PyTree[Array], prepared_t: PyTree[Array], dt: Any) -> tuple[PyTree[Array], Record]:
        """One clock-driven step from the prepared input of that step."""

    @abc.abstractmethod
    def step_fn(self, dt: Any) -> Callable[[PyTree[Array], PyTree[Array]], tuple[PyTree[Array], Record]]:
        """`step` as `(state, prepared_t) -> (state, Record)` for a scan, with loop-invariant work
        (masked weights, decay factors) done once."""

    @abc.abstractmethod
    def vector_field(self, t: Any, state: PyTree[Array], inputs_t: Float[Array, "*batch n_in"]) -> PyTree[Array]:
        """`d state / dt` under the input `inputs_t` (`method="ode"`)."""

    @abc.abstractmethod
    def observe(self, state: PyTree[Array]) -> Record:
        """The recorded quantities of a state (`method="ode"`)."""


class AbstractFastScanNetwork(AbstractNetwork):
    """A network with a fused clock-driven simulation of its own (a hand-written forward and backward
    pass), which `simjax.simulate` uses instead of scanning `step` where the memory policy allows."""

    @abc.abstractmethod
    def fast_scan(self, inputs: Float[Array, "time *batch n_in"], dt: Any, state: PyTree[Array],
                  unroll: int = 1) -> tuple[Record, PyTree[Array]] | None:
        """`(records, final state)` of the whole run from the raw inputs, or `None` when this
        network's configuration is not covered (then the generic scan runs)."""


class AbstractLayeredNetwork(AbstractNetwork):
    """A network made of a chain of projections `layers` (input -> hidden ... -> output)."""

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
    """A network that wraps `net` and changes how it is simulated (truncated gradients, injected
    noise, ...): sizes, initial state and the learnable parameters are `net`'s."""

    net: eqx.AbstractVar[AbstractNetwork]
    local_prepare: ClassVar[bool] = False  # wrappers add whole-sequence data (step indices, keys)

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
    """An array or a projection of shape `expected`, as a projection (arrays become `Dense`)."""
    if isinstance(weight, AbstractProjection):
        if tuple(weight.shape) != expected:
            raise ValueError(f"{owner}: {name} has shape {tuple(weight.shape)}, expected {expected}")
        return weight
    check_shape(name, weight, expected, owner=owner)
    return Dense(weight)


def check_sizes(owner: str, **sizes: int) -> None:
    """`check_int` for each layer size."""
    for name, n in sizes.items():
        check_int(name, n, owner=owner)
