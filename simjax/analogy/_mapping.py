r"""Probabilistic analogical mapping: the PAM objective, log-domain Sinkhorn with slack, graduated
assignment, and hard read-out.

The mapping matrix `M` (`M_ia` = probability that source node `i` maps to target node `a`) maximises
(Lu, Ichien & Holyoak 2022, Psychol. Rev. 129:1078; Webb et al. 2023, Nat. Commun. 14:5144)

$$L(M) = \sum_{i \ne j} \sum_{a \ne b} M_{ia} M_{jb}\, s_E(r_{ij}, r'_{ab})
        + \alpha \sum_{i,a} M_{ia}\, s_N(o_i, o'_a)$$

under the soft one-to-one constraint (rows and columns sum to at most one; a slack row and column take
the rest). It is optimised by graduated assignment (Gold & Rangarajan 1996, IEEE TPAMI 18:377):
`Q = dL/dM`, `M <- Sinkhorn(exp(beta Q))` repeated, with `beta` raised geometrically.
"""

from __future__ import annotations

import itertools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize
from jaxtyping import Array, ArrayLike, Bool, Float, Int

from .._checks import as_float_array, check_int, check_positive, is_concrete
from ._graph import Graph
from ._similarity import AbstractSimilarity, Cosine

_NEG = -1e9  # log-weight of a forbidden entry (finite, so that gradients stay finite)
_UNROLL = 64  # matrix-vector products over at most this many terms are unrolled (see `_matvec`)


def _potentials(logits, f, g, tau, iterations):
    """Sinkhorn in the log domain on dual potentials: `M_ia = exp(logits_ia + f_i + g_a)`; with slack
    (`tau` not `None`) node `i` maps to nothing with weight `exp(tau + f_i)` and target `a` is left
    unmapped with weight `exp(tau + g_a)`, and each real row and column, its slack entry included,
    is normalised (the slack row and column themselves are free, Gold & Rangarajan 1996). Ends with
    the columns. Potentials can be warm-started."""
    def lse(x, axis):
        if tau is None:
            return jax.nn.logsumexp(x, axis=axis)
        return jnp.logaddexp(jax.nn.logsumexp(x, axis=axis), tau)

    def body(_, fg):
        f, g = fg
        f = -lse(logits + g[None, :], 1)
        g = -lse(logits + f[:, None], 0)
        return f, g

    return jax.lax.fori_loop(0, iterations, body, (f, g))


def _matvec(matrix, vector):
    """`matrix @ vector` as a sum of scaled columns: elementwise operations only, which XLA fuses
    into one loop (a reduction or a batched dot of these small sizes costs far more per call on a
    CPU than its arithmetic)."""
    total = matrix[:, 0] * vector[0]
    for k in range(1, vector.shape[0]):
        total = total + matrix[:, k] * vector[k]
    return total


def _scaled_potentials(logits, f, g, tau, iterations):
    """The same iterates as `_potentials` (slack required), computed by stabilised scaling
    (Schmitzer 2019, SIAM J. Sci. Comput. 41:A1443): one log-domain row-and-column pass absorbs the
    new logits into `f, g`, so that the kernel `K_ia = exp(logits_ia + f_i + g_a)` and the slack
    weights `exp(tau + f_i)`, `exp(tau + g_a)` lie in `[0, 1]`; the remaining iterations rescale it,
    `u_i = 1 / (sum_a K_ia v_a + exp(tau + f_i))`, `v_a = 1 / (sum_i K_ia u_i + exp(tau + g_a))`,
    with no exponential or logarithm, and end with `f + log u`, `g + log v`. In exact arithmetic
    `f_i + log u_i` is the log-domain potential after the same number of iterations."""
    if iterations == 0:
        return f, g
    f, g = _potentials(logits, f, g, tau, 1)
    kernel = jnp.exp(logits + f[:, None] + g[None, :])
    row_slack, col_slack = jnp.exp(tau + f), jnp.exp(tau + g)

    def body(_, uv):
        u, v = uv
        u = 1.0 / (_matvec(kernel, v) + row_slack)
        v = 1.0 / (_matvec(jnp.swapaxes(kernel, 0, 1), u) + col_slack)
        return u, v

    ones = jnp.ones_like(f), jnp.ones_like(g)
    u, v = jax.lax.fori_loop(0, iterations - 1, body, ones)
    return f + jnp.log(u), g + jnp.log(v)


