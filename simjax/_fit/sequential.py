r"""Sequential learning: train on task A, then on task B from A's solution (no replay), while
tracking every task's loss along the whole run.

Each phase is one call of `simjax.fit` (a `lax.scan` over steps) with a fresh optimiser and rule
state, so the only memory of earlier tasks is in the weights. The losses of the evaluation tasks
are measured inside the scan by `TaskLosses`, passed to `fit` as its `track` probe, on batches
drawn once before training (so that the curves are comparable across steps). Everything is pure:
`jax.vmap` over keys or hyper-parameters trains many sequences at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, PRNGKeyArray

from ..networks._base import AbstractNetwork
from ..rules._base import AbstractRule
from ..tasks._base import AbstractTask
from .fit import fit


class TaskLosses(eqx.Module):
    """The losses of fixed tasks on fixed batches, as a `simjax.fit` `track` probe.

    Called as `probe(step, model, rule, task, batch, key)` it returns
    `{"eval_0": L_0, "eval_1": L_1, ...}` for the model before the step's update, every `every`
    steps (NaN on the others, via `lax.cond`).

    **Arguments:** `tasks` (a sequence of tasks), `batches` (one batch per task), `every`.
    """

    tasks: tuple
    batches: tuple
    every: int = eqx.field(static=True, default=1)

    def __check_init__(self):
        if len(self.tasks) != len(self.batches) or not self.tasks:
            raise ValueError(f"TaskLosses: need one batch per task, got {len(self.tasks)} tasks and "
                             f"{len(self.batches)} batches")
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 1:
            raise ValueError(f"TaskLosses: every must be a positive int, got {self.every!r}")

    @classmethod
    def sample(cls, tasks: Sequence[Any], key, batch_size: int, every: int = 1) -> TaskLosses:
        """Draws one evaluation batch of `batch_size` trials per task from `key`."""
        keys = jax.random.split(key, len(tasks))
        return cls(tuple(tasks), tuple(t.sample(k, batch_size) for t, k in zip(tasks, keys)), every)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f"eval_{i}" for i in range(len(self.tasks)))

    def losses(self, model: AbstractNetwork) -> Float[Array, " n_tasks"]:
        """Every task's loss for `model`."""
        return jnp.stack([t.loss(t.forward(model, b), b) for t, b in zip(self.tasks, self.batches)])

    def __call__(self, step, model, rule, task, batch, key) -> dict:
        del rule, task, batch, key

        def measure(_):
            return self.losses(model)

        def skip(_):
            return jnp.full((len(self.tasks),), jnp.nan, jnp.result_type(float))

        values = jax.lax.cond(step % self.every == 0, measure, skip, None)
        return dict(zip(self.names, values))


def train_sequence(model: AbstractNetwork, rule: AbstractRule, tasks: Sequence[AbstractTask],
                   optimizer: optax.GradientTransformation, *, steps: int | Sequence[int], key: PRNGKeyArray,
                   eval_tasks: Sequence[AbstractTask] | None = None,
                   batch_size: int = 1, eval_batch_size: int | None = None, eval_every: int = 1):
    r"""Trains `model` on `tasks[0]`, then `tasks[1]`, ... each from the previous solution.

    **Arguments:**

    - `model`, `rule`, `optimizer`: as for `simjax.fit` (the optimiser state is re-initialised
      at the start of every phase).
    - `tasks`: the training tasks, in order.
    - `steps`: updates per phase (an int for all, or one per phase).
    - `key`: PRNG key; phase `i` trains with `fold_in(key, i)`, evaluation batches come from
      `fold_in(key, len(tasks))`.
    - `eval_tasks`: tasks whose losses are tracked along the whole run (default: `tasks`).
    - `batch_size`: training trials per update; `eval_batch_size`: trials per evaluation batch
      (default `batch_size`); `eval_every`: evaluate every that many steps (NaN elsewhere).

    **Returns:** `(models, history)`: `models` is the tuple of models after every phase;
    `history` holds `"loss"` (training loss, `[total_steps]`), `"phase"` (`[total_steps]`),
    `"eval"` (`[total_steps + 1, n_eval]`: row `s` is the model after `s` updates), and
    `"losses"` (`[n_phases + 1, n_eval]`: at the start and after each phase).
    """
    tasks = tuple(tasks)
    if not tasks:
        raise ValueError("train_sequence: tasks must hold at least one task")
    phase_steps = (steps,) * len(tasks) if isinstance(steps, int) else tuple(steps)
    if len(phase_steps) != len(tasks) or not all(isinstance(s, int) and s > 0 for s in phase_steps):
        raise ValueError(f"train_sequence: steps must be a positive int or one per task ({len(tasks)}), got {steps!r}")
    eval_tasks = tasks if eval_tasks is None else tuple(eval_tasks)
    probe = TaskLosses.sample(eval_tasks, jax.random.fold_in(key, len(tasks)),
                              batch_size if eval_batch_size is None else eval_batch_size, eval_every)
    models, losses, evals, train_loss, phase = [], [probe.losses(model)], [], [], []
    for i, (task, n) in enumerate(zip(tasks, phase_steps)):
        model, hist = fit(model, rule, task, optimizer, steps=n, key=jax.random.fold_in(key, i),
                          batch_size=batch_size, track=probe)
        models.append(model)
        losses.append(probe.losses(model))
        evals.append(jnp.stack([hist[name] for name in probe.names], axis=-1))
        train_loss.append(hist["loss"])
        phase.append(jnp.full((n,), i, jnp.int32))
    history = {"loss": jnp.concatenate(train_loss), "phase": jnp.concatenate(phase),
               "eval": jnp.concatenate([*evals, losses[-1][None]]), "losses": jnp.stack(losses)}
    return tuple(models), history
