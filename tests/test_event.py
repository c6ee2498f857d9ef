"""Exact spike times and their gradients: the generic root finder, LIF's closed form and bracketed
root, `spike_times`, and the event-driven network simulation (against closed forms, an independent
NumPy reference, central finite differences, and hand-computed readouts)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import simjax as sj
from simjax.neurons import LIF, QIF, LIFState
from simjax.neurons._roots import first_crossing

# --- the generic root finder ------------------------------------------------------------------------


def _saturating(t, args):
    a, b = args
    return a * (1.0 - jnp.exp(-t / b)) - 1.0


def test_first_crossing_values_and_gradients():
    """f = a (1 - exp(-t/b)) - 1 crosses zero at t* = -b ln(1 - 1/a) when a > 1."""
    a, b = jnp.array([0.8, 1.5, 3.0, 1.01]), jnp.array([2.0, 5.0, 1.0, 2.0])
    a_, b_ = np.asarray(a), np.asarray(b)
    crosses = a_ > 1  # the first never crosses; the last at 9.2, with a large derivative
    root = lambda a, b: first_crossing(_saturating, (a, b), 20.0)

    @jax.jit
    def everything(a, b):
        # Reverse mode (the loss must not touch the inf entry), forward mode, and a closed-over value.
        loss = lambda a, b: jnp.sum(jnp.where(crosses, root(a, b), 0.0))
        closed = lambda a: jnp.sum(jnp.where(crosses, first_crossing(lambda s, _: _saturating(s, (a, b)), None, 20.0),
                                             0.0))
        return root(a, b), jax.grad(loss, argnums=(0, 1))(a, b), jax.jacfwd(root)(a, b), jax.grad(closed)(a)

    t, (da, db), jac, da_closed = everything(a, b)
    with np.errstate(invalid="ignore", divide="ignore"):
        np.testing.assert_allclose(t, np.where(crosses, -b_ * np.log(1 - 1 / a_), np.inf), rtol=1e-13)
        da_want = np.where(crosses, -b_ / (a_**2 - a_), 0.0)
        db_want = np.where(crosses, -np.log(1 - 1 / a_), 0.0)
    np.testing.assert_allclose(da, da_want, rtol=1e-9)
    np.testing.assert_allclose(db, db_want, rtol=1e-9)
    np.testing.assert_allclose(np.diagonal(jac), da_want, rtol=1e-9)
    np.testing.assert_allclose(da_closed, da_want, rtol=1e-9)

    # A crossing after the horizon is none (inf); a start at or above zero is a crossing at 0; both
    # have zero derivative.
    @jax.jit
    def edges(a):
        late = lambda a: first_crossing(_saturating, (a, jnp.array(5.0)), 5.0)
        above = lambda a: first_crossing(lambda s, a: a - 1.0 + s, a, 5.0)
        return late(a), above(a), jax.grad(late)(a), jax.grad(above)(a)

    late, above, d_late, d_above = edges(jnp.array(1.5))
    assert np.isinf(late) and float(above) == 0.0 and float(d_late) == 0.0 and float(d_above) == 0.0


def test_first_crossing_brackets_the_first_of_several():
    """sin t - 1/2 crosses upwards at pi/6 + 2 pi n; a narrow bump is found only with a knot at it."""
    bump = lambda s, w: jnp.exp(-((s - 3.0) ** 2) / w) - 0.5

    @jax.jit
    def crossings(width):
        return (first_crossing(lambda s, _: jnp.sin(s) - 0.5, None, jnp.array([20.0, 1.0, 0.4])),
                first_crossing(lambda s, c: jnp.sin(s + c) - 0.5, jnp.array(3.0), 20.0),
                first_crossing(bump, width, 10.0, grid=2),
                first_crossing(bump, width, 10.0, grid=2, knots=jnp.array([3.0])))

    first, later, missed, found = crossings(jnp.array(0.01))
    np.testing.assert_allclose(first, [np.pi / 6, np.pi / 6, np.inf], rtol=1e-14)
    np.testing.assert_allclose(later, 2 * np.pi + np.pi / 6 - 3.0, rtol=1e-14)
    assert np.isinf(missed)
    np.testing.assert_allclose(found, 3.0 - np.sqrt(0.01 * np.log(2.0)), rtol=1e-14)
    with pytest.raises(ValueError, match="horizon"):
        first_crossing(bump, jnp.array(0.01), jnp.inf)
    with pytest.raises(ValueError, match="grid"):
        first_crossing(bump, jnp.array(0.01), 1.0, grid=1)


# --- LIF: closed form (delta synapses) ---------------------------------------------------------------


def test_lif_first_spike_time_and_its_current_derivative():
    """From rest under constant I > v_th: t = tau ln(I / (I - v_th)), dt/dI = tau (1/I - 1/(I - v_th))."""
    tau, v_th, current = 20.0, 1.0, np.array([1.2, 1.5, 3.0])
    lif = LIF(tau_mem=tau, v_th=v_th)
    first = jax.jit(lambda i: sj.spike_times(lif, current=i, t1=100.0, max_spikes=3)[:, 0])
    np.testing.assert_allclose(first(jnp.asarray(current)), tau * np.log(current / (current - v_th)), atol=1e-9)
    grad = jax.grad(lambda i: jnp.sum(first(i)))(jnp.asarray(current))
    np.testing.assert_allclose(grad, tau * (1 / current - 1 / (current - v_th)), rtol=1e-6)


def test_lif_refractory_interspike_interval_is_exact():
    tau, v_th, current, t_ref, t1 = 10.0, 1.0, 1.5, 2.0, 100.0
    lif = LIF(tau_mem=tau, v_th=v_th, v_reset=0.0, reset="zero", t_ref=t_ref)
    times = np.asarray(sj.spike_times(lif, current=current, t1=t1, max_spikes=12))
    climb = tau * np.log(current / (current - v_th))
    finite = times[np.isfinite(times)]
    assert len(finite) == 1 + int((t1 - climb) // (t_ref + climb)) and len(finite) < len(times)
    np.testing.assert_allclose(finite[0], climb, atol=1e-9)
    np.testing.assert_allclose(np.diff(finite), t_ref + climb, atol=1e-9)


def test_lif_delta_time_to_spike_cases_and_nan_free_gradients():
    """Held, already-crossed, non-firing and beyond-horizon states; gradients finite everywhere."""
    tau, v_th = 10.0, 1.0
    bias = jnp.array([1.5, 1.5, 0.9, 1.5, 1.01])
    v0 = jnp.array([0.2, 0.4, 0.5, 1.0, 0.0])
    held = jnp.array([0.0, 3.0, 0.0, 0.0, 0.0])

    def tts(bias, v0):
        state = LIFState(v=v0, i=jnp.zeros(5), refractory=held)
        return LIF(tau_mem=tau, v_th=v_th, bias=bias).time_to_spike(state, 30.0)

    fires = np.array([True, True, False, False, False])  # 3: at threshold (t = 0); 4: after the horizon
    loss = lambda b, v: jnp.sum(jnp.where(fires, tts(b, v), 0.0) ** 2)
    t, (gb, gv) = jax.jit(lambda b, v: (tts(b, v), jax.grad(loss, argnums=(0, 1))(b, v)))(bias, v0)
    b, v, r = np.asarray(bias), np.asarray(v0), np.asarray(held)
    want = r[:2] + tau * np.log((b[:2] - v[:2]) / (b[:2] - v_th))
    np.testing.assert_allclose(t[:2], want, atol=1e-12)
    assert t[3] == 0.0 and np.isinf(t[2]) and np.isinf(t[4])  # crossing at 46 ms > horizon
    assert np.all(np.isfinite(gb)) and np.all(np.isfinite(gv))
    np.testing.assert_allclose(gv[:2], -2 * t[:2] * tau / (b[:2] - v[:2]), rtol=1e-10)
    np.testing.assert_allclose(gb[2:], 0.0)


# --- LIF: exponential synapses (bracketed root, implicit-function-theorem gradients) ------------------


def reference_crossing(v0, i0, held, bias, tau_m, tau_s, v_th, horizon):
    """Independent reference: the double-exponential solution on a dense grid, then bisection."""

    def v(t):
        s = np.maximum(t - held, 0.0)
        i_r = i0 * np.exp(-np.minimum(t, held) / tau_s)
        if tau_s == tau_m:
            c = s / tau_m * np.exp(-s / tau_m)
        else:
            c = tau_s / (tau_s - tau_m) * (np.exp(-s / tau_s) - np.exp(-s / tau_m))
        return bias + (v0 - bias) * np.exp(-s / tau_m) + c * i_r

    grid = np.linspace(0.0, horizon, 400_001)
    above = v(grid) >= v_th
    if not above.any():
        return np.inf
    k = int(np.argmax(above))
    if k == 0:
        return 0.0
    lo, hi = grid[k - 1], grid[k]
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if v(mid) >= v_th else (mid, hi)
    return 0.5 * (lo + hi)


# rising to bias > v_th; crossing on the way up to a peak (bias < v_th); dip then rise; held then
# crossing; peak below threshold; already above; crossing after the horizon (at 46 ms); held, then
# crossing a higher threshold.
EXP_V = np.array([0.0, 0.2, 0.5, 0.0, 0.3, 1.2, 0.0, 0.6])
EXP_I = np.array([0.0, 4.0, -3.0, 4.0, 0.5, 0.0, 0.0, 3.0])
EXP_HELD = np.array([0.0, 0.0, 0.5, 1.5, 0.0, 0.0, 0.0, 2.0])
EXP_BIAS = np.array([1.5, 0.5, 1.4, 0.5, 0.5, 0.2, 1.01, 0.7])
EXP_VTH = np.array([1.0, 1.0, 1.0, 0.9, 1.0, 1.0, 1.0, 1.1])
EXP_HORIZON = 40.0


def test_lif_exponential_time_to_spike_matches_reference_and_finite_differences():
    """Each case with tau_syn = 5 and with tau_syn = tau_mem = 10 (one population of 2 x 8 neurons)."""
    tau_m, tau_s = 10.0, np.repeat([5.0, 10.0], len(EXP_V))
    cases = [np.tile(x, 2) for x in (EXP_V, EXP_I, EXP_HELD, EXP_BIAS)] + [np.full(len(tau_s), tau_m), tau_s,
                                                                         np.tile(EXP_VTH, 2)]
    want = np.array([reference_crossing(*(float(x[k]) for x in cases[:4]), tau_m, tau_s[k], float(cases[6][k]),
                                        EXP_HORIZON) for k in range(len(tau_s))])
    crossing = np.isfinite(want) & (want > 0)
    np.testing.assert_array_equal(crossing, np.tile([True, True, True, True, False, False, False, True], 2))

    def tts(p):
        v, i, held, bias, tau_mem, tau_syn, v_th = p
        neuron = LIF(tau_mem=tau_mem, tau_syn=tau_syn, v_th=v_th, bias=bias)
        return neuron.time_to_spike(LIFState(v=v, i=i, refractory=held), EXP_HORIZON)

    both = jax.jit(lambda p: (tts(p), jax.grad(lambda p: jnp.sum(jnp.where(crossing, tts(p), 0.0)))(p)))
    p = [jnp.asarray(x) for x in cases]
    t, grads = both(p)
    np.testing.assert_allclose(t, want, rtol=1e-10, atol=1e-10)
    # Every element depends only on its own parameters: one central difference per parameter array.
    # (The hold time has a one-sided derivative at 0: compared only where a hold is running.)
    for k, g in enumerate(grads):
        h = 1e-6 * np.maximum(np.abs(cases[k]), 1.0)
        up = [x + h if j == k else x for j, x in enumerate(p)]
        down = [x - h if j == k else x for j, x in enumerate(p)]
        where = crossing & (cases[2] > 0) if k == 2 else crossing
        fd = (np.asarray(both(up)[0])[where] - np.asarray(both(down)[0])[where]) / (2 * h[where])
        np.testing.assert_allclose(np.asarray(g)[where], fd, rtol=1e-6, atol=1e-7)
        assert np.all(np.asarray(g)[~crossing] == 0.0)


# --- event-driven networks --------------------------------------------------------------------------

T1 = 60.0
INPUT_TIMES = np.array([4.3, 9.1, 17.7, 23.2, 31.9, 38.4, 47.5, np.inf])
INPUT_IDS = np.array([0, 1, 0, 1, 1, 0, 1, 0])
W_IN = np.array([[1.0, -0.6, 0.8], [-0.5, 0.9, 0.7]])
W_REC = np.array([[0.0, -1.0, 0.5], [-0.9, 0.0, -1.1], [0.6, -1.2, 0.0]])
W_OUT = np.array([[0.5, -0.2], [0.3, 0.4], [-0.1, 0.6]])
# (tau_syn, bias, input scale, recurrent scale; exponential synapses also with a refractory hold and
# reset to zero): every neuron spikes several times, no spike is
# borderline (test_convergence.py checks +-3 % weight changes) and none
# coincides with an input spike or with another neuron's spike.
CONFIGS = {"delta": (None, [1.5, 1.3, 1.2], 0.1, 0.1), "exponential": (5.0, [1.5, 1.35, 1.25], 0.3, 0.2)}


def network(kind, w_in=None, w_rec=None, b_out=(0.1, -0.2)):
    tau_syn, bias, s_in, s_rec = CONFIGS[kind]
    extra = {} if tau_syn is None else {"t_ref": 1.0, "reset": "zero"}
    lif = LIF(tau_mem=10.0, bias=jnp.asarray(bias), tau_syn=tau_syn, **extra)
    return sj.networks.RSNN(2, 3, 2, neuron=lif, w_in=s_in * W_IN if w_in is None else w_in,
                            w_rec=s_rec * W_REC if w_rec is None else w_rec, w_out=W_OUT, b_out=jnp.asarray(b_out))


def inputs():
    return sj.SpikeTrain(jnp.asarray(INPUT_TIMES), jnp.asarray(INPUT_IDS), n=2)


@eqx.filter_jit
def run(net, train, max_events=32, **kw):
    return sj.simulate(net, train, method="event", t1=T1, max_events=max_events, **kw)


@pytest.mark.parametrize("kind", ["delta", "exponential"])
def test_network_spike_time_gradients_match_finite_differences(kind):
    w_in0, w_rec0 = CONFIGS[kind][2] * W_IN, CONFIGS[kind][3] * W_REC

    def loss(w_in, w_rec):
        out = sj.simulate(network(kind, w_in, w_rec), inputs(), method="event", t1=T1, max_events=32,
                          record_dt=10.0)
        t = out.spikes.times
        weights = 1.0 + 0.1 * jnp.arange(t.shape[-1])
        return jnp.sum(weights * jnp.where(jnp.isfinite(t), t, 0.0)) + jnp.sum(out.readout**2), out.spikes

    # One compiled function gives the loss (for the finite differences) and its gradient.
    value_and_grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))
    value = lambda w_in, w_rec: float(value_and_grad(w_in, w_rec)[0][0])
    (_, spikes), (g_in, g_rec) = value_and_grad(w_in0, w_rec0)
    times, ids = np.asarray(spikes.times), np.asarray(spikes.ids)
    finite = np.isfinite(times)
    assert np.all(np.bincount(ids[finite], minlength=3) >= 2)
    others = np.sort(np.concatenate([times[finite], INPUT_TIMES[np.isfinite(INPUT_TIMES)]]))
    assert np.min(np.diff(others)) > 0.1  # no coincident events: every spike is a threshold crossing
    assert np.all(np.diag(np.asarray(g_rec)) == 0.0)  # self-connections are masked
    h = 1e-6
    for w0, g, which in ((w_in0, g_in, 0), (w_rec0, g_rec, 1)):
        for idx in np.ndindex(w0.shape):
            if which == 1 and idx[0] == idx[1]:
                continue
            e = np.zeros_like(w0)
            e[idx] = h
            up = (w_in0 + e, w_rec0) if which == 0 else (w_in0, w_rec0 + e)
            down = (w_in0 - e, w_rec0) if which == 0 else (w_in0, w_rec0 - e)
            fd = (value(*up) - value(*down)) / (2 * h)
            np.testing.assert_allclose(float(g[idx]), fd, rtol=1e-5, atol=1e-6 * max(1.0, abs(fd)))


def test_readout_and_batch_semantics():
    """The readout is b_out + (o0 - b_out) e^{-t/tau} + sum_k W_out[j_k] e^{-(t - t_k)/tau}; batch axes
    of the spike train are independent trials."""
    net = network("delta")
    one = run(net, inputs(), record_dt=10.0)
    times, ids = np.asarray(one.spikes.times), np.asarray(one.spikes.ids)
    grid = np.arange(1, 7) * 10.0
    b_out, tau = np.array([0.1, -0.2]), 20.0
    want = b_out + (0.0 - b_out) * np.exp(-grid[:, None] / tau)
    for t, j in zip(times[np.isfinite(times)], ids[np.isfinite(times)]):
        want = want + (grid[:, None] >= t) * W_OUT[j] * np.exp(-np.maximum(grid[:, None] - t, 0) / tau)
    np.testing.assert_allclose(one.readout, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(one.info["readout_times"], grid)
    assert one.v is None and one.spikes.n == 3 and one.spikes.times.shape == (32,)
    assert not bool(one.info["exhausted"]) and float(one.info["t_reached"]) == T1
    assert int(one.info["n_events"]) == int(one.info["n_spikes"]) + 7
    np.testing.assert_allclose(one.final_state.readout, want[-1], rtol=1e-12)
    # A batch of two trials: the same train, and the train shifted by 1 ms (unsorted, with padding).
    shifted = np.where(np.isfinite(INPUT_TIMES), INPUT_TIMES + 1.0, np.inf)[::-1]
    batch = sj.SpikeTrain(jnp.asarray(np.stack([INPUT_TIMES, shifted])),
                          jnp.asarray(np.stack([INPUT_IDS, INPUT_IDS[::-1]])), n=2)
    two = run(net, batch, record_dt=10.0)
    other = run(net, sj.SpikeTrain(jnp.asarray(shifted), jnp.asarray(INPUT_IDS[::-1]), n=2), record_dt=10.0)
    np.testing.assert_allclose(two.spikes.times[0], one.spikes.times, rtol=1e-13)
    np.testing.assert_allclose(two.spikes.times[1], other.spikes.times, rtol=1e-13)
    np.testing.assert_allclose(two.readout[:, 1], other.readout, rtol=1e-13)
    assert two.readout.shape == (6, 2, 2) and two.info["exhausted"].shape == (2,)


def test_event_loop_is_generic_over_neurons():
    """Uncoupled QIF neurons with I > 0 fire with period pi tau / sqrt(I) from theta = -pi."""
    current = jnp.array([0.5, 1.0, 2.0])
    net = sj.networks.RSNN(2, 3, 2, neuron=QIF(tau_mem=2.0, bias=current), w_in=np.zeros((2, 3)),
                           w_rec=np.zeros((3, 3)), w_out=W_OUT)
    out = run(net, inputs(), max_events=48)
    times, ids = np.asarray(out.spikes.times), np.asarray(out.spikes.ids)
    for j in range(3):
        period = np.pi * 2.0 / np.sqrt(float(current[j]))
        want = period * np.arange(1, int(T1 / period) + 1)
        np.testing.assert_allclose(times[ids == j][: len(want)], want, rtol=1e-9)
        assert np.sum((ids == j) & np.isfinite(times)) == len(want)


def test_exhausted_budget_is_an_error_naming_max_events():
    net = network("delta")
    with pytest.raises(RuntimeError, match="max_events=5"):
        sj.simulate(net, inputs(), method="event", t1=T1, max_events=5)
    with pytest.raises(Exception, match="max_events"):
        jax.block_until_ready(run_small(net, inputs()).spikes.times)
    flagged = sj.simulate(net, inputs(), method="event", t1=T1, max_events=5, on_exhausted="flag")
    assert bool(flagged.info["exhausted"]) and float(flagged.info["t_reached"]) < T1
    assert int(flagged.info["n_events"]) == 5


@eqx.filter_jit
def run_small(net, train):
    return sj.simulate(net, train, method="event", t1=T1, max_events=5)


@pytest.mark.parametrize("call, error, match", [
    (lambda net: sj.simulate(net, sj.SpikeTrain(jnp.array([1.0]), jnp.array([0]), n=3), method="event", t1=T1),
     ValueError, "n=3"),
    (lambda net: sj.simulate(net, jnp.zeros((10, 2)), method="event", t1=T1), TypeError, "SpikeTrain"),
    (lambda net: sj.simulate(net, inputs(), method="event"), ValueError, "t1"),
    (lambda net: sj.simulate(net, inputs(), method="event", t1=-1.0), ValueError, "t1"),
    (lambda net: sj.simulate(net, inputs(), method="event", t1=T1, max_events=0), ValueError, "max_events"),
    (lambda net: sj.simulate(net, inputs(), method="event", t1=T1, record_dt=7.0), ValueError, "record_dt"),
    (lambda net: sj.simulate(net, inputs(), method="event", t1=T1, on_exhausted="ignore"), ValueError, "ignore"),
    (lambda net: sj.simulate(eqx.tree_at(lambda n: n.tau_out, net, None, is_leaf=lambda x: x is None),
                             inputs(), method="event", t1=T1), ValueError, "tau_out"),
    (lambda net: sj.spike_times(net.neuron, current=1.0, t1=T1, max_spikes=0), ValueError, "max_spikes"),
])
def test_bad_input_is_rejected(call, error, match, unchecked):
    with pytest.raises(error, match=match):
        call(network("delta"))
