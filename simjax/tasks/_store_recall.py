r"""Store-recall: hold one bit in working memory across a delay (Bellec et al., NeurIPS 2018 and
Nature Communications 11:3625, 2020).

A trial is `n_periods` periods of `period` ms. Four input groups of `channels` inputs each:
"store", "recall", "value 0", "value 1". In every period but the last a random bit is shown on the
value groups (distractors, `distractors=True`); in one period `s`, drawn uniformly from
`0 ... n_periods - 1 - min_delay`, the store group is active too, and the bit shown then is the
trial's label. The last period is the recall cue: the network reports the stored bit during it
(delay `(n_periods - 1 - s) period` ms). Active groups fire at `rate` Hz (`coding="spike"`,
`background` Hz when silent) or carry `amplitude` (`coding="rate"`). Chance is 50 %.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from .._checks import check_int, steps_of
from .._custom_types import RealScalarLike
from ._base import Batch
from ._cued_decision import AbstractCuedDecision


class StoreRecall(AbstractCuedDecision):
    """Store a bit at a cue, recall it at the end of the trial (module docstring).

    **Arguments:**

    - `n_periods`: periods per trial (>= 2; the last is the recall period).
    - `period`: period length (ms). `min_delay`: fewest periods between store and recall (>= 1).
    - `distractors`: show random bits in every non-recall period (else only at the store).
    - `channels`: inputs per group (`n_in = 4 channels`). `coding`: `"spike"` or `"rate"`.
    - `rate`, `background` (Hz), `amplitude`: input levels. `dt`: time step (ms).

    **Batch:** `inputs [time, batch, 4 channels]`, `targets [batch]` (int labels),
    `mask [time]` (1 in the recall period).
    """

    n_periods: int = eqx.field(static=True)
    period_steps: int = eqx.field(static=True)
    min_delay: int = eqx.field(static=True)
    distractors: bool = eqx.field(static=True)

    def __init__(self, n_periods: int = 5, period: float = 200.0, min_delay: int = 1, distractors: bool = True,
                 channels: int = 10, coding: str = "spike", rate: RealScalarLike = 100.0,
                 background: RealScalarLike = 5.0,
                 amplitude: RealScalarLike = 1.0, dt: float = 1.0):
        owner = "StoreRecall"
        check_int("n_periods", n_periods, minimum=2, owner=owner)
        check_int("min_delay", min_delay, minimum=1, owner=owner)
        if min_delay > n_periods - 1:
            raise ValueError(f"{owner}: min_delay={min_delay} periods does not fit in n_periods={n_periods} "
                             "(at most n_periods - 1)")
        self._setup_coding(owner, channels, coding, rate, background, amplitude, dt)
        self.n_periods, self.min_delay, self.distractors = n_periods, min_delay, bool(distractors)
        self.period_steps = steps_of("period", period, dt, owner=owner)

    @property
    def n_in(self) -> int:
        return 4 * self.channels

    def with_min_delay(self, min_delay: int) -> StoreRecall:
        """The same task with only delays of at least `min_delay` periods."""
        return StoreRecall(n_periods=self.n_periods, period=self.period_steps * self.dt, min_delay=min_delay,
                           distractors=self.distractors, channels=self.channels, coding=self.coding, rate=self.rate,
                           background=self.background, amplitude=self.amplitude, dt=self.dt)

    @property
    def steps(self) -> int:
        return self.n_periods * self.period_steps

    def sample(self, key, batch_size):
        check_int("batch_size", batch_size, owner="StoreRecall")
        k_store, k_bits, k_spikes = jax.random.split(key, 3)
        dtype = self.rate.dtype
        n, p = self.n_periods, self.period_steps
        store = jax.random.randint(k_store, (batch_size,), 0, n - self.min_delay)          # [batch]
        bits = jax.random.bernoulli(k_bits, 0.5, (batch_size, n)).astype(jnp.int32)        # [batch, periods]
        period = jnp.arange(n)
        is_store = (period[None] == store[:, None]).astype(dtype)                           # [batch, periods]
        shown = jnp.ones_like(is_store) if self.distractors else is_store
        shown = shown * (period[None] < n - 1)
        value = jax.nn.one_hot(bits, 2, dtype=dtype) * shown[..., None]                    # [batch, periods, 2]
        recall = jnp.broadcast_to((period == n - 1).astype(dtype), (batch_size, n))
        groups = jnp.concatenate([is_store[..., None], recall[..., None], value], axis=-1)  # [batch, periods, 4]
        pattern = jnp.repeat(jnp.swapaxes(groups, 0, 1), p, axis=0)                        # [time, batch, 4]
        labels = jnp.take_along_axis(bits, store[:, None], axis=1)[:, 0]
        mask = jnp.repeat((period == n - 1).astype(dtype), p)
        return Batch(inputs=self.encode(k_spikes, pattern), targets=labels, mask=mask)
