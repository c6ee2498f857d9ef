r"""Recurrent rate network (the continuous-time RNN of Sompolinsky, Crisanti & Sommers 1988; used for
the interference study of Schuessler, Mastrogiuseppe, Ostojic & Barak):

    tau dx/dt = -x + phi(x) W_rec + u(t) W_in + b_rec,      z = phi(x) W_out + b_out

with an optional leaky readout `tau_out do/dt = -o + z` (`tau_out=None`: `o = z`).

Clock-driven `step` holds the drive `u_t W_in + phi(x_{t-1}) W_rec + b_rec` constant over the
step and integrates exactly (exponential Euler, first order in `dt`):

    x_t = a x_{t-1} + (1 - a) drive_t,     a = exp(-dt / tau)
    o_t = kappa o_{t-1} + (1 - kappa) z_t, kappa = exp(-dt / tau_out)   (o_t = z_t without tau_out)

so that it converges to the ODE solution (`simulate(..., method="ode")`) as `dt -> 0`. With
`simjax.neurons.InstantaneousRate` units the step is the discrete-time (Elman) RNN
`x_t = phi(x_{t-1}) W_rec + u_t W_in + b_rec`.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PyTree

from .._checks import as_float_array, as_optional_float, check_positive, check_shape, trainable_fields
from .._simulate.output import Record
from ..neurons._base import AbstractRateNeuron
from ..neurons._rate import LeakyRate
from ..synapses._base import AbstractProjection
from ..synapses._dense import Dense
from ._base import AbstractNetwork, as_projection, check_sizes
from ._readout import readout_decay

_FIELDS = ("w_in", "w_rec", "w_out", "b_rec", "b_out", "neuron", "tau_out")


class RateRNNState(eqx.Module):
    """`neuron`: the units' state (`x` for `LeakyRate`); `readout`: `o` (`[*batch, n_out]`)."""

    neuron: PyTree[Array]
    readout: Float[Array, "*batch n_out"]