def _assemble(logits, f, g, tau):
    real = jnp.exp(logits + f[:, None] + g[None, :])
    if tau is None:
        return real
    top = jnp.concatenate([real, jnp.exp(tau + f)[:, None]], axis=1)
    bottom = jnp.concatenate([jnp.exp(tau + g), jnp.zeros((1, *g.shape[1:]), real.dtype)])
    return jnp.concatenate([top, bottom[None, :]], axis=0)


def sinkhorn(logits: Float[ArrayLike, "n m"], *, iterations: int = 30, slack: bool = False,
             slack_logit: Float[ArrayLike, ""] = 0.0, row_mask: Bool[ArrayLike, " n"] | None = None,
             col_mask: Bool[ArrayLike, " m"] | None = None) -> Float[Array, "_ _"]:
    """Sinkhorn normalisation in the log domain (Sinkhorn 1964): alternately rescales the rows and
    the columns of `exp(logits)`, ending with the columns.

    Without slack `logits` must be square and the result is doubly stochastic (rows and columns sum
    to one, exactly for the columns, to the convergence of the iteration for the rows). With slack
    a slack column and a slack row (logit `slack_logit`) are appended and the result is
    `[n + 1, m + 1]`: each real row, its slack entry included, sums to one, each real column
    likewise; the slack row and column themselves are not normalised (Gold & Rangarajan 1996), and
    the slack-slack entry is unused (zero). Masked-out rows (columns) put all their mass on the
    slack column (row).

    **Arguments:**

    - `logits`: `[n, m]` log-weights (e.g. `beta Q`).
    - `iterations`: row-and-column rescalings.
    - `slack`: append the slack row and column.
    - `slack_logit`: the log-weight of mapping a node to nothing.
    - `row_mask`, `col_mask`: which rows and columns are real nodes (slack only).

    **Returns:**

    The normalised matrix, `[n, m]` or `[n + 1, m + 1]` with slack.
    """
    logits = as_float_array(logits)
    iterations = check_int("iterations", iterations, minimum=0, owner="sinkhorn")
    if logits.ndim != 2:
        raise ValueError(f"sinkhorn: logits has shape {logits.shape}, expected (n, m)")
    n, m = logits.shape
    if not slack:
        if n != m:
            raise ValueError(f"sinkhorn: without slack logits must be square, got shape {logits.shape}")
        if row_mask is not None or col_mask is not None:
            raise ValueError("sinkhorn: row_mask/col_mask need slack=True (masked nodes map to the slack)")
        f, g = _potentials(logits, jnp.zeros(n, logits.dtype), jnp.zeros(m, logits.dtype), None, iterations)
        return _assemble(logits, f, g, None)
    row_mask = jnp.ones(n, bool) if row_mask is None else jnp.asarray(row_mask, bool)
    col_mask = jnp.ones(m, bool) if col_mask is None else jnp.asarray(col_mask, bool)
    if row_mask.shape != (n,) or col_mask.shape != (m,):
        raise ValueError(f"sinkhorn: row_mask/col_mask have shapes {row_mask.shape}/{col_mask.shape}, expected "
                         f"({n},)/({m},)")
    logits = jnp.where(row_mask[:, None] & col_mask[None, :], logits, _NEG)
    tau = as_float_array(slack_logit).astype(logits.dtype)
    f, g = _potentials(logits, jnp.zeros(n, logits.dtype), jnp.zeros(m, logits.dtype), tau, iterations)
    return _assemble(logits, f, g, tau)


class Compatibility(eqx.Module):
    """The similarities the PAM objective is built from, for one source/target pair.

    **Arguments:**

    - `node`: `s_N(o_i, o'_a)`, `[n, m]`, zero where either node is masked out.
    - `edge`: `s_E(r_ij, r'_ab)`, `[n, n, m, m]`, zero on self-edges (`i = j` or `a = b`) and masked nodes.
    """

    node: Float[Array, "n m"]
    edge: Float[Array, "n n m m"]


