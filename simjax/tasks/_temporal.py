r"""Temporal credit-assignment tasks for recurrent networks: delayed XOR and delayed parity.

`n_bits` random bits `b_k` are shown one after another, each for `bit_duration` ms with
`gap` ms of silence between them; after the last bit comes a `delay` and then a `decision`
window, marked by a cue, in which the network must report `(b_1 + ... + b_n) mod 2` (XOR for two
bits). The answer has to be computed from bits held in memory across the delay, which makes these
classic tests of temporal credit assignment (e.g. Bellec et al. 2020's store/recall variants,
Hochreiter & Schmidhuber 1997's parity).

Input channels (`3 * channels` of them): `[0, channels)` code the symbol "0",
`[channels, 2 channels)` the symbol "1", `[2 channels, 3 channels)` the decision cue. With
`coding="rate"` an active channel carries `amplitude` (analog input for rate networks); with
`coding="spike"` it fires Bernoulli spikes at `rate` Hz per step (`background` Hz when
silent). The readout has two units (logits); the loss is the cross-entropy of the readout averaged
over the decision window (`Batch.mask`), the metric the accuracy of its argmax.
"""

from __future__ import annotations

from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float

from .._checks import as_float_array, check_choice, check_int, check_positive, steps_of
from .._custom_types import RealScalarLike
from ._base import AbstractClockTask, Batch
from ._supervised import select_readout


class AbstractBitSequence(AbstractClockTask):
    """Bits shown in sequence, then a delay and a decision window (module docstring).

    Subclasses fix `n_bits`; everything else is shared.
    """

    rate: Float[Array, ""]
    background: Float[Array, ""]
    amplitude: Float[Array, ""]
    n_bits: int = eqx.field(static=True)
    channels: int = eqx.field(static=True)
    coding: str = eqx.field(static=True)
    schedule: tuple[int, int, int, int] = eqx.field(static=True)
    dt: float = eqx.field(static=True)

    def _setup(self, owner, n_bits, coding, channels, bit_duration, gap, delay, decision, rate, background,
               amplitude, dt):
        check_choice("coding", coding, ("rate", "spike"), owner=owner)
        for name, v in (("n_bits", n_bits), ("channels", channels)):
            check_int(name, v, owner=owner)
        check_positive("dt", dt, owner=owner)
        check_positive("rate", rate, allow_zero=True, owner=owner)
        check_positive("background", background, allow_zero=True, owner=owner)
        check_positive("amplitude", amplitude, allow_zero=True, owner=owner)
        self.schedule = (steps_of("bit_duration", bit_duration, dt, owner=owner),
                         steps_of("gap", gap, dt, owner=owner, minimum=0),
                         steps_of("delay", delay, dt, owner=owner, minimum=0),
                         steps_of("decision", decision, dt, owner=owner))
        self.n_bits, self.channels, self.coding, self.dt = n_bits, channels, coding, float(dt)
        self.rate, self.background, self.amplitude = (as_float_array(rate), as_float_array(background),
                                                      as_float_array(amplitude))

    @property
    def n_in(self) -> int:
        return 3 * self.channels

    @property
    def n_out(self) -> int:
        return 2

    @property
    def steps(self) -> int:
        """Number of time steps of a trial."""
        bit, gap, delay, decision = self.schedule
        return self.n_bits * bit + (self.n_bits - 1) * gap + delay + decision

    def windows(self) -> tuple[np.ndarray, np.ndarray]:
        """`(bit_windows [steps, n_bits], decision [steps])`: 0/1 indicators of when each bit is
        shown and of the decision window."""
        bit, gap, _, decision = self.schedule
        shown = np.zeros((self.steps, self.n_bits))
        for k in range(self.n_bits):
            shown[k * (bit + gap):k * (bit + gap) + bit, k] = 1.0
        cue = np.zeros(self.steps)
        cue[self.steps - decision:] = 1.0
        return shown, cue

    def sample(self, key, batch_size):
        check_int("batch_size", batch_size, owner=type(self).__name__)
        dtype = self.rate.dtype
        n_bits = batch_size * self.n_bits
        n_spikes = self.steps * batch_size * self.n_in if self.coding == "spike" else 0
        # One uniform draw for the bits and the input spikes (one random-number kernel).
        u = jax.random.uniform(key, (n_bits + n_spikes,), dtype)
        bits = (u[:n_bits] < 0.5).astype(jnp.int32).reshape(batch_size, self.n_bits)
        shown, cue = (jnp.asarray(a, dtype) for a in self.windows())
        symbol = jax.nn.one_hot(bits, 2, dtype=dtype)                      # [batch, n_bits, 2]
        active = jnp.einsum("tk,bkv->tbv", shown, symbol)                   # [time, batch, 2]
        active = jnp.repeat(active, self.channels, axis=-1)
        cue = jnp.broadcast_to(cue[:, None, None], (self.steps, batch_size, self.channels))
        pattern = jnp.concatenate([active, cue], axis=-1)                   # [time, batch, 3 channels]
        if self.coding == "rate":
            inputs = self.amplitude * pattern
        else:
            hz = self.rate * pattern + self.background * (1.0 - pattern)
            p = jnp.clip(hz * self.dt / 1000.0, 0.0, 1.0)
            inputs = (u[n_bits:].reshape(pattern.shape) < p).astype(dtype)
        labels = (jnp.sum(bits, axis=-1) % 2).astype(jnp.int32)
        mask = jnp.asarray(self.windows()[1], dtype)
        return Batch(inputs=inputs, targets=labels, mask=mask)

    def _logits(self, outputs, batch):
        readout = outputs.readout
        name = type(self).__name__
        if readout is None:
            raise ValueError(f"{name}: the outputs have no readout (simulate with 'readout' in record)")
        labels = jnp.asarray(batch.targets)
        if readout.ndim != 3 or readout.shape[-1] != 2 or readout.shape[1:2] != labels.shape:
            raise ValueError(f"{name}: readout has shape {tuple(readout.shape)}, expected [time, batch, 2] "
                             f"with batch = {labels.shape} (the labels' shape) and two logits")
        if batch.mask is not None and jnp.shape(batch.mask)[0] != readout.shape[0]:
            raise ValueError(f"{name}: mask has {jnp.shape(batch.mask)[0]} steps, readout has {readout.shape[0]}")
        return select_readout(readout, "mean", batch.mask), labels.astype(jnp.int32)

    def loss(self, outputs, batch):
        logits, labels = self._logits(outputs, batch)
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))

    def metrics(self, outputs, batch):
        logits, labels = self._logits(outputs, batch)
        loss = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))
        correct = jnp.argmax(logits, axis=-1).astype(jnp.int32) == labels
        return {"loss": loss, "accuracy": jnp.mean(correct.astype(logits.dtype))}


