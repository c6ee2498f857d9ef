"""The MVSEC loader on a tiny file written here in MVSEC's HDF5 layout (8 x 10 pixels): 50-ms
windows from the first event, counts per camera and polarity, the nearest depth frame as label,
area closing of depth holes and the zeros-to-NaN mask, splits, and clear errors; area closing is
also checked against an independent threshold-decomposition implementation."""

import h5py
import numpy as np
import pytest
from scipy import ndimage

import simjax as sj

H, W = 8, 10
# (x, y, t, polarity); t0 = 1.0 (first event), windows [1.0, 1.05), [1.05, 1.1), ...
LEFT = np.array([[2, 3, 1.000, 1], [2, 3, 1.010, 1], [2, 3, 1.020, -1], [5, 1, 1.049, -1],
                 [0, 0, 1.120, 1], [9, 7, 1.160, -1], [3, 3, 1.260, 1]], np.float64)
RIGHT = np.array([[4, 4, 1.030, 1], [4, 4, 1.070, -1], [9, 7, 1.130, 1]], np.float64)
DEPTH_TS = np.array([1.04, 1.09, 1.16])


def depth_frames():
    frames = np.empty((3, H, W))
    frames[0] = 2.0
    frames[0, 1, 1] = frames[0, 1, 2] = 0.0           # a 3-pixel hole (0 and NaN both mean "no depth")
    frames[0, 2, 1] = np.nan
    frames[0, 3:8, 4:10] = np.nan                       # a 30-pixel hole: larger than the area
    frames[1] = 1.0 + 0.25 * np.arange(W)[None, :]      # a ramp along x
    frames[1, 4, 5] = 0.0                               # a 1-pixel hole
    frames[2] = np.nan                                  # no depth at all
    return frames


def write_mvsec(path, left=LEFT, right=RIGHT, depth=None, ts=DEPTH_TS, skip=()):
    depth = depth_frames() if depth is None else depth
    with h5py.File(path, "w") as f:
        for key, value in (("davis/left/events", left), ("davis/right/events", right),
                           ("davis/left/depth_image_rect", depth), ("davis/left/depth_image_rect_ts", ts)):
            if key not in skip:
                f.create_dataset(key, data=value)
    return path


@pytest.fixture
def scene(tmp_path):
    return write_mvsec(tmp_path / "indoor_flying1_data.hdf5")


def test_windows_counts_and_polarity_channels(scene):
    data = sj.data.MVSEC(scene)
    # last event 1.26 s: floor(0.26 / 0.05) + 1 = 6 windows
    assert data.n_windows == 6 and len(data) == 6 and data.n_in == 4 and (data.height, data.width) == (H, W)
    expect = np.zeros((6, 4, H, W), np.int32)
    expect[0, 0, 3, 2] = 2          # two left ON events at (x=2, y=3)
    expect[0, 1, 3, 2] = 1          # one left OFF there
    expect[0, 1, 1, 5] = 1          # left OFF at (5, 1), t = 1.049 (still window 0)
    expect[0, 2, 4, 4] = 1          # right ON at (4, 4), t = 1.03
    expect[1, 3, 4, 4] = 1          # right OFF, t = 1.07
    expect[2, 0, 0, 0] = 1          # left ON, t = 1.12
    expect[2, 2, 7, 9] = 1          # right ON, t = 1.13
    expect[3, 1, 7, 9] = 1          # left OFF, t = 1.16
    expect[5, 0, 3, 3] = 1          # left ON, t = 1.26; window 4 [1.2, 1.25) has no event
    for i in range(6):
        np.testing.assert_array_equal(data.counts(i), expect[i])
    batch = data.batch([4, 0])
    assert batch.inputs.shape == (2, 4, H, W) and batch.inputs.dtype == np.float32
    np.testing.assert_array_equal(batch.inputs[0], 0.0)   # an empty window: zero counts, no NaN
    np.testing.assert_array_equal(batch.inputs[1], expect[0])
    # monocular: the left camera's two channels only
    left = sj.data.MVSEC(scene, cameras="left")
    assert left.n_in == 2
    np.testing.assert_array_equal(left.batch([0, 2]).inputs, expect[[0, 2], :2])


