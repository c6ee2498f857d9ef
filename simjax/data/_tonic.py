"""Event arrays in tonic's structured layout (NumPy structured arrays with fields `t` and the
channel coordinates: `x, y, p` for cameras, `x, p` for tonic's audio sets, or a single `ch`),
turned into simjax inputs without tonic itself: a user with tonic passes its samples straight in."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._checks import check_int, check_positive, grid_count
from .._spike_train import SpikeTrain
from ._events import bin_events, pad_events

#: The coordinate fields simjax understands, in tonic's `sensor_size` order.
COORDINATES = ("x", "y", "p")


def channels_of(events: np.ndarray, sensor_size: Sequence[int] | None = None) -> tuple[np.ndarray, int]:
    """`(channel [events], n_channels)` of one tonic event array.

    A `ch` field is the channel itself (`n_channels = sensor_size[0]`, or its maximum + 1). Else the
    coordinates `x, y, p` present are flattened with `sensor_size = (width, height, polarities)` as
    tonic's frames are laid out (`[p, y, x]`, C order): `channel = (p height + y) width + x`.
    """
    names = events.dtype.names
    if names is None or "t" not in names:
        raise ValueError(f"tonic events must be a structured array with a 't' field and channel fields "
                         f"('x', 'y', 'p' or 'ch'); got dtype {events.dtype}")
    if "ch" in names:
        channel = np.asarray(events["ch"]).astype(np.int64)
        n = int(sensor_size[0]) if sensor_size is not None else int(channel.max(initial=-1)) + 1
        return channel, n
    present = [c for c in COORDINATES if c in names]
    if "x" not in present:
        raise ValueError(f"tonic events have fields {names}; expected 'x' (with optional 'y', 'p') or 'ch'")
    if sensor_size is None or len(sensor_size) != 3:
        raise ValueError(f"tonic events with fields {names} need sensor_size=(width, height, polarities), as "
                         f"tonic datasets give it; got {sensor_size!r}")
    width, height, polarities = (int(s) for s in sensor_size)
    coord = {c: (np.asarray(events[c]).astype(np.int64) if c in names else np.zeros(len(events), np.int64))
             for c in COORDINATES}
    for c, size in zip(COORDINATES, (width, height, polarities)):
        if coord[c].size and (coord[c].min() < 0 or coord[c].max() >= size):
            raise ValueError(f"tonic events: field '{c}' ranges over [{coord[c].min()}, {coord[c].max()}], "
                             f"outside sensor_size {tuple(sensor_size)}")
    return (coord["p"] * height + coord["y"]) * width + coord["x"], width * height * polarities


def from_tonic(samples: np.ndarray | Sequence[np.ndarray], *, sensor_size: Sequence[int] | None = None,
               time_scale: float = 1e-3, dt: float | None = None, duration: float | None = None,
               max_events: int | None = None) -> SpikeTrain | np.ndarray:
    """One tonic event array, or a sequence of them (a batch), as simjax inputs.

    **Arguments:**

    - `samples`: structured arrays with a `t` field and channel fields (`channels_of`).
    - `sensor_size`: tonic's `(width, height, polarities)` (e.g. `tonic.datasets.SHD.sensor_size =
      (700, 1, 1)`); for a `ch` field, `(n_channels,)` or `None` (inferred).
    - `time_scale`: milliseconds per unit of `t` (tonic stores microseconds: `1e-3`).
    - `dt`, `duration`: give both to bin (ms); otherwise the events are kept.
    - `max_events`: pad the events to this many per sample (default: the longest).

    **Returns:**

    - with `dt` and `duration`: spike counts `[time, batch, n_channels]` (`[time, n_channels]` for
      one array), a spike at `t` in step `ceil(t / dt) - 1` as `simjax.SpikeTrain.to_dense`;
    - otherwise a `simjax.SpikeTrain` with times in ms (`[batch, events]`, or `[events]` for one
      array), sorted and padded with `inf`.
    """
    single = isinstance(samples, np.ndarray)
    batch = [samples] if single else list(samples)
    check_positive("time_scale", time_scale, owner="from_tonic")
    if max_events is not None:
        check_int("max_events", max_events, owner="from_tonic")
    if (dt is None) != (duration is None):
        raise ValueError(f"from_tonic: give both dt and duration to bin the events, or neither; got dt={dt!r}, "
                         f"duration={duration!r}")
    times, ids, sizes = [], [], set()
    for events in batch:
        channel, n = channels_of(np.asarray(events), sensor_size)
        times.append(np.asarray(events["t"], np.float64) * time_scale)
        ids.append(channel)
        sizes.add(n)
    n = max(sizes) if sizes else (int(sensor_size[0]) if sensor_size else 1)
    if dt is not None:
        grid_count(duration, dt, names=("duration", "dt"), owner="from_tonic")
        dense = bin_events(times, ids, n, dt=float(dt), duration=float(duration))
        return dense[:, 0] if single else dense
    train = pad_events(times, ids, n, max_events=max_events, what="sample")
    return SpikeTrain(train.times[0], train.ids[0], n=n) if single else train
