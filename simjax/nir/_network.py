"""`NIRNetwork`: a NIR graph (cycles included) as a clock-driven simjax network."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .._checks import check_choice, trainable_fields
from .._simulate.output import Record
from ..networks._base import AbstractNetwork
from ._nodes import AbstractNode, Affine, Conv2d, Flatten, IFNode, LIFNode


def evaluation_order(names: tuple[str, ...], edges: tuple[tuple[str, str], ...], source: str) -> tuple[str, ...]:
    """The nodes in reverse post-order of a depth-first search from `source` (then from every node
    not reached, in the order given): every edge goes forward in this order except the edges that
    close a cycle, which therefore carry the previous step's signal."""
    succ: dict[str, list[str]] = {n: [] for n in names}
    for a, b in edges:
        succ[a].append(b)
    seen: set[str] = set()
    post: list[str] = []
    for root in (source, *names):
        if root in seen:
            continue
        seen.add(root)
        stack = [(root, iter(succ[root]))]
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                stack.pop()
                post.append(node)
            elif nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, iter(succ[nxt])))
    return tuple(reversed(post))


class NIRState(eqx.Module):
    """`nodes`: each node's state; `areas`: what each node sent along its edges in the last step
    (read by the edges that close a cycle)."""

    nodes: dict[str, Any]
    areas: dict[str, Any]


