r"""Teacher tasks of the implicit-bias studies: data generated from a known rule, with the exact
population where the input space is finite.

- `LinearTeacher`: `x ~ N(0, I_d)` conditioned on `|w* . x| >= margin`, `y = sign(w* . x)`
  (Sarussi, Brutzkus & Globerson, ICML 2021).
- `XORDetection` / `PatternDetection`: an input is a sequence of `d` patterns; it is positive iff
  at least one pattern of the positive set appears (Brutzkus & Globerson, ICML 2019; orthonormal
  patterns: Brutzkus & Globerson, arXiv 2002.09781). Sampling is class-balanced.
- `ReadOnceDNF`: `x` uniform on `{-1, +1}^D`, `f(x) = OR_j AND_{i in T_j} [x_i = 1]` with
  disjoint terms `T_j` (Bronstein, Brutzkus & Globerson, UAI 2022).

Every `sample` returns a `Batch` with `inputs [n, ...]` (no time axis: the students are static
two-layer networks) and `targets [n]` in `{-1, +1}`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .._checks import as_float_array, check_int, is_concrete
from ._base import Batch

#: Largest margin `LinearTeacher` accepts: beyond it the Gaussian tail mass (< 6e-7) is below what
#: the inverse-CDF sampler resolves in single precision.
MAX_MARGIN = 5.0
#: Largest population (number of distinct inputs) enumerated for exact errors.
MAX_POPULATION = 2**20


class LinearTeacher(eqx.Module):
    r"""Linearly separable data with a margin: `x ~ N(0, I_d)` conditioned on
    `|w* . x| >= margin`, labelled `y = sign(w* . x)` by a unit teacher `w*`.

    Sampled exactly: the component along `w*` is `y s` with `s` from the standard normal
    truncated to `[margin, inf)` and `y = +-1` equally likely; the orthogonal part is
    `(I - w* w*^T) z`, `z ~ N(0, I_d)`.

    **Arguments:**

    - `d`: input dimension.
    - `margin`: the margin, in `[0, MAX_MARGIN)` (an array: it may be traced, e.g. vmapped).
    - `teacher`: optional teacher direction `[d]` (normalised); default a Gaussian draw from `seed`.
    - `seed`: draws the default teacher.
    """

    teacher: Float[Array, " d"]
    margin: Float[Array, ""]
    d: int = eqx.field(static=True)

    def __init__(self, d: int, margin: Float[ArrayLike, ""] = 0.5, *, teacher: Any = None, seed: int = 0):
        self.d = check_int("d", d, owner="LinearTeacher")
        if is_concrete(margin) and not (0.0 <= float(margin) < MAX_MARGIN):
            raise ValueError(f"LinearTeacher: margin = {float(margin)!r} is larger than Gaussian data allow (or "
                             f"negative); expected 0 <= margin < {MAX_MARGIN}")
        self.margin = as_float_array(margin)
        if teacher is None:
            teacher = jax.random.normal(jax.random.key(seed), (d,), jnp.result_type(float))
        teacher = as_float_array(teacher)
        if teacher.shape != (d,):
            raise ValueError(f"LinearTeacher: teacher has shape {teacher.shape}, expected ({d},)")
        self.teacher = teacher / jnp.linalg.norm(teacher)

    def sample(self, key: PRNGKeyArray, batch_size: int) -> Batch:
        """`batch_size` labelled points: `inputs [n, d]`, `targets [n]`."""
        check_int("batch_size", batch_size, owner="LinearTeacher.sample")
        k_z, k_s, k_y = jax.random.split(key, 3)
        dtype = self.teacher.dtype
        z = jax.random.normal(k_z, (batch_size, self.d), dtype)
        z = z - (z @ self.teacher)[:, None] * self.teacher
        s = jax.random.truncated_normal(k_s, self.margin, jnp.inf, (batch_size,), dtype)
        y = jnp.where(jax.random.bernoulli(k_y, 0.5, (batch_size,)), 1.0, -1.0).astype(dtype)
        return Batch(inputs=z + (y * s)[:, None] * self.teacher, targets=y)


class AbstractPatternDetection(eqx.Module):
    r"""Pattern detection: an input `x = (x_1, ..., x_d)` is a sequence of `d` patterns drawn
    from a finite set (rows of `patterns`); `y = +1` iff some `x_j` is a positive pattern (the
    first `n_positive` rows).

    Class-balanced sampling: even rows of a batch are positive, uniform over the inputs with at least
    one positive pattern (each position uniform over all patterns, conditioned on one being
    positive), odd rows negative, uniform over the inputs made of negative patterns only. Any prefix
    of even length is therefore balanced (training sets of several sizes share one draw).
    """

    patterns: eqx.AbstractVar[Float[Array, "count p"]]
    n_positive: eqx.AbstractVar[int]
    d: eqx.AbstractVar[int]

    @property
    def count(self) -> int:
        """Number of distinct patterns."""
        return self.patterns.shape[0]

    def sample(self, key: PRNGKeyArray, batch_size: int) -> Batch:
        """`inputs [n, d, p]`, `targets [n]` (class-balanced, see the class docstring)."""
        check_int("batch_size", batch_size, owner=type(self).__name__ + ".sample")
        k_pos, k_neg = jax.random.split(key)
        tries = 32  # rejection: all tries fail with probability (1 - P_pos)^(32 d) <= 2^-32
        cand = jax.random.randint(k_pos, (batch_size, tries, self.d), 0, self.count)
        ok = jnp.any(cand < self.n_positive, axis=-1)
        pos = cand[jnp.arange(batch_size), jnp.argmax(ok, axis=-1)]
        neg = jax.random.randint(k_neg, (batch_size, self.d), self.n_positive, self.count)
        even = (jnp.arange(batch_size) % 2 == 0)
        idx = jnp.where(even[:, None], pos, neg)
        y = jnp.where(even, 1.0, -1.0).astype(self.patterns.dtype)
        return Batch(inputs=self.patterns[idx], targets=y)

    def label(self, inputs: Float[ArrayLike, "n d p"]) -> Float[Array, " n"]:
        """`+1` where some position holds a positive pattern, else `-1`."""
        inputs = jnp.asarray(inputs)
        match = jnp.all(jnp.abs(inputs[:, :, None, :] - self.patterns[None, None, : self.n_positive]) < 1e-6, -1)
        return jnp.where(jnp.any(match, axis=(1, 2)), 1.0, -1.0).astype(self.patterns.dtype)

    def population(self) -> Batch:
        """All `count^d` inputs with their labels (for exact population errors)."""
        if self.count**self.d > MAX_POPULATION:
            raise ValueError(f"{type(self).__name__}: {self.count}^{self.d} inputs are too many to enumerate "
                             f"(at most {MAX_POPULATION})")
        idx = np.array(list(itertools.product(range(self.count), repeat=self.d)), dtype=np.int32)
        pos = np.any(idx < self.n_positive, axis=1)
        y = jnp.asarray(np.where(pos, 1.0, -1.0), self.patterns.dtype)
        return Batch(inputs=self.patterns[idx], targets=y)


class XORDetection(AbstractPatternDetection):
    r"""The XOR detection problem (Brutzkus & Globerson, ICML 2019): `d` patterns in `{-1, +1}^2`;
    positive patterns `(1, 1), (-1, -1)`, negative patterns `(1, -1), (-1, 1)`; an input is
    positive iff at least one positive pattern is present.

    **Arguments:**

    - `d`: number of patterns per input.
    """

    patterns: Float[Array, "4 2"]
    n_positive: int = eqx.field(static=True)
    d: int = eqx.field(static=True)

    def __init__(self, d: int = 4):
        self.d = check_int("d", d, owner="XORDetection")
        self.patterns = jnp.asarray([[1.0, 1.0], [-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0]], jnp.result_type(float))
        self.n_positive = 2


class PatternDetection(AbstractPatternDetection):
    r"""Detection of a set of patterns (Brutzkus & Globerson, arXiv 2002.09781): `d` patterns per
    input from `patterns` (rows; the first `n_positive` are positive).

    **Arguments:**

    - `patterns`: `[count, p]` patterns, e.g. `orthonormal` ones.
    - `n_positive`: how many leading rows are positive (`1 <= n_positive < count`).
    - `d`: number of patterns per input.
    """

    patterns: Float[Array, "count p"]
    n_positive: int = eqx.field(static=True)
    d: int = eqx.field(static=True)

    def __init__(self, patterns: Float[ArrayLike, "count p"], n_positive: int, d: int = 4):
        patterns = as_float_array(patterns)
        if patterns.ndim != 2:
            raise ValueError(f"PatternDetection: patterns have shape {patterns.shape}, expected [count, p]")
        self.n_positive = check_int("n_positive", n_positive, maximum=patterns.shape[0] - 1,
                                    what="leading rows that are positive patterns", owner="PatternDetection")
        self.d = check_int("d", d, owner="PatternDetection")
        self.patterns = patterns

    @classmethod
    def orthonormal(cls, p: int = 8, n_positive: int = 4, count: int | None = None, d: int = 4,
                    *, seed: int = 0) -> PatternDetection:
        """`count` (default `p`) orthonormal patterns in `R^p` (unit norm; QR of a Gaussian draw
        from `seed`), the first `n_positive` positive."""
        check_int("p", p, owner="PatternDetection.orthonormal")
        count = p if count is None else check_int("count", count, maximum=p, owner="PatternDetection.orthonormal")
        q, _ = jnp.linalg.qr(jax.random.normal(jax.random.key(seed), (p, p), jnp.result_type(float)))
        return cls(q.T[:count], n_positive, d)


class ReadOnceDNF(eqx.Module):
    r"""A read-once DNF on `{-1, +1}^D`: `f(x) = OR_j AND_{i in T_j} [x_i = +1]` with disjoint
    terms `T_j` (Bronstein, Brutzkus & Globerson, UAI 2022); `y = +1` where `f` is true.

    **Arguments:**

    - `dim`: the input dimension `D`.
    - `terms`: an int `T` (`T` consecutive terms of `D / T` variables each; `D` must be
      divisible by `T`) or a sequence of disjoint index sequences.

    `sample` draws distinct points (uniformly without replacement from the `2^D` inputs, so
    `batch_size <= 2^D`), `population` gives all of them.
    """

    term_matrix: Float[Array, "terms dim"]
    dim: int = eqx.field(static=True)
    terms: tuple[tuple[int, ...], ...] = eqx.field(static=True)

    def __init__(self, dim: int = 9, terms: int | Sequence[Sequence[int]] = 3):
        self.dim = check_int("dim", dim, maximum=20, what="2^dim inputs are enumerated", owner="ReadOnceDNF")
        if isinstance(terms, (int, np.integer)) and not isinstance(terms, bool):
            check_int("terms", terms, maximum=dim, owner="ReadOnceDNF")
            if dim % terms:
                raise ValueError(f"ReadOnceDNF: dim = {dim} is not divisible into terms = {terms} terms of equal "
                                 "size; expected dim % terms == 0 (or give the terms as index lists)")
            size = dim // terms
            terms = tuple(tuple(range(j * size, (j + 1) * size)) for j in range(terms))
        else:
            terms = tuple(tuple(int(i) for i in t) for t in terms)
            flat = [i for t in terms for i in t]
            if not terms or any(not t for t in terms) or len(set(flat)) != len(flat) or \
                    any(not 0 <= i < dim for i in flat):
                raise ValueError(f"ReadOnceDNF: terms = {terms!r} must be non-empty, disjoint index lists in "
                                 f"[0, {dim})")
        self.terms = terms
        m = np.zeros((len(terms), dim))
        for j, t in enumerate(terms):
            m[j, list(t)] = 1.0
        self.term_matrix = jnp.asarray(m, jnp.result_type(float))

    def label(self, inputs: Float[ArrayLike, "n dim"]) -> Float[Array, " n"]:
        """`+1` where some term has all its variables `+1`, else `-1`."""
        inputs = jnp.asarray(inputs)
        on = (inputs > 0).astype(self.term_matrix.dtype) @ self.term_matrix.T
        return jnp.where(jnp.any(on >= jnp.sum(self.term_matrix, axis=1), axis=1), 1.0, -1.0).astype(
            self.term_matrix.dtype)

    def _inputs(self, idx):
        bits = (idx[:, None] >> jnp.arange(self.dim)) & 1
        return (2.0 * bits - 1.0).astype(self.term_matrix.dtype)

    def sample(self, key: PRNGKeyArray, batch_size: int) -> Batch:
        """`batch_size` distinct inputs `[n, D]` with their labels."""
        check_int("batch_size", batch_size, maximum=2**self.dim, what="distinct inputs of {-1, +1}^dim",
                  owner="ReadOnceDNF.sample")
        idx = jax.random.choice(key, 2**self.dim, (batch_size,), replace=False)
        x = self._inputs(idx)
        return Batch(inputs=x, targets=self.label(x))

    def population(self) -> Batch:
        """All `2^D` inputs with their labels."""
        x = self._inputs(jnp.arange(2**self.dim))
        return Batch(inputs=x, targets=self.label(x))
