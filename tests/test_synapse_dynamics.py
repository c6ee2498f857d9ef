"""Synapse dynamics against closed forms and independent references: conductance LIF under constant
conductances, reversal-potential bounds, current kernels against quadrature, convergence of the
exponential-Euler step to an accurate ODE solution, delays, Tsodyks-Markram recursions, sparse
connectivity statistics, sparse vs dense propagation, gradients through sparse weights against
finite differences, and the bad-input errors."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

import simjax as sj
from simjax.synapses._delay import init_buffer, pop

S = sj.synapses


def _run(neuron, drives, dt):
    """Steps `neuron` (one unit) through `drives` (a list of per-step drives, arrays or tuples);
    the potential after each step."""
    stacked = jax.tree.map(lambda *a: jnp.stack(a), *drives)

    @jax.jit
    def run(stacked):
        def body(state, d):
            state, _ = neuron.step(state, d, dt)
            return state, state.v[0]
        return jax.lax.scan(body, neuron.init(None, (1,)), stacked)[1]

    return np.asarray(run(stacked)), None


def test_conductance_lif_matches_closed_form_under_constant_conductances():
    # tau = 1e15 ms: the conductances do not decay within the run (relative change ~1e-12).
    ge, gi, e_e, e_i, v_rest, bias, tau = 0.7, 1.9, 0.0, -80.0, -60.0, 5.0, 20.0
    neuron = sj.neurons.SynapticLIF((S.ExponentialConductance(1e15, e_e), S.ExponentialConductance(1e15, e_i)),
                                    tau_mem=tau, v_rest=v_rest, v_th=-20.0, v_reset=-60.0, bias=bias)
    dt, steps = 0.1, 400
    one = jnp.ones(1)
    drives = [(ge * one, -gi * one)] + [(0 * one, 0 * one)] * (steps - 1)
    v, _ = _run(neuron, drives, dt)
    t = dt * np.arange(1, steps + 1)
    g = 1.0 + ge + gi
    v_inf = (v_rest + bias + ge * e_e + gi * e_i) / g
    np.testing.assert_allclose(v, v_inf + (v_rest - v_inf) * np.exp(-g * t / tau), rtol=0, atol=1e-9)


def test_reversal_potentials_bound_the_membrane():
    neuron = sj.neurons.SynapticLIF((S.ExponentialConductance(5.0, 0.0), S.ExponentialConductance(10.0, -80.0)),
                                    tau_mem=20.0, v_rest=-60.0, v_th=-50.0, v_reset=-60.0, t_ref=2.0)
    rng = np.random.default_rng(0)
    n, steps = 200, 600
    # huge random conductance jumps: v is pulled hard towards both reversal potentials
    exc = jnp.asarray(rng.exponential(5.0, (steps, n)) * (rng.random((steps, n)) < 0.3))
    inh = jnp.asarray(-rng.exponential(20.0, (steps, n)) * (rng.random((steps, n)) < 0.3))

    @jax.jit
    def run(state):
        def body(state, d):
            pre = neuron.flow(neuron.receive(state, d), 0.1).v  # before threshold and reset
            state, s = neuron.step(state, d, 0.1)
            return state, (pre.min(), pre.max(), s.sum())
        return jax.lax.scan(body, state, (exc, inh))[1]

    lows, highs, counts = run(neuron.init(None, (n,)))
    lo, hi, spikes = float(lows.min()), float(highs.max()), float(counts.sum())
    assert spikes > 20  # the excitatory pull does reach threshold
    assert lo >= -80.0 - 1e-9 and hi <= 0.0 + 1e-9, (lo, hi)
    assert lo < -75.0 and hi > -50.0  # the inhibitory bound is approached; excitation reaches threshold


def _response_by_quadrature(kernel, t_end, tau_mem, n=400001):
    """v(t_end) of tau_mem dv/dt = -v + I(t), v(0) = 0, by the trapezoid rule on a fine grid."""
    s = np.linspace(0.0, t_end, n)
    return np.trapezoid(np.exp(-(t_end - s) / tau_mem) * kernel(s), s) / tau_mem


@pytest.mark.parametrize("which", ["exponential", "alpha", "dual", "delta"])
def test_current_synapses_integrate_exactly(which):
    tau_mem, w, dt, steps = 20.0, 2.0, 0.5, 60
    synapse, kernel = {
        "exponential": (S.ExponentialCurrent(4.0), lambda s: w * np.exp(-s / 4.0)),
        "alpha": (S.AlphaCurrent(3.0), lambda s: w * s / 3.0 * np.exp(1 - s / 3.0)),
        "dual": (S.DualExponentialCurrent(1.0, 6.0), None),
        "delta": (S.DeltaCurrent(), None),
    }[which]
    if which == "dual":
        t_p = 6.0 / 5.0 * np.log(6.0)
        norm = 1.0 / (np.exp(-t_p / 6.0) - np.exp(-t_p))
        kernel = lambda s: w * norm * (np.exp(-s / 6.0) - np.exp(-s))  # noqa: E731
    neuron = sj.neurons.SynapticLIF(synapse, tau_mem=tau_mem, v_rest=0.0, v_th=1e9, v_reset=0.0)
    assert neuron.exact
    drives = [w * jnp.ones(1)] + [jnp.zeros(1)] * (steps - 1)
    v, _ = _run(neuron, drives, dt)
    for k in (1, 7, 20, 59):
        t_end = dt * (k + 1)
        expected = w * np.exp(-t_end / tau_mem) if which == "delta" else _response_by_quadrature(kernel, t_end, tau_mem)
        np.testing.assert_allclose(v[k], expected, rtol=1e-8)
    if which == "dual":  # the kernel's peak is the weight
        state = synapse.receive(synapse.init((1,), jnp.float64), w * jnp.ones(1))
        assert float(synapse.current(synapse.decay(state, t_p))[0]) == pytest.approx(w, rel=1e-12)


@pytest.mark.parametrize("holds", [(0.0, 0.5, 0.9, 3.0), (0.0, 0.2, 0.5, 0.9)], ids=["on_grid", "off_grid"])
def test_exact_step_holds_refractory_neurons(holds):
    """Current receptors: a neuron held for `r` of the step `dt` keeps `v` for `min(r, dt)`, then
    flows from its decayed current (closed form); holds that are whole steps take the shared
    coefficients, a hold ending inside the step the per-neuron form."""
    tau_mem, tau_syn, dt, rest = 20.0, 4.0, 0.5, -49.0
    neuron = sj.neurons.SynapticLIF(S.ExponentialCurrent(tau_syn), tau_mem=tau_mem, v_rest=rest, v_th=1e9,
                                    v_reset=-60.0, t_ref=2.0)
    r = np.asarray(holds)
    v0, i0 = np.array([-55.0, -52.0, -58.0, -51.0]), np.array([3.0, -2.0, 1.5, 4.0])
    state = sj.neurons.SynapticLIFState(v=jnp.asarray(v0), refractory=jnp.asarray(r), synapses=(jnp.asarray(i0),))
    flowed = neuron.flow(state, dt)
    t = np.maximum(dt - r, 0.0)
    i_release = i0 * np.exp(-np.minimum(r, dt) / tau_syn)
    coupling = tau_syn / (tau_syn - tau_mem) * (np.exp(-t / tau_syn) - np.exp(-t / tau_mem))
    expected = rest + np.exp(-t / tau_mem) * (v0 - rest) + coupling * i_release
    np.testing.assert_allclose(flowed.v, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(flowed.synapses[0], i0 * np.exp(-dt / tau_syn), rtol=1e-14)
    np.testing.assert_allclose(flowed.refractory, np.maximum(r - dt, 0.0), atol=1e-15)


def test_alpha_response_finite_when_time_constants_coincide():
    syn = S.AlphaCurrent(20.0)
    state = syn.receive(syn.init((1,), jnp.float64), jnp.ones(1))
    got = float(syn.membrane_response(state, 7.0, jnp.asarray(20.0))[0])
    expected = _response_by_quadrature(lambda s: s / 20.0 * np.exp(1 - s / 20.0), 7.0, 20.0)
    np.testing.assert_allclose(got, expected, rtol=1e-8)


def test_exponential_euler_converges_to_the_ode_solution():
    """The COBA membrane with decaying conductances: the clock-driven step (exponential Euler)
    approaches an accurate ODE solution (scipy, rtol 1e-12) at first order in dt."""
    tau, v_rest, e_e, e_i, bias, g0e, g0i = 20.0, -60.0, 0.0, -80.0, 20.0, 3.0, 2.0

    def rhs(t, y):
        v, ge, gi = y
        return [(-(v - v_rest) + bias + ge * (e_e - v) + gi * (e_i - v)) / tau, -ge / 5.0, -gi / 10.0]

    t_end = 20.0
    exact = solve_ivp(rhs, (0, t_end), [v_rest, g0e, g0i], method="DOP853", rtol=1e-12, atol=1e-12).y[0, -1]
    neuron = sj.neurons.SynapticLIF((S.ExponentialConductance(5.0, e_e), S.ExponentialConductance(10.0, e_i)),
                                    tau_mem=tau, v_rest=v_rest, v_th=-1.0, v_reset=v_rest, bias=bias)
    errors = []
    for dt in (0.4, 0.2, 0.1, 0.05):
        steps = round(t_end / dt)
        drives = [(g0e * jnp.ones(1), -g0i * jnp.ones(1))] + [(jnp.zeros(1), jnp.zeros(1))] * (steps - 1)
        v, _ = _run(neuron, drives, dt)
        errors.append(abs(v[-1] - exact))
    ratios = np.array(errors[:-1]) / np.array(errors[1:])
    assert errors[-1] < 0.05 and np.all((ratios > 1.7) & (ratios < 2.3)), (errors, ratios)


def test_delay_buffer_delivers_exactly_delay_later():
    dt = 0.1
    k = int(S.delay_steps(1.5, dt, max_steps=20))
    assert k == 15
    proj = S.EventProjection.from_indices([0], [1], 2, 2, weight=0.7, max_spikes=2, delays=[k])
    spikes = jnp.zeros((40, 2)).at[3, 0].set(1.0)

    def body(buffer, s):
        buffer, arriving = pop(buffer)
        buffer, _ = proj.deliver(s, buffer)
        return buffer, arriving[0, 1]

    arrivals = jax.jit(lambda b: jax.lax.scan(body, b, spikes)[1])(init_buffer(21, (1, 2), jnp.float64))
    # emitted at the end of step 3 (time 4 dt), received at the start of step 3 + k + 1 (time 4 dt + delay)
    expected = np.zeros(40)
    expected[3 + k + 1] = 0.7
    np.testing.assert_array_equal(np.array(arrivals), expected)


def test_ei_network_spike_arrives_delay_later():
    """In a network: neuron 0 fires at the end of step 0; neuron 1's conductance jumps at exactly
    t = dt + delay (zero delay: at the spike time itself)."""
    dt = 0.1
    neuron = sj.neurons.SynapticLIF((S.ExponentialConductance(5.0, 0.0),), tau_mem=20.0, v_rest=-60.0, v_th=-50.0,
                                    v_reset=-60.0, t_ref=50.0)
    for delay in (0.0, 2.0):
        proj = S.EventProjection.from_indices([0], [1], 2, 2, weight=0.5, max_spikes=2,
                                              delays=int(S.delay_steps(delay, dt)))
        net = sj.networks.EINetwork(neuron, proj, 2)
        state = net.init(None, ())
        state = eqx.tree_at(lambda s: s.neuron.v, state, jnp.asarray([-40.0, -60.0]))
        step = net.step_fn(dt)
        final, g = jax.jit(lambda s: jax.lax.scan(lambda s, x: (step(s, x)[0],) * 2, s, jnp.zeros((40, 1))))(state)
        g = np.asarray(g.neuron.synapses[0][:, 1])
        first = int(np.argmax(g > 0))  # g is recorded at the end of each step: after its decay over the step
        # the jump happened at time (first + 1) dt - dt = first dt ... it was received at the start of step `first`
        assert first * dt == pytest.approx(dt + delay), (delay, first)
        np.testing.assert_allclose(g[first], 0.5 * np.exp(-dt / 5.0), rtol=1e-12)
        assert int(final.step) == 40


def _tm_reference(U, tau_d, tau_f, interval, n):
    """Efficacies u+ x- of a regular train, by the closed-form recursion between spikes."""
    u, x, out = 0.0, 1.0, []
    for _ in range(n):
        u = u + U * (1 - u)
        out.append(u * x)
        x = x - u * x
        u = u * (np.exp(-interval / tau_f) if tau_f > 0 else 0.0)
        x = 1 + (x - 1) * np.exp(-interval / tau_d)
    return np.array(out)


@pytest.mark.parametrize("U,tau_d,tau_f", [(0.5, 200.0, 0.0), (0.1, 100.0, 600.0)])
def test_tsodyks_markram_regular_train(U, tau_d, tau_f):
    tm = S.TsodyksMarkram(U=U, tau_d=tau_d, tau_f=tau_f)
    dt, interval, n = 0.5, 20.0, 60
    every = round(interval / dt)
    state = tm.init((1,), jnp.float64)
    step = jax.jit(lambda s, x: tm.step(s, x, dt))
    amplitudes = []
    for k in range(n * every):
        state, eff = step(state, jnp.asarray([1.0 if k % every == 0 else 0.0]))
        if k % every == 0:
            amplitudes.append(float(eff[0]))
    np.testing.assert_allclose(amplitudes, _tm_reference(U, tau_d, tau_f, interval, n), rtol=1e-12)
    if tau_f == 0:  # steady-state depression
        a = np.exp(-interval / tau_d)
        x_ss = (1 - a) / (1 - (1 - U) * a)
        assert amplitudes[-1] == pytest.approx(U * x_ss, rel=1e-10)
        assert amplitudes[-1] < 0.3 * amplitudes[0]
    else:  # facilitation dominates at first
        assert amplitudes[3] > 1.5 * amplitudes[0]


def test_connectivity_statistics():
    n, p = 1500, 0.05
    proj = S.fixed_probability(n, n, p, key=jax.random.key(3), max_spikes=8, self_connections=False)
    pre, post = proj.indices()
    assert not np.any(pre == post)
    pairs = n * (n - 1)
    assert abs(pre.size - p * pairs) < 4 * np.sqrt(pairs * p * (1 - p))
    assert np.unique(pre * n + post).size == pre.size  # no duplicate synapses
    out_deg = np.bincount(pre, minlength=n)
    assert abs(out_deg.var() - (n - 1) * p * (1 - p)) < 0.2 * (n - 1) * p  # binomial spread
    k = 37
    proj = S.fixed_in_degree(n, n, k, key=4, max_spikes=8, self_connections=False)
    pre, post = proj.indices()
    assert np.all(np.bincount(post, minlength=n) == k) and not np.any(pre == post)
    assert np.unique(pre * n + post).size == pre.size
    # uniform sources: every presynaptic neuron's out-degree ~ Binomial(n - 1, k / (n - 1))
    assert abs(np.bincount(pre, minlength=n).mean() - k) < 1e-9
    assert proj.weight.shape[0] == n and proj.n_synapses == n * k


def _small_ei(n=60, dense=False, surrogate=None, kind="coba"):
    net = getattr(sj.networks.EINetwork, kind)(n, key=jax.random.key(5), connectivity="fixed_in_degree", k=12,
                                              max_spikes=n, dense=dense)
    if surrogate is not None:
        net = eqx.tree_at(lambda m: m.neuron.surrogate, net, surrogate)
    return net


@pytest.mark.parametrize("kind", ["coba", "cuba"])
def test_sparse_and_dense_propagation_agree(kind):
    sparse, dense = _small_ei(kind=kind), _small_ei(dense=True, kind=kind)
    np.testing.assert_allclose(np.asarray(dense.recurrent.weight), np.asarray(sparse.recurrent.dense()))
    x = jnp.zeros((1500, 1))
    run = lambda net: sj.simulate(net, x, dt=0.1, key=jax.random.key(1), record=("readout",))  # noqa: E731
    a, b = run(sparse), run(dense)
    assert float(jnp.sum(a.readout)) > 0
    np.testing.assert_array_equal(np.asarray(a.readout), np.asarray(b.readout))
    np.testing.assert_allclose(np.asarray(a.final_state.neuron.v), np.asarray(b.final_state.neuron.v), atol=1e-10)
    assert int(a.final_state.dropped) == 0


def test_population_rates_from_the_spike_counts_equal_the_means_and_their_derivative():
    """The event network reads its E and I rates from the blocked spike counts (49 excitatory
    neurons: three blocks of 16 and one neuron of the fourth); values and derivatives (surrogate
    gradients with respect to the bias) equal those of the means of the raster of every neuron."""
    n, steps = 61, 300
    net = sj.networks.EINetwork.cuba(n, key=jax.random.key(5), connectivity="fixed_in_degree", k=12, max_spikes=n,
                                     record_spikes=tuple(range(n)))
    assert net.n_exc == 49
    x = jnp.zeros((steps, 1))
    weights = jnp.asarray(np.random.default_rng(0).normal(size=(steps, 2)))

    def rates(bias):
        out = sj.simulate(eqx.tree_at(lambda m: m.neuron.bias, net, bias), x, dt=0.1, key=jax.random.key(1),
                          record=("readout", "spikes"))
        means = jnp.stack([jnp.mean(out.spikes[:, :49], axis=1), jnp.mean(out.spikes[:, 49:], axis=1)], axis=1)
        return out.readout, means * 1e4

    def both(bias):  # the two losses and their derivatives in one program
        return jax.jacrev(lambda b: jnp.stack([jnp.sum(weights * r) for r in rates(b)]))(bias), rates(bias)

    (g_readout, g_means), (readout, means) = jax.jit(both)(jnp.asarray(0.0))
    assert float(jnp.sum(means)) > 20 * 1e4 / 49
    np.testing.assert_allclose(np.asarray(readout), np.asarray(means), rtol=1e-12)
    assert abs(float(g_means)) > 0
    np.testing.assert_allclose(float(g_readout), float(g_means), rtol=1e-9)


@pytest.mark.parametrize("max_events, max_spikes", [(20000, 60), (40, 60), (20000, 3)])
def test_spike_log_lists_the_recorded_spikes_in_order(max_events, max_spikes):
    # the log against the raster of every neuron, both from one run: per step the spiking neurons
    # in index order (at most the propagation budget), at the next positions while they fit;
    # `count` counts every spike
    n, steps = 60, 400
    net = sj.networks.EINetwork.coba(n, key=jax.random.key(5), connectivity="fixed_in_degree", k=12,
                                     max_spikes=max_spikes, max_events=max_events, record_spikes=tuple(range(n)))
    out = sj.simulate(net, jnp.zeros((steps, 1)), dt=0.1, key=jax.random.key(1), record=("spikes",))
    raster = np.asarray(out.spikes) != 0
    expected_steps, expected_ids = np.zeros(max_events, int), np.zeros(max_events, int)
    count = 0
    for t in range(steps):
        spiking = np.flatnonzero(raster[t])
        for k, j in enumerate(spiking[:min(max_events, max_spikes)]):
            if count + k < max_events:
                expected_steps[count + k], expected_ids[count + k] = t, j
        count += spiking.size
    log = out.final_state.log
    assert count > 40 and int(log.count) == count
    np.testing.assert_array_equal(np.asarray(log.steps), expected_steps)
    np.testing.assert_array_equal(np.asarray(log.ids), expected_ids)


def test_gradients_through_sparse_weights_match_finite_differences():
    """A very steep surrogate makes the surrogate gradient the derivative with the spike pattern
    held fixed, which is what central finite differences measure when no spike flips."""
    net = _small_ei(n=40, surrogate=sj.surrogates.FastSigmoid(slope=1e9))
    x = jnp.zeros((300, 1))
    state = net.init(jax.random.key(2), ())

    def loss(weight, net=net):
        net = eqx.tree_at(lambda m: m.recurrent.weight, net, weight)
        out = sj.simulate(net, x, dt=0.1, state=state, record=("readout",))
        syn = out.final_state.neuron.synapses
        return jnp.sum(out.final_state.neuron.v) + 10 * jnp.sum(syn[0] - syn[1]), jnp.sum(out.readout)

    w = net.recurrent.weight
    (value, n_spikes), grad = jax.jit(jax.value_and_grad(loss, has_aux=True))(w)
    assert float(n_spikes) > 0
    rows, cols = np.nonzero(np.asarray(net.recurrent.targets) < net.n)
    picks = np.random.default_rng(0).choice(rows.size, 12, replace=False)
    f = jax.jit(lambda w: loss(w)[0])
    eps = 1e-6
    nonzero = 0
    for i in picks:
        r, c = rows[i], cols[i]
        fd = (f(w.at[r, c].add(eps)) - f(w.at[r, c].add(-eps))) / (2 * eps)
        np.testing.assert_allclose(float(grad[r, c]), float(fd), rtol=1e-5, atol=1e-7)
        nonzero += abs(float(fd)) > 1e-6
    assert nonzero >= 3
    # padding entries get no gradient
    assert float(jnp.sum(jnp.abs(jnp.where(net.recurrent.targets < net.n, 0.0, grad)))) == 0.0


@pytest.mark.parametrize("delayed", [False, True])
def test_event_scatter_and_its_vjp_equal_a_dense_reference(delayed):
    """The spike-count loop (custom VJP) against the dense product `arrivals[c] = sum_j value_j
    W_c[j]` and its autodiff, over a batch of trials whose spike counts span none to more than the
    budget (the dropped spikes are the last in index order); the batch runs the vmapped loop
    (chunks of rows), each trial alone the one-row-per-iteration loop, and the two agree. Weight
    cotangents equal the dense ones; spike-value cotangents equal them on the listed (spiking)
    rows and are zero elsewhere."""
    n = 60
    budget = 11
    base = S.fixed_probability(n, n, 0.2, key=3, weight=(0.7, -1.3), max_spikes=budget, channels=np.arange(n) % 2)
    rng = np.random.default_rng(2)
    proj = S.EventProjection(base.weight * rng.uniform(0.5, 1.5, base.weight.shape), base.targets, n,
                             max_spikes=budget, channels=base.channels,
                             delays=rng.integers(0, 3, base.weight.shape) if delayed else None)
    counts = [0, 1, 5, budget, budget + 7]  # none, one, several, the budget, over it
    flags = np.zeros((len(counts), n))
    for row, c in zip(flags, counts):
        row[rng.choice(n, c, replace=False)] = 1.0
    values = jnp.asarray(flags * rng.uniform(0.5, 2.0, flags.shape))
    kept = np.cumsum(flags, axis=1) <= budget  # the first `budget` spikes in index order
    length = 4
    cotangent = jnp.asarray(rng.normal(size=(length, len(counts), 2, n) if delayed else (len(counts), 2, n)))

    def dense_matrix(weight, channel):
        rows = np.broadcast_to(np.arange(n)[:, None], proj.targets.shape)
        mask = (np.asarray(proj.channels)[rows] == channel) & (np.asarray(proj.targets) < n)
        if delayed:
            return [jnp.zeros((n, n + 1)).at[rows, proj.targets].add(
                jnp.where(mask & (np.asarray(proj.delays) == d), weight, 0.0))[:, :n] for d in range(3)]
        return jnp.zeros((n, n + 1)).at[rows, proj.targets].add(jnp.where(mask, weight, 0.0))[:, :n]

    def event(weight, values):
        p = eqx.tree_at(lambda p: p.weight, proj, weight)
        if delayed:
            buffer = S.DelayBuffer(slots=jnp.zeros((length, len(counts), 2, n)), cursor=jnp.asarray(1))
            buffer, dropped = p.deliver(values, buffer)
            return jnp.sum(cotangent * buffer.slots), dropped
        arrivals, dropped = p.propagate(values)
        return jnp.sum(cotangent * arrivals), dropped

    def reference(weight, values):
        v = jnp.where(kept, values, 0.0)
        if delayed:  # slot (cursor + 1 + delay) % length of a zero buffer with cursor 1
            out = jnp.zeros((length, len(counts), 2, n))
            for c in range(2):
                for d, m in enumerate(dense_matrix(weight, c)):
                    out = out.at[(2 + d) % length, :, c].add(v @ m)
            return jnp.sum(cotangent * out)
        return jnp.sum(cotangent * jnp.stack([v @ dense_matrix(weight, c) for c in range(2)], axis=1))

    (value, dropped), (d_weight, d_values) = jax.jit(jax.value_and_grad(event, argnums=(0, 1), has_aux=True))(
        proj.weight, values)
    ref_value, (ref_weight, ref_values) = jax.value_and_grad(reference, argnums=(0, 1))(proj.weight, values)
    np.testing.assert_array_equal(np.asarray(dropped), np.maximum(np.array(counts) - budget, 0))
    np.testing.assert_allclose(float(value), float(ref_value), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(d_weight), np.asarray(ref_weight), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.asarray(d_values), np.where(kept & (flags > 0), np.asarray(ref_values), 0.0),
                               rtol=1e-12, atol=1e-12)
    if not delayed:  # each trial alone (no vmap: one spiking row per iteration) equals its row of the batch
        propagate = jax.jit(lambda v: proj.propagate(v))
        arrivals, dropped = propagate(values)
        for i in range(len(counts)):
            one, one_dropped = propagate(values[i])
            np.testing.assert_allclose(np.asarray(one), np.asarray(arrivals[i]), rtol=1e-12, atol=1e-12)
            assert int(one_dropped) == int(dropped[i])


def test_bad_input_errors():
    with pytest.raises(ValueError, match="p must be a probability in"):
        S.fixed_probability(10, 10, 1.5, key=0, max_spikes=4)
    with pytest.raises(ValueError, match="p must be a probability in"):
        S.fixed_probability(10, 10, -0.1, key=0, max_spikes=4)
    with pytest.raises(ValueError, match="k must be an int in"):
        S.fixed_in_degree(10, 20, 11, key=0, max_spikes=4)
    with pytest.raises(ValueError, match="must be finite and >= 0"):
        S.delay_steps(-0.5, 0.1)
    with pytest.raises(ValueError, match="not a whole number of steps"):
        S.delay_steps(0.15, 0.1)
    with pytest.raises(ValueError, match="longer than the buffer"):
        S.delay_steps(3.0, 0.1, max_steps=20)
    proj = S.EventProjection.from_indices([0], [1], 2, 2, max_spikes=2, delays=[30])
    lif = sj.neurons.SynapticLIF(S.ExponentialConductance(5.0, 0.0), v_rest=-60.0, v_th=-50.0, v_reset=-60.0)
    with pytest.raises(ValueError, match="longer than the buffer"):
        sj.networks.EINetwork(lif, proj, 2, max_delay=10)
    with pytest.raises(ValueError, match="e_rev must be finite"):
        S.ExponentialConductance(5.0, np.inf)
    with pytest.raises(ValueError, match="bound v below the threshold"):
        sj.neurons.SynapticLIF((S.ExponentialConductance(5.0, -55.0), S.ExponentialConductance(10.0, -80.0)),
                               v_rest=-60.0, v_th=-50.0, v_reset=-60.0)
