r"""Event-driven sparse projections: random connectivity at scale and propagation whose cost per step
is the number of spikes times the out-degree.

**Storage.** Synapses are kept by presynaptic neuron in ELLPACK rows: `targets [n_pre, max_out]`
(postsynaptic indices, padded with `n_post`) and `weight [n_pre, max_out]` (padding 0), plus
optional per-synapse `delays` (steps). Memory is `n_pre max_out` entries (`max_out` is the
largest out-degree), never `n_pre x n_post`.

**Propagation** (`EventProjection.propagate`), per step and trial:

1. the spike flags in blocks and the prefix sum of the blocks' spike counts (`spike_ranks`),
   whose last entry is the number of spikes;
2. a loop over chunks of spikes (`simjax.synapses._event_scatter`) that stops after the spikes
   that occurred: each chunk's rows are found from the blocked counts, their targets
   and weights gathered (each weight times the spike's value, so surrogate gradients flow
   through the spikes that occurred) and scatter-added into the postsynaptic array
   (`n_channels x n_post`: one channel per receptor, chosen per presynaptic neuron by
   `channels`, e.g. excitatory rows to receptor 0 and inhibitory rows to receptor 1).

The work is `O(n_pre)` for the blocked counts plus `O(spikes x max_out)` for the synapses,
independent of the total number of synapses and of the budget. At most `max_spikes` spikes are
propagated per step; more are dropped and *counted* (`propagate` returns the count;
`simjax.networks.EINetwork` accumulates it in its state and its runs report it), never lost
silently. Why this form, and not the alternatives (a segment sum over every synapse, a
`jax.experimental.sparse` BCOO matrix-vector product, a dense matmul, brainevent's kernels): the
measurements in `benchmarks/coba.py` and `docs/api/synapse-dynamics.md`.

**Gradients.** The loop's custom VJP gives the gradient with respect to every stored weight
(the transpose of a scatter-add is a gather): the derivative of the arrivals with respect to
`weight[j, k]` is the spike value of `j`. Surrogate gradients reach only the
presynaptic neurons that spiked in that step (the others are not in the compacted list); with the
dense path they would also reach silent neurons through the surrogate's tail.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from .._checks import as_float_array, check_choice, check_int, is_concrete
from ._base import AbstractProjection
from ._delay import DelayBuffer
from ._event_scatter import event_scatter_add, per_trial
from ._spike_ranks import SpikeRanks, spike_ranks


def _numpy_rng(key: Any) -> np.random.Generator:
    """A NumPy generator seeded from a JAX key or an int (connectivity is built on the host)."""
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        return np.random.default_rng(int(key))
    data = np.asarray(jax.random.key_data(key)) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else np.asarray(key)
    return np.random.default_rng(data.astype(np.uint32).ravel().tolist())


def spike_prefix(spikes: Float[Array, " n"]) -> Int[Array, " n"]:
    """The inclusive prefix sum of the spike flags `spikes != 0`: entry `j` is the number of
    spikes among neurons `0..j`, the last entry the number of spikes."""
    # (the barrier materialises the flags: otherwise XLA may fuse the neuron update that produced
    # the spikes into the prefix sum and recompute it there)
    flags = jax.lax.optimization_barrier((jax.lax.stop_gradient(spikes) != 0).astype(jnp.int32))
    return jnp.cumsum(flags)


def spike_indices(spikes: Float[Array, " n"], max_spikes: int) -> tuple[Int[Array, " max_spikes"], Int[Array, ""]]:
    """The indices of the nonzero entries of `spikes` in increasing order, padded with `n` to
    `max_spikes` entries, and how many there are (those past `max_spikes` are left out).

    A prefix sum (`spike_prefix`) and an unrolled binary search for each rank; on CPU
    this is several times cheaper than `jnp.nonzero(size=...)`'s scatter of every entry.
    """
    counts = spike_prefix(spikes)
    ranks = jnp.arange(1, max_spikes + 1, dtype=jnp.int32)
    idx = jnp.searchsorted(counts, ranks, side="left", method="scan_unrolled").astype(jnp.int32)
    return idx, counts[-1]


def _route(n_post: int, n_channels: int, aux, rows):
    """Flat targets `channel * n_post + target` of the synapses of `rows`; padding synapses and
    padding rows go to `n_channels * n_post` (dropped)."""
    targets, channels = aux
    t = targets.at[rows].get(mode="fill", fill_value=n_post)
    if channels is not None:
        t = t + channels.at[rows].get(mode="fill", fill_value=0)[:, None] * n_post
    return jnp.where(targets.at[rows].get(mode="fill", fill_value=n_post) < n_post, t, n_post * n_channels)


def ring_position(cursor, length: int, n_post: int, n_channels: int, channel, target, delay, deliver):
    """Flat positions in a ring buffer of `length` slots of `n_channels x n_post` entries (the
    `[L, n_channels, n_post]` slots of a `DelayBuffer`, flattened): slot `cursor + 1 + delay`
    (modulo `length`), then the channel and the target; `length n_channels n_post` (past the end:
    dropped) where `deliver` is off."""
    size = n_post * n_channels
    slot = (cursor + 1 + delay) % length
    return jnp.where(deliver, slot * size + channel * n_post + target, length * size)


def _route_delayed(n_post: int, n_channels: int, length: int, aux, rows):
    """Flat targets in a ring buffer of `length` slots (`ring_position`); padding synapses and
    padding rows are dropped."""
    targets, channels, delays, cursor = aux
    t = targets.at[rows].get(mode="fill", fill_value=n_post)
    channel = 0 if channels is None else channels.at[rows].get(mode="fill", fill_value=0)[:, None]
    delay = 0 if delays is None else delays.at[rows].get(mode="fill", fill_value=0)
    return ring_position(cursor, length, n_post, n_channels, channel, t, delay, t < n_post)


class EventProjection(AbstractProjection):
    r"""A sparse projection stored by presynaptic neuron, propagated event-driven (module docstring).

    Build one with `fixed_probability` or `fixed_in_degree` (or from index arrays with
    `EventProjection.from_indices`).

    **Arguments:**

    - `weight`: `[n_pre, max_out]` synaptic weights (padding entries are ignored).
    - `targets`: `[n_pre, max_out]` postsynaptic indices, `n_post` marking padding.
    - `n_post`: number of postsynaptic neurons.
    - `max_spikes`: the static budget of presynaptic spikes per step and trial (more are dropped
      and counted).
    - `channels`: `None` (one output channel) or `[n_pre]` ints: the receptor each presynaptic
      neuron's synapses reach (output channel), with `n_channels` channels.
    - `delays`: `None` (no delay) or `[n_pre, max_out]` delays in steps (see
      `simjax.synapses.delay_steps`), used by `deliver`.
    - `sign`: `"excitatory"` (weights kept >= 0 by `constrain`), `"inhibitory"` (<= 0), `"dale"`
      (the sign of channel 0 rows >= 0, other rows <= 0) or `None` (unconstrained).
    """

    trainable: ClassVar[tuple[str, ...]] = ("weight",)

    weight: Float[Array, "n_pre max_out"]
    targets: Int[Array, "n_pre max_out"]
    channels: Int[Array, " n_pre"] | None
    delays: Int[Array, "n_pre max_out"] | None
    n_post: int = eqx.field(static=True)
    n_channels: int = eqx.field(static=True)
    max_spikes: int = eqx.field(static=True)
    sign: str | None = eqx.field(static=True)

    def __init__(self, weight, targets, n_post: int, *, max_spikes: int, channels=None, n_channels: int | None = None,
                 delays=None, sign: str | None = None):
        owner = "EventProjection"
        self.weight = as_float_array(weight)
        self.targets = jnp.asarray(targets, jnp.int32)
        self.n_post = check_int("n_post", n_post, owner=owner)
        self.max_spikes = check_int("max_spikes", max_spikes, owner=owner)
        if self.weight.ndim != 2 or self.weight.shape != self.targets.shape:
            raise ValueError(f"{owner}: weight {self.weight.shape} and targets {self.targets.shape} must be "
                             "[n_pre, max_out] arrays of the same shape")
        self.channels = None if channels is None else jnp.asarray(channels, jnp.int32)
        self.n_channels = 1 if channels is None else check_int(
            "n_channels", int(np.max(np.asarray(channels))) + 1 if n_channels is None else n_channels, owner=owner)
        if self.channels is not None and self.channels.shape != (self.weight.shape[0],):
            raise ValueError(f"{owner}: channels has shape {self.channels.shape}, expected ({self.weight.shape[0]},)")
        self.delays = None if delays is None else jnp.broadcast_to(jnp.asarray(delays, jnp.int32), self.weight.shape)
        if self.delays is not None and is_concrete(self.delays) and self.delays.size and int(jnp.min(self.delays)) < 0:
            raise ValueError(f"{owner}: delays must be >= 0 steps")
        check_choice("sign", sign, (None, "excitatory", "inhibitory", "dale"), owner=owner)
        if sign == "dale" and self.channels is None:
            raise ValueError(f"{owner}: sign='dale' needs channels (channel 0 excitatory, others inhibitory)")
        self.sign = sign
        if is_concrete(self.targets) and self.targets.size:
            t = np.asarray(self.targets)
            if t.min() < 0 or t.max() > self.n_post:
                raise ValueError(f"{owner}: targets must lie in [0, {self.n_post}] ({self.n_post} = padding), got "
                                 f"values in [{t.min()}, {t.max()}]")

    @classmethod
    def from_indices(cls, pre, post, n_pre: int, n_post: int, *, weight=1.0, max_spikes: int, channels=None,
                     n_channels: int | None = None, delays=None, sign: str | None = None) -> EventProjection:
        """From one entry per synapse (`pre[k] -> post[k]`; `weight` and `delays` scalars or
        one value per synapse), grouped into ELL rows by presynaptic neuron (stable order)."""
        pre, post = np.asarray(pre, np.int64), np.asarray(post, np.int64)
        n_pre = check_int("n_pre", n_pre, owner="EventProjection.from_indices")
        if pre.shape != post.shape or pre.ndim != 1:
            raise ValueError("EventProjection.from_indices: pre and post must be 1-D arrays of the same length")
        if pre.size and (pre.min() < 0 or pre.max() >= n_pre or post.min() < 0 or post.max() >= n_post):
            raise ValueError(f"EventProjection.from_indices: indices out of range for shape ({n_pre}, {n_post})")
        order = np.argsort(pre, kind="stable")
        pre, post = pre[order], post[order]
        degree = np.bincount(pre, minlength=n_pre)
        width = max(int(degree.max()) if degree.size else 0, 1)
        start = np.concatenate([[0], np.cumsum(degree)[:-1]])
        col = np.arange(pre.size) - start[pre]
        targets = np.full((n_pre, width), n_post, np.int32)
        targets[pre, col] = post
        values = np.zeros((n_pre, width))
        values[pre, col] = np.broadcast_to(np.asarray(weight, np.float64), order.shape)[order]
        d = None
        if delays is not None:
            d = np.zeros((n_pre, width), np.int32)
            d[pre, col] = np.broadcast_to(np.asarray(delays, np.int64), order.shape)[order]
        return cls(jnp.asarray(values, dtype=jnp.result_type(float)), targets, n_post, max_spikes=max_spikes,
                   channels=channels, n_channels=n_channels, delays=d, sign=sign)

    @property
    def shape(self):
        return (self.weight.shape[0], self.n_post)

    @property
    def n_synapses(self) -> int:
        """Number of stored synapses (non-padding entries)."""
        return int(np.sum(np.asarray(self.targets) < self.n_post))

    def indices(self) -> tuple[np.ndarray, np.ndarray]:
        """`(pre, post)` of every synapse, as NumPy arrays, in row order (for other simulators)."""
        t = np.asarray(self.targets)
        pre, col = np.nonzero(t < self.n_post)
        return pre, t[pre, col]

    def synapse_values(self, values) -> np.ndarray:
        """`values` (an `[n_pre, max_out]` array such as `weight`) at the synapses of `indices`."""
        t = np.asarray(self.targets)
        pre, col = np.nonzero(t < self.n_post)
        return np.asarray(values)[pre, col]

    def _signed(self, w):
        if self.sign is None:
            return w
        if self.sign == "excitatory":
            return jnp.maximum(w, 0.0)
        if self.sign == "inhibitory":
            return jnp.minimum(w, 0.0)
        exc = (self.channels == 0)[:, None]
        return jnp.where(exc, jnp.maximum(w, 0.0), jnp.minimum(w, 0.0))

    def _ranks(self, spikes, ranks=None):
        """`(ranks, dropped)`: one trial's `spike_ranks` (computed unless given) and the number of
        spikes the budget leaves out."""
        ranks = spike_ranks(spikes) if ranks is None else ranks
        return ranks, jnp.maximum(ranks.count - self.max_spikes, 0)

    def propagate(self, spikes: Float[Array, "*batch n_pre"], ranks: SpikeRanks | None = None
                  ) -> tuple[Float[Array, "*batch n_channels n_post"], Int[Array, "*batch"]]:
        """`(arrivals, dropped)`: the summed weights of this step's spikes per channel and
        postsynaptic neuron, and the number of spikes left out by the `max_spikes` budget.
        `ranks`: the spikes' `spike_ranks` per trial (batch flattened), when the caller has them."""
        routing = functools.partial(_route, self.n_post, self.n_channels)

        def one(s, r):
            ranks, dropped = self._ranks(s, r)
            out = jnp.zeros(self.n_channels * self.n_post, jnp.result_type(s, self.weight))
            aux = (self.targets, self.channels)
            out = event_scatter_add(out, self.weight, s, ranks, self.max_spikes, routing, aux)
            return out.reshape(self.n_channels, self.n_post), dropped

        batch = spikes.shape[:-1]
        flat = spikes.reshape(-1, spikes.shape[-1])
        arrivals, dropped = per_trial(one, flat, ranks)
        return arrivals.reshape(*batch, self.n_channels, self.n_post), dropped.reshape(batch)

    def deliver(self, spikes: Float[Array, "*batch n_pre"], buffer: DelayBuffer, ranks: SpikeRanks | None = None
                ) -> tuple[DelayBuffer, Int[Array, "*batch"]]:
        """Adds this step's spikes to the ring buffer `buffer` (slots `[L, *batch, n_channels,
        n_post]`) `delays + 1` slots ahead of its cursor and advances the cursor (see
        `simjax.synapses._delay`); `ranks` as in `propagate`. **Returns:** `(buffer, dropped)`."""
        length = buffer.slots.shape[0]
        routing = functools.partial(_route_delayed, self.n_post, self.n_channels, length)

        def one(s, slots, r):
            ranks, dropped = self._ranks(s, r)
            aux = (self.targets, self.channels, self.delays, buffer.cursor)
            flat = event_scatter_add(slots.reshape(-1), self.weight, s, ranks, self.max_spikes, routing, aux)
            return flat.reshape(slots.shape), dropped

        batch = spikes.shape[:-1]
        flat_spikes = spikes.reshape(-1, spikes.shape[-1])
        slots = jnp.moveaxis(buffer.slots.reshape(length, -1, self.n_channels, self.n_post), 1, 0)
        slots, dropped = per_trial(one, flat_spikes, slots, ranks)
        slots = jnp.moveaxis(slots, 0, 1).reshape(buffer.slots.shape)
        return DelayBuffer(slots=slots, cursor=(buffer.cursor + 1) % length), dropped.reshape(batch)

    def __call__(self, pre):
        """The arrivals of channel 0 plus all other channels (a plain linear map, as every projection;
        use `propagate` for the channels and the dropped-spike count)."""
        return jnp.sum(self.propagate(pre)[0], axis=-2)

    def dense(self):
        """`[n_pre, n_post]` (channels summed). Small sizes only: this forms the full matrix."""
        w = self._signed(self.weight)
        rows = jnp.broadcast_to(jnp.arange(w.shape[0])[:, None], w.shape)
        return jnp.zeros((w.shape[0], self.n_post + 1), w.dtype).at[rows, self.targets].add(w)[:, :self.n_post]

    def without_self_connections(self):
        rows = jnp.arange(self.weight.shape[0])[:, None]
        return eqx.tree_at(lambda p: p.weight, self, jnp.where(self.targets == rows, 0.0, self.weight))

    def constrain(self):
        return eqx.tree_at(lambda p: p.weight, self, self._signed(self.weight))


