r"""Evidence accumulation (the cue task of Morcos & Harvey, Nature Neuroscience 19:1672, 2016, in
the spiking form of Bellec et al., Nature Communications 11:3625, 2020).

`n_cues` cues (odd), each `cue_duration` ms followed by `cue_gap` ms of silence, appear on
the "left" or "right" input group (fair coin per cue); after a `delay` a "decision" cue group is
active for `decision` ms, during which the network must report the side that had more cues.
With `cue_bias = p > 0.5` each trial first draws a favoured side (fair coin) and each cue lands on it
with probability `p` (the reference implementation of Bellec et al. uses `p = 0.7`, so that most
trials are not 4:3 splits); `p = 0.5` is a fair coin per cue.
Three groups of `channels` inputs; active groups fire at `rate` Hz (`coding="spike"`,
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


class EvidenceAccumulation(AbstractCuedDecision):
    """Report the majority side of a sequence of left/right cues after a delay (module docstring).

    **Arguments:**

    - `n_cues`: number of cues (odd, so a majority exists).
    - `cue_duration`, `cue_gap`, `delay`, `decision`: timings (ms).
    - `channels`: inputs per group (`n_in = 3 channels`). `coding`: `"spike"` or `"rate"`.
    - `rate`, `background` (Hz), `amplitude`: input levels. `dt`: time step (ms).
    - `cue_bias`: probability in `[0.5, 1]` that a cue lands on the trial's favoured side.

    **Batch:** `inputs [time, batch, 3 channels]`, `targets [batch]` (0 = left, 1 = right),
    `mask [time]` (1 in the decision window).
    """

    n_cues: int = eqx.field(static=True)
    schedule: tuple[int, int, int, int] = eqx.field(static=True)
    cue_bias: RealScalarLike = eqx.field(static=True)

    def __init__(self, n_cues: int = 7, cue_duration: float = 100.0, cue_gap: float = 50.0, delay: float = 1000.0,
                 decision: float = 150.0, channels: int = 10, coding: str = "spike", rate: RealScalarLike = 40.0,
                 background: RealScalarLike = 10.0, amplitude: RealScalarLike = 1.0, dt: float = 1.0,
                 cue_bias: RealScalarLike = 0.5):
        owner = "EvidenceAccumulation"
        check_int("n_cues", n_cues, owner=owner)
        if not (isinstance(cue_bias, (int, float)) and 0.5 <= cue_bias <= 1.0):
            raise ValueError(f"{owner}: cue_bias must be a probability in [0.5, 1], got {cue_bias!r}")
        self.cue_bias = float(cue_bias)
        if n_cues % 2 == 0:
            raise ValueError(f"{owner}: n_cues must be odd (so that one side has more cues), got {n_cues}")
        self._setup_coding(owner, channels, coding, rate, background, amplitude, dt)
        self.n_cues = n_cues
        self.schedule = (steps_of("cue_duration", cue_duration, dt, owner=owner),
                         steps_of("cue_gap", cue_gap, dt, owner=owner, minimum=0),
                         steps_of("delay", delay, dt, owner=owner, minimum=0),
                         steps_of("decision", decision, dt, owner=owner))

    @property
    def n_in(self) -> int:
        return 3 * self.channels

    @property
    def steps(self) -> int:
        cue, gap, delay, decision = self.schedule
        return self.n_cues * (cue + gap) + delay + decision

    def sample(self, key, batch_size):
        check_int("batch_size", batch_size, owner="EvidenceAccumulation")
        k_side, k_spikes = jax.random.split(key)
        dtype = self.rate.dtype
        cue, gap, delay, decision = self.schedule
        favoured = jax.random.bernoulli(jax.random.fold_in(k_side, 1), 0.5, (batch_size, 1))
        p_right = jnp.where(favoured, self.cue_bias, 1.0 - self.cue_bias)
        sides = jax.random.bernoulli(k_side, p_right, (batch_size, self.n_cues)).astype(jnp.int32)
        per_cue = jnp.concatenate([jnp.ones((cue,), dtype), jnp.zeros((gap,), dtype)])
        onehot = jax.nn.one_hot(sides, 2, dtype=dtype)                                   # [batch, cues, 2]
        lr = jnp.einsum("bcs,k->ckbs", onehot, per_cue).reshape(self.n_cues * (cue + gap), batch_size, 2)
        tail = jnp.zeros((delay + decision, batch_size, 2), dtype)
        lr = jnp.concatenate([lr, tail], axis=0)
        window = jnp.concatenate([jnp.zeros((self.steps - decision,), dtype), jnp.ones((decision,), dtype)])
        cue_group = jnp.broadcast_to(window[:, None, None], (self.steps, batch_size, 1))
        pattern = jnp.concatenate([lr, cue_group], axis=-1)
        labels = (2 * jnp.sum(sides, axis=1) > self.n_cues).astype(jnp.int32)
        return Batch(inputs=self.encode(k_spikes, pattern), targets=labels, mask=window)
