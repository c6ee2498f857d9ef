"""Clock-driven simulation: a `lax.scan` of the network's step over the input sequence, with a
choice of memory policy for the backward pass (store, checkpointed segments, recompute)."""

from __future__ import annotations

import functools
from typing import Any, Literal

import jax
from jaxtyping import Array, Float, PyTree

from ..networks._base import AbstractFastScanNetwork, AbstractNetwork
from .output import Output, Record

Memory = Literal["store", "recompute", "checkpoint"]
RECORDABLE = ("spikes", "v", "readout")


def _select(record: Record, fields: tuple[str, ...]) -> Record:
    lag = record.spike_lag if "spikes" in fields else None  # the spikes' times go with the spikes
    return Record(**{f: (getattr(record, f) if f in fields else None) for f in RECORDABLE}, spike_lag=lag)


def _scan(net: AbstractNetwork, state, inputs, *, raw, dt, record, unroll, recompute, fast):
    """One scan of the step over `inputs` (raw, or already `prepare`d when `raw` is False): the
    network's fast path when it has one (it takes the raw inputs and prepares them itself)."""
    if fast and raw and isinstance(net, AbstractFastScanNetwork):
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


def simulate_clock(net: AbstractNetwork, inputs: Float[Array, "time *batch n_in"], *, dt: Any, state: PyTree[Array],
                   record: tuple[str, ...], stride: int, memory: Memory, segment: int, unroll: int) -> Output:
    """The clock-driven integration behind `simulate(..., method="clock")` (arguments checked there)."""
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
    info = {} if recs.spike_lag is None else {"spike_lag": recs.spike_lag}
    return Output(spikes=recs.spikes, v=recs.v, readout=recs.readout, final_state=final, info=info)
