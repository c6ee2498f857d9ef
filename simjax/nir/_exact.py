r"""The continuous-time solution of a NIR graph: the nodes' own differential equations integrated by
diffrax between spikes, each spike time found by root finding, resets and synaptic jumps applied at
the spike (no delay on any edge, cycles included).

Between events every neuron node follows (in the units of `simjax.nir._nodes`; `c` is the
continuous current reaching the node: the biases of the `Affine` nodes in front of it and the
potentials of `LI`/`I` nodes fed through them)

- `LIF`:     `dv/dt = (v_leak - v) / tau + (r / tau) c`
- `CubaLIF`: `di/dt = -i / tau_syn + (r w_in / tau_syn) c`,  `dv/dt = (v_leak - v + i) / tau_mem`
- `LI`, `CubaLI`: the same without threshold; `IF`, `I`: `dv/dt = r c`

and a unit spike arriving through `Affine` weights `W` makes the jumps of the clock-driven step
(`v += (r / tau) W`, `i += (r w_in / tau_syn) W`, `v += r W`). A spiking node whose `v` reaches
`v_threshold` spikes and is reset to `v_reset`.
"""

from __future__ import annotations

from typing import Any

import diffrax
import equinox as eqx
import jax.numpy as jnp
import numpy as np
import optimistix as optx

from .._checks import check_positive
from .._spike_train import SpikeTrain
from ._network import NIRNetwork
from ._nodes import Affine, IFNode, LIFNode, LINode


class ExactRun(eqx.Module):
    """The result of `simulate_exact`: `spikes[node]`: `(times [k], indices [k])` of that spiking
    node's spikes (flat neuron index, in time order); `ts` and `readout [len(ts), n_out]`: the
    graph's output sampled at `ts`."""

    spikes: dict[str, tuple[np.ndarray, np.ndarray]]
    ts: np.ndarray
    readout: np.ndarray


def _node_params(node) -> dict[str, Any]:
    if isinstance(node, LIFNode):
        n = node.neuron
        tau_in = n.tau_mem if n.tau_syn is None else n.tau_syn
        return dict(kind="lif", tau=n.tau_mem, v_leak=n.v_rest + n.bias, tau_syn=n.tau_syn,
                    gain=node.r * node.w_in / tau_in, v_th=n.v_th, v_reset=n.v_reset)
    if isinstance(node, LINode):
        tau_in = node.tau if node.tau_syn is None else node.tau_syn
        return dict(kind="li", tau=node.tau, v_leak=node.v_leak, tau_syn=node.tau_syn,
                    gain=node.r * node.w_in / tau_in, v_th=None, v_reset=None)
    return dict(kind="if", tau=None, v_leak=None, tau_syn=None, gain=node.r, v_th=node.v_threshold,
                v_reset=node.v_reset)


