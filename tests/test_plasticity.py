"""Online plasticity: the STDP window in closed form, the triplet rule against an independent
event-driven evaluation of its trace expressions, the three-factor rule's eligibility, Vogels'
inhibitory plasticity setting the excitatory rate in a small network, vmap over rule parameters
against a Python loop, gradients in rule parameters against float64 finite differences, and
bad input."""

from __future__ import annotations

import math
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import simjax as sj
from simjax._app import config as cfgmod
from simjax._app.experiments import plasticity as experiment

P = sj.plasticity
CONFIGS = Path(__file__).resolve().parent.parent / "simjax" / "configs"


def _pairs(deltas, *, dt, t0=100.0, extra_pre=()):
    """Spike trains [time, batch, 1] with a presynaptic spike at ``t0`` (and at ``t0 + e`` for ``e``
    in ``extra_pre``) and a postsynaptic one at ``t0 + delta``, one trial per ``delta``."""
    steps = int(round((2 * t0 + 2) / dt))
    pre = np.zeros((steps, len(deltas), 1))
    post = np.zeros((steps, len(deltas), 1))
    for b, d in enumerate(deltas):
        pre[int(round(t0 / dt)), b, 0] = 1.0
        for e in extra_pre:
            pre[int(round((t0 + e) / dt)), b, 0] = 1.0
        post[int(round((t0 + d) / dt)), b, 0] = 1.0
    return jnp.asarray(pre), jnp.asarray(post)


def _window(deltas, a_plus, a_minus, tau_plus, tau_minus):
    d = np.asarray(deltas, float)
    return np.where(d > 0, a_plus * np.exp(-d / tau_plus), np.where(d < 0, -a_minus * np.exp(d / tau_minus), 0.0))


@pytest.mark.parametrize("pairing", ["all", "nearest"])
@pytest.mark.parametrize("dt", [1.0, 0.25])
def test_stdp_window_is_the_closed_form(pairing, dt):
    deltas = np.arange(-100.0, 100.0 + 1e-9, 1.0)
    rule = P.PairSTDP(a_plus=0.01, a_minus=0.012, tau_plus=16.8, tau_minus=33.7, pairing=pairing)
    pre, post = _pairs(deltas, dt=dt)
    w0 = jnp.full((len(deltas), 1, 1), 0.5)
    w, _ = P.run(rule, pre, post, w0, dt=dt)
    np.testing.assert_allclose(np.asarray(w - w0)[:, 0, 0], _window(deltas, 0.01, 0.012, 16.8, 33.7),
                               rtol=0, atol=1e-9)


def test_pairing_schemes_differ_as_expected():
    # two presynaptic spikes (at 0 and 10 ms) before one postsynaptic spike at 25 ms
    a, tau = 0.01, 20.0
    pre, post = _pairs([25.0], dt=1.0, extra_pre=(10.0,))
    w0 = jnp.full((1, 1, 1), 0.5)
    w_all, _ = P.run(P.PairSTDP(a, 0.0, tau, tau, pairing="all"), pre, post, w0, dt=1.0)
    w_nn, _ = P.run(P.PairSTDP(a, 0.0, tau, tau, pairing="nearest"), pre, post, w0, dt=1.0)
    np.testing.assert_allclose(float(w_all[0, 0, 0] - 0.5), a * (math.exp(-25 / tau) + math.exp(-15 / tau)), atol=1e-12)
    np.testing.assert_allclose(float(w_nn[0, 0, 0] - 0.5), a * math.exp(-15 / tau), atol=1e-12)


@pytest.mark.parametrize("dependence", ["multiplicative", "soft"])
def test_weight_dependence_single_pair(dependence):
    a_p, a_m, tau, w_max, w0 = 0.1, 0.2, 20.0, 2.0, 0.5
    rule = P.PairSTDP(a_p, a_m, tau, tau, weight_dependence=dependence, w_max=w_max)
    pre, post = _pairs([10.0, -10.0], dt=1.0)
    w, _ = P.run(rule, pre, post, jnp.full((2, 1, 1), w0), dt=1.0)
    k = math.exp(-10 / tau)
    ltp = a_p * k * ((w_max - w0) if dependence == "soft" else 1.0)
    ltd = a_m * k * w0
    np.testing.assert_allclose(np.asarray(w)[:, 0, 0], [w0 + ltp, w0 - ltd], atol=1e-12)


def test_hard_bounds_and_dale_sign():
    pre, post = _pairs([5.0, -5.0], dt=1.0)
    rule = P.PairSTDP(1.0, 1.0, 20.0, 20.0, w_min=0.1, w_max=0.6)
    w, _ = P.run(rule, pre, post, jnp.full((2, 1, 1), 0.5), dt=1.0)
    np.testing.assert_allclose(np.asarray(w)[:, 0, 0], [0.6, 0.1])
    # sign=-1: weights stored negative, the rule acts on their magnitude
    neg = P.PairSTDP(0.01, 0.01, 20.0, 20.0, sign=-1)
    w, _ = P.run(neg, pre, post, jnp.full((2, 1, 1), -0.5), dt=1.0)
    k = 0.01 * math.exp(-5 / 20)
    np.testing.assert_allclose(np.asarray(w)[:, 0, 0], [-0.5 - k, -0.5 + k], atol=1e-12)


