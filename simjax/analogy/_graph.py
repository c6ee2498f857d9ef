"""Attributed graphs: node feature vectors, directed relation vectors between nodes, a node mask."""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int

from .._checks import as_float_array, check_shape, is_concrete


class Graph(eqx.Module):
    """An attributed graph with `n` node slots: node features `o_i`, relation vectors `r_ij` on the
    directed edge from node `i` to node `j`, and a mask saying which slots hold a node (graphs of
    unequal sizes are padded to a common `n` so that they batch).

    Self-edges `r_ii` are stored but never compared (the mapping objective masks them). Leading
    batch axes are allowed (`nodes: [..., n, d]`, `edges: [..., n, n, e]`, `mask: [..., n]`): a
    batch of graphs is one `Graph`, and `jax.vmap` over it maps one problem at a time.

    **Arguments:**

    - `nodes`: node features, `[..., n, d]`.
    - `edges`: relation vectors, `[..., n, n, e]`; `edges[..., i, j, :]` is `r_ij`.
    - `mask`: `[..., n]`, `True` where a slot holds a node (default: all).
    """

    nodes: Float[Array, "*batch n d"]
    edges: Float[Array, "*batch n n e"]
    mask: Bool[Array, "*batch n"]

    def __init__(self, nodes: Float[ArrayLike, "*batch n d"], edges: Float[ArrayLike, "*batch n n e"],
                 mask: Bool[ArrayLike, "*batch n"] | None = None):
        nodes, edges = as_float_array(nodes), as_float_array(edges)
        if nodes.ndim < 2:
            raise ValueError(f"Graph: nodes has shape {nodes.shape}, expected (..., n, d)")
        *batch, n, _ = nodes.shape
        if edges.ndim != nodes.ndim + 1 or edges.shape[:-1] != (*batch, n, n):
            raise ValueError(f"Graph: edges has shape {edges.shape}, expected {(*batch, n, n, '*')} "
                             f"for nodes of shape {nodes.shape}")
        if n < 1:
            raise ValueError("Graph: a graph needs at least one node slot, got n = 0")
        if mask is None:
            mask = jnp.ones((*batch, n), bool)
        else:
            check_shape("mask", mask, (*batch, n), owner="Graph")
            mask = jnp.asarray(mask, bool)
        if is_concrete(nodes) and not (np.all(np.isfinite(nodes)) and np.all(np.isfinite(edges))):
            raise ValueError("Graph: nodes or edges contain NaN or inf values")
        self.nodes, self.edges, self.mask = nodes, edges, mask

    @property
    def size(self) -> int:
        """The number of node slots `n` (padded size)."""
        return self.nodes.shape[-2]


def from_triples(nodes: Float[ArrayLike, "n d"], triples: Int[ArrayLike, "t 3"] | Sequence[Sequence[int]],
                 relations: Float[ArrayLike, "r e"], mask: Bool[ArrayLike, " n"] | None = None) -> Graph:
    """A graph from relation triples `(i, k, j)`, "node `i` stands in relation `k` to node `j`": the
    relation vector `r_ij` is the sum of `relations[k]` over the triples on the edge `(i, j)` (zero
    where there is none), as PAM builds its semantic relation networks from word-pair relation
    embeddings (Lu, Ichien & Holyoak 2022, Psychol. Rev. 129:1078).

    **Arguments:**

    - `nodes`: node embeddings, `[n, d]`.
    - `triples`: `[t, 3]` integers `(source node, relation index, target node)`.
    - `relations`: relation embeddings, `[r, e]`.
    - `mask`: optional node mask, `[n]`.

    **Returns:**

    A `Graph` with `edges[i, j] = sum of relations[k] over triples (i, k, j)`.
    """
    nodes, relations = as_float_array(nodes), as_float_array(relations)
    check_shape("nodes", nodes, (None, None), owner="from_triples")
    check_shape("relations", relations, (None, None), owner="from_triples")
    triples = jnp.asarray(triples, dtype=jnp.int32)
    if triples.size == 0:
        triples = triples.reshape(0, 3)
    check_shape("triples", triples, (None, 3), owner="from_triples")
    n, r = nodes.shape[0], relations.shape[0]
    if is_concrete(triples) and triples.shape[0]:
        t = np.asarray(triples)
        bad = (t[:, 0] < 0) | (t[:, 0] >= n) | (t[:, 2] < 0) | (t[:, 2] >= n) | (t[:, 1] < 0) | (t[:, 1] >= r)
        if np.any(bad):
            raise ValueError(f"from_triples: triple {t[np.argmax(bad)].tolist()} is out of range: node indices must "
                             f"be in [0, {n}) and relation indices in [0, {r})")
        if np.any(t[:, 0] == t[:, 2]):
            raise ValueError(f"from_triples: triple {t[np.argmax(t[:, 0] == t[:, 2])].tolist()} relates a node to "
                             "itself; self-edges are not compared by the mapping")
    edges = jnp.zeros((n, n, relations.shape[1]), relations.dtype)
    edges = edges.at[triples[:, 0], triples[:, 2]].add(relations[triples[:, 1]])
    return Graph(nodes, edges, mask)


def from_positions(nodes: Float[ArrayLike, "*batch n d"], positions: Float[ArrayLike, "*batch n p"],
                   mask: Bool[ArrayLike, "*batch n"] | None = None) -> Graph:
    """A graph of parts with spatial relations, as visiPAM's (Webb et al. 2023, Nat. Commun.
    14:5144): the relation on the edge `i -> j` is the displacement `r_ij = pos_j - pos_i`.

    **Arguments:**

    - `nodes`: part features, `[..., n, d]`.
    - `positions`: part positions, `[..., n, p]` (2-D or 3-D).
    - `mask`: optional node mask, `[..., n]`.

    **Returns:**

    A `Graph` with `edges[..., i, j] = positions[..., j] - positions[..., i]`.
    """
    positions = as_float_array(positions)
    if positions.ndim < 2 or positions.shape[:-1] != jnp.shape(nodes)[:-1]:
        raise ValueError(f"from_positions: positions has shape {positions.shape}, expected "
                         f"{(*jnp.shape(nodes)[:-1], '*')} for nodes of shape {jnp.shape(nodes)}")
    edges = positions[..., None, :, :] - positions[..., :, None, :]
    return Graph(nodes, edges, mask)


def permute(graph: Graph, permutation: Int[ArrayLike, " n"]) -> Graph:
    """The same graph with its node slots reordered: node `i` of `graph` becomes node
    `permutation[i]` of the result (so the correct mapping of `graph` onto the result sends `i` to
    `permutation[i]`).

    **Arguments:**

    - `graph`: one graph (no batch axes).
    - `permutation`: `[n]`, a permutation of `0..n-1`.

    **Returns:**

    The permuted `Graph`.
    """
    perm = jnp.asarray(permutation)
    n = graph.size
    check_shape("permutation", perm, (n,), owner="permute")
    if is_concrete(perm) and sorted(np.asarray(perm).tolist()) != list(range(n)):
        raise ValueError(f"permute: {np.asarray(perm).tolist()} is not a permutation of 0..{n - 1}")
    inverse = jnp.argsort(perm)
    return Graph(graph.nodes[inverse], graph.edges[inverse][:, inverse], graph.mask[inverse])


def _stack(graphs: Sequence[Graph]) -> Graph:
    return jax.tree.map(lambda *x: jnp.stack(x), *graphs)
