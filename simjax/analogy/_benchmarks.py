"""Synthetic analogy problems: part correspondence (visiPAM's "where is the knee of the tree?" in
symbols) and digit matrices (Raven-like 3 x 3 problems after Webb, Holyoak & Lu 2023)."""

from __future__ import annotations

import abc
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .._checks import as_float_array, check_choice, check_int, check_positive
from ._graph import Graph, from_positions


@eqx.filter_jit
def _sample(task, keys):
    """`task._one` over a batch of keys, compiled once per task configuration and batch size."""
    return jax.vmap(task._one)(keys)


class _AbstractProblemGenerator(eqx.Module):
    """Draws batches of independent mapping problems: `_one` makes one problem from a key."""

    @abc.abstractmethod
    def _one(self, key: PRNGKeyArray) -> Any:
        """One problem."""

    def sample(self, key: PRNGKeyArray, batch: int) -> Any:
        """`batch` independent problems, batched along a leading axis (one compiled `vmap`).

        **Arguments:**

        - `key`: a PRNG key.
        - `batch`: the number of problems.

        **Returns:**

        the generator's problems (`PartProblems` or `DigitProblems`).
        """
        batch = check_int("batch", batch, owner=f"{type(self).__name__}.sample")
        return _sample(self, jax.random.split(key, batch))


class PartProblems(eqx.Module):
    """A batch of part-correspondence problems.

    **Arguments:**

    - `source`, `target`: batched `Graph`s (`[batch, n, ...]`).
    - `answer`: `[batch, n]`, the target node that each source node corresponds to.
    """

    source: Graph
    target: Graph
    answer: Int[Array, "*batch n"]


class PartCorrespondence(_AbstractProblemGenerator):
    """Part correspondence: a source object of `n` parts with `dim`-D features and 2-D positions; the
    target is the same object with its parts shuffled, positions scaled by `U(scale_low, scale_high)`
    plus Gaussian noise (`position_noise`) and features plus Gaussian noise (`feature_noise`).
    Relations are displacements `pos_j - pos_i` (`from_positions`). With `cross=True` the features
    of two target parts are swapped (cross-mapping: surface similarity then points to the wrong
    part, the relational structure to the right one).

    **Arguments:**

    - `n`: parts per object (default 6).
    - `dim`: feature size (default 8).
    - `cross`: swap the features of two target parts.
    - `feature_noise`, `position_noise`: noise standard deviations (defaults 0.3, 0.1).
    - `scale_low`, `scale_high`: range of the target's position scale (defaults 0.5, 2).
    """

    n: int = eqx.field(static=True)
    dim: int = eqx.field(static=True)
    cross: bool = eqx.field(static=True)
    feature_noise: Float[Array, ""]
    position_noise: Float[Array, ""]
    scale_low: Float[Array, ""]
    scale_high: Float[Array, ""]

    def __init__(self, n: int = 6, dim: int = 8, *, cross: bool = False, feature_noise: float = 0.3,
                 position_noise: float = 0.1, scale_low: float = 0.5, scale_high: float = 2.0):
        self.n = check_int("n", n, minimum=2 if cross else 1, owner="PartCorrespondence")
        self.dim = check_int("dim", dim, owner="PartCorrespondence")
        self.cross = bool(cross)
        for name, value in (("feature_noise", feature_noise), ("position_noise", position_noise)):
            check_positive(name, value, allow_zero=True, owner="PartCorrespondence")
        check_positive("scale_low", scale_low, owner="PartCorrespondence")
        if not scale_high >= scale_low:
            raise ValueError(f"PartCorrespondence: scale_high={scale_high!r} must be >= scale_low={scale_low!r}")
        self.feature_noise, self.position_noise = as_float_array(feature_noise), as_float_array(position_noise)
        self.scale_low, self.scale_high = as_float_array(scale_low), as_float_array(scale_high)

    def _one(self, key):
        kf, kp, kperm, ks, knp, knf, kswap = jax.random.split(key, 7)
        feats = jax.random.normal(kf, (self.n, self.dim))
        pos = jax.random.normal(kp, (self.n, 2))
        perm = jax.random.permutation(kperm, self.n)
        inverse = jnp.argsort(perm)
        scale = jax.random.uniform(ks, (), minval=self.scale_low, maxval=self.scale_high)
        t_pos = (scale * pos + self.position_noise * jax.random.normal(knp, pos.shape))[inverse]
        t_feats = (feats + self.feature_noise * jax.random.normal(knf, feats.shape))[inverse]
        if self.cross:
            i, j = jax.random.choice(kswap, self.n, (2,), replace=False)
            a, b = perm[i], perm[j]
            t_feats = t_feats.at[a].set(t_feats[b]).at[b].set(t_feats[a])
        return PartProblems(from_positions(feats, pos), from_positions(t_feats, t_pos), perm.astype(jnp.int32))


