"""The event-driven `SynapticLIF`: its free flow against an adaptive ODE solution, and the
clock-driven step converging to the event-driven spike times as dt -> 0 (COBA and CUBA).

The clock reference is written here from `SynapticLIF.step` (excitatory and inhibitory inputs
summed apart, as `EINetwork` delivers them): an input spike reaches the receptors at the start of
the step after the one that holds it, and a spike is detected at the end of its step, so every
spike time is off by O(dt) and the error must shrink about tenfold per tenfold smaller dt.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

import simjax as sj
from simjax.neurons import SynapticLIF
from simjax.synapses import AlphaCurrent, ExponentialConductance, ExponentialCurrent, MgBlock

from .helpers import assert_no_borderline_spikes, event_spikes, spikes_per_neuron, three_neurons

T1 = 44.0  # before the third spike of neuron 2 in the COBA network (near 48 ms), which 3 % weight changes move by 3 ms
INPUT_TIMES = np.array([2.3, 6.1, 11.7, 17.2, 24.9, 29.4, 36.5, 41.0])
INPUT_IDS = np.array([0, 1, 0, 1, 0, 1, 0, 1])
W_IN = np.array([[1.0, 0.2, 0.8], [0.3, 1.0, 0.9]])
W_REC = np.array([[0.0, 0.6, -0.4], [0.5, 0.0, -0.3], [0.4, -0.9, 0.0]])


def neuron(kind, dtype=jnp.float64):
    """COBA: conductances (leak units) towards 0 and -80 mV; CUBA: currents (mV)."""
    if kind == "coba":
        receptors = (ExponentialConductance(5.0, 0.0), ExponentialConductance(10.0, -80.0))
    else:
        receptors = (ExponentialCurrent(5.0), ExponentialCurrent(10.0))
    bias = jnp.asarray([7.0, 6.0, 8.0], dtype)
    return SynapticLIF(receptors, tau_mem=20.0, v_rest=-60.0, v_th=-50.0, v_reset=-60.0, t_ref=2.0, bias=bias)


SCALES = {"coba": (0.45, 0.5), "cuba": (34.0, 25.0)}  # input, recurrent


def network(kind, scale=1.0):
    s_in, s_rec = SCALES[kind]
    return three_neurons(neuron(kind), scale * s_in * W_IN, scale * s_rec * W_REC)


def event_driven(net, train):
    return event_spikes(net, train, T1, 48)


@eqx.filter_jit
def clock_driven(net, arrivals, dt):
    """Spike raster `[steps, n]` of the clock reference; `arrivals[k]` the input spikes of step k."""
    lif = net.neuron
    w_in, w_rec = net.w_in.dense(), net.recurrent_weight()

    def split(x, w):
        return x @ jnp.maximum(w, 0.0), x @ jnp.minimum(w, 0.0)

    def body(carry, x):
        state, last = carry
        (e_in, i_in), (e_rec, i_rec) = split(x, w_in), split(last, w_rec)
        state, spikes = lif.step(state, (e_in + e_rec, i_in + i_rec), dt)
        return (state, spikes), spikes

    state = lif.init(None, (3,))
    _, raster = jax.lax.scan(body, (state, jnp.zeros(3)), arrivals)
    return raster


def per_neuron(times, ids):
    return spikes_per_neuron(times, ids, 3)


def clock_times(net, dt):
    steps = int(round(T1 / dt))
    arrivals = np.zeros((steps, 2))
    # an input at time t lies in step floor(t / dt) and reaches the receptors at the next step's start
    np.add.at(arrivals, (np.floor(INPUT_TIMES / dt).astype(int) + 1, INPUT_IDS), 1.0)
    raster = np.asarray(clock_driven(net, jnp.asarray(arrivals), dt))
    return [(np.flatnonzero(raster[:, j]) + 1) * dt for j in range(3)]


@pytest.mark.parametrize("kind", ["coba", "cuba"])
def test_clock_driven_synaptic_lif_converges_to_event_driven(kind):
    train = sj.SpikeTrain(jnp.asarray(INPUT_TIMES), jnp.asarray(INPUT_IDS), n=2)
    exact = per_neuron(*event_driven(network(kind), train))
    assert all(len(t) >= 1 for t in exact) and sum(len(t) for t in exact) >= 6, exact
    assert_no_borderline_spikes(lambda scale: per_neuron(*event_driven(network(kind, scale), train)), exact)
    errors = []
    for dt in (0.1, 0.01):
        clock = clock_times(network(kind), dt)
        assert [len(t) for t in clock] == [len(t) for t in exact], (dt, clock, exact)
        errors.append(max(np.max(np.abs(c - e)) for c, e in zip(clock, exact)))
    assert errors[1] < 0.05 and errors[1] < errors[0] / 5, errors


def reference_flow(lif, v0, g0, c0, t):
    """`v(t)` of one neuron by SciPy's adaptive 8th-order Runge-Kutta solver (DOP853, rtol and atol
    1e-13, float64): two conductances `g0` and one alpha current (state `c0 = (h, i)`)."""
    (exc, inh), alpha = lif.receptors[:2], lif.receptors[2]
    tau_m, rest = float(lif.tau_mem), float(lif.v_rest + lif.bias)
    taus, e_rev, tau_a = np.array([float(exc.tau), float(inh.tau)]), np.array([float(exc.e_rev), float(inh.e_rev)]), \
        float(alpha.tau)

    def field(_, y):
        v, g, h, i = y[0], y[1:3], y[3], y[4]
        dv = (rest - v + np.sum(g * (e_rev - v)) + i) / tau_m
        return np.concatenate([[dv], -g / taus, [-h / tau_a, (np.e * h - i) / tau_a]])

    sol = solve_ivp(field, (0.0, t), np.array([v0, *g0, *c0]), method="DOP853", rtol=1e-13, atol=1e-13)
    return sol.y[0, -1]


@eqx.filter_jit
def free_flow(lif, state, t):
    return lif.free_flow(state, t)


def test_conductance_free_flow_matches_an_adaptive_ode_solution():
    lif = SynapticLIF((ExponentialConductance(5.0, 0.0), ExponentialConductance(10.0, -80.0), AlphaCurrent(3.0)),
                      tau_mem=20.0, v_rest=-60.0, v_th=-50.0, v_reset=-60.0, t_ref=2.0, bias=20.0)
    g0 = [(0.3, 0.5), (3.0, 0.1), (0.0, 8.0)]
    times = [0.01, 0.7, 3.0, 20.0, 150.0, 2000.0]
    state = lif.init(None, (len(g0), len(times)))
    g = np.broadcast_to(np.asarray(g0)[:, None, :], (len(g0), len(times), 2))
    synapses = (jnp.asarray(g[..., 0]), jnp.asarray(g[..., 1]),
                type(state.synapses[2])(jnp.full(g.shape[:2], 2.0), jnp.full(g.shape[:2], -1.0)))
    state = eqx.tree_at(lambda s: (s.v, s.synapses), state, (jnp.full(g.shape[:2], -55.0), synapses))
    flowed = free_flow(lif, state, jnp.asarray(times))
    expected = [[reference_flow(lif, -55.0, g_a, (2.0, -1.0), t) for t in times] for g_a in g0]
    np.testing.assert_allclose(flowed.v, expected, rtol=0, atol=1e-9)
    # During the hold v stays at its value, and afterwards it flows from the decayed receptors.
    held = eqx.tree_at(lambda s: s.refractory, state, jnp.full(g.shape[:2], 1.5))
    after = free_flow(lif, held, jnp.asarray(times) + 1.5)
    released = free_flow(lif, held, 1.5)
    assert np.allclose(released.v, -55.0)
    again = free_flow(lif, eqx.tree_at(lambda s: s.refractory, released, jnp.zeros(g.shape[:2])), jnp.asarray(times))
    np.testing.assert_allclose(after.v, again.v, rtol=0, atol=1e-9)


def test_event_driven_spike_time_gradient_matches_finite_differences():
    train = sj.SpikeTrain(jnp.asarray(INPUT_TIMES), jnp.asarray(INPUT_IDS), n=2)

    def first_spike(scale):
        times, ids = event_driven(network("coba", scale), train)
        return jnp.min(jnp.where(ids == 2, times, jnp.inf))

    grad = jax.grad(first_spike)(1.0)
    eps = 1e-6
    fd = (first_spike(1.0 + eps) - first_spike(1.0 - eps)) / (2 * eps)
    assert np.isfinite(grad) and abs(grad) > 1e-3
    np.testing.assert_allclose(grad, fd, rtol=1e-5)


def test_event_driven_synaptic_lif_rejects_what_it_cannot_integrate():
    blocked = SynapticLIF((ExponentialConductance(100.0, 0.0, mg_block=MgBlock()),), v_rest=-65.0, v_th=-50.0,
                          bias=20.0)
    net = sj.networks.RSNN(2, 3, 1, neuron=blocked, w_in=W_IN, w_rec=W_REC, w_out=np.ones((3, 1)))
    train = sj.SpikeTrain(jnp.asarray(INPUT_TIMES), jnp.asarray(INPUT_IDS), n=2)
    with pytest.raises(TypeError, match="mg_block"):
        sj.simulate(net, train, method="event", t1=T1, max_events=8)
    three = SynapticLIF((ExponentialCurrent(5.0),) * 3)
    net = sj.networks.RSNN(2, 3, 1, neuron=three, w_in=W_IN, w_rec=W_REC, w_out=np.ones((3, 1)))
    with pytest.raises(TypeError, match="at most two receptors"):
        sj.simulate(net, train, method="event", t1=T1, max_events=8)
    class Untimed(ExponentialCurrent):  # a user's receptor that does not say how long it lasts
        def time_constants(self):
            return sj.synapses.AbstractSynapse.time_constants(self)

    net = sj.networks.RSNN(2, 3, 1, neuron=SynapticLIF((Untimed(5.0),)), w_in=W_IN, w_rec=W_REC,
                           w_out=np.ones((3, 1)))
    with pytest.raises(TypeError, match="Untimed does not define `time_constants`"):
        sj.simulate(net, train, method="event", t1=T1, max_events=8)
    # the clock-driven step keeps one input per receptor: a single summed array is refused
    with pytest.raises(ValueError, match="tuple"):
        neuron("coba").step(neuron("coba").init(None, (3,)), jnp.zeros(3), 0.1)


def test_spike_times_under_a_constant_current_match_the_closed_form():
    """Without synaptic input a `SynapticLIF` driven by a constant current `I` above the
    threshold gap `theta = v_th - v_rest` fires first at `tau ln(I / (I - theta))` and then every
    `t_ref + tau ln(I / (I - theta))` (reset to rest)."""
    lif = neuron("coba")
    lif = SynapticLIF(lif.receptors, tau_mem=20.0, v_rest=-60.0, v_th=-50.0, v_reset=-60.0, t_ref=2.0)
    current = np.array([12.0, 20.0])
    times = np.asarray(sj.spike_times(lif, current=jnp.asarray(current), t1=100.0, max_spikes=8))
    climb = 20.0 * np.log(current / (current - 10.0))
    for row, c in zip(times, climb):
        expected = c + np.arange(8) * (2.0 + c)
        expected = expected[expected <= 100.0]
        np.testing.assert_allclose(row[:expected.size], expected, rtol=1e-12)
        assert np.all(np.isinf(row[expected.size:]))
