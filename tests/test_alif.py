"""ALIF: adaptation as a sum of decaying jumps at known spike times, the threshold it implies,
equivalence with LIF at beta = 0, event-driven spike times against an independent root finder,
and bad input."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import brentq

from simjax.neurons import ALIF, LIF, ALIFState


@eqx.filter_jit
def run(neuron, drive, dt):
    """Scan `neuron.step` over `drive [time, ...]` from rest: `(states, spikes)` per step."""

    def body(state, x):
        state, s = neuron.step(state, x, dt)
        return state, (state, s)

    return jax.lax.scan(body, neuron.init(None, drive.shape[1:]), drive)[1]


@eqx.filter_jit
def call(neuron, method, *args):
    return getattr(neuron, method)(*args)


def test_adaptation_is_a_sum_of_decaying_jumps():
    """Kicks far above threshold at chosen steps: spikes exactly there, a(t) = sum rho^(n - k)."""
    tau_adapt, beta, dt, steps = 50.0, 0.2, 1.0, 100
    spike_steps, probe = [5, 20, 21, 60], 62
    rho = np.exp(-dt / tau_adapt)
    a_want = np.array([sum(rho ** (n - k) for k in spike_steps if k <= n) for n in range(steps)])
    # The threshold seen at step `probe`: v_th + beta rho a[probe - 1]. Probe it from both sides.
    threshold = 1.0 + beta * rho * a_want[probe - 1]
    drive = np.zeros((steps, 2))
    drive[spike_steps] = 10.0
    drive[probe] = [threshold - 1e-9, threshold + 1e-9]
    neuron = ALIF(tau_mem=20.0, v_th=1.0, tau_adapt=tau_adapt, beta=beta, reset="zero")
    states, spikes = run(neuron, jnp.asarray(drive), jnp.asarray(dt))
    spikes = np.asarray(spikes)
    expected = np.zeros((steps, 2))
    expected[spike_steps] = 1.0
    expected[probe, 1] = 1.0
    np.testing.assert_array_equal(spikes, expected)
    np.testing.assert_allclose(np.asarray(states.a)[:probe, 0], a_want[:probe], rtol=1e-12)
    np.testing.assert_allclose(np.asarray(states.a)[probe:, 1] - rho ** (np.arange(probe, steps) - probe),
                               a_want[probe:], rtol=1e-12)
    np.testing.assert_allclose(np.asarray(states.a)[probe:, 0], a_want[probe:], rtol=1e-12)
    # threshold(state) = v - (v_th + beta a).
    th = call(neuron, "threshold", jax.tree.map(lambda x: x[:, 0], states))
    np.testing.assert_allclose(th, np.asarray(states.v)[:, 0] - 1.0 - beta * a_want, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("alif_reset,lif_reset,tau_syn", [("subtract", "subtract", None),
                                                          ("subtract_base", "subtract", None),
                                                          ("zero", "zero", 5.0)])
def test_beta_zero_is_lif(alif_reset, lif_reset, tau_syn):
    kw = dict(tau_mem=15.0, v_th=1.0, v_reset=-0.1, t_ref=2.0, bias=0.02, tau_syn=tau_syn)
    alif = ALIF(beta=0.0, tau_adapt=100.0, reset=alif_reset, **kw)
    lif = LIF(reset=lif_reset, **kw)
    drive = 0.3 + 0.6 * jax.random.normal(jax.random.key(0), (300, 4))
    (sa, za), (sl, zl) = run(alif, drive, jnp.asarray(1.0)), run(lif, drive, jnp.asarray(1.0))
    assert 20 < float(jnp.sum(zl)) < 600
    np.testing.assert_array_equal(za, zl)
    np.testing.assert_allclose(sa.v, sl.v, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(sa.refractory, sl.refractory, atol=1e-14)


@pytest.mark.parametrize("reset", ["subtract", "subtract_base", "zero"])
def test_reset_modes(reset):
    neuron = ALIF(tau_mem=20.0, v_th=1.0, beta=0.5, reset=reset, v_reset=-0.3, t_ref=1.5)
    state = ALIFState(v=jnp.array(2.0), i=jnp.array(0.0), a=jnp.array(0.8), refractory=jnp.array(0.0))
    after = call(neuron, "reset", state)
    want = {"subtract": 2.0 - (1.0 + 0.5 * 0.8), "subtract_base": 1.0, "zero": -0.3}[reset]
    np.testing.assert_allclose([after.v, after.a, after.refractory], [want, 1.8, 1.5], rtol=1e-15)


def test_free_flow_derivative_is_the_vector_field():
    neuron = ALIF(tau_mem=20.0, tau_adapt=80.0, beta=0.3, tau_syn=5.0, bias=0.4)
    state = ALIFState(v=jnp.array(0.3), i=jnp.array(0.7), a=jnp.array(1.2), refractory=jnp.array(0.0))
    flowed, rate = jax.jit(lambda s: jax.jvp(lambda t: neuron.free_flow(s, t), (jnp.array(3.0),),
                                             (jnp.array(1.0),)))(state)
    field = call(neuron, "vector_field", 0.0, flowed, jnp.array(0.0))
    for name in ("v", "i", "a"):
        np.testing.assert_allclose(getattr(rate, name), getattr(field, name), rtol=1e-12)


# -- event-driven: spike times under a constant bias, against an independent root finder --

TAU_M, TAU_A, BETA, CURRENT, T1 = 20.0, 100.0, 0.3, 1.6, 200.0


def reference_spike_times():
    """Reset to zero: between spikes v(t) = I (1 - exp(-t/tau_m)) and A(t) = 1 + beta a e^{-t/tau_a}."""
    times, a, t0 = [], 0.0, 0.0
    while True:
        gap = lambda t: CURRENT * (1 - np.exp(-t / TAU_M)) - 1.0 - BETA * a * np.exp(-t / TAU_A)
        hi = T1 - t0
        if hi <= 0 or gap(hi) <= 0:
            return np.array(times)
        s = brentq(gap, 1e-9, hi, xtol=1e-14, rtol=1e-15)
        t0 += s
        times.append(t0)
        a = a * np.exp(-s / TAU_A) + 1.0


def event_spike_times(neuron, n):
    state = neuron.init(None, ())
    t, times, adaptation = 0.0, [], []
    for _ in range(n):
        s = float(call(neuron, "time_to_spike", state, jnp.asarray(T1 - t)))
        if not np.isfinite(s):
            break
        state = call(neuron, "reset", call(neuron, "free_flow", state, jnp.asarray(s)))
        t += s
        times.append(t)
        adaptation.append(float(state.a))
    return np.array(times), np.array(adaptation)


def test_event_driven_spike_times_and_adaptation():
    ref = reference_spike_times()
    assert len(ref) >= 5 and np.all(np.diff(np.diff(ref)) > 0)  # adaptation lengthens the intervals
    neuron = ALIF(tau_mem=TAU_M, v_th=1.0, tau_adapt=TAU_A, beta=BETA, reset="zero", bias=CURRENT)
    times, adaptation = event_spike_times(neuron, len(ref) + 1)
    np.testing.assert_allclose(times, ref, rtol=1e-9)
    a_want = [np.sum(np.exp(-(t - ref[: k + 1]) / TAU_A)) for k, t in enumerate(ref)]
    np.testing.assert_allclose(adaptation, a_want, rtol=1e-9)
    # With the subtractive reset, v - A is exactly 0 at the crossing: the same spike train.
    subtract = ALIF(tau_mem=TAU_M, v_th=1.0, tau_adapt=TAU_A, beta=BETA, reset="subtract", bias=CURRENT)
    np.testing.assert_allclose(event_spike_times(subtract, len(ref) + 1)[0], ref, rtol=1e-9)
    # Clock-driven spike times converge to the exact ones.
    errors = []
    for dt in (0.1, 0.01):
        _, spikes = run(neuron, jnp.zeros((int(round(T1 / dt)), 1)), jnp.asarray(dt))
        clock = (np.flatnonzero(np.asarray(spikes)[:, 0]) + 1) * dt
        assert len(clock) == len(ref)
        errors.append(np.max(np.abs(clock - ref)))
        assert errors[-1] < len(ref) * dt
    assert errors[1] < errors[0] / 4


def test_time_to_spike_gradient_matches_finite_differences():
    def t_star(params):
        bias, beta, a, v = params
        neuron = ALIF(tau_mem=TAU_M, tau_adapt=TAU_A, beta=beta, reset="zero", bias=bias)
        state = ALIFState(v=v, i=jnp.zeros(()), a=a, refractory=jnp.zeros(()))
        return neuron.time_to_spike(state, jnp.asarray(T1))

    x = jnp.array([CURRENT, BETA, 1.7, 0.2])
    g = np.asarray(jax.jit(jax.grad(t_star))(x))
    f = jax.jit(t_star)
    h = 1e-5
    for k in range(4):
        e = np.zeros(4)
        e[k] = h * max(abs(float(x[k])), 1.0)
        fd = (float(f(x + e)) - float(f(x - e))) / (2 * e[k])
        np.testing.assert_allclose(g[k], fd, rtol=1e-6, err_msg=f"parameter {k}")


@pytest.mark.parametrize("kwargs,pattern", [
    (dict(tau_adapt=-5.0), r"tau_adapt.*-5\."),
    (dict(tau_mem=-1.0), r"tau_mem.*-1\."),
    (dict(beta=-0.1), r"beta.*-0\.1"),
    (dict(reset="adaptive"), r"reset 'adaptive'.*'subtract', 'subtract_base', 'zero'"),
])
def test_bad_input(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        ALIF(**kwargs)
