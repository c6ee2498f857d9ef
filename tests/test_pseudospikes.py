"""Pseudodynamics after the trial end: closed forms, gradients, continuity through t1, spike addition."""

import functools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import simjax as sj
from simjax._simulate.event_layers import layer_first_spikes
from simjax._simulate.pseudospikes import pseudospike_times
from simjax.losses._spike_times import first_spike_cross_entropy, spike_time_loss, spike_times_per_neuron

T1, T_IN, DRIVE = 2.0, 0.5, 8.0  # trial end, input spike time, pseudo drive (units of tau_mem)
K = 1.0  # QIF bias -K^2: rest at V = -K, unstable point (threshold) at V = +K


def qif_first_spike_reference(w, t1=T1, t_in=T_IN, drive=DRIVE):
    """Closed form (by hand, V form) for a QIF neuron at rest (I = -K^2) kicked by `w` at `t_in`,
    with I = -K^2 + drive after `t1`: tanh solution up to t1, tan solution afterwards."""
    v0 = -K + w
    if v0 > K:
        t = t_in + math.atanh(K / v0) / K  # V = -K coth(...) blows up
        if t <= t1:
            return t
        v1 = -K / math.tanh(K * (t1 - t_in) - math.atanh(K / v0))  # V(t1) > K, still before blow-up
    elif v0 == K:
        v1 = K
    elif v0 > -K:
        v1 = -K * math.tanh(K * (t1 - t_in) - math.atanh(v0 / K))  # relaxes to rest from above
    else:
        v1 = -K / math.tanh(K * (t1 - t_in) + math.atanh(-K / v0))  # relaxes to rest from below
    omega = math.sqrt(drive - K**2)
    return t1 + (math.pi / 2 - math.atan(v1 / omega)) / omega


@functools.partial(jax.jit, static_argnames="t1")
def single_qif(w, *, drive=DRIVE, t1=T1):
    neuron = sj.neurons.QIF(bias=-K**2)
    times = jnp.asarray([T_IN, jnp.inf])
    return layer_first_spikes(neuron, jnp.reshape(w, (1, 1)) + jnp.zeros((2, 1)), times, jnp.asarray([0, 1]),
                              t1, drive)[0]


# d t / d (w, drive) in one compiled program.
single_qif_grads = jax.jit(jax.grad(lambda w, drive: single_qif(w, drive=drive), argnums=(0, 1)))


@pytest.mark.parametrize("w", [2.6, 2.1, 1.4, -0.5])  # spike inside the trial, pseudospikes otherwise
def test_first_spike_or_pseudospike_matches_closed_form_and_finite_differences(w):
    t = float(single_qif(jnp.asarray(w)))
    assert t == pytest.approx(qif_first_spike_reference(w), abs=1e-9)
    assert (t <= T1) == (w == 2.6)
    grad, g_drive = (float(g) for g in single_qif_grads(jnp.asarray(w), jnp.asarray(DRIVE)))
    h = 1e-5
    fd = (qif_first_spike_reference(w + h) - qif_first_spike_reference(w - h)) / (2 * h)
    assert grad == pytest.approx(fd, rel=1e-6)
    # d t / d drive: the pseudospike depends on the drive, a spike in the trial does not.
    fd_drive = (qif_first_spike_reference(w, drive=DRIVE + h) - qif_first_spike_reference(w, drive=DRIVE - h)) / (2 * h)
    assert g_drive == pytest.approx(fd_drive, rel=1e-6, abs=1e-10)  # (FD round-off ~ 1e-16 / h)