# ---------------------------------------------------------------- triplet rule


def _triplet_reference(pre_times, post_times, p, pairing):
    """Pfister & Gerstner's trace expressions evaluated at the spike times (event-driven, exact
    exponentials of spike-time differences): at a presynaptic spike ``-o1 (A2- + A3- r2)``, at a
    postsynaptic spike ``r1 (A2+ + A3+ o2)``, every trace read from the spikes strictly before."""

    def trace(times, t, tau):
        before = [s for s in times if s < t]
        if not before:
            return 0.0
        if pairing == "nearest":
            return math.exp(-(t - max(before)) / tau)
        return sum(math.exp(-(t - s) / tau) for s in before)

    dw = 0.0
    for t in pre_times:
        dw -= trace(post_times, t, p["tau_minus"]) * (p["a2_minus"] + p["a3_minus"] * trace(pre_times, t, p["tau_x"]))
    for t in post_times:
        dw += trace(pre_times, t, p["tau_plus"]) * (p["a2_plus"] + p["a3_plus"] * trace(post_times, t, p["tau_y"]))
    return dw


TRIPLET = dict(a2_plus=5e-10, a3_plus=6.2e-3, a2_minus=7e-3, a3_minus=2.3e-4, tau_plus=16.8, tau_x=101.0,
               tau_minus=33.7, tau_y=125.0)


@pytest.mark.parametrize("pairing", ["all", "nearest"])
def test_triplet_rule_matches_trace_expressions(pairing):
    dt, steps = 1.0, 400
    rng = np.random.default_rng(3)
    # hand-picked protocols (pair, pre-post-pre, post-pre-post, a burst) plus random trains
    protocols = [([50.0], [60.0]), ([50.0, 70.0], [60.0]), ([60.0], [50.0, 70.0]), ([50.0], [55.0, 60.0, 65.0])]
    for _ in range(4):
        protocols.append((sorted(rng.choice(steps - 1, 12, replace=False) * dt),
                          sorted(rng.choice(steps - 1, 10, replace=False) * dt)))
    pre = np.zeros((steps, len(protocols), 1))
    post = np.zeros((steps, len(protocols), 1))
    for b, (tp, tq) in enumerate(protocols):
        pre[np.round(np.asarray(tp) / dt).astype(int), b, 0] = 1.0
        post[np.round(np.asarray(tq) / dt).astype(int), b, 0] = 1.0
    params = dict(TRIPLET, a2_plus=3e-3)  # a visible pair-potentiation term as well
    rule = P.TripletSTDP(**params, pairing=pairing)
    w0 = jnp.ones((len(protocols), 1, 1))
    w, _ = P.run(rule, jnp.asarray(pre), jnp.asarray(post), w0, dt=dt)
    expected = [_triplet_reference(tp, tq, params, pairing) for tp, tq in protocols]
    np.testing.assert_allclose(np.asarray(w - w0)[:, 0, 0], expected, rtol=0, atol=1e-12)
    # the two triplets in closed form
    ppp = -math.exp(-10 / 33.7) * (7e-3 + 2.3e-4 * math.exp(-20 / 101)) + 3e-3 * math.exp(-10 / 16.8)
    pqp = (-7e-3 * math.exp(-10 / 33.7)
           + math.exp(-10 / 16.8) * (3e-3 + 6.2e-3 * math.exp(-20 / 125)))
    np.testing.assert_allclose(np.asarray(w - w0)[1:3, 0, 0], [ppp, pqp], atol=1e-12)


def test_triplet_defaults_are_the_visual_cortex_all_to_all_row():
    rule = P.TripletSTDP()
    got = {k: float(getattr(rule, k)) for k in TRIPLET}
    assert got == TRIPLET and rule.pairing == "all"


def _pairing_protocol(freqs, delta, *, dt=1.0, n_pairs=60):
    """60 pairs at each frequency (Hz), the postsynaptic spike ``delta`` ms after the presynaptic."""
    periods = [1000.0 / f for f in freqs]
    steps = int(round((max(periods) * n_pairs + 50.0) / dt))
    pre = np.zeros((steps, len(freqs), 1))
    post = np.zeros((steps, len(freqs), 1))
    for b, period in enumerate(periods):
        t_pre = 20.0 + np.arange(n_pairs) * period
        pre[np.round(t_pre / dt).astype(int), b, 0] = 1.0
        post[np.round((t_pre + delta) / dt).astype(int), b, 0] = 1.0
    return jnp.asarray(pre), jnp.asarray(post)


def test_triplet_pairing_frequency_experiment():
    """Sjöström et al. (2001) protocol with the visual-cortex all-to-all parameters: at
    ``Delta t = -10`` ms depression at low and potentiation at high frequency, crossing over
    between 20 and 40 Hz (the paper's Fig. 5; Sjöström's data cross there too); at
    ``Delta t = +10`` ms potentiation grows with frequency."""
    freqs = [1.0, 10.0, 20.0, 40.0, 50.0]
    rule = P.TripletSTDP()
    w0 = jnp.ones((len(freqs), 1, 1))
    changes = {}
    for delta in (-10.0, 10.0):
        pre, post = _pairing_protocol(freqs, delta)
        w, _ = P.run(rule, pre, post, w0, dt=1.0)
        changes[delta] = np.asarray(w - w0)[:, 0, 0]
    neg, pos = changes[-10.0], changes[10.0]
    assert neg[0] < 0 and neg[1] < 0 and neg[2] < 0 and neg[3] > 0 and neg[4] > 0
    assert np.all(np.diff(pos) > 0) and pos[-1] > 0


