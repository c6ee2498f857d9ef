r"""Pattern-readout tasks for sequential learning in recurrent rate networks (Schuessler, Mastrogiuseppe,
Ostojic & Barak).

Each task owns a pattern `p` of `N` numbers (`|p| = sqrt(N)`). The input arrives along the
pattern in the network's own coordinates (`u(t) = s(t) p`, `n_in = N`; with input weights
initialised to the identity this is `B u = s(t) p`), and the task reads the network along it,

    z_p(t) = p^T phi(x(t)) / N,

from the recorded rates (`outputs.spikes`), so the model needs no dedicated readout. The loss is
the mean squared error of `z_p` against the task's target over the task's window. Times are in
units of the neurons' time constant; step `k` of the simulation covers `((k-1) dt, k dt]`.

- `FixedPointMemory`: a pulse of amplitude 1 along `p` for `t in [0, 1]`, then no input; the
  readout must hold `z_p = 0.5` during `[5, 20]` (a fixed point of the autonomous dynamics).
- `SineGeneration`: the same trigger pulse, then `z_p(t) = 0.5 sin(2 pi t / T_p)` during
  `[5, 20]` with no input (autonomously generated dynamics; a network at rest with no input stays
  at rest, hence the trigger).
- `InputTracking`: a piecewise-constant stimulus `s(t)` (levels `U(-1, 1)` drawn per trial)
  along `p`; the readout must follow `0.5 s(t)` except during `settle` after each change
  (input-driven dynamics).

`orthonormal_patterns` draws the patterns: seeded Gaussians, then Gram-Schmidt.
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._checks import as_float_array, check_int, check_positive, check_shape
from ._base import AbstractClockTask, Batch
from ._supervised import masked_mean


def orthonormal_patterns(n: int, count: int = 2, *, key) -> Float[Array, "count n"]:
    """`count` mutually orthogonal patterns of norm `sqrt(n)` (rows): Gaussian draws made
    orthogonal by Gram-Schmidt (a QR decomposition with a positive diagonal of `R`)."""
    check_int("n", n, owner="orthonormal_patterns")
    check_int("count", count, maximum=n, owner="orthonormal_patterns")
    gauss = jax.random.normal(key, (n, count), dtype=jnp.result_type(float))
    q, r = jnp.linalg.qr(gauss)
    q = q * jnp.sign(jnp.diagonal(r))  # Gram-Schmidt's sign convention
    return (q * jnp.sqrt(jnp.asarray(n, q.dtype))).T


def _check_window(owner, window, duration):
    lo, hi = window
    if not 0.0 <= lo < hi <= duration:
        raise ValueError(f"{owner}: window must satisfy 0 <= start < end <= duration={duration}, got {window!r}")


class AbstractPatternTask(AbstractClockTask):
    """A task read out along `pattern`: `z = pattern . phi(x) / N` from the rates.

    Subclasses define `signals` (the input amplitude `s` and the target and mask of `z` per
    step). Times are multiples of `dt` from `0` to `duration`.
    """

    pattern: eqx.AbstractVar[Float[Array, " n"]]
    dt: eqx.AbstractVar[float]
    duration: eqx.AbstractVar[float]

    @property
    def n(self) -> int:
        return self.pattern.shape[-1]

    @property
    def steps(self) -> int:
        return int(round(self.duration / self.dt))

    def times(self) -> Float[Array, " time"]:
        """The end time `k dt` of every step `k = 1 ... steps`."""
        return jnp.arange(1, self.steps + 1, dtype=self.pattern.dtype) * self.dt

    @abc.abstractmethod
    def signals(self, key, batch_size: int) -> tuple[Array, Array, Array]:
        """`(s [time, batch], target [time, batch], mask [time, batch])`."""

    def sample(self, key, batch_size):
        s, target, mask = self.signals(key, batch_size)
        inputs = s[..., None] * self.pattern
        return Batch(inputs=inputs, targets=target, mask=mask)

    def readout(self, outputs) -> Float[Array, "time batch"]:
        """`z_p(t) = pattern . phi(x(t)) / N` from the recorded rates."""
        if outputs.spikes is None:
            raise ValueError(f"{type(self).__name__}: the rates must be recorded (record=('spikes', ...))")
        return outputs.spikes @ self.pattern / self.n

    def loss(self, outputs, batch):
        z = self.readout(outputs)
        return masked_mean((z - batch.targets) ** 2, batch.mask)

    def metrics(self, outputs, batch):
        z = self.readout(outputs)
        return {"loss": masked_mean((z - batch.targets) ** 2, batch.mask), "z_end": jnp.mean(z[-1])}


class _Pulsed(AbstractPatternTask):
    pattern: Float[Array, " n"]
    amplitude: Float[Array, ""]
    pulse: tuple[float, float] = eqx.field(static=True)
    window: tuple[float, float] = eqx.field(static=True)
    duration: float = eqx.field(static=True)
    dt: float = eqx.field(static=True)

    def _setup(self, owner, pattern, amplitude, pulse, window, duration, dt):
        check_shape("pattern", pattern, (None,), owner=owner)
        check_positive("dt", dt, owner=owner)
        check_positive("duration", duration, owner=owner)
        _check_window(owner, window, duration)
        _check_window(owner + " (pulse)", pulse, duration)
        self.pattern = as_float_array(pattern)
        self.amplitude = as_float_array(amplitude)
        self.pulse = (float(pulse[0]), float(pulse[1]))
        self.window = (float(window[0]), float(window[1]))
        self.duration, self.dt = float(duration), float(dt)

    def _input_and_mask(self, batch_size):
        t = self.times()
        start = t - self.dt  # step k covers (start, t]
        s = jnp.where((start >= self.pulse[0] - 1e-9) & (t <= self.pulse[1] + 1e-9), self.amplitude, 0.0)
        mask = ((t >= self.window[0] - 1e-9) & (t <= self.window[1] + 1e-9)).astype(t.dtype)
        tile = lambda a: jnp.broadcast_to(a[:, None], (a.shape[0], batch_size))
        return t, tile(s), tile(mask), tile


class FixedPointMemory(_Pulsed):
    """Hold `z_p = target` during `window` after a brief pulse along `pattern`.

    **Arguments:**

    - `pattern [N]`: the pattern (`|p| = sqrt(N)`, see `orthonormal_patterns`).
    - `target`: the value of `z_p` to hold (0.5).
    - `amplitude`, `pulse`: the input pulse's amplitude (1) and time interval (`(0, 1)`).
    - `window`: where the loss counts (`(5, 20)`); `duration` (20) and `dt` (0.1).
    """

    target: Float[Array, ""]

    def __init__(self, pattern, target=0.5, *, amplitude=1.0, pulse=(0.0, 1.0), window=(5.0, 20.0),
                 duration=20.0, dt=0.1):
        self._setup("FixedPointMemory", pattern, amplitude, pulse, window, duration, dt)
        self.target = as_float_array(target)

    def signals(self, key, batch_size):
        del key  # deterministic: every trial is the same
        t, s, mask, tile = self._input_and_mask(batch_size)
        return s, tile(jnp.full_like(t, self.target)), mask


class SineGeneration(_Pulsed):
    """Generate `z_p(t) = amplitude_out sin(2 pi t / period)` during `window` with no input after
    a trigger pulse along `pattern`.

    **Arguments:** `pattern`; `period` (5) and `amplitude_out` (0.5) of the target;
    `amplitude`, `pulse`, `window`, `duration`, `dt` as for `FixedPointMemory`.
    """

    period: Float[Array, ""]
    amplitude_out: Float[Array, ""]

    def __init__(self, pattern, period=5.0, amplitude_out=0.5, *, amplitude=1.0, pulse=(0.0, 1.0),
                 window=(5.0, 20.0), duration=20.0, dt=0.1):
        self._setup("SineGeneration", pattern, amplitude, pulse, window, duration, dt)
        check_positive("period", period, owner="SineGeneration")
        self.period = as_float_array(period)
        self.amplitude_out = as_float_array(amplitude_out)

    def signals(self, key, batch_size):
        del key
        t, s, mask, tile = self._input_and_mask(batch_size)
        return s, tile(self.amplitude_out * jnp.sin(2 * jnp.pi * t / self.period)), mask


class InputTracking(AbstractPatternTask):
    """Follow a stimulus: `z_p(t) = gain s(t)` for a piecewise-constant `s` presented along
    `pattern`.

    **Arguments:**

    - `pattern [N]`.
    - `segments`: number of stimulus levels per trial (4), each `U(-1, 1)`, of equal duration.
    - `gain`: target gain (0.5); `settle`: time after each change excluded from the loss (2).
    - `duration` (20), `dt` (0.1).
    """

    pattern: Float[Array, " n"]
    gain: Float[Array, ""]
    segments: int = eqx.field(static=True)
    settle: float = eqx.field(static=True)
    duration: float = eqx.field(static=True)
    dt: float = eqx.field(static=True)

    def __init__(self, pattern, segments=4, gain=0.5, *, settle=2.0, duration=20.0, dt=0.1):
        check_shape("pattern", pattern, (None,), owner="InputTracking")
        check_int("segments", segments, owner="InputTracking")
        check_positive("dt", dt, owner="InputTracking")
        check_positive("duration", duration, owner="InputTracking")
        check_positive("settle", settle, allow_zero=True, owner="InputTracking")
        if settle >= duration / segments:
            raise ValueError(f"InputTracking: settle must be shorter than a segment ({duration / segments}), "
                             f"got {settle!r}")
        self.pattern = as_float_array(pattern)
        self.gain = as_float_array(gain)
        self.segments, self.settle = segments, float(settle)
        self.duration, self.dt = float(duration), float(dt)

    def signals(self, key, batch_size):
        t = self.times()
        length = self.duration / self.segments
        index = jnp.clip(jnp.floor((t - self.dt) / length + 1e-9).astype(jnp.int32), 0, self.segments - 1)
        levels = jax.random.uniform(key, (self.segments, batch_size), t.dtype, -1.0, 1.0)
        s = levels[index]
        since = t - index.astype(t.dtype) * length
        mask = jnp.broadcast_to((since > self.settle + 1e-9).astype(t.dtype)[:, None], s.shape)
        return s, self.gain * s, mask
