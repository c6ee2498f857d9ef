"""`Exact`: the gradient of the task loss through the simulation, by reverse-mode autodiff."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from ..parameters._parameters import partition
from ..surrogates._surrogates import AbstractSurrogate, replace_surrogate
from ._base import AbstractStatelessRule


def loss_and_outputs(params, static, task, batch, key, simulate_kwargs):
    """The task loss of `combine(params, static)` on `batch`, with the simulation outputs."""
    model = eqx.combine(params, static)
    outputs = task.forward(model, batch, key, **simulate_kwargs)
    return task.loss(outputs, batch), outputs


class Exact(AbstractStatelessRule):
    """`jax.value_and_grad` of the task loss through `simjax.simulate`.

    Clock-driven spiking networks give surrogate gradients (through the neuron's surrogate);
    event-driven simulation gives exact spike-time gradients; ODE simulation differentiates
    through `diffrax` with the adjoint passed in `simulate_kwargs`.

    **Arguments:**

    - `surrogate`: if given, replaces every surrogate of the model for the gradient (the loss is
      unchanged: surrogates only act backward) — a rule per surrogate shape or slope.
    - keywords for `simjax.simulate` (`memory="recompute"`, `adjoint=...`), used for every
      forward pass.
    """

    surrogate: AbstractSurrogate | None
    simulate_kwargs: tuple = eqx.field(static=True)

    def __init__(self, surrogate: AbstractSurrogate | None = None, **simulate_kwargs):
        self.surrogate = surrogate
        self.simulate_kwargs = tuple(sorted(simulate_kwargs.items()))

    def __call__(self, model, task, batch, key):
        original = model
        if self.surrogate is not None:
            model = replace_surrogate(model, self.surrogate)
        params, static = partition(model)
        (loss, outputs), grads = jax.value_and_grad(loss_and_outputs, has_aux=True)(
            params, static, task, batch, key, dict(self.simulate_kwargs))
        if self.surrogate is not None:
            # updates are shaped like the model's own parameters: its surrogates (which get no
            # gradient, they only act backward) come back in place of the replacement
            grads = _restore_surrogates(grads, partition(original)[0])
        return loss, grads, task.metrics(outputs, batch)


def _restore_surrogates(grads, reference):
    is_surrogate = lambda x: isinstance(x, AbstractSurrogate)  # noqa: E731
    originals = iter([x for x in jax.tree.leaves(reference, is_leaf=is_surrogate) if is_surrogate(x)])
    return jax.tree.map(lambda x: jax.tree.map(jnp.zeros_like, next(originals)) if is_surrogate(x) else x, grads,
                        is_leaf=is_surrogate)
