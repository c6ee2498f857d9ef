r"""Randman, the random-manifold spike-timing task (Zenke & Vogels, Neural Computation 33:899, 2021).

Each class `k` owns `n_spikes` smooth random maps from an intrinsic space `[0, 1]^D` (`D =
dim_manifold`) to `[0, 1]^{n_in}`: for input unit `n` and spike `j`,

    f_{kjn}(x) = prod_{d=1..D} sum_{i=0..F-1} a_{kjndi} (i + 1)^{-alpha} sin(2 pi (i x_d b_{kjndi} + c_{kjndi}))

with `a, b, c ~ U[0, 1)` drawn once from `seed`, `a_{kjnd0} = 0` (no constant term) and `F =
min(ceil(prec^{-1/alpha}), 1000)` frequencies (`prec = 1e-3`). Each map is standardised per unit
to `[0, 1]` by its minimum and maximum over a fixed reference set of `reference` points drawn from
`seed` (Zenke & Vogels standardise over the sampled data set; a task that draws fresh trials needs a
fixed scale, so values outside the reference range are clipped). A trial draws a class `k`
(uniform) and a point `x ~ U[0, 1]^D`; input unit `n` then fires `n_spikes` spikes, the `j`-th at
time `f_{kjn}(x) * step_frac * duration`. The network must report `k`; the smaller `alpha` and the
larger `D`, the harder the task. Chance is `1 / n_classes`.

Loss (Zenke & Vogels): cross-entropy of the readout's maximum over time (`readout="max"`), or of its
time mean (`"mean"`) or last step (`"last"`); accuracy from the same logits.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray

from .._checks import check_choice, check_int, check_positive, steps_of
from .._spike_train import SpikeTrain
from ._base import AbstractClockTask, Batch


def manifold_parameters(seed: int, n_classes: int, n_spikes: int, n_in: int, dim_manifold: int,
                        alpha: float, prec: float = 1e-3) -> np.ndarray:
    """The random coefficients `[n_classes, n_spikes, n_in, dim_manifold, 3, F]` (`a`, `b`, `c` on
    the fourth axis) of the module docstring's maps, drawn from `numpy.random.default_rng(seed)`."""
    cutoff = int(min(math.ceil(prec ** (-1.0 / alpha)), 1000))
    rng = np.random.default_rng(seed)
    params = rng.uniform(0.0, 1.0, size=(n_classes, n_spikes, n_in, dim_manifold, 3, cutoff))
    params[..., 0, 0] = 0.0
    return params


def evaluate_manifold(params: Float[ArrayLike, "*lead dim 3 freq"], x: Float[ArrayLike, "*batch dim"],
                      alpha: float) -> Float[Array, "*lead *batch"]:
    """`f(x) = prod_d sum_i a_di (i+1)^-alpha sin(2 pi (i x_d b_di + c_di))` for every map in
    `params` (leading axes) at every point of `x` (leading axes); result `[*lead, *batch]`."""
    params, x = jnp.asarray(params), jnp.asarray(x)
    n_lead, n_batch = params.ndim - 3, x.ndim - 1
    freq = jnp.arange(params.shape[-1], dtype=x.dtype)
    spect = (freq + 1.0) ** (-alpha)
    a, b, c = params[..., 0, :], params[..., 1, :], params[..., 2, :]                     # [*lead, dim, F]
    a = a.reshape(a.shape[:n_lead] + (1,) * n_batch + a.shape[n_lead:])
    b = b.reshape(a.shape)
    c = c.reshape(a.shape)
    phase = 2.0 * jnp.pi * (freq * x[..., None] * b + c)                                  # [*lead, *batch, dim, F]
    per_dim = jnp.sum(a * spect * jnp.sin(phase), axis=-1)
    return jnp.prod(per_dim, axis=-1)


