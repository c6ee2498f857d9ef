"""QIF (theta) neuron: closed-form flow, spike times and kicks against the textbook solutions of
`dV/dt = V^2 + I` (V = tan(theta/2)), finite-difference gradients, clock-driven convergence."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import simjax as sj
from simjax.neurons import QIF, QIFState

TAU = 2.5


def v_exact(v0, current, t):
    """Solution of dV/ds = V^2 + I (s = t / TAU) before the first blow-up, written independently."""
    s = t / TAU
    if current > 0:
        w = np.sqrt(current)
        return w * np.tan(w * s + np.arctan(v0 / w))
    if current < 0:
        k = np.sqrt(-current)
        if abs(v0) < k:
            return -k * np.tanh(k * s + np.arctanh(-v0 / k))
        return -k / np.tanh(k * s + np.arctanh(-k / v0))
    return v0 / (1.0 - v0 * s)


def first_spike_exact(theta0, current):
    v0 = np.tan(theta0 / 2)
    if current > 0:  # V reaches +inf when w s + atan(V0 / w) = pi / 2
        w = np.sqrt(current)
        return TAU * (np.arctan(w / v0) if v0 > 0 else np.pi / 2 + np.arctan(-v0 / w)) / w
    if current < 0:
        k = np.sqrt(-current)
        return TAU * np.arctanh(k / v0) / k if v0 > k else np.inf
    return TAU / v0 if v0 > 0 else np.inf


@eqx.filter_jit
def call(neuron, method, *args):
    """`neuron.method(*args)`, compiled (one compilation per method and shapes)."""
    return getattr(neuron, method)(*args)


CASES = [(1.3, -np.pi), (1.3, -1.2), (1.3, 0.0), (1.3, 2.0), (0.04, 0.3), (1e-6, 1.0), (0.0, 0.8), (0.0, -0.5),
         (-0.5, 2.0), (-0.5, 1.0), (-0.5, -0.4), (-3.0, 3.0)]


@jax.jit
def _spike_time(current, theta0):
    return QIF(tau_mem=TAU, bias=current).time_to_spike(QIFState(theta0), jnp.inf)


def test_time_to_spike_closed_form():
    currents, thetas = (jnp.array(x) for x in zip(*CASES))
    got = np.asarray(jax.vmap(_spike_time)(currents, thetas))
    want = np.array([first_spike_exact(th, i) for i, th in CASES])
    assert np.array_equal(np.isinf(got), np.isinf(want)), (got, want)
    fin = np.isfinite(want)
    np.testing.assert_allclose(got[fin], want[fin], rtol=1e-9)
    # The period from theta = -pi, and the horizon cut-off.
    for current in (0.7, 2.0):
        assert abs(float(_spike_time(jnp.array(current), jnp.array(-np.pi))) - TAU * np.pi / np.sqrt(current)) < 1e-9
    neuron = QIF(tau_mem=TAU, bias=1.3)
    out = call(neuron, "time_to_spike", QIFState(jnp.array([0.0, np.pi + 1e-3, 0.0])), jnp.array([3.0, 3.0, 4.0]))
    want = first_spike_exact(0.0, 1.3)
    assert 3.0 < want < 4.0
    np.testing.assert_allclose(out, [np.inf, 0.0, want], rtol=1e-9)


def test_time_to_spike_gradients_match_finite_differences():
    grad = jax.jit(jax.vmap(jax.grad(_spike_time, argnums=(0, 1))))
    fin = [(i, th) for i, th in CASES if np.isfinite(first_spike_exact(th, i))]
    currents, thetas = (jnp.array(x) for x in zip(*fin))
    d_current, d_theta = (np.asarray(g) for g in grad(currents, thetas))
    h = 1e-6
    for n, (current, theta) in enumerate(fin):
        hi = max(abs(current), 1e-2) * 1e-5
        fd_i = (first_spike_exact(theta, current + hi) - first_spike_exact(theta, current - hi)) / (2 * hi)
        if theta - h > -np.pi:
            fd_t = (first_spike_exact(theta + h, current) - first_spike_exact(theta - h, current)) / (2 * h)
        else:  # one-sided (second order) at theta = -pi, the edge of the phase interval
            f = [first_spike_exact(theta + j * h, current) for j in range(3)]
            fd_t = (-3 * f[0] + 4 * f[1] - f[2]) / (2 * h)
        np.testing.assert_allclose(d_current[n], fd_i, rtol=1e-6, atol=1e-8, err_msg=f"d/dI at {current, theta}")
        np.testing.assert_allclose(d_theta[n], fd_t, rtol=1e-6, atol=1e-8, err_msg=f"d/dtheta at {current, theta}")


def test_free_flow_closed_form_and_vector_field():
    t = 0.37
    cases = [(i, th) for i, th in CASES if first_spike_exact(th, i) > t and abs(th) < np.pi]
    currents, thetas = (jnp.array(x) for x in zip(*cases))
    flow = jax.jit(jax.vmap(lambda i, th, dt: QIF(tau_mem=TAU, bias=i).free_flow(QIFState(th), dt).theta, (0, 0, None)))
    got = np.asarray(flow(currents, thetas, jnp.array(t)))
    want = np.array([2 * np.arctan(v_exact(np.tan(th / 2), i, t)) for i, th in cases])
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    # d/dt of the flow at t = 0 is the vector field.
    _, rate = jax.jvp(lambda dt: flow(currents, thetas, dt), (jnp.array(0.0),), (jnp.array(1.0),))
    one = lambda i, th: QIF(tau_mem=TAU, bias=i).vector_field(0.0, QIFState(th), jnp.array(0.0)).theta
    field = jax.jit(jax.vmap(one))
    np.testing.assert_allclose(rate, field(currents, thetas), rtol=1e-9, atol=1e-12)


def test_flow_through_spikes_is_unwrapped_and_periodic():
    current = 1.7
    neuron = QIF(tau_mem=TAU, bias=current)
    period = TAU * np.pi / np.sqrt(current)
    theta0 = jnp.array(-0.4)
    theta = call(neuron, "free_flow", QIFState(jnp.full(3, theta0)), jnp.array([0.2, period + 0.2, 3 * period + 0.2]))
    np.testing.assert_allclose(theta.theta - theta.theta[0], [0.0, 2 * np.pi, 6 * np.pi], atol=1e-9)
    # Flowing exactly to the spike lands on pi; reset maps it to -pi.
    t_star = call(neuron, "time_to_spike", QIFState(theta0), jnp.inf)
    at = call(neuron, "free_flow", QIFState(theta0), t_star)
    assert abs(float(call(neuron, "threshold", at))) < 1e-12
    assert abs(float(call(neuron, "reset", at).theta) + np.pi) < 1e-12


def test_gradients_are_finite_in_every_regime():
    def loss(current, theta, w):
        neuron = QIF(tau_mem=TAU, bias=current)
        flowed = neuron.receive(neuron.free_flow(QIFState(theta), jnp.array(0.9)), w)
        t = neuron.time_to_spike(QIFState(theta), jnp.array(5.0))
        return flowed.theta + jnp.where(jnp.isfinite(t), t, 0.0)

    g = jax.jit(jax.vmap(jax.grad(loss, argnums=(0, 1, 2))))
    currents = jnp.array([0.0, 0.0, 0.0, 1e-14, -1e-14, 2.0, -2.0, 0.0])
    thetas = jnp.array([np.pi, -np.pi, 0.0, -np.pi, np.pi, np.pi, -np.pi, 1e-200])
    for out in g(currents, thetas, jnp.full(8, 0.3)):
        assert np.all(np.isfinite(np.asarray(out)))


@pytest.mark.parametrize("weight", [0.6, -2.5])
def test_receive_is_a_voltage_kick(weight):
    thetas = jnp.array([-3.0, -1.0, 0.2, 2.9, np.pi, np.pi + 0.1])
    out = np.asarray(call(QIF(), "receive", QIFState(thetas), jnp.array(weight)).theta)
    np.testing.assert_allclose(np.tan(out[:4] / 2), np.tan(np.asarray(thetas[:4]) / 2) + weight, rtol=1e-12)
    # At theta = pi (V infinite) a kick changes nothing; past pi it stays past pi.
    assert abs(out[4] - np.pi) < 1e-12 and out[5] > np.pi


STEPS = 30_000


@eqx.filter_jit
def _clock_spikes(neuron, drive, dt):
    def body(state, x):
        return neuron.step(state, x, dt)

    return jax.lax.scan(body, neuron.init(None, ()), drive)[1]


def _clock_spike_times(neuron, dt, t1, kicks=()):
    """End-of-step times of the spikes of a clock-driven run up to `t1` (one compilation)."""
    drive = np.zeros(STEPS)
    for k, w in kicks:
        drive[k] = w
    spikes = np.asarray(_clock_spikes(neuron, jnp.asarray(drive), jnp.asarray(dt)))
    times = (np.flatnonzero(spikes) + 1) * dt
    assert t1 <= STEPS * dt
    return times[times <= t1]


def test_clock_driven_spike_times_converge_to_exact():
    current, t1 = 1.3, 30.0
    neuron = QIF(tau_mem=TAU, bias=current)
    period = TAU * np.pi / np.sqrt(current)  # from init (theta = -pi) every spike is a period apart
    exact = period * np.arange(1, int(t1 // period) + 1)
    errors = []
    for dt in (0.1, 0.01, 0.001):
        times = _clock_spike_times(neuron, dt, t1)
        assert len(times) == len(exact)
        err = times - exact
        assert np.all(err >= -1e-9) and np.all(err < dt + 1e-9)  # the step that contains the spike
        errors.append(np.max(err))
    assert errors[2] < errors[1] < errors[0]


def test_clock_step_matches_event_solution_with_a_kick():
    """A kick at the end of step k: the next spike agrees with flow + receive + time_to_spike."""
    neuron = QIF(tau_mem=TAU, bias=-0.3)  # excitable: only the kick makes it spike
    dt, k, w = 0.001, 500, 1.4
    theta0 = neuron.init(None, ())
    at_kick = call(neuron, "receive", call(neuron, "free_flow", theta0, jnp.array((k + 1) * dt)), jnp.array(w))
    t_exact = (k + 1) * dt + float(call(neuron, "time_to_spike", at_kick, jnp.inf))
    times = _clock_spike_times(neuron, dt, 8.0, kicks=[(k, w)])
    assert len(times) == 1 and 0 <= times[0] - t_exact < dt
    assert abs(float(call(neuron, "vector_field", 0.0, theta0, jnp.array(0.0)).theta)) < 1e-12  # init is at rest


def test_init_and_bad_input():
    rest = call(QIF(bias=jnp.array([2.0, 0.0, -0.25])), "init", None, (3,)).theta
    np.testing.assert_allclose(rest, [-np.pi, 0.0, -2 * np.arctan(0.5)], rtol=1e-15)
    with pytest.raises(ValueError, match=r"tau_mem.*-1\."):
        QIF(tau_mem=-1.0)
    assert isinstance(sj.neurons.QIF(), sj.neurons.AbstractSpikingNeuron)