def compatibility(source: Graph, target: Graph, *, node_similarity: AbstractSimilarity = Cosine(),
                  edge_similarity: AbstractSimilarity = Cosine()) -> Compatibility:
    """Node and relation similarities of every pair of source and target nodes (and node pairs).
    The relation term costs `O(n^2 m^2)` memory and time.

    **Arguments:**

    - `source`, `target`: single graphs (no batch axes; `jax.vmap` for batches).
    - `node_similarity`, `edge_similarity`: `AbstractSimilarity`s (default `Cosine()` both).

    **Returns:**

    A `Compatibility`.
    """
    _check_pair(source, target, "compatibility")
    n, m = source.size, target.size
    valid_n = source.mask[:, None] & target.mask[None, :]
    node = jnp.where(valid_n, node_similarity.matrix(source.nodes, target.nodes), 0.0)
    es, et = source.edges.reshape(n * n, -1), target.edges.reshape(m * m, -1)
    pair_s = source.mask[:, None] & source.mask[None, :] & ~jnp.eye(n, dtype=bool)
    pair_t = target.mask[:, None] & target.mask[None, :] & ~jnp.eye(m, dtype=bool)
    edge = edge_similarity.matrix(es, et).reshape(n, n, m, m)
    edge = jnp.where(pair_s[:, :, None, None] & pair_t[None, None, :, :], edge, 0.0)
    return Compatibility(node, edge)


def _check_pair(source, target, owner):
    if source.nodes.ndim != 2 or target.nodes.ndim != 2:
        raise ValueError(f"{owner}: expects single graphs (nodes [n, d]); got node shapes {source.nodes.shape} and "
                         f"{target.nodes.shape} (use jax.vmap for batches)")
    if source.nodes.shape[1] != target.nodes.shape[1] or source.edges.shape[2] != target.edges.shape[2]:
        raise ValueError(f"{owner}: source and target features differ in size: nodes {source.nodes.shape[1]} vs "
                         f"{target.nodes.shape[1]}, relations {source.edges.shape[2]} vs {target.edges.shape[2]}")


def objective(matrix: Float[ArrayLike, "n m"], comp: Compatibility, alpha: Float[ArrayLike, ""] = 1.0,
              edge_weight: Float[ArrayLike, ""] = 1.0) -> Float[Array, ""]:
    """The PAM objective `L(M) = w sum_{i!=j, a!=b} M_ia M_jb s_E(r_ij, r'_ab) + alpha sum M_ia s_N(o_i, o'_a)`
    (`w = edge_weight`, 1 in PAM; 0 gives the node-only ablation).

    **Arguments:**

    - `matrix`: the mapping `M`, `[n, m]` (soft or a permutation matrix).
    - `comp`: the `Compatibility` of the two graphs.
    - `alpha`: the weight of node similarity against relation similarity.
    - `edge_weight`: the weight `w` of the relation term.

    **Returns:**

    `L(M)`, a scalar.
    """
    matrix = as_float_array(matrix)
    edge = jnp.einsum("ia,jb,ijab->", matrix, matrix, comp.edge)
    return as_float_array(edge_weight) * edge + as_float_array(alpha) * jnp.sum(matrix * comp.node)


def _edge_operator(comp):
    """`W[(i, a), (j, b)] = s_E(r_ij, r'_ab) + s_E(r_ji, r'_ba)`, so that
    `dL/dM = w (W vec M) + alpha s_N` (one matrix-vector product per update)."""
    n, m = comp.node.shape
    sym = comp.edge + jnp.transpose(comp.edge, (1, 0, 3, 2))
    return jnp.transpose(sym, (0, 2, 1, 3)).reshape(n * m, n * m)


def mapping_score(matrix: Float[ArrayLike, "n m"], source: Graph, target: Graph, *,
                  alpha: Float[ArrayLike, ""] = 1.0, edge_weight: Float[ArrayLike, ""] = 1.0,
                  node_similarity: AbstractSimilarity = Cosine(),
                  edge_similarity: AbstractSimilarity = Cosine()) -> Float[Array, ""]:
    """`objective(matrix, compatibility(source, target, ...), alpha)`: the PAM score of a mapping,
    differentiable in the mapping, the graphs' features, `alpha` and the similarities' parameters.

    **Arguments:**

    - `matrix`: `[n, m]` mapping.
    - `source`, `target`: single graphs.
    - `alpha`, `edge_weight`, `node_similarity`, `edge_similarity`: as in `graduated_assignment`.

    **Returns:**

    The scalar score.
    """
    comp = compatibility(source, target, node_similarity=node_similarity, edge_similarity=edge_similarity)
    return objective(matrix, comp, alpha, edge_weight)