# ---------------------------------------------------------------- three-factor rule


def test_three_factor_without_reward_changes_nothing():
    rng = np.random.default_rng(0)
    pre = jnp.asarray((rng.random((500, 4)) < 0.05).astype(float))
    post = jnp.asarray((rng.random((500, 3)) < 0.05).astype(float))
    rule = P.RewardModulatedSTDP(a_plus=1.0, a_minus=1.5, tau_e=200.0, eta=0.1)
    w0 = jnp.full((4, 3), 0.5)
    w, traces = P.run(rule, pre, post, w0, dt=1.0, modulator=jnp.zeros(500))
    np.testing.assert_array_equal(np.asarray(w), np.asarray(w0))
    assert float(jnp.max(jnp.abs(traces.eligibility))) > 0.0


def test_three_factor_eligibility_decays_and_reward_reads_it():
    dt, tau_e, eta, a_plus = 1.0, 200.0, 0.01, 1.0
    steps, t_pre, t_post, t_reward, reward = 700, 10, 20, 600, 2.0
    pre = jnp.zeros((steps, 1)).at[t_pre, 0].set(1.0)
    post = jnp.zeros((steps, 1)).at[t_post, 0].set(1.0)
    rule = P.RewardModulatedSTDP(a_plus=a_plus, a_minus=0.0, tau_plus=20.0, tau_e=tau_e, eta=eta)
    e0 = a_plus * math.exp(-(t_post - t_pre) * dt / 20.0)
    # without reward: the eligibility at the end is e0 decayed over the time since the pairing
    _, traces = P.run(rule, pre, post, jnp.full((1, 1), 0.5), dt=dt, modulator=jnp.zeros(steps))
    np.testing.assert_allclose(float(traces.eligibility[0, 0]), e0 * math.exp(-(steps - 1 - t_post) * dt / tau_e),
                               rtol=1e-10)
    # one reward pulse at t_reward: dw = dt eta M e(t_reward)
    m = jnp.zeros(steps).at[t_reward].set(reward)
    w, _ = P.run(rule, pre, post, jnp.full((1, 1), 0.5), dt=dt, modulator=m)
    expected = dt * eta * reward * e0 * math.exp(-(t_reward - t_post) * dt / tau_e)
    np.testing.assert_allclose(float(w[0, 0]) - 0.5, expected, rtol=1e-10)
    # a per-neuron modulator reaches only its own postsynaptic column
    post2 = jnp.concatenate([post, post], axis=1)
    m2 = jnp.zeros((steps, 2)).at[t_reward, 1].set(reward)
    w2, _ = P.run(rule, pre, post2, jnp.full((1, 2), 0.5), dt=dt, modulator=m2)
    np.testing.assert_allclose(np.asarray(w2[0]) - 0.5, [0.0, expected], rtol=1e-10, atol=1e-15)


# ---------------------------------------------------------------- inhibitory plasticity


def _ei_network(n_exc=40, n_inh=10):
    S = sj.synapses
    neuron = sj.neurons.SynapticLIF((S.ExponentialConductance(5.0, 0.0), S.ExponentialConductance(10.0, -80.0)),
                                    tau_mem=20.0, v_rest=-60.0, v_th=-50.0, v_reset=-60.0, t_ref=5.0, bias=15.0)
    n = n_exc + n_inh
    rng = np.random.default_rng(0)
    w = np.zeros((n, n))
    w[:n_exc, n_exc:] = 0.05 * (rng.random((n_exc, n_inh)) < 0.5)  # E -> I
    w[n_exc:, :n_exc] = -0.05  # I -> E, weak at first
    net = sj.networks.EINetwork(neuron, S.Dense(jnp.asarray(w)), n_exc, background_rate=2000.0,
                                background_weight=0.05, v_init=(-60.0, -50.0))
    mask = jnp.zeros((n, n), bool).at[n_exc:, :n_exc].set(True)
    return net, mask