def simulate_exact(net: NIRNetwork, t1: Any, *, inputs: SpikeTrain | None = None, ts: Any = None,
                   rtol: float = 1e-10, atol: float = 1e-12, max_spikes: int = 10_000) -> ExactRun:
    """The exact continuous-time run of a graph of neuron nodes joined by `Affine`/`Linear` nodes
    (module docstring), for one trial, from rest.

    A reference solver: a Python loop over spikes, each interval solved by `diffrax.Tsit5` at
    tolerances `rtol`, `atol` with the next threshold crossing root-found (bisection); not
    differentiable or batched. The clock-driven `simulate(net, x, dt=...)` converges to it as
    `dt -> 0` (first order: resets, input impulses and the signal of an edge that closes a cycle
    arrive at the end of a step).

    **Arguments:**

    - `net`: a `NIRNetwork` (e.g. from `simjax.nir.load`) without `Conv2d`/`Flatten` nodes.
    - `t1`: end time (ms). `inputs`: an unbatched `simjax.SpikeTrain` of the graph's input
      channels (default: none).
    - `ts`: times at which to sample the output (default `[t1]`).
    - `max_spikes`: raise if more spikes than this occur (a runaway graph).

    **Returns:** an `ExactRun`.
    """
    check_positive("t1", t1, owner="simulate_exact")
    t1 = float(t1)
    bad = [f"{n!r} ({type(node).__name__})" for n, node in net.nodes.items()
           if not isinstance(node, (Affine, LIFNode, LINode, IFNode))]
    if bad:
        raise ValueError(f"simulate_exact: node(s) {', '.join(bad)} have no continuous-time form here; it takes "
                         "Affine/Linear and neuron nodes")
    neurons = [n for n in net.order if not isinstance(net.nodes[n], Affine)]
    params = {n: _node_params(net.nodes[n]) for n in neurons}
    shapes = {n: net.nodes[n].out_shape for n in neurons}
    sources = {n: [a for a, b in net.edges if b == n] for n in (*net.nodes, net.output)}
    targets = {n: [b for a, b in net.edges if a == n] for n in (net.input, *net.nodes)}

    def continuous(name, y, seen=()):
        """The continuous signal a node sends (potentials of integrators, Affine biases)."""
        if name == net.input:
            return 0.0
        node = net.nodes[name]
        if isinstance(node, Affine):
            if name in seen:
                raise ValueError(f"simulate_exact: the Affine nodes {seen} form a cycle without a neuron")
            x = sum((continuous(s, y, (*seen, name)) for s in sources[name]), 0.0)
            out = jnp.zeros(node.weight.shape[0]) + (0.0 if node.bias is None else node.bias)
            return out + node.weight @ jnp.broadcast_to(x, (node.weight.shape[1],)) if np.ndim(x) else out
        p = params[name]
        return y[name][0] if p["kind"] != "lif" and p["v_th"] is None else jnp.zeros(shapes[name])

    def field(t, y, args):
        out = {}
        for n in neurons:
            p, (v, i) = params[n], y[n]
            c = sum((continuous(s, y) for s in sources[n]), 0.0)
            if p["kind"] == "if":
                out[n] = (p["gain"] * c + 0.0 * v, jnp.zeros_like(i))
            elif p["tau_syn"] is None:
                out[n] = ((p["v_leak"] - v) / p["tau"] + p["gain"] * c, jnp.zeros_like(i))
            else:
                out[n] = ((p["v_leak"] - v + i) / p["tau"], -i / p["tau_syn"] + p["gain"] * c)
        return out

    spiking = [n for n in neurons if params[n]["v_th"] is not None]

    def distance(t, y, args, **kwargs):
        if not spiking:
            return jnp.asarray(-1.0)
        return jnp.max(jnp.concatenate([jnp.ravel(y[n][0] - params[n]["v_th"]) for n in spiking]))

    @eqx.filter_jit
    def segment(t0, t_end, y0):
        event = diffrax.Event(distance, root_finder=optx.Bisection(rtol=rtol, atol=atol), direction=True)
        sol = diffrax.diffeqsolve(diffrax.ODETerm(field), diffrax.Tsit5(), t0, t_end, 1e-3, y0, event=event,
                                  stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol, dtmin=None),
                                  saveat=diffrax.SaveAt(t1=True), max_steps=1_000_000)
        return sol.ts[-1], {n: (v[-1], i[-1]) for n, (v, i) in sol.ys.items()}

    @eqx.filter_jit
    def flow(t0, t_end, y0):
        sol = diffrax.diffeqsolve(diffrax.ODETerm(field), diffrax.Tsit5(), t0, t_end, 1e-3, y0,
                                  stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
                                  saveat=diffrax.SaveAt(t1=True), max_steps=1_000_000)
        return {n: (v[-1], i[-1]) for n, (v, i) in sol.ys.items()}

    def impulse(y, origin, area):
        """Propagate a unit impulse `area` sent by `origin` through Affine nodes; apply the jumps."""
        y = dict(y)
        stack = [(origin, area)]
        while stack:
            name, a = stack.pop()
            for b in targets.get(name, []):
                if b == net.output:
                    continue
                node = net.nodes[b]
                if isinstance(node, Affine):
                    stack.append((b, node.weight @ a))
                    continue
                p, (v, i) = params[b], y[b]
                jump = p["gain"] * a.reshape(shapes[b])
                y[b] = (v + jump, i) if p["kind"] == "if" or p["tau_syn"] is None else (v, i + jump)
        return y

    def rest():
        y = {}
        for n in neurons:
            p = params[n]
            zero = jnp.zeros(shapes[n])
            y[n] = (zero + (p["v_leak"] if p["v_leak"] is not None else 0.0), zero)
        return y

    in_times = np.asarray([] if inputs is None else inputs.times, np.float64)
    in_ids = np.asarray([] if inputs is None else inputs.ids, np.int64)
    keep = np.isfinite(in_times) & (in_times <= t1)
    order = np.argsort(in_times[keep], kind="stable")
    in_times, in_ids = in_times[keep][order], in_ids[keep][order]
    ts = np.asarray([t1] if ts is None else ts, np.float64)

    t, y, k_in = 0.0, rest(), 0
    checkpoints = [(0.0, y)]
    spikes: dict[str, list[tuple[float, int]]] = {n: [] for n in spiking}
    count = 0
    while True:
        # a neuron at threshold (reached by the flow, or pushed there by a jump) fires now
        gaps = {n: np.asarray(y[n][0] - params[n]["v_th"]).reshape(-1) for n in spiking}
        fired = [(g[int(np.argmax(g))], n, int(np.argmax(g))) for n, g in gaps.items() if g.size and g.max() >= -1e-9]
        if fired:
            _, name, index = max(fired)
            p, (v, i) = params[name], y[name]
            reset = jnp.broadcast_to(p["v_reset"], v.shape).reshape(-1)[index]
            y = dict(y)
            y[name] = (v.reshape(-1).at[index].set(reset).reshape(v.shape), i)
            y = impulse(y, name, jnp.zeros(int(np.prod(shapes[name]))).at[index].set(1.0))
            spikes[name].append((t, index))
            checkpoints.append((t, y))
            count += 1
            if count > max_spikes:
                raise ValueError(f"simulate_exact: more than max_spikes={max_spikes} spikes before t1={t1}")
            continue
        if t >= t1:
            break
        t_next = float(in_times[k_in]) if k_in < len(in_times) else t1
        if t_next > t:
            t_end, y = segment(jnp.asarray(t), jnp.asarray(t_next), y)
            t_end = float(t_end)
        else:
            t_end = t
        if t_end < t_next - 1e-12:
            t = t_end                                          # a threshold crossing: handled above
        else:
            t = t_next
            while k_in < len(in_times) and in_times[k_in] <= t:
                y = impulse(y, net.input, jnp.zeros(net.n_in).at[int(in_ids[k_in])].set(1.0))
                k_in += 1
        checkpoints.append((t, y))

    def sample(tq):
        start, y0 = max((c for c in checkpoints if c[0] <= tq), key=lambda c: c[0])
        yq = y0 if tq == start else flow(jnp.asarray(start), jnp.asarray(tq), y0)
        return np.asarray(jnp.ravel(sum(continuous(s, yq) if not (s in params and params[s]["v_th"] is not None)
                                        else jnp.zeros(shapes[s]) for s in sources[net.output])))

    readout = np.stack([sample(float(tq)) for tq in ts])
    out_spikes = {n: (np.array([s[0] for s in v]), np.array([s[1] for s in v], np.int64)) for n, v in spikes.items()}
    return ExactRun(spikes=out_spikes, ts=ts, readout=readout)
