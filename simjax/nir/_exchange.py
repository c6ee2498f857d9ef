"""`export(model) -> nir.NIRGraph` and `load(graph_or_path) -> NIRNetwork` (needs the `nir` package:
`pip install 'simjax[nir]'`; `.nir` files also need `h5py`). The node mapping and its units are
documented in `simjax.nir._nodes` and docs/usage/nir.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..networks._rsnn import RSNN
from ..networks._spiking_feedforward import SpikingFeedForward
from ..neurons._lif import LIF
from ..surrogates._surrogates import AbstractSurrogate
from ._network import NIRNetwork
from ._nodes import Affine, Conv2d, Flatten, IFNode, LIFNode, LINode

#: The NIR node types `load` understands.
SUPPORTED = ("Input", "Output", "Affine", "Linear", "LIF", "CubaLIF", "IF", "I", "LI", "CubaLI", "Conv2d", "Flatten")


def _nir():
    try:
        import nir
    except ImportError:  # pragma: no cover - the nir extra is part of the test extra
        raise ImportError("NIR exchange needs the nir package: pip install 'simjax[nir]'") from None
    return nir


def _np(x: Any, shape: tuple[int, ...] | None = None) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    return np.broadcast_to(a, shape).copy() if shape is not None else a


# ------------------------------------------------------------------------------------------------ export


def _lif_to_nir(nir, neuron: LIF, shape: tuple[int, ...], *, r=None, w_in=None, where: str):
    if not isinstance(neuron, LIF) or type(neuron) is not LIF:
        raise ValueError(f"export: {where} is a {type(neuron).__name__}; NIR has LIF and CubaLIF (simjax.neurons.LIF)")
    if neuron.reset_mode != "zero":
        raise ValueError(f"export: {where} has reset={neuron.reset_mode!r}; NIR's LIF resets to v_reset, so export "
                         "networks built with LIF(..., reset='zero')")
    if neuron.refractoriness:
        raise ValueError(f"export: {where} has a refractory period t_ref={neuron.t_ref}; NIR's LIF has none")
    p = lambda x: _np(x, shape)
    v_leak = p(neuron.v_rest) + p(neuron.bias)
    if neuron.tau_syn is None:
        r = p(neuron.tau_mem) if r is None else p(r)            # r = tau: a weight w makes v jump by w
        return nir.LIF(tau=p(neuron.tau_mem), r=r, v_leak=v_leak, v_threshold=p(neuron.v_th), v_reset=p(neuron.v_reset))
    r = p(neuron.tau_syn) if r is None else p(r)                # r w_in = tau_syn: simjax's current i = r I
    return nir.CubaLIF(tau_syn=p(neuron.tau_syn), tau_mem=p(neuron.tau_mem), r=r, v_leak=v_leak,
                       v_threshold=p(neuron.v_th), v_reset=p(neuron.v_reset), w_in=p(1.0 if w_in is None else w_in))


def _export_rsnn(nir, net: RSNN, dt: float):
    if net.tau_out is None:
        raise ValueError("export: an RSNN without readout leak (tau_out=None) has no NIR LI equivalent")
    n_rec, n_out = net.n_rec, net.n_out
    tau_out = _np(net.tau_out, (n_out,))
    nodes = {
        "input": nir.Input(input_type={"input": np.array([net.n_in])}),
        "w_in": nir.Linear(weight=_np(net.w_in.dense()).T.copy()),
        "lif": _lif_to_nir(nir, net.neuron, (n_rec,), where="the RSNN's neuron"),
        "w_rec": nir.Linear(weight=_np(net.recurrent_weight()).T.copy()),
        # b_out is added once per step: a constant current of b_out / dt
        "w_out": nir.Affine(weight=_np(net.w_out.dense()).T.copy(), bias=_np(net.b_out) / dt),
        "readout": nir.LI(tau=tau_out, r=tau_out.copy(), v_leak=np.zeros(n_out)),
        "output": nir.Output(output_type={"output": np.array([n_out])}),
    }
    edges = [("input", "w_in"), ("w_in", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "w_out"),
             ("w_out", "readout"), ("readout", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges)


def _export_feedforward(nir, net: SpikingFeedForward):
    nodes = {"input": nir.Input(input_type={"input": np.array([net.n_in])})}
    edges, prev = [], "input"
    for l, (layer, neuron) in enumerate(zip(net.layers, net.neurons)):
        n_post = layer.shape[1]
        nodes[f"fc{l}"] = nir.Linear(weight=_np(layer.dense()).T.copy())
        nodes[f"lif{l}"] = _lif_to_nir(nir, neuron, (n_post,), where=f"layer {l}'s neuron")
        edges += [(prev, f"fc{l}"), (f"fc{l}", f"lif{l}")]
        prev = f"lif{l}"
    nodes["output"] = nir.Output(output_type={"output": np.array([net.n_out])})
    edges.append((prev, "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges)


def _node_to_nir(nir, name: str, node):
    if isinstance(node, Affine):
        w = _np(node.weight)
        return nir.Linear(weight=w) if node.bias is None else nir.Affine(weight=w, bias=_np(node.bias))
    if isinstance(node, Conv2d):
        padding = node.padding.lower() if isinstance(node.padding, str) else tuple(p[0] for p in node.padding)
        return nir.Conv2d(input_shape=node.input_shape, weight=_np(node.weight), stride=node.stride,
                          padding=padding, dilation=node.dilation, groups=node.groups, bias=_np(node.bias))
    if isinstance(node, Flatten):
        return nir.Flatten(input_type={"input": np.array(node.input_shape)}, start_dim=node.start_dim,
                           end_dim=node.end_dim)
    if isinstance(node, LIFNode):
        shape = node.out_shape
        return _lif_to_nir(nir, node.neuron, shape, r=node.r, w_in=node.w_in, where=f"node {name!r}")
    if isinstance(node, IFNode):
        shape = node.out_shape
        if node.v_threshold is None:
            return nir.I(r=_np(node.r, shape))
        return nir.IF(r=_np(node.r, shape), v_threshold=_np(node.v_threshold, shape), v_reset=_np(node.v_reset, shape))
    if isinstance(node, LINode):
        shape = node.out_shape
        if node.tau_syn is None:
            return nir.LI(tau=_np(node.tau, shape), r=_np(node.r, shape), v_leak=_np(node.v_leak, shape))
        return nir.CubaLI(tau_syn=_np(node.tau_syn, shape), tau_mem=_np(node.tau, shape), r=_np(node.r, shape),
                          v_leak=_np(node.v_leak, shape), w_in=_np(node.w_in, shape))
    raise ValueError(f"export: node {name!r} of type {type(node).__name__} has no NIR form")


def _export_network(nir, net: NIRNetwork):
    nodes = {net.input: nir.Input(input_type={"input": np.array(net.input_shape)})}
    for name in net.nodes:
        nodes[name] = _node_to_nir(nir, name, net.nodes[name])
    nodes[net.output] = nir.Output(output_type={"output": np.array(net.output_shape)})
    return nir.NIRGraph(nodes=nodes, edges=list(net.edges))


def export(model: Any, *, dt: float = 1.0) -> Any:
    """The NIR graph (`nir.NIRGraph`) of a simjax network.

    **Arguments:**

    - `model`: a `simjax.networks.RSNN` or `SpikingFeedForward` of `LIF` neurons with
      `reset="zero"` and no refractory period (NIR has neither subtractive reset nor refractoriness),
      or a `simjax.nir.NIRNetwork` (e.g. from `load`).
    - `dt`: the step (ms) at which the RSNN's per-step readout bias `b_out` is meant: it becomes the
      constant current `b_out / dt` of the readout's `Affine`.

    **Returns:**

    A `nir.NIRGraph`: for an RSNN `input -> w_in (Linear) -> lif -> w_rec (Linear) -> lif` (the
    cycle) `lif -> w_out (Affine) -> readout (LI) -> output`; for a feed-forward net
    `input -> fc0 -> lif0 -> fc1 -> lif1 ... -> output`. Delta-synapse `LIF` neurons become NIR
    `LIF` with `r = tau` (a weight is the jump of `v` it causes), exponential-synapse ones `CubaLIF`
    with `r = tau_syn`, `w_in = 1`; `v_leak = v_rest + bias`.
    """
    nir = _nir()
    if isinstance(model, RSNN):
        return _export_rsnn(nir, model, float(dt))
    if isinstance(model, SpikingFeedForward):
        return _export_feedforward(nir, model)
    if isinstance(model, NIRNetwork):
        return _export_network(nir, model)
    raise TypeError(f"export: {type(model).__name__} has no NIR form; simjax exports RSNN, SpikingFeedForward and "
                    "simjax.nir.NIRNetwork")


# -------------------------------------------------------------------------------------------------- load


def _shape(types: Any, key: str) -> tuple[int, ...]:
    value = types[key] if isinstance(types, dict) else types
    return tuple(int(s) for s in np.asarray(value).reshape(-1))


def _node_from_nir(name: str, node, surrogate) -> Any:
    kind = type(node).__name__
    f = lambda x: np.asarray(x, np.float64)
    if kind == "Affine":
        return Affine(f(node.weight), f(node.bias))
    if kind == "Linear":
        return Affine(f(node.weight))
    if kind in ("LIF", "CubaLIF"):
        tau_mem = node.tau if kind == "LIF" else node.tau_mem
        neuron = LIF(tau_mem=f(tau_mem), v_th=f(node.v_threshold), v_reset=f(node.v_reset), reset="zero",
                     v_rest=f(node.v_leak), tau_syn=None if kind == "LIF" else f(node.tau_syn), surrogate=surrogate)
        return LIFNode(neuron, f(node.r), 1.0 if kind == "LIF" else f(node.w_in))
    if kind == "IF":
        return IFNode(f(node.r), f(node.v_threshold), f(node.v_reset), surrogate=surrogate)
    if kind == "I":
        return IFNode(f(node.r))
    if kind == "LI":
        return LINode(f(node.tau), f(node.r), f(node.v_leak))
    if kind == "CubaLI":
        return LINode(f(node.tau_mem), f(node.r), f(node.v_leak), tau_syn=f(node.tau_syn), w_in=f(node.w_in))
    if kind == "Conv2d":
        return Conv2d(f(node.weight), f(node.bias), node.input_shape, node.stride, node.padding, node.dilation,
                      node.groups)
    if kind == "Flatten":
        return Flatten(_shape(node.input_type, "input"), node.start_dim, node.end_dim)
    raise AssertionError(name)  # (unsupported kinds are rejected before)


def load(graph_or_path: Any, *, surrogate: AbstractSurrogate | None = None, record: str | None = None,
         timing: str = "grid") -> NIRNetwork:
    """A NIR graph (a `nir.NIRGraph`, or the path of a `.nir` file) as a `simjax.nir.NIRNetwork`.

    **Arguments:**

    - `graph_or_path`: the graph or its file.
    - `surrogate`: the pseudo-derivative of the spiking nodes (default: `simjax.neurons.LIF`'s).
    - `record`: the spiking node whose spikes and potential `simulate` records (default: the last).
    - `timing`: `"grid"` (spikes, resets and arriving impulses at step ends, as simjax's own
      clock-driven neurons) or `"interpolated"` (spike times between grid points, second order in
      `dt`); see `simjax.nir.NIRNetwork`.

    **Returns:**

    A `NIRNetwork`, simulated clock-driven by `simjax.simulate(net, x, dt=...)` at any `dt` (the
    node semantics are in `simjax.nir._nodes`). Node types outside `SUPPORTED` (and nested
    graphs) raise one `ValueError` that names each such node and its type.
    """
    nir = _nir()
    graph = nir.read(str(graph_or_path)) if isinstance(graph_or_path, (str, Path)) else graph_or_path
    if not isinstance(graph, nir.NIRGraph):
        raise TypeError(f"load: expected a nir.NIRGraph or the path of a .nir file, got {type(graph).__name__}")
    kinds = {name: type(node).__name__ for name, node in graph.nodes.items()}
    bad = [f"{name!r} ({kind})" for name, kind in kinds.items() if kind not in SUPPORTED]
    if bad:
        raise ValueError(f"load: the graph has node(s) simjax cannot simulate: {', '.join(bad)}; supported NIR "
                         f"types: {', '.join(SUPPORTED)}")
    inputs = [n for n, k in kinds.items() if k == "Input"]
    outputs = [n for n, k in kinds.items() if k == "Output"]
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(f"load: simjax simulates graphs with one Input and one Output node; this one has inputs "
                         f"{inputs} and outputs {outputs}")
    nodes = {name: _node_from_nir(name, node, surrogate) for name, node in graph.nodes.items()
             if kinds[name] not in ("Input", "Output")}
    input_shape = _shape(graph.nodes[inputs[0]].input_type, "input")
    return NIRNetwork(nodes, [tuple(e) for e in graph.edges], inputs[0], outputs[0], input_shape, record=record,
                      timing=timing)