def test_inhibitory_plasticity_brings_excitatory_rate_to_target():
    net, mask = _ei_network()
    dt, seconds, rho0 = 0.5, 3, 8.0
    steps = int(seconds * 1000 / dt)
    rule = P.InhibitorySTDP(eta=0.01, rho0=rho0, tau=20.0)

    @jax.jit
    def go(eta):
        r = P.InhibitorySTDP(eta=eta, rho0=rho0, tau=20.0)
        return P.simulate(net, r, jnp.zeros((steps, 1)), dt=dt, key=jax.random.key(1), mask=mask)

    learned, out = go(rule.eta)
    _, static = go(jnp.zeros(()))
    last = slice(steps // 2, None)  # the last 1.5 s
    rate = float(jnp.mean(out.readout[last, 0]))
    rate_static = float(jnp.mean(static.readout[last, 0]))
    assert rate_static > 3 * rho0  # far above the target without plasticity
    assert abs(rate - rho0) < 0.1 * rho0, (rate, rho0)
    # only the I -> E weights changed, and they grew
    w0, w1 = np.asarray(net.recurrent.weight), np.asarray(learned.recurrent.weight)
    np.testing.assert_array_equal(w1[~np.asarray(mask)], w0[~np.asarray(mask)])
    assert np.mean(-w1[40:, :40]) > 2 * np.mean(-w0[40:, :40])


def test_synaptic_scaling_closed_forms():
    dt, beta, rho0, tau, steps = 1.0, 1e-5, 5.0, 500.0, 300
    rule = P.SynapticScaling(beta=beta, rho0=rho0, tau=tau)
    pre = jnp.zeros((steps, 2))
    # a silent neuron: every input weight grows geometrically, w (1 + dt beta rho0)^T
    w, traces = P.run(rule, pre, jnp.zeros((steps, 1)), jnp.array([[0.5], [0.2]]), dt=dt)
    np.testing.assert_allclose(np.asarray(w)[:, 0], np.array([0.5, 0.2]) * (1 + dt * beta * rho0) ** steps,
                               rtol=1e-12)
    # a regular 50 Hz train: the rate estimate is the trace's geometric sum, and weights shrink
    post = jnp.zeros((steps, 1)).at[::20, 0].set(1.0)
    w, traces = P.run(rule, pre, post, jnp.array([[0.5], [0.2]]), dt=dt)
    spikes = np.arange(0, steps, 20)
    a = np.sum(np.exp(-(steps - 1 - spikes) * dt / tau))
    np.testing.assert_allclose(float(rule.rate(traces)[0]), 1000.0 * a / tau, rtol=1e-12)
    # the weights: w0 prod_k (1 + dt beta (rho0 - nu_k)), nu_k the rate estimate from spikes before step k
    nu = [1000.0 / tau * np.sum(np.exp(-(k - spikes[spikes < k]) * dt / tau)) for k in range(steps)]
    factor = np.prod([1 + dt * beta * (rho0 - v) for v in nu])
    np.testing.assert_allclose(np.asarray(w)[:, 0], np.array([0.5, 0.2]) * factor, rtol=1e-12)
    assert factor < 1  # 50 Hz is above the 5 Hz target: the inputs were scaled down


def test_sparse_row_column_updates_equal_dense():
    """Updating only the rows and columns of the neurons that spiked (with the dense update in steps
    with more than `max_spikes` spikes) gives the dense update's weights and spikes."""
    net, mask = _ei_network(16, 4)
    w = net.recurrent.weight
    exc_mask = (jnp.arange(20) < 16)[:, None] & (w != 0)
    x = jnp.zeros((300, 1))
    max_spikes = 2
    for rule, m in ((P.PairSTDP(0.01, 0.012, 16.8, 33.7, weight_dependence="soft", w_max=0.2), exc_mask),):
        dense_net, dense = P.simulate(net, rule, x, dt=0.5, key=jax.random.key(0), mask=m)
        sparse_net, sparse = P.simulate(net, rule, x, dt=0.5, key=jax.random.key(0), mask=m, max_spikes=max_spikes)
        counts = np.asarray(dense.readout[:, 0] * 16 + dense.readout[:, 1] * 4) * 0.5 / 1000.0
        assert np.any(counts > max_spikes + 0.5) and np.any((counts > 0.5) & (counts < max_spikes + 0.5))
        np.testing.assert_allclose(np.asarray(sparse_net.recurrent.weight), np.asarray(dense_net.recurrent.weight),
                                   rtol=1e-12, atol=1e-15)
        np.testing.assert_array_equal(np.asarray(sparse.readout), np.asarray(dense.readout))
        assert not np.allclose(np.asarray(dense_net.recurrent.weight), np.asarray(w))


@pytest.mark.parametrize("rule", [P.PairSTDP(weight_dependence="multiplicative"), P.TripletSTDP(a2_plus=1e-3),
                                  P.InhibitorySTDP(sign=1)], ids=lambda r: type(r).__name__)
def test_spike_triggered_rules_rows_and_columns(rule):
    """`advance` gives `__call__`'s traces, and the rule applied to the selected rows (columns) with
    their traces gives those rows (columns) of the full update; rows and columns of silent neurons
    do not change."""
    rng = np.random.default_rng(0)
    w = jnp.asarray(rng.uniform(0.2, 0.8, (6, 5)))
    traces = jax.tree.map(lambda a: jnp.asarray(rng.uniform(0, 2, a.shape)), rule.init(w))
    pre, post = jnp.array([0.0, 1, 0, 0, 1, 0]), jnp.array([1.0, 0, 0, 1, 0])
    full, new_traces = rule(pre, post, traces, w, None, 0.5)
    for a, b in zip(jax.tree.leaves(rule.advance(pre, post, traces, 0.5)), jax.tree.leaves(new_traces)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-15)
    rows = jnp.array([1, 4])
    cols = jnp.array([0, 3])
    got_rows = rule(pre[rows], post, rule.select(traces, pre_index=rows), w[rows], None, 0.5)[0]
    got_cols = rule(pre, post[cols], rule.select(traces, post_index=cols), w[:, cols], None, 0.5)[0]
    np.testing.assert_allclose(np.asarray(got_rows), np.asarray(full[rows]), rtol=1e-14)
    np.testing.assert_allclose(np.asarray(got_cols), np.asarray(full[:, cols]), rtol=1e-14)
    silent = np.ix_([0, 2, 3, 5], [1, 2, 4])
    np.testing.assert_array_equal(np.asarray(full)[silent], np.asarray(w)[silent])


def test_event_projection_learns_like_its_dense_twin():
    """Pair STDP on the excitatory synapses of an event-driven projection gives the weights (and
    the activity) of the same network with the projection as a dense matrix, whether every stored
    synapse is updated every step or only those of the neurons that spiked (`max_spikes`, with
    the full update in steps with more spikes)."""
    kw = dict(key=jax.random.key(3), connectivity="fixed_in_degree", k=6)
    event_net = sj.networks.EINetwork.coba(30, **kw)
    dense_net = sj.networks.EINetwork.coba(30, dense=True, **kw)
    proj = event_net.recurrent
    rule = P.PairSTDP(0.05, 0.06, 16.8, 33.7)
    x = jnp.zeros((300, 1))
    event_mask = (proj.channels == 0)[:, None] & (proj.targets < 30)
    dense_mask = (jnp.arange(30) < event_net.n_exc)[:, None] & (dense_net.recurrent.weight != 0)
    learned_event, out_event = P.simulate(event_net, rule, x, dt=0.1, key=jax.random.key(0), mask=event_mask)
    learned_dense, out_dense = P.simulate(dense_net, rule, x, dt=0.1, key=jax.random.key(0), mask=dense_mask)
    learned_spiking, out_spiking = P.simulate(event_net, rule, x, dt=0.1, key=jax.random.key(0), mask=event_mask,
                                              max_spikes=1)
    counts = np.asarray(out_dense.readout[:, 0] * event_net.n_exc + out_dense.readout[:, 1] * event_net.n_inh) * 1e-4
    assert np.any(counts > 1.5) and np.any((counts > 0.5) & (counts < 1.5))  # both branches ran
    for learned, out in ((learned_event, out_event), (learned_spiking, out_spiking)):
        np.testing.assert_array_equal(np.asarray(out.readout), np.asarray(out_dense.readout))
        np.testing.assert_allclose(np.asarray(learned.recurrent.dense()), np.asarray(learned_dense.recurrent.weight),
                                   rtol=1e-12, atol=1e-15)
    assert not np.allclose(np.asarray(learned_dense.recurrent.weight), np.asarray(dense_net.recurrent.weight))


def test_spike_driven_update_in_chunks_equals_update_of_every_synapse():
    """The spike-driven update of a dense matrix (a loop over chunks of the neurons that spiked,
    several chunks here, with synapses between spiking neurons of different chunks) gives the
    weights of the update of every synapse, and its custom derivative in the rule's parameters,
    the traces and the weights equals the autodiff of that update. (The stored synapses of an
    `EventProjection`: the next test.)"""
    from simjax.plasticity._spike_driven import _spike_driven_update

    n = 40
    rng = np.random.default_rng(0)
    spikes = jnp.asarray((rng.random(n) < 0.7).astype(float))  # about 28 spikes: 4 chunks
    assert int(spikes.sum()) > 2 * P._spike_driven.CHUNK
    traces = P.PairTraces(pre=jnp.asarray(rng.uniform(0, 2, n)), post=jnp.asarray(rng.uniform(0, 2, n)))
    rule = P.PairSTDP(0.05, 0.06, 16.8, 33.7, w_max=1.0)
    mask = jnp.asarray(rng.random((n, n)) < 0.8)
    weights = jnp.asarray(rng.uniform(0.1, 0.9, (n, n)))
    chunked = lambda r, t, w: _spike_driven_update(8, r, spikes, t, w, mask, 0.1)  # noqa: E731
    every = lambda r, t, w: jnp.where(mask, r(spikes, spikes, t, w, None, 0.1)[0], w)  # noqa: E731
    probe = jnp.asarray(rng.normal(size=weights.shape))
    (got, got_grads), (want, want_grads) = (
        jax.jit(lambda r, t, w, f=f: (f(r, t, w), jax.vjp(f, r, t, w)[1](probe)))(rule, traces, weights)
        for f in (chunked, every))
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=0)
    for g, w in zip(jax.tree.leaves(got_grads), jax.tree.leaves(want_grads)):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)