class RateRNN(AbstractNetwork):
    """Continuous-time recurrent rate network (equations in the module docstring).

    **Arguments:**

    - `n_in, n_rec, n_out`: sizes.
    - `neuron`: a rate neuron (default `LeakyRate(tau=10.0, activation="tanh")`); its parameters
      broadcast over `n_rec`.
    - `key`: PRNG key for the default weights: `W_rec = g chi / sqrt(n_rec)` with
      `chi_ij ~ N(0, 1)` (`g` is the strength of the random initial connectivity),
      `W_in ~ N(0, in_scale^2 / n_in)`, `W_out ~ N(0, out_scale^2 / n_rec)`.
    - `w_in [n_in, n_rec]`, `w_rec [n_rec, n_rec]`, `w_out [n_rec, n_out]`: explicit weights
      (arrays or projections); `b_rec [n_rec]`, `b_out [n_out]`: biases (default 0).
    - `tau_out`: readout time constant (ms); `None` (default) for the memoryless readout `o = z`.
    - `trainable`: names of the fields learning rules update.
    """

    w_in: AbstractProjection
    w_rec: AbstractProjection
    w_out: AbstractProjection
    b_rec: Float[Array, " n_rec"]
    b_out: Float[Array, " n_out"]
    neuron: AbstractRateNeuron
    tau_out: Float[Array, ""] | None
    trainable: tuple[str, ...] = eqx.field(static=True)

    def __init__(self, n_in: int, n_rec: int, n_out: int, neuron: AbstractRateNeuron | None = None, *,
                 key=None, w_in=None, w_rec=None, w_out=None, b_rec=None, b_out=None, g=1.0,
                 in_scale=1.0, out_scale=1.0, tau_out=None,
                 trainable=("w_in", "w_rec", "w_out", "b_rec", "b_out")):
        check_sizes("RateRNN", n_in=n_in, n_rec=n_rec, n_out=n_out)
        neuron = LeakyRate() if neuron is None else neuron
        if not isinstance(neuron, AbstractRateNeuron):
            raise TypeError(f"RateRNN: neuron must be a rate neuron (e.g. simjax.neurons.LeakyRate), "
                            f"got {type(neuron).__name__}")
        if key is None and (w_in is None or w_rec is None or w_out is None):
            raise ValueError("RateRNN: pass key=jax.random.key(...) to initialise the weights, or give w_in, "
                             "w_rec and w_out")
        check_positive("g", g, allow_zero=True, owner="RateRNN")
        k_in, k_rec, k_out = jax.random.split(key, 3) if key is not None else (None, None, None)
        if w_in is None:
            w_in = Dense.init(n_in, n_rec, key=k_in, scale=in_scale)
        if w_rec is None:
            w_rec = Dense.init(n_rec, n_rec, key=k_rec, scale=g)
        if w_out is None:
            w_out = Dense.init(n_rec, n_out, key=k_out, scale=out_scale)
        self.w_in = as_projection(w_in, (n_in, n_rec), "w_in", "RateRNN")
        self.w_rec = as_projection(w_rec, (n_rec, n_rec), "w_rec", "RateRNN")
        self.w_out = as_projection(w_out, (n_rec, n_out), "w_out", "RateRNN")
        b_rec = jnp.zeros((n_rec,)) if b_rec is None else b_rec
        b_out = jnp.zeros((n_out,)) if b_out is None else b_out
        check_shape("b_rec", b_rec, (n_rec,), owner="RateRNN")
        check_shape("b_out", b_out, (n_out,), owner="RateRNN")
        self.b_rec = as_float_array(b_rec)
        self.b_out = as_float_array(b_out)
        self.neuron = neuron
        self.tau_out = as_optional_float(tau_out)
        check_positive("tau_out", self.tau_out, owner="RateRNN")
        self.trainable = trainable_fields(trainable, _FIELDS, owner="RateRNN")

    @property
    def n_in(self):
        return self.w_in.shape[0]

    @property
    def n_rec(self):
        return self.w_rec.shape[0]

    @property
    def n_out(self):
        return self.w_out.shape[1]

    def init(self, key, batch_shape):
        dtype = jnp.result_type(self.b_out)
        return RateRNNState(neuron=self.neuron.init(key, (*batch_shape, self.n_rec)),
                            readout=jnp.zeros((*batch_shape, self.n_out), dtype))

    local_prepare: ClassVar[bool] = True

    def prepare(self, inputs, dt):
        # State-independent part of the drive, for every step at once.
        return self.w_in(inputs) + self.b_rec

    def _readout(self, rates):
        return self.w_out(rates) + self.b_out

    def _v(self, neuron_state):
        return neuron_state if isinstance(neuron_state, jax.Array) else self.neuron.output(neuron_state)

    def step(self, state, drive_in, dt, *, kappa=None):
        kappa = readout_decay(self.tau_out, dt) if kappa is None else kappa
        drive = drive_in + self.w_rec(self.neuron.output(state.neuron))
        neuron_state, rates = self.neuron.step(state.neuron, drive, dt)
        z = self._readout(rates)
        readout = kappa * state.readout + (1.0 - kappa) * z
        new = RateRNNState(neuron=neuron_state, readout=readout)
        return new, Record(spikes=rates, v=self._v(neuron_state), readout=readout)

    def step_fn(self, dt):
        """`step` with the readout decay computed once."""
        kappa = readout_decay(self.tau_out, dt)
        return lambda state, drive_t: self.step(state, drive_t, dt, kappa=kappa)

    def vector_field(self, t, state, inputs_t):
        """`d state / dt` for the input `inputs_t [*batch, n_in]` at time `t`."""
        rates = self.neuron.output(state.neuron)
        drive = self.w_in(inputs_t) + self.w_rec(rates) + self.b_rec
        d_neuron = self.neuron.vector_field(t, state.neuron, drive)
        if self.tau_out is None:
            d_readout = jnp.zeros_like(state.readout)
        else:
            d_readout = (self._readout(rates) - state.readout) / self.tau_out
        return RateRNNState(neuron=d_neuron, readout=d_readout)

    def observe(self, state):
        """The `Record` of a state: rates, `x` and the readout (`z` when memoryless)."""
        rates = self.neuron.output(state.neuron)
        readout = self._readout(rates) if self.tau_out is None else state.readout
        return Record(spikes=rates, v=self._v(state.neuron), readout=readout)
