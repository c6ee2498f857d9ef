"""Checks and preparation shared by the event-driven simulators and `simjax.spike_times`."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from .._checks import check_positive, is_concrete
from .._spike_train import SpikeTrain
from ..neurons._base import AbstractEventNeuron, AbstractNeuron
from ..neurons._qif import QIF


def check_event_neuron(neuron: AbstractNeuron, owner: str) -> None:
    """Raises `TypeError` unless `neuron` has an exact event-driven form (`AbstractEventNeuron`)."""
    if not isinstance(neuron, AbstractEventNeuron):
        raise TypeError(f"{owner}: {type(neuron).__name__} has no exact event-driven form (free_flow, receive, "
                        "time_to_spike; e.g. simjax.neurons.LIF, ALIF, QIF, SynapticLIF); use method='clock' or "
                        "method='ode'")
    neuron.check_event_form(owner)


def check_spike_inputs(inputs: Any, n_in: int, t1: Any, owner: str) -> None:
    """Raises unless `inputs` is a `SpikeTrain` with `n_in` channels and `t1` a positive end time."""
    if not isinstance(inputs, SpikeTrain):
        raise TypeError(f"{owner}: inputs must be a simjax.SpikeTrain(times, ids, n), got {type(inputs).__name__}")
    if inputs.n != n_in:
        raise ValueError(f"{owner}: the spike train has n={inputs.n} channels, expected n_in={n_in}")
    if t1 is None:
        raise ValueError(f"{owner}: needs t1, the end time (e.g. t1=100.0)")
    check_positive("t1", t1, owner=owner)


def check_pseudo_drive(neuron: AbstractEventNeuron, drive: Any, owner: str) -> None:
    """Raises `ValueError` unless `drive` is finite and (for QIF, when concrete) makes every
    neuron's current `bias + drive` positive, so that every neuron fires after the trial."""
    if not is_concrete(drive):
        return
    if not np.all(np.isfinite(np.asarray(drive))):
        raise ValueError(f"{owner}: pseudo_drive must be finite, got {drive!r}")
    if isinstance(neuron, QIF) and is_concrete(neuron.bias):
        low = float(np.min(np.asarray(neuron.bias) + np.asarray(drive)))
        if low <= 0:
            raise ValueError(f"{owner}: pseudo_drive={drive!r} leaves the QIF current bias + pseudo_drive = "
                             f"{low:g} <= 0, so some neurons would never fire; use a larger pseudo_drive")


def sorted_inputs(inputs: SpikeTrain, t1: Float[Array, ""], *, checks: bool, owner: str
                  ) -> tuple[Float[Array, "*batch events"], Int[Array, "*batch events"]]:
    """Each trial's input spikes sorted in time, those outside `[0, t1]` turned into `inf`
    padding (NaN times rejected when `checks` and the times are concrete)."""
    times = jnp.asarray(inputs.times, t1.dtype)
    if checks and is_concrete(times) and np.any(np.isnan(np.asarray(times))):
        raise ValueError(f"{owner}: input spike times contain NaN (use inf for padding)")
    times = jnp.where((times >= 0) & (times <= t1), times, jnp.inf)
    order = jnp.argsort(times, axis=-1)
    times = jnp.take_along_axis(times, order, axis=-1)
    ids = jnp.take_along_axis(jnp.broadcast_to(jnp.asarray(inputs.ids), times.shape), order, axis=-1)
    return times, ids
