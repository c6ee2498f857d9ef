"""What a simulation returns: `Record` (one clock-driven step) and `Output` (a whole run).

This module sits at the bottom of the import graph: networks, tasks and rules import these types,
and the simulators build them.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
from jaxtyping import Array, Float, PyTree

from .._spike_train import SpikeTrain


class Record(eqx.Module):
    """What one clock-driven step exposes: spikes (or rates), the state observable, the readout
    (`None` for what a network or a simulation does not record), and, for networks that place
    spikes between grid points, `spike_lag`: the time from each spike to the end of its step."""

    spikes: Float[Array, "*batch n"] | None
    v: Float[Array, "*batch n"] | None
    readout: Float[Array, "*batch n_out"] | None
    spike_lag: Float[Array, "*batch n"] | None = None


class Output(eqx.Module):
    """The result of `simjax.simulate`.

    - `spikes`: `[time, *batch, n]` spikes or rates (clock-driven and ODE), or a
      `simjax.SpikeTrain` of spike times (event-driven);
    - `v`: `[time, *batch, n]` the state observable (membrane potential or activation);
    - `readout`: `[time, *batch, n_out]`;
    - `final_state`: the network state at the end (`None` where a method does not define one);
    - `info`: method-specific extras (event counts, first-spike times, readout times; clock-driven
      networks that place spikes between grid points add `spike_lag`, `[time, *batch, n]`: the
      time from each spike to the end of its step, so step `k` spikes at `(k + 1) dt - lag`).

    Fields that were not recorded are `None`.
    """

    spikes: Float[Array, "time *batch n"] | SpikeTrain | None
    v: Float[Array, "time *batch n"] | None
    readout: Float[Array, "time *batch n_out"] | None
    final_state: PyTree[Array] | None
    info: dict[str, Any]
