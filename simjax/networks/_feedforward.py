r"""Layered feed-forward network: `sizes = (n_in, h_1, ..., h_L, n_out)`.

Hidden layer `l` (`l = 1..L`) is a population of neurons driven by the previous layer's output
of the *same* step (no synaptic delay), the output layer is a readout:

    drive_l = r_{l-1} W_l + b_l,     (state_l, r_l) = neuron_l.step(state_l, drive_l, dt),   r_0 = x_t
    o_t     = kappa o_{t-1} + r_L W_out + b_out,   kappa = exp(-dt / tau_out)   (o_t = z_t without tau_out)

The same class covers

- static MLPs: `neuron="relu"` (or any activation name) gives `simjax.neurons.InstantaneousRate`
  units, so each time step is the independent map `x -> phi(... phi(x W_1 + b_1) ...) W_out + b_out`
  (inputs `[time, batch, n_in]` with possibly `time = 1`; see also `FeedForward.forward_layers`);
- spiking feed-forward nets: `neuron=LIF(...)` with per-layer membrane state over time (the
  bias is added to the drive of every step, i.e. a constant jump per step for delta synapses);
- leaky rate layers: `neuron=LeakyRate(...)`.

The projections live in the tuple `layers` (`layers[-1]` is the readout `W_out`) and the
biases in `biases` (`biases[-1] = b_out`), so learning rules can swap or wrap projections.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PyTree

from .._checks import as_float_array, as_optional_float, check_positive, check_shape, trainable_fields
from .._simulate.output import Record
from ..neurons._base import AbstractNeuron, AbstractRateNeuron, AbstractSpikingNeuron
from ..neurons._rate import InstantaneousRate
from ..surrogates._surrogates import AbstractSurrogate
from ..synapses._base import AbstractProjection
from ..synapses._dense import Dense
from ._base import AbstractLayeredNetwork, as_projection, check_sizes
from ._readout import leaky_readout, readout_decay

_FIELDS = ("layers", "biases", "neurons", "tau_out")


class FeedForwardState(eqx.Module):
    """`layers`: one neuron state per hidden layer; `readout`: `o` (`[*batch, n_out]`)."""

    layers: tuple[PyTree[Array], ...]
    readout: Float[Array, "*batch n_out"]


class LayerActivity(eqx.Module):
    """One layer of a static forward pass: `drive = r_{l-1} W_l + b_l` and `rate = phi(drive)`
    (for the readout layer, `rate = drive = z`)."""

    drive: Float[Array, "... n"]
    rate: Float[Array, "... n"]


def _neurons(neuron, surrogate, n_hidden) -> tuple[AbstractNeuron, ...]:
    if isinstance(neuron, (list, tuple)):
        if len(neuron) != n_hidden:
            raise ValueError(f"FeedForward: got {len(neuron)} neurons for {n_hidden} hidden layers")
        neurons = tuple(neuron)
    else:
        neurons = (neuron,) * n_hidden
    out = []
    for n in neurons:
        if isinstance(n, str):
            n = InstantaneousRate(n)
        if not isinstance(n, AbstractNeuron):
            raise TypeError(f"FeedForward: neuron must be an activation name (e.g. 'relu') or a simjax neuron, "
                            f"got {n!r}")
        if surrogate is not None:
            if not isinstance(n, AbstractSpikingNeuron):
                raise TypeError(f"FeedForward: surrogate given but the neuron {type(n).__name__} does not spike")
            n = eqx.tree_at(lambda m: m.surrogate, n, surrogate)
        out.append(n)
    return tuple(out)


class FeedForward(AbstractLayeredNetwork):
    """Feed-forward network of rate or spiking layers with a readout (equations in the module docstring).

    **Arguments:**

    - `sizes`: `(n_in, h_1, ..., h_L, n_out)`; `L = 0` gives a single linear readout layer.
    - `neuron`: an activation name (`"relu"`, `"tanh"`, `"softplus"`, `"sigmoid"`,
      `"linear"`: memoryless units, a static MLP), a neuron shared by all hidden layers, or a
      sequence with one neuron per hidden layer.
    - `surrogate`: if given, replaces the spiking neurons' surrogate.
    - `key`: PRNG key for the default weights `W_l ~ N(0, scale_l^2 / n_{l-1})`.
    - `weights`: optional sequence of `len(sizes) - 1` arrays/projections (`None` entries are
      drawn); `biases`: optional sequence of bias vectors (default zeros).
    - `scale`: weight scale, one number or one per layer.
    - `tau_out`: readout time constant (ms); `None` (default): memoryless readout `o = z`.
    - `trainable`: fields learning rules update, among `"layers"`, `"biases"`, `"neurons"`,
      `"tau_out"`.

    **Recorded** (`simjax.simulate`): `spikes` = the output (spikes or rates) of the *last hidden
    layer*, `v` = its state observable (membrane potential, or `x` for rate units), `readout` =
    `o`. With no hidden layer, `spikes` and `v` are `None`.
    """

    layers: tuple[AbstractProjection, ...]
    biases: tuple[Float[Array, " n"], ...]
    neurons: tuple[AbstractNeuron, ...]
    tau_out: Float[Array, ""] | None
    trainable: tuple[str, ...] = eqx.field(static=True)

    def __init__(self, sizes: Sequence[int], neuron="relu", surrogate: AbstractSurrogate | None = None, *,
                 key=None, weights=None, biases=None, scale=1.0, tau_out=None,
                 trainable=("layers", "biases")):
        sizes = tuple(sizes)
        if len(sizes) < 2:
            raise ValueError(f"FeedForward: sizes must hold at least (n_in, n_out), got {sizes!r}")
        check_sizes("FeedForward", **{f"sizes[{i}]": n for i, n in enumerate(sizes)})
        n_layers = len(sizes) - 1
        weights = (None,) * n_layers if weights is None else tuple(weights)
        biases = (None,) * n_layers if biases is None else tuple(biases)
        scales = tuple(scale) if isinstance(scale, (list, tuple)) else (scale,) * n_layers
        for name, seq in (("weights", weights), ("biases", biases), ("scale", scales)):
            if len(seq) != n_layers:
                raise ValueError(f"FeedForward: {name} has {len(seq)} entries, expected {n_layers} "
                                 f"(one per layer of sizes {sizes})")
        if key is None and any(w is None for w in weights):
            raise ValueError("FeedForward: pass key=jax.random.key(...) to initialise the weights, or give "
                             "every layer's weights")
        keys = jax.random.split(key, n_layers) if key is not None else (None,) * n_layers
        layers, bs = [], []
        for l, (n_pre, n_post) in enumerate(zip(sizes[:-1], sizes[1:])):
            w = weights[l]
            if w is None:
                w = Dense.init(n_pre, n_post, key=keys[l], scale=scales[l])
            layers.append(as_projection(w, (n_pre, n_post), f"weights[{l}]", "FeedForward"))
            b = jnp.zeros((n_post,)) if biases[l] is None else biases[l]
            check_shape(f"biases[{l}]", b, (n_post,), owner="FeedForward")
            bs.append(as_float_array(b))
        self.layers = tuple(layers)
        self.biases = tuple(bs)
        self.neurons = _neurons(neuron, surrogate, n_layers - 1)
        self.tau_out = as_optional_float(tau_out)
        check_positive("tau_out", self.tau_out, owner="FeedForward")
        self.trainable = trainable_fields(trainable, _FIELDS, owner="FeedForward")

    @property
    def is_static(self) -> bool:
        """True when every hidden layer is memoryless (`InstantaneousRate`) and the readout has no leak."""
        return self.tau_out is None and all(isinstance(n, InstantaneousRate) for n in self.neurons)

    def init(self, key, batch_shape):
        keys = jax.random.split(key, max(len(self.neurons), 1)) if key is not None else [None] * len(self.neurons)
        states = tuple(n.init(k, (*batch_shape, p.shape[1]))
                       for n, k, p in zip(self.neurons, keys, self.layers[:-1]))
        dtype = jnp.result_type(self.biases[-1])
        return FeedForwardState(layers=states, readout=jnp.zeros((*batch_shape, self.n_out), dtype))

    local_prepare: ClassVar[bool] = True

    def prepare(self, inputs, dt):
        # The first projection does not depend on the state: one large matmul over time x batch.
        return self.layers[0](inputs) + self.biases[0]

    @staticmethod
    def _v(neuron, state):
        if isinstance(neuron, AbstractRateNeuron) and isinstance(state, jax.Array):
            return state
        return neuron.output(state)

    def step(self, state, drive_in, dt, *, kappa=None):
        kappa = readout_decay(self.tau_out, dt) if kappa is None else kappa
        drive, states, out, v = drive_in, [], None, None
        for l, neuron in enumerate(self.neurons):
            if l > 0:
                drive = self.layers[l](out) + self.biases[l]
            s, out = neuron.step(state.layers[l], drive, dt)
            states.append(s)
            v = self._v(neuron, s)
        z = drive if not self.neurons else self.layers[-1](out) + self.biases[-1]
        readout = leaky_readout(state.readout, z, kappa)
        new = FeedForwardState(layers=tuple(states), readout=readout)
        return new, Record(spikes=out, v=v, readout=readout)

    def step_fn(self, dt):
        """`step` with the readout decay computed once."""
        kappa = readout_decay(self.tau_out, dt)
        return lambda state, drive_t: self.step(state, drive_t, dt, kappa=kappa)

    def forward_layers(self, x: Float[ArrayLike, "... n_in"]) -> tuple[LayerActivity, ...]:
        """Every layer's activity for a static network (memoryless units, no readout leak).

        **Arguments:** `x [..., n_in]` (any leading axes).

        **Returns:** one `LayerActivity` per layer (hidden layers, then the readout), so that local
        rules (Hebbian, Oja, BCM, DFA) see the pre- and post-synaptic activities.
        """
        if not self.is_static:
            raise TypeError("FeedForward.forward_layers needs a static network (activation-name neurons and "
                            "tau_out=None); simulate time-dependent networks with simjax.simulate")
        x = jnp.asarray(x)
        if x.ndim < 1 or x.shape[-1] != self.n_in:
            raise ValueError(f"FeedForward: input has shape {x.shape}, expected [..., {self.n_in}]")
        acts, r = [], x
        for l, neuron in enumerate(self.neurons):
            drive = self.layers[l](r) + self.biases[l]
            r = neuron.phi(drive)
            acts.append(LayerActivity(drive=drive, rate=r))
        z = self.layers[-1](r) + self.biases[-1]
        acts.append(LayerActivity(drive=z, rate=z))
        return tuple(acts)

    def __call__(self, x: Float[ArrayLike, "... n_in"]) -> Float[Array, "... n_out"]:
        """The readout of a static network for inputs `x [..., n_in]`."""
        return self.forward_layers(x)[-1].rate

    def vector_field(self, t, state, inputs_t):
        """Continuous-time dynamics for layers of rate neurons with a memoryless readout."""
        if self.tau_out is not None or any(isinstance(n, AbstractSpikingNeuron) for n in self.neurons):
            raise NotImplementedError("FeedForward has a continuous-time (method='ode') form only for rate "
                                      "neurons with tau_out=None; spiking layers need method='clock' or 'event'")
        r, d_states = inputs_t, []
        for l, neuron in enumerate(self.neurons):
            drive = self.layers[l](r) + self.biases[l]
            d_states.append(neuron.vector_field(t, state.layers[l], drive))
            r = neuron.output(state.layers[l])
        return FeedForwardState(layers=tuple(d_states), readout=jnp.zeros_like(state.readout))

    def observe(self, state):
        """The `Record` of a state (see `vector_field` for which networks have one)."""
        if self.tau_out is not None or any(isinstance(n, AbstractSpikingNeuron) for n in self.neurons):
            raise NotImplementedError("FeedForward has a continuous-time (method='ode') form only for rate "
                                      "neurons with tau_out=None")
        if not self.neurons:
            raise NotImplementedError("FeedForward without hidden layers has no state to integrate")
        last, s = self.neurons[-1], state.layers[-1]
        r = last.output(s)
        return Record(spikes=r, v=self._v(last, s), readout=self.layers[-1](r) + self.biases[-1])
