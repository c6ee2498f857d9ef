"""The task interface: pure data generators with a loss and metrics on a model's outputs."""

from __future__ import annotations

import abc
from typing import Any

import equinox as eqx
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from .._simulate.output import Output
from .._simulate.simulate import simulate
from ..networks._base import AbstractNetwork


class Batch(eqx.Module):
    """One batch: `inputs` (`[time, batch, n_in]` for clock-driven tasks, a `simjax.SpikeTrain`
    for event-driven ones), `targets` (task-specific), and an optional `mask` (broadcastable to
    the per-step loss, `[time, batch]` or `[time]`)."""

    inputs: Any
    targets: Any
    mask: Any = None


class AbstractTask(eqx.Module):
    """A task: `sample(key, batch_size) -> Batch`, `loss(outputs, batch)`, `metrics(outputs, batch)`.

    `forward` runs a model on a batch; learning rules differentiate
    `loss(forward(model, batch, key), batch)`.
    """

    @abc.abstractmethod
    def sample(self, key: PRNGKeyArray, batch_size: int) -> Batch:
        """A batch of `batch_size` independent trials."""

    @abc.abstractmethod
    def loss(self, outputs: Output, batch: Batch) -> Float[Array, ""]:
        """The scalar loss a rule minimises."""

    @abc.abstractmethod
    def metrics(self, outputs: Output, batch: Batch) -> dict[str, Float[Array, ""]]:
        """Scalar diagnostics (`"loss"` at least)."""

    @abc.abstractmethod
    def forward(self, model: AbstractNetwork, batch: Batch, key: PRNGKeyArray | None = None,
                **simulate_kwargs: Any) -> Output:
        """The model's `Output` on `batch`."""


class AbstractClockTask(AbstractTask):
    """A task whose inputs are `[time, batch, n_in]` sequences on a clock grid of step `dt`:
    `forward` is `simjax.simulate` clock-driven."""

    dt: eqx.AbstractVar[float]

    def forward(self, model: AbstractNetwork, batch: Batch, key: PRNGKeyArray | None = None,
                **simulate_kwargs: Any) -> Output:
        return simulate(model, batch.inputs, dt=self.dt, key=key, **simulate_kwargs)


class AbstractPerStepTask(AbstractClockTask):
    """A clock-driven task whose loss is a weighted sum over time steps,

        per_step, shared = task.step_terms(batch)   # per_step: pytree, leading axis = time
        loss = sum_t task.step_loss(readout[t], per_step[t], shared)

    so that forward-in-time rules (e-prop, RTRL) obtain `dL/dreadout_t` at step `t` without
    storing the trajectory."""

    @abc.abstractmethod
    def step_terms(self, batch: Batch) -> tuple[PyTree, PyTree]:
        """`(per_step, shared)`: the per-step loss data (leading axis time) and the rest."""

    @abc.abstractmethod
    def step_loss(self, readout_t: Float[Array, "*batch n_out"], per_step_t: PyTree,
                  shared: PyTree) -> Float[Array, ""]:
        """The loss contribution of one time step."""
