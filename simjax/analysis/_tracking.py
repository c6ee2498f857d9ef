"""Gradient quality along training: a jittable probe that `simjax.fit` evaluates every `every` steps."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ..rules._exact import Exact
from ._gradient_quality import full_stats, parameter_groups, sample_updates

TRACKED = ("relative_bias", "relative_variance", "cosine_mean", "cosine_sample", "sign_agreement")


class QualityTracker(eqx.Module):
    """Every `every` steps, draws `samples` updates of the training rule on the step's batch and
    records their quality against `reference` (default `simjax.rules.Exact`) — per parameter group
    and in total — into the history as `"quality/<group>/<quantity>"` (NaN on other steps).
    No callbacks: the probe is a `lax.cond` inside the training scan."""

    every: int = eqx.field(static=True, default=10)
    samples: int = eqx.field(static=True, default=8)
    reference: Any = None

    def __check_init__(self):
        if not isinstance(self.every, int) or self.every < 1:
            raise ValueError(f"QualityTracker: every must be a positive int, got {self.every!r}")
        if not isinstance(self.samples, int) or self.samples < 3:
            raise ValueError(f"QualityTracker: samples must be an int >= 3, got {self.samples!r}")

    def names(self, model: Any) -> list[str]:
        return [f"quality/{g}/{q}" for g in ("total", *parameter_groups(model)) for q in TRACKED]

    def __call__(self, step: Any, model: Any, rule: Any, task: Any, batch: Any, key: Any) -> dict:
        reference = Exact() if self.reference is None else self.reference
        groups = {"total": None, **parameter_groups(model)}
        names = self.names(model)

        def measure(_):
            k_rule, k_ref = jax.random.split(key)
            G = sample_updates(model, rule, task, batch, k_rule, self.samples)
            g = ravel_pytree(reference(model, task, batch, k_ref)[1])[0]
            S = self.samples
            zero = jnp.zeros((S, S), G.dtype)
            out = {}
            for name, mask in groups.items():
                idx = jnp.arange(G.shape[1]) if mask is None else jnp.asarray(np.flatnonzero(mask))
                stats = full_stats(G[:, idx], g[idx], zero, jnp.zeros(S, G.dtype), jnp.zeros((), G.dtype))
                out.update({f"quality/{name}/{q}": stats[q] for q in TRACKED})
            return out

        def skip(_):
            dtype = jnp.result_type(float)
            return {n: jnp.full((), jnp.nan, dtype) for n in names}

        return jax.lax.cond(step % self.every == 0, measure, skip, None)
