"""The Multi Vehicle Stereo Event Camera data set (MVSEC; Zhu et al., IEEE RA-L 3:2032, 2018) as
StereoSpike (Rançon et al., IEEE Access 10:99055, 2022) feeds it to a depth network: one HDF5 file
per scene, `<scene>_data.hdf5`, holding

    davis/left/events              [N, 4] float: x, y, t (seconds), polarity (+1 ON, -1 OFF)
    davis/right/events             [N, 4] float (same columns; not needed for `cameras="left"`)
    davis/left/depth_image_rect    [T, H, W] float: rectified LIDAR depth (m), NaN or 0 without depth
    davis/left/depth_image_rect_ts [T] float: the depth frames' times (seconds)

(`H x W = 260 x 346` for the DAVIS346 cameras; depth at 20 Hz). Events are read window by window
(the first and last event of a window are found by bisection on the file's `t` column, which must
be sorted), depth frame by frame; nothing else is held in memory. Reading needs `h5py`
(`pip install 'simjax[hdf5]'`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from jaxtyping import Float, Int

from .._checks import check_choice, check_int, check_positive
from ..tasks._base import Batch
from ._hdf5 import open_hdf5

_EVENTS = {"left": "davis/left/events", "right": "davis/right/events"}
_DEPTH = "davis/left/depth_image_rect"
_DEPTH_TS = "davis/left/depth_image_rect_ts"


def area_closing(image: Float[np.ndarray, "H W"], area: int = 24, *,
                 connectivity: int = 1) -> Float[np.ndarray, "H W"]:
    r"""Grayscale morphological area closing (Vincent, 1993): every pixel is raised to the lowest
    level `h` at which the connected component of `{image <= h}` containing it has at least `area`
    pixels,

    $$\phi_\lambda(f)(x) = \min\{h \ge f(x) : |C_h(x)| \ge \lambda\},$$

    so dark regions (minima, e.g. depth holes stored as 0) smaller than `area` pixels are filled
    from their surroundings, while larger ones and every other pixel keep their values. This is
    what `skimage.morphology.area_closing(image, area)` computes; implemented here by the
    union-find algorithm of Meijster & Wilkinson (IEEE TPAMI 24:484, 2002), pixels in increasing
    order of value. A plain Python loop: a fraction of a second for a 260 x 346 image.

    **Arguments:**

    - `image`: a 2-D array (no NaN: replace missing values first).
    - `area`: the smallest area (pixels) a dark region keeps; `area=1` returns the image unchanged.
    - `connectivity`: 1 (4 neighbours, `skimage`'s default) or 2 (8 neighbours).

    **Returns:**

    - the closed image, the input's shape and dtype.
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"area_closing: image must be 2-D, got shape {image.shape}")
    if np.isnan(image).any():
        raise ValueError("area_closing: image contains NaN; replace missing values (e.g. by 0) first")
    check_int("area", area, owner="area_closing")
    check_choice("connectivity", connectivity, (1, 2), owner="area_closing")
    height, width = image.shape
    flat = image.ravel().tolist()
    order = np.argsort(image.ravel(), kind="stable").tolist()
    if connectivity == 1:
        steps = [(-1, 0), (1, 0), (0, -1), (0, 1)]
    else:
        steps = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
    n = height * width
    parent = list(range(n))
    size = [1] * n
    done = [False] * n

    def root(x: int) -> int:
        r = x
        while parent[r] != r:
            r = parent[r]
        while parent[x] != r:  # path compression
            parent[x], x = r, parent[x]
        return r

    for p in order:
        y, x = divmod(p, width)
        for dy, dx in steps:
            yy, xx = y + dy, x + dx
            if 0 <= yy < height and 0 <= xx < width and done[yy * width + xx]:
                r = root(yy * width + xx)
                if r != p:
                    if flat[r] == flat[p] or size[r] < area:
                        parent[r] = p
                        size[p] += size[r]
                    else:  # p joins a component that already has the area: p's component is final
                        size[p] = area
        done[p] = True
    out = [0.0] * n
    for p in reversed(order):  # a parent is processed after its children, so resolved before them
        out[p] = flat[p] if parent[p] == p else out[parent[p]]
    return np.asarray(out, dtype=image.dtype).reshape(height, width)


