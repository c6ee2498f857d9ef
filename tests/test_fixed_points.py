"""Fixed points by damped Newton: closed forms (linear network, rank-one tanh network), residuals,
and stability checked against the Jacobian's closed form and against simulation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simjax import simulate
from simjax.analysis import find_fixed_points, network_field
from simjax.networks import RSNN, FullUpdate, RateRNN
from simjax.neurons import LIF, LeakyRate
from simjax.synapses import Dense
from simjax.tasks import FixedPointMemory, orthonormal_patterns

N = 20


def rate_net(w_rec_j, tau=1.0, activation="tanh", b_rec=None):
    """A RateRNN with coupling `J` (`post x pre`) and identity input weights."""
    return RateRNN(N, N, 1, LeakyRate(tau=tau, activation=activation), w_in=Dense(jnp.eye(N)), w_rec=w_rec_j.T,
                   w_out=jnp.zeros((N, 1)), b_rec=b_rec)


def test_linear_network_closed_form():
    key_j, key_b, key_x = jax.random.split(jax.random.key(0), 3)
    j = 0.6 * jax.random.normal(key_j, (N, N)) / jnp.sqrt(N)
    b = jax.random.normal(key_b, (N,))
    tau = 2.0
    net = rate_net(j, tau=tau, activation="linear", b_rec=b)
    fp = find_fixed_points(net, jax.random.normal(key_x, (3, N)), iterations=5)
    exact = np.linalg.solve(np.eye(N) - np.asarray(j), np.asarray(b))  # 0 = -x + J x + b
    np.testing.assert_allclose(fp.x, np.broadcast_to(exact, (3, N)), rtol=1e-10, atol=1e-12)
    assert bool(jnp.all(fp.converged)) and float(fp.residual.max()) < 1e-12
    eig = np.sort_complex(np.linalg.eigvals((np.asarray(j) - np.eye(N)) / tau))
    np.testing.assert_allclose(np.sort_complex(np.asarray(fp.eigenvalues[0])), eig, atol=1e-10)
    assert bool(jnp.all(fp.stable)) == bool(np.all(eig.real < 0))


def rank_one(m=2.0, g=0.0):
    a = orthonormal_patterns(N, 1, key=jax.random.key(1))[0]
    chi = jax.random.normal(jax.random.key(2), (N, N))
    j = m * jnp.outer(a, a) / N + g * chi / jnp.sqrt(N)
    return a, j


def test_rank_one_tanh_network_fixed_points_and_stability():
    m = 2.0
    a, j = rank_one(m)
    net = rate_net(j)
    # Start from the end of a trial cued along a: Newton lands on x = kappa a with
    # kappa = m <a tanh(kappa a)>, a stable fixed point; the origin is a saddle with eigenvalue m - 1.
    task = FixedPointMemory(a, duration=15.0, window=(5.0, 15.0), dt=0.1)
    end = task.forward(net, task.sample(jax.random.key(0), 1)).final_state.neuron[0]
    fp = find_fixed_points(net, jnp.stack([end, jnp.zeros(N)]), iterations=30)
    assert float(fp.residual.max()) < 1e-8 and bool(jnp.all(fp.converged))
    kappa = float(fp.x[0] @ a / N)
    np.testing.assert_allclose(fp.x[0], kappa * a, atol=1e-10)  # along the pattern
    np.testing.assert_allclose(kappa, m * float(a @ jnp.tanh(kappa * a)) / N, rtol=1e-10)
    assert kappa > 0.1 and bool(fp.stable[0])
    # Jacobian at the origin: -I + J (phi'(0) = 1): eigenvalues m - 1 and -1 (N - 1 times).
    np.testing.assert_allclose(fp.x[1], 0.0, atol=1e-14)
    np.testing.assert_allclose(fp.max_real[1], m - 1.0, rtol=1e-10)
    assert not bool(fp.stable[1])


def test_stability_agrees_with_simulation_with_random_connectivity():
    a, j = rank_one(m=2.5, g=0.8)
    net = rate_net(j)
    task = FixedPointMemory(a, duration=30.0, window=(5.0, 30.0), dt=0.1)
    end = task.forward(net, task.sample(jax.random.key(0), 1)).final_state.neuron[0]
    fp = find_fixed_points(net, end[None], iterations=30)
    assert float(fp.residual[0]) < 1e-8 and bool(fp.stable[0])
    x_star = fp.x[0]
    np.testing.assert_allclose(network_field(net)(x_star), 0.0, atol=1e-8)
    # A small kick decays back to the fixed point at the rate of the slowest eigenvalue (or faster).
    kick = 1e-3 * jax.random.normal(jax.random.key(5), (N,))
    state = net.init(None, (1,))
    state = type(state)(neuron=(x_star + kick)[None], readout=state.readout)
    t = 20.0
    out = simulate(net, jnp.zeros((int(t / 0.05), 1, N)), dt=0.05, state=state)
    dist = float(jnp.linalg.norm(out.final_state.neuron[0] - x_star))
    assert dist < 1e-3 * np.exp(0.9 * float(fp.max_real[0]) * t) * 10


def test_newton_from_a_far_start_still_reaches_a_fixed_point():
    a, j = rank_one(m=2.0, g=0.5)
    net = rate_net(j)
    fp = find_fixed_points(net, 3.0 * jax.random.normal(jax.random.key(7), (4, N)), iterations=60, eigenvalues=False)
    assert float(fp.residual.max()) < 1e-8 and fp.eigenvalues is None


def test_learned_coupling_network_and_errors():
    a, j = rank_one(m=2.0)
    net = RateRNN(N, N, 1, LeakyRate(tau=1.0), w_in=Dense(jnp.eye(N)), w_rec=FullUpdate(jnp.zeros((N, N)), j.T),
                  w_out=jnp.zeros((N, 1)))
    fp = find_fixed_points(net, 0.7 * a[None])
    assert float(fp.residual[0]) < 1e-8 and bool(fp.stable[0])
    spiking = RSNN(n_in=2, n_rec=3, n_out=1, neuron=LIF(), key=jax.random.key(0))
    with pytest.raises(TypeError, match="neuron"):
        find_fixed_points(spiking, jnp.zeros((1, 3)))
