r"""E/I population networks: one population of `n_exc` excitatory then `n_inh` inhibitory spiking
neurons, recurrently connected (sparse event-driven or dense), with receptor dynamics, delays,
short-term plasticity and a background drive; the Vogels-Abbott COBA and CUBA benchmark networks.

**One step** (`EINetwork.transition`, the Brian2 default schedule for a `SynapticLIF` population):

1. `arriving`: the input that reaches the receptors now (the delay buffer's current slot,
   `[*batch, n_channels, n]`; channel 0 excitatory, channel 1 inhibitory), plus the external
   input `x_t` and the Poisson background into channel 0;
2. the neurons step: receptors receive `arriving`, the membrane flows over `dt`, threshold,
   reset (`simjax.neurons.SynapticLIF.step`; any other spiking neuron receives the channels'
   sum as its signed drive);
3. short-term plasticity (optional, `simjax.synapses.TsodyksMarkram`) turns the spikes into
   release efficacies;
4. the projection delivers them into the delay buffer (`EventProjection.deliver`: `delay + 1`
   slots ahead, so a zero delay reaches the receptors at the start of the next step, the same
   instant as the spike).

**The state is an explicit pytree** (`EIState`): the neurons' state (membrane and receptors), the
last spikes, the delay buffer, the short-term-plasticity state, the PRNG key of the background,
the step counter, the count of spikes dropped by the propagation budget and the optional spike
log. Nothing else changes while the network runs.

**Plastic projections.** `EINetwork.transition` takes the projection as an argument; `step` calls
it with `self.recurrent`. A rule whose weights change while the network runs keeps its weights
(and traces) in its own state next to an `EIState`, and writes its step as

    proj = eqx.tree_at(lambda p: p.weight, net.recurrent, weights)
    ei_state, record = net.transition(ei_state, x_t, dt, proj)
    weights, traces = rule(pre=ei_state.spikes, post=ei_state.spikes, traces, weights, ...)

(for `EventProjection`, `weights` is `[n_pre, max_out]` aligned with `proj.targets`, so a
presynaptic spike of neuron `j` updates row `j` and a postsynaptic spike of `i` updates the
entries where `targets == i`). `ei_state.spikes` are this step's spikes, after the neurons'
step; `ei_state.neuron` holds the postsynaptic potentials and receptor states.
`EINetwork.transition_with` takes the delivery of step 4 as a function instead of a projection,
so that a rule can update the weights inside the loop that delivers the spikes
(`simjax.plasticity.simulate` with an `EventProjection` and `max_spikes`).

**What is recorded** (a run of `T` steps keeps `O(T)` numbers per recorded quantity, never the
state of every neuron at every step): `Record.readout` = the excitatory and inhibitory population
rates (Hz) of each step, `Record.spikes` = the spikes of the neurons in `record_spikes` (a
raster of a subset), `Record.v` = the potentials of `record_v`; optionally a spike log of every
neuron with a budget of `max_events` events per trial in the final state (`SpikeLog`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray, PyTree

from .._checks import as_float_array, check_int, check_positive, is_concrete, trainable_fields
from .._simulate.output import Record
from ..neurons._base import AbstractSpikingNeuron
from ..neurons._lif import LIFState
from ..neurons._synaptic_lif import SynapticLIF, SynapticLIFState
from ..synapses._base import AbstractProjection
from ..synapses._conductance import ExponentialConductance
from ..synapses._current import ExponentialCurrent
from ..synapses._delay import DelayBuffer, delay_steps, init_buffer, pop, push
from ..synapses._dense import Dense
from ..synapses._event import EventProjection, fixed_in_degree, fixed_probability
from ..synapses._event_scatter import per_trial
from ..synapses._short_term import TsodyksMarkram, TsodyksMarkramState
from ..synapses._spike_ranks import chunk_size, spike_ranks, spike_rows
from ._base import AbstractNetwork


class SpikeLog(eqx.Module):
    """Spike events of every neuron with a budget: `steps[k]` (step index) and `ids[k]` of the
    `k`-th spike, for `k < count` (and `k < max_events`; `count` keeps counting past it)."""

    steps: Int[Array, "*batch events"]
    ids: Int[Array, "*batch events"]
    count: Int[Array, "*batch"]


class EIState(eqx.Module):
    """The state of an `EINetwork` (see the module docstring)."""

    neuron: PyTree[Array]
    spikes: Float[Array, "*batch n"]
    buffer: DelayBuffer
    stp: TsodyksMarkramState | None
    key: PRNGKeyArray
    step: Int[Array, ""]
    dropped: Int[Array, "*batch"]
    log: SpikeLog | None


class EINetwork(AbstractNetwork):
    r"""A recurrent population of `n_exc` excitatory and `n_inh` inhibitory neurons (module docstring).

    **Arguments:**

    - `neuron`: the spiking neuron of every unit (parameters broadcast over `n`); a
      `simjax.neurons.SynapticLIF` with two receptors gets the excitatory and inhibitory inputs
      separately, with one receptor (or any other neuron) their signed sum.
    - `recurrent`: the `(n, n)` projection: an `simjax.synapses.EventProjection` (event-driven,
      its `channels` route rows to receptors: 0 for excitatory, 1 for inhibitory presynaptic
      neurons), or any other projection (`Dense`, `Sparse`, `Dale`: the excitatory and inhibitory
      inputs are then two products with the masked spikes). Inhibitory weights are negative.
    - `n_exc`: the first `n_exc` neurons are excitatory, the rest inhibitory.
    - `stp`: `simjax.synapses.TsodyksMarkram` for every presynaptic neuron, or `None`.
    - `delay`: transmission delay in steps for a non-event projection (an `EventProjection`
      carries its own per-synapse `delays`).
    - `max_delay`: the longest delay (steps) the buffer holds (default: the largest delay).
    - `background_rate`, `background_weight`: Poisson input into every neuron's excitatory
      channel: `Poisson(background_rate dt)` events (rate in Hz, summed over the external
      sources) of weight `background_weight` per step. A constant drive is the neuron's `bias`.
    - `v_init`: `(low, high)`: `init` with a key draws every potential uniformly in this range.
    - `record_spikes`, `record_v`: neuron indices whose spikes / potentials each step records.
    - `max_events`: budget of the spike log in the state (0: no log).
    - `trainable`: fields learning rules update (default the projection).
    """

    neuron: AbstractSpikingNeuron
    recurrent: AbstractProjection
    stp: TsodyksMarkram | None
    background_rate: Float[Array, ""]
    background_weight: Float[Array, ""]
    v_init: tuple[float, float] | None = eqx.field(static=True)
    background: bool = eqx.field(static=True)
    n_exc: int = eqx.field(static=True)
    n_inh: int = eqx.field(static=True)
    delay: int = eqx.field(static=True)
    buffer_length: int = eqx.field(static=True)
    record_spikes: tuple[int, ...] = eqx.field(static=True)
    record_v: tuple[int, ...] = eqx.field(static=True)
    max_events: int = eqx.field(static=True)
    trainable: tuple[str, ...] = eqx.field(static=True)

    local_prepare: ClassVar[bool] = True

    def __init__(self, neuron: AbstractSpikingNeuron, recurrent: AbstractProjection, n_exc: int, *,
                 stp: TsodyksMarkram | None = None, delay: int = 0, max_delay: int | None = None,
                 background_rate=0.0, background_weight=0.0, v_init: tuple[float, float] | None = None,
                 record_spikes=(), record_v=(), max_events: int = 0, trainable=("recurrent",)):
        owner = "EINetwork"
        if not isinstance(neuron, AbstractSpikingNeuron):
            raise TypeError(f"{owner}: neuron must be a spiking neuron, got {type(neuron).__name__}")
        if not isinstance(recurrent, AbstractProjection):
            raise TypeError(f"{owner}: recurrent must be a simjax.synapses projection, got {type(recurrent).__name__}")
        n_pre, n_post = recurrent.shape
        if n_pre != n_post:
            raise ValueError(f"{owner}: the recurrent projection must be square, got shape {recurrent.shape}")
        self.n_exc = check_int("n_exc", n_exc, minimum=0, maximum=n_pre, owner=owner)
        self.n_inh = n_pre - self.n_exc
        event = isinstance(recurrent, EventProjection)
        channels = recurrent.n_channels if event else 2
        if isinstance(neuron, SynapticLIF) and len(neuron.receptors) not in (1, channels):
            raise ValueError(f"{owner}: the neuron has {len(neuron.receptors)} receptors but the projection "
                             f"delivers {channels} channels; use one receptor or one per channel")
        if event and channels > 2:
            raise ValueError(f"{owner}: the projection has {channels} channels; expected 1 or 2 "
                             "(excitatory, inhibitory)")
        if event and delay:
            raise ValueError(f"{owner}: an EventProjection carries its own delays (build it with delays=...); "
                             "drop delay")
        self.delay = check_int("delay", delay, minimum=0, owner=owner)
        longest = self.delay
        if event and recurrent.delays is not None:
            longest = int(np.max(np.asarray(recurrent.delays))) if recurrent.delays.size else 0
        if max_delay is None:
            max_delay = longest
        check_int("max_delay", max_delay, minimum=0, owner=owner)
        if longest > max_delay:
            raise ValueError(f"{owner}: a delay of {longest} steps is longer than the buffer (max_delay = {max_delay})")
        self.buffer_length = max_delay + 1
        self.neuron = neuron
        self.recurrent = recurrent
        self.stp = stp
        self.background_rate = as_float_array(background_rate)
        self.background_weight = as_float_array(background_weight)
        check_positive("background_rate", self.background_rate, allow_zero=True, owner=owner)
        self.background = not (is_concrete(background_rate) and float(np.max(np.asarray(background_rate))) == 0.0)
        self.v_init = None if v_init is None else (float(v_init[0]), float(v_init[1]))
        for name, ids in (("record_spikes", record_spikes), ("record_v", record_v)):
            ids = np.asarray(ids, dtype=np.int64).ravel()
            if ids.size and (ids.min() < 0 or ids.max() >= n_pre):
                raise ValueError(f"{owner}: {name} must hold neuron indices in [0, {n_pre}), "
                                 f"got [{ids.min()}, {ids.max()}]")
            setattr(self, name, tuple(int(i) for i in ids))
        self.max_events = check_int("max_events", max_events, minimum=0, owner=owner)
        self.trainable = trainable_fields(trainable, ("recurrent", "neuron", "stp"), owner=owner)

    # ------------------------------------------------------------------ sizes and state
    @property
    def n(self) -> int:
        """Number of neurons."""
        return self.n_exc + self.n_inh

    @property
    def n_in(self) -> int:
        """One input channel: an external input into every neuron's excitatory receptor (weight units)."""
        return 1

    @property
    def n_out(self) -> int:
        """Two readouts: the excitatory and inhibitory population rates (Hz)."""
        return 2

    @property
    def n_channels(self) -> int:
        return self.recurrent.n_channels if isinstance(self.recurrent, EventProjection) else 2

    def init(self, key, batch_shape):
        """Rest (no key, or no `v_init`), or potentials uniform in `v_init` (drawn with `key`)."""
        batch_shape = tuple(batch_shape)
        shape = (*batch_shape, self.n)
        ns = self.neuron.init(None, shape)
        dtype = jnp.result_type(self.neuron.output(ns))
        k_v, k_bg = jax.random.split(jax.random.key(0) if key is None else key)
        if self.v_init is not None and key is not None:
            v = jax.random.uniform(k_v, shape, dtype, self.v_init[0], self.v_init[1])
            if isinstance(ns, (SynapticLIFState, LIFState)):
                ns = eqx.tree_at(lambda s: s.v, ns, v)
            else:
                raise TypeError("EINetwork: v_init needs a LIF or SynapticLIF population, "
                                f"got {type(self.neuron).__name__}")
        log = None
        if self.max_events:
            log = SpikeLog(steps=jnp.zeros((*batch_shape, self.max_events), jnp.int32),
                           ids=jnp.zeros((*batch_shape, self.max_events), jnp.int32),
                           count=jnp.zeros(batch_shape, jnp.int32))
        return EIState(neuron=ns, spikes=jnp.zeros(shape, dtype),
                       buffer=init_buffer(self.buffer_length, (*batch_shape, self.n_channels, self.n), dtype),
                       stp=None if self.stp is None else self.stp.init(shape, dtype),
                       key=k_bg, step=jnp.zeros((), jnp.int32), dropped=jnp.zeros(batch_shape, jnp.int32), log=log)

    def prepare(self, inputs, dt):
        return inputs

    # ------------------------------------------------------------------ dynamics
    def _drive(self, arriving: Float[Array, "*batch c n"], external: Float[Array, "*batch n"]):
        """The neurons' input: `arriving` per receptor (`SynapticLIF` with one receptor per
        channel) or summed over the channels, with `external` added to channel 0 (elementwise,
        so that it fuses with the neurons' update instead of writing a copy of the slot)."""
        channels = [arriving[..., c, :] for c in range(arriving.shape[-2])]
        channels[0] = channels[0] + external
        if isinstance(self.neuron, SynapticLIF) and len(self.neuron.receptors) == len(channels) > 1:
            return tuple(channels)
        return sum(channels[1:], channels[0])

    def _propagate(self, projection, spikes, buffer, ranks):
        if isinstance(projection, EventProjection):
            return projection.deliver(spikes, buffer, ranks)
        exc = (jnp.arange(self.n) < self.n_exc).astype(spikes.dtype)
        arrivals = jnp.stack([projection(spikes * exc), projection(spikes * (1 - exc))], axis=-2)
        return push(buffer, arrivals, self.delay), jnp.zeros(spikes.shape[:-1], jnp.int32)

    def transition(self, state: EIState, x_t: Float[Array, "*batch 1"], dt: Any, projection: AbstractProjection
                   ) -> tuple[EIState, Record]:
        """One step with the recurrent weights of `projection` (a plastic rule passes its current
        weights here; `step` passes `self.recurrent`). See the module docstring."""

        def deliver(spikes, released, buffer, ranks):
            return *self._propagate(projection, released, buffer, ranks), None

        new, record, _ = self.transition_with(state, x_t, dt, deliver)
        return new, record

    def transition_with(self, state: EIState, x_t: Float[Array, "*batch 1"], dt: Any,
                        deliver: Callable[..., tuple[DelayBuffer, Int[Array, "*batch"], Any]]
                        ) -> tuple[EIState, Record, Any]:
        """`transition` with step 4 given: `deliver(spikes, released, buffer, ranks)` returns
        `(buffer, dropped, extra)`, as `EventProjection.deliver` plus anything else computed there
        (a plastic projection's new weights, `simjax.plasticity.simulate`); `ranks` are the spikes'
        `spike_ranks` per trial (batch flattened; `None` unless the recurrent projection is an
        `EventProjection` or a spike log is kept). **Returns:** `(state, record, extra)`."""
        buffer, arriving = pop(state.buffer)
        external = x_t[..., 0]
        external = jnp.broadcast_to(external[..., None], arriving.shape[:-2] + (self.n,))
        if self.background:
            lam = self.background_rate * dt / 1000.0
            key = jax.random.fold_in(state.key, state.step)
            counts = jax.random.poisson(key, lam, external.shape).astype(external.dtype)
            external = external + counts * self.background_weight
        neuron_state, spikes = self.neuron.step(state.neuron, self._drive(arriving, external), dt)
        stp = state.stp
        released = spikes
        if self.stp is not None:
            stp, released = self.stp.step(stp, spikes, dt)
        # which neurons spiked, found once for the propagation and the spike log (the efficacies
        # of short-term plasticity change the values, not which neurons spiked)
        ranks = None
        if isinstance(self.recurrent, EventProjection) or self.max_events:
            ranks = per_trial(spike_ranks, spikes.reshape(-1, self.n))
        buffer, dropped, extra = deliver(spikes, released, buffer, ranks)
        log = state.log if self.max_events == 0 else self._log(state.log, spikes, state.step, ranks)
        new = EIState(neuron=neuron_state, spikes=spikes, buffer=buffer, stp=stp, key=state.key,
                      step=state.step + 1, dropped=state.dropped + dropped, log=log)
        return new, self._record(neuron_state, spikes, dt, ranks), extra

    def _log(self, log: SpikeLog, spikes, step, ranks) -> SpikeLog:
        # per step, as many spikes as the propagation budget (all neurons for other projections):
        # the k-th spike of the step goes to position `count + k - 1`; the spiking neurons are
        # found in chunks, in index order, by a loop over the spikes that occurred
        budget = self.recurrent.max_spikes if isinstance(self.recurrent, EventProjection) else self.n
        cap = min(self.max_events, budget)
        chunk = chunk_size(self.n)

        def one(ranks, steps, ids, count):
            def body(c, logged):
                rows = spike_rows(ranks, self.n, cap, c, chunk)
                pos = jnp.where(rows < self.n, count + c * chunk + jnp.arange(chunk), self.max_events)
                return (logged[0].at[pos].set(step, mode="drop"),
                        logged[1].at[pos].set(rows.astype(ids.dtype), mode="drop"))

            steps, ids = jax.lax.fori_loop(0, ranks.chunks(chunk, cap), body, (steps, ids))
            return steps, ids, count + ranks.count

        batch = spikes.shape[:-1]
        flat = lambda a: a.reshape(-1, *a.shape[len(batch):])
        steps, ids, count = per_trial(one, ranks, flat(log.steps), flat(log.ids), log.count.reshape(-1))
        return SpikeLog(steps=steps.reshape(log.steps.shape), ids=ids.reshape(log.ids.shape),
                        count=count.reshape(log.count.shape))

    def _record(self, neuron_state, spikes, dt, ranks=None) -> Record:
        if ranks is None:
            rates = _population_means(spikes, self.n_exc)
        else:  # the counts are in the blocked spike flags already: no pass over the neurons
            exc = ranks.count_below(self.n_exc)
            counts = jnp.stack([exc, ranks.count - exc], axis=-1).reshape(*spikes.shape[:-1], 2)
            rates = _counted_population_means(spikes, counts, self.n_exc)
        rates = rates * (1000.0 / dt)
        v = self.neuron.output(neuron_state)
        return Record(spikes=spikes[..., list(self.record_spikes)] if self.record_spikes else None,
                      v=v[..., list(self.record_v)] if self.record_v else None, readout=rates)

    def step(self, state, prepared_t, dt):
        return self.transition(state, prepared_t, dt, self.recurrent)

    def step_fn(self, dt):
        return lambda state, x_t: self.transition(state, x_t, dt, self.recurrent)

    def vector_field(self, t, state, inputs_t):
        raise NotImplementedError("EINetwork has no continuous-time form (spikes are jumps); use method='clock'")

    def observe(self, state):
        raise NotImplementedError("EINetwork has no continuous-time form (spikes are jumps); use method='clock'")

    # ------------------------------------------------------------------ the benchmark networks
    @classmethod
    def coba(cls, n: int = 4000, *, key: Any, connectivity: str = "fixed_probability", p: float = 0.02, k: int = 80,
             max_spikes: int | None = None, dt: float = 0.1, delay: float = 0.0, dense: bool = False,
             **kwargs) -> EINetwork:
        r"""The conductance-based E/I network of Vogels & Abbott (2005) as in Brette et al. (2007),
        benchmark 1: `n` LIF neurons (80 % excitatory), `tau_mem = 20 ms`, `v_rest = -60 mV`,
        `v_th = -50 mV`, `v_reset = -60 mV`, `t_ref = 5 ms`; exponential conductances
        (`tau_e = 5 ms`, `E_e = 0 mV`; `tau_i = 10 ms`, `E_i = -80 mV`), jumps `0.6` and
        `6.7` (6 nS and 67 nS over the 10 nS leak); a constant drive `bias = 20 mV` (the BrainPy
        and brainevent benchmark convention, which keeps the network active without an initial
        stimulus); potentials start uniform in `[v_reset, v_th]`.

        `connectivity="fixed_probability"`: every pair connected with probability `p`,
        weights scaled by `4000 / n` (the classic convention: the mean input is that of the 4000
        neuron network); `"fixed_in_degree"`: every neuron receives `k` synapses from the whole
        population, weights not scaled. `_ei_network` documents the remaining arguments.
        """
        neuron = SynapticLIF((ExponentialConductance(5.0, 0.0), ExponentialConductance(10.0, -80.0)),
                             tau_mem=20.0, v_rest=-60.0, v_th=-50.0, v_reset=-60.0, t_ref=5.0, bias=20.0)
        return _ei_network(cls, neuron, n, 0.6, -6.7, key=key, connectivity=connectivity, p=p, k=k,
                           max_spikes=max_spikes, dt=dt, delay=delay, dense=dense, **kwargs)

    @classmethod
    def cuba(cls, n: int = 4000, *, key: Any, connectivity: str = "fixed_probability", p: float = 0.02, k: int = 80,
             max_spikes: int | None = None, dt: float = 0.1, delay: float = 0.0, dense: bool = False,
             **kwargs) -> EINetwork:
        r"""The current-based E/I network of Vogels & Abbott (2005) (Brette et al. 2007, benchmark 2;
        the Brian2 `CUBA` example): as `coba` but with exponential currents
        (`tau_e = 5 ms`, `tau_i = 10 ms`), jumps `1.62 mV` and `-9 mV`, resting potential
        `-49 mV` (above threshold: the drive) and no bias; integrated exactly."""
        neuron = SynapticLIF((ExponentialCurrent(5.0), ExponentialCurrent(10.0)),
                             tau_mem=20.0, v_rest=-49.0, v_th=-50.0, v_reset=-60.0, t_ref=5.0)
        return _ei_network(cls, neuron, n, 1.62, -9.0, key=key, connectivity=connectivity, p=p, k=k,
                           max_spikes=max_spikes, dt=dt, delay=delay, dense=dense, **kwargs)


