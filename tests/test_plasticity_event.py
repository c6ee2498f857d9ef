"""Online plasticity inside the exact event-driven method (`simjax.plasticity.simulate(...,
method="event")`): the STDP window at spike times off any grid against its closed form (both
pairings, input and recurrent synapses, the triplet rule), a potentiated weight acting on the next
postsynaptic potential in closed form, the clock-driven method converging to it at first order in
`dt`, gradients in the rule's parameters and the initial weights against float64 finite
differences, and bad input."""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import simjax as sj

P = sj.plasticity
# Every run has the same shapes (2 input channels, 3 neurons, 32 events) and plastic input and
# recurrent weights (masks, possibly all False): one compilation per rule type and options.
T1 = 150.0
W0 = 0.3  # the plastic input weight 0 -> 0; channel 1 (weight 1.2) makes neuron 0 fire at once
PLASTIC_IN = jnp.array([[True, False, False], [False, False, False]])
NONE_IN = jnp.zeros((2, 3), bool)


def _net(bias, w_in, w_rec):
    lif = sj.neurons.LIF(tau_mem=20.0, v_th=1.0, reset="subtract", bias=bias)
    return sj.networks.RSNN(n_in=2, n_rec=3, n_out=1, neuron=lif, w_in=w_in, w_rec=w_rec, w_out=jnp.ones((3, 1)))


def _run(net, rule, times, ids, input_mask, t1=T1):
    train = sj.SpikeTrain(jnp.asarray(times, float), jnp.asarray(ids), n=2)
    return P.simulate(net, rule, train, method="event", t1=t1, max_events=32, input_mask=input_mask)


def _input_net(w0=W0):
    return _net(jnp.zeros(3), jnp.array([[w0, 0.0, 0.0], [1.2, 0.0, 0.0]]), jnp.zeros((3, 3)))


def _input_run(rule, pre_times, post_times):
    """The input synapse 0 -> 0 learning from presynaptic spikes at `pre_times` (channel 0) and
    spikes of neuron 0 forced at `post_times` (channel 1); neurons 1 and 2 stay silent."""
    return _run(_input_net(), rule, [*pre_times, *post_times], [0] * len(pre_times) + [1] * len(post_times),
                PLASTIC_IN)


def _window(d, a_plus, a_minus, tau_plus, tau_minus):
    return a_plus * math.exp(-d / tau_plus) if d > 0 else -a_minus * math.exp(d / tau_minus)


@pytest.mark.parametrize("pairing", ["all", "nearest"])
def test_stdp_window_at_off_grid_spike_times(pairing):
    a_plus, a_minus, tau_plus, tau_minus = 0.01, 0.012, 16.8, 33.7
    rule = P.PairSTDP(a_plus, a_minus, tau_plus, tau_minus, pairing=pairing)
    t_pre = 70.123
    for d in (-61.3, -7.77, -0.61, 0.43, 3.9, 22.71, 77.3):
        net, out = _input_run(rule, [t_pre], [t_pre + d])
        assert float(out.spikes.times[0]) == t_pre + d  # the forced postsynaptic spike
        np.testing.assert_allclose(float(net.w_in.weight[0, 0]) - W0, _window(d, a_plus, a_minus, tau_plus, tau_minus),
                                   rtol=0, atol=1e-12)
        assert float(net.w_in.weight[1, 0]) == 1.2  # not plastic
    # two presynaptic spikes, then one postsynaptic spike: all-to-all pairs both, nearest only the second
    t_a, t_b, t_post = 10.3, 21.7, 33.9
    net, out = _input_run(rule, [t_a, t_b], [t_post])
    both = a_plus * (math.exp(-(t_post - t_a) / tau_plus) + math.exp(-(t_post - t_b) / tau_plus))
    expected = both if pairing == "all" else a_plus * math.exp(-(t_post - t_b) / tau_plus)
    np.testing.assert_allclose(float(net.w_in.weight[0, 0]) - W0, expected, rtol=0, atol=1e-12)
    # the traces at t1 decayed in closed form from their last jumps
    traces = out.final_state.traces_in
    x_t1 = (math.exp(-(T1 - t_a) / tau_plus) + math.exp(-(T1 - t_b) / tau_plus) if pairing == "all"
            else math.exp(-(T1 - t_b) / tau_plus))
    np.testing.assert_allclose(float(traces.pre[0]), x_t1, rtol=1e-13)
    np.testing.assert_allclose(float(traces.post[0]), math.exp(-(T1 - t_post) / tau_minus), rtol=1e-13)


