"""Clock-driven LIF against closed forms: refractory inter-spike intervals, the double-exponential
response of exponential synapses, reset modes (values and gradients), and bad input."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

import simjax as sj
from simjax.neurons import LIF, LIFState
from simjax.surrogates import FastSigmoid

STEPS = 10_000


@eqx.filter_jit
def run(neuron, drive, dt):
    """Scan `LIF.step` over `drive [time, ...]` from rest: `(states, spikes)` per step."""

    def body(state, x):
        state, s = neuron.step(state, x, dt)
        return state, (state, s)

    return jax.lax.scan(body, neuron.init(None, drive.shape[1:]), drive)[1]


def test_refractory_interspike_interval():
    """Constant bias I > v_th, reset to zero, hold t_ref: ISI = t_ref + tau ln(I / (I - v_th))."""
    tau, v_th, current, t_ref, t1 = 10.0, 1.0, 1.5, 2.0, 100.0
    neuron = LIF(tau_mem=tau, v_th=v_th, v_reset=0.0, reset="zero", t_ref=t_ref, bias=current)
    climb = tau * np.log(current / (current - v_th))
    errors = []
    for dt in (0.4, 0.1, 0.01):
        states, spikes = run(neuron, jnp.zeros((STEPS, 1)), jnp.asarray(dt))
        steps = np.flatnonzero(np.asarray(spikes)[:, 0])
        times = (steps + 1) * dt  # a spike is detected at the end of its step
        steps, times = steps[times <= t1], times[times <= t1]
        assert len(times) == 1 + int((t1 - climb) // (t_ref + climb))
        # Detection is late by less than one step, and the error does not accumulate.
        err = np.concatenate([[times[0] - climb], np.diff(times) - (t_ref + climb)])
        assert np.all(err > -1e-9) and np.all(err < dt + 1e-9)
        errors.append(np.max(np.abs(err)))
        # The potential is held at v_reset for exactly t_ref after every spike, then rises.
        v = np.asarray(states.v)[:, 0]
        hold = int(round(t_ref / dt))
        for k in steps[:3]:
            np.testing.assert_allclose(v[k : k + hold + 1], 0.0, atol=1e-12)  # (dt rounding of t_ref)
            assert v[k + hold + 1] > 0.0
    assert errors[2] < errors[1] < errors[0]


def test_delta_input_is_lost_while_refractory():
    neuron = LIF(tau_mem=10.0, reset="zero", t_ref=1.0)
    state = LIFState(v=jnp.zeros(2), i=jnp.zeros(2), refractory=jnp.array([1.0, 0.5]))
    new, _ = eqx.filter_jit(neuron.step)(state, jnp.array([0.4, 0.4]), jnp.array(0.5))
    # Neuron 0 is still refractory at the end of the step: input lost. Neuron 1 is free again.
    np.testing.assert_allclose(new.v, [0.0, 0.4], atol=1e-15)
    np.testing.assert_allclose(new.refractory, [0.5, 0.0], atol=1e-15)


def double_exponential(t, w, tau_mem, tau_syn):
    """Potential at `t >= 0` after a unit-free current kick `w` at 0 (tau_mem dv/dt = -v + i)."""
    if tau_syn == tau_mem:
        return w * t / tau_mem * np.exp(-t / tau_mem)
    return w * tau_syn / (tau_syn - tau_mem) * (np.exp(-t / tau_syn) - np.exp(-t / tau_mem))


@pytest.mark.parametrize("tau_syn", [4.0, 10.0])
def test_exponential_synapse_step_matches_double_exponential(tau_syn):
    tau_mem, bias, w, dt, k0 = 10.0, 0.3, 2.0, 0.25, 3
    # The reference formula itself, checked against a numerical solution of the ODEs.
    sol = solve_ivp(lambda t, y: [(-y[0] + y[1]) / tau_mem, -y[1] / tau_syn], (0.0, 30.0), [0.0, w],
                    t_eval=[5.0, 30.0], rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(sol.y[0], double_exponential(sol.t, w, tau_mem, tau_syn), rtol=1e-8)

    neuron = LIF(tau_mem=tau_mem, tau_syn=tau_syn, v_th=100.0, bias=bias)
    drive = jnp.zeros((400, 1)).at[k0, 0].set(w)
    states, spikes = run(neuron, drive, jnp.asarray(dt))
    t = (np.arange(400) + 1) * dt
    t0 = (k0 + 1) * dt  # the kick lands at the end of step k0
    after = np.maximum(t - t0, 0.0)
    v_want = bias * (1 - np.exp(-t / tau_mem)) + np.where(t >= t0, double_exponential(after, w, tau_mem, tau_syn), 0.0)
    i_want = np.where(t >= t0, w * np.exp(-after / tau_syn), 0.0)
    np.testing.assert_allclose(np.asarray(states.v)[:, 0], v_want, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(np.asarray(states.i)[:, 0], i_want, rtol=1e-12, atol=1e-14)
    assert not np.any(np.asarray(spikes))


@pytest.mark.parametrize("mode", ["subtract", "zero"])
@pytest.mark.parametrize("detach", [True, False])
def test_reset_modes_values_and_gradients(mode, detach):
    tau, v_th, v_reset, slope, dt, v0, drive = 10.0, 1.0, -0.2, 5.0, 1.0, 0.9, 0.5
    neuron = LIF(tau_mem=tau, v_th=v_th, v_reset=v_reset, reset=mode, surrogate=FastSigmoid(slope=slope),
                 detach_reset=detach)

    def after(v):
        state = LIFState(v=v, i=jnp.zeros(()), refractory=jnp.zeros(()))
        new, s = neuron.step(state, jnp.array(drive), jnp.array(dt))
        return new.v, s

    (v_new, s), (dv, ds) = jax.jit(lambda v: jax.jvp(after, (v,), (jnp.ones(()),)))(jnp.array(v0))
    a = np.exp(-dt / tau)
    v_pre = a * v0 + drive
    psi = 1.0 / (1.0 + slope * abs(v_pre - v_th)) ** 2  # FastSigmoid's pseudo-derivative
    assert float(s) == 1.0
    np.testing.assert_allclose(ds, a * psi, rtol=1e-12)
    if mode == "subtract":
        np.testing.assert_allclose(v_new, v_pre - v_th, rtol=1e-12)
        np.testing.assert_allclose(dv, a if detach else a * (1 - v_th * psi), rtol=1e-12)
    else:
        np.testing.assert_allclose(v_new, v_reset, rtol=1e-12)
        np.testing.assert_allclose(dv, 0.0 if detach else a * psi * (v_reset - v_pre), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("kwargs,pattern", [
    (dict(tau_mem=-1.0), r"tau_mem.*-1\."),
    (dict(tau_mem=float("nan")), r"tau_mem.*nan"),
    (dict(reset="hard"), r"reset 'hard'.*'subtract', 'zero'"),
    (dict(t_ref=-0.5), r"t_ref.*-0\.5"),
    (dict(tau_syn=0.0), r"tau_syn.*0\."),
])
def test_bad_input(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        LIF(**kwargs)


def test_batch_first_inputs_with_time_axis_equal_time_first(unchecked):
    net = sj.networks.RSNN(3, 5, 2, key=jax.random.key(0))
    x = jax.random.uniform(jax.random.key(1), (7, 4, 3))  # [time, batch, n_in]
    time_first = sj.simulate(net, x, dt=1.0)
    batch_first = sj.simulate(net, jnp.swapaxes(x, 0, 1), dt=1.0, time_axis=1)
    np.testing.assert_array_equal(batch_first.readout, time_first.readout)
    np.testing.assert_array_equal(batch_first.spikes, time_first.spikes)
    with pytest.raises(ValueError, match=r"time_axis must be an int in \[0, 1\], got 2"):
        sj.simulate(net, x, dt=1.0, time_axis=2)