class Parity(AbstractBitSequence):
    """Delayed parity of `n_bits` bits shown in sequence (module docstring).

    **Arguments:**

    - `n_bits`: number of bits (2 is `DelayedXOR`).
    - `coding`: `"rate"` (analog `amplitude` on active channels) or `"spike"` (Bernoulli spikes
      at `rate` Hz, `background` Hz otherwise).
    - `channels`: input channels per symbol (total `n_in = 3 channels`).
    - `bit_duration`, `gap`, `delay`, `decision`: timings in ms (multiples of `dt`).
    - `dt`: time step (ms).

    **Batch:** `inputs [time, batch, 3 channels]`, `targets [batch]` (int32 labels in {0, 1}),
    `mask [time]` (1 in the decision window).
    """

    def __init__(self, n_bits: int = 3, coding: Literal["rate", "spike"] = "rate", channels: int = 1,
                 bit_duration: float = 10.0, gap: float = 5.0, delay: float = 20.0, decision: float = 10.0,
                 rate: RealScalarLike = 200.0, background: RealScalarLike = 0.0, amplitude: RealScalarLike = 1.0,
                 dt: float = 1.0):
        self._setup("Parity", n_bits, coding, channels, bit_duration, gap, delay, decision, rate, background,
                    amplitude, dt)


class DelayedXOR(AbstractBitSequence):
    """Delayed XOR: two bits shown in sequence, their XOR reported after a delay (module docstring;
    the arguments are those of `Parity` without `n_bits`)."""

    def __init__(self, coding: Literal["rate", "spike"] = "rate", channels: int = 1, bit_duration: float = 10.0,
                 gap: float = 5.0, delay: float = 20.0, decision: float = 10.0, rate: RealScalarLike = 200.0,
                 background: RealScalarLike = 0.0, amplitude: RealScalarLike = 1.0, dt: float = 1.0):
        self._setup("DelayedXOR", 2, coding, channels, bit_duration, gap, delay, decision, rate, background,
                    amplitude, dt)