def test_update_inside_the_propagation_loop_equals_delivery_then_update():
    """One loop that delivers a step's spikes and updates the synapses of the spiking neurons (many
    chunks, synapses between spiking neurons of different chunks, two receptor channels, per-synapse
    delays, release values other than 1, a propagation budget smaller than the number of spikes)
    gives `EventProjection.deliver`'s buffer and dropped count from the old weights and the update
    of every synapse; its derivative equals the autodiff of those two."""
    from simjax.plasticity._propagation_update import _reference, propagate_and_update
    from simjax.plasticity._spike_driven import _event_update, incoming_slots
    from simjax.synapses._delay import DelayBuffer
    from simjax.synapses._spike_ranks import spike_ranks

    n, length = 40, 4
    rng = np.random.default_rng(2)
    channels = (np.arange(n) >= 32).astype(np.int32)
    proj = sj.synapses.fixed_probability(n, n, 0.3, key=jax.random.key(4), weight=0.5, max_spikes=20,
                                         channels=channels, delays=None)
    proj = eqx.tree_at(lambda p: p.delays, proj, jnp.asarray(rng.integers(0, length - 1, proj.weight.shape), jnp.int32),
                       is_leaf=lambda x: x is None)
    spikes = jnp.asarray((rng.random(n) < 0.7).astype(float))  # about 28 spikes: 7 chunks, 8 past the budget
    assert int(spikes.sum()) > proj.max_spikes
    released = spikes * jnp.asarray(rng.uniform(0.2, 1.0, n))
    traces = P.PairTraces(pre=jnp.asarray(rng.uniform(0, 2, n)), post=jnp.asarray(rng.uniform(0, 2, n)))
    rule = P.PairSTDP(0.05, 0.06, 16.8, 33.7, w_max=1.0)
    proj = eqx.tree_at(lambda p: p.weight, proj, jnp.asarray(rng.uniform(0.1, 0.9, proj.weight.shape)))
    incoming = jnp.asarray(incoming_slots(np.asarray(proj.targets), n))
    mask = (proj.targets < n) & jnp.asarray(rng.random(proj.weight.shape) < 0.8)
    buffer = DelayBuffer(slots=jnp.asarray(rng.normal(size=(length, 2, n))), cursor=jnp.asarray(2, jnp.int32))
    ranks = spike_ranks(spikes)

    def fused(r, p, v, b, t):
        out, dropped, w = propagate_and_update(8, r, p, incoming, spikes, v, ranks, b, t, mask, 0.1)
        return (out.slots, w), (out.cursor, dropped)

    def reference(r, p, v, b, t):
        out, dropped, w = _reference(8, r, p, incoming, spikes, v, ranks, b, t, mask, 0.1)
        return (out.slots, w), (out.cursor, dropped)

    probe = (jnp.asarray(rng.normal(size=buffer.slots.shape)), jnp.asarray(rng.normal(size=proj.weight.shape)))
    args = (rule, proj, released, buffer, traces)
    got, want = (jax.jit(lambda *a, f=f: (f(*a), jax.vjp(lambda *b: f(*b)[0], *a)[1](probe)))(*args)
                 for f in (fused, reference))
    (got_out, got_int), got_grads = got
    (want_out, want_int), want_grads = want
    np.testing.assert_array_equal(np.asarray(got_int[0]), 3)
    np.testing.assert_array_equal(np.asarray(got_int[1]), int(spikes.sum()) - proj.max_spikes)
    np.testing.assert_array_equal(np.asarray(want_int[1]), np.asarray(got_int[1]))
    np.testing.assert_allclose(got_out[0], want_out[0], rtol=1e-13, atol=1e-14)  # (summation order)
    every = _event_update(rule, proj.targets, spikes, traces, proj.weight, mask, 0.1)
    np.testing.assert_allclose(got_out[1], every, rtol=1e-14, atol=0)
    assert not np.allclose(got_out[1], proj.weight) and not np.allclose(got_out[0], buffer.slots)
    inexact = lambda tree: [a for a in jax.tree.leaves(tree) if jnp.issubdtype(a.dtype, jnp.inexact)]  # noqa: E731
    assert len(inexact(got_grads)) == len(inexact(want_grads)) == 11  # rule 6, weights, values, buffer, traces 2
    for g, w in zip(inexact(got_grads), inexact(want_grads)):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------- vmap and gradients


