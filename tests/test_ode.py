"""method="ode": diffrax solutions against matrix exponentials, clock-driven convergence, adjoints."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import simjax as sj
from simjax.neurons._rate import LeakyRate

TAU, TAU_OUT = 2.0, 1.5
N_IN, N_REC, N_OUT, STEPS, BATCH, DT = 2, 5, 3, 6, 2, 0.5
TIGHT = dict(t1=STEPS * DT, solver=diffrax.Tsit5(),
             stepsize_controller=diffrax.PIDController(rtol=1e-11, atol=1e-11))


@eqx.filter_jit
def ode(net, x, state, kwargs):
    out = sj.simulate(net, x, method="ode", state=state, **kwargs)
    return out.v, out.readout, out.info["ts"]


def network(seed, activation="linear", b_rec=True):
    rng = np.random.default_rng(seed)
    return sj.networks.RateRNN(
        N_IN, N_REC, N_OUT, neuron=LeakyRate(TAU, activation), tau_out=TAU_OUT,
        w_in=rng.normal(size=(N_IN, N_REC)), w_rec=0.8 * rng.normal(size=(N_REC, N_REC)) / np.sqrt(N_REC),
        w_out=rng.normal(size=(N_REC, N_OUT)), b_rec=0.3 * rng.normal(size=N_REC) if b_rec else None,
        b_out=rng.normal(size=N_OUT))


def initial_state(x0):
    return sj.networks.RateRNNState(neuron=jnp.asarray(x0), readout=jnp.zeros((BATCH, N_OUT)))


def expm_reference(net, x0, inputs, dt):
    """Exact solution of the linear network with its leaky readout, per input interval.

    With the row vector s = [x, o, 1], ds/dt = s M (the constant 1 carries the input and the biases),
    so s((k+1) dt) = s(k dt) expm(M_k dt); expm from jax.scipy, everything else numpy."""
    w_in, w_rec, w_out = (np.asarray(p.weight) for p in (net.w_in, net.w_rec, net.w_out))
    b_rec, b_out = np.asarray(net.b_rec), np.asarray(net.b_out)
    n, m = N_REC, N_OUT
    s = np.concatenate([x0, np.zeros(m), [1.0]])
    xs, os = [], []
    for u in np.asarray(inputs):
        big = np.zeros((n + m + 1, n + m + 1))
        big[:n, :n] = (w_rec - np.eye(n)) / TAU
        big[:n, n:n + m] = w_out / TAU_OUT
        big[n:n + m, n:n + m] = -np.eye(m) / TAU_OUT
        big[-1, :n] = (u @ w_in + b_rec) / TAU
        big[-1, n:n + m] = b_out / TAU_OUT
        s = s @ np.asarray(jax.scipy.linalg.expm(jnp.asarray(big * dt)))
        xs.append(s[:n])
        os.append(s[n:n + m])
    return np.stack(xs), np.stack(os)


@pytest.mark.parametrize("with_input", [False, True])
def test_linear_network_matches_matrix_exponential(with_input):
    rng = np.random.default_rng(1)
    net = network(0, b_rec=with_input)
    x0 = rng.normal(size=(BATCH, N_REC))
    # Piecewise-constant input, different for each trial of the batch (or none at all).
    inputs = rng.normal(size=(STEPS, BATCH, N_IN)) if with_input else np.zeros((STEPS, BATCH, N_IN))
    v, readout, ts = ode(net, inputs, initial_state(x0), TIGHT)
    np.testing.assert_allclose(ts, DT * np.arange(1, STEPS + 1), rtol=0, atol=1e-14)
    for b in range(BATCH):
        x_ref, o_ref = expm_reference(net, x0[b], inputs[:, b], DT)
        np.testing.assert_allclose(v[:, b], x_ref, rtol=0, atol=1e-6)
        np.testing.assert_allclose(readout[:, b], o_ref, rtol=0, atol=1e-6)
    assert np.abs(np.asarray(v)).max() > 0.1  # far from the trivial solution


def test_clock_driven_converges_to_ode_at_first_order():
    rng = np.random.default_rng(2)
    net = network(3)
    inputs = rng.normal(size=(STEPS, BATCH, N_IN))
    state = initial_state(rng.normal(size=(BATCH, N_REC)))
    v_ref, z_ref, _ = ode(net, inputs, state, TIGHT)
    ref = np.concatenate([v_ref, z_ref], axis=-1)
    traces, errors = [], []
    for m in (4, 8, 16):
        out = sj.simulate(net, jnp.repeat(inputs, m, axis=0), dt=DT / m, state=state)
        traces.append(np.concatenate([out.v[m - 1::m], out.readout[m - 1::m]], axis=-1))
        errors.append(np.abs(traces[-1] - ref).max())
    ratios = np.array(errors[:-1]) / np.array(errors[1:])
    assert np.all((ratios > 1.7) & (ratios < 2.3)), (errors, ratios)  # error ~ dt
    # Richardson extrapolation cancels the O(dt) term: the limit is the ODE solution itself.
    richardson = np.abs(2 * traces[2] - traces[1] - ref).max()
    assert richardson < 0.1 * errors[-1], (richardson, errors)


def _loss(w, net, inputs, kwargs):
    net = eqx.tree_at(lambda n: n.w_rec.weight, net, w)
    out = sj.simulate(net, inputs, method="ode", dt=DT, **kwargs)
    return jnp.sum(out.readout ** 2) + jnp.sum(jnp.sin(out.v))


def test_gradients_two_adjoints_agree_with_finite_differences():
    rng = np.random.default_rng(4)
    net = network(5, activation="tanh")
    inputs = jnp.asarray(rng.normal(size=(4, BATCH, N_IN)))
    w = net.w_rec.weight
    base = dict(solver=diffrax.Tsit5(), dt0=DT / 4, max_steps=8)
    value_and_grad = eqx.filter_jit(jax.value_and_grad(_loss))
    recursive = dict(adjoint=diffrax.RecursiveCheckpointAdjoint(), **base)
    _, g_rc = value_and_grad(w, net, inputs, recursive)
    _, g_bs = value_and_grad(w, net, inputs, dict(adjoint=diffrax.BacksolveAdjoint(), **base))
    # Discretise-then-optimise and optimise-then-discretise agree up to the solver's (tiny) error.
    np.testing.assert_allclose(g_bs, g_rc, rtol=1e-6, atol=1e-8)
    eps = 1e-6
    for direction in rng.normal(size=(3, *w.shape)):
        plus, _ = value_and_grad(w + eps * direction, net, inputs, recursive)
        minus, _ = value_and_grad(w - eps * direction, net, inputs, recursive)
        np.testing.assert_allclose(jnp.vdot(g_rc, direction), (plus - minus) / (2 * eps), rtol=1e-6, atol=1e-8)
    assert np.abs(np.asarray(g_rc)).max() > 1e-3


def test_saveat_and_initial_state():
    rng = np.random.default_rng(6)
    net = network(0)
    inputs = rng.normal(size=(STEPS, BATCH, N_IN))
    state = initial_state(rng.normal(size=(BATCH, N_REC)))
    v_all, _, _ = ode(net, inputs, state, TIGHT)  # the same program as the matrix-exponential test
    saveat = diffrax.SaveAt(t0=True, ts=[1.0], t1=True)
    v_sel, _, ts = ode(net, inputs, state, dict(saveat=saveat, **TIGHT))
    np.testing.assert_allclose(ts, [0.0, 1.0, 3.0])
    np.testing.assert_allclose(v_sel[0], state.neuron)
    np.testing.assert_allclose(v_sel[1:], v_all[np.array([1, 5])], rtol=0, atol=1e-14)


def test_spiking_network_has_no_ode_form():
    net = sj.networks.RSNN(2, 4, 1, w_in=np.ones((2, 4)), w_rec=np.zeros((4, 4)), w_out=np.ones((4, 1)))
    with pytest.raises(NotImplementedError, match="continuous-time"):
        sj.simulate(net, jnp.zeros((3, 2)), t1=3.0, method="ode")


def test_bad_arguments_give_clear_errors():
    net = network(0)
    x = jnp.zeros((4, 1, 2))
    with pytest.raises(ValueError, match="t1"):
        sj.simulate(net, x, method="ode")
    with pytest.raises(ValueError, match="multiple"):
        sj.simulate(net, x, method="ode", dt=1.0, t1=2.5)
    with pytest.raises(ValueError, match="multiple"):
        sj.simulate(net, x, method="ode", dt=1.0, t1=5.0)  # longer than the input
    with pytest.raises(ValueError, match="grid"):
        sj.simulate(net, x, method="ode", dt=1.0, saveat=diffrax.SaveAt(ts=[0.5]))
    with pytest.raises(ValueError, match="dense"):
        sj.simulate(net, x, method="ode", dt=1.0, saveat=diffrax.SaveAt(dense=True))
    with pytest.raises(ValueError, match="n_in=2"):
        sj.simulate(net, jnp.zeros((4, 1, 3)), method="ode", dt=1.0)
    with pytest.raises(ValueError, match="max_steps"):
        sj.simulate(net, x, method="ode", dt=1.0, max_steps=0)
    with pytest.raises(ValueError, match="dt0"):
        sj.simulate(net, x, method="ode", dt=1.0, dt0=-0.1)
