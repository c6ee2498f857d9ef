"""`Dataset`: a supervised task over fixed arrays (a training set held in the module)."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array

from ._base import AbstractClockTask, Batch
from ._supervised import Supervised


class Dataset(AbstractClockTask):
    """Fixed `inputs [time, n, n_in]` and `targets` (`[n, ...]` per-trial or `[time, n, ...]`
    per-step, as `supervised` expects), scored by a `Supervised` objective.

    `sample(key, batch_size)` draws a minibatch without replacement; `batch_size=None` or
    `full_batch=True` returns the whole set (deterministic gradient descent).

    **Arguments:** `inputs`, `targets`, `supervised` (default `Supervised("mse", "last")`),
    `full_batch`.
    """

    inputs: Array
    targets: Array
    supervised: Supervised
    full_batch: bool = eqx.field(static=True)

    def __init__(self, inputs: Any, targets: Any, supervised: Supervised | None = None, full_batch: bool = False):
        inputs, targets = jnp.asarray(inputs), jnp.asarray(targets)
        if inputs.ndim != 3:
            raise ValueError(f"Dataset: inputs have shape {inputs.shape}, expected [time, n, n_in]")
        n = inputs.shape[1]
        if targets.shape[:1] != (n,) and targets.shape[1:2] != (n,):
            raise ValueError(f"Dataset: targets have shape {targets.shape}; expected n = {n} trials on the first "
                             "axis (per trial) or the second axis (per time step)")
        self.inputs, self.targets = inputs, targets
        self.supervised = Supervised("mse", "last") if supervised is None else supervised
        self.full_batch = full_batch

    @property
    def dt(self) -> float:
        return self.supervised.dt

    @property
    def size(self) -> int:
        return self.inputs.shape[1]

    @property
    def n_in(self) -> int:
        return self.inputs.shape[-1]

    def _per_step_targets(self) -> bool:
        return self.targets.shape[:1] != (self.size,)

    def all(self) -> Batch:
        """The whole data set as one batch."""
        return Batch(inputs=self.inputs, targets=self.targets)

    def sample(self, key, batch_size):
        if self.full_batch or batch_size is None or batch_size >= self.size:
            return self.all()
        idx = jax.random.choice(key, self.size, (batch_size,), replace=False)
        targets = self.targets[:, idx] if self._per_step_targets() else self.targets[idx]
        return Batch(inputs=self.inputs[:, idx], targets=targets)

    def loss(self, outputs, batch):
        return self.supervised.loss(outputs, batch)

    def metrics(self, outputs, batch):
        return self.supervised.metrics(outputs, batch)