def _poisson(seed, steps, n_pre, n_post, p=0.04):
    rng = np.random.default_rng(seed)
    return (jnp.asarray((rng.random((steps, n_pre)) < p).astype(float)),
            jnp.asarray((rng.random((steps, n_post)) < p).astype(float)))


def test_vmap_over_rule_parameters_equals_loop():
    pre, post = _poisson(1, 300, 4, 3)
    w0 = jnp.full((4, 3), 0.5)
    a_plus = jnp.array([0.002, 0.01, 0.02])
    tau_plus = jnp.array([10.0, 20.0, 35.0])

    def final(a, tau):
        rule = P.PairSTDP(a_plus=a, a_minus=0.01, tau_plus=tau, tau_minus=20.0, weight_dependence="soft", w_max=1.0)
        return P.run(rule, pre, post, w0, dt=1.0)[0]

    batched = jax.vmap(final)(a_plus, tau_plus)
    looped = jnp.stack([final(a, t) for a, t in zip(a_plus, tau_plus)])
    np.testing.assert_allclose(np.asarray(batched), np.asarray(looped), rtol=1e-12, atol=1e-15)
    # and a vmapped module: one rule whose leaves carry the batch axis
    rules = jax.vmap(lambda a, t: P.PairSTDP(a, 0.01, t, 20.0, weight_dependence="soft", w_max=1.0))(a_plus, tau_plus)
    by_module = jax.vmap(lambda r: P.run(r, pre, post, w0, dt=1.0)[0])(rules)
    np.testing.assert_allclose(np.asarray(by_module), np.asarray(looped), rtol=1e-12, atol=1e-15)


