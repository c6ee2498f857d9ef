"""`Exact`: the gradient of the task loss through the simulation, by reverse-mode autodiff."""

from __future__ import annotations

import equinox as eqx
import jax

from ..parameters import partition
from ._base import AbstractRule


def loss_and_outputs(params, static, task, batch, key, simulate_kwargs):
    """The task loss of ``combine(params, static)`` on ``batch``, with the simulation outputs."""
    model = eqx.combine(params, static)
    outputs = task.forward(model, batch, key, **simulate_kwargs)
    return task.loss(outputs, batch), outputs


class Exact(AbstractRule):
    """``jax.value_and_grad`` of the task loss through `simjax.simulate`.

    Clock-driven spiking networks give surrogate gradients (through the neuron's surrogate);
    event-driven simulation gives exact spike-time gradients; ODE simulation differentiates
    through ``diffrax`` with the adjoint passed in ``simulate_kwargs``.

    **Arguments:** keywords for `simjax.simulate` (``memory="recompute"``, ``adjoint=...``), used
    for every forward pass.
    """

    simulate_kwargs: tuple = eqx.field(static=True)

    def __init__(self, **simulate_kwargs):
        self.simulate_kwargs = tuple(sorted(simulate_kwargs.items()))

    def __call__(self, model, task, batch, key):
        params, static = partition(model)
        (loss, outputs), grads = jax.value_and_grad(loss_and_outputs, has_aux=True)(
            params, static, task, batch, key, dict(self.simulate_kwargs))
        return loss, grads, task.metrics(outputs, batch)
