r"""Transmission delays on a clock grid: a ring buffer of future synaptic input, per postsynaptic neuron.

A spike emitted at the end of step `n` (time `t_n`) through a synapse of delay `d` reaches
the receptors at `t_n + d`. Delays are whole numbers of steps, `k = d / dt` (a delay off the
grid is an error, `delay_steps`, not rounded silently). Arrivals are kept on the *postsynaptic*
side: a buffer `[L, *batch, n_post]` of `L = max_steps + 1` slots, one per future step, and a
cursor. Each step reads (and clears) the cursor's slot, which is the input that arrives at the
start of the step, then adds this step's propagated spikes `k + 1` slots ahead (`k = 0`: the next
step's start, i.e. the same instant `t_n` as the spike). Memory is `L n_post` numbers, not a
spike history of the presynaptic population, and per-synapse delays cost one scatter into the
flattened buffer.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from .._checks import is_concrete


def delay_steps(delay: Any, dt: Any, *, max_steps: int | None = None, owner: str = "delay") -> np.ndarray:
    """`delay / dt` as non-negative integers, or `ValueError` when a delay is negative, not a
    whole number of steps (relative tolerance 1e-9), or (with `max_steps`) longer than the buffer.

    **Arguments:**

    - `delay`: a delay (ms) or an array of them (concrete values).
    - `dt`: the time step (ms).
    - `max_steps`: the longest delay, in steps, the buffer holds.

    **Returns:** an int32 NumPy array of the shape of `delay`.
    """
    if not (is_concrete(delay) and is_concrete(dt)):
        raise ValueError(f"{owner}: delays and dt must be concrete numbers (the buffer length is static)")
    d = np.asarray(delay, dtype=np.float64)
    if np.any(~np.isfinite(d)) or np.any(d < 0):
        raise ValueError(f"{owner}: delays must be finite and >= 0 ms, got values in [{d.min()!r}, {d.max()!r}]")
    ratio = d / float(dt)
    k = np.round(ratio)
    off = np.abs(k - ratio) > 1e-9 * np.maximum(1.0, ratio)
    if np.any(off):
        bad = float(d[off].flat[0])
        raise ValueError(f"{owner}: a delay of {bad!r} ms is not a whole number of steps of dt={float(dt)!r} ms; "
                         "the clock-driven method delivers spikes on the grid only (choose dt that divides it)")
    if max_steps is not None and k.size and int(k.max()) > max_steps:
        raise ValueError(f"{owner}: a delay of {int(k.max())} steps is longer than the buffer "
                         f"(max_delay = {max_steps} steps)")
    return np.asarray(k, dtype=np.int32)


class DelayBuffer(eqx.Module):
    """The ring buffer state: `slots [L, *batch, n]` of future input and the `cursor` (the slot
    that arrives at the start of the current step)."""

    slots: Float[Array, "slots *batch n"]
    cursor: Int[Array, ""]


def init_buffer(length: int, shape: tuple[int, ...], dtype: Any) -> DelayBuffer:
    """An empty buffer of `length` slots for `shape` postsynaptic neurons."""
    return DelayBuffer(slots=jnp.zeros((length, *shape), dtype), cursor=jnp.zeros((), jnp.int32))


def pop(buffer: DelayBuffer) -> tuple[DelayBuffer, Float[Array, "*batch n"]]:
    """The input arriving at the start of this step, and the buffer with that slot cleared."""
    if buffer.slots.shape[0] == 1:  # no delay: a fresh buffer, which XLA fills without copying the old one
        return DelayBuffer(slots=jnp.zeros_like(buffer.slots), cursor=buffer.cursor), buffer.slots[0]
    arriving = buffer.slots[buffer.cursor]
    return DelayBuffer(slots=buffer.slots.at[buffer.cursor].set(0.0), cursor=buffer.cursor), arriving


def push(buffer: DelayBuffer, arrivals: Float[Array, "*batch n"], steps: int) -> DelayBuffer:
    """Adds `arrivals` (propagated at the end of this step) to the slot `steps + 1` ahead, and
    advances the cursor by one step."""
    length = buffer.slots.shape[0]
    slot = (buffer.cursor + 1 + steps) % length
    return DelayBuffer(slots=buffer.slots.at[slot].add(arrivals), cursor=(buffer.cursor + 1) % length)