class Annealing(eqx.Module):
    """The graduated-assignment schedule: `beta` starts at `beta0` and is multiplied by `rate` after
    each outer step while it is below `final` (`steps` outer steps); at each `beta`, `inner`
    updates `M <- Sinkhorn(exp(beta Q(M)))` with `sinkhorn` normalisation iterations each.
    `beta0` and `rate` are arrays (a batch of schedules with the same `steps` vmaps); the counts
    are static. Defaults are Gold & Rangarajan's (1996).

    **Arguments:**

    - `beta0`: initial inverse temperature (default `0.5`).
    - `rate`: its growth factor per outer step (default `1.075`).
    - `final`: the `beta` at which annealing stops (default `10`); gives `steps`.
    - `inner`: updates per `beta` (default `4`).
    - `sinkhorn`: Sinkhorn iterations per update (default `30`).
    - `steps`: the number of outer steps, overriding `final` (needed when `beta0`/`rate` are traced).
    """

    beta0: Float[Array, ""]
    rate: Float[Array, ""]
    steps: int = eqx.field(static=True)
    inner: int = eqx.field(static=True)
    sinkhorn: int = eqx.field(static=True)

    def __init__(self, beta0: Float[ArrayLike, ""] = 0.5, rate: Float[ArrayLike, ""] = 1.075,
                 final: float = 10.0, *, inner: int = 4, sinkhorn: int = 30, steps: int | None = None):
        check_positive("beta0", beta0, owner="Annealing")
        check_positive("rate", rate, owner="Annealing")
        check_positive("final", final, owner="Annealing")
        if steps is None:
            if not (is_concrete(beta0) and is_concrete(rate)):
                raise ValueError("Annealing: pass steps= when beta0 or rate are traced")
            if float(rate) <= 1.0:
                raise ValueError(f"Annealing: rate must be > 1 to reach final, got {float(rate)!r}")
            steps = max(1, math.ceil(math.log(float(final) / float(beta0)) / math.log(float(rate)) - 1e-9))
        self.steps = check_int("steps", steps, owner="Annealing")
        self.inner = check_int("inner", inner, owner="Annealing")
        self.sinkhorn = check_int("sinkhorn", sinkhorn, owner="Annealing")
        self.beta0, self.rate = as_float_array(beta0), as_float_array(rate)

    def betas(self) -> Float[Array, " steps"]:
        """The inverse temperatures of the outer steps, `beta0 rate^k`."""
        return self.beta0 * self.rate ** jnp.arange(self.steps, dtype=self.beta0.dtype)


class Mapping(eqx.Module):
    """The result of `graduated_assignment` (leading batch axes from `graduated_assignment_batch`).

    **Arguments:**

    - `matrix`: the soft mapping `M`, `[n, m]` (real nodes only).
    - `slack`: `M` with its slack row and column, `[n + 1, m + 1]`.
    - `score`: the PAM objective `L(M)` of `matrix`.
    - `history`: `M` after each outer step, `[steps, n, m]`, or `None`.
    """

    matrix: Float[Array, "*batch n m"]
    slack: Float[Array, "*batch n1 m1"]
    score: Float[Array, "*batch"]
    history: Float[Array, "*batch steps n m"] | None