class Randman(AbstractClockTask):
    r"""The random-manifold spike-timing classification task (module docstring).

    **Arguments:**

    - `n_classes`: number of classes (manifolds). `n_in`: input units (embedding dimension).
    - `dim_manifold`: intrinsic dimension `D` of each manifold. `alpha`: spectral decay (smoothness).
    - `n_spikes`: spikes per input unit and trial.
    - `duration`: trial length (ms); spikes fall in `[0, step_frac * duration)`. `dt`: time step (ms).
    - `seed`: fixes the manifolds (same seed, same task). `reference`: points that set the scale.
    - `readout`: `"max"`, `"mean"` or `"last"` over time of the readout logits.

    **Batch:** `inputs [time, batch, n_in]` (spike counts on the `dt` grid: a spike at `t` counts in
    step `ceil(t / dt) - 1`, as `simjax.SpikeTrain.to_dense`), `targets [batch]` (class).
    `sample_events` gives the same trials as exact spike times.
    """

    params: Float[Array, "classes spikes n_in dim 3 freq"]
    lo: Float[Array, "classes spikes n_in"]
    scale: Float[Array, "classes spikes n_in"]
    n_classes: int = eqx.field(static=True)
    n_in: int = eqx.field(static=True)
    dim_manifold: int = eqx.field(static=True)
    n_spikes: int = eqx.field(static=True)
    alpha: float = eqx.field(static=True)
    duration: float = eqx.field(static=True)
    step_frac: float = eqx.field(static=True)
    dt: float = eqx.field(static=True)
    steps: int = eqx.field(static=True)
    readout: str = eqx.field(static=True)

    def __init__(self, n_classes: int = 10, n_in: int = 20, dim_manifold: int = 1, alpha: float = 2.0,
                 n_spikes: int = 1, duration: float = 100.0, dt: float = 1.0, step_frac: float = 0.5,
                 seed: int = 0, reference: int = 1000, readout: str = "max"):
        owner = "Randman"
        check_int("n_classes", n_classes, minimum=2, owner=owner)
        check_int("n_in", n_in, owner=owner)
        check_int("dim_manifold", dim_manifold, owner=owner)
        check_int("n_spikes", n_spikes, owner=owner)
        check_int("seed", seed, minimum=0, owner=owner)
        check_int("reference", reference, minimum=2, owner=owner)
        check_positive("alpha", alpha, owner=owner)
        check_positive("step_frac", step_frac, owner=owner)
        if step_frac > 1.0:
            raise ValueError(f"{owner}: step_frac must be in (0, 1], got {step_frac!r}")
        check_choice("readout", readout, ("max", "mean", "last"), owner=owner)
        self.steps = steps_of("duration", duration, dt, owner=owner)
        self.n_classes, self.n_in, self.dim_manifold, self.n_spikes = n_classes, n_in, dim_manifold, n_spikes
        self.alpha, self.duration, self.step_frac, self.dt = float(alpha), float(duration), float(step_frac), float(dt)
        self.readout = readout
        params = manifold_parameters(seed, n_classes, n_spikes, n_in, dim_manifold, self.alpha)
        ref = np.random.default_rng([seed, 1]).uniform(0.0, 1.0, size=(reference, dim_manifold))
        values = np.asarray(evaluate_manifold(params, ref, self.alpha))                    # [k, j, n, ref]
        lo, hi = values.min(axis=-1), values.max(axis=-1)
        dtype = jnp.result_type(float)
        self.params = jnp.asarray(params, dtype)
        self.lo = jnp.asarray(lo, dtype)
        self.scale = jnp.asarray(1.0 / np.maximum(hi - lo, 1e-12), dtype)

    @property
    def n_out(self) -> int:
        return self.n_classes

    def draw(self, key: PRNGKeyArray, batch_size: int) -> tuple[Int[Array, " batch"], Float[Array, "batch dim"]]:
        """`(labels [batch], points [batch, dim_manifold])`: the classes and intrinsic coordinates of
        `batch_size` trials (the randomness of `sample` and `sample_events`)."""
        check_int("batch_size", batch_size, owner="Randman")
        k_label, k_point = jax.random.split(key)
        labels = jax.random.randint(k_label, (batch_size,), 0, self.n_classes)
        points = jax.random.uniform(k_point, (batch_size, self.dim_manifold), self.params.dtype)
        return labels, points

    def spike_times(self, labels: Int[ArrayLike, " batch"],
                    points: Float[ArrayLike, "batch dim"]) -> Float[Array, "batch spikes n_in"]:
        """Spike times (ms) of every input unit for trials of class `labels` at `points`."""
        labels = jnp.asarray(labels)
        params = self.params[labels]                                                      # [b, j, n, D, 3, F]
        per_trial = jax.vmap(lambda p, x: evaluate_manifold(p, x, self.alpha))(params, jnp.asarray(points))
        unit = jnp.clip((per_trial - self.lo[labels]) * self.scale[labels], 0.0, 1.0)    # [b, j, n]
        return unit * (self.step_frac * self.duration)

    def sample(self, key, batch_size):
        events = self.sample_events(key, batch_size)
        return Batch(inputs=events.inputs.to_dense(self.dt, self.duration), targets=events.targets)

    def sample_events(self, key: PRNGKeyArray, batch_size: int) -> Batch:
        """The same trials as `sample(key, batch_size)`, as exact spike times: `inputs` is a
        `simjax.SpikeTrain` with `times [batch, n_spikes n_in]`, sorted per trial."""
        labels, points = self.draw(key, batch_size)
        times = self.spike_times(labels, points).reshape(batch_size, -1)
        ids = jnp.broadcast_to(jnp.tile(jnp.arange(self.n_in), self.n_spikes), times.shape)
        order = jnp.argsort(times, axis=-1)
        train = SpikeTrain(jnp.take_along_axis(times, order, -1), jnp.take_along_axis(ids, order, -1), n=self.n_in)
        return Batch(inputs=train, targets=labels)

    def logits(self, readout: Float[Array, "time batch n_out"]) -> Float[Array, "batch n_out"]:
        """The logits the loss scores: the readout's max, mean or last value over time."""
        if readout is None or readout.ndim != 3 or readout.shape[-1] != self.n_classes:
            shape = None if readout is None else tuple(readout.shape)
            raise ValueError(f"Randman: readout has shape {shape}, expected [time, batch, {self.n_classes}]")
        if self.readout == "max":
            return jnp.max(readout, axis=0)
        if self.readout == "mean":
            return jnp.mean(readout, axis=0)
        return readout[-1]

    def loss(self, outputs, batch):
        logits = self.logits(outputs.readout)
        labels = jnp.asarray(batch.targets).astype(jnp.int32)
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))

    def metrics(self, outputs, batch):
        logits = self.logits(outputs.readout)
        labels = jnp.asarray(batch.targets).astype(jnp.int32)
        correct = (jnp.argmax(logits, axis=-1) == labels).astype(logits.dtype)
        return {"loss": self.loss(outputs, batch), "accuracy": jnp.mean(correct)}