def test_recurrent_pair_triplet_and_inhibitory_rules_at_events():
    # neuron 0 fires at t_a, neuron 1 at t_b (each forced by its own input; neuron 2 stays silent):
    # the synapse 0 -> 1 is potentiated, 1 -> 0 depressed, those of neuron 2 only at its
    # partners' spikes (from its zero traces: unchanged)
    t_a, t_b, w = 12.345, 19.8765, 0.1
    w_in = 1.2 * jnp.eye(2, 3)
    net, out = _run(_net(jnp.zeros(3), w_in, w * (1 - jnp.eye(3))), PAIR, [t_a, t_b], [0, 1], NONE_IN)
    np.testing.assert_array_equal(np.asarray(out.spikes.times[:3]), [t_a, t_b, np.inf])
    d = t_b - t_a
    expected = w * (1 - np.eye(3))
    expected[0, 1] += 0.005 * math.exp(-d / 20.0)
    expected[1, 0] -= 0.006 * math.exp(-d / 20.0)
    np.testing.assert_allclose(np.asarray(net.w_rec.weight), expected, rtol=0, atol=1e-12)
    # triplet rule (Pfister & Gerstner 2006): pre at t_a, post at t_b and t_c; the second post
    # spike potentiates by r1 (A2+ + A3+ o2(t_c - eps)), o2 the first post spike's trace
    rule = P.TripletSTDP()
    t_a, t_b, t_c = 5.5, 14.25, 31.125
    net, _ = _input_run(rule, [t_a], [t_b, t_c])
    r1 = lambda t: math.exp(-(t - t_a) / 16.8)  # noqa: E731
    expected = r1(t_b) * 5e-10 + r1(t_c) * (5e-10 + 6.2e-3 * math.exp(-(t_c - t_b) / 125.0))
    np.testing.assert_allclose(float(net.w_in.weight[0, 0]) - W0, expected, rtol=0, atol=1e-12)
    # inhibitory STDP (Vogels et al. 2011): eta (y - alpha) at the pre spike, eta x at the post spike
    rule = P.InhibitorySTDP(eta=0.01, rho0=5.0, tau=20.0, sign=1)
    net, _ = _input_run(rule, [t_a], [t_b])
    expected = 0.01 * (math.exp(-(t_b - t_a) / 20.0) - 2 * 5.0 * 20.0 / 1000.0)
    np.testing.assert_allclose(float(net.w_in.weight[0, 0]) - W0, expected, rtol=0, atol=1e-12)


def test_the_changed_weight_acts_on_later_events():
    # pre at t_a, post at t_b potentiates w0 -> w1; the pre spike at t_c then delivers w1 (and is
    # depressed by its pairing with t_b afterwards). Delta synapses: the potential at t1 is the
    # closed-form sum of exponentially decaying jumps.
    a_plus, a_minus, tau_plus, tau_minus = 0.2, 0.05, 16.8, 33.7
    rule = P.PairSTDP(a_plus, a_minus, tau_plus, tau_minus)
    t_a, t_b, t_c = 5.25, 12.5, 30.75
    net, out = _input_run(rule, [t_a, t_c], [t_b])
    w1 = W0 + a_plus * math.exp(-(t_b - t_a) / tau_plus)
    decay = lambda s: math.exp(-s / 20.0)  # noqa: E731
    v_t1 = lambda w: ((W0 * decay(t_b - t_a) + 1.2 - 1.0) * decay(t_c - t_b) + w) * decay(T1 - t_c)  # noqa: E731
    v = float(out.final_state.network.neuron.v[0])
    np.testing.assert_allclose(v, v_t1(w1), rtol=1e-12)
    assert abs(v_t1(w1) - v_t1(W0)) > 0.1 * v_t1(W0)  # the test sees the potentiation
    np.testing.assert_allclose(float(net.w_in.weight[0, 0]), w1 - a_minus * math.exp(-(t_c - t_b) / tau_minus),
                               rtol=0, atol=1e-12)


# Three neurons driven by constant currents, weak plastic recurrent synapses: the spikes never
# coincide (the closest two are 0.8 ms apart), so no spike makes another fire at the same instant.
BIAS = jnp.array([2.0, 1.7, 1.5])
W_REC = 0.01 * (1 - jnp.eye(3))
T_NET = 100.0
PAIR = P.PairSTDP(a_plus=0.005, a_minus=0.006, tau_plus=20.0, tau_minus=20.0)


def _network_run(rule, scale=1.0):
    return _run(_net(BIAS, jnp.zeros((2, 3)), scale * W_REC), rule, [jnp.inf], [0], NONE_IN, t1=T_NET)