def test_pseudospike_times_of_uncoupled_neurons_and_of_a_recurrent_network():
    # From rest (V = -K) the pseudospikes come at t1 + (pi/2 + atan(K/omega))/omega, then every pi/omega.
    neuron = sj.neurons.QIF(bias=-K**2)
    omega = math.sqrt(DRIVE - K**2)
    first = T1 + (math.pi / 2 + math.atan(K / omega)) / omega
    times = pseudospike_times(neuron, neuron.init(None, (2,)), t1=T1, drive=DRIVE, max_spikes=2)
    np.testing.assert_allclose(times, [[first, first + math.pi / omega]] * 2, rtol=0, atol=1e-9)
    # A one-neuron RSNN (no recurrence): one kick, then the pseudodynamics (piecewise-constant drive).
    for w in (2.1, 1.4):
        net = sj.networks.RSNN(n_in=1, n_rec=1, n_out=1, neuron=neuron, w_in=jnp.asarray([[w]]),
                               w_rec=jnp.zeros((1, 1)), w_out=jnp.ones((1, 1)), tau_out=1.0)
        out = sj.simulate(net, sj.SpikeTrain(jnp.asarray([T_IN]), jnp.asarray([0]), n=1), method="event", t1=T1,
                          max_events=4, pseudo_drive=DRIVE, max_pseudospikes=2)
        assert not np.isfinite(out.spikes.times).any()
        np.testing.assert_allclose(out.info["pseudospikes"].times[0], qif_first_spike_reference(w), atol=1e-9)
        np.testing.assert_allclose(np.diff(out.info["pseudospikes"].times), math.pi / omega, atol=1e-9)


def _ff_inputs(n_batch=3):
    rng = np.random.default_rng(3)
    times = jnp.asarray(rng.uniform(0.0, 1.0, (n_batch, 4)))
    return sj.SpikeTrain(times, jnp.broadcast_to(jnp.arange(4), times.shape), n=4)


def test_pseudodynamics_never_change_the_trial():
    x = _ff_inputs()
    for neuron in (sj.neurons.QIF(bias=-1.0),):  # (LIF runs the same code; see the continuity test)
        net = sj.networks.SpikingFeedForward((4, 6, 3), neuron, key=jax.random.key(0), scale=3.0, mean=0.8)
        plain = sj.simulate(net, x, method="event", t1=T1)
        pseudo = sj.simulate(net, x, method="event", t1=T1, pseudo_drive=DRIVE)
        for a, b in zip(plain.info["first_spike_times"], pseudo.info["first_spike_times"]):
            inside = np.asarray(b) <= T1
            np.testing.assert_array_equal(np.asarray(a)[inside], np.asarray(b)[inside])
            assert np.all(np.isinf(np.asarray(a)[~inside])) and np.all(np.isfinite(b))
        np.testing.assert_array_equal(plain.spikes.times, pseudo.spikes.times)
    net = sj.networks.RSNN(n_in=4, n_rec=5, n_out=2, neuron=sj.neurons.QIF(bias=-1.0), key=jax.random.key(1),
                           in_scale=4.0, tau_out=1.0)
    plain = sj.simulate(net, x, method="event", t1=T1, max_events=24)
    pseudo = sj.simulate(net, x, method="event", t1=T1, max_events=24, pseudo_drive=DRIVE)
    np.testing.assert_array_equal(plain.spikes.times, pseudo.spikes.times)
    np.testing.assert_array_equal(plain.readout, pseudo.readout)
    assert np.all(np.asarray(pseudo.info["pseudospikes"].times) > T1)


def test_feedforward_layer_matches_a_fine_ode_reference():
    """An independent check of the event-driven layer: RK4 on the theta ODE with kicks as jumps of V."""
    neuron = sj.neurons.QIF(bias=-1.0)
    w = np.array([[1.2, 0.3], [0.9, -0.4], [0.8, 2.5]])
    times = np.array([0.2, 0.35, 0.6])
    layer = jax.jit(lambda w, t: layer_first_spikes(neuron, w, t, jnp.arange(3), T1, DRIVE))
    got = np.asarray(layer(jnp.asarray(w), jnp.asarray(times)))
    dt, theta, t, first = 1e-4, np.full(2, -math.pi / 2), 0.0, np.full(2, np.inf)
    f = lambda th, current: (1 - np.cos(th)) + (1 + np.cos(th)) * current
    kicks = list(zip(times, w))
    while np.isinf(first).any():
        current = -1.0 + (DRIVE if t >= T1 - 1e-12 else 0.0)
        k1 = f(theta, current)
        k2 = f(theta + dt / 2 * k1, current)
        k3 = f(theta + dt / 2 * k2, current)
        k4 = f(theta + dt * k3, current)
        new = theta + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        crossed = (new >= math.pi) & np.isinf(first)
        first[crossed] = t + dt * (math.pi - theta[crossed]) / (new[crossed] - theta[crossed])
        theta, t = new, t + dt
        while kicks and kicks[0][0] <= t + 1e-12:
            _, row = kicks.pop(0)
            kick = np.arctan2(row * np.cos(theta / 2) ** 2, 1 + row * np.sin(theta / 2) * np.cos(theta / 2))
            theta = theta + 2 * kick
    np.testing.assert_allclose(got, first, atol=1e-6)


