"""Clock-driven spike times converge to the exact event-driven ones as dt -> 0, at first order.

The clock-driven simulation delivers an input spike at the end of the step that contains it,
detects a threshold crossing at the end of its step and delivers recurrent spikes one step later,
so every spike time is off by O(dt) (late, or early where a delayed inhibitory spike arrives too
late): the error must shrink about tenfold per tenfold smaller dt.
The network is built so that no spike is borderline (every spike survives +-3 % weight changes
with a smoothly moving time), hence the same spikes occur at every dt.
"""

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pytest

import simjax as sj
from simjax.neurons import LIF

from .helpers import assert_no_borderline_spikes, event_spikes, spikes_per_neuron, three_neurons

T1 = 57.0  # the last spike comes > 3 ms earlier, so the lag at dt = 1 cannot push it past T1
INPUT_TIMES = np.array([4.3, 9.1, 17.7, 23.2, 31.9, 38.4, 47.5])
INPUT_IDS = np.array([0, 1, 0, 1, 1, 0, 1])
W_IN = np.array([[1.0, -0.6, 0.8], [-0.5, 0.9, 0.7]])
W_REC = np.array([[0.0, -1.0, 0.5], [-0.9, 0.0, -1.1], [0.6, -1.2, 0.0]])
CONFIGS = {"delta": (None, [1.5, 1.3, 1.2], 0.1, 0.1), "exponential": (5.0, [1.5, 1.35, 1.25], 0.3, 0.2)}


def network(kind, scale=1.0):
    tau_syn, bias, s_in, s_rec = CONFIGS[kind]
    lif = LIF(tau_mem=10.0, bias=jnp.asarray(bias), tau_syn=tau_syn)
    return three_neurons(lif, scale * s_in * W_IN, scale * s_rec * W_REC)


def event_driven(net, train):
    return event_spikes(net, train, T1, 32)


@eqx.filter_jit
def clock_driven(net, x, dt):
    return sj.simulate(net, x, dt=dt, record=("spikes",)).spikes


def per_neuron(times, ids):
    return spikes_per_neuron(times, ids, 3)


@pytest.mark.parametrize("kind", ["delta", "exponential"])
def test_clock_driven_spike_times_converge_to_event_driven(kind):
    net = network(kind)
    train = sj.SpikeTrain(jnp.asarray(INPUT_TIMES), jnp.asarray(INPUT_IDS), n=2)
    exact = per_neuron(*event_driven(net, train))
    assert all(len(t) >= 2 for t in exact)
    assert_no_borderline_spikes(lambda scale: per_neuron(*event_driven(network(kind, scale), train)), exact)
    errors = []
    for dt in (1.0, 0.1, 0.01):
        x = train.to_dense(dt, T1)[:, None, :]
        spikes = np.asarray(clock_driven(net, x, jnp.asarray(dt)))[:, 0, :]
        clock = [(np.flatnonzero(spikes[:, j]) + 1) * dt for j in range(3)]
        assert [len(t) for t in clock] == [len(t) for t in exact], f"dt={dt}: different spikes"
        err = np.concatenate([c - e for c, e in zip(clock, exact)])
        errors.append(np.mean(np.abs(err)))
    assert errors[0] < 3.0
    assert 4.0 < errors[0] / errors[1] < 25.0 and 4.0 < errors[1] / errors[2] < 25.0