def graduated_assignment(source: Graph, target: Graph, *, alpha: Float[ArrayLike, ""] = 1.0,
                         edge_weight: Float[ArrayLike, ""] = 1.0, node_similarity: AbstractSimilarity = Cosine(),
                         edge_similarity: AbstractSimilarity = Cosine(), schedule: Annealing = Annealing(),
                         slack_score: Float[ArrayLike, ""] = 0.0, history: bool = False) -> Mapping:
    """Maps `source` onto `target` by graduated assignment on the PAM objective (see the module
    docstring): `M` starts uniform (Sinkhorn of zero logits, slack included); at each `beta` of the
    schedule, `inner` times, `Q = dL/dM` and `M <- Sinkhorn(beta Q)` with a slack row and column
    of log-weight `beta slack_score` (so nodes may stay unmapped, and graphs may differ in size).
    The Sinkhorn potentials are carried from one update to the next (warm start), so that the
    normalisation keeps converging as `beta` grows. Each normalisation is one log-domain
    row-and-column pass followed by stabilised scaling iterations (Schmitzer 2019, SIAM J. Sci.
    Comput. 41:A1443): the same iterates as the log-domain Sinkhorn of `sinkhorn`, with no
    exponential in the inner loop. For many problems at once `graduated_assignment_batch` is the
    faster program on a CPU.

    Pure and differentiable (gradients flow through every Sinkhorn iteration to the features,
    `alpha`, the similarities' parameters and the schedule); `jax.vmap` it over problems, `alpha`s
    or schedules.

    **Arguments:**

    - `source`, `target`: single graphs with the same feature sizes (node counts may differ).
    - `alpha`: weight of node similarity against relation similarity.
    - `edge_weight`: weight of the relation term (1; 0 gives the node-only ablation).
    - `node_similarity`, `edge_similarity`: `AbstractSimilarity`s (default `Cosine()`).
    - `schedule`: an `Annealing`.
    - `slack_score`: the `Q` of leaving a node unmapped (default 0: a node maps only where its
      `Q` is positive, once `beta` is large).
    - `history`: also return `M` after each outer step.

    **Returns:**

    A `Mapping`.
    """
    comp = compatibility(source, target, node_similarity=node_similarity, edge_similarity=edge_similarity)
    alpha, edge_weight = as_float_array(alpha), as_float_array(edge_weight)
    valid = source.mask[:, None] & target.mask[None, :]
    full, trace = _anneal(alpha * comp.node, _relation_product(_edge_operator(comp), False), valid, edge_weight,
                          as_float_array(slack_score), schedule, history)
    matrix = full[:source.size, :target.size]
    return Mapping(matrix, full, objective(matrix, comp, alpha, edge_weight), trace)


def graduated_assignment_batch(sources: Graph, targets: Graph, *, alpha: Float[ArrayLike, ""] = 1.0,
                               edge_weight: Float[ArrayLike, ""] = 1.0,
                               node_similarity: AbstractSimilarity = Cosine(),
                               edge_similarity: AbstractSimilarity = Cosine(), schedule: Annealing = Annealing(),
                               slack_score: Float[ArrayLike, ""] = 0.0, history: bool = False) -> Mapping:
    """`jax.vmap(graduated_assignment)` over a batch of problems, computed with the problem index
    as the fastest-varying axis of every array, so that each elementwise step of the annealing
    runs across problems in vector lanes (several times faster than `jax.vmap` on a CPU, where
    the small per-problem axes would be the vectorised ones). Same arithmetic as
    `graduated_assignment`, problem by problem, except that with `Cosine` relation similarity
    and more than 64 node pairs the relation term `W vec(M)` is contracted from the unit relation
    vectors without forming the `[n m, n m]` operator (`O(n m (n + m) e)` per update instead of
    `O(n^2 m^2)`); differentiable likewise.

    **Arguments:**

    - `sources`, `targets`: batches of graphs with one leading axis (`nodes: [B, n, d]`), the same
      `B` for both.
    - `alpha`, `edge_weight`, `node_similarity`, `edge_similarity`, `schedule`, `slack_score`,
      `history`: as in `graduated_assignment`, shared by all problems.

    **Returns:**

    A `Mapping` whose fields have a leading batch axis.
    """
    if sources.nodes.ndim != 3 or targets.nodes.ndim != 3 or sources.nodes.shape[0] != targets.nodes.shape[0]:
        raise ValueError(f"graduated_assignment_batch: expects two batches of graphs with one leading axis of the "
                         f"same length (nodes [B, n, d]); got node shapes {sources.nodes.shape} and "
                         f"{targets.nodes.shape}")
    _check_pair(jax.tree.map(lambda x: x[0], sources), jax.tree.map(lambda x: x[0], targets),
                "graduated_assignment_batch")
    alpha, edge_weight = as_float_array(alpha), as_float_array(edge_weight)
    comp = jax.vmap(lambda s, t: compatibility(s, t, node_similarity=node_similarity,
                                               edge_similarity=edge_similarity))(sources, targets)
    valid = sources.mask[:, :, None] & targets.mask[:, None, :]

    def last(x):
        return jnp.moveaxis(x, 0, -1)

    n, m = sources.size, targets.size
    if isinstance(edge_similarity, Cosine) and n * m > _UNROLL:
        relation = _factored_relation_product(jax.vmap(_unit_relations, (0, None))(sources, edge_similarity),
                                              jax.vmap(_unit_relations, (0, None))(targets, edge_similarity))
    else:
        relation = _relation_product(jax.vmap(_edge_operator)(comp), True)
    full, trace = _anneal(last(alpha * comp.node), relation, last(valid), edge_weight, as_float_array(slack_score),
                          schedule, history)
    full = jnp.moveaxis(full, -1, 0)
    trace = None if trace is None else jnp.moveaxis(trace, -1, 0)
    matrix = full[:, :sources.size, :targets.size]
    score = jax.vmap(objective, in_axes=(0, 0, None, None))(matrix, comp, alpha, edge_weight)
    return Mapping(matrix, full, score, trace)


