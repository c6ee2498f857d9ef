r"""Shared machinery of cued decision tasks (store-recall, evidence accumulation): channel groups
coded as Poisson spikes or analog levels, and a two-way decision read out in a cued window.

Loss: cross-entropy of the readout (logits) at every step of the decision window, averaged over
those steps and the batch,

    L = sum_{t, b} m_t CE(y_t^b, label^b) / (batch sum_t m_t),

a sum over time steps (`step_terms`/`step_loss`, used by forward-in-time rules such as e-prop).
Accuracy: the argmax of the readout averaged over the window.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float

from .._checks import as_float_array, check_choice, check_int, check_positive
from ._base import AbstractPerStepTask
from ._supervised import select_readout


class AbstractCuedDecision(AbstractPerStepTask):
    """A two-choice task with channel groups of `channels` inputs each (module docstring).

    Subclasses build the `[time, batch, groups]` activity pattern and the labels.
    """

    rate: Float[Array, ""]
    background: Float[Array, ""]
    amplitude: Float[Array, ""]
    channels: int = eqx.field(static=True)
    coding: str = eqx.field(static=True)
    dt: float = eqx.field(static=True)

    def _setup_coding(self, owner, channels, coding, rate, background, amplitude, dt):
        check_choice("coding", coding, ("spike", "rate"), owner=owner)
        check_int("channels", channels, owner=owner)
        check_positive("dt", dt, owner=owner)
        for name, v in (("rate", rate), ("background", background), ("amplitude", amplitude)):
            check_positive(name, v, allow_zero=True, owner=owner)
        self.channels, self.coding, self.dt = channels, coding, float(dt)
        self.rate, self.background, self.amplitude = (as_float_array(rate), as_float_array(background),
                                                      as_float_array(amplitude))

    @property
    def n_out(self) -> int:
        return 2

    def encode(self, key, pattern):
        """`pattern [time, batch, groups]` of 0/1 -> inputs `[time, batch, groups * channels]`."""
        pattern = jnp.repeat(pattern, self.channels, axis=-1)
        if self.coding == "rate":
            return self.amplitude * pattern
        hz = self.rate * pattern + self.background * (1.0 - pattern)
        p = jnp.clip(hz * self.dt / 1000.0, 0.0, 1.0)
        return (jax.random.uniform(key, pattern.shape, pattern.dtype) < p).astype(pattern.dtype)

    def _check(self, outputs, batch):
        name = type(self).__name__
        readout = outputs.readout
        if readout is None or readout.ndim != 3 or readout.shape[-1] != 2:
            shape = None if readout is None else tuple(readout.shape)
            raise ValueError(f"{name}: readout has shape {shape}, expected [time, batch, 2] (two logits)")
        return readout, jnp.asarray(batch.targets).astype(jnp.int32)

    def step_terms(self, batch):
        """`(mask [time], (labels [batch], norm))` with `loss = sum_t step_loss(readout_t, mask_t, shared)`."""
        mask = jnp.asarray(batch.mask)
        labels = jnp.asarray(batch.targets).astype(jnp.int32)
        return mask, (labels, 1.0 / (labels.shape[0] * jnp.maximum(jnp.sum(mask), 1.0)))

    def step_loss(self, readout_t, mask_t, shared):
        """The loss contribution of one step: `m_t norm sum_b CE(readout_t^b, label^b)`."""
        labels, norm = shared
        return mask_t * norm * jnp.sum(optax.softmax_cross_entropy_with_integer_labels(readout_t, labels))

    def loss(self, outputs, batch):
        readout, labels = self._check(outputs, batch)
        ce = optax.softmax_cross_entropy_with_integer_labels(readout, labels[None])     # [time, batch]
        mask = jnp.asarray(batch.mask, readout.dtype)
        return jnp.sum(ce * mask[:, None]) / (labels.shape[0] * jnp.maximum(jnp.sum(mask), 1.0))

    def metrics(self, outputs, batch):
        readout, labels = self._check(outputs, batch)
        logits = select_readout(readout, "mean", batch.mask)
        correct = jnp.argmax(logits, axis=-1).astype(jnp.int32) == labels
        return {"loss": self.loss(outputs, batch), "accuracy": jnp.mean(correct.astype(readout.dtype))}