class NIRNetwork(AbstractNetwork):
    """A NIR graph simulated clock-driven: each step evaluates the nodes in `order`; a node
    receives the sum of its incoming edges' signals integrated over the step (`simjax.nir._nodes`),
    from this step for edges that go forward in `order` and from the previous step for the edges
    that close a cycle (a delay of one step that vanishes as `dt -> 0`).

    Built by `simjax.nir.load`; inputs are `[time, *batch, n_in]` with `n_in` the size of the
    graph's input (flattened in C order for multi-dimensional inputs, e.g. `[C, N_x, N_y]`).
    The `Output` records `readout` (the value of the nodes feeding the graph's output: spikes of
    spiking nodes, `v` of integrators), and `spikes`/`v` of the spiking node `record`.

    **Arguments:**

    - `nodes`: name -> node (`simjax.nir._nodes`), without the input and output nodes.
    - `edges`: `(source, target)` pairs, the input and output nodes included.
    - `input`, `output`: the names of the graph's input and output nodes.
    - `input_shape`: the shape of one input sample.
    - `record`: the spiking node whose spikes and potential are recorded (default: the last one
      in `order`).
    - `trainable`: `"layers"` (the weights and biases of `Affine` and `Conv2d` nodes, the
      default) and/or `"neurons"` (time constants, thresholds, `r`, ... of the neuron nodes).
    - `timing`: `"grid"` (the default: every impulse arrives and every spike and reset happens
      at the end of a step, as in simjax's own clock-driven neurons, so an exported simjax
      network simulates identically; spike times are first-order in `dt`) or `"interpolated"`
      (impulses carry their time within the step, crossings are interpolated and resets exact;
      second order in `dt`, see `simjax.nir._nodes`). With `"interpolated"`, the inputs' areas
      are taken at the middle of their step (their times within it are unknown), the edges that
      close a cycle deliver the previous step's spikes with their exact lag, and
      `simulate(...).info["spike_lag"]` gives the recorded node's spike times.

    The nodes are held in two fields, `layers` (stateless nodes) and `neurons` (the others);
    `nodes` is both, in the order given.
    """

    layers: dict[str, AbstractNode]
    neurons: dict[str, AbstractNode]
    names: tuple[str, ...] = eqx.field(static=True)
    edges: tuple[tuple[str, str], ...] = eqx.field(static=True)
    input: str = eqx.field(static=True)
    output: str = eqx.field(static=True)
    input_shape: tuple[int, ...] = eqx.field(static=True)
    order: tuple[str, ...] = eqx.field(static=True)
    record: str | None = eqx.field(static=True)
    trainable: tuple[str, ...] = eqx.field(static=True)
    timing: Literal["grid", "interpolated"] = eqx.field(static=True)
    local_prepare: ClassVar[bool] = True

    def __init__(self, nodes: dict[str, AbstractNode], edges, input: str, output: str, input_shape,
                 record: str | None = None, trainable=("layers",), timing: str = "grid"):
        self.layers = {n: node for n, node in nodes.items() if isinstance(node, (Affine, Conv2d, Flatten))}
        self.neurons = {n: node for n, node in nodes.items() if n not in self.layers}
        self.names = tuple(nodes)
        self.edges = tuple((str(a), str(b)) for a, b in edges)
        self.input, self.output = input, output
        self.input_shape = tuple(int(s) for s in input_shape)
        names = (input, *self.nodes, output)
        for a, b in self.edges:
            for n in (a, b):
                if n not in names:
                    raise ValueError(f"NIRNetwork: edge ({a!r}, {b!r}) names {n!r}, which is not a node")
        if not any(b == output for _, b in self.edges):
            raise ValueError(f"NIRNetwork: no edge reaches the output node {output!r}")
        order = evaluation_order(names, self.edges, input)
        self.order = tuple(n for n in order if n in self.nodes)
        spiking = [n for n in self.order if isinstance(self.nodes[n], LIFNode)
                   or (isinstance(self.nodes[n], IFNode) and self.nodes[n].v_threshold is not None)]
        if record is not None and record not in spiking:
            raise ValueError(f"NIRNetwork: record={record!r} is not a spiking node; spiking nodes: {spiking}")
        self.record = record if record is not None else (spiking[-1] if spiking else None)
        self.trainable = trainable_fields(trainable, ("layers", "neurons"), owner="NIRNetwork")
        check_choice("timing", timing, ("grid", "interpolated"), owner="NIRNetwork")
        self.timing = timing

    @property
    def nodes(self) -> dict[str, AbstractNode]:
        """Every node but the input and output, by name."""
        return {n: self.layers[n] if n in self.layers else self.neurons[n] for n in self.names}

    def _sources(self, name: str) -> list[str]:
        return [a for a, b in self.edges if b == name]

    @property
    def n_in(self) -> int:
        return int(np.prod(self.input_shape))

    @property
    def output_shape(self) -> tuple[int, ...]:
        src = self._sources(self.output)[0]
        return self.input_shape if src == self.input else self.nodes[src].out_shape

    @property
    def n_out(self) -> int:
        return int(np.prod(self.output_shape))

    def init(self, key, batch_shape):
        del key
        dtype = jnp.result_type(float)
        batch_shape = tuple(batch_shape)
        zeros = lambda n: jnp.zeros((*batch_shape, *self.nodes[n].out_shape), dtype)  # noqa: E731
        areas = {n: zeros(n) if self.timing == "grid" else (zeros(n), zeros(n)) for n in self.order}
        return NIRState(nodes={n: self.nodes[n].init_state(batch_shape, dtype) for n in self.order}, areas=areas)

    def prepare(self, inputs, dt):
        return inputs

    def step(self, state, x_t, dt):
        batch = x_t.shape[:-1]
        x = x_t.reshape((*batch, *self.input_shape))
        timed = self.timing == "interpolated"
        areas = {self.input: (x, x * (dt / 2)) if timed else x}
        values = {self.input: x}
        new_states, lags = {}, {}
        for name in self.order:
            node, sources = self.nodes[name], self._sources(name)
            if timed:
                # a cycle's edge carries the previous step's signal: a further dt before this step's end
                late = [state.areas[s] for s in sources if s not in areas]
                area = sum([areas[s][0] for s in sources if s in areas] + [a for a, _ in late])
                moment = sum([areas[s][1] for s in sources if s in areas] + [m + dt * a for a, m in late])
                new_states[name], areas[name], values[name], lags[name] = node.apply_timed(
                    state.nodes[name], area, moment, dt)
            else:
                area = sum(areas[s] if s in areas else state.areas[s] for s in sources)
                new_states[name], areas[name], values[name] = node.apply(state.nodes[name], area, dt)
        readout = sum(values[s] for s in self._sources(self.output))
        spikes = v = lag = None
        if self.record is not None:
            node = self.nodes[self.record]
            spikes = values[self.record].reshape((*batch, -1))
            v = new_states[self.record].v if isinstance(node, LIFNode) else new_states[self.record]
            v = v.reshape((*batch, -1))
            lag = lags[self.record].reshape((*batch, -1)) if timed else None
        new = NIRState(nodes=new_states, areas={n: areas[n] for n in self.order})
        return new, Record(spikes=spikes, v=v, readout=readout.reshape((*batch, -1)), spike_lag=lag)

    def step_fn(self, dt):
        return lambda state, x_t: self.step(state, x_t, dt)

    def vector_field(self, t, state, inputs_t):
        raise NotImplementedError("NIRNetwork is simulated clock-driven (method='clock'); the exact continuous-time "
                                  "solution of a graph is simjax.nir.simulate_exact")

    def observe(self, state):
        raise NotImplementedError("NIRNetwork is simulated clock-driven (method='clock'); the exact continuous-time "
                                  "solution of a graph is simjax.nir.simulate_exact")