def _relation_product(operator, batched):
    """`vec(M) -> W vec(M)` for `_edge_operator`'s `W` (`[n m, n m]`, or `[B, n m, n m]` when
    `batched`, applied to `[n m, B]`): unrolled (`_matvec`) up to `_UNROLL` terms, else one
    (batched) matrix-vector product with `W` in its stored layout."""
    size = operator.shape[-1]
    if size <= _UNROLL:
        unrolled = jnp.moveaxis(operator, 0, -1) if batched else operator
        return lambda flat: _matvec(unrolled, flat)
    if batched:
        return lambda flat: jnp.einsum("bpq,qb->pb", operator, flat)
    return lambda flat: operator @ flat


def _unit_relations(graph, similarity):
    """The relation vectors scaled as `Cosine` scales them, zero on self-edges and masked nodes:
    `s_E(r_ij, r'_ab) = e_ij . e'_ab` with these factors."""
    edges = graph.edges / jnp.sqrt(jnp.sum(graph.edges * graph.edges, axis=-1, keepdims=True) + similarity.eps)
    n = graph.size
    pair = graph.mask[:, None] & graph.mask[None, :] & ~jnp.eye(n, dtype=bool)
    return jnp.where(pair[:, :, None], edges, 0.0)


def _factored_relation_product(source, target):
    """`W vec(M)` for the cosine relation similarity without forming `W` (`[B, n, n, e]` and
    `[B, m, m, e]` unit relations, applied to `[n m, B]`): `Q_ia = sum_{j,k} e_ijk sum_b e'_abk M_jb
    + sum_{j,k} e_jik sum_b e'_bak M_jb`, `O(n m (n + m) e)` per problem instead of `O(n^2 m^2)`."""
    batch, n, m = source.shape[0], source.shape[1], target.shape[1]

    def product(flat):
        matrix = jnp.moveaxis(flat.reshape(n, m, batch), -1, 0)
        forward = jnp.einsum("zijk,zjak->zia", source, jnp.einsum("zabk,zjb->zjak", target, matrix))
        backward = jnp.einsum("zjik,zjak->zia", source, jnp.einsum("zbak,zjb->zjak", target, matrix))
        return jnp.moveaxis(forward + backward, 0, -1).reshape(n * m, batch)

    return product


def _anneal(node_term, relation, valid, edge_weight, slack_score, schedule, history):
    """The annealing loop of `graduated_assignment` on arrays with any trailing batch axes:
    `node_term = alpha s_N` and `valid` `[n, m, *b]`, `relation` (`_relation_product`) maps
    `vec(M)`, `[n m, *b]`, to the relation part of `Q`. **Returns:** the final `M` with slack,
    `[n + 1, m + 1, *b]`, and the history `[steps, n, m, *b]` or `None`."""
    n, m = node_term.shape[:2]
    batch = node_term.shape[2:]
    dtype = node_term.dtype

    def logits_of(matrix, beta):
        edge = relation(matrix.reshape(n * m, *batch))
        q = edge_weight * edge.reshape(n, m, *batch) + node_term
        return jnp.where(valid, beta * q, _NEG)

    def sweep(potentials, beta, logits):
        tau = beta * slack_score
        f, g = _scaled_potentials(logits, *potentials, tau, schedule.sinkhorn)
        return (f, g), _assemble(logits, f, g, tau)

    beta0 = schedule.beta0.astype(dtype)
    logits = jnp.where(valid, 0.0, _NEG).astype(dtype)
    carry = sweep((jnp.zeros((n, *batch), dtype), jnp.zeros((m, *batch), dtype)), beta0, logits)

    def outer(carry, beta):
        def inner(_, carry):
            potentials, full = carry
            return sweep(potentials, beta, logits_of(full[:n, :m], beta))

        carry = jax.lax.fori_loop(0, schedule.inner, inner, carry)
        return carry, (carry[1][:n, :m] if history else None)

    (_, full), trace = jax.lax.scan(outer, carry, schedule.betas())
    return full, trace


