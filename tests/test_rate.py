"""Rate neurons and RateRNN: closed forms, an independent numpy recurrence, clear errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import simjax as sj
from simjax.neurons._rate import InstantaneousRate, LeakyRate

NUMPY_ACTIVATIONS = {
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0.0),
    "softplus": lambda x: np.log1p(np.exp(x)),
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "linear": lambda x: x,
}


@pytest.mark.parametrize("name", sorted(NUMPY_ACTIVATIONS))
def test_activations(name):
    x = np.linspace(-3.0, 3.0, 13)
    np.testing.assert_allclose(LeakyRate(activation=name).output(jnp.asarray(x)), NUMPY_ACTIVATIONS[name](x),
                               rtol=1e-12, atol=1e-14)


def test_leaky_rate_step_is_exact_for_constant_drive():
    tau = jnp.array([2.0, 5.0, 10.0])
    neuron = LeakyRate(tau=tau, activation="tanh")
    x0, drive, dt, n = np.array([1.0, -0.5, 0.2]), np.array([0.3, 2.0, -1.0]), 0.7, 9
    x = jnp.asarray(x0)
    for _ in range(n):
        x, r = neuron.step(x, jnp.asarray(drive), dt)
    closed = drive + (x0 - drive) * np.exp(-n * dt / np.asarray(tau))  # x(t) of tau dx/dt = -x + drive
    np.testing.assert_allclose(x, closed, rtol=1e-13)
    np.testing.assert_allclose(r, np.tanh(closed), rtol=1e-13)
    # One long step equals many short ones (exactness, not just consistency).
    x_long, _ = neuron.step(jnp.asarray(x0), jnp.asarray(drive), n * dt)
    np.testing.assert_allclose(x_long, closed, rtol=1e-13)
    np.testing.assert_allclose(neuron.vector_field(0.0, jnp.asarray(x0), jnp.asarray(drive)),
                               (drive - x0) / np.asarray(tau), rtol=1e-14)


def numpy_rate_rnn(net, inputs, dt, tau, tau_out, phi, leaky=True):
    """Independent reference: the clock-driven RateRNN equations in plain numpy."""
    w_in, w_rec, w_out = (np.asarray(p.weight) for p in (net.w_in, net.w_rec, net.w_out))
    b_rec, b_out = np.asarray(net.b_rec), np.asarray(net.b_out)
    a = np.exp(-dt / tau) if leaky else 0.0
    kappa = np.exp(-dt / tau_out) if tau_out is not None else 0.0
    x = np.zeros(inputs.shape[1:-1] + (w_rec.shape[0],))
    o = np.zeros(inputs.shape[1:-1] + (w_out.shape[1],))
    xs, os = [], []
    for u in np.asarray(inputs):
        drive = u @ w_in + phi(x) @ w_rec + b_rec
        x = a * x + (1 - a) * drive
        o = kappa * o + (1 - kappa) * (phi(x) @ w_out + b_out)
        xs.append(x)
        os.append(o)
    return np.stack(xs), np.stack(os)


@pytest.mark.parametrize("tau_out", [None, 4.0])
def test_rate_rnn_matches_numpy_recurrence(tau_out):
    rng = np.random.default_rng(0)
    net = sj.networks.RateRNN(3, 7, 2, neuron=LeakyRate(tau=5.0, activation="tanh"), key=jax.random.key(0), g=1.5,
                              tau_out=tau_out, b_rec=0.1 * rng.normal(size=7), b_out=jnp.array([0.5, -1.0]))
    inputs = rng.normal(size=(12, 2, 3))
    out = sj.simulate(net, inputs, dt=0.5)
    x_ref, o_ref = numpy_rate_rnn(net, inputs, 0.5, 5.0, tau_out, np.tanh)
    np.testing.assert_allclose(out.v, x_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out.spikes, np.tanh(x_ref), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out.readout, o_ref, rtol=1e-12, atol=1e-12)


def test_instantaneous_units_give_an_elman_rnn():
    net = sj.networks.RateRNN(3, 7, 2, neuron=InstantaneousRate("relu"), key=jax.random.key(1), g=0.9)
    inputs = np.random.default_rng(2).normal(size=(6, 3, 3))
    out = sj.simulate(net, inputs, dt=1.0)
    relu = NUMPY_ACTIVATIONS["relu"]
    x_ref, o_ref = numpy_rate_rnn(net, inputs, 1.0, 1.0, None, relu, leaky=False)
    np.testing.assert_allclose(out.v, x_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out.readout, o_ref, rtol=1e-12, atol=1e-12)
    with pytest.raises(NotImplementedError, match="LeakyRate"):
        sj.simulate(net, inputs, t1=6.0, method="ode")


def test_default_recurrent_weights_have_strength_g():
    n, g = 64, 1.5
    net = sj.networks.RateRNN(3, n, 2, key=jax.random.key(3), g=g)
    w = np.asarray(net.w_rec.weight)
    # Entries ~ N(0, g^2 / n): over n^2 = 4096 entries the sample std is within 5 % (4.5 standard
    # errors) of g / sqrt(n), and the mean within 5 standard errors g / n^1.5 of zero.
    assert abs(w.std() * np.sqrt(n) / g - 1.0) < 0.05
    assert abs(w.mean()) < 5 * g / n ** 1.5
    zero = sj.networks.RateRNN(3, n, 2, key=jax.random.key(3), g=0.0)
    assert np.all(np.asarray(zero.w_rec.weight) == 0.0)


def test_gradient_of_clock_driven_rate_rnn_matches_finite_differences():
    net = sj.networks.RateRNN(3, 7, 2, key=jax.random.key(4), tau_out=3.0)
    rng = np.random.default_rng(5)
    inputs = rng.normal(size=(8, 2, 3))

    @jax.jit
    def loss(w_rec, b_rec):
        n = sj.networks.RateRNN(3, 7, 2, w_in=net.w_in, w_rec=w_rec, w_out=net.w_out, b_rec=b_rec, tau_out=3.0)
        return jnp.sum(sj.simulate(n, inputs, dt=1.0).readout ** 2)

    w, b = net.w_rec.weight, net.b_rec + 0.1
    g_w, g_b = jax.grad(loss, argnums=(0, 1))(w, b)
    eps = 1e-6
    d_w, d_b = rng.normal(size=w.shape), rng.normal(size=b.shape)
    fd = (loss(w + eps * d_w, b + eps * d_b) - loss(w - eps * d_w, b - eps * d_b)) / (2 * eps)
    np.testing.assert_allclose(jnp.vdot(g_w, d_w) + jnp.vdot(g_b, d_b), fd, rtol=1e-7)


def test_design_example_and_params():
    rate = LeakyRate(tau=10.0, activation="tanh")
    rate_net = sj.networks.RateRNN(n_in=3, n_rec=64, n_out=2, neuron=rate, key=jax.random.key(1))
    out = sj.simulate(rate_net, jnp.ones((5, 4, 3)), dt=1.0)
    assert out.spikes.shape == (5, 4, 64) and out.v.shape == (5, 4, 64) and out.readout.shape == (5, 4, 2)
    params = sj.parameters.params(rate_net)
    assert params.neuron.tau is None and params.w_rec.weight is not None and params.b_rec is not None
    frozen = sj.networks.RateRNN(3, 64, 2, key=jax.random.key(1), trainable=("w_out",))
    assert sj.parameters.params(frozen).w_rec.weight is None


def test_bad_inputs_give_clear_errors(unchecked):
    with pytest.raises(ValueError, match=r"'gelu'.*'tanh'"):
        LeakyRate(activation="gelu")
    with pytest.raises(TypeError, match="activation"):
        LeakyRate(activation=3)
    with pytest.raises(ValueError, match="tau"):
        LeakyRate(tau=-1.0)
    with pytest.raises(ValueError, match="tau"):
        LeakyRate(tau=jnp.array([1.0, 0.0]))
    with pytest.raises(ValueError, match="'swish'"):
        InstantaneousRate("swish")
    net = sj.networks.RateRNN(3, 7, 2, key=jax.random.key(0))
    with pytest.raises(ValueError, match="n_in=3"):
        sj.simulate(net, jnp.zeros((5, 2, 4)), dt=1.0)
    with pytest.raises(ValueError, match=r"w_rec has shape \(7, 5\)"):
        sj.networks.RateRNN(3, 7, 2, key=jax.random.key(0), w_rec=jnp.zeros((7, 5)))
    with pytest.raises(ValueError, match="n_rec"):
        sj.networks.RateRNN(3, 0, 2, key=jax.random.key(0))
    with pytest.raises(ValueError, match="key"):
        sj.networks.RateRNN(3, 4, 2)
    with pytest.raises(ValueError, match="'w_hidden'"):
        sj.networks.RateRNN(3, 7, 2, key=jax.random.key(0), trainable=("w_hidden",))
    with pytest.raises(TypeError, match="rate neuron"):
        sj.networks.RateRNN(3, 7, 2, neuron=sj.neurons.LIF(), key=jax.random.key(0))
    with pytest.raises(ValueError, match="tau_out"):
        sj.networks.RateRNN(3, 7, 2, key=jax.random.key(0), tau_out=0.0)