RULES = ("row_constant", "column_constant", "distribution", "progression")


class DigitProblems(eqx.Module):
    """A batch of digit matrices.

    **Arguments:**

    - `grid`: `[batch, 3, 3]` digits; `grid[:, 2, 2]` is the answer (hidden from solvers).
    - `choices`: `[batch, k]` candidate digits for the missing cell.
    - `answer`: `[batch]`, the index of the correct candidate.
    """

    grid: Int[Array, "*batch 3 3"]
    choices: Int[Array, "*batch k"]
    answer: Int[Array, " *batch"]


class DigitMatrices(_AbstractProblemGenerator):
    """3 x 3 digit matrices (digits 0-9) governed by one rule, the bottom-right cell missing, with
    `choices` candidate answers (the correct one and distinct random distractors), after the digit
    matrices of Webb, Holyoak & Lu (2023, Nat. Hum. Behav. 7:1526):

    - `row_constant`: each row repeats one digit (three distinct digits);
    - `column_constant`: each column repeats one digit;
    - `distribution`: each row is a different cyclic arrangement of the same three digits
      (distribution-of-3);
    - `progression`: each row is `x, x + d, x + 2d` with `d` in `{-2, -1, 1, 2}` (one `d` per
      problem, its own `x` per row).

    **Arguments:**

    - `rule`: one of the four rule names.
    - `choices`: the number of answer candidates (default 8, at most 10).
    """

    rule: str = eqx.field(static=True)
    choices: int = eqx.field(static=True)

    def __init__(self, rule: str, choices: int = 8):
        check_choice("rule", rule, RULES, owner="DigitMatrices")
        self.rule = rule
        self.choices = check_int("choices", choices, minimum=2, maximum=10, owner="DigitMatrices")

    def _one(self, key):
        kd, korder, kstep, kstart, kchoice, kpos = jax.random.split(key, 6)
        digits = jax.random.choice(kd, 10, (3,), replace=False)
        if self.rule == "row_constant":
            grid = jnp.repeat(digits[:, None], 3, axis=1)
        elif self.rule == "column_constant":
            grid = jnp.repeat(digits[None, :], 3, axis=0)
        elif self.rule == "distribution":
            shifts = jax.random.permutation(korder, 3)
            grid = digits[(jnp.arange(3)[None, :] + shifts[:, None]) % 3]
        else:
            d = jnp.array([-2, -1, 1, 2])[jax.random.randint(kstep, (), 0, 4)]
            low = jnp.maximum(0, -2 * d)
            high = jnp.minimum(9, 9 - 2 * d)
            starts = jax.random.randint(kstart, (3,), low, high + 1)
            grid = starts[:, None] + d * jnp.arange(3)[None, :]
        answer_digit = grid[2, 2]
        others = jnp.where(jnp.arange(10) == answer_digit, -1.0, jax.random.uniform(kchoice, (10,)))
        distractors = jnp.argsort(-others)[: self.choices - 1]
        slot = jax.random.randint(kpos, (), 0, self.choices)
        choices = jnp.insert(distractors, 0, answer_digit)  # answer first, then rotate it to `slot`
        choices = jnp.roll(choices, slot)
        return DigitProblems(grid.astype(jnp.int32), choices.astype(jnp.int32), slot.astype(jnp.int32))


def digit_graph(values: Float[Array, " k"], mask: Float[Array, " k"] | None = None) -> Graph:
    """A row or column of digits as a graph: node feature `v / 9`, relation `r_ij = [(v_j - v_i) / 9,
    0.5 [v_i = v_j]]` (signed difference and equality).

    **Arguments:**

    - `values`: `[k]` digits (floats allowed, for generated answers).
    - `mask`: optional `[k]` node mask.

    **Returns:**

    A `Graph` with 1-D node features and 2-D relations.
    """
    v = as_float_array(values) / 9.0
    diff = v[None, :] - v[:, None]
    equal = 0.5 * jnp.exp(-(diff * 9.0) ** 2 / 0.02)  # 0.5 at equality, ~0 one digit apart (smooth)
    return Graph(v[:, None], jnp.stack([diff, equal], axis=-1), None if mask is None else mask > 0)
