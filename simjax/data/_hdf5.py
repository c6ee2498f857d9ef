"""Spiking data sets in the HDF5 layout of the Spiking Heidelberg Digits and Spiking Speech Commands
(Cramer, Stradmann, Schemmel & Zenke, IEEE TNNLS 33:2744, 2022): one file per split holding

    spikes/times   variable-length float arrays, one per sample (spike times in seconds)
    spikes/units   variable-length int arrays, one per sample (channel of each spike, 0..699)
    labels         int array, one class per sample

read lazily (only the samples of the current batch are read) and delivered binned on a time grid
or as padded spike-time lists. Reading needs `h5py` (`pip install 'simjax[hdf5]'`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._checks import check_choice, check_int, check_positive, grid_count
from ..tasks._base import Batch
from ..tasks._dataset import Dataset
from ..tasks._supervised import Supervised
from ._events import bin_events, pad_events

KEYS = ("spikes/times", "spikes/units", "labels")


def _h5py():
    try:
        import h5py
    except ImportError:  # pragma: no cover - the hdf5 extra is part of the test extra
        raise ImportError("reading HDF5 spike data needs h5py: pip install 'simjax[hdf5]'") from None
    return h5py


def open_hdf5(path: Path, keys: Sequence[str], layout: str) -> Any:
    """`path` opened read-only with h5py, after checking that it exists, is HDF5 and holds every
    key of `keys` (one `ValueError` naming the first missing key and the `layout`'s keys)."""
    h5py = _h5py()
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{path} is not a readable HDF5 file ({err})") from None
    missing = [k for k in keys if k not in f]
    if missing:
        f.close()
        raise ValueError(f"{path}: missing key {missing[0]!r}; the {layout} layout has {', '.join(keys)}")
    return f


class SpikingHDF5:
    """A spiking data set in the SHD/SSC HDF5 layout (module docstring), streamed batch by batch.

    **Arguments:**

    - `path`: the `.h5` file (e.g. `shd_train.h5`).
    - `n_channels`: input channels (700 for SHD and SSC).
    - `dt`, `duration`: the time grid (ms) of binned batches: `duration / dt` steps; spikes after
      `duration` are dropped.
    - `output`: `"binned"` (`inputs [time, batch, n_channels]` spike counts, a spike at `t` in step
      `ceil(t / dt) - 1`, as `simjax.SpikeTrain.to_dense`) or `"events"` (`inputs` a
      `simjax.SpikeTrain [batch, events]`, times in ms, sorted, padded with `inf`).
    - `max_events`: pad event batches to this many events (a fixed shape, so a jitted step compiles
      once); default the batch's longest sample.
    - `time_scale`: milliseconds per unit of the file's times (1000: SHD stores seconds).

    The file is opened once per batch read and closed again; only `labels` (one int per sample)
    is held in memory. A missing key or an unreadable file raises one `ValueError` naming the file.
    """

    path: Path
    n_channels: int
    dt: float
    duration: float
    output: str
    max_events: int | None
    time_scale: float
    labels: np.ndarray

    def __init__(self, path: str | Path, *, n_channels: int = 700, dt: float = 1.0, duration: float = 1000.0,
                 output: str = "binned", max_events: int | None = None, time_scale: float = 1000.0):
        owner = "SpikingHDF5"
        check_int("n_channels", n_channels, owner=owner)
        check_positive("dt", dt, owner=owner)
        check_positive("time_scale", time_scale, owner=owner)
        grid_count(duration, dt, names=("duration", "dt"), owner=owner)
        check_choice("output", output, ("binned", "events"), owner=owner)
        if max_events is not None:
            check_int("max_events", max_events, owner=owner)
        self.path = Path(path)
        self.n_channels, self.dt, self.duration = n_channels, float(dt), float(duration)
        self.output, self.max_events, self.time_scale = output, max_events, float(time_scale)
        with self._open() as f:
            n_times, n_units = len(f["spikes/times"]), len(f["spikes/units"])
            self.labels = np.asarray(f["labels"][()]).astype(np.int32).reshape(-1)
        if not (n_times == n_units == len(self.labels)):
            raise ValueError(f"{self.path}: spikes/times has {n_times} samples, spikes/units {n_units} and labels "
                             f"{len(self.labels)}; they must agree")

    def _open(self) -> Any:
        return open_hdf5(self.path, KEYS, "SHD/SSC")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def steps(self) -> int:
        return int(round(self.duration / self.dt))

    @property
    def n_classes(self) -> int:
        return int(self.labels.max()) + 1 if len(self.labels) else 0

    def events(self, indices: Sequence[int] | np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """`(times, units)`: the spike times (ms) and channels of the samples `indices`, read from
        the file (only those samples)."""
        indices = [int(i) for i in indices]
        bad = [i for i in indices if not 0 <= i < len(self)]
        if bad:
            raise ValueError(f"{self.path}: sample index {bad[0]} is out of range [0, {len(self)})")
        with self._open() as f:
            times_ds, units_ds = f["spikes/times"], f["spikes/units"]
            # one selection per dataset (h5py wants increasing, unique indices), then the batch order
            unique, where = np.unique(np.asarray(indices, np.int64), return_inverse=True)
            try:
                read_t, read_u = times_ds[unique.tolist()], units_ds[unique.tolist()]
                times = [np.asarray(read_t[w], np.float64) * self.time_scale for w in where]
                units = [np.asarray(read_u[w]).astype(np.int64) for w in where]
            except (OSError, ValueError, TypeError) as err:
                raise ValueError(f"{self.path}: cannot read spikes/times or spikes/units ({err})") from None
        for i, t, u in zip(indices, times, units):
            if t.shape != u.shape:
                raise ValueError(f"{self.path}: sample {i} has {t.size} spike times but {u.size} units")
        return times, units

    def batch(self, indices: Sequence[int] | np.ndarray) -> Batch:
        """The samples `indices` as one `Batch` (`targets [batch]`: their labels, in that order)."""
        times, units = self.events(indices)
        targets = self.labels[np.asarray(indices, np.int64)]
        if self.output == "events":
            train = pad_events(times, units, self.n_channels, max_events=self.max_events, what="sample")
            return Batch(inputs=train, targets=targets)
        return Batch(inputs=bin_events(times, units, self.n_channels, dt=self.dt, duration=self.duration),
                     targets=targets)

    def dataset(self, indices: Sequence[int] | np.ndarray | None = None, *, readout: str = "mean") -> Dataset:
        """The samples `indices` (default: all) binned and held in memory as a `simjax.tasks.Dataset`
        that `simjax.fit` can train on (cross-entropy of the `readout` over time: `"mean"`,
        `"last"` or `"all"`). For sets too large for memory, iterate `batches` instead."""
        if self.output != "binned":
            raise ValueError("SpikingHDF5.dataset: needs output='binned' (a Dataset holds [time, n, channels] arrays)")
        indices = np.arange(len(self)) if indices is None else np.asarray(indices, np.int64)
        batch = self.batch(indices)
        return Dataset(batch.inputs, batch.targets, Supervised("cross_entropy", readout, dt=self.dt))

    def batches(self, batch_size: int, *, seed: int | None = None, drop_last: bool = False) -> Iterator[Batch]:
        """One pass over the data set in batches of `batch_size`, in file order (`seed=None`) or a
        permutation drawn from `numpy.random.default_rng(seed)`; the last, smaller batch is kept
        unless `drop_last`."""
        check_int("batch_size", batch_size, owner="SpikingHDF5")
        order = np.arange(len(self)) if seed is None else np.random.default_rng(seed).permutation(len(self))
        stop = len(order) - (len(order) % batch_size if drop_last else 0)
        for start in range(0, stop, batch_size):
            yield self.batch(order[start: start + batch_size])
