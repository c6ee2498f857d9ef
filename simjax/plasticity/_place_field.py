r"""The place-field protocol of Milstein et al. (2021, eLife 10:e73046): a CA1 cell receives
`n_inputs` spatially tuned inputs while the animal runs laps at constant speed on a circular track,
and dendritic plateaus at chosen positions reshape the input weights through BTSP
(`simjax.plasticity.BTSP`).

Input `i` has its field centred at `c_i = i L / n_inputs` on a track of length `L`; its rate at
position `x` is `exp(-(d(x, c_i) / sigma)^2)` (peak 1) with `d` the distance around the track and
`sigma = field_width / (3 sqrt 2)`. The position is `x(t) = (speed t) mod L`, starting at 0;
a lap lasts `round(L / (speed dt))` steps. A plateau at position `p` in lap `l` opens the
plateau gate for `plateau_duration` from the step at which the animal reaches `p`.
"""

from __future__ import annotations

import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._checks import check_int, check_positive, is_concrete
from ._btsp import BTSP
from ._run import run


class Track(eqx.Module):
    r"""A circular track with place-tuned inputs (module docstring). All sizes are static: they set
    the number of steps.

    **Arguments:**

    - `n_inputs`: number of inputs (default 200).
    - `length`: track length (cm, default 187).
    - `field_width`: width of each input's place field (cm, default 90; `sigma = width / (3 sqrt 2)`).
    - `speed`: running speed (cm/s, default 25).
    - `dt`: the step (ms, default 1; the published fits used 10 ms).
    - `plateau_duration`: plateau length (ms, default 300).
    """

    n_inputs: int = eqx.field(static=True)
    length: float = eqx.field(static=True)
    field_width: float = eqx.field(static=True)
    speed: float = eqx.field(static=True)
    dt: float = eqx.field(static=True)
    plateau_duration: float = eqx.field(static=True)

    def __init__(self, n_inputs: int = 200, length: float = 187.0, field_width: float = 90.0, speed: float = 25.0,
                 dt: float = 1.0, plateau_duration: float = 300.0):
        owner = "Track"
        self.n_inputs = check_int("n_inputs", n_inputs, owner=owner)
        for name, v in (("length", length), ("field_width", field_width), ("speed", speed), ("dt", dt),
                        ("plateau_duration", plateau_duration)):
            check_positive(name, v, owner=owner)
        self.length, self.field_width, self.speed = float(length), float(field_width), float(speed)
        self.dt, self.plateau_duration = float(dt), float(plateau_duration)
        if self.lap_steps < 2:
            raise ValueError(f"{owner}: a lap of length={length} cm at speed={speed} cm/s lasts fewer than 2 steps of "
                             f"dt={dt} ms; decrease dt")

    @property
    def lap_steps(self) -> int:
        """Steps per lap."""
        return int(round(self.length / (self.speed * 1e-3 * self.dt)))

    @property
    def centres(self) -> Float[Array, " n_inputs"]:
        """The field centres (cm)."""
        return jnp.arange(self.n_inputs) * (self.length / self.n_inputs)

    def rates(self, laps: int) -> Float[Array, "time n_inputs"]:
        """The input rates (peak 1) over `laps` laps, `[laps * lap_steps, n_inputs]`."""
        t = jnp.arange(laps * self.lap_steps) * self.dt
        x = jnp.mod(t * (self.speed * 1e-3), self.length)
        d = jnp.abs(x[:, None] - self.centres[None, :])
        d = jnp.minimum(d, self.length - d)
        sigma = self.field_width / (3.0 * math.sqrt(2.0))
        return jnp.exp(-((d / sigma) ** 2))

    def plateau_gate(self, plateaus: Any) -> Float[Array, " time"]:
        """The plateau gate for one plateau per lap at the positions `plateaus` (cm; `NaN`: no
        plateau in that lap), `[laps * lap_steps]`."""
        plateaus = np.asarray(plateaus, dtype=float)
        steps, width = self.lap_steps, max(int(round(self.plateau_duration / self.dt)), 1)
        gate = np.zeros(len(plateaus) * steps)
        for lap, p in enumerate(plateaus):
            if np.isfinite(p):
                k0 = lap * steps + int(round(p / (self.speed * 1e-3 * self.dt)))
                gate[k0:k0 + width] = 1.0
        return jnp.asarray(gate)