def test_lif_closed_form_with_half_synaptic_time_constant_matches_root_finding():
    """LIF with tau_syn = tau_mem / 2: the quadratic-in-exp(-t/tau) closed form used by the layers
    agrees with the generic bracketed root finding, values and gradients."""
    import equinox as eqx

    from simjax._simulate.event_layers import _lif_time_to_spike_closed
    from simjax.neurons._lif import LIFState, half_synaptic_lif

    neuron = sj.neurons.LIF(tau_mem=1.0, tau_syn=0.5)
    assert half_synaptic_lif(neuron) and not half_synaptic_lif(sj.neurons.LIF(tau_mem=1.0, tau_syn=0.4))
    assert sj.networks.SpikingFeedForward((2, 2), neuron, key=jax.random.key(0)).closed_form == (True,)
    rng = np.random.default_rng(0)
    v, i = jnp.asarray(rng.uniform(-1, 0.99, 400)), jnp.asarray(rng.normal(0, 3, 400))
    current, horizon = jnp.asarray(rng.normal(0.5, 1, 400)), jnp.asarray(rng.uniform(0.1, 5, 400))
    state = lambda i: LIFState(v=v, i=i, refractory=jnp.zeros_like(v))
    generic = lambda i: eqx.tree_at(lambda m: m.bias, neuron, current).time_to_spike(state(i), horizon)
    closed = lambda i: _lif_time_to_spike_closed(neuron, state(i), current, horizon)

    @jax.jit  # (values and gradients of both in one compiled program)
    def both(i):
        fires = jnp.isfinite(generic(i))
        masked = lambda f: (lambda i: jnp.sum(jnp.where(fires, f(i), 0.0)))
        return generic(i), closed(i), jax.grad(masked(generic))(i), jax.grad(masked(closed))(i)

    ref, got, g_ref, g_got = (np.asarray(a) for a in both(i))
    fires = np.isfinite(ref)
    assert 0.1 < fires.mean() < 0.9
    np.testing.assert_array_equal(fires, np.isfinite(got))
    np.testing.assert_allclose(got[fires], ref[fires], rtol=0, atol=1e-12)
    np.testing.assert_allclose(g_got, g_ref, rtol=1e-8, atol=1e-10)


def _sweep(neuron, ws):
    x = sj.SpikeTrain(jnp.asarray([T_IN]), jnp.asarray([0]), n=1)

    @jax.jit
    def loss(w):
        net = sj.networks.SpikingFeedForward((1, 1), neuron, weights=[jnp.reshape(w, (1, 1))])
        t = sj.simulate(net, x, method="event", t1=T1, pseudo_drive=DRIVE).info["first_spike_times"][-1]
        return spike_time_loss(t[:, None], jnp.full((1, 1), 1.5), t_missing=10.0), t[0]

    return [np.asarray(a) for a in jax.vmap(loss)(jnp.asarray(ws))]


def test_loss_is_continuous_through_the_trial_end_for_qif_and_jumps_for_lif():
    """Sweep the input weight so that the spike leaves the trial: the QIF loss (with its pseudospike)
    has neighbour differences that shrink with the grid step; the LIF loss jumps by a fixed amount."""
    qif = sj.neurons.QIF(bias=-1.0)
    lif = sj.neurons.LIF(tau_mem=1.0, tau_syn=0.5, v_th=1.0)
    for neuron, (lo, hi), continuous in ((qif, (2.0, 2.3), True), (lif, (3.0, 6.0), False)):
        jumps = []
        coarse, fine = np.linspace(lo, hi, 101), np.linspace(lo, hi, 401)
        both = _sweep(neuron, np.concatenate([coarse, fine]))  # (one compiled program per neuron)
        for part in (slice(0, 101), slice(101, None)):
            loss, t = (a[part] for a in both)
            assert (t <= T1).any() and (t > T1).any()  # the spike crosses the trial end within the sweep
            jumps.append(np.max(np.abs(np.diff(loss))))
        if continuous:
            assert jumps[1] < 0.35 * jumps[0]  # ~ 1/4: Lipschitz
        else:
            assert jumps[1] > 0.9 * jumps[0] and jumps[1] > 0.1  # a jump that refinement does not remove


