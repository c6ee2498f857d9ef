"""Spike trains as (time, index) event lists, padded to a static length."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from ._checks import as_float_array


class SpikeTrain(eqx.Module):
    """Input spikes of `n` channels: `times[k]` (ms) of channel `ids[k]`.

    Entries with `times = inf` are padding (so trains of different lengths can be batched with a
    leading axis). Times need not be sorted; simulators sort them.
    """

    times: Float[Array, "*batch events"] = eqx.field(converter=as_float_array)
    ids: Int[Array, "*batch events"] = eqx.field(converter=lambda x: jnp.asarray(x, dtype=jnp.int32))
    n: int = eqx.field(static=True)

    def __check_init__(self):
        if self.times.shape != self.ids.shape:
            raise ValueError(f"SpikeTrain: times {self.times.shape} and ids {self.ids.shape} must have the same shape")
        if not isinstance(self.n, (int, np.integer)) or self.n <= 0:
            raise ValueError(f"SpikeTrain: n must be a positive int, got {self.n!r}")
        if not isinstance(self.ids, jax.core.Tracer):
            ids = np.asarray(self.ids)
            if ids.size and (ids.min() < 0 or ids.max() >= self.n):
                raise ValueError(f"SpikeTrain: ids must lie in [0, {self.n}), got range [{ids.min()}, {ids.max()}]")
        if not isinstance(self.times, jax.core.Tracer) and np.any(np.isnan(np.asarray(self.times))):
            raise ValueError("SpikeTrain: times contain NaN (use inf for padding)")

    def to_dense(self, dt: float, t1: float) -> Float[Array, "time *batch n"]:
        """Bins the train into a clock-driven input `x[k]` = number of spikes in `((k)dt, (k+1)dt]`.

        A spike at time `t` is delivered at the end of the step that contains it, which is when
        clock-driven neurons apply their input.
        """
        steps = int(round(t1 / dt))
        k = jnp.ceil(self.times / dt).astype(jnp.int32) - 1
        k = jnp.where(self.times <= 0, 0, k)
        valid = jnp.isfinite(self.times) & (k < steps) & (self.times >= 0)
        k = jnp.where(valid, k, steps)  # out-of-range -> dropped row
        batch = self.times.shape[:-1]

        def one(k1, ids1, valid1):
            out = jnp.zeros((steps + 1, self.n), dtype=self.times.dtype)
            return out.at[k1, ids1].add(valid1.astype(self.times.dtype))[:steps]

        flat = jax.vmap(one) if batch else one
        if len(batch) > 1:
            raise ValueError("SpikeTrain.to_dense supports at most one batch axis")
        dense = flat(k, self.ids, valid)
        return jnp.moveaxis(dense, 1, 0) if batch else dense
