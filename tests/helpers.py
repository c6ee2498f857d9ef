"""Small helpers shared by the tests (rules, spike-time convergence)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import simjax as sj


def jit_rule(rule):
    """One compiled program per rule call: far cheaper than dispatching the rule op by op."""
    return eqx.filter_jit(rule)


def max_rel_error(a, b):
    """`max |a - b| / max |a|`."""
    return float(jnp.max(jnp.abs(a - b)) / jnp.maximum(jnp.max(jnp.abs(a)), 1e-300))


def spike_regression_batch(steps, batch, n_in, n_out, p):
    """Bernoulli(`p`) input spikes `[steps, batch, n_in]` and Gaussian targets `[steps, batch, n_out]`."""
    x = (jax.random.uniform(jax.random.key(0), (steps, batch, n_in)) < p).astype(jnp.float64)
    y = jax.random.normal(jax.random.key(1), (steps, batch, n_out))
    return sj.tasks.Batch(inputs=x, targets=y)


def spikes_per_neuron(times, ids, n):
    """Each neuron's finite spike times, sorted, from an event-driven `(times, ids)` pair."""
    times, ids = np.asarray(times), np.asarray(ids)
    return [np.sort(times[(ids == j) & np.isfinite(times)]) for j in range(n)]


def assert_no_borderline_spikes(spikes_at, exact, largest_shift=1.5):
    """The same spikes, moved smoothly (by less than `largest_shift` ms), when every weight is
    scaled by 0.97 and 1.03: `spikes_at(scale)` gives the spikes per neuron at a scale."""
    for scale in (0.97, 1.03):
        moved = spikes_at(scale)
        assert [len(t) for t in moved] == [len(t) for t in exact], scale
        assert max(np.max(np.abs(m - e), initial=0.0) for m, e in zip(moved, exact)) < largest_shift, scale


def three_neurons(neuron, w_in, w_rec):
    """An `RSNN` of three `neuron`s driven by two input channels, with a unit readout."""
    return sj.networks.RSNN(2, 3, 1, neuron=neuron, w_in=w_in, w_rec=w_rec, w_out=np.ones((3, 1)))


@eqx.filter_jit
def event_spikes(net, train, t1, max_events):
    """The event-driven network's spike times and neuron ids on `[0, t1]`."""
    out = sj.simulate(net, train, method="event", t1=t1, max_events=max_events)
    return out.spikes.times, out.spikes.ids
