r"""Independent reference: the Vogels-Abbott COBA network simulated by simjax (`EINetwork.coba`) and by
Brian2 with the same connectivity and initial state.

Both are built from one seeded index list: simjax draws the connectivity
(`simjax.synapses.fixed_probability`, p = 0.02, no self-connections) and the initial potentials
(uniform in `[v_reset, v_th]`); Brian2 gets the same `(i, j)` pairs through
`Synapses.connect(i=..., j=...)` and the same `v`. Brian2 integrates

    dv/dt = (ge (Ee - v) + gi (Ei - v) - (v - El) + I) / taum : volt (unless refractory)
    dge/dt = -ge / taue;  dgi/dt = -gi / taui

with `method="exponential_euler"` and its default schedule (state update, threshold, this step's
spikes into the conductances, reset), which is the `SynapticLIF` step; both run in float64. Brian2
labels a spike with the start of its step and holds refractory neurons until `lastspike +
refractory`; simjax's spike time is the end of the step, so Brian2's `refractory` is
`t_ref + dt` for the same 50-step hold.
The network is chaotic: float rounding differences (summation order of the conductance jumps)
grow until single spikes differ, so the comparison is exact spike counts over the first 50 ms
and population rates within 3 % over 1 s.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import simjax as sj

from .test_brian2 import _import_brian2

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

N, DT, T_MS = 4000, 0.1, 1000.0


@pytest.fixture(scope="module")
def runs():
    net = sj.networks.EINetwork.coba(N, key=jax.random.key(11), dt=DT, max_spikes=400)
    state = net.init(jax.random.key(12), ())
    steps = round(T_MS / DT)
    net = sj.networks.EINetwork(net.neuron, net.recurrent, net.n_exc, record_spikes=tuple(range(N)))
    run = jax.jit(lambda s: sj.simulate(net, jnp.zeros((steps, 1)), dt=DT, state=s, record=("readout",)))
    out = run(state)
    assert int(out.final_state.dropped) == 0
    early = jax.jit(lambda s: sj.simulate(net, jnp.zeros((500, 1)), dt=DT, state=s, record=("spikes",)))(state)
    counts_50ms = np.asarray(early.spikes).sum(0)
    rates = np.asarray(out.readout).mean(0)

    b2 = _import_brian2()
    b2.prefs.codegen.target = "numpy"
    b2.prefs.logging.file_log = False
    b2.prefs.logging.std_redirection = False
    b2.start_scope()
    ms, mV = b2.ms, b2.mV
    eqs = """dv/dt = (ge * (Ee - v) + gi * (Ei - v) - (v - El) + I) / taum : volt (unless refractory)
             dge/dt = -ge / taue : 1
             dgi/dt = -gi / taui : 1"""
    ns = dict(taum=20 * ms, taue=5 * ms, taui=10 * ms, Ee=0 * mV, Ei=-80 * mV, El=-60 * mV, I=20 * mV)
    # Brian2 counts the refractory period from the start of the spike's step (lastspike = t of the
    # step), simjax from its end (the spike time): Brian2's `refractory` is t_ref + dt for the same hold.
    group = b2.NeuronGroup(N, eqs, threshold="v > -50*mV", reset="v = -60*mV", refractory=(5 + DT) * ms,
                           method="exponential_euler", dt=DT * ms, namespace=ns)
    group.v = np.asarray(state.neuron.v) * mV
    pre, post = net.recurrent.indices()
    w = np.abs(net.recurrent.synapse_values(net.recurrent.weight))
    exc = pre < net.n_exc
    ce = b2.Synapses(group, group, "w : 1", on_pre="ge += w", dt=DT * ms)
    ce.connect(i=pre[exc], j=post[exc])
    ce.w[:] = w[exc]
    ci = b2.Synapses(group, group, "w : 1", on_pre="gi += w", dt=DT * ms)
    ci.connect(i=pre[~exc], j=post[~exc])
    ci.w[:] = w[~exc]
    monitor = b2.SpikeMonitor(group)
    b2_net = b2.Network(group, ce, ci, monitor)
    b2_net.run(T_MS * ms, namespace={})
    t = np.asarray(monitor.t / ms)
    i = np.asarray(monitor.i)
    b2_counts_50ms = np.bincount(i[t < 50.0 - DT / 2], minlength=N)
    b2_rates = np.array([np.sum(i < net.n_exc) / net.n_exc, np.sum(i >= net.n_exc) / net.n_inh]) / (T_MS / 1000)
    return counts_50ms, b2_counts_50ms, rates, b2_rates


def test_coba_same_spike_counts_over_50ms(runs):
    counts, b2_counts, _, _ = runs
    assert b2_counts.sum() > 500  # the network is active from the start
    np.testing.assert_array_equal(counts, b2_counts)


def test_coba_rates_within_3_percent_over_1s(runs):
    _, _, rates, b2_rates = runs
    assert np.all(b2_rates > 1.0), b2_rates
    np.testing.assert_allclose(rates, b2_rates, rtol=0.03)
