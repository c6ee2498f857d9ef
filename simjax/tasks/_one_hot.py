"""`OneHotPatterns`: the one-hot auto-association task of the BTSP network (Galloni, Peddada &
Milstein, SNUFA 2022): input pattern `k` is row `k` of the `n x n` identity, the target is the same
one-hot vector on `n` output units."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from .._checks import check_int, check_positive
from ._base import AbstractClockTask, Batch


class OneHotPatterns(AbstractClockTask):
    """`n` one-hot input patterns, each held for `steps` clock steps; the target is the same one-hot
    vector. Loss: mean squared error of the readout at the last step; accuracy: the argmax of the
    last readout equals the pattern index (all-zero outputs count as class 0, as `argmax` does).

    `sample(key, batch_size)` draws pattern indices uniformly (with replacement); `batch(indices)`
    builds the batch of given patterns (e.g. one shuffled epoch).

    **Arguments:** `n` (patterns and units, default 21), `steps` (forward steps per trial, default
    10), `dt` (the step, default 1).
    """

    n: int = eqx.field(static=True)
    steps: int = eqx.field(static=True)
    dt: float = eqx.field(static=True)

    def __init__(self, n: int = 21, steps: int = 10, dt: float = 1.0):
        self.n = check_int("n", n, owner="OneHotPatterns")
        self.steps = check_int("steps", steps, owner="OneHotPatterns")
        check_positive("dt", dt, owner="OneHotPatterns")
        self.dt = float(dt)

    def batch(self, indices: Int[Array, " batch"]) -> Batch:
        """The patterns `indices` as a batch: inputs `[steps, batch, n]`, targets `[batch, n]`."""
        onehot = jax.nn.one_hot(indices, self.n, dtype=jnp.result_type(float))
        return Batch(inputs=jnp.broadcast_to(onehot, (self.steps, *onehot.shape)), targets=onehot)

    def all(self) -> Batch:
        """Every pattern once, in order."""
        return self.batch(jnp.arange(self.n))

    def sample(self, key, batch_size):
        return self.batch(jax.random.randint(key, (batch_size,), 0, self.n))

    def loss(self, outputs, batch):
        return jnp.mean((outputs.readout[-1] - batch.targets) ** 2)

    def metrics(self, outputs, batch) -> dict[str, Float[Array, ""]]:
        y = outputs.readout[-1]
        correct = jnp.argmax(y, axis=-1) == jnp.argmax(batch.targets, axis=-1)
        return {"loss": self.loss(outputs, batch), "accuracy": jnp.mean(correct.astype(y.dtype))}