def test_gradient_descent_adds_a_missing_spike():
    """A silent QIF neuron (kick too weak to fire in the trial) acquires its target spike; without
    pseudodynamics the exact gradient of a silent neuron is zero."""
    target = 1.2
    loss = lambda w, drive: (single_qif(w, drive=drive) - target) ** 2
    w = jnp.asarray(1.5)
    assert single_qif(w) > T1
    grad = jax.jit(jax.grad(lambda w: loss(w, DRIVE)))
    for _ in range(300):
        w = w - 0.05 * grad(w)
    assert float(single_qif(w)) == pytest.approx(target, abs=1e-4)
    silent = jax.grad(lambda w: spike_time_loss(single_qif(w, drive=None)[None], jnp.asarray([target]),
                                                t_missing=2 * T1))(jnp.asarray(1.5))
    assert float(silent) == 0.0


def test_spike_time_targets_task_adds_and_removes_spikes_with_fit():
    """`SpikeTimeTargets` + `Exact` + `fit`: a silent QIF neuron acquires its target spike while a
    spiking one whose target is "no spike" loses it through the trial end."""
    import optax

    x = sj.SpikeTrain(jnp.asarray([T_IN]), jnp.asarray([0]), n=1)
    task = sj.tasks.SpikeTimeTargets(x, [[1.2], [jnp.inf]], t1=T1, pseudo_drive=DRIVE)
    net = sj.networks.SpikingFeedForward((1, 2), sj.neurons.QIF(bias=-1.0), weights=[jnp.asarray([[1.5, 2.6]])])
    before = task.metrics(task.forward(net, task.sample(None, 1)), task.sample(None, 1))
    assert float(before["spike_count_error"]) == 2.0
    trained, history = sj.fit(net, sj.rules.Exact(), task, optax.sgd(0.05), steps=300, key=jax.random.key(0),
                              batch_size=1)
    batch = task.sample(None, 1)
    times = np.asarray(task.spike_times(task.forward(trained, batch)))[0, :, 0]
    assert times[0] == pytest.approx(1.2, abs=1e-3) and times[1] > T1
    assert float(task.metrics(task.forward(trained, batch), batch)["spike_count_error"]) == 0.0
    assert np.all(np.diff(np.asarray(history["loss"])) <= 1e-12)  # small steps: the loss never rises


def test_recurrent_network_learns_target_spike_times():
    """N = 8 recurrent QIF neurons, silent at the start, learn one target spike each by exact
    gradient descent through spikes and pseudospikes (events interact through W_rec)."""
    import optax

    n, steps = 8, 200
    targets = jnp.linspace(0.8, 1.6, n)[:, None]
    x = sj.SpikeTrain(jnp.asarray([0.1, 0.3, 0.5, 0.7]), jnp.asarray([0, 1, 2, 3]), n=4)
    net = sj.networks.RSNN(n_in=4, n_rec=n, n_out=1, neuron=sj.neurons.QIF(bias=-1.0), key=jax.random.key(4),
                           in_scale=1.0, rec_scale=0.2, tau_out=1.0)
    task = sj.tasks.SpikeTimeTargets(x, targets, t1=T1, pseudo_drive=DRIVE, max_events=24, max_pseudospikes=24)
    batch = task.sample(None, 1)
    times_of = lambda net: task.spike_times(task.forward(net, batch))[0]  # noqa: E731
    opt = optax.adam(optax.cosine_decay_schedule(0.03, steps, 0.02))

    @eqx.filter_jit
    def train(net):
        trained, history = sj.fit(net, sj.rules.Exact(), task, opt, steps=steps, key=jax.random.key(0), batch_size=1)
        return history["loss"], times_of(net), times_of(trained)  # (inside the one compiled program)

    losses, start, times = train(net)
    assert np.all(np.asarray(start) > T1)  # silent in the trial at the start
    errors = np.abs(np.asarray(times - targets))
    assert np.all(np.asarray(times) <= T1)  # every neuron now spikes in the trial
    assert float(jnp.sqrt(losses[-1])) < 0.02 * float(jnp.sqrt(losses[0]))
    assert np.sum(errors < 0.01 * T1) >= n - 1  # (one neuron may stay in a local minimum)


