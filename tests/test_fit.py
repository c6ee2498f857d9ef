"""`fit` with every rule: vmapped seeds equal separate runs, frozen fields never move, Dale signs
hold after every update, the progress mode equals the single scan; `rules.get` and shape errors."""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import simjax as sj

TASK = sj.tasks.TeacherStudent(3, 2, teacher="mlp", hidden=6, seed=0)

# Every rule that trains a static feed-forward network, with settings that keep the test fast.
RULES = {
    "exact": {},
    "truncated_bptt": {"k": 1},
    "feedback_alignment": {},
    "direct_feedback_alignment": {},
    "sign_symmetry": {},
    "node_perturbation": {"sigma": 1e-3, "samples": 2},
    "weight_perturbation": {"sigma": 1e-3, "samples": 2},
    "hebbian": {},
    "oja": {},
    "bcm": {"rate": 0.5},
}


def _leaves_equal(a, b, rtol):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol)


def test_fit_vmapped_over_seeds_equals_separate_runs():
    rule = sj.rules.Exact()
    keys = jax.random.split(jax.random.key(0), 8)
    # Each seed has its own initial weights (drawn outside: network construction is not the point).
    models = [sj.networks.FeedForward((3, 5, 2), neuron="tanh", key=jax.random.fold_in(k, 0)) for k in keys]
    stacked = jax.tree.map(lambda *a: jnp.asarray(np.stack(a)), *models)

    def run(model, key):
        return sj.fit(model, rule, TASK, optax.adam(1e-2), steps=5, key=key, batch_size=8)

    together = eqx.filter_jit(eqx.filter_vmap(run))(stacked, keys)
    one = eqx.filter_jit(run)
    for s in range(8):
        _leaves_equal(jax.tree.map(lambda x: x[s], together), one(models[s], keys[s]), rtol=1e-10)
    losses = together[1]["loss"]
    assert losses.shape == (8, 5) and not np.allclose(losses[0], losses[1])


def test_progress_mode_equals_the_single_scan():
    model = sj.networks.FeedForward((3, 5, 2), neuron="tanh", key=jax.random.key(1))
    rule = sj.rules.BCM(rate=0.5)  # a stateful rule: its state must be carried across chunks
    seen = []
    kwargs = dict(steps=6, key=jax.random.key(2), batch_size=4)
    chunked = sj.fit(model, rule, TASK, optax.sgd(0.1), progress=lambda d, n, m: seen.append((d, n)), chunks=3,
                     **kwargs)
    single = sj.fit(model, rule, TASK, optax.sgd(0.1), **kwargs)
    assert seen == [(2, 6), (4, 6), (6, 6)]
    _leaves_equal(chunked, single, rtol=1e-12)


@functools.cache
def _dale_model():
    """Layer 0 is Dale-signed with small weights (any update of the wrong sign would flip them);
    the biases are frozen."""
    rng = np.random.default_rng(3)
    excitatory = np.arange(3) < 2
    magnitude = 0.03 * np.abs(rng.normal(size=(3, 5)))
    dale = sj.synapses.Dale(np.where(excitatory[:, None], magnitude, -magnitude), excitatory)
    weights = (dale, rng.normal(size=(5, 2)) / np.sqrt(5))
    biases = (np.array([0.1, -0.2, 0.3, 0.0, 0.2]), np.array([0.5, -0.5]))
    return sj.networks.FeedForward((3, 5, 2), neuron="tanh", weights=weights, biases=biases, trainable=("layers",))


@pytest.mark.parametrize("name", list(RULES))
def test_every_rule_leaves_frozen_fields_alone_and_keeps_dale_signs(name):
    # (`fit` also checks each rule's updates against the parameters' tree structure: optax raises
    # on a mismatch, e.g. an array where a frozen leaf has None.)
    rule = sj.rules.get(name, **RULES[name])
    model = _dale_model()

    @eqx.filter_jit
    def train(model, key):
        trained, history = sj.fit(model, rule, TASK, optax.sgd(2.0), steps=3, key=key, batch_size=8)
        return trained, history, trained.layers[0].dense()

    trained, history, dense = jax.tree.map(np.asarray, train(model, jax.random.key(5)))
    # Frozen: bit-for-bit unchanged.
    for before, after in zip(model.biases, trained.biases):
        np.testing.assert_array_equal(before, after)
    # Trained: the Dale layer moved, and every stored weight keeps its presynaptic neuron's sign.
    dale = trained.layers[0]
    w, excitatory = dale.weight, dale.excitatory
    assert np.max(np.abs(w - np.asarray(model.layers[0].weight))) > 0
    assert np.all(w[excitatory] >= 0) and np.all(w[~excitatory] <= 0)
    assert np.any(w == 0)  # some updates pushed weights across zero: the constraint was exercised
    np.testing.assert_array_equal(dense, w)
    assert np.all(np.isfinite(history["loss"]))


def test_rules_get_builds_by_name_and_lists_known_names(unchecked):
    rule = sj.rules.get("node_perturbation", sigma=0.01, samples=3)
    assert isinstance(rule, sj.rules.NodePerturbation) and rule.samples == 3
    assert isinstance(sj.rules.get("exact"), sj.rules.Exact)
    assert set(RULES) <= set(sj.rules.names())
    with pytest.raises(ValueError, match="unknown rule 'backprop'; known rules: exact, truncated_bptt.*oja, bcm"):
        sj.rules.get("backprop")
    with pytest.raises(TypeError, match="name must be a string"):
        sj.rules.get(3)


def test_mismatched_batch_shapes_give_clear_errors():
    model = _dale_model()
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(1, 4, 3)), rng.normal(size=(1, 4, 2))
    wrong_targets = sj.tasks.Batch(inputs=jnp.asarray(x), targets=jnp.asarray(y[:, :3]))
    wrong_inputs = sj.tasks.Batch(inputs=jnp.asarray(x[..., :2]), targets=jnp.asarray(y))
    for name in ("exact", "weight_perturbation", "node_perturbation", "oja"):
        rule = sj.rules.get(name)
        # Shape errors are raised while tracing: no compilation needed to see them.
        with pytest.raises(ValueError, match=r"readout has shape \(1, 4, 2\) but targets have shape \(1, 3, 2\)"):
            eqx.filter_eval_shape(rule, model, TASK, wrong_targets, jax.random.key(0))
        with pytest.raises(ValueError, match=r"inputs have shape \(1, 4, 2\).*n_in=3|input has shape \(1, 4, 2\)"):
            eqx.filter_eval_shape(rule, model, TASK, wrong_inputs, jax.random.key(0))