def signal_maxima(rule: BTSP, rates: Float[Array, "time n"], gate: Float[Array, " time"], dt: Any
                  ) -> tuple[Float[Array, ""], Float[Array, ""]]:
    """The largest eligibility trace and instructive signal (before normalisation) that `rule`'s
    filters produce from `rates` and `gate` (the published model's normalisation constants)."""
    a, b = jnp.exp(-dt / rule.tau_et), jnp.exp(-dt / rule.tau_is)

    def body(carry, x):
        et, is_ = carry
        r, g = x
        et, is_ = a * et + (1.0 - a) * r, b * is_ + (1.0 - b) * g
        return (et, is_), (jnp.max(et), is_)

    zero = jnp.zeros((), rates.dtype)
    _, (et_max, is_max) = jax.lax.scan(body, (jnp.zeros(rates.shape[1:], rates.dtype), zero), (rates, gate))
    return jnp.max(et_max), jnp.max(is_max)


def place_field(rule: BTSP, weights: Float[ArrayLike, " n_inputs"], plateaus: Any, *,
                track: Track | None = None, normalise: bool = True, memory: str = "store", segment: int = 100
                ) -> Float[Array, " n_inputs"]:
    r"""The input weights of one cell after laps on the track with the given plateaus (module
    docstring), each lap's change applied at its end (the published protocol: `rule` must use
    `update="gated"`) or continuously (`update="continuous"`).

    **Arguments:**

    - `rule`: a `simjax.plasticity.BTSP` rule.
    - `weights`: the initial weights of the `track.n_inputs` inputs.
    - `plateaus`: one entry per lap, the plateau position (cm) or `NaN` for a lap without plateau.
    - `track`: the `Track` (default `Track()`: 200 inputs, 187 cm, 25 cm/s, dt = 1 ms).
    - `normalise`: replace `rule.et_norm` and `rule.is_norm` by the maxima of the two signals over
      this run (`signal_maxima`), as in the published fits; `False` keeps the rule's constants.
    - `memory`, `segment`: as for `simjax.plasticity.run` (checkpointing for gradients of long runs).

    **Returns:** the weights after the last lap.
    """
    owner = "place_field"
    if not isinstance(rule, BTSP):
        raise TypeError(f"{owner}: rule must be a simjax.plasticity.BTSP, got {type(rule).__name__}")
    track = Track() if track is None else track
    weights = jnp.asarray(weights)
    if weights.shape != (track.n_inputs,):
        raise ValueError(f"{owner}: weights has shape {weights.shape}, expected ({track.n_inputs},) (one weight per "
                         "input of the track)")
    plateaus = np.asarray(plateaus, dtype=float)
    if plateaus.ndim != 1 or plateaus.size == 0:
        raise ValueError(f"{owner}: plateaus must be a 1-d array with one entry per lap, got shape {plateaus.shape}")
    bad = np.isfinite(plateaus) & ((plateaus < 0) | (plateaus >= track.length))
    if np.any(bad):
        raise ValueError(f"{owner}: plateau positions must lie in [0, {track.length}) cm (NaN: no plateau), got "
                         f"{plateaus[bad][0]!r}")
    if is_concrete(weights):
        w = np.asarray(weights)
        if np.any(w < np.asarray(rule.w_min)) or np.any(w > np.asarray(rule.w_max)):
            raise ValueError(f"{owner}: weights must lie within the rule's bounds [{float(rule.w_min)}, "
                             f"{float(rule.w_max)}], got values in [{w.min()}, {w.max()}]")
    laps = len(plateaus)
    rates = track.rates(laps).astype(weights.dtype)
    gate = track.plateau_gate(plateaus).astype(weights.dtype)
    if normalise:
        et_max, is_max = signal_maxima(rule, rates, gate, track.dt)
        is_max = jnp.where(is_max > 0, is_max, 1.0)
        rule = eqx.tree_at(lambda r: (r.et_norm, r.is_norm), rule, (et_max, is_max))
    modulator = None
    if rule.update == "gated":
        modulator = jnp.zeros(laps * track.lap_steps, weights.dtype).at[track.lap_steps - 1::track.lap_steps].set(1.0)
    final, _ = run(rule, rates, gate[:, None], weights[:, None], dt=track.dt, modulator=modulator, memory=memory,
                   segment=segment)
    return final[:, 0]
