r"""`simulate`: integrate a network clock-driven (``lax.scan``), event-driven (exact spike times) or as
an ODE (``diffrax.diffeqsolve``). One network definition serves every method that makes sense for it.
"""

from __future__ import annotations

import functools
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PyTree

from ._checks import check_choice, check_positive, finite_flag, with_flag
from .networks._base import AbstractNetwork, Record

Method = Literal["clock", "event", "ode"]
Memory = Literal["store", "recompute", "checkpoint"]
_RECORDABLE = ("spikes", "v", "readout")


class Output(eqx.Module):
    """The result of `simulate`: recorded traces ``[time, *batch, ...]`` (``None`` when not recorded),
    the final state, and method-specific ``info`` (e.g. event counts)."""

    spikes: Float[Array, "time *batch n"] | None
    v: Float[Array, "time *batch n"] | None
    readout: Float[Array, "time *batch n_out"] | None
    final_state: PyTree[Array]
    info: dict


def _select(record: Record, fields: tuple[str, ...]) -> Record:
    return Record(**{f: (getattr(record, f) if f in fields else None) for f in _RECORDABLE})


def _scan(net: AbstractNetwork, state, inputs, *, raw, dt, record, unroll, recompute, fast):
    """One scan of the step over ``inputs`` (raw, or already `prepare`d when ``raw`` is False): the
    network's fast path when it has one (it takes the raw inputs and prepares them itself)."""
    if fast and raw and getattr(net, "fast_scan", None) is not None:
        result = net.fast_scan(inputs, dt, state, unroll)
        if result is not None:
            recs, final = result
            return final, _select(recs, record)
    prepared = net.prepare(inputs, dt) if raw else inputs
    step = net.step_fn(dt)

    def body(carry, x_t):
        carry, rec = step(carry, x_t)
        return carry, _select(rec, record)

    return jax.lax.scan(jax.checkpoint(body) if recompute else body, state, prepared, unroll=unroll)