def _weights(owner: str, weight: Any, n_pre: int, channels) -> np.ndarray:
    """Per presynaptic neuron weight values from a scalar, a per-channel tuple or an `[n_pre]` array."""
    if isinstance(weight, (tuple, list)):
        if channels is None:
            raise ValueError(f"{owner}: a tuple of weights needs channels (one weight per channel)")
        return np.asarray(weight, np.float64)[np.asarray(channels)]
    w = np.asarray(weight, np.float64)
    return np.broadcast_to(w, (n_pre,)) if w.ndim == 0 else w


def fixed_probability(n_pre: int, n_post: int, p: float, *, key: Any, weight: Any = 1.0, max_spikes: int,
                      self_connections: bool = True, channels=None, delays=None, sign: str | None = None
                      ) -> EventProjection:
    r"""Erdos-Renyi connectivity: every pair `(i, j)` is connected independently with probability `p`.

    Built row by row from geometric gaps between the targets of each presynaptic neuron (the gaps
    of a Bernoulli(`p`) sequence are geometric), so the cost is `O(synapses)` in time and
    memory and no `n_pre x n_post` array is ever formed.

    **Arguments:**

    - `n_pre`, `n_post`: population sizes.
    - `p`: connection probability, in `[0, 1]`.
    - `key`: a JAX PRNG key or an int seed (the structure is drawn on the host with NumPy).
    - `weight`: a scalar, one value per channel (a tuple, with `channels`) or one per presynaptic
      neuron (`[n_pre]`); every synapse of a neuron gets its value.
    - `max_spikes`: the per-step spike budget of the propagation (`EventProjection`).
    - `self_connections`: keep `i -> i` synapses (square projections).
    - `channels`, `delays`, `sign`: as in `EventProjection` (`delays` a scalar in steps).

    **Returns:** an `EventProjection`.
    """
    owner = "fixed_probability"
    check_int("n_pre", n_pre, owner=owner)
    check_int("n_post", n_post, owner=owner)
    if not (isinstance(p, (int, float, np.floating, np.integer)) and 0.0 <= float(p) <= 1.0):
        raise ValueError(f"{owner}: p must be a probability in [0, 1], got {p!r}")
    p = float(p)
    rng = _numpy_rng(key)
    pres, posts = [], []
    if p > 0:
        mean = n_post * p
        width = int(np.ceil(mean + 8.0 * np.sqrt(mean * (1 - p)) + 16)) if p < 1 else n_post + 1
        chunk = max(1, 2 ** 24 // max(width, 1))
        for start in range(0, n_pre, chunk):
            rows = np.arange(start, min(start + chunk, n_pre))
            pending = rows
            while pending.size:
                if p < 1:
                    gaps = rng.geometric(p, size=(pending.size, width))
                    positions = np.cumsum(gaps, axis=1) - 1
                else:
                    positions = np.broadcast_to(np.arange(width), (pending.size, width))
                done = positions[:, -1] >= n_post  # the row's Bernoulli sequence is complete
                r, c = np.nonzero(positions[done] < n_post)
                pres.append(pending[done][r])
                posts.append(positions[done][r, c])
                pending = pending[~done]
    pre = np.concatenate(pres) if pres else np.zeros(0, np.int64)
    post = np.concatenate(posts) if posts else np.zeros(0, np.int64)
    if not self_connections:
        keep = pre != post
        pre, post = pre[keep], post[keep]
    w = _weights(owner, weight, n_pre, channels)[pre]
    return EventProjection.from_indices(pre, post, n_pre, n_post, weight=w, max_spikes=max_spikes,
                                        channels=channels, delays=delays, sign=sign)


def fixed_in_degree(n_pre: int, n_post: int, k: int, *, key: Any, weight: Any = 1.0, max_spikes: int,
                    self_connections: bool = True, channels=None, delays=None, sign: str | None = None
                    ) -> EventProjection:
    r"""Every postsynaptic neuron receives exactly `k` synapses from `k` distinct presynaptic
    neurons drawn uniformly (the convention of the fixed in-degree benchmarks, `k = 80`).

    Each row of `k` presynaptic indices is drawn uniformly and redrawn while it repeats an index
    (or, without self-connections, contains the postsynaptic neuron itself): rejection sampling,
    so every `k`-subset is equally likely; `O(n_post k)` time and memory.

    **Arguments:** as `fixed_probability`, with `k` (an int in `[0, n_pre]`, or `n_pre - 1`
    without self-connections on a square projection) instead of `p`.

    **Returns:** an `EventProjection` (stored by presynaptic neuron for event-driven propagation).
    """
    owner = "fixed_in_degree"
    check_int("n_pre", n_pre, owner=owner)
    check_int("n_post", n_post, owner=owner)
    available = n_pre - (0 if self_connections or n_pre != n_post else 1)
    check_int("k", k, minimum=0, maximum=available, what="the in-degree cannot exceed the presynaptic population"
              + ("" if self_connections else " minus self-connections"), owner=owner)
    rng = _numpy_rng(key)
    sources = np.zeros((n_post, k), np.int64)
    pending = np.arange(n_post)
    if 4 * k > n_pre:  # dense rows: a random permutation per row (rejection would rarely succeed)
        keys = rng.random((n_post, n_pre))
        if not self_connections:
            keys[pending, pending] = np.inf
        sources = np.argsort(keys, axis=1)[:, :k]
        pending = pending[:0]
    while pending.size and k:
        draw = rng.integers(0, n_pre, size=(pending.size, k))
        s = np.sort(draw, axis=1)
        bad = np.any(s[:, 1:] == s[:, :-1], axis=1) if k > 1 else np.zeros(pending.size, bool)
        if not self_connections:
            bad |= np.any(draw == pending[:, None], axis=1)
        sources[pending[~bad]] = draw[~bad]
        pending = pending[bad]
    pre = sources.ravel()
    post = np.repeat(np.arange(n_post), k)
    w = _weights(owner, weight, n_pre, channels)[pre]
    return EventProjection.from_indices(pre, post, n_pre, n_post, weight=w, max_spikes=max_spikes,
                                        channels=channels, delays=delays, sign=sign)
