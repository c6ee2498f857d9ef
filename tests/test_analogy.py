"""Probabilistic analogical mapping: Sinkhorn against Sinkhorn's theorem, permutation recovery on
isomorphic graphs, gradients against float64 finite differences, batching against a loop, the
cross-mapping signature, digit matrices per rule and alpha, schemas, degenerate inputs, bad input."""

import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simjax import analogy as pam
from simjax._app.cli import _merged
from simjax._app.config import ConfigError
from simjax._app.experiments import pam as experiment
from simjax.analogy._mapping import _edge_operator

FAST = pam.Annealing(0.5, 1.3, 50.0, inner=3, sinkhorn=20)
assign = eqx.filter_jit(pam.graduated_assignment)  # (eager dispatch of every op costs seconds here)
PARTS = pam.Annealing(0.1, 1.15, 100.0, inner=3, sinkhorn=20)  # faster than the experiment's (rate 1.075)


def test_sinkhorn_is_doubly_stochastic_and_a_diagonal_scaling():
    logits = jax.random.normal(jax.random.key(0), (5, 5))
    m = np.asarray(pam.sinkhorn(logits, iterations=300))
    np.testing.assert_allclose(m.sum(0), 1.0, atol=1e-6)
    np.testing.assert_allclose(m.sum(1), 1.0, atol=1e-6)
    # Sinkhorn's theorem: the unique doubly stochastic diag(u) exp(logits) diag(v); log M - logits = f_i + g_a.
    d = np.log(m) - np.asarray(logits)
    np.testing.assert_allclose(d - d[:, :1] - d[:1, :] + d[0, 0], 0.0, atol=1e-10)


def test_sinkhorn_with_slack_and_masks():
    logits = jax.random.normal(jax.random.key(1), (4, 6))
    row_mask = jnp.array([True, True, False, True])
    col_mask = jnp.array([True, True, True, True, False, True])
    m = np.asarray(pam.sinkhorn(logits, iterations=300, slack=True, slack_logit=-0.5, row_mask=row_mask,
                                col_mask=col_mask))
    assert m.shape == (5, 7)
    np.testing.assert_allclose(m[:4].sum(1), 1.0, atol=1e-6)  # real rows, slack column included
    np.testing.assert_allclose(m[:, :6].sum(0), 1.0, atol=1e-6)  # real columns, slack row included
    np.testing.assert_allclose(m[2, -1], 1.0, atol=1e-12)  # a masked row maps to nothing
    np.testing.assert_allclose(m[-1, 4], 1.0, atol=1e-12)  # a masked column is left unmapped
    # Real entries and slack entries share the potentials: log M_ia = logits_ia + f_i + g_a,
    # log M_i,slack = slack_logit + f_i, log M_slack,a = slack_logit + g_a.
    f = np.log(m[:4, -1]) + 0.5
    g = np.log(m[-1, :6]) + 0.5
    valid = np.outer(row_mask, col_mask)
    np.testing.assert_allclose(np.log(m[:4, :6][valid]), (np.asarray(logits) + f[:, None] + g[None, :])[valid],
                               atol=1e-10)


def _random_relational_graph(key, n, n_relations=6, dim=4):
    """Distinct random relations on a random directed graph; identical (uninformative) nodes."""
    k1, k2 = jax.random.split(key)
    relations = jax.random.normal(k1, (n_relations, dim))
    pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
    chosen = np.asarray(jax.random.choice(k2, len(pairs), (3 * n,), replace=False))
    triples = [(pairs[p][0], int(p) % n_relations, pairs[p][1]) for p in chosen]
    return pam.from_triples(jnp.ones((n, 3)), triples, relations)


