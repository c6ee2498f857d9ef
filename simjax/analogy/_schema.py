"""Schemas (the common structure of two mapped analogs) and solvers for the digit matrices: choice
among candidates by mapping score, and direct generation of the missing cell from the schemas."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Int

from .._checks import as_float_array
from ._benchmarks import DigitProblems, digit_graph
from ._graph import Graph
from ._mapping import (
    Annealing,
    _permutations,
    assignment_matrix,
    compatibility,
    graduated_assignment,
    hard_assignment,
    objective,
)
from ._similarity import Gaussian


def schema(source: Graph, target: Graph, matrix: Float[ArrayLike, "n m"]) -> Graph:
    """The schema of two mapped analogs (Holyoak's schema induction, as an extension of PAM):
    in the target's node slots, the average of each target node and the source
    nodes mapped onto it, `o*_a = (sum_i M_ia o_i + o'_a) / 2`, and likewise for relations,
    `r*_ab = (sum_ij M_ia M_jb r_ij + r'_ab) / 2`. With a hard (0/1) mapping this is the mean of the
    two aligned graphs. Differentiable in all arguments.

    **Arguments:**

    - `source`, `target`: single graphs.
    - `matrix`: `[n, m]` mapping of `source` onto `target` (soft or hard).

    **Returns:**

    The schema `Graph`, `m` slots, the target's mask.
    """
    matrix = as_float_array(matrix)
    if matrix.shape != (source.size, target.size):
        raise ValueError(f"schema: matrix has shape {matrix.shape}, expected {(source.size, target.size)}")
    nodes = (matrix.T @ source.nodes + target.nodes) / 2
    edges = (jnp.einsum("ia,jb,ije->abe", matrix, matrix, source.edges) + target.edges) / 2
    return Graph(nodes, edges, target.mask)


def _hard_score(source, target, alpha, node_similarity, edge_similarity, schedule):
    mapping = graduated_assignment(source, target, alpha=alpha, node_similarity=node_similarity,
                                   edge_similarity=edge_similarity, schedule=schedule)
    hard = assignment_matrix(hard_assignment(mapping.matrix, source.mask, target.mask), target.size)
    comp = compatibility(source, target, node_similarity=node_similarity, edge_similarity=edge_similarity)
    return objective(hard, comp, alpha)


def digit_choice_scores(problems: DigitProblems, *, alpha: Float[ArrayLike, ""] = 0.0,
                        sigma: Float[ArrayLike, ""] = 0.15, schedule: Annealing = Annealing(0.5, 1.2, 100.0)
                        ) -> Float[Array, "batch k"]:
    """For each candidate, the summed PAM score (under the best permutation read out from
    graduated assignment) of mapping rows 1 and 2 onto the completed row 3 and columns 1 and 2 onto
    the completed column 3; Gaussian-kernel similarities of width `sigma` on nodes and relations
    (`digit_graph`).

    **Arguments:**

    - `problems`: `DigitProblems`.
    - `alpha`: the node weight.
    - `sigma`: the Gaussian kernel width (on digit / 9).
    - `schedule`: the annealing schedule.

    **Returns:**

    `[batch, k]` scores; the solver's answer is their argmax.
    """
    sim = Gaussian(sigma)
    alpha = as_float_array(alpha)

    def one(grid, candidate):
        grid = grid.at[2, 2].set(candidate).astype(jnp.result_type(float))
        # rows 0, 1 -> row 2 and columns 0, 1 -> column 2, as one batch of four mappings
        sources = jnp.stack([grid[0], grid[1], grid[:, 0], grid[:, 1]])
        targets = jnp.stack([grid[2], grid[2], grid[:, 2], grid[:, 2]])
        score = lambda a, b: _hard_score(digit_graph(a), digit_graph(b), alpha, sim, sim, schedule)  # noqa: E731
        return jnp.sum(jax.vmap(score)(sources, targets))

    return jax.vmap(jax.vmap(one, in_axes=(None, 0)))(problems.grid, problems.choices)


def solve_digit_matrices(problems: DigitProblems, *, alpha: Float[ArrayLike, ""] = 0.0,
                         sigma: Float[ArrayLike, ""] = 0.15, schedule: Annealing = Annealing(0.5, 1.2, 100.0)
                         ) -> Int[Array, " batch"]:
    """The index of the best-scoring candidate (`digit_choice_scores`) of each problem.

    **Arguments:**

    - `problems`, `alpha`, `sigma`, `schedule`: as in `digit_choice_scores`.

    **Returns:**

    `[batch]` chosen candidate indices (compare with `problems.answer`).
    """
    return jnp.argmax(digit_choice_scores(problems, alpha=alpha, sigma=sigma, schedule=schedule), axis=1)


def _best_permutation_score(source, target, alpha, sim):
    comp = compatibility(source, target, node_similarity=sim, edge_similarity=sim)
    perms = jnp.asarray(_permutations(source.size))
    eye = jnp.eye(target.size, dtype=comp.node.dtype)
    return jnp.max(jax.vmap(lambda p: objective(eye[p], comp, alpha))(perms))


def generate_digits(problems: DigitProblems, *, alpha: Float[ArrayLike, ""] = 0.0,
                    sigma: Float[ArrayLike, ""] = 0.15, schedule: Annealing = Annealing(0.5, 1.2, 100.0),
                    resolution: int = 181) -> Float[Array, " batch"]:
    """Generates the missing cell without looking at the candidates: rows 1 and 2 are mapped onto
    each other (graduated assignment, best-permutation read-out) and averaged into a row schema
    (`schema`), columns 1 and 2 likewise into a column schema; the generated value `v` maximises
    the fit of the completed row 3 to the row schema plus that of column 3 to the column schema
    (PAM score under the best permutation), searched over `resolution` values in `[0, 9]`.

    **Arguments:**

    - `problems`: `DigitProblems` (`grid[:, 2, 2]` is not read).
    - `alpha`, `sigma`, `schedule`: as in `digit_choice_scores`.
    - `resolution`: number of candidate values in `[0, 9]` (default 181, steps of 0.05).

    **Returns:**

    `[batch]` generated values (round them to compare with the rule's digit).
    """
    sim = Gaussian(sigma)
    alpha = as_float_array(alpha)
    values = jnp.linspace(0.0, 9.0, resolution)

    def line_schema(a, b):
        source, target = digit_graph(a), digit_graph(b)
        mapping = graduated_assignment(source, target, alpha=alpha, node_similarity=sim, edge_similarity=sim,
                                       schedule=schedule)
        return schema(source, target, assignment_matrix(hard_assignment(mapping.matrix), 3))

    def one(grid):
        grid = grid.astype(jnp.result_type(float))
        # the row schema (rows 0, 1) and the column schema (columns 0, 1), as one batch of two
        schemas = jax.vmap(line_schema)(jnp.stack([grid[0], grid[:, 0]]), jnp.stack([grid[1], grid[:, 1]]))
        thirds = jnp.stack([grid[2], grid[:, 2]])

        def fit(v):
            completed = thirds.at[:, 2].set(v)
            scores = jax.vmap(lambda line, sch: _best_permutation_score(digit_graph(line), sch, alpha, sim))(
                completed, schemas)
            return jnp.sum(scores)

        return values[jnp.argmax(jax.vmap(fit)(values))]

    return jax.vmap(one)(problems.grid)
