r"""Recurrent spiking network with a leaky readout (the e-prop / surrogate-gradient workhorse).

    drive_t = x_t W_in + s_{t-1} W_rec,     (state, s_t) = neuron.step(state, drive_t, dt)
    o_t     = kappa o_{t-1} + s_t W_out + b_out,   kappa = exp(-dt / tau_out)

Self-connections are excluded (the diagonal of `W_rec` is masked) unless `self_connections`.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._checks import as_float_array, as_optional_float, check_positive, check_shape, trainable_fields
from .._simulate.output import Record
from ..neurons._base import AbstractSpikingNeuron
from ..neurons._lif import LIF, LIFState
from ..surrogates._surrogates import AbstractSurrogate
from ..synapses._base import AbstractProjection
from ..synapses._dale import Dale
from ..synapses._dense import Dense
from ._base import AbstractFastScanNetwork, as_projection, check_sizes
from ._lif_scan import lif_scan, supports
from ._readout import leaky_readout, readout_decay


class RSNNState(eqx.Module):
    neuron: eqx.Module
    spikes: Float[Array, "*batch n_rec"]
    readout: Float[Array, "*batch n_out"]


class RSNN(AbstractFastScanNetwork):
    """Recurrent spiking network: `n_in` inputs -> `n_rec` spiking neurons -> `n_out` leaky readouts.

    **Arguments:**

    - `n_in, n_rec, n_out`: sizes.
    - `neuron`: a spiking neuron model (default `LIF()`); its parameters broadcast over `n_rec`.
    - `surrogate`: if given, replaces the neuron's surrogate.
    - `key`: PRNG key for the default weights `W_in ~ N(0, (in_scale/sqrt(n_in))^2)`,
      `W_rec ~ N(0, (rec_scale/sqrt(n_rec))^2)`, `W_out ~ N(0, (out_scale/sqrt(n_rec))^2)`.
    - `w_in [n_in, n_rec]`, `w_rec [n_rec, n_rec]`, `w_out [n_rec, n_out]`: explicit weights
      (arrays or projections, e.g. `simjax.synapses.Dale`).
    - `tau_out`: readout time constant (ms); `None` for a memoryless readout.
    - `trainable`: names of the fields learning rules update.
    """

    w_in: AbstractProjection
    w_rec: AbstractProjection
    w_out: AbstractProjection
    b_out: Float[Array, " n_out"]
    neuron: AbstractSpikingNeuron
    tau_out: Float[Array, ""] | None
    self_connections: bool = eqx.field(static=True)
    trainable: tuple[str, ...] = eqx.field(static=True)

    def __init__(self, n_in: int, n_rec: int, n_out: int, neuron: AbstractSpikingNeuron | None = None,
                 surrogate: AbstractSurrogate | None = None, *, key=None, w_in=None, w_rec=None, w_out=None,
                 b_out=None, tau_out=20.0, in_scale=2.0, rec_scale=1.0, out_scale=1.0,
                 self_connections: bool = False, trainable=("w_in", "w_rec", "w_out", "b_out")):
        check_sizes("RSNN", n_in=n_in, n_rec=n_rec, n_out=n_out)
        neuron = LIF() if neuron is None else neuron
        if not isinstance(neuron, AbstractSpikingNeuron):
            raise TypeError(f"RSNN: neuron must be a spiking neuron (e.g. simjax.neurons.LIF), got "
                            f"{type(neuron).__name__}")
        if surrogate is not None:
            neuron = eqx.tree_at(lambda n: n.surrogate, neuron, surrogate)
        if key is None and (w_in is None or w_rec is None or w_out is None):
            raise ValueError("RSNN: pass key=jax.random.key(...) to initialise the weights, or give w_in, w_rec and "
                             "w_out")
        k_in, k_rec, k_out = jax.random.split(key, 3) if key is not None else (None, None, None)
        if w_in is None:
            w_in = Dense.init(n_in, n_rec, key=k_in, scale=in_scale)
        if w_rec is None:
            w_rec = Dense.init(n_rec, n_rec, key=k_rec, scale=rec_scale, zero_diagonal=not self_connections)
        if w_out is None:
            w_out = Dense.init(n_rec, n_out, key=k_out, scale=out_scale)
        self.w_in = as_projection(w_in, (n_in, n_rec), "w_in", "RSNN")
        self.w_rec = as_projection(w_rec, (n_rec, n_rec), "w_rec", "RSNN")
        self.w_out = as_projection(w_out, (n_rec, n_out), "w_out", "RSNN")
        b_out = jnp.zeros((n_out,)) if b_out is None else b_out
        check_shape("b_out", b_out, (n_out,), owner="RSNN")
        self.b_out = as_float_array(b_out)
        self.neuron = neuron
        self.tau_out = as_optional_float(tau_out)
        check_positive("tau_out", self.tau_out, owner="RSNN")
        self.self_connections = self_connections
        self.trainable = trainable_fields(trainable, ("w_in", "w_rec", "w_out", "b_out", "neuron", "tau_out"),
                                          owner="RSNN")

    @property
    def n_in(self):
        return self.w_in.shape[0]

    @property
    def n_rec(self):
        return self.w_rec.shape[0]

    @property
    def n_out(self):
        return self.w_out.shape[1]

    def recurrent_projection(self) -> AbstractProjection:
        """`w_rec` with its diagonal masked unless `self_connections` (same projection type, so
        rules that wrap projections, e.g. feedback alignment, keep working through time)."""
        return self.w_rec if self.self_connections else self.w_rec.without_self_connections()

    def recurrent_weight(self) -> Float[Array, "n_rec n_rec"]:
        """The effective recurrent matrix as a dense array."""
        return self.recurrent_projection().dense()

    def init(self, key, batch_shape):
        dtype = jnp.result_type(self.b_out)
        return RSNNState(neuron=self.neuron.init(key, (*batch_shape, self.n_rec)),
                         spikes=jnp.zeros((*batch_shape, self.n_rec), dtype),
                         readout=jnp.zeros((*batch_shape, self.n_out), dtype))

    local_prepare: ClassVar[bool] = True

    def prepare(self, inputs, dt):
        # The input projection does not depend on the state: one large matmul over time x batch.
        return self.w_in(inputs)

    def step(self, state, drive_in, dt, *, w_rec=None, kappa=None):
        w_rec = self.recurrent_projection() if w_rec is None else w_rec
        kappa = readout_decay(self.tau_out, dt) if kappa is None else kappa
        drive = drive_in + w_rec(state.spikes)
        neuron_state, spikes = self.neuron.step(state.neuron, drive, dt)
        readout = leaky_readout(state.readout, self.w_out(spikes) + self.b_out, kappa)
        new = RSNNState(neuron=neuron_state, spikes=spikes, readout=readout)
        return new, Record(spikes=spikes, v=self.neuron.output(neuron_state), readout=readout)

    def step_fn(self, dt):
        """`step` with the loop-invariant quantities (masked `W_rec`, `kappa`) computed once."""
        w_rec, kappa = self.recurrent_projection(), readout_decay(self.tau_out, dt)
        return lambda state, x_t: self.step(state, x_t, dt, w_rec=w_rec, kappa=kappa)

    def fast_scan(self, inputs, dt, state, unroll=1):
        """The whole clock-driven run by `simjax.networks._lif_scan.lif_scan` (same dynamics and
        gradients), or `None` when this network is not eligible (see
        `simjax.networks._lif_scan.supports`).
        `inputs` are the raw inputs (not `prepare`'s output): dense (or Dale) input weights are
        applied inside the fast path, others here."""
        if not supports(self):
            return None
        n = self.neuron
        if any(jnp.ndim(p) > 1 or (jnp.ndim(p) == 1 and jnp.shape(p)[0] != self.n_rec)
               for p in (n.tau_mem, n.v_th, n.v_reset, n.v_rest, n.bias)):
            return None
        w_in = self.w_in.dense() if type(self.w_in) in (Dense, Dale) else None
        x = inputs if w_in is not None else self.w_in(inputs)
        dtype = jnp.result_type(x) if w_in is None else jnp.result_type(x, w_in)
        full = lambda p: jnp.broadcast_to(p, (self.n_rec,)).astype(dtype)  # noqa: E731
        a = jnp.exp(-dt / n.tau_mem)
        c = (1.0 - a) * (n.v_rest + n.bias)
        spikes, v, readout, (v_t, s_t, o_t) = lif_scan(
            n.reset_mode, unroll, x, w_in, self.recurrent_weight(), self.w_out.dense(), self.b_out,
            readout_decay(self.tau_out, dt), full(a), full(c), full(n.v_th), full(n.v_reset), n.surrogate,
            state.neuron.v, state.spikes, state.readout)
        neuron = LIFState(v=v_t, i=state.neuron.i, refractory=state.neuron.refractory)
        return Record(spikes=spikes, v=v, readout=readout), RSNNState(neuron=neuron, spikes=s_t, readout=o_t)

    def vector_field(self, t, state, inputs_t):
        raise NotImplementedError(f"{type(self).__name__} has no continuous-time form (spikes are jumps); "
                                  "use method='clock' or method='event'")

    def observe(self, state):
        raise NotImplementedError(f"{type(self).__name__} has no continuous-time form (spikes are jumps); "
                                  "use method='clock' or method='event'")
