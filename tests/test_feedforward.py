"""FeedForward: static MLPs against numpy, spiking layers and their surrogate gradients, errors."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import simjax as sj
from simjax.neurons._rate import InstantaneousRate, LeakyRate

SIZES = (4, 6, 5, 3)


def numpy_mlp(weights, biases, x, phi):
    """Independent reference: hidden layers phi(h W + b), linear readout."""
    h, acts = np.asarray(x), []
    for w, b in zip(weights[:-1], biases[:-1]):
        pre = h @ w + b
        h = phi(pre)
        acts.append((pre, h))
    z = h @ weights[-1] + biases[-1]
    acts.append((z, z))
    return z, acts


def random_params(seed, sizes):
    rng = np.random.default_rng(seed)
    ws = [rng.normal(size=(a, b)) for a, b in zip(sizes[:-1], sizes[1:])]
    bs = [rng.normal(size=b) for b in sizes[1:]]
    return ws, bs


def normal(seed, shape):
    return np.random.default_rng(seed).normal(size=shape)


@pytest.mark.parametrize("activation,phi", [("relu", lambda x: np.maximum(x, 0.0)), ("tanh", np.tanh)])
def test_static_mlp_equals_numpy_mlp(activation, phi):
    ws, bs = random_params(0, SIZES)
    net = sj.networks.FeedForward(SIZES, activation, weights=ws, biases=bs)
    assert net.is_static and net.sizes == SIZES
    x = normal(1, (3, 7, 4))  # [time, batch, n_in]
    z_ref, acts_ref = numpy_mlp(ws, bs, x, phi)
    out = sj.simulate(net, x, dt=1.0)  # every time step is an independent forward pass
    np.testing.assert_allclose(out.readout, z_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out.spikes, acts_ref[-2][1], rtol=1e-12, atol=1e-12)  # last hidden rates
    np.testing.assert_allclose(out.v, acts_ref[-2][0], rtol=1e-12, atol=1e-12)  # its pre-activation
    acts = net.forward_layers(x[0])
    assert len(acts) == len(SIZES) - 1
    for act, (pre, post) in zip(acts, numpy_mlp(ws, bs, x[0], phi)[1]):
        np.testing.assert_allclose(act.drive, pre, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(act.rate, post, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(net(x[0]), z_ref[0], rtol=1e-12, atol=1e-12)


def test_gradient_of_static_mlp_matches_numpy_backprop():
    sizes = (3, 5, 2)
    ws, bs = random_params(2, sizes)
    x = normal(3, (1, 4, 3))
    y = normal(4, (1, 4, 2))
    net = sj.networks.FeedForward(sizes, "tanh", weights=ws, biases=bs)
    task = sj.tasks.Supervised(loss="mse")
    loss, grads, _ = sj.rules.Exact()(net, task, sj.tasks.Batch(inputs=x, targets=y), jax.random.key(0))
    # Hand-written backprop of mean((z - y)^2) over batch x outputs.
    h_pre = x[0] @ ws[0] + bs[0]
    h = np.tanh(h_pre)
    z = h @ ws[1] + bs[1]
    dz = 2 * (z - y[0]) / z.size
    dh = dz @ ws[1].T * (1 - h ** 2)
    np.testing.assert_allclose(loss, np.mean((z - y[0]) ** 2), rtol=1e-12)
    np.testing.assert_allclose(grads.layers[1].weight, h.T @ dz, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(grads.biases[1], dz.sum(0), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(grads.layers[0].weight, x[0].T @ dh, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(grads.biases[0], dh.sum(0), rtol=1e-10, atol=1e-14)


def test_single_layer_is_a_linear_readout():
    ws, bs = random_params(5, (4, 2))
    net = sj.networks.FeedForward((4, 2), weights=ws, biases=bs)
    x = normal(6, (2, 3, 4))
    out = sj.simulate(net, x, dt=1.0)
    assert out.spikes is None and out.v is None
    np.testing.assert_allclose(out.readout, x @ ws[0] + bs[0], rtol=1e-12)


def test_leaky_readout_accumulates_with_kappa():
    ws, bs = random_params(7, (3, 4, 2))
    net = sj.networks.FeedForward((3, 4, 2), "relu", weights=ws, biases=bs, tau_out=5.0)
    x = normal(8, (6, 2, 3))
    out = sj.simulate(net, x, dt=0.5)
    z, _ = numpy_mlp(ws, bs, x, lambda v: np.maximum(v, 0.0))
    kappa, o, ref = np.exp(-0.5 / 5.0), 0.0, []
    for z_t in z:
        o = kappa * o + z_t
        ref.append(o)
    np.testing.assert_allclose(out.readout, np.stack(ref), rtol=1e-12)
    with pytest.raises(TypeError, match="static"):
        net.forward_layers(x[0])


def test_spiking_feedforward_forward_and_surrogate_gradient():
    surrogate = sj.surrogates.FastSigmoid(slope=5.0)
    lif = sj.neurons.LIF(tau_mem=10.0, v_th=1.0)
    sizes = (5, 8, 6, 2)
    ws, _ = random_params(9, sizes)
    ws = [3.0 * w / np.sqrt(w.shape[0]) for w in ws]
    net = sj.networks.FeedForward(sizes, lif, surrogate=surrogate, weights=ws, tau_out=10.0)
    assert all(n.surrogate == surrogate for n in net.neurons)
    x = jnp.asarray(np.random.default_rng(10).random((20, 3, 5)) < 0.5, dtype=jnp.float64)

    def loss(layers):  # time-mean readout against a target of ones
        out = sj.simulate(eqx.tree_at(lambda n: n.layers, net, layers), x, dt=1.0)
        return jnp.mean((out.readout.mean(0) - 1.0) ** 2), out

    (_, out), grads = jax.value_and_grad(loss, has_aux=True)(net.layers)
    assert out.spikes.shape == (20, 3, 6) and out.v.shape == (20, 3, 6) and out.readout.shape == (20, 3, 2)
    s = np.asarray(out.spikes)
    assert set(np.unique(s)) <= {0.0, 1.0} and 0.0 < s.mean() < 1.0
    for g in grads:  # surrogate gradients reach every layer, through two spiking layers
        assert np.all(np.isfinite(g.weight)) and np.abs(np.asarray(g.weight)).max() > 0


def test_one_step_surrogate_gradient_closed_form():
    """One step from rest: v = x W1 + b1, s = H(v - v_th), z = s W2 + b2. The surrogate gradient of
    L = sum(c * z) w.r.t. W1 is x^T [(c W2^T) * h(v - v_th)] with h the pseudo-derivative."""
    surrogate = sj.surrogates.FastSigmoid(slope=2.0)
    ws, bs = random_params(11, (4, 6, 3))
    net = sj.networks.FeedForward((4, 6, 3), sj.neurons.LIF(tau_mem=10.0), surrogate=surrogate,
                                  weights=ws, biases=bs)
    x = normal(12, (1, 2, 4))
    c = normal(13, (1, 2, 3))

    def loss(layers):
        model = eqx.tree_at(lambda n: n.layers, net, layers)
        return jnp.sum(c * sj.simulate(model, x, dt=1.0).readout)

    g = jax.grad(loss)(net.layers)
    v = x[0] @ ws[0] + bs[0]
    s = (v > 1.0).astype(float)
    h = 1.0 / (1.0 + 2.0 * np.abs(v - 1.0)) ** 2
    np.testing.assert_allclose(g[1].weight, s.T @ c[0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(g[0].weight, x[0].T @ ((c[0] @ ws[1].T) * h), rtol=1e-12, atol=1e-14)


def test_per_layer_neurons_and_rate_layers_relax_to_the_static_map():
    """Leaky rate layers driven by a constant input settle on the static MLP's activities (limit case),
    both clock-driven and as an ODE."""
    ws, bs = random_params(14, (3, 4, 4, 2))
    ws = [w * 0.5 for w in ws]
    neurons = (LeakyRate(1.0, "tanh"), LeakyRate(2.0, "tanh"))
    leaky = sj.networks.FeedForward((3, 4, 4, 2), neurons, weights=ws, biases=bs)
    static = sj.networks.FeedForward((3, 4, 4, 2), "tanh", weights=ws, biases=bs)
    x = normal(15, (2, 3))
    steps = 400  # 40 time constants of the slowest layer at dt = 0.2
    clock = sj.simulate(leaky, jnp.broadcast_to(x, (steps, 2, 3)), dt=0.2)
    np.testing.assert_allclose(clock.readout[-1], static(x), rtol=0, atol=1e-10)
    ode = sj.simulate(leaky, jnp.broadcast_to(x, (4, 2, 3)), t1=80.0, method="ode", solver=diffrax.Tsit5(),
                      stepsize_controller=diffrax.PIDController(rtol=1e-10, atol=1e-12), max_steps=10_000)
    np.testing.assert_allclose(ode.readout[-1], static(x), rtol=0, atol=1e-9)
    np.testing.assert_allclose(ode.spikes[-1], static.forward_layers(x)[1].rate, rtol=0, atol=1e-9)


def test_trainable_fields_and_projections_tuple():
    net = sj.networks.FeedForward(SIZES, "relu", key=jax.random.key(0))
    assert isinstance(net.layers, tuple) and all(isinstance(p, sj.synapses.Dense) for p in net.layers)
    params = sj.parameters.params(net)
    assert all(p.weight is not None for p in params.layers) and all(b is not None for b in params.biases)
    frozen = sj.networks.FeedForward(SIZES, "relu", key=jax.random.key(0), trainable=("layers",))
    assert all(b is None for b in sj.parameters.params(frozen).biases)
    assert isinstance(net.neurons[0], InstantaneousRate) and len(net.neurons) == 2


def test_bad_inputs_give_clear_errors():
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="'gelu'"):
        sj.networks.FeedForward(SIZES, "gelu", key=key)
    with pytest.raises(ValueError, match="at least"):
        sj.networks.FeedForward((4,), key=key)
    with pytest.raises(ValueError, match=r"sizes\[1\]"):
        sj.networks.FeedForward((4, 0, 2), key=key)
    with pytest.raises(ValueError, match="2 neurons for 1 hidden"):
        sj.networks.FeedForward((4, 3, 2), (LeakyRate(), LeakyRate()), key=key)
    with pytest.raises(ValueError, match=r"weights\[1\] has shape \(3, 3\)"):
        sj.networks.FeedForward((4, 3, 2), weights=[None, jnp.zeros((3, 3))], key=key)
    with pytest.raises(ValueError, match="weights has 1 entries"):
        sj.networks.FeedForward((4, 3, 2), weights=[jnp.zeros((4, 3))], key=key)
    with pytest.raises(ValueError, match="key"):
        sj.networks.FeedForward((4, 3, 2))
    with pytest.raises(TypeError, match="does not spike"):
        sj.networks.FeedForward((4, 3, 2), "relu", surrogate=sj.surrogates.FastSigmoid(), key=key)
    with pytest.raises(ValueError, match="'w_in'"):
        sj.networks.FeedForward((4, 3, 2), key=key, trainable=("w_in",))
    weights = [np.ones((4, 3)), np.ones((3, 2))]
    net = sj.networks.FeedForward((4, 3, 2), weights=weights)
    with pytest.raises(ValueError, match="n_in=4"):
        sj.simulate(net, jnp.zeros((1, 2, 5)), dt=1.0)
    with pytest.raises(ValueError, match=r"expected \[\.\.\., 4\]"):
        net.forward_layers(jnp.zeros((2, 5)))
    spiking = sj.networks.FeedForward((4, 3, 2), sj.neurons.LIF(), weights=weights)
    with pytest.raises(NotImplementedError, match="spiking"):
        sj.simulate(spiking, jnp.zeros((2, 4)), t1=2.0, method="ode")


@pytest.mark.parametrize("build, first_allowed", [
    (lambda t: sj.networks.FeedForward((2, 3, 1), key=jax.random.key(0), trainable=t), "'layers'"),
    (lambda t: sj.networks.SpikingFeedForward((2, 3, 1), sj.neurons.QIF(), key=jax.random.key(0), trainable=t),
     "'layers'"),
    (lambda t: sj.networks.RSNN(2, 3, 1, key=jax.random.key(0), trainable=t), "'w_in'"),
    (lambda t: sj.networks.RateRNN(2, 3, 1, key=jax.random.key(0), trainable=t), "'w_in'"),
])
def test_unknown_trainable_field_is_named_with_the_allowed_ones(unchecked, build, first_allowed):
    with pytest.raises(ValueError, match=rf"unknown trainable field\(s\) \['w_hidden'\]; expected names among "
                                         rf"{first_allowed}"):
        build(("w_hidden",))
    assert build("layers" if first_allowed == "'layers'" else "w_in").trainable in (("layers",), ("w_in",))
