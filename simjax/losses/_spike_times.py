r"""Losses on spike times that stay defined when spikes are missing.

With pseudodynamics (`simjax._simulate.event_layers`, Klos & Memmesheimer, Phys. Rev. Lett. 2025) every
neuron has a first spike time `t` (a pseudospike `t > t1` when it is silent in the trial), so
losses below use `t` as is: pulling a pseudospike towards `t1` and into the trial *adds* a spike,
pushing a spike past `t1` removes it. Without pseudodynamics a missing spike is `inf`; it is
replaced by the constant `t_missing` (no gradient flows through a missing spike then).
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import optax
from jaxtyping import Array, ArrayLike, Float, Int

from .._checks import check_int, check_positive
from .._spike_train import SpikeTrain


def _finite(times, t_missing):
    return jnp.where(jnp.isfinite(times), times, t_missing)


def first_spike_cross_entropy(times: Float[Array, "*batch n"], labels: Int[Array, "*batch"], *, t1: Any,
                              tau: Any = 1.0, missing_weight: Any = 0.0, early_weight: Any = 0.0,
                              early_tau: Any = 1.0, t_missing: Any = None) -> Float[Array, ""]:
    r"""Time-to-first-spike classification loss: the earliest output neuron should be the label's.

        L = mean[ -log softmax(-t / tau)_label  +  a max(t_label - t1, 0)^2 / tau^2
                  +  b (exp(t_label / tau_b) - 1) ]

    (Mostafa 2017; Göltz et al. 2021 for the first and last terms). The second term
    (`a = missing_weight`) pulls the label neuron's pseudospike into the trial when it is silent.
    The third (`b = early_weight`, `tau_b = early_tau`; Göltz et al. 2021's time regulariser)
    always rewards an earlier label spike: it keeps the label neuron firing while the first term
    pushes the others late, so that output spikes are not lost (LIF, where a lost spike has no
    smooth way back).

    **Arguments:**

    - `times`: first spike times `[*batch, n]` (pseudospikes `> t1` included; `inf`: none).
    - `labels`: integer classes `[*batch]`.
    - `t1`: trial end. `tau`: softmax temperature (time units, > 0).
    - `missing_weight`: `a >= 0`. `early_weight`: `b >= 0`. `early_tau`: `tau_b > 0`.
      `t_missing`: replaces `inf` (default `2 t1`).

    **Returns:** the scalar loss.
    """
    check_positive("tau", tau, owner="first_spike_cross_entropy")
    check_positive("missing_weight", missing_weight, allow_zero=True, owner="first_spike_cross_entropy")
    check_positive("early_weight", early_weight, allow_zero=True, owner="first_spike_cross_entropy")
    check_positive("early_tau", early_tau, owner="first_spike_cross_entropy")
    times = jnp.asarray(times)
    labels = jnp.asarray(labels)
    if labels.shape != times.shape[:-1]:
        raise ValueError(f"first_spike_cross_entropy: labels have shape {labels.shape}, expected {times.shape[:-1]} "
                         f"(one class per row of times {times.shape})")
    times = _finite(times, 2.0 * t1 if t_missing is None else t_missing)
    ce = optax.softmax_cross_entropy_with_integer_labels(-times / tau, labels.astype(jnp.int32))
    t_label = jnp.take_along_axis(times, labels[..., None].astype(jnp.int32), axis=-1)[..., 0]
    late = jnp.maximum(t_label - t1, 0.0) / tau
    off = isinstance(early_weight, (int, float)) and early_weight == 0  # (no exp overflow when off)
    early = 0.0 if off else early_weight * jnp.expm1(t_label / early_tau)
    return jnp.mean(ce + missing_weight * late**2 + early)


def first_spike_prediction(times: Float[Array, "*batch n"], t1: Any) -> tuple[Int[Array, "*batch"], Any]:
    """`(class, spiked)`: the output neuron that fires first within `[0, t1]` (pseudospikes do not
    count) and whether any output neuron fired in the trial."""
    real = jnp.where(jnp.asarray(times) <= t1, times, jnp.inf)
    return jnp.argmin(real, axis=-1), jnp.any(jnp.isfinite(real), axis=-1)


def spike_time_loss(times: Float[Array, "*shape"], targets: Float[ArrayLike, "*shape"], *,
                    t_missing: Any, t1: Any = None) -> Float[Array, ""]:
    r"""Mean squared timing error over the target spikes:

        L = sum_{targets finite} (t - t_target)^2 + sum_{targets inf} max(t1 - t, 0)^2,  over #finite

    `times` include pseudospikes, so a missing spike's pseudospike is pulled to its target (spike
    addition); a spike that has no time even so counts as `t_missing`. A target `inf` means "no
    spike": with `t1` given, such a spike inside the trial is pushed out through `t1` (spike
    removal); without `t1` it is ignored.
    """
    times, targets = jnp.asarray(times), jnp.asarray(targets)
    if times.shape != targets.shape:
        raise ValueError(f"spike_time_loss: times {times.shape} and targets {targets.shape} must have the same shape")
    used = jnp.isfinite(targets)
    times = _finite(times, t_missing)
    error = jnp.where(used, times - jnp.where(used, targets, 0.0), 0.0)
    total = jnp.sum(error**2)
    if t1 is not None:
        total = total + jnp.sum(jnp.where(used, 0.0, jnp.maximum(t1 - times, 0.0)) ** 2)
    return total / jnp.maximum(jnp.sum(used), 1)


def spike_times_per_neuron(*trains: SpikeTrain, k: int) -> Float[Array, "*batch n k"]:
    """The first `k` spike times of every neuron, from one or more `simjax.SpikeTrain` event lists
    (e.g. `out.spikes` and `out.info["pseudospikes"]`), padded with `inf`.

    **Returns:** `[*batch, n, k]` in increasing order per neuron.
    """
    if not trains or not all(isinstance(t, SpikeTrain) for t in trains):
        raise TypeError("spike_times_per_neuron: pass one or more simjax.SpikeTrain event lists")
    n = trains[0].n
    if any(t.n != n for t in trains):
        raise ValueError(f"spike_times_per_neuron: trains have different sizes {[t.n for t in trains]}")
    check_int("k", k, owner="spike_times_per_neuron")
    times = jnp.concatenate([t.times for t in trains], axis=-1)
    ids = jnp.concatenate([t.ids for t in trains], axis=-1)
    mine = ids[..., None, :] == jnp.arange(n)[:, None]
    per = jnp.sort(jnp.where(mine, times[..., None, :], jnp.inf), axis=-1)
    if per.shape[-1] < k:
        per = jnp.concatenate([per, jnp.full(per.shape[:-1] + (k - per.shape[-1],), jnp.inf, per.dtype)], axis=-1)
    return per[..., :k]