def _grad_cases():
    pre, post = _poisson(2, 1200, 3, 2)
    rng = np.random.default_rng(5)
    modulator = jnp.asarray(rng.normal(size=1200))
    return [
        ("pair", lambda th: P.PairSTDP(th[0], 0.012, th[1], 20.0, weight_dependence="soft", w_max=1.0),
         jnp.array([0.01, 18.0]), None, pre, post),
        ("triplet", lambda th: P.TripletSTDP(a3_plus=th[0], tau_y=th[1], weight_dependence="soft", w_max=1.0),
         jnp.array([6.2e-3, 125.0]), None, pre, post),
        ("three-factor", lambda th: P.RewardModulatedSTDP(th[0], 1.2, 20.0, 20.0, tau_e=th[1], eta=1e-3,
                                                          weight_dependence="soft", w_max=1.0),
         jnp.array([1.0, 150.0]), modulator, pre, post),
        ("inhibitory", lambda th: P.InhibitorySTDP(eta=1e-3, rho0=th[0], tau=th[1], sign=1),
         jnp.array([5.0, 20.0]), None, pre, post),
    ]


@pytest.mark.parametrize("case", _grad_cases(), ids=lambda c: c[0])
def test_gradient_in_rule_parameters_matches_finite_differences(case):
    _, make, theta, modulator, pre, post = case
    w0 = jnp.full((3, 2), 0.5)
    c = jnp.arange(1.0, 7.0).reshape(3, 2)

    def loss(th, memory="store"):
        w, _ = P.run(make(th), pre, post, w0, dt=1.0, modulator=modulator, memory=memory, segment=100)
        return jnp.sum(c * w**2)

    grad = jax.grad(loss)(theta)
    fd = []
    value = jax.jit(loss)
    for i in range(theta.size):
        h = 1e-5 * float(theta[i])
        e = jnp.zeros_like(theta).at[i].set(h)
        fd.append((float(value(theta + e)) - float(value(theta - e))) / (2 * h))
    np.testing.assert_allclose(np.asarray(grad), fd, rtol=1e-6)
    assert np.all(np.abs(np.asarray(grad)) > 0)
    if case[0] == "pair":  # the checkpointed backward pass gives the same gradient
        grad_ckpt = jax.grad(lambda th: loss(th, "checkpoint"))(theta)
        np.testing.assert_allclose(np.asarray(grad_ckpt), np.asarray(grad), rtol=1e-12)


# ---------------------------------------------------------------- bad input


def test_bad_input(unchecked):
    with pytest.raises(ValueError, match=r"PairSTDP: tau_plus must be finite and > 0, got -5"):
        P.PairSTDP(tau_plus=-5.0)
    with pytest.raises(ValueError, match=r"TripletSTDP: tau_y must be finite and > 0"):
        P.TripletSTDP(tau_y=0.0)
    with pytest.raises(ValueError, match=r"unknown pairing 'nearest_neighbour'; expected one of 'all', 'nearest'"):
        P.PairSTDP(pairing="nearest_neighbour")
    with pytest.raises(ValueError, match=r"weight_dependence='soft' needs a finite w_max"):
        P.PairSTDP(weight_dependence="soft")
    with pytest.raises(ValueError, match=r"sign must be \+1 .* or -1"):
        P.InhibitorySTDP(sign=0)
    pre, post = _poisson(0, 20, 2, 3)
    w0 = jnp.full((2, 3), 0.5)
    rule = P.RewardModulatedSTDP()
    with pytest.raises(ValueError, match=r"the modulator has shape \(20, 2\); expected \[time\] or \[time, \*m\] "
                                         r"with m a shape that broadcasts to the postsynaptic neurons' \(3,\)"):
        P.run(rule, pre, post, w0, dt=1.0, modulator=jnp.zeros((20, 2)))
    with pytest.raises(ValueError, match=r"the modulator has shape \(19,\); expected \[time, \.\.\.\] with time = 20"):
        P.run(rule, pre, post, w0, dt=1.0, modulator=jnp.zeros(19))
    with pytest.raises(ValueError, match=r"RewardModulatedSTDP needs a modulator"):
        P.run(rule, pre, post, w0, dt=1.0)
    with pytest.raises(ValueError, match=r"PairSTDP has no third factor"):
        P.run(P.PairSTDP(), pre, post, w0, dt=1.0, modulator=jnp.zeros(20))
    with pytest.raises(ValueError, match=r"post has shape \(20, 3\), expected \(20, 2\)"):
        P.run(P.PairSTDP(), pre, post, jnp.full((2, 2), 0.5), dt=1.0)
    with pytest.raises(ValueError, match=r"dt must be finite and > 0"):
        P.run(P.PairSTDP(), pre, post, w0, dt=-1.0)
    with pytest.raises(ValueError, match=r"RewardModulatedSTDP: the modulator has shape \(4,\)"):
        rule(pre[0], post[0], rule.init(w0), w0, jnp.zeros(4), 1.0)
    # a rule attached to a projection it cannot serve
    event_net = sj.networks.EINetwork.coba(20, key=jax.random.key(0), p=0.2)
    with pytest.raises(TypeError, match=r"RewardModulatedSTDP needs the dense weights of a simjax.synapses.Dense "
                                        r"recurrent projection .* got EventProjection"):
        P.simulate(event_net, P.RewardModulatedSTDP(), jnp.zeros((10, 1)), dt=0.1, modulator=jnp.zeros(10))
    net, mask = _ei_network(8, 2)
    with pytest.raises(ValueError, match=r"InhibitorySTDP with sign=-1 serves inhibitory \(w <= 0\) synapses, but "
                                         r"the plastic synapse 0 -> \d+ has weight 0.05"):
        P.simulate(net, P.InhibitorySTDP(), jnp.zeros((10, 1)), dt=0.5)
    with pytest.raises(TypeError, match=r"max_spikes needs a rule whose weights change only at spikes"):
        P.simulate(net, P.SynapticScaling(sign=-1), jnp.zeros((10, 1)), dt=0.5, mask=mask, max_spikes=4)
    with pytest.raises(TypeError, match=r"rule must be a simjax.plasticity rule"):
        P.simulate(net, sj.rules.Exact(), jnp.zeros((10, 1)), dt=0.5, mask=mask)


