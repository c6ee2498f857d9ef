"""Hebbian, Oja and BCM: updates against closed forms, Oja -> principal components, BCM -> selectivity."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import simjax as sj
from simjax.rules import BCM, Hebbian, Oja


class TwoPatterns(sj.tasks.AbstractClockTask):
    """Each trial shows one of two fixed input patterns (chosen with probability 1/2)."""

    patterns: jax.Array
    dt: float = eqx.field(static=True)

    def sample(self, key, batch_size):
        which = jax.random.bernoulli(key, 0.5, (batch_size,)).astype(jnp.int32)
        return sj.tasks.Batch(inputs=self.patterns[which][None], targets=jnp.zeros((1, batch_size, 1)))

    def loss(self, outputs, batch):
        return jnp.mean((outputs.readout - batch.targets) ** 2)

    def metrics(self, outputs, batch):
        return {"loss": self.loss(outputs, batch)}


def _fit(model, rule, task, lr, steps, seed):
    run = eqx.filter_jit(lambda m, k: sj.fit(m, rule, task, optax.sgd(lr), steps=steps, key=k))
    return jax.tree.map(np.asarray, run(model, jax.random.key(seed)))


def _covariance(n=5, seed=0):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    return q @ np.diag([4.0, 2.0, 1.0, 0.5, 0.25][:n]) @ q.T, q


def test_oja_converges_to_the_leading_principal_component():
    cov, q = _covariance()
    task = sj.tasks.TeacherStudent(5, 1, input_cov=cov)
    net = sj.networks.FeedForward((5, 1), key=jax.random.key(0), scale=0.3, trainable=("layers",))
    trained, history = _fit(net, Oja(), task, 0.02, 400, 1)
    w = trained.layers[0].weight[:, 0]
    assert abs(w @ q[:, 0]) / np.linalg.norm(w) > 0.99
    assert abs(np.linalg.norm(w) - 1.0) < 0.05
    assert history["loss"].shape == (400,) and np.all(np.isfinite(history["loss"]))


def test_bcm_becomes_selective_to_one_of_two_patterns():
    patterns = np.array([[1.0, 0.3, 0.1, 0.0], [0.2, 0.1, 1.0, 0.4]])
    task = TwoPatterns(patterns=jnp.asarray(patterns), dt=1.0)
    w0 = np.array([[0.4], [0.3], [0.5], [0.2]])
    net = sj.networks.FeedForward((4, 1), weights=(w0,), trainable=("layers",))
    before = patterns @ w0[:, 0]
    assert before.min() > 0.5 * before.max()  # not selective at the start
    trained, _ = _fit(net, BCM(rate=0.1), task, 0.05, 600, 1)
    after = np.sort(patterns @ trained.layers[0].weight[:, 0])
    # The stable BCM fixed point for two equiprobable patterns: responses (0, 2).
    assert after[1] > 1.5 and abs(after[0]) < 0.1 * after[1]


def test_updates_match_closed_forms_and_optax_sign_convention():
    net = sj.networks.FeedForward((3, 4, 2), neuron="tanh", key=jax.random.key(0))
    net = eqx.tree_at(lambda n: n.biases, net, (jnp.array([0.1, -0.2, 0.3, 0.0]), jnp.array([0.5, -0.5])))
    task = sj.tasks.TeacherStudent(3, 2, seed=1)
    batch = eqx.filter_jit(task.sample)(jax.random.key(2), 6)
    rules = (Hebbian(layer=0, decay=0.3), Oja(layer=-1), Oja(layer=1, sanger=True), BCM(layer=1))

    @eqx.filter_jit
    def run(net, batch):
        out = [rule(net, task, batch, None) for rule in rules]
        sgd = optax.sgd(0.1)
        params = sj.parameters.params(net)
        step, _ = sgd.update(out[0][1], sgd.init(params), params)
        return out, eqx.apply_updates(net, step)

    results, stepped = run(net, batch)
    x = np.asarray(batch.inputs[0])
    w0, w1 = (np.asarray(p.weight) for p in net.layers)
    h = np.tanh(x @ w0 + np.asarray(net.biases[0]))
    y = h @ w1 + np.asarray(net.biases[1])
    n = x.shape[0]
    want = {
        0: (x.T @ h / n - 0.3 * w0, 0),
        1: (h.T @ y / n - w1 @ (y.T @ y / n), 1),
        2: (h.T @ y / n - w1 @ np.triu(y.T @ y / n), 1),
        3: (h.T @ (y * (y - np.mean(y**2, axis=0))) / n, 1),
    }
    for i, (delta, layer) in want.items():
        loss, updates, aux = results[i]
        assert jax.tree.structure(updates) == jax.tree.structure(sj.parameters.params(net))
        np.testing.assert_allclose(updates.layers[layer].weight, -delta, rtol=1e-10, atol=1e-12)
        other = [u.weight for j, u in enumerate(updates.layers) if j != layer] + list(updates.biases)
        assert all(np.max(np.abs(u)) == 0.0 for u in other)
        np.testing.assert_allclose(loss, np.mean((y - np.asarray(batch.targets[0])) ** 2), rtol=1e-12)
        assert set(aux) == {"loss", "nmse"}
    # optax.sgd(lr) applied to the returned update moves W by +lr * Delta W.
    np.testing.assert_allclose(stepped.layers[0].weight, w0 + 0.1 * want[0][0], rtol=1e-12)


def test_bad_input_gives_clear_errors(unchecked):
    task = sj.tasks.TeacherStudent(3, 2)
    rng = np.random.default_rng(0)
    batch = sj.tasks.Batch(inputs=jnp.asarray(rng.normal(size=(1, 4, 3))), targets=jnp.zeros((1, 4, 2)))
    rsnn = sj.networks.RSNN(3, 4, 2, key=jax.random.key(0))
    with pytest.raises(TypeError, match="static simjax.networks.FeedForward.*got RSNN"):
        Oja()(rsnn, task, batch, None)
    spiking = sj.networks.FeedForward((3, 4, 2), neuron=sj.neurons.LIF(), key=jax.random.key(0))
    with pytest.raises(TypeError, match="must be static"):
        Hebbian()(spiking, task, batch, None)
    net = sj.networks.FeedForward((3, 4, 2), key=jax.random.key(0))
    with pytest.raises(ValueError, match="layer 2 does not exist; the network has 2 layers"):
        BCM(layer=2)(net, task, batch, None)
    frozen = sj.networks.FeedForward((3, 4, 2), key=jax.random.key(0), trainable=("biases",))
    with pytest.raises(ValueError, match="layer 0 is frozen"):
        Hebbian()(frozen, task, batch, None)
    with pytest.raises(ValueError, match="rate must lie in"):
        BCM(rate=2.0)
    with pytest.raises(ValueError, match="decay must be finite and >= 0"):
        Hebbian(decay=-1.0)
    with pytest.raises(ValueError, match="layer must be an int"):
        Oja(layer=0.5)
