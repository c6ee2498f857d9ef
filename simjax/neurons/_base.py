"""The neuron interface: pure dynamics, explicit state, three integrators served by one definition."""

from __future__ import annotations

import abc
from typing import Any

import equinox as eqx
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from ..surrogates._surrogates import AbstractSurrogate


class AbstractNeuron(eqx.Module):
    r"""A population of neurons as pure dynamics.

    Parameters are array fields (broadcastable to the population), configuration is static. No
    method keeps hidden state: the state is an explicit pytree returned by `init` and threaded by
    the caller (`simjax.simulate`).

    **Input convention.** `drive` in `step` is the synaptic input delivered during that step, in
    the units of the variable it enters (volts for delta synapses, the synaptic current for
    exponential synapses): spiking neurons apply it as an instantaneous jump at the end of the
    step (`on_pre: v += w` in Brian2 terms); rate neurons treat it as a current held constant
    over the step. `drive` in `vector_field` is a continuous current.
    """

    @abc.abstractmethod
    def init(self, key: PRNGKeyArray | None, shape: tuple[int, ...]) -> PyTree[Array]:
        """The resting state of `shape` neurons."""

    @abc.abstractmethod
    def vector_field(self, t: Any, state: PyTree[Array], drive: Float[Array, "..."]) -> PyTree[Array]:
        """`d state / dt` under a continuous input current `drive` (a diffrax vector field)."""

    @abc.abstractmethod
    def step(self, state: PyTree[Array], drive: Float[Array, "..."],
             dt: Any) -> tuple[PyTree[Array], Float[Array, "..."]]:
        """Advances `state` by `dt` (exact exponential integration where it exists).

        **Returns:** `(state, output)` — spikes (0/1, surrogate derivative) or rates.
        """

    @abc.abstractmethod
    def output(self, state: PyTree[Array]) -> Float[Array, "..."]:
        """The observable of a state: membrane potential (spiking) or activation (rate)."""


class AbstractSpikingNeuron(AbstractNeuron):
    """A neuron that spikes when `threshold` crosses zero from below, after which `reset` applies.

    Subclasses carry a `surrogate` field used by `step` so that autodiff through a clock-driven
    simulation yields surrogate gradients.
    """

    surrogate: eqx.AbstractVar[AbstractSurrogate]

    @abc.abstractmethod
    def threshold(self, state: PyTree[Array]) -> Float[Array, "..."]:
        """A value whose upward zero crossing is a spike (`v - v_th` for LIF)."""

    @abc.abstractmethod
    def reset(self, state: PyTree[Array]) -> PyTree[Array]:
        """The jump map applied at a spike (to every neuron of `state`; mask as needed)."""


class AbstractEventNeuron(AbstractSpikingNeuron):
    """A spiking neuron with an exact event-driven form: closed-form flow between events, the jump
    a synaptic event causes, and the time of the next threshold crossing.

    `simjax.simulate` with `method="event"`, `simjax.spike_times` and the pseudodynamics need
    these; a neuron without them is simulated clock-driven or as an ODE. `bias` is the constant
    input current (the pseudodynamics raise it after the trial).
    """

    bias: eqx.AbstractVar[Float[Array, "*pop"]]

    @abc.abstractmethod
    def free_flow(self, state: PyTree[Array], dt: Any) -> PyTree[Array]:
        """The exact state after `dt` with no synaptic input (constant parameters such as the bias
        current included)."""

    @abc.abstractmethod
    def receive(self, state: PyTree[Array], weight: Float[Array, "..."]) -> PyTree[Array]:
        """The state right after a presynaptic spike of `weight` arrives (the synaptic jump)."""

    @abc.abstractmethod
    def time_to_spike(self, state: PyTree[Array], horizon: Any) -> Float[Array, "..."]:
        """Time until `threshold` first crosses zero from below under `free_flow`, or `inf` if not
        within `horizon`; exact gradients (closed forms or the implicit function theorem)."""

    def check_event_form(self, owner: str) -> None:
        """Raises `TypeError` when this configuration has no exact event-driven form (e.g. a
        voltage-dependent conductance); called by the event-driven simulators before tracing."""
        del owner


class AbstractRateNeuron(AbstractNeuron):
    """A neuron whose output is a firing rate `activation(state)`."""
