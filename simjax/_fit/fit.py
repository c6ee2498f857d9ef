"""`fit`: train a model with any learning rule, as a pure `lax.scan` over training steps."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import PRNGKeyArray

from .._checks import check_int, is_concrete
from ..networks._base import AbstractNetwork
from ..parameters._parameters import constrain, partition
from ..rules._base import AbstractRule
from ..tasks._base import AbstractTask


def _train_step(static, rule, task, optimizer, batch_size, track):
    def one(carry, step_and_key):
        step, key = step_and_key
        params, opt_state, rule_state = carry
        model = eqx.combine(params, static)
        k_batch, k_rule, k_track = jax.random.split(key, 3)
        batch = task.sample(k_batch, batch_size)
        loss, updates, aux, rule_state = rule.step(rule_state, model, task, batch, k_rule)
        metrics = {"loss": loss, **aux}
        if track is not None:
            metrics.update(track(step, model, rule, task, batch, k_track))
        updates, opt_state = optimizer.update(updates, opt_state, params)
        params = eqx.apply_updates(params, updates)
        params, _ = partition(constrain(eqx.combine(params, static)))
        return (params, opt_state, rule_state), metrics

    return one


def _chunk_size(steps: int, chunks: int) -> int:
    target = max(1, math.ceil(steps / chunks))
    return next(c for c in range(target, steps + 1) if steps % c == 0)


def fit(model: AbstractNetwork, rule: AbstractRule, task: AbstractTask, optimizer: optax.GradientTransformation, *,
        steps: int, key: PRNGKeyArray,
        batch_size: int = 32, progress: bool | Callable[[int, int, dict], None] = False,
        chunks: int = 20, track: Any = None) -> tuple[Any, dict]:
    """Trains `model` on `task` with `rule` and `optimizer` for `steps` steps.

    Each step samples a batch, asks the rule for `(loss, updates, aux)`, applies the optimiser and
    then the model's constraints (Dale signs, bounds: `simjax.parameters.constrain`), the same way
    for every rule. Pure: `jax.vmap(lambda k: fit(..., key=k))` trains many seeds at once.

    **Arguments:**

    - `steps`: number of updates; `key`: PRNG key (batches and the rule's randomness).
    - `batch_size`: trials per update.
    - `progress`: `True` prints a progress line between chunks; a callable receives
      `(done, steps, last_metrics)`. Ignored (one single scan) when called under a JAX transform.
    - `chunks`: how many chunks the scan is split into when reporting progress.
    - `track`: a `simjax.analysis.QualityTracker` to record the rule's gradient quality along
      training (every `track.every` steps, NaN elsewhere).

    **Returns:** `(trained_model, history)` with `history[name]` of shape `[steps]` for the loss
    and every scalar in the rule's `aux`.
    """
    check_int("steps", steps, owner="fit")
    check_int("batch_size", batch_size, owner="fit")
    params, static = partition(model)
    k_rule, k_steps = jax.random.split(key)
    carry = (params, optimizer.init(params), rule.init(model, k_rule))
    keys = (jnp.arange(steps), jax.random.split(k_steps, steps))
    one = _train_step(static, rule, task, optimizer, batch_size, track)

    if not progress or not is_concrete(keys[1]):
        carry, history = jax.lax.scan(one, carry, keys)
        return eqx.combine(carry[0], static), history

    report = progress if callable(progress) else _print_progress(steps)
    size = _chunk_size(steps, chunks)
    run_chunk = eqx.filter_jit(lambda c, ks: jax.lax.scan(one, c, ks))
    parts = []
    for start in range(0, steps, size):
        carry, hist = run_chunk(carry, jax.tree.map(lambda a: a[start:start + size], keys))
        parts.append(hist)
        report(start + size, steps, jax.tree.map(lambda a: a[-1], hist))
    history = jax.tree.map(lambda *a: jnp.concatenate(a), *parts)
    return eqx.combine(carry[0], static), history


def _print_progress(steps: int) -> Callable[[int, int, dict], None]:
    start = time.perf_counter()

    def report(done, total, metrics):
        elapsed = time.perf_counter() - start
        eta = elapsed / done * (total - done)
        shown = "  ".join(f"{k} {float(v):.4g}" for k, v in metrics.items() if jnp.ndim(v) == 0)
        print(f"  step {done:>6}/{total}  {shown}  [{elapsed:.0f}s elapsed, ETA {eta:.0f}s]", file=sys.stderr,
              flush=True)

    return report