class MVSEC:
    """One MVSEC scene (module docstring) cut into event windows, each labelled with a depth map.

    Window `i` holds the events with `t0 + i window <= t < t0 + (i + 1) window`, `t0` the first
    event of the cameras read: consecutive windows from the first event, as in StereoSpike's code,
    hence *not* aligned to the depth timestamps. Its label is the depth frame whose timestamp is
    nearest to the window's end (the earlier frame on a tie). There are
    `floor((t_last - t0) / window) + 1` windows, `t_last` the last event.

    Inputs are raw event counts per pixel and polarity (no normalisation), channels
    `[left ON, left OFF, right ON, right OFF]` (`cameras="left"`: the first two), as
    `simjax.tasks.RandomDotStereo` delivers them; a window without events gives zero counts. The
    depth label is the rectified depth with holes filled: missing values (NaN or 0) set to 0,
    `area_closing` with `area` (24 px in StereoSpike), and the pixels still 0 set to NaN (masked by
    `simjax.losses.depth_loss` and `mean_depth_error`).

    Splits are index ranges of windows that you choose (`indices`). Tulyakov et al. (ICCV 2019),
    followed by StereoSpike, use the indoor_flying scenes: split 1 trains on indoor_flying2 and 3 and
    takes 200 validation and 861 test windows from indoor_flying1; split 2 (train 1 and 3, test
    indoor_flying2) 200 / 1100; split 3 (train 1 and 2, test indoor_flying3) 200 / 1342, take-off
    and landing left out. The exact frame ranges are in those authors' code (`indices.py`), not here.

    **Arguments:**

    - `path`: the scene's `<scene>_data.hdf5`.
    - `cameras`: `"both"` (4 input channels) or `"left"` (2; monocular).
    - `window`: the window length (seconds; 0.05 in StereoSpike).
    - `area`: the area-closing size (pixels); 1 disables hole filling.
    - `indices`: the windows this split uses (ints in `[0, n_windows)`); default all.

    A missing key, a dataset of the wrong shape, unsorted depth timestamps, events outside the
    image or out of time order raise one `ValueError` naming the file.
    """

    path: Path
    cameras: str
    window: float
    area: int
    height: int
    width: int
    t0: float
    n_windows: int
    depth_times: np.ndarray
    indices: np.ndarray

    def __init__(self, path: str | Path, *, cameras: str = "both", window: float = 0.05, area: int = 24,
                 indices: Sequence[int] | np.ndarray | None = None):
        owner = "MVSEC"
        check_choice("cameras", cameras, ("both", "left"), owner=owner)
        check_positive("window", window, owner=owner)
        check_int("area", area, owner=owner)
        self.path, self.cameras, self.window, self.area = Path(path), cameras, float(window), area
        with self._open() as f:
            depth, stamps = f[_DEPTH], f[_DEPTH_TS]
            if len(depth.shape) != 3:
                raise ValueError(f"{self.path}: {_DEPTH} has shape {depth.shape}; expected [frames, height, width]")
            self.height, self.width = int(depth.shape[1]), int(depth.shape[2])
            self.depth_times = np.asarray(stamps[()], np.float64).reshape(-1)
            if self.depth_times.shape[0] != depth.shape[0] or depth.shape[0] == 0:
                raise ValueError(f"{self.path}: {_DEPTH} has {depth.shape[0]} frames and {_DEPTH_TS} "
                                 f"{self.depth_times.shape[0]} times; expected as many, at least one")
            if np.any(np.diff(self.depth_times) < 0):
                raise ValueError(f"{self.path}: {_DEPTH_TS} is not sorted")
            firsts, lasts = [], []
            for camera in self._cameras:
                ds = f[_EVENTS[camera]]
                if len(ds.shape) != 2 or ds.shape[1] != 4:
                    raise ValueError(f"{self.path}: {_EVENTS[camera]} has shape {ds.shape}; expected [events, 4] "
                                     "(x, y, t, polarity)")
                if ds.shape[0] == 0:
                    raise ValueError(f"{self.path}: {_EVENTS[camera]} holds no events")
                firsts.append(float(ds[0, 2]))
                lasts.append(float(ds[ds.shape[0] - 1, 2]))
        self.t0 = min(firsts)
        self.n_windows = int(np.floor((max(lasts) - self.t0) / self.window)) + 1
        if indices is None:
            self.indices = np.arange(self.n_windows)
        else:
            self.indices = np.asarray(indices, np.int64).reshape(-1)
            self._check(self.indices)

    @property
    def _cameras(self) -> tuple[str, ...]:
        return ("left", "right") if self.cameras == "both" else ("left",)

    @property
    def n_in(self) -> int:
        """Input channels: 4 (binocular) or 2 (left camera only)."""
        return 2 * len(self._cameras)

    def _open(self) -> Any:
        return open_hdf5(self.path, [_EVENTS[c] for c in self._cameras] + [_DEPTH, _DEPTH_TS], "MVSEC")

    def _check(self, indices: np.ndarray) -> None:
        bad = indices[(indices < 0) | (indices >= self.n_windows)]
        if bad.size:
            raise ValueError(f"{self.path}: window index {int(bad[0])} is out of range [0, {self.n_windows})")

    def __len__(self) -> int:
        return len(self.indices)

    def select(self, indices: Sequence[int] | np.ndarray) -> MVSEC:
        """The same scene restricted to the windows `indices` (a split)."""
        return MVSEC(self.path, cameras=self.cameras, window=self.window, area=self.area, indices=indices)

    def bounds(self, i: int) -> tuple[float, float]:
        """`(start, end)` of window `i` (seconds, the file's clock); events with `start <= t < end`."""
        return self.t0 + i * self.window, self.t0 + (i + 1) * self.window

    def label_index(self, i: int) -> int:
        """The depth frame labelling window `i`: the one nearest to the window's end."""
        end = self.bounds(i)[1]
        j = int(np.searchsorted(self.depth_times, end))
        if j == 0:
            return 0
        if j == len(self.depth_times):
            return j - 1
        return j - 1 if end - self.depth_times[j - 1] <= self.depth_times[j] - end else j

    def counts(self, i: int, f: Any = None) -> Int[np.ndarray, "C H W"]:
        """The event counts of window `i`, `[n_in, height, width]` int32."""
        self._check(np.asarray([i]))
        if f is None:
            with self._open() as f:
                return self.counts(i, f)
        start, end = self.bounds(i)
        out = np.zeros((self.n_in, self.height, self.width), np.int32)
        for c, camera in enumerate(self._cameras):
            ds = f[_EVENTS[camera]]
            lo = _bisect(ds, start, 0, ds.shape[0])
            hi = _bisect(ds, end, lo, ds.shape[0])
            if hi == lo:
                continue
            ev = np.asarray(ds[lo:hi], np.float64)
            if np.any(np.diff(ev[:, 2]) < 0):
                raise ValueError(f"{self.path}: {_EVENTS[camera]} is not sorted by time (window {i})")
            x, y = np.rint(ev[:, 0]).astype(np.int64), np.rint(ev[:, 1]).astype(np.int64)
            outside = (x < 0) | (x >= self.width) | (y < 0) | (y >= self.height)
            if outside.any():
                k = int(np.argmax(outside))
                raise ValueError(f"{self.path}: {_EVENTS[camera]} has an event at (x, y) = ({ev[k, 0]}, {ev[k, 1]}), "
                                 f"outside the {self.width} x {self.height} image")
            channel = 2 * c + (ev[:, 3] <= 0).astype(np.int64)  # ON (positive polarity) first, then OFF
            np.add.at(out, (channel, y, x), 1)
        return out

    def depth(self, i: int, f: Any = None) -> Float[np.ndarray, "H W"]:
        """The depth label of window `i` (`[height, width]` float32, NaN where no depth)."""
        self._check(np.asarray([i]))
        if f is None:
            with self._open() as f:
                return self.depth(i, f)
        frame = np.asarray(f[_DEPTH][self.label_index(i)], np.float64)
        frame = np.where(np.isfinite(frame), frame, 0.0)
        if self.area > 1:
            frame = area_closing(frame, self.area)
        return np.where(frame == 0.0, np.nan, frame).astype(np.float32)

    def batch(self, indices: Sequence[int] | np.ndarray) -> Batch:
        """The windows `indices` (window numbers, not positions in the split) as one `Batch`:
        `inputs [batch, n_in, height, width]` float32 counts, `targets [batch, height, width]`."""
        indices = np.asarray(indices, np.int64).reshape(-1)
        self._check(indices)
        with self._open() as f:
            inputs = np.stack([self.counts(int(i), f) for i in indices]).astype(np.float32)
            targets = np.stack([self.depth(int(i), f) for i in indices])
        return Batch(inputs=inputs, targets=targets)

    def batches(self, batch_size: int, *, seed: int | None = None, drop_last: bool = False) -> Iterator[Batch]:
        """One pass over this split's windows in batches of `batch_size`, in order (`seed=None`) or
        permuted by `numpy.random.default_rng(seed)`; the last, smaller batch is kept unless
        `drop_last`."""
        check_int("batch_size", batch_size, owner="MVSEC")
        order = self.indices if seed is None else np.random.default_rng(seed).permutation(self.indices)
        stop = len(order) - (len(order) % batch_size if drop_last else 0)
        for start in range(0, stop, batch_size):
            yield self.batch(order[start: start + batch_size])


def _bisect(ds: Any, t: float, lo: int, hi: int) -> int:
    """The first row in `[lo, hi)` of the events dataset `ds` with time `>= t` (`hi` if none), by
    bisection reading one value per step."""
    while lo < hi:
        mid = (lo + hi) // 2
        if float(ds[mid, 2]) < t:
            lo = mid + 1
        else:
            hi = mid
    return lo
