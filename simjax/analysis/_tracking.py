"""Gradient quality along training: a jittable probe that `simjax.fit` evaluates every `every` steps."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ..rules._exact import Exact
from ._gradient_quality import LEARNED, _deviation, default_exact_rtol, full_stats, parameter_groups, sample_updates

TRACKED = ("relative_bias", "relative_variance", "cosine_mean", "cosine_sample", "sign_agreement", "exact")


class QualityTracker(eqx.Module):
    """Every `every` steps, draws `samples` updates of the training rule on the step's batch and
    records their quality against `reference` (default `simjax.rules.Exact`) into the history as
    `"quality/<group>/<quantity>"` (NaN on other steps): per parameter group, for `"learned"` (the
    groups the rule does not compute exactly at that step, see `simjax.analysis.gradient_quality`)
    and for `"total"` (all parameters). No callbacks: the probe is a `lax.cond` inside the
    training scan.

    **Arguments:**

    - `every`: steps between probes (>= 1).
    - `samples`: updates drawn per probe (>= 3).
    - `reference`: the reference rule (default `simjax.rules.Exact()`).
    - `exact_rtol`: tolerance of "exact" (default `sqrt(eps)` of the dtype).
    """

    every: int = eqx.field(static=True, default=10)
    samples: int = eqx.field(static=True, default=8)
    reference: Any = None
    exact_rtol: float | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        if not isinstance(self.every, int) or self.every < 1:
            raise ValueError(f"QualityTracker: every must be a positive int, got {self.every!r}")
        if not isinstance(self.samples, int) or self.samples < 3:
            raise ValueError(f"QualityTracker: samples must be an int >= 3, got {self.samples!r}")

    def names(self, model: Any) -> list[str]:
        return [f"quality/{g}/{q}" for g in ("total", LEARNED, *parameter_groups(model)) for q in TRACKED]

    def __call__(self, step: Any, model: Any, rule: Any, task: Any, batch: Any, key: Any) -> dict:
        reference = Exact() if self.reference is None else self.reference
        groups = parameter_groups(model)
        names = self.names(model)

        def measure(_):
            k_rule, k_ref = jax.random.split(key)
            G = sample_updates(model, rule, task, batch, k_rule, self.samples)
            g = ravel_pytree(reference(model, task, batch, k_ref)[1])[0]
            rtol = default_exact_rtol(G.dtype) if self.exact_rtol is None else self.exact_rtol
            S = self.samples
            curvature = (jnp.zeros((S, S), G.dtype), jnp.zeros(S, G.dtype), jnp.zeros((), G.dtype))
            out = {}

            def record(name, stats, exact):
                out.update({f"quality/{name}/{q}": stats[q] for q in TRACKED if q != "exact"})
                out[f"quality/{name}/exact"] = exact

            record("total", full_stats(G, g, *curvature), _deviation(G, g, rtol)[1])
            learned = jnp.zeros(G.shape[1], G.dtype)
            for name, mask in groups.items():
                idx = np.flatnonzero(mask)
                exact = _deviation(G[:, idx], g[idx], rtol)[1]
                record(name, full_stats(G[:, idx], g[idx], *curvature), exact)
                learned = learned + jnp.asarray(mask, G.dtype) * (1 - exact)
            empty = jnp.sum(learned) == 0
            stats = full_stats(G * learned, g * learned, *curvature, where=learned)
            record(LEARNED, jax.tree.map(lambda v: jnp.where(empty, jnp.nan, v), stats), empty.astype(G.dtype))
            return out

        def skip(_):
            dtype = jnp.result_type(float)
            return {n: jnp.full((), jnp.nan, dtype) for n in names}

        return jax.lax.cond(step % self.every == 0, measure, skip, None)