def _clock(net: AbstractNetwork, inputs, *, dt, state, record, stride, memory, segment, unroll):
    steps = inputs.shape[0]
    if steps % stride:
        raise ValueError(f"simulate: stride {stride} must divide the number of time steps {steps}")
    scan = functools.partial(_scan, net, dt=dt, record=record, unroll=unroll, recompute=memory == "recompute",
                             fast=memory != "recompute")
    local = net.local_prepare  # whether `prepare` may run on chunks of the sequence
    split = lambda tree, n: jax.tree.map(lambda a: a.reshape(a.shape[0] // n, n, *a.shape[1:]), tree)  # noqa: E731
    if memory == "checkpoint" and stride == 1 and steps % segment == 0 and steps > segment:
        # Nested scan with checkpointed segments: the state is kept every `segment` steps and each
        # segment is recomputed in the backward pass. When `prepare` is local in time it runs per
        # segment, so no full-length trace of the input current is kept either.
        @jax.checkpoint
        def outer(carry, chunk):
            return scan(carry, chunk, raw=local)

        final, recs = jax.lax.scan(outer, state, split(inputs if local else net.prepare(inputs, dt), segment))
        recs = jax.tree.map(lambda a: a.reshape(steps, *a.shape[2:]), recs)
    elif stride == 1:
        final, recs = scan(state, inputs, raw=True)
    else:
        def outer(carry, chunk):
            carry, recs = scan(carry, chunk, raw=local)
            return carry, jax.tree.map(lambda a: a[-1], recs)

        final, recs = jax.lax.scan(outer, state, split(inputs if local else net.prepare(inputs, dt), stride))
    return Output(spikes=recs.spikes, v=recs.v, readout=recs.readout, final_state=final, info={})


def simulate(net: AbstractNetwork, inputs: Any, *, method: Method = "clock", dt: float | None = None,
             t1: float | None = None, state: PyTree[Array] | None = None, key: Any = None,
             record: tuple[str, ...] = _RECORDABLE, stride: int = 1, memory: Memory = "store",
             segment: int = 50, unroll: int = 1, checks: bool = True, **method_kwargs) -> Output:
    r"""Integrates ``net`` driven by ``inputs``.

    **Arguments:**
    - ``net``: a network (`simjax.networks.RSNN`, `RateRNN`, `FeedForward`, ...).
    - ``inputs``: ``[time, *batch, n_in]`` array (clock-driven; continuous-time methods interpolate
      it on the grid ``k dt``), or a `simjax.SpikeTrain` for ``method="event"``.
    - ``method``: ``"clock"`` (``lax.scan``, the surrogate-gradient path), ``"event"`` (exact spike
      times, gradients by the implicit function theorem), ``"ode"`` (``diffrax.diffeqsolve``).
    - ``dt``: time step (ms) of the clock-driven grid. ``t1``: end time (event/ode).
    - ``state``: initial state (default ``net.init(key, batch)``).
    - ``record``: which of ``"spikes"``, ``"v"``, ``"readout"`` to keep; ``stride``: keep every
      ``stride``-th step.
    - ``memory`` (clock-driven, for gradients): ``"store"`` (default, fastest) keeps what the
      backward pass needs for every step; ``"checkpoint"`` keeps the state only every ``segment``
      steps and recomputes each segment in the backward pass (memory ~ T/segment + segment states;
      for long sequences); ``"recompute"`` keeps the state of every step and recomputes the rest,
      always through the generic step (autodiff of `step`, also for forward-mode ``jax.jvp``).
      Networks with a fast path (`RSNN` of current-free, non-refractory `LIF` neurons, see
      `simjax.networks.lif_scan`) use it under ``"store"`` and inside each ``"checkpoint"`` segment:
      it keeps one float trace (the pre-reset voltage, which its backward pass overwrites with
      the adjoint) and the spikes as bytes, and computes weight gradients as large matmuls over
      time x batch, with the same gradients as autodiff. It is reverse-mode only
      (``jax.grad``, and forward-over-reverse Hessian-vector products); for ``jax.jvp``/``jacfwd``
      through such a network use ``memory="recompute"``.
    - ``unroll``: ``lax.scan`` unroll factor. ``checks``: validate shapes and reject NaN inputs.
    - ``method_kwargs``: passed to the method: ``max_events`` (the static event budget; running out
      raises unless ``on_exhausted="flag"``), ``record_dt`` (readout sampling grid), and
      ``pseudo_drive``/``max_pseudospikes`` (pseudodynamics after ``t1``, see `simjax.event`) for events;
      ``solver``, ``stepsize_controller``, ``adjoint``, ``dt0``, ``saveat``, ``max_steps`` for ODEs.

    **Returns:** an `Output`.
    """
    check_choice("method", method, ("clock", "event", "ode"), owner="simulate")
    check_choice("memory", memory, ("store", "recompute", "checkpoint"), owner="simulate")
    record = tuple(record)
    for f in record:
        check_choice("record field", f, _RECORDABLE, owner="simulate")
    if not isinstance(stride, int) or stride < 1:
        raise ValueError(f"simulate: stride must be a positive int, got {stride!r}")
    if not isinstance(net, AbstractNetwork):
        raise TypeError(f"simulate: net must be a simjax network, got {type(net).__name__}")

    if method == "event":
        from .event import simulate_event

        if dt is not None:
            raise TypeError("simulate: method='event' has no time step; drop dt (use record_dt=... to sample "
                            "the readout on a grid)")
        return simulate_event(net, inputs, t1=t1, state=state, key=key, record=record, checks=checks,
                              **method_kwargs)

    inputs = jnp.asarray(inputs)
    if inputs.ndim < 2 or inputs.shape[-1] != net.n_in:
        raise ValueError(f"simulate: inputs have shape {inputs.shape}, expected [time, *batch, {net.n_in}] "
                         f"(the network has n_in={net.n_in})")
    # NaN / inf inputs error at run time; the check's flag is added to the (small) initial state, not
    # to the inputs, which would cost a pass over them.
    flag = finite_flag("simulate: inputs", inputs) if checks else None
    if method == "ode":
        from .ode import simulate_ode

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
    return _clock(net, inputs, dt=dt, state=state, record=record, stride=stride, memory=memory,
                  segment=segment, unroll=unroll)
