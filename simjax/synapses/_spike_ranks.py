r"""Which neurons spiked, in index order, without a prefix sum over every neuron.

The event-driven loops (the propagation of `simjax.synapses._event_scatter`, the spike-driven
plasticity update) visit the neurons that spiked in chunks of a few, in index order: chunk `c`
needs the neurons of ranks `c C + 1, ..., (c + 1) C` among those that spiked. An inclusive prefix
sum over the `n` spike flags gives them, but XLA's cumulative sum on a CPU costs about as much as
the rest of a sparse network's step. Instead the flags are cut into blocks of `B` neurons
(`B` grows with `n`, about `sqrt(n) / 2`):

- once per step (`spike_ranks`): the flags as an `[n / B, B]` array, each block's spike count,
  and the inclusive prefix sum of the counts (`n / B` entries);
- per chunk (`spike_rows`): the block of rank `r` is the number of block prefixes below `r`;
  within that block, with `r'` = `r` minus the spikes of the earlier blocks, the position is the
  number of entries of the block's own prefix sum (`B` entries) below `r'`.

The work per step is `O(n)` in one reduction plus `O(n / B)`, and per chunk `O(C (n / B + B))`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int


def block_size(n: int) -> int:
    """Neurons per block for a population of `n` (the fastest on XLA's CPU backend for the COBA
    step, `benchmarks/spike_ranks.py`)."""
    return 16 if n <= 2048 else 32 if n <= 8192 else 64


SEARCH_ABOVE = 2048
"""Above this many blocks (131 072 neurons), a rank's block is found by binary search in the block
prefixes rather than by counting them all. The count is one fused comparison of `chunk x n_blocks`
entries, the search one small kernel per halving: measured on the CUBA/COBA steps (one thread,
in-degree 80), counting is as fast at 16 k neurons (500 blocks) and 7-15 % faster per step at 40 k
and 100 k neurons (625 and 1563 blocks)."""


class SpikeRanks(NamedTuple):
    """One step's spike flags in blocks (`spike_ranks`)."""

    flags: Int[Array, "n_blocks block"]
    """The flags `spikes != 0` (0 or 1) in blocks of `block_size(n)` neurons, zero-padded."""
    prefix: Int[Array, " n_blocks"]
    """The inclusive prefix sum of the blocks' spike counts; the last entry is the number of spikes."""

    @property
    def count(self) -> Int[Array, "..."]:
        """The number of neurons that spiked (per trial, for batched ranks)."""
        return self.prefix[..., -1]

    def chunks(self, chunk: int, budget: int | Int[Array, ""] | None = None) -> Int[Array, ""]:
        """How many chunks of `chunk` spikes cover the spikes (at most `budget` of them)."""
        count = self.count if budget is None else jnp.minimum(self.count, budget)
        return (count + chunk - 1) // chunk

    def count_below(self, k: int) -> Int[Array, "..."]:
        """How many of the neurons `0, ..., k - 1` spiked (`k` static; leading batch axes kept):
        the prefix of the whole blocks below `k` plus the flags of the partial block."""
        blocks, rest = divmod(k, self.flags.shape[-1])
        below = self.prefix[..., blocks - 1] if blocks else jnp.zeros(self.prefix.shape[:-1], self.prefix.dtype)
        return below + jnp.sum(self.flags[..., blocks, :rest], axis=-1, dtype=self.prefix.dtype) if rest else below

    def spiked(self, neurons: Int[Array, "..."]) -> Bool[Array, "..."]:
        """Whether each of `neurons` spiked (`False` for indices past the population)."""
        return self.flags.reshape(-1).at[neurons].get(mode="fill", fill_value=0) != 0


def spike_ranks(spikes: Float[Array, " n"], size: int | None = None) -> SpikeRanks:
    """The blocks of `spikes != 0` and their spike counts' prefix sum (no gradient flows), in
    blocks of `size` neurons (default `block_size(n)`)."""
    n = spikes.shape[0]
    size = block_size(n) if size is None else size
    n_blocks = -(-n // size)
    # (the barrier materialises the flags: otherwise XLA may fuse the neuron update that produced
    # the spikes into every later use and recompute it there)
    flags = jax.lax.optimization_barrier((jax.lax.stop_gradient(spikes) != 0).astype(jnp.int32))
    flags = jnp.pad(flags, (0, n_blocks * size - n)).reshape(n_blocks, size)
    return SpikeRanks(flags=flags, prefix=jnp.cumsum(jnp.sum(flags, axis=1, dtype=jnp.int32), dtype=jnp.int32))


def chunk_size(n: int) -> int:
    """Spikes per iteration of the loops that visit a step's spiking neurons in chunks (the spike
    log of `simjax.networks.EINetwork`, the plastic propagation loop of
    `simjax.plasticity.simulate`, the propagation under `vmap` and its derivative,
    `simjax.synapses._event_scatter`) for a population of `n`: 4 up to 16 384 neurons, 8 above. Each
    iteration has a fixed cost and a chunk larger than a step's spikes pads its last iteration;
    measured on the COBA network (one thread): at 4 k neurons one spike per iteration made the
    spike log 4 % slower than chunks of 4, and the plastic step 1.5x slower. (The propagation
    of one trial alone is fastest with one spike per iteration.)"""
    return 4 if n <= 16384 else 8


def spike_rows(ranks: SpikeRanks, n: int, budget: int | Int[Array, ""], c: Int[Array, ""],
               chunk: int) -> Int[Array, " chunk"]:
    """The neurons of ranks `c chunk + 1, ..., (c + 1) chunk` among those that spiked (index order),
    `n` for the ranks past the number of spikes or past `budget`."""
    r = c * chunk + jnp.arange(1, chunk + 1, dtype=ranks.prefix.dtype)
    n_blocks, size = ranks.flags.shape
    if n_blocks <= SEARCH_ABOVE:  # the block prefixes below r, counted in one fused comparison
        block = jnp.sum(ranks.prefix[None, :] < r[:, None], axis=1, dtype=jnp.int32)
    else:  # or found by binary search (one small kernel per halving)
        block = jnp.searchsorted(ranks.prefix, r, side="left", method="scan_unrolled").astype(jnp.int32)
    block = jnp.minimum(block, n_blocks - 1)
    own = ranks.flags[block]  # [chunk, size]
    before = ranks.prefix[block] - jnp.sum(own, axis=1, dtype=jnp.int32)  # spikes of the earlier blocks
    position = jnp.sum(jnp.cumsum(own, axis=1, dtype=jnp.int32) < (r - before)[:, None], axis=1, dtype=jnp.int32)
    return jnp.where((r <= ranks.count) & (r <= budget), block * size + position, n)
