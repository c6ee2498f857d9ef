r"""Layered spiking network whose output layer spikes too: `sizes = (n_in, h_1, ..., h_L, n_out)`.

Every layer `l = 1..L+1` is a population of spiking neurons driven by the spikes of layer `l - 1`
(layer 0: the input channels) through `W_l` (a spike of neuron `i` of layer `l - 1` calls
`receive(W_l[i])` on layer `l`; no synaptic delay, no recurrence). The output is the spike
times of the last layer, e.g. read out by time-to-first-spike (the earliest output neuron wins).

Simulated event-driven with `simulate(net, spike_train, method="event", t1=...)` (exact spike
times and gradients, optionally with pseudodynamics after `t1`: `simjax._simulate.event_layers`), or
clock-driven with `simulate(net, x, dt=...)` (surrogate gradients; `spikes` and `v` record the
output layer).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import equinox as eqx
import jax
from jaxtyping import Array, PyTree

from .._checks import trainable_fields
from .._simulate.output import Record
from ..neurons._base import AbstractSpikingNeuron
from ..neurons._lif import half_synaptic_lif
from ..synapses._base import AbstractProjection
from ..synapses._dense import Dense
from ._base import AbstractLayeredNetwork, as_projection, check_sizes

_FIELDS = ("layers", "neurons")


class SpikingFeedForward(AbstractLayeredNetwork):
    """Feed-forward network of spiking layers, the last one included (see the module docstring).

    **Arguments:**

    - `sizes`: `(n_in, h_1, ..., h_L, n_out)` (at least `(n_in, n_out)`).
    - `neuron`: a spiking neuron shared by every layer, or a sequence with one per layer.
    - `key`: PRNG key for the default weights `W_l ~ N(mean_l, scale_l^2 / n_{l-1})`.
    - `weights`: optional sequence of `len(sizes) - 1` arrays/projections (`None` entries drawn).
    - `scale`, `mean`: the default weights' scale and mean, one number or one per layer.
    - `trainable`: fields learning rules update, among `"layers"` and `"neurons"`.
    """

    layers: tuple[AbstractProjection, ...]
    neurons: tuple[AbstractSpikingNeuron, ...]
    trainable: tuple[str, ...] = eqx.field(static=True)
    closed_form: tuple[bool, ...] = eqx.field(static=True)

    def __init__(self, sizes: Sequence[int], neuron, *, key=None, weights=None, scale=1.0, mean=0.0,
                 trainable=("layers",)):
        sizes = tuple(sizes)
        if len(sizes) < 2:
            raise ValueError(f"SpikingFeedForward: sizes must hold at least (n_in, n_out), got {sizes!r}")
        check_sizes("SpikingFeedForward", **{f"sizes[{i}]": n for i, n in enumerate(sizes)})
        n_layers = len(sizes) - 1
        neurons = tuple(neuron) if isinstance(neuron, (list, tuple)) else (neuron,) * n_layers
        weights = (None,) * n_layers if weights is None else tuple(weights)
        per_layer = lambda x: tuple(x) if isinstance(x, (list, tuple)) else (x,) * n_layers
        scales, means = per_layer(scale), per_layer(mean)
        for name, seq in (("neuron", neurons), ("weights", weights), ("scale", scales), ("mean", means)):
            if len(seq) != n_layers:
                raise ValueError(f"SpikingFeedForward: {name} has {len(seq)} entries, expected {n_layers} "
                                 f"(one per layer of sizes {sizes})")
        for n in neurons:
            if not isinstance(n, AbstractSpikingNeuron):
                raise TypeError(f"SpikingFeedForward: neuron must be a spiking neuron (e.g. simjax.neurons.QIF), "
                                f"got {type(n).__name__}")
        if key is None and any(w is None for w in weights):
            raise ValueError("SpikingFeedForward: pass key=jax.random.key(...) to initialise the weights, or "
                             "give every layer's weights")
        keys = jax.random.split(key, n_layers) if key is not None else (None,) * n_layers
        layers = []
        for l, (n_pre, n_post) in enumerate(zip(sizes[:-1], sizes[1:])):
            w = weights[l]
            if w is None:
                w = Dense(Dense.init(n_pre, n_post, key=keys[l], scale=scales[l]).weight + means[l])
            layers.append(as_projection(w, (n_pre, n_post), f"weights[{l}]", "SpikingFeedForward"))
        self.layers, self.neurons = tuple(layers), neurons
        self.trainable = trainable_fields(trainable, _FIELDS, owner="SpikingFeedForward")
        # Static per layer (set while the values are concrete, as LIF's refractoriness flag): LIF with
        # tau_syn = tau_mem / 2 has a closed-form first crossing, used unless neuron parameters learn.
        self.closed_form = tuple("neurons" not in self.trainable and half_synaptic_lif(n) for n in neurons)

    def init(self, key, batch_shape) -> tuple[PyTree[Array], ...]:
        """One neuron state per layer (each at its neuron's rest)."""
        return tuple(n.init(key, (*batch_shape, p.shape[1])) for n, p in zip(self.neurons, self.layers))

    local_prepare: ClassVar[bool] = True

    def prepare(self, inputs, dt):
        return inputs

    def step(self, state, drive_in, dt):
        out, states, v = drive_in, [], None
        for l, neuron in enumerate(self.neurons):
            s, out = neuron.step(state[l], self.layers[l](out), dt)
            states.append(s)
            v = neuron.output(s)
        return tuple(states), Record(spikes=out, v=v, readout=None)

    def step_fn(self, dt):
        return lambda state, drive_t: self.step(state, drive_t, dt)

    def vector_field(self, t, state, inputs_t):
        raise NotImplementedError("SpikingFeedForward has no continuous-time form (spikes are jumps); use "
                                  "method='clock' or method='event'")

    def observe(self, state):
        raise NotImplementedError("SpikingFeedForward has no continuous-time form (spikes are jumps); use "
                                  "method='clock' or method='event'")
