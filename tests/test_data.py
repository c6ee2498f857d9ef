"""Data loaders on small files written here in the published layouts: the SHD/SSC HDF5 layout
(binning, padding, label order, streaming) and tonic's structured event arrays, against
hand-computed values; broken files give one clear error."""

import h5py
import jax
import numpy as np
import optax
import pytest

import simjax as sj

# Three samples (times in seconds, as SHD stores them; kept away from bin edges so that float32
# rounding cannot move a spike across one), channels of 5.
TIMES = [np.array([0.0027, 0.0004, 0.0013, 0.0004]), np.array([], np.float64), np.array([0.0031, 0.0092])]
UNITS = [np.array([4, 1, 2, 3]), np.array([], np.int64), np.array([0, 0])]
LABELS = np.array([2, 0, 1])


def write_shd(path, times=TIMES, units=UNITS, labels=LABELS, skip=()):
    with h5py.File(path, "w") as f:
        group = f.create_group("spikes")
        if "spikes/times" not in skip:
            ds = group.create_dataset("times", (len(times),), dtype=h5py.vlen_dtype(np.float32))
            for i, t in enumerate(times):
                ds[i] = np.asarray(t, np.float32)
        if "spikes/units" not in skip:
            ds = group.create_dataset("units", (len(units),), dtype=h5py.vlen_dtype(np.uint16))
            for i, u in enumerate(units):
                ds[i] = np.asarray(u, np.uint16)
        if "labels" not in skip:
            f.create_dataset("labels", data=np.asarray(labels, np.uint8))
    return path


@pytest.fixture
def shd(tmp_path):
    return write_shd(tmp_path / "shd_train.h5")


def test_binned_batches_match_hand_binning(shd):
    data = sj.data.SpikingHDF5(shd, n_channels=5, dt=1.0, duration=4.0)
    assert len(data) == 3 and data.steps == 4 and data.n_classes == 3
    batch = data.batch([0, 1, 2])
    expect = np.zeros((4, 3, 5))
    # sample 0: 0.4 ms -> step 0 (channels 1 and 3), 1.3 ms -> step 1 (ch 2), 2.7 ms -> step 2 (ch 4)
    expect[0, 0, 1] = expect[0, 0, 3] = expect[1, 0, 2] = expect[2, 0, 4] = 1
    # sample 1: no spikes; sample 2: 3.1 ms -> step 3 (ch 0); 9.2 ms is after the 4 ms window
    expect[3, 2, 0] = 1
    np.testing.assert_array_equal(batch.inputs, expect)
    np.testing.assert_array_equal(batch.targets, [2, 0, 1])
    # two spikes of one channel in one step are counted
    coarse = sj.data.SpikingHDF5(shd, n_channels=5, dt=5.0, duration=10.0).batch([2])
    np.testing.assert_array_equal(coarse.inputs[:, 0, 0], [1, 1])


def test_event_batches_are_sorted_padded_and_bin_like_the_binned_ones(shd):
    data = sj.data.SpikingHDF5(shd, n_channels=5, output="events", duration=4.0)
    batch = data.batch([0, 1, 2])
    train = batch.inputs
    assert isinstance(train, sj.SpikeTrain) and train.times.shape == (3, 4) and train.n == 5
    np.testing.assert_allclose(train.times[0], [0.4, 0.4, 1.3, 2.7], rtol=1e-6)
    np.testing.assert_array_equal(train.ids[0, 2:], [2, 4])
    assert sorted(np.asarray(train.ids[0, :2]).tolist()) == [1, 3]
    assert np.all(np.isinf(train.times[1]))
    np.testing.assert_allclose(train.times[2, :2], [3.1, 9.2], rtol=1e-6)
    assert np.isinf(train.times[2, 2:]).all()
    binned = sj.data.SpikingHDF5(shd, n_channels=5, dt=1.0, duration=4.0).batch([0, 1, 2]).inputs
    np.testing.assert_array_equal(train.to_dense(1.0, 4.0), binned)
    fixed = sj.data.SpikingHDF5(shd, n_channels=5, output="events", max_events=6).batch([1, 2])
    assert fixed.inputs.times.shape == (2, 6)
    with pytest.raises(ValueError, match="sample 0 of the batch has 4 events, more than max_events=3"):
        sj.data.SpikingHDF5(shd, n_channels=5, output="events", max_events=3).batch([0])


def test_label_order_and_shuffled_passes(shd):
    data = sj.data.SpikingHDF5(shd, n_channels=5, dt=1.0, duration=4.0)
    batch = data.batch([2, 0])
    np.testing.assert_array_equal(batch.targets, [1, 2])
    np.testing.assert_array_equal(batch.inputs[3, 0], [1, 0, 0, 0, 0])         # sample 2 first
    plain = [b.targets.tolist() for b in data.batches(2)]
    assert plain == [[2, 0], [1]]
    assert [b.targets.tolist() for b in data.batches(2, drop_last=True)] == [[2, 0]]
    order = np.random.default_rng(4).permutation(3)
    shuffled = [b.targets.tolist() for b in data.batches(2, seed=4)]
    assert sum(shuffled, []) == LABELS[order].tolist()


def test_a_subset_becomes_a_dataset_that_fit_trains_on(shd):
    data = sj.data.SpikingHDF5(shd, n_channels=5, dt=1.0, duration=4.0)
    dataset = data.dataset([0, 2])
    np.testing.assert_array_equal(dataset.inputs, data.batch([0, 2]).inputs)
    np.testing.assert_array_equal(dataset.targets, [2, 1])
    net = sj.networks.RSNN(n_in=5, n_rec=4, n_out=3, key=jax.random.key(0))
    _, history = sj.fit(net, sj.rules.Exact(), dataset, optax.adam(1e-2), steps=2, key=jax.random.key(1), batch_size=2)
    assert np.all(np.isfinite(history["loss"]))


