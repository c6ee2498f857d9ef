"""The reduced 2x2 model: exact reduction of the g = 0 network to the plane of the two patterns, its
hand-written adjoint gradient against autodiff of the N-dimensional network and finite differences,
and its gradient flow against the network's gradient flow and small-step gradient descent."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from simjax._fit.fit import fit
from simjax.analysis import ReducedModel, ReducedTask, integrate_gradient_flow, learning_modes, plane_matrix
from simjax.networks import FullUpdate, RateRNN, SubspaceUpdate
from simjax.neurons import LeakyRate
from simjax.rules import Exact
from simjax.synapses import Dense
from simjax.tasks import FixedPointMemory, orthonormal_patterns

N = 24
M = jnp.array([[1.6, 0.3], [-0.5, 0.7]])


def setup(dt=0.2, duration=12.0, which=1):
    a, b = orthonormal_patterns(N, 2, key=jax.random.key(3))
    basis = jnp.stack([a, b], 1)
    task = FixedPointMemory((a, b)[which], window=(5.0, duration), duration=duration, dt=dt)
    return basis, task


def network(basis, m, structure="plane"):
    zeros = jnp.zeros((N, N))
    w_rec = SubspaceUpdate(zeros, basis, m) if structure == "plane" else FullUpdate(zeros, (basis @ m @ basis.T / N).T)
    return RateRNN(N, N, 1, LeakyRate(tau=1.0), w_in=Dense(jnp.eye(N)), w_rec=w_rec, w_out=jnp.zeros((N, 1)),
                   trainable=("w_rec",))


def test_network_stays_in_the_plane_and_matches_the_reduced_dynamics():
    basis, task = setup()
    batch = task.sample(jax.random.key(0), 1)
    out = task.forward(network(basis, M), batch)
    x = out.v[:, 0]
    kappa = ReducedModel(basis).run(M, ReducedTask.from_task(task, basis))[:, 0]
    np.testing.assert_allclose(x @ basis / N, kappa, rtol=1e-12, atol=1e-13)
    # x(t) = P kappa(t): nothing outside the plane.
    np.testing.assert_allclose(x, kappa @ basis.T, atol=1e-12)
    # The task's readout is r . Phi(kappa).
    np.testing.assert_allclose(task.readout(out)[:, 0], ReducedModel(basis).rates(kappa) @ basis.T @ task.pattern / N,
                               rtol=1e-12, atol=1e-13)


@eqx.filter_jit
def three_gradients(basis, task):
    """The hand adjoint of the 2x2 model, autodiff of the network learning M, and the plane part of
    autodiff of the network learning a full-rank Delta J."""
    loss, grad = ReducedModel(basis).gradient(M, ReducedTask.from_task(task, basis, check=False))
    batch = task.sample(jax.random.key(0), 1)
    net_loss, updates, _ = Exact()(network(basis, M), task, batch, None)
    _, full, _ = Exact()(network(basis, M, "full"), task, batch, None)
    return loss, grad, net_loss, updates.w_rec.m, plane_matrix(full.w_rec.delta.T, basis)


def test_hand_adjoint_equals_network_gradient_restricted_to_the_plane():
    for which in (0, 1):
        basis, task = setup(which=which)
        loss, grad, net_loss, net_grad, full_grad = three_gradients(basis, task)
        np.testing.assert_allclose(net_loss, loss, rtol=1e-12)
        np.testing.assert_allclose(net_grad, grad, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(full_grad, grad, rtol=1e-9, atol=1e-12)
        assert float(jnp.max(jnp.abs(grad))) > 1e-3  # a non-trivial gradient


def test_hand_adjoint_matches_finite_differences():
    basis, task = setup(dt=0.25)
    model, reduced_task = ReducedModel(basis), ReducedTask.from_task(task, basis)
    _, grad = model.gradient(M, reduced_task)
    eps = 1e-6
    shifts = eps * jnp.eye(4).reshape(4, 2, 2)
    losses = jax.jit(jax.vmap(lambda m: model.loss(m, reduced_task)))
    fd = np.asarray((losses(M + shifts) - losses(M - shifts)) / (2 * eps)).reshape(2, 2)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-9)


def test_gradient_flow_matches_the_network_flow_and_small_step_gradient_descent():
    basis, task = setup(dt=0.25, duration=10.0)
    reduced_task = ReducedTask.from_task(task, basis)
    m0 = jnp.array([[1.4, 0.0], [0.0, 0.2]])
    ts = jnp.array([0.5, 1.0, 3.0])
    flow = ReducedModel(basis).gradient_flow(m0, reduced_task, ts)
    batch = task.sample(jax.random.key(0), 1)

    def network_gradient(m):
        return Exact()(network(basis, m), task, batch, None)[1].w_rec.m

    direct = integrate_gradient_flow(network_gradient, m0, ts)
    np.testing.assert_allclose(flow, direct, rtol=1e-6, atol=1e-8)
    # Learning happens: M moves and the loss falls along the flow.
    model = ReducedModel(basis)
    losses = [float(model.loss(m, reduced_task)) for m in (m0, *flow)]
    assert np.all(np.diff(losses) < 0) and float(jnp.max(jnp.abs(flow[-1] - m0))) > 0.05
    # `fit` with plain gradient descent is the Euler method of the flow: error O(learning rate).
    errors = []
    for steps in (10, 20):
        trained, _ = fit(network(basis, m0), Exact(), task, optax.sgd(float(ts[1]) / steps), steps=steps,
                         key=jax.random.key(0), batch_size=1)
        errors.append(float(jnp.max(jnp.abs(trained.w_rec.m - flow[1]))))
    assert errors[1] < errors[0] < 0.05
    np.testing.assert_allclose(errors[0] / errors[1], 2.0, rtol=0.15)  # first order


def test_learning_modes_closed_forms():
    m_a = jnp.array([[1.5, 0.0], [0.0, 0.0]])
    theta = 0.3
    rotation = jnp.array([[0.0, -theta], [theta, 0.0]])
    modes = learning_modes(m_a, m_a + rotation)
    np.testing.assert_allclose(modes["rotation"], theta)
    np.testing.assert_allclose(modes["growth"], 0.0)
    assert modes["rotation_dominates"] == 1.0
    modes = learning_modes(m_a, m_a + jnp.diag(jnp.array([0.0, 1.2])))
    np.testing.assert_allclose(modes["rotation"], 0.0)
    np.testing.assert_allclose(modes["growth"], 1.2)
    assert modes["rotation_dominates"] == 0.0


def test_plane_matrix_recovers_m_and_reduced_task_checks_the_plane():
    basis, task = setup()
    np.testing.assert_allclose(plane_matrix(basis @ M @ basis.T / N, basis), M, rtol=1e-12, atol=1e-13)
    other = orthonormal_patterns(N, 3, key=jax.random.key(3))[2]
    off_plane = FixedPointMemory(other, duration=12.0, window=(5.0, 12.0), dt=0.2)
    with pytest.raises(ValueError, match="not in the span"):
        ReducedTask.from_task(off_plane, basis)
    with pytest.raises(ValueError, match="basis"):
        ReducedModel(jnp.zeros((N,)))