def test_isomorphic_graphs_map_by_their_permutation():
    n = 7
    source = _random_relational_graph(jax.random.key(n), n)
    perm = np.asarray(jax.random.permutation(jax.random.key(10 + n), n))
    target = pam.permute(source, perm)
    np.testing.assert_array_equal(target.edges[perm[0], perm[1]], source.edges[0, 1])
    mapping = assign(source, target, schedule=FAST)
    for method in ("exhaustive", "hungarian"):
        np.testing.assert_array_equal(pam.hard_assignment(mapping.matrix, method=method), perm)
    # the Hungarian read-out under vmap (a host callback per batch), masks included
    batch = jnp.stack([mapping.matrix, mapping.matrix[::-1]])
    masks = jnp.array([[True] * n, [True] * (n - 1) + [False]])
    hard = jax.vmap(lambda m, r: pam.hard_assignment(m, r, method="hungarian"))(batch, masks)
    np.testing.assert_array_equal(hard[0], perm)
    np.testing.assert_array_equal(hard[1], np.append(perm[::-1][:-1], -1))
    np.testing.assert_allclose(mapping.matrix, np.eye(n)[perm], atol=1e-2)  # the slack keeps ~1e-3
    # the score of the soft result reaches that of the true permutation (closed form)
    exact = float(pam.objective(np.eye(n)[perm], pam.compatibility(source, target)))
    assert float(mapping.score) == pytest.approx(exact, rel=5e-3)


def test_objective_and_its_gradient():
    k = jax.random.split(jax.random.key(2), 5)
    source = pam.from_positions(jax.random.normal(k[0], (4, 3)), jax.random.normal(k[1], (4, 2)))
    target = pam.from_positions(jax.random.normal(k[2], (5, 3)), jax.random.normal(k[3], (5, 2)))
    matrix = jax.random.uniform(k[4], (4, 5))
    comp = jax.jit(pam.compatibility)(source, target)
    # the objective by explicit loops, with cosines written out
    cos = lambda x, y: float(x @ y / np.sqrt((x @ x + 1e-8) * (y @ y + 1e-8)))  # noqa: E731
    s, t, mm = np.asarray(source.edges), np.asarray(target.edges), np.asarray(matrix)
    on, tn = np.asarray(source.nodes), np.asarray(target.nodes)
    total = 0.0
    for i, j, a, b in itertools.product(range(4), range(4), range(5), range(5)):
        if i != j and a != b:
            total += mm[i, a] * mm[j, b] * cos(s[i, j], t[a, b])
    for i, a in itertools.product(range(4), range(5)):
        total += 0.7 * mm[i, a] * cos(on[i], tn[a])
    assert float(pam.objective(matrix, comp, 0.7)) == pytest.approx(total, rel=1e-12)
    # dL/dM by autodiff against central differences in float64
    grad = jax.jit(jax.grad(pam.objective))(matrix, comp, 0.7)
    # the update's Q = dL/dM as graduated assignment computes it (one matrix-vector product)
    q = (_edge_operator(comp) @ matrix.reshape(-1)).reshape(4, 5) + 0.7 * comp.node
    np.testing.assert_allclose(q, grad, rtol=1e-12, atol=1e-12)
    objective = jax.jit(pam.objective)
    eps = 1e-6
    for i, a in [(0, 0), (1, 3), (3, 4)]:
        e = jnp.zeros_like(matrix).at[i, a].set(eps)
        fd = (objective(matrix + e, comp, 0.7) - objective(matrix - e, comp, 0.7)) / (2 * eps)
        assert float(grad[i, a]) == pytest.approx(float(fd), rel=1e-7)