def test_meta_learning_recovers_pair_rule_parameters():
    """Fit a pair rule's four parameters by gradient descent to the weight changes another
    parameter set produced (Poisson trains, 8 x 4 x 4 synapses, 500 ms): within 5 %."""
    rng = np.random.default_rng(0)
    pre = jnp.asarray((rng.random((500, 8, 4)) < 0.05).astype(float))
    post = jnp.asarray((rng.random((500, 8, 4)) < 0.05).astype(float))
    w0 = jnp.full((8, 4, 4), 0.5)

    def make(log_theta):
        a_plus, a_minus, tau_plus, tau_minus = jnp.exp(log_theta)
        return P.PairSTDP(a_plus, a_minus, tau_plus, tau_minus)

    truth = np.array([0.01, 0.012, 17.0, 34.0])
    target = P.run(make(jnp.log(jnp.asarray(truth))), pre, post, w0, dt=1.0)[0]

    def loss(log_theta):
        return jnp.mean((P.run(make(log_theta), pre, post, w0, dt=1.0)[0] - target) ** 2) / 1e-6

    opt = optax.adam(0.1)

    @jax.jit
    def fit(log_theta):
        def step(carry, _):
            log_theta, state = carry
            grad = jax.grad(loss)(log_theta)
            updates, state = opt.update(grad, state)
            return (optax.apply_updates(log_theta, updates), state), None
        return jax.lax.scan(step, (log_theta, opt.init(log_theta)), None, length=300)[0][0]

    fitted = np.exp(np.asarray(fit(jnp.log(jnp.array([0.005, 0.02, 10.0, 20.0])))))
    np.testing.assert_allclose(fitted, truth, rtol=0.05)


# ---------------------------------------------------------------- the experiment behind configs/plasticity_*.toml


def test_plasticity_configs_load_and_quick_runs(tmp_path):
    for kind in experiment.KINDS:
        raw = cfgmod.load(CONFIGS / f"plasticity_{kind}.toml")
        cfg = cfgmod.merge(cfgmod.merge(experiment.DEFAULTS, raw), experiment.QUICK)
        experiment.validate(cfg)
        assert cfg["protocol"]["kind"] == kind
    cfg = cfgmod.merge(cfgmod.merge(experiment.DEFAULTS, cfgmod.load(CONFIGS / "plasticity_window.toml")),
                       experiment.QUICK)
    summary = experiment.run(cfg, tmp_path)
    assert summary["max_abs_error_all"] < 1e-9 and summary["max_abs_error_nearest"] < 1e-9
    assert (tmp_path / "summary.json").is_file() and (tmp_path / "window.csv").is_file()
    bad = cfgmod.merge(experiment.DEFAULTS, {"protocol": {"kind": "windows"}})
    with pytest.raises(cfgmod.ConfigError, match=r"protocol.kind = 'windows' is not allowed"):
        experiment.validate(bad)
    with pytest.raises(cfgmod.ConfigError, match=r"inhibitory.tau = -20.0 is not allowed: expected a number > 0"):
        cfgmod.merge(experiment.DEFAULTS, {"inhibitory": {"tau": -20.0}})


def test_reward_modulated_stdp_learns_to_fire_for_the_rewarded_pattern(tmp_path):
    """A LIF neuron that fires for all three input patterns at first (without learning) fires for the
    rewarded one only after 300 presentations with reward-modulated STDP (2 seeds)."""
    cfg = cfgmod.merge(cfgmod.merge(experiment.DEFAULTS, cfgmod.load(CONFIGS / "plasticity_reward.toml")),
                       experiment.QUICK)
    summary = experiment.run(cfg, tmp_path)
    assert summary["p_fire_others_without_learning"] > 0.6 and summary["p_fire_target_without_learning"] > 0.6
    assert summary["p_fire_target_mean"] > 0.9
    assert summary["p_fire_others_mean"] < 0.3
    assert summary["weight_target_mean"] > 2 * summary["weight_others_mean"]
