"""The task interface: pure data generators with a loss and metrics on a model's outputs."""

from __future__ import annotations

import abc
from typing import Any

import equinox as eqx
from jaxtyping import Array, Float

from ..simulate import Output, simulate


class Batch(eqx.Module):
    """One batch: ``inputs [time, batch, n_in]``, ``targets`` (task-specific), optional ``mask``
    (broadcastable to the per-step loss, ``[time, batch]`` or ``[time]``)."""

    inputs: Any
    targets: Any
    mask: Any = None


class AbstractTask(eqx.Module):
    """A task: ``sample(key, batch_size) -> Batch``, ``loss(outputs, batch)``, ``metrics(outputs, batch)``.

    `forward` runs a model on a batch (by default `simjax.simulate` clock-driven with the task's
    ``dt``); learning rules differentiate ``loss(forward(model, batch, key), batch)``.
    """

    dt: eqx.AbstractVar[float]

    @abc.abstractmethod
    def sample(self, key: Any, batch_size: int) -> Batch: ...

    @abc.abstractmethod
    def loss(self, outputs: Output, batch: Batch) -> Float[Array, ""]: ...

    def metrics(self, outputs: Output, batch: Batch) -> dict[str, Float[Array, ""]]:
        return {"loss": self.loss(outputs, batch)}

    def forward(self, model: Any, batch: Batch, key: Any = None, **simulate_kwargs) -> Output:
        return simulate(model, batch.inputs, dt=self.dt, key=key, **simulate_kwargs)