def test_gradient_through_graduated_assignment_matches_finite_differences():
    """The mapping loss of `LearnedSimilarity` (node weight alpha and a linear map W of the node
    features) differentiated through the whole annealing, against central differences; then one
    step of `fit_similarity` is Adam's first step, `-lr sign(g)` (to Adam's eps)."""
    problems = pam.PartCorrespondence(n=4, dim=3, cross=True).sample(jax.random.key(3), 2)
    schedule = pam.Annealing(0.3, 1.5, 2.0, inner=2, sinkhorn=10)
    model = pam.LearnedSimilarity(0.8, 3)
    model = eqx.tree_at(lambda m: m.projection, model, model.projection + 0.1 * jnp.arange(9.0).reshape(3, 3))
    assert float(model.alpha) == pytest.approx(0.8, rel=1e-12)
    loss = jax.jit(lambda m: pam.mapping_loss(m, problems, schedule=schedule))
    grads = jax.jit(jax.grad(lambda m: pam.mapping_loss(m, problems, schedule=schedule)))(model)
    eps = 1e-6
    shift = lambda d: jax.tree.map(lambda x, y: x + y, model, d)  # noqa: E731
    zero = jax.tree.map(jnp.zeros_like, model)
    for where, index in ((lambda m: m.raw_alpha, ()), (lambda m: m.projection, (0, 1)),
                         (lambda m: m.projection, (2, 0))):
        d = eqx.tree_at(where, zero, where(zero).at[index].set(eps))
        fd = (loss(shift(d)) - loss(shift(jax.tree.map(jnp.negative, d)))) / (2 * eps)
        assert float(where(grads)[index]) == pytest.approx(float(fd), rel=1e-6, abs=1e-10)
    trained, losses = pam.fit_similarity(model, problems, steps=1, learning_rate=0.01, schedule=schedule)
    assert float(losses[0]) == pytest.approx(float(loss(model)), rel=1e-12)
    step = jax.tree.map(lambda a, b: a - b, trained, model)
    adam = jax.tree.map(lambda g: -0.01 * g / (jnp.abs(g) + 1e-8), grads)  # Adam's first step, eps = 1e-8
    np.testing.assert_allclose(step.raw_alpha, adam.raw_alpha, rtol=1e-9)
    np.testing.assert_allclose(step.projection, adam.projection, rtol=1e-9)


def test_batched_over_problems_alphas_and_schedules_equals_a_loop():
    problems = pam.PartCorrespondence(n=4, dim=3).sample(jax.random.key(4), 3)
    alphas = jnp.array([0.0, 1.0, 2.5])
    beta0s = jnp.array([0.5, 0.2, 1.0])

    @jax.jit
    def solve(s, t, a, b):
        schedule = pam.Annealing(b, 1.3, inner=3, sinkhorn=20, steps=FAST.steps)  # traced beta0: steps given
        return pam.graduated_assignment(s, t, alpha=a, schedule=schedule).matrix

    batched = jax.vmap(solve)(problems.source, problems.target, alphas, beta0s)
    for b in range(3):
        one = jax.tree.map(lambda x: x[b], (problems.source, problems.target))
        np.testing.assert_allclose(batched[b], solve(*one, alphas[b], beta0s[b]), atol=1e-12)
    np.testing.assert_allclose(solve(*one, 0.5, 0.5), assign(*one, alpha=0.5, schedule=FAST).matrix, atol=1e-12)


