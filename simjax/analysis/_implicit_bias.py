r"""Measures of the implicit bias of gradient descent on two-layer students: clustering of neurons,
agreement with the linearised network, the Neural Agreement Regime, alignment of filters with
patterns and of neurons with DNF terms, weight norms, and exact (balanced) errors.

All are pure functions of arrays and jit/vmap-able, so they run inside a vmapped sweep.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from ..networks._two_layer import AbstractTwoLayer, LeakyReLUStudent


def _unit(v, eps=1e-30):
    return v / jnp.maximum(jnp.linalg.norm(v, axis=-1, keepdims=True), eps)


def _significant(norms, fraction):
    return norms > fraction * jnp.max(norms)


def mean_pairwise_cosine(vectors: Float[ArrayLike, "k d"]) -> Float[Array, ""]:
    r"""The mean cosine similarity over distinct pairs of rows,
    `2 / (k (k - 1)) sum_{i<j} cos(v_i, v_j)` (1 when all rows point one way; needs `k >= 2`)."""
    u = _unit(jnp.asarray(vectors))
    k = u.shape[0]
    gram = u @ u.T
    return (jnp.sum(gram) - jnp.trace(gram)) / (k * (k - 1))


def sign_agreement(a: Float[ArrayLike, " n"], b: Float[ArrayLike, " n"]) -> Float[Array, ""]:
    """The fraction of entries where `sign(a) == sign(b)`."""
    return jnp.mean(jnp.sign(jnp.asarray(a)) == jnp.sign(jnp.asarray(b)))


def linear_agreement(model: LeakyReLUStudent, inputs: Float[ArrayLike, "n d"]) -> Float[Array, ""]:
    """How often the student's label equals that of its linearisation `(sum w_i - sum u_i) . x`
    (`simjax.networks.LeakyReLUStudent.linear`) on `inputs`."""
    inputs = jnp.asarray(inputs)
    return sign_agreement(model(inputs), model.linear(inputs))


def nar_fraction(model: LeakyReLUStudent, inputs: Float[ArrayLike, "n d"],
                 targets: Float[ArrayLike, " n"]) -> Float[Array, ""]:
    r"""The fraction of points in the Neural Agreement Regime (Sarussi, Brutzkus & Globerson 2021):
    every positive neuron's pre-activation has the sign of `y` and every negative neuron's the
    sign of `-y`, `sign(w_i . x) = y` and `sign(u_i . x) = -y` for all `i`."""
    inputs, y = jnp.asarray(inputs), jnp.asarray(targets)
    pos = jnp.all(jnp.sign(inputs @ model.w.T) == y[:, None], axis=1)
    neg = jnp.all(jnp.sign(inputs @ model.u.T) == -y[:, None], axis=1)
    return jnp.mean(pos & neg)


def filter_alignment(filters: Float[ArrayLike, "k p"], patterns: Float[ArrayLike, "count p"], *,
                     threshold: float = 0.95, min_norm_fraction: float = 0.2) -> Float[Array, ""]:
    r"""The fraction of filters with a non-negligible norm (above `min_norm_fraction` times the
    largest) whose cosine with some row of `patterns` exceeds `threshold` (Brutzkus & Globerson 2019's
    clustering of filters on the pattern directions)."""
    f = jnp.asarray(filters)
    cos = jnp.max(_unit(f) @ _unit(jnp.asarray(patterns)).T, axis=1)
    keep = _significant(jnp.linalg.norm(f, axis=1), min_norm_fraction)
    return jnp.sum(keep & (cos > threshold)) / jnp.maximum(jnp.sum(keep), 1)


def span_fraction(vectors: Float[ArrayLike, "k p"], basis: Float[ArrayLike, "count p"], *,
                  min_norm_fraction: float = 0.2) -> Float[Array, ""]:
    r"""The mean fraction of squared norm `|P v|^2 / |v|^2` that rows `v` of `vectors` put in the
    span of the rows of `basis` (orthonormalised here), over rows with a non-negligible norm (above
    `min_norm_fraction` times the largest): 1 when every filter lies among the given patterns."""
    v = jnp.asarray(vectors)
    q, _ = jnp.linalg.qr(jnp.asarray(basis).T)
    frac = jnp.sum(jnp.square(v @ q), axis=1) / jnp.maximum(jnp.sum(jnp.square(v), axis=1), 1e-30)
    keep = _significant(jnp.linalg.norm(v, axis=1), min_norm_fraction)
    return jnp.sum(jnp.where(keep, frac, 0.0)) / jnp.maximum(jnp.sum(keep), 1)


def term_alignment(weights: Float[ArrayLike, "r dim"], term_matrix: Float[ArrayLike, "terms dim"], *,
                   min_norm_fraction: float = 0.2) -> Float[Array, ""]:
    r"""DNF term alignment of a layer's neurons (rows of `weights`): for each neuron the fraction of
    its `|w|` mass on its best term `T`, `max_T sum_{i in T} |w_i| / sum_i |w_i|`, counted only
    when all of that term's weights are positive (0 otherwise), averaged over neurons whose norm
    exceeds `min_norm_fraction` times the largest. `term_matrix` holds the terms as 0/1 rows
    (`simjax.tasks.ReadOnceDNF.term_matrix`); a network of term indicators scores 1."""
    w = jnp.asarray(weights)
    t = jnp.asarray(term_matrix)
    mass = (jnp.abs(w) @ t.T) / jnp.maximum(jnp.sum(jnp.abs(w), axis=1, keepdims=True), 1e-30)
    best = jnp.argmax(mass, axis=1)
    members = t[best] > 0
    positive = jnp.all(jnp.where(members, w > 0, True), axis=1)
    score = jnp.where(positive, jnp.max(mass, axis=1), 0.0)
    keep = _significant(jnp.linalg.norm(w, axis=1), min_norm_fraction)
    return jnp.sum(jnp.where(keep, score, 0.0)) / jnp.maximum(jnp.sum(keep), 1)


def weight_norm(model: AbstractTwoLayer) -> Float[Array, ""]:
    """The Euclidean norm of all the fields `model.trainable` names, as one vector."""
    leaves = [getattr(model, f) for f in model.trainable]
    return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in leaves))


def classification_error(outputs: Float[ArrayLike, " n"], targets: Float[ArrayLike, " n"]) -> Float[Array, ""]:
    """The fraction of points with `sign(outputs) != targets` (an output of exactly 0 is an error)."""
    return jnp.mean(jnp.sign(jnp.asarray(outputs)) != jnp.asarray(targets))


def balanced_error(outputs: Float[ArrayLike, " n"], targets: Float[ArrayLike, " n"]) -> Float[Array, ""]:
    r"""The mean of the error on the positive and on the negative points,
    `(P(sign N != 1 | y = 1) + P(sign N != -1 | y = -1)) / 2`; on a task's `population` (all inputs
    of each class, equally likely within the class) it is the exact balanced population error."""
    wrong = jnp.sign(jnp.asarray(outputs)) != jnp.asarray(targets)
    pos = jnp.asarray(targets) > 0
    per_class = lambda m: jnp.sum(wrong & m) / jnp.maximum(jnp.sum(m), 1)
    return 0.5 * (per_class(pos) + per_class(~pos))

