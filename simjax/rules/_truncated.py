r"""Truncated backpropagation through time.

`TruncatedBPTT(k)` differentiates the task loss through a clock-driven simulation in which the
carried network state is cut from the graph (`stop_gradient`) at the start of every block of
`k` steps: before the steps `t = k, 2k, 3k, ...` (0-based), never before step 0. With the
step map `s_{t+1} = F(s_t, x_t; theta)` and the loss `L(y_0, ..., y_{T-1})`, the update is

    g_k = sum_j  sum_{t in block j}  dL/dy_t  d y_t / d theta |_{s_{jk} held fixed}

so the error of step `t` flows back through `t - k floor(t / k) + 1 <= k` steps, to the start of
its block: BPTT(k; k) in Williams & Peng's (1990) notation (errors are not carried across block
boundaries; the block updates are summed over the whole sequence). `k >= T` is the exact
gradient; `k = 1` keeps only each step's direct dependence on the parameters. The input
projection (state-independent work hoisted into `prepare`) is not recurrent and is never cut.

The truncation is done by `TruncatedNetwork`, a wrapper network whose scan step cuts the state,
so every network that `simjax.simulate` runs clock-driven can be trained this way.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from .._checks import check_int
from ..networks._base import AbstractNetwork, AbstractWrappedNetwork
from ..parameters._parameters import partition
from ._base import AbstractStatelessRule


def _check_k(k, owner):
    check_int("k", k, what="the truncation length in steps", owner=owner)


class TruncatedNetwork(AbstractWrappedNetwork):
    """`net` with the gradient through its carried state cut every `k` clock-driven steps.

    The forward pass is identical to `net`'s; `prepare` adds the step index to the prepared
    input, and the scan step applies `stop_gradient` to the incoming state at steps
    `k, 2k, ...`. Clock-driven simulation only.

    **Arguments:** `net` (any `simjax.networks.AbstractNetwork`), `k` (truncation length, steps).
    """

    net: AbstractNetwork
    k: int = eqx.field(static=True)

    def __init__(self, net: AbstractNetwork, k: int):
        if not isinstance(net, AbstractNetwork):
            raise TypeError(f"TruncatedNetwork: net must be a simjax network, got {type(net).__name__}")
        _check_k(k, "TruncatedNetwork")
        self.net, self.k = net, k

    def prepare(self, inputs, dt):
        steps = jnp.shape(inputs)[0]
        return self.net.prepare(inputs, dt), jnp.arange(steps, dtype=jnp.int32)

    def _cut(self, state, t):
        cut = (t > 0) & (t % self.k == 0)
        detach = lambda s: jnp.where(cut, jax.lax.stop_gradient(s), s) if eqx.is_inexact_array(s) else s
        return jax.tree.map(detach, state)

    def step(self, state, prepared_t, dt):
        x_t, t = prepared_t
        return self.net.step(self._cut(state, t), x_t, dt)

    def step_fn(self, dt):
        inner = self.net.step_fn(dt)
        return lambda state, prepared_t: inner(self._cut(state, prepared_t[1]), prepared_t[0])

    def vector_field(self, t, state, inputs_t):
        raise NotImplementedError("TruncatedNetwork truncates the clock-driven scan; use method='clock'")

    def observe(self, state):
        raise NotImplementedError("TruncatedNetwork truncates the clock-driven scan; use method='clock'")


class TruncatedBPTT(AbstractStatelessRule):
    """Gradient of the task loss with backpropagation truncated to blocks of `k` steps
    (see the module docstring for the exact definition).

    **Arguments:**

    - `k`: truncation length in time steps (positive int; `k >= T` is `Exact`).
    - `simulate_kwargs`: keywords for `simjax.simulate` (e.g. `memory="recompute"`).
    """

    k: int = eqx.field(static=True)
    simulate_kwargs: tuple = eqx.field(static=True)

    def __init__(self, k: int = 20, **simulate_kwargs):
        _check_k(k, "TruncatedBPTT")
        if simulate_kwargs.get("method", "clock") != "clock":
            raise ValueError(f"TruncatedBPTT: method {simulate_kwargs['method']!r} is not supported; "
                             "truncation applies to the clock-driven scan (method='clock')")
        self.k = k
        self.simulate_kwargs = tuple(sorted(simulate_kwargs.items()))

    def __call__(self, model, task, batch, key):
        if not isinstance(model, AbstractNetwork):
            raise TypeError(f"TruncatedBPTT: needs a simjax network simulated clock-driven, got "
                            f"{type(model).__name__}")
        params, static = partition(model)
        kwargs = dict(self.simulate_kwargs)

        def loss_fn(p):
            outputs = task.forward(TruncatedNetwork(eqx.combine(p, static), self.k), batch, key, **kwargs)
            return task.loss(outputs, batch), outputs

        (loss, outputs), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        return loss, grads, task.metrics(outputs, batch)
