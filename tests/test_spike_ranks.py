"""The spiking neurons of each chunk, found from blocked spike counts, against NumPy's `nonzero`."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simjax.synapses import _spike_ranks
from simjax.synapses._spike_ranks import spike_ranks, spike_rows


def _all_rows(spikes, budget, chunk):
    n = spikes.shape[0]
    ranks = spike_ranks(spikes)
    chunks = -(-n // chunk) + 1  # every chunk, and one past the last
    rows = jax.vmap(lambda c: spike_rows(ranks, n, budget, c, chunk))(jnp.arange(chunks))
    return np.asarray(rows).ravel(), int(ranks.count)


@pytest.mark.parametrize("n", [1, 17, 100, 2049, 9000, 20000])
@pytest.mark.parametrize("density", [0.0, 0.01, 0.3, 1.0])
def test_rows_are_the_spiking_neurons_in_index_order_then_padding(n, density, monkeypatch):
    rng = np.random.default_rng(n + int(100 * density))
    spikes = np.where(rng.random(n) < density, rng.uniform(0.5, 2.0, n), 0.0)
    expected = np.flatnonzero(spikes)
    if n == 20000:  # the binary search over the blocks (used for larger populations)
        monkeypatch.setattr(_spike_ranks, "SEARCH_ABOVE", 16)
        assert -(-n // _spike_ranks.block_size(n)) > _spike_ranks.SEARCH_ABOVE
    for chunk in (8, 16):
        rows, count = _all_rows(jnp.asarray(spikes), n, chunk)
        assert count == expected.size
        np.testing.assert_array_equal(rows[:expected.size], expected)
        assert np.all(rows[expected.size:] == n)


def test_budget_keeps_the_first_spikes():
    n = 3000
    spikes = np.zeros(n)
    spikes[np.random.default_rng(0).choice(n, 100, replace=False)] = 1.0
    rows, count = _all_rows(jnp.asarray(spikes), 37, 16)
    assert count == 100
    np.testing.assert_array_equal(rows[:37], np.flatnonzero(spikes)[:37])
    assert np.all(rows[37:] == n)


def test_count_below_counts_the_spikes_below_each_index_per_trial():
    n = 100  # blocks of 16: the counts cross whole and partial blocks
    rng = np.random.default_rng(4)
    spikes = (rng.random((3, n)) < 0.3).astype(float)
    ranks = jax.vmap(spike_ranks)(jnp.asarray(spikes))
    for k in (0, 1, 15, 16, 17, 50, 99, 100):
        np.testing.assert_array_equal(np.asarray(ranks.count_below(k)), spikes[:, :k].sum(axis=1))
    np.testing.assert_array_equal(np.asarray(ranks.count), spikes.sum(axis=1))
