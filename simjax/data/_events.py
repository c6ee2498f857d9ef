"""Event lists -> simjax inputs: padded `SpikeTrain`s and binned `[time, batch, channels]` arrays."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._spike_train import SpikeTrain


def pad_events(times: Sequence[np.ndarray], ids: Sequence[np.ndarray], n: int, *,
               max_events: int | None = None, what: str = "sample") -> SpikeTrain:
    """Per-sample event lists (times in ms, channel ids) -> one `SpikeTrain [batch, events]`, each
    row sorted by time and padded with `times = inf` (id 0) to `max_events` (default: the longest
    row). A row longer than `max_events` is an error naming it."""
    lengths = [len(t) for t in times]
    width = max(lengths, default=0) if max_events is None else int(max_events)
    out_t = np.full((len(times), width), np.inf)
    out_i = np.zeros((len(times), width), np.int32)
    for row, (t, i) in enumerate(zip(times, ids)):
        if len(t) > width:
            raise ValueError(f"{what} {row} of the batch has {len(t)} events, more than max_events={width}")
        order = np.argsort(t, kind="stable")
        out_t[row, : len(t)] = np.asarray(t, np.float64)[order]
        out_i[row, : len(t)] = np.asarray(i)[order]
    if out_i.size and (out_i.min() < 0 or out_i.max() >= n):
        raise ValueError(f"channel ids must lie in [0, {n}), got range [{out_i.min()}, {out_i.max()}]; pass the "
                         "number of channels the data has")
    return SpikeTrain(out_t, out_i, n=n)


def bin_events(times: Sequence[np.ndarray], ids: Sequence[np.ndarray], n: int, *, dt: float,
               duration: float) -> np.ndarray:
    """Per-sample event lists -> spike counts `[time, batch, n]` on the grid of step `dt` over
    `[0, duration)`, with the convention of `simjax.SpikeTrain.to_dense`: a spike at time `t`
    counts in step `ceil(t / dt) - 1` (step 0 for `t <= 0`); spikes after `duration` are dropped.
    (NumPy, so that a loader can fill batches without tracing.)"""
    steps = int(round(duration / dt))
    rows = [np.full(len(t), r, np.int64) for r, t in enumerate(times)]
    t = np.concatenate([np.asarray(t, np.float64).reshape(-1) for t in times] or [np.zeros(0)])
    i = np.concatenate([np.asarray(i, np.int64).reshape(-1) for i in ids] or [np.zeros(0, np.int64)])
    row = np.concatenate(rows or [np.zeros(0, np.int64)])
    if i.size and (i.min() < 0 or i.max() >= n):
        raise ValueError(f"channel ids must lie in [0, {n}), got range [{i.min()}, {i.max()}]; pass the "
                         "number of channels the data has")
    with np.errstate(invalid="ignore"):
        k = np.where(t <= 0, 0, np.ceil(t / dt) - 1)
    keep = np.isfinite(t) & (t >= 0) & (k < steps)
    flat = (k[keep].astype(np.int64) * len(times) + row[keep]) * n + i[keep]
    out = np.zeros(steps * len(times) * n, np.float32)
    cells, counts = np.unique(flat, return_counts=True)    # (no int64 buffer of the whole grid)
    out[cells] = counts
    return out.reshape(steps, len(times), n)
