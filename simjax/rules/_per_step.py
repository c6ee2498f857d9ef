"""Learning signals for forward-in-time rules (e-prop, RTRL): the task loss's gradient with respect to
the readout, either step by step (tasks whose loss is a sum over time steps,
`simjax.tasks.AbstractPerStepTask`) or for the whole trajectory at once."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .._simulate.output import Output
from ..tasks._base import AbstractPerStepTask, AbstractTask


def has_step_loss(task: AbstractTask) -> bool:
    """Whether `task` declares its loss as a sum over time steps (`simjax.tasks.AbstractPerStepTask`)."""
    return isinstance(task, AbstractPerStepTask)


def step_error(task: AbstractPerStepTask, readout_t, per_step_t, shared):
    """`(loss_t, dloss_t / dreadout_t)` of one time step."""
    return jax.value_and_grad(task.step_loss)(readout_t, per_step_t, shared)


def trajectory_error(task: AbstractTask, readout, batch, final_state=None):
    """`(loss, metrics, dL/dreadout [time, batch, n_out])` from the task's loss on a readout
    trajectory (the other recorded fields are absent)."""

    def loss_fn(r):
        out = Output(spikes=None, v=None, readout=r, final_state=final_state, info={})
        return task.loss(out, batch), out

    (loss, out), g = jax.value_and_grad(loss_fn, has_aux=True)(readout)
    return loss, task.metrics(out, batch), g


def reverse_filter(g, kappa):
    """`h_t = g_t + kappa h_{t+1}` (the readout leak seen backwards in time), along axis 0."""

    def body(h, g_t):
        h = g_t + kappa * h
        return h, h

    _, h = jax.lax.scan(body, jnp.zeros_like(g[0]), g, reverse=True)
    return h
