r"""`SpikeTimeTargets`: fixed input spikes, a target spike time for every neuron (Klos & Memmesheimer
2025's single-neuron and recurrent-network tasks).

The loss is `simjax.losses.spike_time_loss` on each neuron's first `k` spike times with
pseudospikes (so gradient descent adds missing spikes), `inf` targets asking for no spike (such a
spike is pushed out through `t1`).
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._checks import check_positive
from .._simulate.simulate import Output, simulate
from .._spike_train import SpikeTrain
from ..losses._spike_times import spike_time_loss, spike_times_per_neuron
from ..networks._spiking_feedforward import SpikingFeedForward
from ._base import AbstractTask, Batch


class SpikeTimeTargets(AbstractTask):
    r"""Learn target spike times from one fixed input spike train.

    **Arguments:**

    - `inputs`: the input `simjax.SpikeTrain` (no batch axis).
    - `targets`: `[n, k]` target times of each neuron's first `k` spikes (`inf`: no spike).
    - `t1`: trial end. `pseudo_drive`: current added after `t1` (pseudodynamics).
    - `max_events`, `max_pseudospikes`: event budgets for a `simjax.networks.RSNN` (a
      `SpikingFeedForward` needs none and supports `k = 1`: first spikes).

    **Metrics:** `loss`, `rms_error` (timing error over the finite targets, pseudospikes
    included), `spike_count_error` (trial spikes that are missing or extra).
    """

    inputs: SpikeTrain
    targets: Float[Array, "n k"]
    t1: float = eqx.field(static=True)
    pseudo_drive: float = eqx.field(static=True)
    max_events: int = eqx.field(static=True)
    max_pseudospikes: int | None = eqx.field(static=True)
    dt: float = eqx.field(static=True)

    def __init__(self, inputs: SpikeTrain, targets, *, t1: float, pseudo_drive: float = 10.0,
                 max_events: int = 256, max_pseudospikes: int | None = None):
        if not isinstance(inputs, SpikeTrain) or inputs.times.ndim != 1:
            raise TypeError("SpikeTimeTargets: inputs must be one simjax.SpikeTrain without batch axes")
        targets = jnp.asarray(targets, dtype=jnp.result_type(float))
        if targets.ndim != 2:
            raise ValueError(f"SpikeTimeTargets: targets must be [n, k] (k target spikes per neuron), got shape "
                             f"{targets.shape}")
        check_positive("t1", t1, owner="SpikeTimeTargets")
        check_positive("pseudo_drive", pseudo_drive, owner="SpikeTimeTargets")
        self.inputs, self.targets = inputs, targets
        self.t1, self.pseudo_drive = float(t1), float(pseudo_drive)
        self.max_events, self.max_pseudospikes, self.dt = int(max_events), max_pseudospikes, float(t1)

    def sample(self, key, batch_size):
        """The fixed trial repeated `batch_size` times."""
        shape = (batch_size, self.inputs.times.shape[0])
        inputs = SpikeTrain(jnp.broadcast_to(self.inputs.times, shape), jnp.broadcast_to(self.inputs.ids, shape),
                            n=self.inputs.n)
        return Batch(inputs=inputs, targets=jnp.broadcast_to(self.targets, (batch_size, *self.targets.shape)))

    def forward(self, model, batch, key=None, **simulate_kwargs):
        if isinstance(model, SpikingFeedForward):
            if self.targets.shape[1] != 1:
                raise ValueError("SpikeTimeTargets: a SpikingFeedForward network emits one spike per neuron; "
                                 f"targets have k={self.targets.shape[1]}")
            return simulate(model, batch.inputs, method="event", t1=self.t1, pseudo_drive=self.pseudo_drive,
                            **simulate_kwargs)
        return simulate(model, batch.inputs, method="event", t1=self.t1, pseudo_drive=self.pseudo_drive,
                        max_events=self.max_events, max_pseudospikes=self.max_pseudospikes, key=key,
                        **simulate_kwargs)

    def spike_times(self, outputs: Output) -> Float[Array, "batch n k"]:
        """Each neuron's first `k` spike or pseudospike times."""
        if "first_spike_times" in outputs.info:
            return outputs.info["first_spike_times"][-1][..., None]
        return spike_times_per_neuron(outputs.spikes, outputs.info["pseudospikes"], k=self.targets.shape[1])

    def loss(self, outputs: Output, batch: Batch) -> Float[Array, ""]:
        return spike_time_loss(self.spike_times(outputs), batch.targets, t_missing=2 * self.t1, t1=self.t1)

    def metrics(self, outputs: Output, batch: Batch) -> dict:
        times = self.spike_times(outputs)
        targets = jnp.asarray(batch.targets)
        used = jnp.isfinite(targets)
        error = jnp.where(used, times - jnp.where(used, targets, 0.0), 0.0)
        rms = jnp.sqrt(jnp.sum(error**2) / jnp.maximum(jnp.sum(used), 1))
        wrong = jnp.sum((times <= self.t1) != used) / times.shape[0]
        return {"loss": self.loss(outputs, batch), "rms_error": rms, "spike_count_error": wrong}
