"""NIR exchange: export -> import round trips (RSNN, spiking feed-forward, a small conv net) keep
parameters and simulation output, a loaded graph trains with the network's own gradients, and
unsupported nodes and unexportable models give one clear error (continuous time:
test_nir_exact.py)."""

import jax
import jax.numpy as jnp
import nir
import numpy as np
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


def test_a_loaded_graph_trains_with_the_same_surrogate_gradients():
    lif = sj.neurons.LIF(tau_mem=10.0, reset="zero")
    net = sj.networks.RSNN(n_in=5, n_rec=8, n_out=3, neuron=lif, key=jax.random.key(10), in_scale=3.0)
    loaded = sj.nir.load(sj.nir.export(net))
    params = sj.parameters.params(loaded)
    assert params.neurons["lif"].neuron.tau_mem is None                  # only the weights learn by default
    task = sj.tasks.Supervised(loss="cross_entropy", readout="mean")
    batch = sj.tasks.Batch(inputs=_spikes(jax.random.key(11), (40, 4, 5), 0.3), targets=jnp.array([0, 1, 2, 1]))
    loss_a, grads_a, _ = sj.rules.Exact()(net, task, batch, jax.random.key(0))
    loss_b, grads_b, _ = sj.rules.Exact()(loaded, task, batch, jax.random.key(0))
    np.testing.assert_allclose(loss_b, loss_a, rtol=1e-12)
    for name, projection in (("w_in", grads_a.w_in), ("w_out", grads_a.w_out)):
        np.testing.assert_allclose(grads_b.layers[name].weight, np.asarray(projection.weight).T, rtol=1e-9, atol=1e-12)
    mask = 1.0 - np.eye(8)                                                # (the RSNN's diagonal is masked)
    np.testing.assert_allclose(np.asarray(grads_b.layers["w_rec"].weight) * mask,
                               np.asarray(grads_a.w_rec.weight).T * mask, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(grads_b.layers["w_out"].bias, grads_a.b_out, rtol=1e-9, atol=1e-12)


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


def test_conv_net_round_trip_keeps_parameters_and_output(tmp_path):
    net = _conv_net(jax.random.key(8))
    graph = sj.nir.export(net)
    assert type(graph.nodes["conv"]).__name__ == "Conv2d" and type(graph.nodes["flat"]).__name__ == "Flatten"
    nir.write(tmp_path / "conv.nir", graph)
    loaded = sj.nir.load(tmp_path / "conv.nir")
    assert loaded.input_shape == (2, 6, 5) and loaded.nodes["flat"].input_shape == (3, 6, 5)
    np.testing.assert_array_equal(loaded.nodes["conv"].weight, net.nodes["conv"].weight)
    np.testing.assert_array_equal(loaded.nodes["fc"].weight, net.nodes["fc"].weight)
    _same_graphs(graph, sj.nir.export(loaded))
    x = _spikes(jax.random.key(9), (30, 2, 60), 0.3)
    a, b = sj.simulate(net, x, dt=1.0), sj.simulate(loaded, x, dt=1.0)
    assert float(a.spikes.sum()) > 3 and a.spikes.shape == (30, 2, 4)
    np.testing.assert_array_equal(a.spikes, b.spikes)
    np.testing.assert_array_equal(a.readout, b.readout)


def test_if_and_leaky_integrator_nodes_follow_their_closed_forms():
    """input -> w -> IF / LI / CubaLI / I, one impulse (or one per step) of the input, against the
    node equations solved by hand."""
    w = np.array([[2.0]])
    nodes = {"input": nir.Input(input_type={"input": np.array([1])}), "w": nir.Linear(weight=w),
             "if": nir.IF(r=np.array([0.3]), v_threshold=np.array([1.0]), v_reset=np.array([0.0])),
             "li": nir.LI(tau=np.array([10.0]), r=np.array([5.0]), v_leak=np.array([0.2])),
             "cli": nir.CubaLI(tau_syn=np.array([3.0]), tau_mem=np.array([7.0]), r=np.array([1.5]),
                               v_leak=np.array([0.0]), w_in=np.array([2.0])),
             "int": nir.I(r=np.array([0.25])),
             "output": nir.Output(output_type={"output": np.array([1])})}
    dt, steps = 0.5, 12
    for name in ("if", "li", "cli", "int"):
        graph = nir.NIRGraph(nodes={k: nodes[k] for k in ("input", "w", name, "output")},
                             edges=[("input", "w"), ("w", name), (name, "output")])
        net = sj.nir.load(graph)
        _same_graphs(graph, sj.nir.export(net))
        x = np.zeros((steps, 1, 1))
        x[0] = 1.0 if name != "if" else 0.0
        if name == "if":
            x[:] = 1.0                                               # one spike per step: v += r w = 0.6
        out = np.asarray(sj.simulate(net, x, dt=dt).readout[:, 0, 0])
        t = np.arange(steps) * dt                                    # time since the impulse at the end of step 0
        if name == "if":
            v, expect = 0.0, []
            for _ in range(steps):
                v += 0.6
                expect.append(float(v >= 1.0))
                v = 0.0 if v >= 1.0 else v
        elif name == "li":                                           # v = v_leak + (r w / tau) e^{-t/tau}
            expect = 0.2 + (5.0 * 2.0 / 10.0) * np.exp(-t / 10.0)
        elif name == "cli":
            # r I jumps by amp = r w_in w / tau_syn; then v = amp tau_s / (tau_s - tau_m) (e^-t/tau_s - e^-t/tau_m)
            amp = 1.5 * 2.0 * 2.0 / 3.0
            expect = amp * 3.0 / (3.0 - 7.0) * (np.exp(-t / 3.0) - np.exp(-t / 7.0))
        else:                                                        # v = r w after the impulse
            expect = np.full(steps, 0.25 * 2.0)
        np.testing.assert_allclose(out, expect, rtol=1e-12, atol=1e-12, err_msg=name)


# ------------------------------------------------------------------------------------------------- errors


def test_unsupported_nodes_and_models_give_one_clear_error(unchecked):
    graph = sj.nir.export(_conv_net(jax.random.key(0)))
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
