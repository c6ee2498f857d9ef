r"""The synapse-dynamics interface: the receptor state of a postsynaptic population as pure dynamics.

A synapse model here is what a postsynaptic neuron's receptors do with the spikes that reach
them (the weight maps live in the projections, `AbstractProjection`): it keeps an explicit state
per postsynaptic neuron (a current, a conductance, the two variables of an alpha kernel), decays
it between spikes, jumps it when a presynaptic spike of weight `w` arrives, and tells the
membrane which current it carries. Every model is linear in its own state between spikes, so its
free evolution over any interval has a closed form (`decay`): the same definition serves the
clock-driven method (decay over `dt`), the event-driven method (decay over the time to the next
event) and the ODE method (`vector_field`).

**How synapses drive the membrane.** The synaptic current into a neuron at potential `v` is
written in linearised form

    I_syn(v) = i - g v

(`AbstractSynapse.linearised` returns `(g, i)`; potentials and currents share the membrane's
units, conductances are in units of the leak conductance). Current-based synapses have `g = 0`
and `i` their current; conductance-based synapses `g` their conductance and
`i = g E_rev`, so that `I_syn = g (E_rev - v)`. A membrane that holds `(g, i)` fixed over a
step integrates exactly the exponential-Euler scheme (Brian2's `exponential_euler`); a membrane
driven only by current synapses can instead integrate exactly, for which current synapses
declare the voltage their current causes over an interval (`AbstractCurrentSynapse.membrane_response`).
"""

from __future__ import annotations

import abc
from typing import Any

import equinox as eqx
import jax
from jaxtyping import Array, Float, PyTree


class AbstractSynapse(eqx.Module):
    """The receptors of one kind on a postsynaptic population (state per neuron, pure dynamics).

    Subclasses implement `init`, `decay`, `receive`, `vector_field` and `linearised`, and for the
    event-driven method `time_constants`; `step` (the clock-driven update) is `decay` over `dt`
    followed by `receive`.
    """

    @abc.abstractmethod
    def init(self, shape: tuple[int, ...], dtype: Any) -> PyTree[Array]:
        """The state without input (every variable zero) for `shape` postsynaptic neurons."""

    @abc.abstractmethod
    def decay(self, state: PyTree[Array], dt: Any) -> PyTree[Array]:
        """The exact state after `dt` without presynaptic spikes."""

    @abc.abstractmethod
    def receive(self, state: PyTree[Array], weight: Float[Array, ...]) -> PyTree[Array]:
        """The state right after presynaptic spikes of summed `weight` arrive (per neuron)."""

    @abc.abstractmethod
    def vector_field(self, t: Any, state: PyTree[Array]) -> PyTree[Array]:
        """`d state / dt` between spikes."""

    @abc.abstractmethod
    def linearised(self, state: PyTree[Array], v: Float[Array, ...]) -> tuple[Float[Array, ...], Float[Array, ...]]:
        """`(g, i)` such that the synaptic current into a neuron at potential `v` is `i - g v`."""

    def step(self, state: PyTree[Array], weight: Float[Array, ...], dt: Any) -> PyTree[Array]:
        """`decay` over `dt`, then `receive` `weight` (spikes arriving at the end of the step)."""
        return self.receive(self.decay(state, dt), weight)

    def time_constants(self) -> tuple[Float[Array, ...], ...]:
        """The time constants (ms) with which the state decays, none for a state that does not
        outlast the step it arrives in. The event-driven method reads them (how long after an
        input the receptors still move the membrane); the clock-driven method does not, so a
        subclass meant only for it need not define them."""
        raise NotImplementedError(f"{type(self).__name__} does not define `time_constants`, which the "
                                  "event-driven method needs (the clock-driven method does not)")


class AbstractCurrentSynapse(AbstractSynapse):
    """A current-based synapse: its current does not depend on the membrane potential, so a
    membrane driven only by such synapses integrates exactly (`membrane_response`).

    Weights are signed: a negative weight is an inhibitory current.
    """

    @abc.abstractmethod
    def current(self, state: PyTree[Array]) -> Float[Array, ...]:
        """The synaptic current (membrane units)."""

    @abc.abstractmethod
    def membrane_response(self, state: PyTree[Array], dt: Any, tau_mem: Float[Array, ...]) -> Float[Array, ...]:
        r"""The exact potential change after `dt` that this synapse's current causes in a leaky
        membrane `tau_mem dv/dt = -v + I(t)` starting from `v = 0` (the synapse starting in
        `state`, without further spikes)."""

    def linearised(self, state, v):
        i = self.current(state)
        return jax.numpy.zeros_like(i), i


class AbstractConductanceSynapse(AbstractSynapse):
    """A conductance-based synapse: current `g (E_rev - v)`, with `g` the (possibly
    voltage-dependent) conductance. Its jumps are the magnitudes of the weights, so Dale-signed
    inhibitory weights (`w <= 0`) open `|w|` of inhibitory conductance."""

    e_rev: eqx.AbstractVar[Float[Array, "*pop"]]

    @abc.abstractmethod
    def conductance(self, state: PyTree[Array], v: Float[Array, ...]) -> Float[Array, ...]:
        """The conductance at potential `v` (units of the leak conductance)."""

    def linearised(self, state, v):
        g = self.conductance(state, v)
        return g, g * self.e_rev