def test_clock_driven_plasticity_converges_to_the_event_driven_run():
    net, out = _network_run(PAIR)
    exact = np.asarray(net.w_rec.weight)
    n_spikes = int(out.info["n_spikes"])
    assert n_spikes == 16 and np.min(np.abs(exact - np.asarray(W_REC))[~np.eye(3, dtype=bool)]) > 1e-4
    assert np.min(np.diff(np.asarray(out.spikes.times[:n_spikes]))) > 0.5  # no coincident spikes
    lif = sj.neurons.LIF(tau_mem=20.0, v_th=1.0, reset="subtract", bias=BIAS)
    errors = []
    for dt in (0.1, 0.001):
        ei = sj.networks.EINetwork(lif, sj.synapses.Dense(W_REC), n_exc=3)
        clock, rec = P.simulate(ei, PAIR, jnp.zeros((int(round(T_NET / dt)), 1)), dt=dt)
        assert int(np.asarray(rec.readout[:, 0]).sum() * 3 * dt / 1000.0 + 0.5) == n_spikes
        errors.append(float(np.max(np.abs(np.asarray(clock.recurrent.weight) - exact))))
    # first order: the clock method places each spike on the grid and delivers it a step late,
    # an error below dt in every spike time (measured: error / dt = 1.5e-3 at dt = 0.1, 2.2e-3 at
    # 0.01, 1.2e-3 at 0.001)
    for dt, err in zip((0.1, 0.001), errors):
        assert err < 5e-3 * dt
    assert errors[1] < errors[0] / 30


def test_gradients_in_rule_parameters_and_initial_weights_match_finite_differences():
    def loss(theta):
        rule = eqx.tree_at(lambda r: (r.a_plus, r.tau_plus), PAIR, (theta[0], theta[1]))
        net, out = _network_run(rule, theta[2])
        times = out.spikes.times
        return (jnp.sum(jnp.arange(1.0, 10.0).reshape(3, 3) * net.w_rec.weight**2) * 100.0
                + jnp.sum(jnp.where(jnp.isfinite(times), times, 0.0)) * 1e-3)

    theta = jnp.array([0.005, 20.0, 1.0])
    grad = np.asarray(jax.grad(loss)(theta))
    fd = []
    for i in range(3):
        h = 1e-5 * float(theta[i])
        e = jnp.zeros(3).at[i].set(h)
        fd.append((float(loss(theta + e)) - float(loss(theta - e))) / (2 * h))
    np.testing.assert_allclose(grad, fd, rtol=1e-6)
    assert np.all(np.abs(grad) > 0)


def test_bad_input(unchecked):
    net = _input_net()
    train = sj.SpikeTrain(jnp.array([1.0]), jnp.array([0]), n=2)
    with pytest.raises(TypeError, match=r"RewardModulatedSTDP changes weights between spikes .* expected a rule "
                                        r"whose weights jump only at spikes .*AbstractSpikeTriggeredRule"):
        P.simulate(net, P.RewardModulatedSTDP(), train, method="event", t1=10.0)
    with pytest.raises(ValueError, match=r"mask has shape \(2, 2\), expected \(3, 3\)"):
        P.simulate(net, P.PairSTDP(), train, method="event", t1=10.0, mask=jnp.ones((2, 2), bool))
    with pytest.raises(ValueError, match=r"input_mask has shape \(1, 2\), expected \(2, 3\)"):
        P.simulate(net, P.PairSTDP(), train, method="event", t1=10.0, input_mask=jnp.ones((1, 2), bool))
    with pytest.raises(ValueError, match=r"PairSTDP with sign=\+1 serves excitatory \(w >= 0\) synapses, but the "
                                         r"plastic synapse 0 -> 0 of input_weights has weight -0.5"):
        P.simulate(_input_net(-0.5), P.PairSTDP(), train, method="event", t1=10.0, input_mask=PLASTIC_IN)
    with pytest.raises(TypeError, match=r"method='event' takes no dt"):
        P.simulate(net, P.PairSTDP(), train, method="event", t1=10.0, dt=0.1)
    with pytest.raises(ValueError, match=r"inputs must be one trial"):
        P.simulate(net, P.PairSTDP(), sj.SpikeTrain(jnp.ones((2, 1)), jnp.zeros((2, 1), int), n=2),
                   method="event", t1=10.0)
    with pytest.raises(TypeError, match=r"t1 belong to method='event'"):
        P.simulate(net, P.PairSTDP(), jnp.zeros((10, 1)), dt=0.1, t1=10.0)
