r"""`simulate`: integrate a network clock-driven (`lax.scan`), event-driven (exact spike times) or as
an ODE (`diffrax.diffeqsolve`). One network definition serves every method that makes sense for it.
"""

from __future__ import annotations

from typing import Literal

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, PyTree

from .._checks import check_choice, check_int, check_positive, finite_flag, with_flag
from .._custom_types import RealScalarLike
from .._spike_train import SpikeTrain
from ..networks._base import AbstractNetwork
from .clock import RECORDABLE, Memory, simulate_clock
from .event import simulate_event
from .ode import simulate_ode
from .output import Output

Method = Literal["clock", "event", "ode"]


def simulate(net: AbstractNetwork, inputs: Float[ArrayLike, "time *batch n_in"] | SpikeTrain, *,
             method: Method = "clock", dt: RealScalarLike | None = None, t1: RealScalarLike | None = None,
             state: PyTree[Array] | None = None, key: PRNGKeyArray | None = None,
             record: tuple[str, ...] = RECORDABLE, stride: int = 1, memory: Memory = "store",
             segment: int = 50, unroll: int = 1, checks: bool = True, time_axis: int = 0,
             **method_kwargs) -> Output:
    r"""Integrates `net` driven by `inputs`.

    **Arguments:**

    - `net`: a network (`simjax.networks.RSNN`, `RateRNN`, `FeedForward`, ...).
    - `inputs`: `[time, *batch, n_in]` array (clock-driven; continuous-time methods interpolate
      it on the grid `k dt`), or a `simjax.SpikeTrain` for `method="event"`.
    - `method`: `"clock"` (`lax.scan`, the surrogate-gradient path), `"event"` (exact spike
      times, gradients by the implicit function theorem), `"ode"` (`diffrax.diffeqsolve`).
    - `dt`: time step (ms) of the clock-driven grid. `t1`: end time (event/ode).
    - `state`: initial state (default `net.init(key, batch)`).
    - `record`: which of `"spikes"`, `"v"`, `"readout"` to keep; `stride`: keep every
      `stride`-th step.
    - `memory` (clock-driven, for gradients): `"store"` (default, fastest) keeps what the
      backward pass needs for every step; `"checkpoint"` keeps the state only every `segment`
      steps and recomputes each segment in the backward pass (memory ~ T/segment + segment states;
      for long sequences); `"recompute"` keeps the state of every step and recomputes the rest,
      always through the generic step (autodiff of `step`, also for forward-mode `jax.jvp`).
      Networks with a fast path (`RSNN` of current-free, non-refractory `LIF` neurons, see
      `simjax.networks._lif_scan`) use it under `"store"` and inside each `"checkpoint"` segment:
      it keeps one float trace (the pre-reset voltage, which its backward pass overwrites with
      the adjoint) and the spikes as bytes, and computes weight gradients as large matmuls over
      time x batch, with the same gradients as autodiff. It is reverse-mode only
      (`jax.grad`, and forward-over-reverse Hessian-vector products); for `jax.jvp`/`jacfwd`
      through such a network use `memory="recompute"`.
    - `unroll`: `lax.scan` unroll factor. `checks`: validate shapes and reject NaN inputs.
    - `time_axis`: the axis of `inputs` that is time (default 0, time first; `time_axis=1` for
      batch-first `[batch, time, n_in]` arrays). Outputs are always time first.
    - `method_kwargs`: passed to the method: `max_events` (the static event budget; running out
      raises unless `on_exhausted="flag"`), `record_dt` (readout sampling grid), and
      `pseudo_drive`/`max_pseudospikes` (pseudodynamics after `t1`, see `simjax._simulate.event`) and
      `delay` (an exact recurrent transmission delay) for events;
      `solver`, `stepsize_controller`, `adjoint`, `dt0`, `saveat`, `max_steps` for ODEs.

    **Returns:** an `Output`.
    """
    check_choice("method", method, ("clock", "event", "ode"), owner="simulate")
    check_choice("memory", memory, ("store", "recompute", "checkpoint"), owner="simulate")
    record = tuple(record)
    for f in record:
        check_choice("record field", f, RECORDABLE, owner="simulate")
    check_int("stride", stride, owner="simulate")
    check_int("segment", segment, owner="simulate")
    check_int("unroll", unroll, owner="simulate")
    if not isinstance(net, AbstractNetwork):
        raise TypeError(f"simulate: net must be a simjax network, got {type(net).__name__}")

    if method == "event":
        if dt is not None:
            raise TypeError("simulate: method='event' has no time step; drop dt (use record_dt=... to sample "
                            "the readout on a grid)")
        return simulate_event(net, inputs, t1=t1, state=state, key=key, record=record, checks=checks,
                              **method_kwargs)

    inputs = jnp.asarray(inputs)
    check_int("time_axis", time_axis, minimum=0, maximum=max(inputs.ndim - 2, 0), owner="simulate")
    if inputs.ndim < 2 or inputs.shape[-1] != net.n_in:
        raise ValueError(f"simulate: inputs have shape {inputs.shape}, expected [time, *batch, {net.n_in}] "
                         f"(the network has n_in={net.n_in}; batch-first arrays: pass time_axis=1)")
    inputs = jnp.moveaxis(inputs, time_axis, 0)
    # NaN / inf inputs error at run time; the check's flag is added to the (small) initial state, not
    # to the inputs, which would cost a pass over them.
    flag = finite_flag("simulate: inputs", inputs) if checks else None
    if method == "ode":
        return simulate_ode(net, with_flag(inputs, flag)[0], dt=dt, t1=t1, state=state, key=key, record=record,
                            **method_kwargs)

    if method_kwargs:
        raise TypeError(f"simulate: unexpected keyword(s) {sorted(method_kwargs)} for method='clock'")
    if dt is None:
        raise ValueError("simulate: method='clock' needs dt (the time step, e.g. dt=1.0)")
    check_positive("dt", dt, owner="simulate")
    if state is None:
        state = net.init(key, inputs.shape[1:-1])
    state, attached = with_flag(state, flag)
    if not attached:  # a state without floating leaves: the inputs carry the flag
        inputs, _ = with_flag(inputs, flag)
    return simulate_clock(net, inputs, dt=dt, state=state, record=record, stride=stride, memory=memory,
                  segment=segment, unroll=unroll)
