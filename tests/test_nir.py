"""NIR exchange: export -> import round trips (RSNN, spiking feed-forward, a small conv net) keep
parameters and simulation output; a recurrent CubaLIF graph written with the nir API alone
converges, as dt -> 0, to the exact solution of the graph's own continuous-time equations
(diffrax, tight tolerances, root-found spike times); unsupported nodes and unexportable models
give one clear error."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import nir
import numpy as np
import optimistix as optx
import pytest
from scipy.signal import correlate2d

import simjax as sj


def _spikes(key, shape, p=0.2):
    return (jax.random.uniform(key, shape) < p).astype(jnp.float64)


def _same_graphs(a, b):
    assert set(a.nodes) == set(b.nodes) and sorted(a.edges) == sorted(b.edges)
    for name, node in a.nodes.items():
        other = b.nodes[name]
        assert type(node) is type(other), name
        for field in ("weight", "bias", "tau", "tau_mem", "tau_syn", "r", "v_leak", "v_threshold", "v_reset", "w_in"):
            if hasattr(node, field):
                np.testing.assert_array_equal(np.asarray(getattr(node, field)), np.asarray(getattr(other, field)),
                                              err_msg=f"{name}.{field}")


def test_rsnn_round_trip_keeps_parameters_and_output(tmp_path):
    lif = sj.neurons.LIF(tau_mem=10.0, v_th=1.0, v_reset=0.0, reset="zero", v_rest=0.1)
    net = sj.networks.RSNN(n_in=5, n_rec=8, n_out=3, neuron=lif, key=jax.random.key(0), in_scale=3.0,
                           b_out=jnp.array([0.1, -0.2, 0.3]), tau_out=15.0)
    graph = sj.nir.export(net)
    assert type(graph.nodes["lif"]).__name__ == "LIF" and ("w_rec", "lif") in graph.edges
    path = tmp_path / "rsnn.nir"
    nir.write(path, graph)
    loaded = sj.nir.load(path)
    # the parameters: NIR's [out, in] weights are simjax's transposed; r = tau makes a weight a jump of v
    np.testing.assert_array_equal(loaded.nodes["w_in"].weight, np.asarray(net.w_in.dense()).T)
    np.testing.assert_array_equal(loaded.nodes["w_rec"].weight, np.asarray(net.recurrent_weight()).T)
    np.testing.assert_array_equal(loaded.nodes["w_out"].weight, np.asarray(net.w_out.dense()).T)
    np.testing.assert_array_equal(loaded.nodes["w_out"].bias, np.asarray(net.b_out))
    np.testing.assert_array_equal(loaded.nodes["lif"].neuron.tau_mem, np.full(8, 10.0))
    np.testing.assert_array_equal(loaded.nodes["lif"].neuron.v_rest, np.full(8, 0.1))
    np.testing.assert_array_equal(loaded.nodes["lif"].gain, np.ones(8))
    _same_graphs(graph, sj.nir.export(loaded))
    # the simulation: same spikes, potentials and readout
    x = _spikes(jax.random.key(1), (80, 3, 5))
    a, b = sj.simulate(net, x, dt=1.0), sj.simulate(loaded, x, dt=1.0)
    assert float(a.spikes.sum()) > 20
    np.testing.assert_array_equal(a.spikes, b.spikes)
    np.testing.assert_allclose(b.v, a.v, rtol=0, atol=1e-12)
    np.testing.assert_allclose(b.readout, a.readout, rtol=0, atol=1e-12)


def test_current_based_rsnn_exports_cubalif_and_round_trips():
    lif = sj.neurons.LIF(tau_mem=10.0, tau_syn=4.0, reset="zero")
    net = sj.networks.RSNN(n_in=4, n_rec=6, n_out=2, neuron=lif, key=jax.random.key(2), in_scale=8.0)
    graph = sj.nir.export(net)
    node = graph.nodes["lif"]
    assert type(node).__name__ == "CubaLIF"
    np.testing.assert_array_equal(node.r * node.w_in, np.full(6, 4.0))
    loaded = sj.nir.load(graph)
    x = _spikes(jax.random.key(3), (60, 2, 4), 0.3)
    a, b = sj.simulate(net, x, dt=0.5), sj.simulate(loaded, x, dt=0.5)
    assert float(a.spikes.sum()) > 5
    np.testing.assert_array_equal(a.spikes, b.spikes)
    np.testing.assert_allclose(b.readout, a.readout, rtol=0, atol=1e-12)


def test_feedforward_round_trip_keeps_parameters_and_output():
    neurons = (sj.neurons.LIF(tau_mem=8.0, reset="zero"), sj.neurons.LIF(tau_mem=12.0, v_th=0.8, reset="zero"))
    net = sj.networks.SpikingFeedForward((6, 10, 4), neurons, key=jax.random.key(4), scale=3.0)
    graph = sj.nir.export(net)
    assert [type(graph.nodes[n]).__name__ for n in ("fc0", "lif0", "fc1", "lif1")] == ["Linear", "LIF", "Linear", "LIF"]
    loaded = sj.nir.load(graph)
    for l in range(2):
        np.testing.assert_array_equal(loaded.nodes[f"fc{l}"].weight, np.asarray(net.layers[l].dense()).T)
    _same_graphs(graph, sj.nir.export(loaded))
    x = _spikes(jax.random.key(5), (70, 3, 6), 0.3)
    a, b = sj.simulate(net, x, dt=1.0), sj.simulate(loaded, x, dt=1.0)
    assert float(a.spikes.sum()) > 5
    np.testing.assert_array_equal(a.spikes, b.spikes)
    np.testing.assert_array_equal(b.readout, a.spikes)          # the output node records the last layer's spikes
    np.testing.assert_allclose(b.v, a.v, rtol=0, atol=1e-12)


def _conv_net(key):
    k1, k2, k3 = jax.random.split(key, 3)
    conv = sj.nir.Conv2d(jax.random.normal(k1, (3, 2, 3, 3)), jax.random.normal(k2, (3,)) * 0.05, (6, 5),
                         stride=1, padding=1)
    lif = lambda shape, tau: sj.nir.LIFNode(sj.neurons.LIF(tau_mem=jnp.full(shape, tau), reset="zero"),
                                            r=jnp.full(shape, tau))
    nodes = {"conv": conv, "lif0": lif((3, 6, 5), 5.0), "flat": sj.nir.Flatten((3, 6, 5)),
             "fc": sj.nir.Affine(jax.random.normal(k3, (4, 90)) * 0.5, jnp.zeros(4)), "lif1": lif((4,), 10.0)}
    edges = [("input", "conv"), ("conv", "lif0"), ("lif0", "flat"), ("flat", "fc"), ("fc", "lif1"), ("lif1", "output")]
    return sj.nir.NIRNetwork(nodes, edges, "input", "output", (2, 6, 5))


def test_conv2d_is_nir_and_pytorch_cross_correlation():
    net = _conv_net(jax.random.key(6))
    conv = net.nodes["conv"]
    assert conv.out_shape == (3, 6, 5)
    x = np.asarray(jax.random.normal(jax.random.key(7), (2, 6, 5)))
    _, y, _ = conv.apply(None, jnp.asarray(x)[None], 0.5)
    w = np.asarray(conv.weight)
    for o in range(3):
        expect = sum(correlate2d(x[c], w[o, c], mode="same") for c in range(2)) + 0.5 * float(conv.bias[o])
        np.testing.assert_allclose(y[0, o], expect, rtol=1e-12, atol=1e-12)


def test_conv_net_round_trip_keeps_parameters_and_output():
    net = _conv_net(jax.random.key(8))
    graph = sj.nir.export(net)
    assert type(graph.nodes["conv"]).__name__ == "Conv2d" and type(graph.nodes["flat"]).__name__ == "Flatten"
    loaded = sj.nir.load(graph)
    np.testing.assert_array_equal(loaded.nodes["conv"].weight, net.nodes["conv"].weight)
    np.testing.assert_array_equal(loaded.nodes["fc"].weight, net.nodes["fc"].weight)
    _same_graphs(graph, sj.nir.export(loaded))
    x = _spikes(jax.random.key(9), (30, 2, 60), 0.3)
    a, b = sj.simulate(net, x, dt=1.0), sj.simulate(loaded, x, dt=1.0)
    assert float(a.spikes.sum()) > 3 and a.spikes.shape == (30, 2, 4)
    np.testing.assert_array_equal(a.spikes, b.spikes)
    np.testing.assert_array_equal(a.readout, b.readout)


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
        sol = diffrax.diffeqsolve(diffrax.ODETerm(field), diffrax.Dopri8(), t0, T1, 0.01, y0, event=event,
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


def test_recurrent_cubalif_graph_converges_to_its_continuous_time_solution():
    exact = _exact_spike_times()
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


# ------------------------------------------------------------------------------------------------- errors


def test_unsupported_nodes_and_models_give_one_clear_error(unchecked):
    graph = _cuba_graph()
    graph.nodes["pool"] = nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                                        padding=np.array([0, 0]))
    with pytest.raises(ValueError, match=r"'pool' \(SumPool2d\)"):
        sj.nir.load(graph)
    with pytest.raises(ValueError, match=r"'conv' \(Conv2d\), 'flat' \(Flatten\) have no continuous-time form"):
        sj.nir.simulate_exact(_conv_net(jax.random.key(0)), 1.0)
    with pytest.raises(ValueError, match="reset='subtract'"):
        sj.nir.export(sj.networks.RSNN(n_in=2, n_rec=3, n_out=1, key=jax.random.key(0)))
    with pytest.raises(ValueError, match="refractory"):
        sj.nir.export(sj.networks.RSNN(n_in=2, n_rec=3, n_out=1, key=jax.random.key(0),
                                       neuron=sj.neurons.LIF(reset="zero", t_ref=2.0)))
    with pytest.raises(ValueError, match="ALIF"):
        sj.nir.export(sj.networks.RSNN(n_in=2, n_rec=3, n_out=1, key=jax.random.key(0), neuron=sj.neurons.ALIF()))
    with pytest.raises(TypeError, match="RateRNN has no NIR form"):
        sj.nir.export(sj.networks.RateRNN(n_in=2, n_rec=3, n_out=1, key=jax.random.key(0)))