def _reference_assignment(source, target, alpha, schedule, slack_score):
    """Graduated assignment as first formulated, in NumPy float64: `Q = W vec(M) + alpha s_N` with the
    full `[n m, n m]` relation operator built by loops, and every Sinkhorn iteration in the log domain
    (potentials warm-started, slack row and column of log-weight `beta slack_score`)."""
    cos = lambda x, y: x @ y / np.sqrt((x @ x + 1e-8) * (y @ y + 1e-8))  # noqa: E731
    on, tn, se, te = (np.asarray(x, np.float64) for x in (source.nodes, target.nodes, source.edges, target.edges))
    sm, tm = np.asarray(source.mask), np.asarray(target.mask)
    n, m = len(sm), len(tm)
    valid = np.outer(sm, tm)
    node = np.array([[cos(on[i], tn[a]) if valid[i, a] else 0.0 for a in range(m)] for i in range(n)])
    w = np.zeros((n, m, n, m))
    for i, j, a, b in itertools.product(range(n), range(n), range(m), range(m)):
        if i != j and a != b and sm[i] and sm[j] and tm[a] and tm[b]:
            w[i, a, j, b] = cos(se[i, j], te[a, b]) + cos(se[j, i], te[b, a])

    def lse(x, axis, tau):
        x = np.concatenate([x, np.broadcast_to(tau, x.shape[:axis] + (1,) + x.shape[axis + 1:])], axis)
        top = x.max(axis)
        return top + np.log(np.exp(x - np.expand_dims(top, axis)).sum(axis))

    def normalise(logits, f, g, tau):
        logits = np.where(valid, logits, -1e9)
        for _ in range(schedule.sinkhorn):
            f = -lse(logits + g[None, :], 1, tau)
            g = -lse(logits + f[:, None], 0, tau)
        return f, g, np.exp(logits + f[:, None] + g[None, :])

    beta = float(schedule.beta0)
    f, g, matrix = normalise(np.zeros((n, m)), np.zeros(n), np.zeros(m), beta * slack_score)
    for _ in range(schedule.steps):
        for _ in range(schedule.inner):
            q = np.einsum("iajb,jb->ia", w, matrix) + alpha * node
            f, g, matrix = normalise(beta * q, f, g, beta * slack_score)
        beta *= float(schedule.rate)
    return matrix


@pytest.mark.parametrize("slack_score", [0.0, -0.3, 0.4])
def test_graduated_assignment_equals_the_log_domain_formulation(slack_score):
    """The stabilised-scaling Sinkhorn and the unrolled products give the log-domain iterates:
    unequal sizes (a masked source slot), slack scores of both signs, float64."""
    k = jax.random.split(jax.random.key(11), 4)
    source = pam.from_positions(jax.random.normal(k[0], (4, 3)), jax.random.normal(k[1], (4, 2)),
                                jnp.array([True, True, False, True]))
    target = pam.from_positions(jax.random.normal(k[2], (5, 3)), jax.random.normal(k[3], (5, 2)))
    schedule = pam.Annealing(0.5, 1.5, 30.0, inner=3, sinkhorn=15)
    mapping = assign(source, target, alpha=0.7, schedule=schedule, slack_score=slack_score)
    expected = _reference_assignment(source, target, 0.7, schedule, slack_score)
    np.testing.assert_allclose(mapping.matrix, expected, rtol=1e-9, atol=1e-12)