def test_many_events_bin_like_a_direct_count(tmp_path):
    rng = np.random.default_rng(0)
    n = 300
    events = [np.stack([rng.integers(0, W, n), rng.integers(0, H, n), np.sort(rng.uniform(5.0, 5.4, n)),
                        rng.choice([-1.0, 1.0], n)], axis=1) for _ in range(2)]
    data = sj.data.MVSEC(write_mvsec(tmp_path / "s.hdf5", left=events[0], right=events[1]), window=0.05)
    t0 = min(events[0][0, 2], events[1][0, 2])
    got = np.stack([data.counts(i) for i in range(data.n_windows)])
    expect = np.zeros_like(got)
    for c, ev in enumerate(events):
        for x, y, t, p in ev:
            expect[int((t - t0) // 0.05), 2 * c + (p < 0), int(y), int(x)] += 1
    np.testing.assert_array_equal(got, expect)
    assert got.sum() == 2 * n


def test_label_is_the_depth_frame_nearest_to_the_window_end(scene):
    data = sj.data.MVSEC(scene)
    # window ends 1.05, 1.10, 1.15, 1.20, ...; frames at 1.04, 1.09, 1.16
    assert [data.label_index(i) for i in range(6)] == [0, 1, 2, 2, 2, 2]
    # a tie (end 0.25 between frames at 0.125 and 0.375) goes to the earlier frame
    tie = sj.data.MVSEC(write_mvsec(scene.parent / "tie.hdf5", left=LEFT - [0, 0, 1.0, 0], right=RIGHT - [0, 0, 1.0, 0],
                                    ts=np.array([0.125, 0.375, 2.0])), window=0.25)
    assert tie.label_index(0) == 0 and tie.label_index(1) == 1


def test_depth_holes_are_area_closed_then_masked(scene):
    data = sj.data.MVSEC(scene)
    # frame 0: the 3-pixel hole is filled from its 2 m surroundings, the 30-pixel one stays NaN
    expect = np.full((H, W), 2.0)
    expect[3:8, 4:10] = np.nan
    np.testing.assert_array_equal(data.depth(0), expect)
    # frame 1 (ramp 1 + x / 4): the hole at (y=4, x=5) joins a >= 24-pixel set {depth <= 2} at
    # 2.0 (its left neighbour); columns 0 and 1 (8 pixels each) are raised to 1.5, the level at
    # which {depth <= h} first reaches 24 pixels (columns 0-2): grayscale area closing.
    expect = 1.0 + 0.25 * np.arange(W)[None, :].repeat(H, 0)
    expect[:, :2] = 1.5
    expect[4, 5] = 2.0
    np.testing.assert_array_equal(data.depth(1), expect)
    np.testing.assert_array_equal(data.depth(2), np.nan)     # all masked: all NaN
    batch = data.batch([0, 1])
    assert batch.targets.shape == (2, H, W) and batch.targets.dtype == np.float32
    # area = 1: no closing, every hole is NaN
    raw = sj.data.MVSEC(scene, area=1).depth(0)
    assert np.isnan(raw).sum() == 33 and np.nanmin(raw) == 2.0


def _closing_by_thresholds(image, area):
    """Independent area closing: for each level h (ascending), the pixels not yet assigned whose
    connected component of {image <= h} (4-connected) has >= area pixels take the value h."""
    out = np.full(image.shape, np.nan)
    for h in np.unique(image):
        labels, _ = ndimage.label(image <= h)
        sizes = np.bincount(labels.ravel())
        big = (labels > 0) & (sizes[labels] >= area) & np.isnan(out)
        out[big] = h
    out[np.isnan(out)] = image.max()
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_area_closing_matches_threshold_decomposition(seed):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 6, (12, 15)).astype(np.float64)
    image = ndimage.uniform_filter(image, 2)             # plateaus and basins of various areas
    for area in (1, 3, 7, 24):
        np.testing.assert_array_equal(sj.data.area_closing(image, area), _closing_by_thresholds(image, area))


def test_splits_select_windows(scene):
    data = sj.data.MVSEC(scene, indices=range(1, 5))
    assert len(data) == 4
    order = [b.inputs.shape[0] for b in data.batches(3)]
    assert order == [3, 1]
    first = next(data.batches(4))
    np.testing.assert_array_equal(first.inputs, sj.data.MVSEC(scene).batch([1, 2, 3, 4]).inputs)
    shuffled = next(data.batches(4, seed=3))
    perm = np.random.default_rng(3).permutation(np.arange(1, 5))
    np.testing.assert_array_equal(shuffled.inputs, sj.data.MVSEC(scene).batch(perm).inputs)
    assert len(list(data.batches(3, drop_last=True))) == 1
    val, test = data.select([1, 2]), data.select(range(3, 5))
    assert len(val) == 2 and list(test.indices) == [3, 4]


def test_bad_files_and_indices_raise_clear_errors(tmp_path, scene, unchecked):
    with pytest.raises(ValueError, match="missing key 'davis/right/events'"):
        sj.data.MVSEC(write_mvsec(tmp_path / "a.hdf5", skip=("davis/right/events",)))
    assert sj.data.MVSEC(tmp_path / "a.hdf5", cameras="left").n_in == 2     # monocular needs no right camera
    with pytest.raises(ValueError, match=r"expected \[events, 4\]"):
        sj.data.MVSEC(write_mvsec(tmp_path / "b.hdf5", left=LEFT[:, :3]))
    with pytest.raises(ValueError, match=r"expected \[frames, height, width\]"):
        sj.data.MVSEC(write_mvsec(tmp_path / "c.hdf5", depth=np.ones((3, H * W))))
    with pytest.raises(ValueError, match="3 frames and .* 2 times"):
        sj.data.MVSEC(write_mvsec(tmp_path / "d.hdf5", ts=DEPTH_TS[:2]))
    with pytest.raises(ValueError, match="holds no events"):
        sj.data.MVSEC(write_mvsec(tmp_path / "e.hdf5", right=np.zeros((0, 4))))
    outside = LEFT.copy()
    outside[1, 0] = W
    with pytest.raises(ValueError, match="outside the 10 x 8 image"):
        sj.data.MVSEC(write_mvsec(tmp_path / "f.hdf5", left=outside)).counts(0)
    with pytest.raises(ValueError, match="window index 6 is out of range"):
        sj.data.MVSEC(scene).batch([0, 6])
    with pytest.raises(ValueError, match="window index -1"):
        sj.data.MVSEC(scene, indices=[-1])
    with pytest.raises(ValueError, match="no such file"):
        sj.data.MVSEC(tmp_path / "missing.hdf5")
    with pytest.raises(ValueError, match="cameras"):
        sj.data.MVSEC(scene, cameras="right")
    with pytest.raises(ValueError, match="contains NaN"):
        sj.data.area_closing(np.full((2, 2), np.nan))
