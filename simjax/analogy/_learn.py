"""Learning the similarity through the mapping: the node weight `alpha` and a linear map of the node
features fitted by gradient descent on problems with known correspondences."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, ArrayLike, Float

from .._checks import as_float_array, check_int, check_positive
from ._benchmarks import PartProblems
from ._graph import Graph
from ._mapping import Annealing, graduated_assignment, hard_assignment
from ._similarity import AbstractSimilarity, Cosine


class LearnedSimilarity(eqx.Module):
    """The trainable part of the mapping: `alpha = softplus(raw_alpha)` and a linear map `W` applied to
    every node feature (`o -> W o`) before the node similarity.

    **Arguments:**

    - `alpha`: initial node weight (> 0).
    - `dim`: node feature size (`W` starts as the identity).
    """

    raw_alpha: Float[Array, ""]
    projection: Float[Array, "d d"]

    def __init__(self, alpha: Float[ArrayLike, ""] = 1.0, dim: int = 8):
        check_positive("alpha", alpha, owner="LearnedSimilarity")
        dim = check_int("dim", dim, owner="LearnedSimilarity")
        alpha = as_float_array(alpha)
        self.raw_alpha = alpha + jnp.log(-jnp.expm1(-alpha))  # inverse softplus
        self.projection = jnp.eye(dim, dtype=alpha.dtype)

    @property
    def alpha(self) -> Float[Array, ""]:
        """The node weight, `softplus(raw_alpha)`."""
        return jax.nn.softplus(self.raw_alpha)

    def project(self, graph: Graph) -> Graph:
        """`graph` with node features `W o`.

        **Arguments:**

        - `graph`: a single graph.

        **Returns:**

        The projected `Graph`.
        """
        return Graph(graph.nodes @ self.projection.T, graph.edges, graph.mask)

    def map(self, source: Graph, target: Graph, *, schedule: Annealing = Annealing(),
            edge_similarity: AbstractSimilarity = Cosine()) -> Float[Array, "n m"]:
        """The soft mapping of `source` onto `target` with the learned `alpha` and `W` (cosine node
        similarity).

        **Arguments:**

        - `source`, `target`: single graphs.
        - `schedule`, `edge_similarity`: as in `graduated_assignment`.

        **Returns:**

        `[n, m]` soft mapping.
        """
        return graduated_assignment(self.project(source), self.project(target), alpha=self.alpha,
                                    edge_similarity=edge_similarity, schedule=schedule).matrix


def mapping_loss(model: LearnedSimilarity, problems: PartProblems, *, schedule: Annealing = Annealing()
                 ) -> Float[Array, ""]:
    """Mean over problems and source nodes of `-log M_{i, answer_i}`: the cross-entropy of the soft
    mapping against the true correspondences (differentiable through graduated assignment).

    **Arguments:**

    - `model`: a `LearnedSimilarity`.
    - `problems`: `PartProblems` with known answers.
    - `schedule`: the annealing schedule.

    **Returns:**

    The scalar loss.
    """
    def one(s, t, answer):
        m = model.map(s, t, schedule=schedule)
        return -jnp.mean(jnp.log(m[jnp.arange(answer.shape[0]), answer] + 1e-12))

    return jnp.mean(jax.vmap(one)(problems.source, problems.target, problems.answer))


def mapping_accuracy(model: LearnedSimilarity, problems: PartProblems, *, schedule: Annealing = Annealing()
                     ) -> Float[Array, ""]:
    """The fraction of source nodes mapped to their true counterpart after the best-permutation
    read-out.

    **Arguments:**

    - `model`, `problems`, `schedule`: as in `mapping_loss`.

    **Returns:**

    The accuracy in `[0, 1]`.
    """
    def one(s, t, answer):
        return jnp.mean(hard_assignment(model.map(s, t, schedule=schedule)) == answer)

    return jnp.mean(jax.vmap(one)(problems.source, problems.target, problems.answer))


def fit_similarity(model: LearnedSimilarity, problems: PartProblems, *, steps: int = 50,
                   learning_rate: float = 0.05, schedule: Annealing = Annealing()
                   ) -> tuple[LearnedSimilarity, Float[Array, " steps"]]:
    """Fits `alpha` and `W` by Adam on `mapping_loss` over `problems` (full batch, `lax.scan` over
    steps), the gradient taken through every step of graduated assignment.

    **Arguments:**

    - `model`: the initial `LearnedSimilarity`.
    - `problems`: training `PartProblems`.
    - `steps`: optimiser steps.
    - `learning_rate`: Adam's learning rate.
    - `schedule`: the annealing schedule used in training.

    **Returns:**

    `(trained model, loss before each step)`.
    """
    steps = check_int("steps", steps, owner="fit_similarity")
    check_positive("learning_rate", learning_rate, owner="fit_similarity")
    optimizer = optax.adam(learning_rate)

    def step(carry, _):
        model, state = carry
        loss, grads = jax.value_and_grad(mapping_loss)(model, problems, schedule=schedule)
        updates, state = optimizer.update(grads, state, model)
        return (optax.apply_updates(model, updates), state), loss

    (model, _), losses = jax.lax.scan(step, (model, optimizer.init(model)), None, length=steps)
    return model, losses
