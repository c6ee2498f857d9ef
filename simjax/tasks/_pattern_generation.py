r"""Pattern generation (Bellec et al. 2020, e-prop): frozen Poisson input -> sums of sines.

Each of `n_out` targets is `sum_k A_k sin(2 pi t / P_k + phi_k)` over periods
`P = (500, 1000, 2000, 3000) ms` with amplitudes `A_k ~ U(0.5, 2)` and phases `phi_k ~ U(0, 2 pi)`,
drawn once from `seed`; the input is one frozen draw of `n_in` Poisson trains at `rate` Hz.
Metric: normalised MSE = MSE / Var(target).
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._checks import check_int, check_positive
from ._base import AbstractPerStepTask, Batch
from ._supervised import masked_mean

PERIODS_MS = (500.0, 1000.0, 2000.0, 3000.0)


class PatternGeneration(AbstractPerStepTask):
    """Regression of `n_out` sine-sum targets from one frozen Poisson input pattern.

    **Arguments:** `n_in` input channels, `n_out` targets, `duration` (ms), `dt` (ms),
    `rate` (input rate, Hz), `seed` (draws the frozen input and the targets).
    """

    inputs: Float[Array, "time n_in"]
    targets: Float[Array, "time n_out"]
    dt: float = eqx.field(static=True)

    def __init__(self, n_in: int = 100, n_out: int = 3, duration: float = 1000.0, dt: float = 1.0,
                 rate: float = 10.0, seed: int = 0):
        for name, v in (("n_in", n_in), ("n_out", n_out)):
            check_int(name, v, owner="PatternGeneration")
        check_positive("duration", duration, owner="PatternGeneration")
        check_positive("dt", dt, owner="PatternGeneration")
        check_positive("rate", rate, allow_zero=True, owner="PatternGeneration")
        steps = int(round(duration / dt))
        self.inputs, self.targets = _pattern(seed, rate * dt / 1000.0, dt, (steps, n_in, n_out), jnp.result_type(float))
        self.dt = float(dt)

    @property
    def n_in(self) -> int:
        return self.inputs.shape[-1]

    @property
    def n_out(self) -> int:
        return self.targets.shape[-1]

    def sample(self, key, batch_size):
        del key  # the pattern is frozen: every trial is the same
        shape = lambda a: jnp.broadcast_to(a[:, None], (a.shape[0], batch_size, a.shape[1]))
        return Batch(inputs=shape(self.inputs), targets=shape(self.targets))

    def loss(self, outputs, batch):
        return masked_mean(jnp.mean((outputs.readout - batch.targets) ** 2, axis=-1), batch.mask)

    def step_terms(self, batch):
        """`(per_step, shared)` with `loss = sum_t step_loss(readout_t, per_step_t, shared)`:
        `per_step` is the targets (and the mask, if any), `shared` the normaliser (for forward-in-time
        rules; nothing of length `time` is created)."""
        targets = jnp.asarray(batch.targets)
        n_items = targets.shape[0] * targets.shape[1]
        if batch.mask is None:
            return (targets, None), 1.0 / n_items
        mask = jnp.asarray(batch.mask, targets.dtype)
        per_row = targets.shape[1] if mask.ndim == 1 else 1
        return (targets, mask), 1.0 / jnp.maximum(jnp.sum(mask) * per_row, 1.0)

    def step_loss(self, readout_t, per_step_t, shared):
        """The loss contribution of one step: `norm sum_b m_b mean_k (y_bk - y*_bk)^2`."""
        targets_t, mask_t = per_step_t
        err = jnp.mean((readout_t - targets_t) ** 2, axis=-1)
        return shared * jnp.sum(err if mask_t is None else err * mask_t)

    def metrics(self, outputs, batch):
        mse = self.loss(outputs, batch)
        return {"loss": mse, "nmse": mse / jnp.var(batch.targets)}


@functools.partial(jax.jit, static_argnums=(3, 4))
def _pattern(seed, p_spike, dt, sizes: tuple[int, int, int], dtype):
    """The Poisson inputs and the sine-sum targets (peak amplitude 1), as one compiled program per
    size (eagerly, each operation would compile on its own)."""
    steps, n_in, n_out = sizes
    k_in, k_amp, k_phase = jax.random.split(jax.random.key(seed), 3)
    inputs = (jax.random.uniform(k_in, (steps, n_in)) < p_spike).astype(dtype)
    t = jnp.arange(1, steps + 1, dtype=dtype) * dt
    periods = jnp.asarray(PERIODS_MS, dtype)
    amp = jax.random.uniform(k_amp, (n_out, len(PERIODS_MS)), dtype, 0.5, 2.0)
    phase = jax.random.uniform(k_phase, (n_out, len(PERIODS_MS)), dtype, 0.0, 2 * jnp.pi)
    targets = jnp.sum(amp[None] * jnp.sin(2 * jnp.pi * t[:, None, None] / periods + phase[None]), axis=-1)
    return inputs, targets / jnp.max(jnp.abs(targets))
