"""The learning-rule contract: ``rule(model, task, batch, key) -> (loss, updates, aux)``."""

from __future__ import annotations

import abc
from typing import Any

import equinox as eqx
from jaxtyping import Array, Float, PyTree


class AbstractRule(eqx.Module):
    """A credit-assignment rule.

    ``updates`` has the structure of ``simjax.parameters.params(model)`` (``None`` at frozen
    leaves) and the sign convention of a gradient (descent = subtract), so any optax optimiser
    applies it. ``aux`` is a dict of scalar diagnostics (the task's metrics at least).

    Rules with internal state (learned feedback, traces) override `init` and `step`, optax-style;
    `simjax.fit` always calls `step`, so stateless and stateful rules train the same way.
    """

    @abc.abstractmethod
    def __call__(self, model: Any, task: Any, batch: Any, key: Any) -> tuple[Float[Array, ""], PyTree, dict]:
        """``(loss, updates, aux)`` for one batch."""

    def init(self, model: Any, key: Any) -> PyTree:
        """The rule's initial internal state (``None`` for stateless rules)."""
        return None

    def step(self, state: PyTree, model: Any, task: Any, batch: Any, key: Any):
        """``(loss, updates, aux, state)``; stateless rules ignore ``state``."""
        loss, updates, aux = self(model, task, batch, key)
        return loss, updates, aux, state