def test_only_the_batch_samples_are_read(shd, monkeypatch):
    read = []
    original = h5py.Dataset.__getitem__

    def spy(self, index):
        what = tuple(index) if isinstance(index, list) else index if isinstance(index, int) else "all"
        read.append((self.name, what))
        return original(self, index)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    data = sj.data.SpikingHDF5(shd, n_channels=5)
    assert read == [("/labels", "all")]
    read.clear()
    batch = data.batch([2, 0])
    assert read == [("/spikes/times", (0, 2)), ("/spikes/units", (0, 2))]     # those two samples only
    np.testing.assert_array_equal(batch.targets, [1, 2])


def test_broken_files_give_one_clear_error(tmp_path, unchecked):
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(b"\x89HDF not really" + bytes(200))
    with pytest.raises(ValueError, match="corrupt.h5 is not a readable HDF5 file"):
        sj.data.SpikingHDF5(corrupt)
    with pytest.raises(ValueError, match="no such file"):
        sj.data.SpikingHDF5(tmp_path / "absent.h5")
    for key in ("spikes/times", "spikes/units", "labels"):
        path = write_shd(tmp_path / f"no_{key.replace('/', '_')}.h5", skip=(key,))
        with pytest.raises(ValueError, match=f"missing key '{key}'"):
            sj.data.SpikingHDF5(path)
    short = write_shd(tmp_path / "short.h5", labels=LABELS[:2])
    with pytest.raises(ValueError, match="labels 2; they must agree"):
        sj.data.SpikingHDF5(short)
    with pytest.raises(ValueError, match=r"channel ids must lie in \[0, 3\)"):
        sj.data.SpikingHDF5(write_shd(tmp_path / "ok.h5"), n_channels=3).batch([0])
    with pytest.raises(ValueError, match="duration"):
        sj.data.SpikingHDF5(write_shd(tmp_path / "ok2.h5"), dt=0.3, duration=1.0)


def _camera(records):
    return np.array(records, dtype=[("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", np.int8)])


def test_tonic_camera_events_flatten_like_tonic_frames():
    # sensor (width 4, height 3, 2 polarities): channel = (p * 3 + y) * 4 + x; t in microseconds
    events = _camera([(1, 2, 2500, 1), (3, 0, 500, 0), (0, 1, 1200, 1)])
    train = sj.data.from_tonic(events, sensor_size=(4, 3, 2))
    assert train.n == 24
    np.testing.assert_allclose(train.times, [0.5, 1.2, 2.5])
    np.testing.assert_array_equal(train.ids, [3, 16, 21])
    dense = sj.data.from_tonic(events, sensor_size=(4, 3, 2), dt=1.0, duration=3.0)
    expect = np.zeros((3, 24))
    expect[0, 3] = expect[1, 16] = expect[2, 21] = 1
    np.testing.assert_array_equal(dense, expect)
    # tonic's frames, [time, p, y, x], flattened in C order, hold the same counts
    frames = np.zeros((3, 2, 3, 4))
    for x, y, t, p in events.tolist():
        frames[int(np.ceil(t / 1000)) - 1, p, y, x] += 1
    np.testing.assert_array_equal(dense, frames.reshape(3, -1))


def test_tonic_audio_and_channel_layouts_and_batches():
    audio = np.array([(1500.0, 699, 0), (200.0, 3, 0)], dtype=[("t", np.float64), ("x", np.int32), ("p", np.int8)])
    train = sj.data.from_tonic(audio, sensor_size=(700, 1, 1))
    np.testing.assert_allclose(train.times, [0.2, 1.5])
    np.testing.assert_array_equal(train.ids, [3, 699])
    ch = [np.array([(10, 2), (5, 0)], dtype=[("t", np.int64), ("ch", np.int32)]),
          np.array([(7, 1)], dtype=[("t", np.int64), ("ch", np.int32)])]
    batch = sj.data.from_tonic(ch, time_scale=1.0, sensor_size=(3,))
    assert batch.times.shape == (2, 2) and batch.n == 3
    np.testing.assert_array_equal(batch.times, [[5, 10], [7, np.inf]])
    np.testing.assert_array_equal(batch.ids[0], [0, 2])
    dense = sj.data.from_tonic(ch, time_scale=1.0, sensor_size=(3,), dt=5.0, duration=10.0)
    assert dense.shape == (2, 2, 3)
    np.testing.assert_array_equal(dense[:, 0], [[1, 0, 0], [0, 0, 1]])
    np.testing.assert_array_equal(dense[:, 1], [[0, 0, 0], [0, 1, 0]])


def test_tonic_bad_layouts_name_the_problem(unchecked):
    with pytest.raises(ValueError, match="structured array with a 't' field"):
        sj.data.from_tonic(np.zeros(3))
    with pytest.raises(ValueError, match="need sensor_size"):
        sj.data.from_tonic(_camera([(0, 0, 1, 0)]))
    with pytest.raises(ValueError, match="field 'y' ranges over \\[5, 5\\]"):
        sj.data.from_tonic(_camera([(0, 5, 1, 0)]), sensor_size=(4, 3, 2))
    with pytest.raises(ValueError, match="both dt and duration"):
        sj.data.from_tonic(_camera([(0, 0, 1, 0)]), sensor_size=(4, 3, 2), dt=1.0)