def _population_means(spikes, n_exc: int):
    """The mean of `spikes` over the first `n_exc` neurons and over the others (0 for an empty
    population), `[*batch, 2]`."""
    n = spikes.shape[-1]
    zeros = jnp.zeros(spikes.shape[:-1], spikes.dtype)
    return jnp.stack([jnp.mean(spikes[..., :n_exc], axis=-1) if n_exc else zeros,
                      jnp.mean(spikes[..., n_exc:], axis=-1) if n > n_exc else zeros], axis=-1)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _counted_population_means(spikes, counts, n_exc: int):
    """`_population_means(spikes, n_exc)` from the populations' spike counts `counts` (`[*batch,
    2]`, the number of non-zero `spikes`, which are 0 or 1), with the derivative of the means."""
    sizes = np.maximum([n_exc, spikes.shape[-1] - n_exc], 1)
    return counts.astype(spikes.dtype) / jnp.asarray(sizes, spikes.dtype)


@_counted_population_means.defjvp
def _counted_population_means_jvp(n_exc, primals, tangents):
    spikes, counts = primals
    return _counted_population_means(spikes, counts, n_exc), _population_means(tangents[0], n_exc)


def _ei_network(cls, neuron, n, w_exc, w_inh, *, key, connectivity, p, k, max_spikes, dt, delay, dense, **kwargs):
    """The shared part of `EINetwork.coba` / `cuba`: an 80/20 population, the recurrent projection
    (`fixed_probability` or `fixed_in_degree`, no self-connections, rows routed to receptor 0 / 1),
    a delay (ms, on the grid), `max_spikes` (default `max(128, n / 10)`: the synchronous volley
    of the first milliseconds, when every neuron starts between reset and threshold, needs it), optionally as a
    dense matrix (`dense=True`; small `n` only)."""
    owner = f"EINetwork.{'coba' if isinstance(neuron.receptors[0], ExponentialConductance) else 'cuba'}"
    check_int("n", n, minimum=5, owner=owner)
    n_exc = int(round(0.8 * n))
    channels = (np.arange(n) >= n_exc).astype(np.int32)
    if max_spikes is None:
        max_spikes = max(128, math.ceil(n / 10))
    steps = int(delay_steps(delay, dt, owner=owner))
    common = dict(key=key, max_spikes=max_spikes, self_connections=False, channels=channels,
                  delays=steps if steps else None, sign="dale")
    if connectivity == "fixed_probability":
        scale = 4000.0 / n
        proj = fixed_probability(n, n, p, weight=(w_exc * scale, w_inh * scale), **common)
    elif connectivity == "fixed_in_degree":
        proj = fixed_in_degree(n, n, k, weight=(w_exc, w_inh), **common)
    else:
        raise ValueError(f"{owner}: unknown connectivity {connectivity!r}; expected 'fixed_probability' or "
                         "'fixed_in_degree'")
    v_init = (float(np.asarray(neuron.v_reset)), float(np.asarray(neuron.v_th)))
    if dense:
        return cls(neuron, Dense(proj.dense()), n_exc, delay=steps, v_init=v_init, **kwargs)
    return cls(neuron, proj, n_exc, v_init=v_init, **kwargs)
