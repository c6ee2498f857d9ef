"""Weight and node perturbation: unbiasedness against `Exact`, variance against closed forms, the
node-perturbation credit mechanism against a hand-computed eligibility, and bad input."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import simjax as sj
from simjax.rules import NodePerturbation, PerturbedNetwork, WeightPerturbation

MSE = sj.tasks.Supervised("mse", "all", dt=1.0)
# (Test data and post-processing use NumPy: eager JAX operations each cost a compilation.)


def _per_sample(rule, net, task, batch, n):
    """`n` independent calls of `rule` (one compiled program; `lax.map` compiles faster than a vmap)."""
    call = eqx.filter_jit(lambda m, b: jax.lax.map(lambda k: rule(m, task, b, k)[1],
                                                   jax.random.split(jax.random.key(7), n)))
    return jax.tree.map(np.asarray, call(net, batch))


def _flat(tree):
    return np.concatenate([np.reshape(x, (x.shape[0], -1)) for x in jax.tree.leaves(tree)], axis=1)


def _flat1(tree):
    return np.concatenate([np.ravel(x) for x in jax.tree.leaves(tree)])


def _exact_gradient(net, task, data):
    return _flat1(eqx.filter_jit(sj.rules.Exact())(net, task, data, None)[1])


def _sample(task, seed, batch):
    return eqx.filter_jit(task.sample)(jax.random.key(seed), batch)


def _rate_rnn_problem():
    steps, batch, n_in, n_rec, n_out = 4, 2, 3, 4, 2
    net = sj.networks.RateRNN(n_in, n_rec, n_out, neuron=sj.neurons.LeakyRate(tau=2.0), tau_out=3.0,
                              key=jax.random.key(0), g=1.2)
    rng = np.random.default_rng(1)
    data = sj.tasks.Batch(inputs=jnp.asarray(rng.normal(size=(steps, batch, n_in))),
                          targets=jnp.asarray(1.0 + rng.normal(size=(steps, batch, n_out))))
    return net, MSE, data


def _mlp_problem():
    task = sj.tasks.TeacherStudent(4, 2, teacher="mlp", hidden=8, seed=3)
    net = sj.networks.FeedForward((4, 6, 2), neuron="tanh", key=jax.random.key(2))
    return net, task, _sample(task, 4, 5)


class _Both(sj.rules.AbstractStatelessRule):
    """Weight and node perturbation from one key, in one compiled program."""

    samples: int = 1
    antithetic: bool = True
    kinds: tuple = ("wp", "np")
    np_antithetic: bool | None = None

    def __call__(self, model, task, batch, key):
        k_wp, k_np = jax.random.split(key)
        settings = dict(sigma=1e-3, samples=self.samples, antithetic=self.antithetic)
        np_settings = settings if self.np_antithetic is None else {**settings, "antithetic": self.np_antithetic}
        rules = {"wp": (WeightPerturbation(**settings), k_wp), "np": (NodePerturbation(**np_settings), k_np)}
        return None, {kind: rules[kind][0](model, task, batch, rules[kind][1])[1] for kind in self.kinds}, {}


@pytest.mark.parametrize("problem, antithetic, kinds", [(_rate_rnn_problem, True, ("wp", "np")),
                                                        (_mlp_problem, False, ("np",))])
def test_mean_estimate_matches_exact_gradient(problem, antithetic, kinds):
    net, task, data = problem()
    g = _exact_gradient(net, task, data)
    n = 1000  # independent calls of the rules, each averaging 16 perturbations
    estimates = _per_sample(_Both(samples=16, antithetic=antithetic, kinds=kinds), net, task, data, n)
    for kind in kinds:
        est = _flat(estimates[kind])
        mean, se = est.mean(axis=0), est.std(axis=0) / np.sqrt(n)
        # The test has power: the error bars are small against the gradient, so a bias would show.
        assert np.sum(se**2) < 0.01 * np.sum(g**2), (kind, np.sum(se**2) / np.sum(g**2))
        # Each coordinate within Monte-Carlo error; aggregated, the z's look standard normal.
        z = (mean - g) / se
        assert np.max(np.abs(z)) < 4.5, kind
        assert np.mean(z**2) < 1.6, kind
        assert mean @ g / (np.linalg.norm(mean) * np.linalg.norm(g)) > 0.95, kind


def _linear_problem(n_in, n_out, batch=4):
    """A single linear layer on a linear teacher: the loss is quadratic in parameters and readout."""
    task = sj.tasks.TeacherStudent(n_in, n_out, seed=n_in + 10 * n_out)
    net = sj.networks.FeedForward((n_in, n_out), key=jax.random.key(n_in * n_out))
    return net, task, _sample(task, 5, batch)


def _closed_forms(net, task, data):
    """Per-sample relative variances `E|g_hat - g|^2 / |g|^2`: `P + 1` for weight perturbation;
    `1 + |delta|^2 |J|_F^2 / |g|^2` for node perturbation of the readout (`delta = dL/do`,
    `J = do/dtheta`, `|J|_F^2 = n_out sum_b (|x_b|^2 + 1)` for `o = x W + b`)."""
    x, y = np.asarray(data.inputs[0]), np.asarray(data.targets[0])
    readout = x @ np.asarray(net.layers[0].weight) + np.asarray(net.biases[0])
    delta = 2 * (readout - y) / y.size  # d mean((o - y)^2) / do
    g = _exact_gradient(net, task, data)
    jac = net.n_out * np.sum(np.sum(x**2, axis=-1) + 1.0)
    return g.size + 1.0, 1.0 + np.sum(delta**2) * jac / np.sum(g**2), g


def test_variance_scales_with_parameters_for_weight_and_with_units_for_node_perturbation():
    n = 2000
    configs = {"base": (16, 2), "more_inputs": (64, 2), "more_units": (16, 8)}
    measured, predicted, sizes = {}, {}, {}
    for name, (n_in, n_out) in configs.items():
        net, task, data = _linear_problem(n_in, n_out)
        wp_pred, np_pred, g = _closed_forms(net, task, data)
        # (node perturbation with forward differences: the closed form holds up to O(sigma))
        estimates = _per_sample(_Both(np_antithetic=False), net, task, data, n)
        for kind, pred in (("wp", wp_pred), ("np", np_pred)):
            est = _flat(estimates[kind])
            rel = np.mean(np.sum((est - g) ** 2, axis=1)) / np.sum(g**2)
            measured[kind, name], predicted[kind, name] = rel, pred
        sizes[name] = (n_in * n_out + n_out, n_out)
    for key, value in measured.items():
        assert abs(value / predicted[key] - 1) < 0.15, (key, value, predicted[key])

    def slope(kind, a, b, axis):
        return np.log(measured[kind, b] / measured[kind, a]) / np.log(sizes[b][axis] / sizes[a][axis])

    # Weight perturbation: relative variance ~ number of parameters (slope ~1 in both directions).
    assert measured["wp", "base"] < measured["wp", "more_inputs"]
    assert 0.8 < slope("wp", "base", "more_inputs", 0) < 1.2
    assert 0.8 < slope("wp", "base", "more_units", 0) < 1.2
    # Node perturbation: ~ number of perturbed units, nearly independent of the number of weights.
    assert measured["np", "base"] < measured["np", "more_units"]
    assert 0.7 < slope("np", "base", "more_units", 1) < 1.3
    assert abs(slope("np", "base", "more_inputs", 0)) < 0.3
    assert measured["np", "more_inputs"] < 0.5 * measured["wp", "more_inputs"]


def test_perturbed_rate_rnn_matches_hand_written_noisy_dynamics():
    net, _, data = _rate_rnn_problem()
    net = eqx.tree_at(lambda n: n.b_rec, net, jnp.asarray(np.linspace(-0.5, 0.5, net.n_rec)))
    key, sigma, dt = jax.random.key(11), 0.3, 1.0
    steps, batch = data.inputs.shape[:2]

    @eqx.filter_jit
    def run(net, inputs):
        # The documented noise: xi_t = normal(split(key, (steps, populations))[t, 0], drive.shape).
        noise = jax.vmap(lambda k: jax.random.normal(k, (batch, net.n_rec)))(jax.random.split(key, (steps, 1))[:, 0])
        return sj.simulate(PerturbedNetwork(net, key, sigma), inputs, dt=dt).readout, noise

    readout, noise = run(net, data.inputs)
    w_in, w_rec, w_out = (np.asarray(p.weight) for p in (net.w_in, net.w_rec, net.w_out))
    tau, tau_out = float(net.neuron.tau), float(net.tau_out)
    x, o = np.zeros((batch, net.n_rec)), np.zeros((batch, net.n_out))
    a, kappa = np.exp(-dt / tau), np.exp(-dt / tau_out)
    for t in range(steps):
        xi = np.asarray(noise[t])
        drive = np.asarray(data.inputs[t]) @ w_in + np.tanh(x) @ w_rec + np.asarray(net.b_rec) + sigma * xi
        x = a * x + (1 - a) * drive
        o = kappa * o + (1 - kappa) * (np.tanh(x) @ w_out + np.asarray(net.b_out))
        np.testing.assert_allclose(readout[t], o, rtol=1e-12, atol=1e-12)


def test_credit_pass_on_rsnn_is_noise_times_presynaptic_activity():
    """In credit mode the vector-Jacobian product must equal the node-perturbation eligibility
    computed by hand from the recorded spikes: `sum_t pre_t^T C_t` for the input and recurrent
    weights, and the readout's leak-filtered error times spikes for the readout."""
    steps, batch, n_in, n_rec, n_out, dt = 8, 2, 4, 6, 3, 1.0
    settings = dict(key=jax.random.key(3), in_scale=6.0, rec_scale=3.0, tau_out=4.0)
    net = sj.networks.RSNN(n_in, n_rec, n_out, **settings)
    rng = np.random.default_rng(4)
    x = (rng.uniform(size=(steps, batch, n_in)) < 0.4).astype(np.float64)
    coefs, c_out = np.array([0.7, -1.3]), rng.normal(size=(steps, batch, n_out))

    @eqx.filter_jit
    def credit(net, x, coefs, c_out):
        keys = jax.random.split(jax.random.key(5), (2, steps, 1))  # [S, steps, populations]
        params, static = sj.parameters.partition(net)
        run = lambda p: sj.simulate(PerturbedNetwork(eqx.combine(p, static), keys, coefs, mode="credit"), x, dt=dt)
        readout, vjp = jax.vjp(lambda p: run(p).readout, params)
        clean = sj.simulate(net, x, dt=dt)
        noise = jax.vmap(jax.vmap(lambda k: jax.random.normal(k, (batch, n_rec))))(keys[:, :, 0])
        return vjp(c_out)[0], readout, clean.readout, clean.spikes, noise

    update, readout, clean_readout, spikes, noise = credit(net, x, coefs, c_out)
    spikes = np.asarray(spikes)
    assert spikes.sum() > 0
    np.testing.assert_array_equal(readout, clean_readout)
    c = np.einsum("s,stbj->tbj", coefs, np.asarray(noise))  # the units' error signals
    pre_rec = np.concatenate([np.zeros((1, batch, n_rec)), spikes[:-1]])
    want_in = np.einsum("tbi,tbj->ij", x, c)
    want_rec = np.einsum("tbi,tbj->ij", pre_rec, c) * (1 - np.eye(n_rec))
    kappa = np.exp(-dt / 4.0)
    lam = np.zeros_like(c_out)
    acc = np.zeros((batch, n_out))
    for t in reversed(range(steps)):
        acc = c_out[t] + kappa * acc
        lam[t] = acc
    np.testing.assert_allclose(update.w_in.weight, want_in, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(update.w_rec.weight, want_rec, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(update.w_out.weight, np.einsum("tbi,tbj->ij", spikes, lam), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(update.b_out, lam.sum(axis=(0, 1)), rtol=1e-10, atol=1e-12)


def test_fields_restricts_the_estimate_and_rejects_frozen_fields():
    net, task, data = _mlp_problem()
    updates = eqx.filter_jit(WeightPerturbation(1e-3, samples=3, fields=("biases",)))(net, task, data,
                                                                                     jax.random.key(0))[1]
    assert all(np.max(np.abs(w.weight)) == 0.0 for w in updates.layers)
    assert any(np.max(np.abs(b)) > 0.0 for b in updates.biases)
    frozen = sj.networks.FeedForward((4, 6, 2), neuron="tanh", key=jax.random.key(2), trainable=("layers",))
    for rule in (WeightPerturbation(fields=("biases",)), NodePerturbation(fields=("biases",))):
        with pytest.raises(ValueError, match="'biases' is frozen"):
            rule(frozen, task, data, jax.random.key(0))
    with pytest.raises(ValueError, match="no field 'weights'"):
        WeightPerturbation(fields=("weights",))(net, task, data, jax.random.key(0))


def test_bad_input_gives_clear_errors():
    net, task, data = _mlp_problem()
    nothing = sj.networks.FeedForward((4, 6, 2), neuron="tanh", key=jax.random.key(2), trainable=())
    for rule in (WeightPerturbation(), NodePerturbation()):
        with pytest.raises(ValueError, match="no trainable parameters"):
            rule(nothing, task, data, jax.random.key(0))
        with pytest.raises(ValueError, match="needs a PRNG key"):
            rule(net, task, data, None)
    rnn = sj.networks.RateRNN(3, 4, 2, key=jax.random.key(0), trainable=("w_rec", "neuron"))
    with pytest.raises(ValueError, match="neuron model LeakyRate"):
        NodePerturbation()(rnn, MSE, _rate_rnn_problem()[2], jax.random.key(0))
    with pytest.raises(TypeError, match="needs a simjax network"):
        NodePerturbation()(lambda x: x, task, data, jax.random.key(0))
    with pytest.raises(ValueError, match="sigma must be finite and > 0"):
        WeightPerturbation(sigma=0.0)
    with pytest.raises(ValueError, match="samples must be a positive int"):
        NodePerturbation(samples=0)
    with pytest.raises(ValueError, match="method 'ode' is not supported"):
        NodePerturbation(method="ode")
    with pytest.raises(ValueError, match="unknown mode 'noisy'"):
        PerturbedNetwork(net, jax.random.key(0), 1.0, mode="noisy")