def test_batch_program_equals_vmap_with_gradients():
    """`graduated_assignment_batch` (problems on the last axis) against `jax.vmap` of the single
    solver (which applies the full relation operator `W`), values and gradients with respect to
    alpha and the node features, float64; both paths of the batch program's relation product
    (`W` unrolled up to 64 node pairs, the factored cosine contraction above)."""
    schedule = pam.Annealing(0.5, 1.5, 20.0, inner=2, sinkhorn=10)
    for n in (4, 9):
        problems = pam.PartCorrespondence(n=n, dim=3).sample(jax.random.key(n), 3)
        source = eqx.tree_at(lambda g: g.mask, problems.source, problems.source.mask.at[1, 0].set(False))

        def score(alpha, feats, batch):
            src = eqx.tree_at(lambda g: g.nodes, source, feats)
            if batch:
                out = pam.graduated_assignment_batch(src, problems.target, alpha=alpha, schedule=schedule)
            else:
                out = jax.vmap(lambda s, t: pam.graduated_assignment(s, t, alpha=alpha, schedule=schedule))(
                    src, problems.target)
            return jnp.sum(out.score), out.matrix

        fast = jax.jit(jax.value_and_grad(score, argnums=(0, 1), has_aux=True), static_argnums=2)
        (s1, m1), g1 = fast(0.8, source.nodes, True)
        (s0, m0), g0 = fast(0.8, source.nodes, False)
        np.testing.assert_allclose(m1, m0, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(s1, s0, rtol=1e-10)
        np.testing.assert_allclose(g1[0], g0[0], rtol=1e-8)
        np.testing.assert_allclose(g1[1], g0[1], rtol=1e-8, atol=1e-12)


def test_part_correspondence_and_the_cross_mapping_signature():
    """Plain problems are solved (>= 95 % of parts); with the features of two target parts swapped,
    relations override the misleading surface similarity: full >= node-only + 20 points."""

    @jax.jit
    def accuracy(problems, alpha, edge_weight):
        def one(s, t):
            m = pam.graduated_assignment(s, t, alpha=alpha, edge_weight=edge_weight, schedule=PARTS).matrix
            return pam.hard_assignment(m)

        return jnp.mean(jax.vmap(one)(problems.source, problems.target) == problems.answer)

    plain = pam.PartCorrespondence().sample(jax.random.key(5), 20)
    cross = pam.PartCorrespondence(cross=True).sample(jax.random.key(5), 20)
    assert float(accuracy(plain, 1.0, 1.0)) >= 0.95
    full, node_only = float(accuracy(cross, 1.0, 1.0)), float(accuracy(cross, 1.0, 0.0))
    assert full >= node_only + 0.20
    assert node_only == pytest.approx(4 / 6)  # the two swapped parts go to each other's places


def _check_rule(rule, p):
    grid, choices = np.asarray(p.grid), np.asarray(p.choices)
    assert grid.min() >= 0 and grid.max() <= 9
    np.testing.assert_array_equal(choices[np.arange(len(grid)), p.answer], grid[:, 2, 2])
    assert all(len(set(c)) == 8 for c in choices)
    if rule == "row_constant":
        assert (grid == grid[:, :, :1]).all()
    elif rule == "column_constant":
        assert (grid == grid[:, :1, :]).all()
    elif rule == "distribution":
        assert all(sorted(r) == sorted(g[0]) and len(set(r)) == 3 for g in grid for r in list(g) + list(g.T))
    else:
        d = grid[:, :, 1] - grid[:, :, 0]
        assert (grid[:, :, 2] - grid[:, :, 1] == d).all() and np.isin(d, [-2, -1, 1, 2]).all()


def test_digit_matrices_per_rule_and_alpha():
    """Choice and generation >= 90 % for the better alpha per rule; progression needs relations to
    dominate (a large alpha hurts), distribution-of-3 does not lose from node identity. One program
    for all rules and alphas (a shorter schedule than the experiment's)."""
    schedule = pam.Annealing(0.5, 2.0, 50.0, inner=2, sinkhorn=10)
    problems = [pam.DigitMatrices(rule).sample(jax.random.key(2), 10) for rule in pam.RULES]
    for rule, p in zip(pam.RULES, problems):
        _check_rule(rule, p)
    problems = jax.tree.map(lambda *x: jnp.concatenate(x), *problems)

    @jax.jit
    def correct(p, alphas):
        def one(a):
            chosen = pam.solve_digit_matrices(p, alpha=a, schedule=schedule)
            made = pam.generate_digits(p, alpha=a, schedule=schedule, resolution=46)  # steps of 0.2
            return chosen == p.answer, jnp.round(made) == p.grid[:, 2, 2]

        return jax.vmap(one)(alphas)

    alphas = (0.0, 1.0, 10.0)
    chosen, made = (np.asarray(x).reshape(3, 4, 10).mean(-1) for x in correct(problems, jnp.array(alphas)))
    acc = {(rule, a): (chosen[i, r], made[i, r]) for i, a in enumerate(alphas) for r, rule in enumerate(pam.RULES)}
    for rule, best in (("row_constant", 1.0), ("column_constant", 1.0), ("distribution", 1.0),
                       ("progression", 0.0)):
        assert min(acc[rule, best]) >= 0.9, (rule, acc[rule, best])
    assert acc["progression", 10.0][0] <= acc["progression", 0.0][0] - 0.3
    assert acc["distribution", 1.0][0] >= acc["distribution", 0.0][0]


def test_schema_is_the_mean_of_the_aligned_graphs():
    k = jax.random.split(jax.random.key(8), 4)
    a = pam.from_positions(jax.random.normal(k[0], (3, 2)), jax.random.normal(k[1], (3, 2)))
    b = pam.from_positions(jax.random.normal(k[2], (3, 2)), jax.random.normal(k[3], (3, 2)))
    perm = np.array([1, 2, 0])
    s = pam.schema(a, b, np.eye(3)[perm])
    inv = np.argsort(perm)
    np.testing.assert_allclose(s.nodes, (np.asarray(a.nodes)[inv] + np.asarray(b.nodes)) / 2, atol=1e-12)
    np.testing.assert_allclose(s.edges, (np.asarray(a.edges)[inv][:, inv] + np.asarray(b.edges)) / 2, atol=1e-12)


def test_degenerate_inputs_give_no_nan():
    schedule = pam.Annealing(1.0, 2.0, 8.0, inner=2, sinkhorn=10)
    # identical positions (every relation vector zero), one-node graphs, zero relations from triples
    same = pam.from_positions(jnp.eye(4, 3), jnp.zeros((4, 2)))
    one = pam.from_positions(jnp.ones((1, 3)), jnp.zeros((1, 2)))
    empty = pam.from_triples(jnp.eye(4, 3), [], jnp.ones((2, 2)))
    np.testing.assert_array_equal(empty.edges, same.edges)
    for s, t in ((one, same),):
        m = assign(s, t, schedule=schedule)
        assert np.all(np.isfinite(m.slack)) and np.isfinite(float(m.score))

    def score(nodes):  # zero relation vectors everywhere: cosines of 0/0 without the regulariser
        return pam.graduated_assignment(pam.Graph(nodes, same.edges), same, schedule=schedule).score

    value, grad = jax.jit(jax.value_and_grad(score))(same.nodes)
    assert np.isfinite(float(value)) and np.all(np.isfinite(grad))
    # identical nodes and zero relations give the identity on node features
    np.testing.assert_array_equal(pam.hard_assignment(assign(same, same, schedule=schedule).matrix),
                                  np.arange(4))


def test_unequal_sizes_map_through_masks_and_slack():
    """A 4-part object padded to 6 slots maps into the 6-part object it was cut from; the two
    extra target parts are left to the slack."""
    k = jax.random.split(jax.random.key(9), 2)
    feats, pos = jax.random.normal(k[0], (6, 5)), jax.random.normal(k[1], (6, 2))
    target = pam.from_positions(feats, pos)
    mask = jnp.array([True, True, True, True, False, False])
    source = pam.from_positions(feats, pos, mask)
    source = pam.permute(source, jnp.array([3, 0, 5, 1, 2, 4]))
    mapping = assign(source, target, schedule=FAST)
    hard = np.asarray(pam.hard_assignment(mapping.matrix, source.mask, target.mask))
    expected = np.full(6, -1)
    for i, slot in enumerate([3, 0, 5, 1]):  # source slot of original part i
        expected[slot] = i
    np.testing.assert_array_equal(hard, expected)
    np.testing.assert_allclose(mapping.slack[:, :6].sum(0), 1.0, atol=1e-6)  # columns (the last normalisation)
    np.testing.assert_allclose(mapping.slack[:6].sum(1), 1.0, atol=1e-2)  # rows, to the iteration's convergence
    assert np.all(mapping.slack[-1, 4:6] > 0.99)  # unmatched target parts go to the slack row


@pytest.mark.parametrize("call,match", [
    (lambda: pam.Graph(jnp.ones((3, 2)), jnp.ones((3, 4, 2))), "edges has shape"),
    (lambda: pam.Graph(jnp.ones((3, 2)), jnp.ones((3, 3, 2)), jnp.ones(4, bool)), "mask has shape"),
    (lambda: pam.Graph(jnp.full((2, 2), jnp.nan), jnp.ones((2, 2, 2))), "NaN"),
    (lambda: pam.from_triples(jnp.ones((3, 2)), [(0, 0, 3)], jnp.ones((2, 2))), r"triple \[0, 0, 3\] is out of range"),
    (lambda: pam.from_triples(jnp.ones((3, 2)), [(1, 0, 1)], jnp.ones((2, 2))), "relates a node to itself"),
    (lambda: pam.from_positions(jnp.ones((3, 2)), jnp.ones((4, 2))), "positions has shape"),
    (lambda: pam.permute(pam.from_positions(jnp.ones((3, 2)), jnp.ones((3, 2))), jnp.array([0, 0, 1])),
     "not a permutation"),
    (lambda: pam.sinkhorn(jnp.ones((3, 4))), "must be square"),
    (lambda: pam.sinkhorn(jnp.ones((3, 3)), row_mask=jnp.ones(3, bool)), "need slack=True"),
    (lambda: pam.sinkhorn(jnp.ones((3, 3)), iterations=-1), "iterations must be"),
    (lambda: pam.Annealing(rate=1.0), "rate must be > 1"),
    (lambda: pam.Annealing(beta0=-1.0), "beta0 must be"),
    (lambda: pam.Gaussian(sigma=0.0), "sigma must be"),
    (lambda: pam.hard_assignment(jnp.ones((3, 3)), method="greedy"), "unknown method 'greedy'"),
    (lambda: pam.hard_assignment(jnp.ones((9, 9)), method="exhaustive"), "at most 7 nodes"),
    (lambda: pam.graduated_assignment(pam.from_positions(jnp.ones((3, 2)), jnp.ones((3, 2))),
                                      pam.from_positions(jnp.ones((3, 4)), jnp.ones((3, 2)))), "features differ"),
    (lambda: pam.graduated_assignment(pam.from_positions(jnp.ones((2, 3, 2)), jnp.ones((2, 3, 2))),
                                      pam.from_positions(jnp.ones((2, 3, 2)), jnp.ones((2, 3, 2)))), "single graphs"),
    (lambda: pam.graduated_assignment_batch(pam.from_positions(jnp.ones((3, 2)), jnp.ones((3, 2))),
                                            pam.from_positions(jnp.ones((3, 2)), jnp.ones((3, 2)))),
     "one leading axis"),
    (lambda: pam.DigitMatrices("addition"), "unknown rule 'addition'"),
    (lambda: pam.DigitMatrices("progression", choices=11), "choices must be"),
    (lambda: pam.schema(pam.digit_graph(jnp.ones(3)), pam.digit_graph(jnp.ones(3)), jnp.ones((3, 4))),
     "matrix has shape"),
])
def test_bad_input(call, match, unchecked):
    with pytest.raises(ValueError, match=match):
        call()


def test_experiment_runs_from_its_config(tmp_path):
    raw = {"experiment": {"name": "pam"}, "task": {"kind": "parts", "problems": 2, "seeds": 2},
           "schedule": {"rate": 2.0, "final": 4.0, "inner": 1, "sinkhorn": 5},
           "parts": {"n": 4, "dim": 3, "models": ["full", "node_only"]}, "output": {"figures": False}}
    summary = experiment.run(_merged(experiment, raw, False), tmp_path)
    cell = summary["accuracy"]["cross"]["node_only"]
    assert cell["seeds"] == 2 and 0 <= cell["mean"] <= 1 and (tmp_path / "runs.csv").is_file()
    for key, value, match in (("task", {"kind": "pictures"}, "task.kind"), ("schedule", {"rate": 1.0}, "schedule.rate"),
                              ("digits", {"rules": ["addition"]}, "digits.rules"),
                              ("parts", {"models": ["both"]}, "parts.models"),
                              ("learn", {"alpha": -1.0}, "learn.alpha")):
        with pytest.raises(ConfigError, match=match):
            _merged(experiment, {**raw, key: {**raw.get(key, {}), **value}}, False)
