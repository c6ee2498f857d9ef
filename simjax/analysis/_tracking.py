"""Gradient quality along training: a jittable probe that `simjax.fit` evaluates every `every` steps."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ..rules._exact import Exact
from ._gradient_quality import LEARNED, default_exact_rtol, group_reports, parameter_groups, sample_updates

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
            reports, _ = group_reports(G, g, {"total": np.ones(G.shape[1], bool), **groups}, exact_rtol=rtol,
                                       errors=False)
            out = {}
            for name, (stats, _, _, exact) in reports.items():
                out.update({f"quality/{name}/{q}": stats[q] for q in TRACKED if q != "exact"})
                out[f"quality/{name}/exact"] = exact
            return out

        def skip(_):
            dtype = jnp.result_type(float)
            return {n: jnp.full((), jnp.nan, dtype) for n in names}

        return jax.lax.cond(step % self.every == 0, measure, skip, None)
