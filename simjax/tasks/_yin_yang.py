r"""The Yin-Yang classification data set (Kriener, Göltz & Petrovici, ICONS 2022), generated from a seed.

Points `(x, y)` are uniform in the disk of radius `r_big = 0.5` centred at `(0.5, 0.5)`; the
class is *dot* (2) inside one of the two small disks of radius `r_small = 0.1` centred at
`(0.25, 0.5)` and `(0.75, 0.5)`, else *yin* (1) or *yang* (0) by the yin-yang boundary (two
half-disks of radius `r_big / 2`). Classes are balanced (a third each) by rejection sampling.
Each point is presented as five input spikes: `(x, y, 1 - x, 1 - y)` mapped linearly to times in
`[t_min, t_max]` plus a bias spike at `t_bias`. A linear classifier reaches about 64 % and an
ANN about 98 % (Kriener et al. 2022).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, ArrayLike, Float, Int

from .._checks import check_int, check_positive
from .._simulate.simulate import Output, simulate
from .._spike_train import SpikeTrain
from ..losses._spike_times import first_spike_cross_entropy, first_spike_prediction
from ..networks._spiking_feedforward import SpikingFeedForward
from ._base import AbstractTask, Batch

R_SMALL, R_BIG = 0.1, 0.5


def yin_yang_class(x, y, r_small: float = R_SMALL, r_big: float = R_BIG):
    """Class of points `(x, y)` (NumPy): 0 yang, 1 yin, 2 dot (Kriener et al. 2022's regions)."""
    d_right = np.hypot(x - 1.5 * r_big, y - r_big)
    d_left = np.hypot(x - 0.5 * r_big, y - r_big)
    dot = (d_right < r_small) | (d_left < r_small)
    yin = ((d_right <= r_small) | ((d_left > r_small) & (d_left <= 0.5 * r_big))
           | ((y > r_big) & (d_right > 0.5 * r_big)))
    return np.where(dot, 2, yin.astype(np.int64))


def yin_yang_points(n: int, rng: np.random.Generator, r_small: float = R_SMALL,
                    r_big: float = R_BIG) -> tuple[np.ndarray, np.ndarray]:
    """`(xy [n, 2], labels [n])`: `n` points uniform in the big disk, classes balanced, shuffled."""
    per_class = [n // 3 + (c < n % 3) for c in range(3)]
    chosen = [np.zeros((0, 2)) for _ in range(3)]
    while any(len(c) < k for c, k in zip(chosen, per_class)):
        xy = rng.uniform(0.0, 2.0 * r_big, size=(4 * n + 64, 2))
        xy = xy[np.hypot(xy[:, 0] - r_big, xy[:, 1] - r_big) <= r_big]
        cls = yin_yang_class(xy[:, 0], xy[:, 1], r_small, r_big)
        chosen = [np.concatenate([chosen[c], xy[cls == c]])[:per_class[c]] for c in range(3)]
    xy = np.concatenate(chosen)
    labels = np.concatenate([np.full(k, c) for c, k in enumerate(per_class)])
    order = rng.permutation(n)
    return xy[order], labels[order]


class YinYang(AbstractTask):
    r"""Yin-Yang classification with spike-time inputs (module docstring).

    **Arguments:**

    - `seed`: the data (train: `default_rng([seed, 0])`, test: `default_rng([seed, 1])`,
      validation: `default_rng([seed, 2])`).
    - `n_train`, `n_test`, `n_validation`: set sizes (5000, 1000 and 1000: the reference data
      set's split, Kriener et al. 2022). Choose settings and epochs on the validation set
      (`validation_set`) and report the test set (`test_set`) only for what was chosen.
    - `t_min`, `t_max`: input spike times of coordinate 0 and 1; `t_bias`: the bias spike.
    - `t1`: trial end. `pseudo_drive`: current added after `t1` (pseudodynamics, event-driven
      `SpikingFeedForward` only; `None`: off).
    - `tau`, `missing_weight`, `early_weight`, `early_tau`: of `simjax.losses.first_spike_cross_entropy`.
    - `dt`: time step for clock-driven models.

    **Models.** A `simjax.networks.SpikingFeedForward` (`5 -> ... -> 3`) is simulated event-driven;
    its class is the output neuron that spikes first within `[0, t1]` (accuracy counts a trial
    without output spike as wrong). Any other network (e.g. `FeedForward` of LIF layers with a leaky
    readout) is simulated clock-driven on the binned inputs; its class is the readout's maximum over
    time, trained by cross-entropy on it (Cramer et al. 2022's max-over-time readout).
    """

    train_xy: Float[Array, "n_train 2"]
    train_labels: Int[Array, " n_train"]
    test_xy: Float[Array, "n_test 2"]
    test_labels: Int[Array, " n_test"]
    validation_xy: Float[Array, "n_validation 2"]
    validation_labels: Int[Array, " n_validation"]
    t_min: float = eqx.field(static=True)
    t_max: float = eqx.field(static=True)
    t_bias: float = eqx.field(static=True)
    t1: float = eqx.field(static=True)
    pseudo_drive: float | None = eqx.field(static=True)
    tau: float = eqx.field(static=True)
    missing_weight: float = eqx.field(static=True)
    early_weight: float = eqx.field(static=True)
    early_tau: float = eqx.field(static=True)
    dt: float = eqx.field(static=True)

    def __init__(self, seed: int = 0, n_train: int = 5000, n_test: int = 1000, n_validation: int = 1000, *,
                 t_min: float = 0.1,
                 t_max: float = 1.0, t_bias: float = 0.1, t1: float = 2.0, pseudo_drive: float | None = 10.0,
                 tau: float = 0.25, missing_weight: float = 1.0, dt: float = 0.02,
                 early_weight: float = 0.0, early_tau: float = 1.0):
        for name, n in (("n_train", n_train), ("n_test", n_test), ("n_validation", n_validation)):
            check_int(name, n, minimum=3, owner="YinYang")  # a point per class
        check_int("seed", seed, minimum=0, owner="YinYang")
        for name, v in (("t_max", t_max), ("t1", t1), ("tau", tau), ("dt", dt)):
            check_positive(name, v, owner="YinYang")
        check_positive("t_min", t_min, allow_zero=True, owner="YinYang")
        check_positive("t_bias", t_bias, allow_zero=True, owner="YinYang")
        check_positive("missing_weight", missing_weight, allow_zero=True, owner="YinYang")
        check_positive("early_weight", early_weight, allow_zero=True, owner="YinYang")
        check_positive("early_tau", early_tau, owner="YinYang")
        if not t_min < t_max <= t1 or t_bias > t1:
            raise ValueError(f"YinYang: input times must satisfy t_min < t_max <= t1 and t_bias <= t1, got "
                             f"t_min={t_min!r}, t_max={t_max!r}, t_bias={t_bias!r}, t1={t1!r}")
        if pseudo_drive is not None and not (np.isfinite(pseudo_drive) and pseudo_drive > 0):
            raise ValueError(f"YinYang: pseudo_drive must be a positive number or None, got {pseudo_drive!r}")
        train = yin_yang_points(int(n_train), np.random.default_rng([seed, 0]))
        test = yin_yang_points(int(n_test), np.random.default_rng([seed, 1]))
        validation = yin_yang_points(int(n_validation), np.random.default_rng([seed, 2]))
        dtype = jnp.result_type(float)
        self.train_xy, self.test_xy = jnp.asarray(train[0], dtype), jnp.asarray(test[0], dtype)
        self.validation_xy = jnp.asarray(validation[0], dtype)
        self.train_labels = jnp.asarray(train[1], jnp.int32)
        self.test_labels = jnp.asarray(test[1], jnp.int32)
        self.validation_labels = jnp.asarray(validation[1], jnp.int32)
        self.t_min, self.t_max, self.t_bias, self.t1 = float(t_min), float(t_max), float(t_bias), float(t1)
        self.pseudo_drive = None if pseudo_drive is None else float(pseudo_drive)
        self.tau, self.missing_weight, self.dt = float(tau), float(missing_weight), float(dt)
        self.early_weight, self.early_tau = float(early_weight), float(early_tau)

    def encode(self, xy: Float[ArrayLike, "*batch 2"]) -> SpikeTrain:
        """Points `[*batch, 2]` as `SpikeTrain` of 5 channels (`x, y, 1-x, 1-y`, bias)."""
        xy = jnp.asarray(xy)
        if xy.ndim < 1 or xy.shape[-1] != 2:
            raise ValueError(f"YinYang.encode: points have shape {xy.shape}, expected [..., 2]")
        values = jnp.concatenate([xy, 1.0 - xy], axis=-1)
        times = self.t_min + values * (self.t_max - self.t_min)
        times = jnp.concatenate([times, jnp.full(xy.shape[:-1] + (1,), self.t_bias, times.dtype)], axis=-1)
        return SpikeTrain(times, jnp.broadcast_to(jnp.arange(5, dtype=jnp.int32), times.shape), n=5)

    def sample(self, key, batch_size: int) -> Batch:
        """`batch_size` training points drawn uniformly (with replacement)."""
        idx = jax.random.randint(key, (batch_size,), 0, self.train_labels.shape[0])
        return Batch(inputs=self.encode(self.train_xy[idx]), targets=self.train_labels[idx])

    def validation_set(self) -> Batch:
        """The whole validation set (for choosing settings and epochs)."""
        return Batch(inputs=self.encode(self.validation_xy), targets=self.validation_labels)

    def test_set(self) -> Batch:
        """The whole test set (for reporting what was chosen on the validation set)."""
        return Batch(inputs=self.encode(self.test_xy), targets=self.test_labels)

    def forward(self, model, batch, key=None, **simulate_kwargs):
        if isinstance(model, SpikingFeedForward):
            return simulate(model, batch.inputs, method="event", t1=self.t1, pseudo_drive=self.pseudo_drive,
                            **simulate_kwargs)
        x = batch.inputs.to_dense(self.dt, self.t1)
        return simulate(model, x, dt=self.dt, key=key, **simulate_kwargs)

    def _scores(self, outputs: Output):
        """`(kind, values)`: first spike times (event-driven) or the readout's maximum over time."""
        if "first_spike_times" in outputs.info:
            return "times", outputs.info["first_spike_times"][-1]
        if outputs.readout is None:
            raise ValueError("YinYang: the outputs carry neither first spike times nor a readout")
        return "readout", jnp.max(outputs.readout, axis=0)

    def loss(self, outputs: Output, batch: Batch) -> Float[Array, ""]:
        kind, values = self._scores(outputs)
        if kind == "times":
            return first_spike_cross_entropy(values, batch.targets, t1=self.t1, tau=self.tau,
                                             missing_weight=self.missing_weight, early_weight=self.early_weight,
                                             early_tau=self.early_tau)
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(values, batch.targets))

    def metrics(self, outputs: Output, batch: Batch) -> dict:
        kind, values = self._scores(outputs)
        labels = jnp.asarray(batch.targets)
        if kind == "times":
            predicted, spiked = first_spike_prediction(values, self.t1)
            silent = 1.0 - jnp.mean(spiked.astype(values.dtype))
            correct = (predicted == labels) & spiked
        else:
            correct, silent = jnp.argmax(values, axis=-1) == labels, jnp.zeros((), values.dtype)
        return {"loss": self.loss(outputs, batch), "accuracy": jnp.mean(correct.astype(values.dtype)),
                "silent": silent}