def _permutations(k):
    return np.array(list(itertools.permutations(range(k))), dtype=np.int32)


def hard_assignment(matrix: Float[ArrayLike, "n m"], row_mask: Bool[ArrayLike, " n"] | None = None,
                    col_mask: Bool[ArrayLike, " m"] | None = None, *, method: str = "auto"
                    ) -> Int[Array, " n"]:
    """The one-to-one mapping with the largest total `sum_i M_{i, p(i)}` (best permutation, not
    row-wise argmax: near-uniform soft mappings need it). `method="exhaustive"` scores every
    permutation in JAX (jittable, for up to 7 nodes); `method="hungarian"` calls scipy's
    `linear_sum_assignment` (Kuhn 1955) through `jax.pure_callback`; `"auto"` picks exhaustive up to
    6 nodes.

    **Arguments:**

    - `matrix`: `[n, m]` soft mapping.
    - `row_mask`, `col_mask`: real rows and columns (default all).
    - `method`: `"auto"`, `"exhaustive"` or `"hungarian"`.

    **Returns:**

    `[n]` target index of each source node, `-1` for masked or unassigned rows.
    """
    if method not in ("auto", "exhaustive", "hungarian"):
        raise ValueError(f"hard_assignment: unknown method {method!r}; expected 'auto', 'exhaustive' or 'hungarian'")
    matrix = as_float_array(matrix)
    if matrix.ndim != 2:
        raise ValueError(f"hard_assignment: matrix has shape {matrix.shape}, expected (n, m)")
    n, m = matrix.shape
    row_mask = jnp.ones(n, bool) if row_mask is None else jnp.asarray(row_mask, bool)
    col_mask = jnp.ones(m, bool) if col_mask is None else jnp.asarray(col_mask, bool)
    valid = row_mask[:, None] & col_mask[None, :]
    weights = jnp.where(valid, matrix, 0.0)
    k = max(n, m)
    if method == "auto":
        method = "exhaustive" if k <= 6 else "hungarian"
    if method == "exhaustive":
        if k > 7:
            raise ValueError(f"hard_assignment: exhaustive search is for at most 7 nodes, got {k}; use 'hungarian'")
        square = jnp.zeros((k, k), weights.dtype).at[:n, :m].set(weights)
        perms = jnp.asarray(_permutations(k))
        totals = jnp.sum(square[jnp.arange(k)[None, :], perms], axis=1)
        best = perms[jnp.argmax(totals)][:n]
    else:
        def solve(w):
            w = np.asarray(w)
            out = np.full(w.shape[:-1], -1, np.int32)
            for idx in np.ndindex(*w.shape[:-2]):
                rows, cols = scipy.optimize.linear_sum_assignment(w[idx], maximize=True)
                out[idx][rows] = cols
            return out

        best = jax.pure_callback(solve, jax.ShapeDtypeStruct((n,), jnp.int32), weights,
                                 vmap_method="expand_dims")
    ok = (best >= 0) & (best < m) & row_mask
    ok = ok & jnp.where(ok, col_mask[jnp.clip(best, 0, m - 1)], False)
    return jnp.where(ok, best, -1).astype(jnp.int32)


def assignment_matrix(assignment: Int[ArrayLike, " n"], m: int) -> Float[Array, "n m"]:
    """The 0/1 matrix of a hard assignment (`-1` rows are zero).

    **Arguments:**

    - `assignment`: `[n]` target indices or `-1`.
    - `m`: the number of target nodes.

    **Returns:**

    `[n, m]` with ones at `(i, assignment[i])`.
    """
    assignment = jnp.asarray(assignment)
    return jax.nn.one_hot(assignment, m, dtype=jnp.result_type(float))
