"""A generic supervised task for hand-made batches: MSE or cross-entropy on the readout."""

from __future__ import annotations

from typing import Literal

import equinox as eqx
import jax.numpy as jnp
import optax

from .._checks import check_choice, check_positive
from ._base import AbstractClockTask


def select_readout(readout, mode, mask=None):
    """`readout [time, batch, n_out]` -> what the loss compares: every step (`"all"`), the last
    step (`"last"`) or the (masked) time mean (`"mean"`)."""
    if mode == "all":
        return readout
    if mode == "last":
        return readout[-1]
    if mask is None:
        return jnp.mean(readout, axis=0)
    m = jnp.broadcast_to(_expand(mask, readout.ndim), readout.shape[:-1] + (1,))
    return jnp.sum(readout * m, axis=0) / jnp.maximum(jnp.sum(m, axis=0), 1.0)


def _expand(mask, ndim):
    mask = jnp.asarray(mask)
    return mask.reshape(mask.shape + (1,) * (ndim - mask.ndim))


def masked_mean(per_item, mask):
    """Mean of `per_item` weighted by `mask` (broadcast from the left), or the plain mean."""
    if mask is None:
        return jnp.mean(per_item)
    m = jnp.broadcast_to(_expand(mask, per_item.ndim), per_item.shape).astype(per_item.dtype)
    return jnp.sum(per_item * m) / jnp.maximum(jnp.sum(m), 1.0)


class Supervised(AbstractClockTask):
    """Supervised learning on hand-made batches.

    **Arguments:**

    - `loss`: `"mse"` (targets shaped like the selected readout) or `"cross_entropy"`
      (integer labels shaped like the selected readout without its last axis).
    - `readout`: `"all"` (every time step), `"last"`, or `"mean"` (time average).
    - `dt`: the simulation time step (ms).
    """

    loss_kind: str = eqx.field(static=True)
    readout: str = eqx.field(static=True)
    dt: float = eqx.field(static=True)

    def __init__(self, loss: Literal["mse", "cross_entropy"] = "mse",
                 readout: Literal["all", "last", "mean"] = "all", dt: float = 1.0):
        check_choice("loss", loss, ("mse", "cross_entropy"), owner="Supervised")
        check_choice("readout", readout, ("all", "last", "mean"), owner="Supervised")
        check_positive("dt", dt, owner="Supervised")
        self.loss_kind, self.readout, self.dt = loss, readout, float(dt)

    def sample(self, key, batch_size):
        raise TypeError("Supervised has no data generator: build batches with simjax.tasks.Batch(inputs, targets)")

    def _per_item(self, outputs, batch):
        y = select_readout(outputs.readout, self.readout, batch.mask if self.readout == "mean" else None)
        if self.loss_kind == "mse":
            targets = jnp.asarray(batch.targets)
            if targets.shape != y.shape:
                raise ValueError(f"Supervised(mse): targets have shape {targets.shape}, expected {y.shape} "
                                 f"(the readout with readout={self.readout!r})")
            return jnp.mean((y - targets) ** 2, axis=-1), y
        labels = jnp.asarray(batch.targets)
        if labels.shape != y.shape[:-1]:
            raise ValueError(f"Supervised(cross_entropy): labels have shape {labels.shape}, expected "
                             f"{y.shape[:-1]} (integer classes for readout={self.readout!r})")
        return optax.softmax_cross_entropy_with_integer_labels(y, labels.astype(jnp.int32)), y

    def loss(self, outputs, batch):
        per_item, _ = self._per_item(outputs, batch)
        return masked_mean(per_item, batch.mask if self.readout == "all" else None)

    def metrics(self, outputs, batch):
        per_item, y = self._per_item(outputs, batch)
        mask = batch.mask if self.readout == "all" else None
        out = {"loss": masked_mean(per_item, mask)}
        if self.loss_kind == "cross_entropy":
            correct = (jnp.argmax(y, axis=-1) == jnp.asarray(batch.targets)).astype(y.dtype)
            out["accuracy"] = masked_mean(correct, mask)
        else:
            t = jnp.asarray(batch.targets)
            out["nmse"] = out["loss"] / jnp.maximum(jnp.var(t), 1e-12)
        return out
