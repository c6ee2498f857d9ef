"""The continuous-time meaning of a NIR graph: a recurrent CubaLIF graph written with the nir API
alone converges, as dt -> 0, to the exact solution of its own equations (diffrax, tight tolerances,
root-found spike times), which `simjax.nir.simulate_exact` reproduces; on an exported RSNN,
`simulate_exact` agrees with simjax's event-driven method."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import nir
import numpy as np
import optimistix as optx
import pytest

import simjax as sj

# ------------------------------------------------------------- a recurrent CubaLIF graph in continuous time

TAU_SYN, TAU_MEM, R, V_TH = np.array([5.0, 4.0, 6.0]), np.array([10.0, 12.0, 8.0]), np.array([2.0, 1.5, 2.5]), 1.0
BIAS = np.array([0.8, 0.9, 0.55])
W_REC = np.array([[0.0, 1.5, -1.0], [1.2, 0.0, 0.8], [-0.6, 2.0, 0.0]])
T1 = 60.0


def _cuba_graph():
    """Written with the nir API alone: input -> affine (bias drive) -> cubalif <-> linear (recurrence)."""
    n = 3
    nodes = {
        "input": nir.Input(input_type={"input": np.array([1])}),
        "affine": nir.Affine(weight=np.zeros((n, 1)), bias=BIAS.copy()),
        "cuba": nir.CubaLIF(tau_syn=TAU_SYN.copy(), tau_mem=TAU_MEM.copy(), r=R.copy(), v_leak=np.zeros(n),
                            v_threshold=np.full(n, V_TH), v_reset=np.zeros(n), w_in=np.ones(n)),
        "rec": nir.Linear(weight=W_REC.copy()),
        "output": nir.Output(output_type={"output": np.array([n])}),
    }
    edges = [("input", "affine"), ("affine", "cuba"), ("cuba", "rec"), ("rec", "cuba"), ("cuba", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges)


def _exact_spike_times():
    """The graph's equations solved by diffrax between spikes, spike times root-found:
    tau_syn dI/dt = -I + b + W_rec S(t),  tau_mem dv/dt = -v + r I,  v -> 0 at v = v_th."""

    def field(t, y, args):
        i, v = y
        return (-i + BIAS) / TAU_SYN, (-v + R * i) / TAU_MEM

    @eqx.filter_jit
    def segment(t0, y0):
        event = diffrax.Event(lambda t, y, args, **kw: jnp.max(y[1] - V_TH),
                              root_finder=optx.Newton(rtol=1e-12, atol=1e-12))
        sol = diffrax.diffeqsolve(diffrax.ODETerm(field), diffrax.Tsit5(), t0, T1, 0.01, y0, event=event,
                                  stepsize_controller=diffrax.PIDController(rtol=1e-11, atol=1e-12),
                                  saveat=diffrax.SaveAt(t1=True), max_steps=100_000)
        return sol.ts[-1], (sol.ys[0][-1], sol.ys[1][-1])

    t, y, spikes = 0.0, (jnp.zeros(3), jnp.zeros(3)), []
    while True:
        t, (i, v) = segment(jnp.asarray(t), y)
        t = float(t)
        if t >= T1 - 1e-9:
            return spikes
        k = int(jnp.argmax(v - V_TH))
        spikes.append((t, k))
        v = v.at[k].set(0.0)
        i = i + W_REC[:, k] / TAU_SYN              # a spike of k: I jumps by w_in W_rec[:, k] / tau_syn
        y = (i, v)


@pytest.fixture(scope="module")
def exact():
    return _exact_spike_times()


def _clock_spike_times(net, dt):
    """Per neuron, the spike times of a clock-driven run of the graph (lag-corrected when the
    network interpolates them)."""
    out = sj.simulate(net, jnp.zeros((int(round(T1 / dt)), 1, 1)), dt=dt)
    s = np.asarray(out.spikes[:, 0])
    lag = np.asarray(out.info["spike_lag"][:, 0]) if "spike_lag" in out.info else np.zeros_like(s)
    steps = [np.nonzero(s[:, k])[0] for k in range(s.shape[1])]
    return [(i + 1) * dt for i in steps], [(i + 1) * dt - lag[i, k] for k, i in enumerate(steps)]


def test_recurrent_cubalif_graph_converges_to_its_continuous_time_solution(exact):
    assert len(exact) > 12 and {k for _, k in exact} == {0, 1, 2}
    net = sj.nir.load(_cuba_graph())
    # simjax's own continuous-time solution of the loaded graph is this one
    run = sj.nir.simulate_exact(net, T1)
    times, index = run.spikes["cuba"]
    np.testing.assert_allclose(times, [t for t, _ in exact], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(index, [k for _, k in exact])
    errors = []
    for dt in (0.1, 0.02, 0.005):
        steps = int(round(T1 / dt))
        out = sj.simulate(net, jnp.zeros((steps, 1, 1)), dt=dt)
        s = np.asarray(out.spikes[:, 0])
        per_neuron_clock = [(np.nonzero(s[:, k])[0] + 1) * dt for k in range(3)]
        per_neuron_exact = [np.array([t for t, j in exact if j == k]) for k in range(3)]
        err = 0.0
        for clock, ref in zip(per_neuron_clock, per_neuron_exact):
            assert len(clock) == len(ref), (dt, len(clock), len(ref))
            err = max(err, float(np.max(np.abs(clock - ref))))
        errors.append(err)
        # the first spike (no recurrent input yet): reported at the end of its step, after the drive
        # of each step arrived as one impulse at its end (a lag of about dt / 2): within 2 dt
        first = min(exact)
        assert 0 <= per_neuron_clock[first[1]][0] - first[0] <= 2 * dt
        # later spikes drift by first-order errors (each reset and each recurrent spike lands at the
        # end of a step): bounded by a fixed multiple of dt
        assert err < 8 * dt, (dt, err)
    assert errors[2] < errors[1] < errors[0]


def test_exact_solution_of_an_exported_rsnn_matches_the_event_method():
    """Two independent exact solvers: simjax's event method on the RSNN (closed-form flows, root
    finding per neuron) and `simulate_exact` on its NIR graph (diffrax between spikes)."""
    lif = sj.neurons.LIF(tau_mem=10.0, tau_syn=5.0, reset="zero")
    net = sj.networks.RSNN(n_in=4, n_rec=6, n_out=2, neuron=lif, key=jax.random.key(0), in_scale=3.0, tau_out=15.0)
    rng = np.random.default_rng(0)
    train = sj.SpikeTrain(np.sort(rng.uniform(0, 25, 20)), rng.integers(0, 4, 20), n=4)
    event = sj.simulate(net, train, t1=30.0, method="event", max_events=128)
    finite = np.isfinite(np.asarray(event.spikes.times))
    run = sj.nir.simulate_exact(sj.nir.load(sj.nir.export(net)), 30.0, inputs=train)
    times, index = run.spikes["lif"]
    assert finite.sum() > 10 and len(times) == finite.sum()
    np.testing.assert_allclose(times, np.asarray(event.spikes.times)[finite], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(index, np.asarray(event.spikes.ids)[finite])
    np.testing.assert_allclose(run.readout[-1], event.readout[-1], rtol=0, atol=1e-6)


def test_interpolated_timing_places_every_spike_within_dt_at_second_order(exact):
    """With `timing="interpolated"` every spike of the recurrent graph lies within a fraction of
    `dt` of the exact one (no drift), the end of its step lies within `dt` of it, and the error
    falls as `dt^2`."""
    net = sj.nir.load(_cuba_graph(), timing="interpolated")
    per_neuron_exact = [np.array([t for t, j in exact if j == k]) for k in range(3)]
    errors = []
    for dt in (0.1, 0.02):
        step_ends, times = _clock_spike_times(net, dt)
        err = 0.0
        for end, t, ref in zip(step_ends, times, per_neuron_exact):
            assert len(t) == len(ref), (dt, len(t), len(ref))
            assert np.all(np.abs(end - ref) < dt)  # even the step ends are within dt
            err = max(err, float(np.max(np.abs(t - ref))))
        assert err < 0.25 * dt, (dt, err)
        errors.append(err)
    assert errors[1] < 0.1 * errors[0]  # (0.02 / 0.1)^2 = 0.04: second order


@pytest.mark.parametrize("kind", ["LIF", "IF"])
def test_interpolated_timing_of_a_driven_neuron_against_its_closed_form(kind):
    """A neuron driven by a constant current `c` from t = 0 (an `Affine` bias) fires periodically:
    LIF (`tau dv/dt = -v + r c`, reset to 0) at `n tau ln(r c / (r c - v_th))`, IF (`dv/dt = r c`)
    at `n v_th / (r c)`. On the grid each period is off by up to a step and the errors add up;
    interpolated, the n-th spike stays within a small fraction of `dt` of `n T` for every n."""
    tau, r, c, v_th, t1, dt = 10.0, 1.0, 1.5, 1.0, 100.0, 0.1
    neuron = (nir.LIF(tau=np.array([tau]), r=np.array([r]), v_leak=np.zeros(1), v_threshold=np.array([v_th]),
                      v_reset=np.zeros(1)) if kind == "LIF"
              else nir.IF(r=np.array([r]), v_threshold=np.array([v_th]), v_reset=np.zeros(1)))
    period = tau * np.log(r * c / (r * c - v_th)) if kind == "LIF" else v_th / (r * c)
    graph = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([1])}),
                                "drive": nir.Affine(weight=np.zeros((1, 1)), bias=np.array([c])),
                                "n": neuron, "output": nir.Output(output_type={"output": np.array([1])})},
                         edges=[("input", "drive"), ("drive", "n"), ("n", "output")])
    steps = int(round(t1 / dt))
    exact = period * np.arange(1, int(t1 / period) + 1)
    grid = sj.simulate(sj.nir.load(graph), jnp.zeros((steps, 1, 1)), dt=dt)
    grid_times = (np.nonzero(np.asarray(grid.spikes[:, 0, 0]))[0] + 1) * dt
    out = sj.simulate(sj.nir.load(graph, timing="interpolated"), jnp.zeros((steps, 1, 1)), dt=dt)
    k = np.nonzero(np.asarray(out.spikes[:, 0, 0]))[0]
    times = (k + 1) * dt - np.asarray(out.info["spike_lag"][k, 0, 0])
    assert len(times) == len(exact)
    np.testing.assert_allclose(times, exact, rtol=0, atol=0.05 * dt)
    assert np.max(np.abs(grid_times[: len(exact) // 2] - exact[: len(exact) // 2])) > 2 * dt  # the grid drifts


def test_interpolated_timing_of_a_leaky_integrator_is_second_order():
    """An `LI` node driven by a constant current from t = 0: `v(t) = r c (1 - exp(-t / tau))`. The
    grid applies each step's drive at its end (error O(dt)); interpolated timing takes its moment
    into account (error O(dt^2))."""
    tau, r, c = 10.0, 2.0, 0.7
    graph = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([1])}),
                                "drive": nir.Affine(weight=np.zeros((1, 1)), bias=np.array([c])),
                                "li": nir.LI(tau=np.array([tau]), r=np.array([r]), v_leak=np.zeros(1)),
                                "output": nir.Output(output_type={"output": np.array([1])})},
                         edges=[("input", "drive"), ("drive", "li"), ("li", "output")])
    errors = {}
    for timing in ("grid", "interpolated"):
        for dt in (0.5, 0.1):
            steps = int(round(20.0 / dt))
            out = sj.simulate(sj.nir.load(graph, timing=timing), jnp.zeros((steps, 1, 1)), dt=dt)
            t = dt * np.arange(1, steps + 1)
            errors[timing, dt] = np.max(np.abs(np.asarray(out.readout[:, 0, 0]) - r * c * (1 - np.exp(-t / tau))))
    assert 3 < errors["grid", 0.5] / errors["grid", 0.1] < 7  # first order: 5
    assert errors["interpolated", 0.5] / errors["interpolated", 0.1] > 20  # second order: 25
    assert errors["interpolated", 0.1] < 0.05 * errors["grid", 0.1]
