r"""The 8x8 handwritten digits bundled with scikit-learn (1797 images, 10 classes), as spike trains.

Pixel intensities `x in [0, 1]` (the 0..16 grey levels divided by 16) become `n_in = 64` input
channels over `steps = round(duration / dt)` time steps:

- `coding="rate"`: independent Bernoulli spikes at every step with probability
  `p = min(1, max_rate * dt / 1000 * x)` (`max_rate` in Hz, `dt` in ms), drawn anew for every
  sample;
- `coding="latency"`: one spike per nonzero pixel, at step `round((1 - x) (steps - 1))` (the
  brightest pixels at the first step, the faintest near the last); blank pixels stay silent.

The label is the target; the loss is the cross-entropy of the readout averaged over time
(`readout="mean"`) or at the last step (`readout="last"`), and `metrics` adds the accuracy.
The split into train and test images is a fixed permutation drawn from `seed`, so
`Digits(split="train", seed=s)` and `Digits(split="test", seed=s)` never share an image.
scikit-learn is only needed when a `Digits` task is built (`pip install 'simjax[data]'`).
"""

from __future__ import annotations

import functools
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .._checks import as_float_array, check_choice, check_int, check_positive
from ..networks._base import AbstractNetwork
from ._base import AbstractClockTask, Batch
from ._supervised import select_readout


@functools.lru_cache(maxsize=1)
def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("simjax.tasks.Digits needs scikit-learn for its bundled 8x8 digits: "
                          "pip install 'simjax[data]' (or pip install scikit-learn)") from None
    data = load_digits()
    return np.asarray(data.data, np.float64) / 16.0, np.asarray(data.target, np.int32)


class Digits(AbstractClockTask):
    """Classification of scikit-learn's 8x8 digits from rate- or latency-coded spikes (module docstring).

    **Arguments:**

    - `coding`: `"rate"` or `"latency"`.
    - `duration`: length of a trial (ms); `dt`: time step (ms).
    - `split`: `"train"` or `"test"`; `seed`: draws the train/test permutation;
      `test_fraction`: share of the 1797 images held out for testing.
    - `max_rate`: rate of a white pixel for rate coding (Hz).
    - `readout`: `"mean"` (time-averaged readout) or `"last"` (readout at the last step).

    **Batch:** `inputs [steps, batch, 64]` (0/1), `targets [batch]` (int32 labels).
    """

    images: Float[Array, "n 64"]
    labels: Int[Array, " n"]
    max_rate: Float[Array, ""]
    coding: str = eqx.field(static=True)
    split: str = eqx.field(static=True)
    readout: str = eqx.field(static=True)
    steps: int = eqx.field(static=True)
    dt: float = eqx.field(static=True)

    def __init__(self, coding: Literal["rate", "latency"] = "rate", duration: float = 25.0, dt: float = 1.0,
                 split: Literal["train", "test"] = "train", seed: int = 0, *, test_fraction: float = 0.2,
                 max_rate: float = 400.0, readout: Literal["mean", "last"] = "mean"):
        check_choice("coding", coding, ("rate", "latency"), owner="Digits")
        check_choice("split", split, ("train", "test"), owner="Digits")
        check_choice("readout", readout, ("mean", "last"), owner="Digits")
        check_positive("duration", duration, owner="Digits")
        check_positive("dt", dt, owner="Digits")
        check_positive("max_rate", max_rate, owner="Digits")
        check_int("seed", seed, minimum=None, owner="Digits")
        if not 0.0 < float(test_fraction) < 1.0:
            raise ValueError(f"Digits: test_fraction must lie in (0, 1), got {test_fraction!r}")
        steps = int(round(duration / dt))
        if steps < 1:
            raise ValueError(f"Digits: duration {duration!r} is shorter than one step dt={dt!r}")
        x, y = _load_digits()
        order = np.random.default_rng(int(seed)).permutation(len(y))
        n_test = int(round(test_fraction * len(y)))
        chosen = order[:n_test] if split == "test" else order[n_test:]
        self.images = jnp.asarray(x[chosen], dtype=jnp.result_type(float))
        self.labels = jnp.asarray(y[chosen], dtype=jnp.int32)
        self.max_rate = as_float_array(max_rate)
        self.coding, self.split, self.readout = coding, split, readout
        self.steps, self.dt = steps, float(dt)

    @property
    def n_in(self) -> int:
        return 64

    @property
    def n_out(self) -> int:
        return 10

    @property
    def size(self) -> int:
        """Number of images in this split."""
        return int(self.labels.shape[0])

    def encode(self, key: PRNGKeyArray, images: Float[Array, "batch 64"]) -> Float[Array, "steps batch 64"]:
        """Spike trains `[steps, batch, 64]` of `images` (intensities in `[0, 1]`)."""
        if self.coding == "rate":
            p = jnp.clip(self.max_rate * (self.dt / 1000.0) * images, 0.0, 1.0)
            shape = (self.steps, *images.shape)
            return (jax.random.uniform(key, shape, images.dtype) < p).astype(images.dtype)
        when = jnp.round((1.0 - images) * (self.steps - 1)).astype(jnp.int32)
        t = jnp.arange(self.steps, dtype=jnp.int32).reshape((self.steps,) + (1,) * images.ndim)
        return ((t == when) & (images > 0)).astype(images.dtype)

    def sample(self, key, batch_size):
        check_int("batch_size", batch_size, maximum=self.size, what=f"the size of the {self.split} split at most",
                  owner="Digits")
        k_idx, k_spikes = jax.random.split(key)
        idx = jax.random.choice(k_idx, self.size, (batch_size,), replace=False)
        return Batch(inputs=self.encode(k_spikes, self.images[idx]), targets=self.labels[idx])

    def full(self, key: PRNGKeyArray | None = None) -> Batch:
        """Every image of the split, in order (`key` draws the rate-coded spikes; default
        `jax.random.key(0)`, so evaluations are reproducible)."""
        key = jax.random.key(0) if key is None else key
        return Batch(inputs=self.encode(key, self.images), targets=self.labels)

    def _logits(self, outputs):
        if outputs.readout is None:
            raise ValueError("Digits: the outputs have no readout (simulate with 'readout' in record)")
        logits = select_readout(outputs.readout, self.readout)
        if logits.shape[-1] != self.n_out:
            raise ValueError(f"Digits: readout has {logits.shape[-1]} units, expected {self.n_out} (one per class)")
        return logits

    def loss(self, outputs, batch):
        logits = self._logits(outputs)
        labels = jnp.asarray(batch.targets).astype(jnp.int32)
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))

    def metrics(self, outputs, batch):
        logits = self._logits(outputs)
        predicted = jnp.argmax(logits, axis=-1).astype(jnp.int32)
        correct = (predicted == jnp.asarray(batch.targets).astype(jnp.int32)).astype(logits.dtype)
        return {"loss": self.loss(outputs, batch), "accuracy": jnp.mean(correct)}

    def evaluate(self, model: AbstractNetwork, key: PRNGKeyArray | None = None,
                 **simulate_kwargs) -> dict[str, Float[Array, ""]]:
        """`metrics` of `model` on the whole split (`full` with `key`)."""
        batch = self.full(key)
        return self.metrics(self.forward(model, batch, key, **simulate_kwargs), batch)
