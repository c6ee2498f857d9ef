r"""`pseudospike_times`: where silent neurons would spike after the trial under the pseudodynamics.

After the trial end `t1` each neuron's constant current is raised by `drive` (Klos &
Memmesheimer, Phys. Rev. Lett. 2025), so that every neuron eventually fires. For QIF neurons the
time `t1 + T` of the first such *pseudospike* from the phase `theta(t1)` is the closed form of
`simjax.neurons.QIF.time_to_spike` with `I = bias + drive > 0`:

    T = tau_mem atan2(sqrt(I) cos(theta/2), sin(theta/2)) / sqrt(I)

a smooth function of `theta(t1)` that tends to 0 when the trial's last spike approaches `t1`
from inside the trial: spike times continue through the trial end. Networks get pseudospikes from
`simulate(..., method="event", pseudo_drive=...)`; this function serves uncoupled neurons.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from jaxtyping import Array, Float, PyTree

from ..neurons._base import AbstractEventNeuron
from .spike_times import spike_times


def pseudospike_times(neuron: AbstractEventNeuron, state: PyTree[Array], *, t1: Any, drive: Any,
                      max_spikes: int = 1, horizon: Any = 1e3) -> Float[Array, "*pop max_spikes"]:
    r"""The first `max_spikes` pseudospike times (`> t1`) of uncoupled neurons in `state` at `t1`.

    **Arguments:**

    - `neuron`: a spiking neuron with the event-driven methods and a `bias` (QIF, LIF, ALIF).
    - `state`: the neurons' state at the trial end `t1`. `drive`: the current added after `t1`.
    - `max_spikes`: how many pseudospikes per neuron. `horizon`: how long after `t1` to look
      (`inf` padding beyond it).

    **Returns:** `[*pop, max_spikes]` absolute times, increasing, differentiable in the state,
    the neuron's parameters and `drive`.
    """
    return jnp.asarray(t1) + spike_times(neuron, current=drive, t1=horizon, max_spikes=max_spikes, state=state)
