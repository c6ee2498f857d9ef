r"""Real-time recurrent learning: the exact gradient, by forward-mode sensitivities carried in time
(Williams & Zipser, Neural Computation 1:270, 1989).

With the network's clock-driven step `s_t = F(s_{t-1}, x_t; theta)` (readout `y_t` part of
`s_t`) and `P = number of parameters`, RTRL carries the sensitivity `S_t = ds_t / dtheta`
(`P` tangents of the state) forward:

    S_t = dF/ds S_{t-1} + dF/dtheta,          dL/dtheta = sum_t  (dL/dy_t) . (dy_t / dtheta)

Both Jacobian products come from one `jax.linearize` of the network's own `step` per time step,
so spiking networks use the same surrogate pseudo-derivative (and the same detached resets) as
`simjax.rules.Exact`: RTRL equals BPTT to rounding. Memory is `P x state` (`O(N^3)` for `N`
recurrent units), independent of the sequence length `T`; time `O(P x step)` per step. Meant for
small networks (ground truth for e-prop, which drops the cross-neuron terms of `dF/ds`).

`dL/dy_t` comes from the task's per-step loss at step `t` when the task defines one
(`step_terms`/`step_loss`: one forward pass, nothing stored over time); otherwise from the
gradient of the task loss on a first forward pass's readout trajectory (`time x batch x n_out`
stored).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from .._checks import check_int
from ..networks._base import AbstractNetwork
from ..parameters._parameters import partition
from ._base import AbstractStatelessRule
from ._per_step import has_step_loss, step_error, trajectory_error


class RTRL(AbstractStatelessRule):
    """Exact gradients by real-time recurrent learning (module docstring).

    **Arguments:**

    - `max_params`: refuse models with more trainable scalars than this (the sensitivities cost
      `max_params x state` memory and as many tangent evaluations per step); `None` for no limit.

    **Returns** (call): `(loss, updates, aux)` as `simjax.rules.Exact`.
    """

    max_params: int | None = eqx.field(static=True)

    def __init__(self, max_params: int | None = 20_000):
        if max_params is not None:
            check_int("max_params", max_params, what="or None", owner="RTRL")
        self.max_params = max_params

    def __call__(self, model, task, batch, key):
        if not isinstance(model, AbstractNetwork):
            raise TypeError(f"RTRL: needs a simjax network simulated clock-driven, got {type(model).__name__}")
        inputs = jnp.asarray(batch.inputs)
        if inputs.ndim < 2 or inputs.shape[-1] != model.n_in:
            raise ValueError(f"RTRL: inputs have shape {inputs.shape}, expected [time, *batch, {model.n_in}]")
        params, static = partition(model)
        theta, unravel = ravel_pytree(params)
        n_params = theta.shape[0]
        if self.max_params is not None and n_params > self.max_params:
            raise ValueError(f"RTRL: the model has {n_params} trainable parameters, more than max_params="
                             f"{self.max_params}; RTRL costs O(parameters x state) per step (use a smaller "
                             "network, or raise max_params)")
        dt = task.dt

        def step(th, state, x_t):
            net = eqx.combine(unravel(th), static)
            return net.step(state, net.prepare(x_t[None], dt)[0], dt)[0]

        state0 = model.init(key, inputs.shape[1:-1])
        basis = jnp.eye(n_params, dtype=theta.dtype)
        sens0 = jax.tree.map(lambda s: jnp.zeros((n_params,) + jnp.shape(s), jnp.result_type(s)), state0)
        online = has_step_loss(task)
        if online:
            error_xs, shared = task.step_terms(batch)
        else:
            first = task.forward(model, batch, key, record=("readout",))
            loss, aux, error_xs = trajectory_error(task, first.readout, batch, first.final_state)

        def body(carry, xs):
            state, sens, grad, total = carry
            x_t, err = xs
            state, f_jvp = jax.linearize(lambda th, s: step(th, s, x_t), theta, state)
            sens = jax.vmap(f_jvp)(basis, sens)
            if online:
                loss_t, g_t = step_error(task, state.readout, err, shared)
            else:
                loss_t, g_t = jnp.zeros((), theta.dtype), err
            grad = grad + jnp.tensordot(sens.readout, g_t, axes=g_t.ndim)
            return (state, sens, grad, total + loss_t), None

        carry0 = (state0, sens0, jnp.zeros_like(theta), jnp.zeros((), theta.dtype))
        (_, _, grad, total), _ = jax.lax.scan(body, carry0, (inputs, error_xs))
        if online:
            loss, aux = total, {"loss": total}
        return loss, unravel(grad), aux


__all__ = ["RTRL"]
