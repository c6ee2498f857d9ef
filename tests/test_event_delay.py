"""Exact recurrent transmission delays in the event-driven method: a spike reaches its targets
exactly `delay` later (closed forms for a two-neuron chain), `delay = 0` is the undelayed network,
and gradients with respect to the delay match the closed form and central finite differences; one
delay per synapse: each target at its own delay (closed forms), equal delays as the scalar delay."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import simjax as sj
from simjax.neurons import LIF

TAU, T1, T_IN = 10.0, 20.0, 1.0


def chain(w):
    """Input -> neuron 0 (fires once at `T_IN`: 1.5 above a threshold of 1, subtractive reset) -> neuron 1
    (weight `w`); delta synapses, no leak current."""
    return sj.networks.RSNN(1, 2, 1, neuron=LIF(tau_mem=TAU, v_th=1.0), w_in=np.array([[1.5, 0.0]]),
                            w_rec=jnp.array([[0.0, w], [0.0, 0.0]]), w_out=np.array([[0.0], [0.0]]))


ONE_INPUT = sj.SpikeTrain(jnp.array([T_IN]), jnp.array([0]), n=1)


@jax.jit  # one program for every weight and delay
def run_chain(w, delay):
    return sj.simulate(chain(w), ONE_INPUT, method="event", t1=T1, max_events=8, delay=delay)


def test_a_spike_reaches_its_target_exactly_delay_later():
    for delay in (0.0, 2.5, 7.25):
        # below threshold: v_1(T1) = w exp(-(T1 - T_IN - delay) / tau)
        out = run_chain(0.5, delay)
        np.testing.assert_allclose(out.final_state.neuron.v[1], 0.5 * np.exp(-(T1 - T_IN - delay) / TAU), rtol=1e-13)
        assert int(out.info["n_events"]) == 3  # the input spike, neuron 0's spike, its arrival
        # above threshold: neuron 1 fires at the arrival
        times = np.asarray(run_chain(1.2, delay).spikes.times)
        np.testing.assert_allclose(times[:2], [T_IN, T_IN + delay], rtol=1e-14)
        assert np.all(np.isinf(times[2:]))
    # an arrival after t1 never happens
    late = run_chain(0.5, T1)
    assert float(late.final_state.neuron.v[1]) == 0.0 and int(late.info["n_events"]) == 2


def test_zero_delay_is_the_undelayed_network():
    lif = LIF(tau_mem=10.0, tau_syn=5.0, bias=jnp.array([1.5, 1.35, 1.25]), t_ref=1.0, reset="zero")
    w_rec = 0.4 * np.array([[0.0, -1.0, 0.5], [-0.9, 0.0, -1.1], [0.6, -1.2, 0.0]])
    net = sj.networks.RSNN(2, 3, 2, neuron=lif, w_in=0.3 * np.array([[1.0, -0.6, 0.8], [-0.5, 0.9, 0.7]]),
                           w_rec=w_rec, w_out=np.array([[0.5, -0.2], [0.3, 0.4], [-0.1, 0.6]]))
    train = sj.SpikeTrain(jnp.array([4.3, 9.1, 17.7, 23.2, 31.9, 38.4, 47.5]), jnp.array([0, 1, 0, 1, 1, 0, 1]), n=2)
    run = eqx.filter_jit(lambda delay: sj.simulate(net, train, method="event", t1=60.0, max_events=64,
                                                   record_dt=10.0, delay=delay))
    plain = sj.simulate(net, train, method="event", t1=60.0, max_events=64, record_dt=10.0)
    zero, later = run(0.0), run(3.0)
    assert int(plain.info["n_spikes"]) >= 6
    np.testing.assert_allclose(zero.spikes.times, plain.spikes.times, rtol=1e-13)
    spiked = np.isfinite(np.asarray(plain.spikes.times))
    np.testing.assert_array_equal(np.asarray(zero.spikes.ids)[spiked], np.asarray(plain.spikes.ids)[spiked])
    np.testing.assert_allclose(zero.readout, plain.readout, rtol=1e-13, atol=1e-15)
    # a delay changes the network's spikes (inhibition arrives later)
    assert not np.allclose(later.spikes.times[:4], plain.spikes.times[:4])


def test_gradients_with_respect_to_the_delay():
    # closed forms: d v_1(T1) / d delay = v_1(T1) / tau, d t_spike(1) / d delay = 1
    v1 = lambda delay: run_chain(0.5, delay).final_state.neuron.v[1]  # noqa: E731
    np.testing.assert_allclose(jax.grad(v1)(2.5), v1(2.5) / TAU, rtol=1e-12)
    np.testing.assert_allclose(jax.grad(lambda d: run_chain(1.2, d).spikes.times[1])(2.5), 1.0, rtol=1e-12)
    # a recurrent network: every spike time and the readout against central finite differences
    lif = LIF(tau_mem=10.0, tau_syn=5.0, bias=jnp.array([1.5, 1.35, 1.25]), t_ref=1.0, reset="zero")
    net = sj.networks.RSNN(2, 3, 2, neuron=lif, w_in=0.3 * np.array([[1.0, -0.6, 0.8], [-0.5, 0.9, 0.7]]),
                           w_rec=0.5 * np.array([[0.0, -1.0, 0.5], [-0.9, 0.0, -1.1], [0.6, -1.2, 0.0]]),
                           w_out=np.array([[0.5, -0.2], [0.3, 0.4], [-0.1, 0.6]]))
    train = sj.SpikeTrain(jnp.array([4.3, 9.1, 17.7, 23.2]), jnp.array([0, 1, 0, 1]), n=2)

    def loss(delay):
        out = sj.simulate(net, train, method="event", t1=40.0, max_events=48, record_dt=10.0, delay=delay)
        t = out.spikes.times
        weights = 1.0 + 0.1 * jnp.arange(t.shape[-1])
        return jnp.sum(weights * jnp.where(jnp.isfinite(t), t, 0.0)) + jnp.sum(out.readout**2), out.spikes

    value_and_grad = jax.jit(jax.value_and_grad(loss, has_aux=True))
    (_, spikes), g = value_and_grad(2.0)
    times = np.asarray(spikes.times)
    assert np.sum(np.isfinite(times)) >= 6
    h = 1e-6
    fd = (float(value_and_grad(2.0 + h)[0][0]) - float(value_and_grad(2.0 - h)[0][0])) / (2 * h)
    assert abs(fd) > 1e-3  # the delay matters to this loss
    np.testing.assert_allclose(float(g), fd, rtol=1e-5)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(delay=-1.0), ValueError, r"delay=-1.0 is not allowed: expected .* >= 0"),
    (dict(delay=float("nan")), ValueError, "delay=nan"),
    (dict(delay=[1.0, 2.0]), ValueError, r"expected one delay \(a scalar\) or one per recurrent synapse \(2, 2\)"),
    (dict(delay=np.ones((3, 3))), ValueError, r"delay has shape \(3, 3\)"),
    (dict(delay=np.array([[0.0, -1.0], [0.0, 0.0]])), ValueError, "expected transmission delays in ms"),
    (dict(delay=1.0, pseudo_drive=1.0), TypeError, "delay and pseudo_drive"),
])
def test_bad_delays_are_rejected(kwargs, error, match, unchecked):
    with pytest.raises(error, match=match):
        sj.simulate(chain(0.5), ONE_INPUT, method="event", t1=T1, **kwargs)


def fan_out(w):
    """Input -> neuron 0 (fires once at `T_IN`) -> neurons 1 and 2 (weight `w` each)."""
    return sj.networks.RSNN(1, 3, 1, neuron=LIF(tau_mem=TAU, v_th=1.0), w_in=np.array([[1.5, 0.0, 0.0]]),
                            w_rec=jnp.array([[0.0, w, w], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]), w_out=np.zeros((3, 1)))


@jax.jit
def run_fan_out(w, delays):
    return sj.simulate(fan_out(w), ONE_INPUT, method="event", t1=T1, max_events=16, delay=delays)


def test_each_synapse_arrives_at_its_own_delay():
    d1, d2 = 6.5, 1.75
    delays = jnp.array([[0.0, d1, d2], [3.0, 0.0, 3.0], [3.0, 3.0, 0.0]])
    # below threshold: v_i(T1) = w exp(-(T1 - T_IN - d_i) / tau)
    out = run_fan_out(0.5, delays)
    expected = 0.5 * np.exp(-(T1 - T_IN - np.array([d1, d2])) / TAU)
    np.testing.assert_allclose(out.final_state.neuron.v[1:], expected, rtol=1e-13)
    assert int(out.info["n_events"]) == 2 + 3  # input, neuron 0's spike, its three synapses (one of weight 0)
    # above threshold: each target fires at its arrival, neuron 2 first
    spikes = run_fan_out(1.2, delays).spikes
    np.testing.assert_allclose(np.asarray(spikes.times)[:3], [T_IN, T_IN + d2, T_IN + d1], rtol=1e-14)
    np.testing.assert_array_equal(np.asarray(spikes.ids)[:3], [0, 2, 1])
    # d t_spike(i) / d D[0, i] = 1, and 0 for the other synapse
    grad = jax.grad(lambda d: run_fan_out(1.2, d).spikes.times[2])(delays)
    np.testing.assert_allclose(grad[0, 1], 1.0, rtol=1e-12)
    assert float(grad[0, 2]) == 0.0


def test_equal_per_synapse_delays_are_the_scalar_delay():
    lif = LIF(tau_mem=10.0, tau_syn=5.0, bias=jnp.array([1.5, 1.35, 1.25]), t_ref=1.0, reset="zero")
    net = sj.networks.RSNN(2, 3, 2, neuron=lif, w_in=0.3 * np.array([[1.0, -0.6, 0.8], [-0.5, 0.9, 0.7]]),
                           w_rec=0.5 * np.array([[0.0, -1.0, 0.5], [-0.9, 0.0, -1.1], [0.6, -1.2, 0.0]]),
                           w_out=np.array([[0.5, -0.2], [0.3, 0.4], [-0.1, 0.6]]))
    train = sj.SpikeTrain(jnp.array([4.3, 9.1, 17.7, 23.2]), jnp.array([0, 1, 0, 1]), n=2)
    run = lambda delay: sj.simulate(net, train, method="event", t1=40.0, max_events=64, record_dt=10.0,  # noqa: E731
                                    delay=delay)
    scalar, matrix = run(2.0), run(jnp.full((3, 3), 2.0))
    spiked = np.isfinite(np.asarray(scalar.spikes.times))
    assert spiked.sum() >= 6
    np.testing.assert_allclose(matrix.spikes.times, scalar.spikes.times, rtol=1e-13)
    np.testing.assert_array_equal(np.asarray(matrix.spikes.ids)[spiked], np.asarray(scalar.spikes.ids)[spiked])
    np.testing.assert_allclose(matrix.readout, scalar.readout, rtol=1e-12, atol=1e-14)
