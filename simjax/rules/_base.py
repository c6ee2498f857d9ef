"""The learning-rule contract: `rule(model, task, batch, key) -> (loss, updates, aux)`."""

from __future__ import annotations

import abc
from typing import Any

import equinox as eqx
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from ..networks._base import AbstractNetwork
from ..tasks._base import AbstractTask, Batch


class AbstractRule(eqx.Module):
    """A credit-assignment rule.

    `updates` has the structure of `simjax.parameters.params(model)` (`None` at frozen
    leaves) and the sign convention of a gradient (descent = subtract), so any optax optimiser
    applies it. `aux` is a dict of scalar diagnostics (the task's metrics at least).

    Rules may carry internal state (learned feedback, traces), optax-style: `init` builds it and
    `step` threads it; `simjax.fit` always calls `step`, so stateless and stateful rules train the
    same way. Stateless rules derive from `AbstractStatelessRule`, which implements both.
    """

    @abc.abstractmethod
    def __call__(self, model: AbstractNetwork, task: AbstractTask, batch: Batch,
                 key: PRNGKeyArray | None) -> tuple[Float[Array, ""], PyTree, dict[str, Any]]:
        """`(loss, updates, aux)` for one batch."""

    @abc.abstractmethod
    def init(self, model: AbstractNetwork, key: PRNGKeyArray | None) -> PyTree:
        """The rule's initial internal state (`None` for stateless rules)."""

    @abc.abstractmethod
    def step(self, state: PyTree, model: AbstractNetwork, task: AbstractTask, batch: Batch,
             key: PRNGKeyArray | None) -> tuple[Float[Array, ""], PyTree, dict[str, Any], PyTree]:
        """`(loss, updates, aux, state)`: one batch, threading the rule's state."""


class AbstractStatelessRule(AbstractRule):
    """A rule without internal state: `init` gives `None` and `step` is `__call__`."""

    def init(self, model: AbstractNetwork, key: PRNGKeyArray | None) -> None:
        return None

    def step(self, state: None, model: AbstractNetwork, task: AbstractTask, batch: Batch,
             key: PRNGKeyArray | None) -> tuple[Float[Array, ""], PyTree, dict[str, Any], None]:
        loss, updates, aux = self(model, task, batch, key)
        return loss, updates, aux, state