def test_bad_input_is_rejected(unchecked):
    qif = sj.neurons.QIF(bias=-1.0)
    net = sj.networks.SpikingFeedForward((4, 3), qif, key=jax.random.key(0))
    x = _ff_inputs(1)
    with pytest.raises(ValueError, match="pseudo_drive=0.5 leaves"):
        sj.simulate(net, x, method="event", t1=T1, pseudo_drive=0.5)
    with pytest.raises(ValueError, match="pseudo_drive must be finite"):
        sj.simulate(net, x, method="event", t1=T1, pseudo_drive=float("inf"))
    with pytest.raises(TypeError, match="drop max_pseudospikes"):
        sj.simulate(net, x, method="event", t1=T1, pseudo_drive=DRIVE, max_pseudospikes=3)
    rsnn = sj.networks.RSNN(n_in=4, n_rec=3, n_out=1, neuron=qif, key=jax.random.key(0), tau_out=1.0)
    with pytest.raises(TypeError, match="max_pseudospikes needs pseudo_drive"):
        sj.simulate(rsnn, x, method="event", t1=T1, max_pseudospikes=3)
    with pytest.raises(ValueError, match="max_pseudospikes must be a positive int"):
        sj.simulate(rsnn, x, method="event", t1=T1, pseudo_drive=DRIVE, max_pseudospikes=0)
    with pytest.raises(TypeError, match="spiking neuron"):
        sj.networks.SpikingFeedForward((4, 3), "relu", key=jax.random.key(0))
    with pytest.raises(ValueError, match="weights has 1 entries, expected 2"):
        sj.networks.SpikingFeedForward((4, 3, 2), qif, weights=[jnp.zeros((4, 3))])
    with pytest.raises(ValueError, match="labels have shape"):
        first_spike_cross_entropy(jnp.zeros((2, 3)), jnp.zeros((3,), int), t1=T1)
    with pytest.raises(ValueError, match="tau must be finite and > 0"):
        first_spike_cross_entropy(jnp.zeros((2, 3)), jnp.zeros((2,), int), t1=T1, tau=0.0)
    with pytest.raises(ValueError, match="k must be a positive int"):
        spike_times_per_neuron(x, k=0)


def test_first_spike_cross_entropy_terms_match_their_formulas():
    """The three terms of the time-to-first-spike loss, by hand in NumPy: softmax cross-entropy on
    -t / tau, the missing-spike term a max(t_label - t1, 0)^2 / tau^2 and Göltz et al.'s time
    regulariser b (exp(t_label / tau_b) - 1); inf counts as t_missing."""
    times = np.array([[0.4, 1.1, 2.6], [2.3, 0.9, np.inf]])
    labels = np.array([2, 0])
    tau, a, b, tau_b = 0.3, 0.7, 0.05, 0.5
    t = np.where(np.isfinite(times), times, 2 * T1)
    z = -t / tau
    ce = -(z[np.arange(2), labels] - np.log(np.exp(z).sum(axis=1)))
    t_label = t[np.arange(2), labels]
    expected = np.mean(ce + a * (np.maximum(t_label - T1, 0) / tau) ** 2 + b * np.expm1(t_label / tau_b))
    loss = lambda t, **kw: first_spike_cross_entropy(t, jnp.asarray(labels), t1=T1, tau=tau, **kw)
    regulariser = lambda t: loss(t, early_weight=b, early_tau=tau_b) - loss(t)

    @jax.jit  # (one compiled program instead of many eager operations)
    def evaluate(times, t):
        return loss(times, missing_weight=a, early_weight=b, early_tau=tau_b), loss(times), jax.grad(regulariser)(t)

    got, plain, g = evaluate(jnp.asarray(times), jnp.asarray(t))
    assert float(got) == pytest.approx(expected, rel=1e-12)
    assert float(plain) == pytest.approx(np.mean(ce), rel=1e-12)
    # The regulariser's gradient always pulls the label spike earlier, the other neurons untouched.
    expected_g = np.zeros_like(t)
    expected_g[np.arange(2), labels] = b * np.exp(t_label / tau_b) / tau_b / 2
    np.testing.assert_allclose(g, expected_g, rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="early_tau must be finite and > 0"):
        first_spike_cross_entropy(jnp.asarray(times), jnp.asarray(labels), t1=T1, early_weight=b, early_tau=0.0)
