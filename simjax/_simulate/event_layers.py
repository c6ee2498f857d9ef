r"""Event-driven simulation of `simjax.networks.SpikingFeedForward`, with pseudodynamics.

Neurons of one layer do not interact, so a layer is simulated neuron-parallel over its input
spikes sorted in time: the state at the start of every inter-input interval comes from the
closed-form `free_flow` and `receive` (a `lax.scan`; for QIF a parallel prefix product of the
linear flow and kick maps, depth `log K` for `K` inputs), then every interval's first
threshold crossing is found at once (`time_to_spike` with the interval as horizon: closed forms,
or bracketed root finding with implicit-function-theorem derivatives; LIF with
`tau_syn = tau_mem / 2` has a closed form too) and the earliest is the neuron's spike. Each
neuron emits only its **first** spike (time-to-first-spike coding; Mostafa 2017, Göltz et al.
2021); those times are the next layer's inputs.

**Pseudodynamics** (Klos & Memmesheimer, Phys. Rev. Lett. 2025). With `pseudo_drive = I_p`,
every neuron's constant current becomes `bias + I_p` after the trial end `t1` and the
simulation continues until every neuron has fired. A neuron silent in `[0, t1]` then gets a
*pseudospike* at a time `> t1`; pseudospikes are passed on to the next layer like spikes, so
they arrive after `t1` too. What happens in `[0, t1]` (the trial's spikes and output) does not
depend on the pseudodynamics at all. For the QIF (theta) neuron the phase moves forward between kicks and
reaches `pi` in finite time once `bias + I_p > 0`, so a spike that leaves the trial through
`t1` continues smoothly as a pseudospike and the first-spike times (real or pseudo) are
continuous, almost everywhere smooth functions of weights and input times: a loss on them lets
gradient descent add and remove spikes. For LIF the first crossing disappears tangentially (the
time jumps when a spike is lost), so the same times are discontinuous.

Costs `O(n_in x n_post)` per layer and trial. Gradients are those of autodiff through these
closed forms (exact as long as the order of events does not change).
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from .._checks import check_choice
from .._spike_train import SpikeTrain
from ..networks._spiking_feedforward import SpikingFeedForward
from ..neurons._qif import QIF, qif_propagator
from ._spikes import check_event_neuron, check_pseudo_drive, check_spike_inputs, sorted_inputs
from .output import Output


def _with_bias(neuron, current):
    return eqx.tree_at(lambda n: n.bias, neuron, current)


def _qif_phases(neuron, dt, kicks, currents, theta0):
    r"""QIF phases at the start of every interval by a parallel prefix product (depth `log K`).

    In `(p, q) = (sin(theta/2), cos(theta/2))` (`V = p / q`) the flow over `s = dt / tau_mem` and
    a kick `V -> V + w` are linear maps (`simjax.neurons._qif`): `[[C, S I], [-S, C]]` and
    `[[1, w], [0, 1]]`; only the direction of `(p, q)` matters, so products are normalised."""
    c, sg = qif_propagator(currents, dt / neuron.tau_mem)
    # Each step is kick @ flow = [[c - w sg, sg I + w c], [-sg, c]], kept as its four entries
    # (a, b; d, e) so that products are elementwise arithmetic rather than tiny matmuls.
    steps = (c - kicks * sg, sg * currents + kicks * c, -sg, c)

    def compose(earlier, later):
        a1, b1, d1, e1 = earlier
        a2, b2, d2, e2 = later
        m = (a2 * a1 + b2 * d1, a2 * b1 + b2 * e1, d2 * a1 + e2 * d1, d2 * b1 + e2 * e1)
        scale = jax.lax.stop_gradient(jnp.maximum(jnp.maximum(jnp.abs(m[0]), jnp.abs(m[1])),
                                                  jnp.maximum(jnp.abs(m[2]), jnp.abs(m[3]))))
        return tuple(x / scale for x in m)

    a, b, d, e = jax.lax.associative_scan(compose, steps, axis=0)
    p0, q0 = jnp.sin(theta0 / 2), jnp.cos(theta0 / 2)
    p, q = a * p0 + b * q0, d * p0 + e * q0  # after each interval's kick
    p = jnp.concatenate([jnp.broadcast_to(p0, p[:1].shape), p[:-1]])  # before each interval
    q = jnp.concatenate([jnp.broadcast_to(q0, q[:1].shape), q[:-1]])
    sign = jnp.where(q < 0, -1.0, 1.0)
    return 2.0 * jnp.arctan2(sign * p, sign * q)


def _lif_time_to_spike_closed(neuron, state, current, horizon):
    r"""First threshold crossing of LIF with `tau_syn = tau_mem / 2` (Göltz et al. 2021's case).

    With `x = exp(-t / tau_mem)` the free flow is a quadratic in `x`:
    `v = A + (v0 - A + i0) x - i0 x^2` (`A = v_rest + bias`), so the first crossing of `v_th`
    from below is the largest root `x*` in `(exp(-horizon / tau_mem), 1)` and
    `t* = -tau_mem ln x*`; `0` if `v0 >= v_th`, `inf` if there is no root."""
    target = neuron.v_rest + current
    a, b, c = -state.i, state.v - target + state.i, target - neuron.v_th
    disc = b**2 - 4.0 * a * c
    real = disc >= 0
    root = jnp.sqrt(jnp.where(disc > 0, disc, 1.0)) * (disc > 0)
    q = -0.5 * (b + jnp.where(b >= 0, 1.0, -1.0) * root)
    safe = lambda d: jnp.where(d != 0, d, 1.0)
    linear = a == 0
    r1 = jnp.where(linear, -c / safe(b), q / safe(a))
    r2 = jnp.where(linear | (q == 0), -jnp.inf, c / safe(q))
    ok1 = real & (r1 > 0) & (r1 < 1) & ~(linear & (b == 0)) & ~(~linear & (a == 0))
    ok2 = real & (r2 > 0) & (r2 < 1)
    x = jnp.maximum(jnp.where(ok1, r1, -jnp.inf), jnp.where(ok2, r2, -jnp.inf))
    found = jnp.isfinite(x)
    t = -neuron.tau_mem * jnp.log(jnp.where(found, x, 1.0))
    t = jnp.where(state.v >= neuron.v_th, 0.0, jnp.where(found, t, jnp.inf))
    return jnp.where(t <= horizon, t, jnp.inf)


def layer_first_spikes(neuron, weight: Float[Array, "n_pre n_post"], times: Float[Array, " events"],
                       ids: Int[Array, " events"], t1: Any, pseudo_drive: Any = None,
                       closed_form: bool = False) -> Float[Array, " n_post"]:
    r"""First spike times of one layer of uncoupled neurons (one trial, from rest).

    The state at the start of every inter-input interval is computed first (a `lax.scan` of
    `free_flow` and `receive`; for QIF a parallel prefix product of the linear flow maps), then
    every interval's first threshold crossing at once (`time_to_spike` with the interval as
    horizon, vectorised); the first spike is the earliest. States after a first spike are not
    reset (each neuron emits one spike), which leaves the earliest crossing unchanged.

    **Arguments:**

    - `neuron`: the layer's spiking neuron (`bias`, `free_flow`, `receive`, `time_to_spike`).
    - `weight`: `[n_pre, n_post]`; an input spike of channel `i` kicks the layer by `weight[i]`.
    - `times`, `ids`: the input spikes (any order; `inf` padding).
    - `t1`: the trial end; inputs after `t1` count only with pseudodynamics (they are
      pseudospikes of the layer below).
    - `pseudo_drive`: `None` (no pseudodynamics: neurons silent up to `t1` get `inf`) or the
      constant current added after `t1`.
    - `closed_form`: LIF with `tau_syn = tau_mem / 2` (`half_synaptic_lif`): use the closed-form
      crossing instead of root finding (a static flag: under `jit` the time constants are traced).

    **Returns:** `[n_post]` first spike times (`> t1`: pseudospikes; `inf`: none).
    """
    n_pre, n_post = weight.shape
    dtype = jnp.result_type(weight, times)
    pseudo = pseudo_drive is not None
    t1 = jnp.asarray(t1, dtype)
    inf = jnp.asarray(jnp.inf, dtype)
    if not pseudo:
        times = jnp.where(times <= t1, times, inf)
    # The current switches at t1 (an event with a zero kick, after inputs at t1); a final open interval.
    times = jnp.concatenate([times, t1[None], inf[None]])
    ids = jnp.concatenate([ids, jnp.asarray([n_pre, n_pre], ids.dtype)])
    order = jnp.argsort(times, stable=True)
    ends, ids = times[order], ids[order]
    starts = jnp.concatenate([jnp.zeros((1,), dtype), ends[:-1]])
    w = jnp.concatenate([weight, jnp.zeros((1, n_post), weight.dtype)])
    kicks = w[ids]  # [K, n_post]
    opened = jnp.isfinite(starts)
    dt = jnp.where(opened & jnp.isfinite(ends), ends - starts, 0.0)
    after = starts >= t1
    drive = jnp.asarray(0.0 if pseudo_drive is None else pseudo_drive, dtype)
    currents = jnp.broadcast_to(neuron.bias + jnp.where(after, drive, 0.0)[:, None], kicks.shape)
    state0 = neuron.init(None, (n_post,))
    if isinstance(neuron, QIF):
        states = type(state0)(theta=_qif_phases(neuron, dt[:, None], kicks, currents, state0.theta))
    else:
        def body(state, xs):
            dt_k, kick_k, current_k = xs
            layer = _with_bias(neuron, current_k)
            return layer.receive(layer.free_flow(state, dt_k), kick_k), state

        _, states = jax.lax.scan(body, state0, (dt, kicks, currents))
    horizon = jnp.where(opened, ends - starts, 0.0)[:, None]
    if closed_form:
        wait = _lif_time_to_spike_closed(neuron, states, currents, horizon)
    else:
        wait = _with_bias(neuron, currents).time_to_spike(states, horizon)
    valid = opened & (pseudo | ~after)
    candidates = jnp.where(valid[:, None] & jnp.isfinite(wait), starts[:, None] + wait, inf)
    return jnp.min(candidates, axis=0)


@eqx.filter_jit
def _run(neurons, weights, times, ids, t1, pseudo_drive, closed_form):
    firsts = []
    for neuron, w, closed in zip(neurons, weights, closed_form):
        first = jax.vmap(lambda a, b: layer_first_spikes(neuron, w, a, b, t1, pseudo_drive, closed))(times, ids)
        firsts.append(first)
        ids = jnp.argsort(first, axis=-1).astype(jnp.int32)
        times = jnp.take_along_axis(first, ids, axis=-1)
    return tuple(firsts)


def simulate_layers(net: SpikingFeedForward, inputs: SpikeTrain, *, t1: Any, pseudo_drive: Any = None,
                    checks: bool = True, record: tuple[str, ...] = ("spikes",)) -> Output:
    r"""Event-driven simulation of a `SpikingFeedForward` network on `[0, t1]` (first spikes only).

    Called by `simulate(net, inputs, method="event", t1=..., pseudo_drive=...)`; see the module
    docstring.

    **Arguments:**

    - `net`: a `simjax.networks.SpikingFeedForward`.
    - `inputs`: `simjax.SpikeTrain` with `n = net.n_in`; leading axes are batch axes. Input
      spikes outside `[0, t1]` are ignored.
    - `t1`: trial end. `pseudo_drive`: constant current added to every neuron after `t1`
      (`None`: no pseudodynamics). It must make every neuron fire (`bias + pseudo_drive > 0` for
      QIF, `v_rest + bias + pseudo_drive > v_th` for LIF).
    - `checks`: reject NaN input times (when concrete).

    **Returns:** an `Output` with `spikes` the output layer's spikes in `[0, t1]` as a
    `SpikeTrain` (`times [*batch, n_out]`, `inf` for no spike, `ids` the neuron index) and
    `info["first_spike_times"]`: per layer `[*batch, n_l]` first spike times including
    pseudospikes (`> t1`). `v`, `readout` and `final_state` are `None`.
    """
    owner = "simulate(method='event')"
    check_spike_inputs(inputs, net.n_in, t1, owner)
    for f in record:
        check_choice("record field", f, ("spikes", "v", "readout"), owner=owner)
    for neuron in net.neurons:
        check_event_neuron(neuron, owner)
    if pseudo_drive is not None:
        for neuron in net.neurons:
            check_pseudo_drive(neuron, pseudo_drive, owner)
    dtype = jnp.result_type(net.layers[0].dense())
    t1 = jnp.asarray(t1, dtype)
    times, ids = sorted_inputs(inputs, t1, checks=checks, owner=owner)
    batch = times.shape[:-1]
    size = int(np.prod(batch))
    flat = lambda a: jnp.reshape(a, (size, a.shape[-1]))
    drive = None if pseudo_drive is None else jnp.asarray(pseudo_drive, dtype)
    firsts = _run(net.neurons, tuple(p.dense() for p in net.layers), flat(times), flat(ids), t1, drive,
                  net.closed_form)
    firsts = tuple(jnp.reshape(f, (*batch, f.shape[-1])) for f in firsts)
    out = firsts[-1]
    spikes = None
    if "spikes" in record:
        spikes = SpikeTrain(jnp.where(out <= t1, out, jnp.inf),
                            jnp.broadcast_to(jnp.arange(net.n_out, dtype=jnp.int32), out.shape), n=net.n_out)
    return Output(spikes=spikes, v=None, readout=None, final_state=None,
                  info={"first_spike_times": firsts, "t1": t1})
