"""The 8x8 digits task: split, spike codes, loss, and an RSNN that learns it (Exact, FA, SS, DFA)."""

import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from sklearn.datasets import load_digits

import simjax as sj
from simjax.tasks import _digits as digits_module

N_IMAGES = 1797


def _rows(a):
    return sorted(map(bytes, np.asarray(a, np.float64)))


def test_split_is_a_seeded_partition_of_the_bundled_images():
    train, test = sj.tasks.Digits(split="train", seed=3), sj.tasks.Digits(split="test", seed=3)
    assert train.size + test.size == N_IMAGES and test.size == round(0.2 * N_IMAGES)
    data = load_digits()
    assert _rows(np.concatenate([np.asarray(train.images), np.asarray(test.images)])) == _rows(data.data / 16.0)
    # Labels travel with their images.
    lookup = {bytes(np.asarray(x / 16.0, np.float64)): int(y) for x, y in zip(data.data, data.target)}
    assert all(lookup[bytes(x)] == int(y) for x, y in zip(np.asarray(test.images), np.asarray(test.labels)))
    again, other = sj.tasks.Digits(split="test", seed=3), sj.tasks.Digits(split="test", seed=4)
    assert jnp.array_equal(again.images, test.images) and not jnp.array_equal(other.images, test.images)


def test_rate_code_spike_probability():
    task = sj.tasks.Digits("rate", duration=400.0, dt=0.5, max_rate=600.0, split="test")
    images = task.images[:20]
    spikes = task.encode(jax.random.key(0), images)
    assert spikes.shape == (800, 20, 64) and set(np.unique(np.asarray(spikes))) <= {0.0, 1.0}
    p = np.minimum(1.0, 600.0 * 0.5 / 1000.0 * np.asarray(images))  # 0.3 per step for a white pixel
    freq = np.asarray(spikes.mean(axis=0))
    assert np.all(np.abs(freq - p) <= 5 * np.sqrt(p * (1 - p) / 800) + 1e-12)
    assert np.all(freq[p == 0] == 0)


def test_latency_code_one_spike_per_pixel_earlier_when_brighter():
    task = sj.tasks.Digits("latency", duration=17.0, dt=1.0, split="test")
    spikes = np.asarray(task.full().inputs)
    images = np.asarray(task.images)
    assert spikes.shape == (17, task.size, 64)
    counts = spikes.sum(axis=0)
    assert np.array_equal(counts, (images > 0).astype(np.float64))
    # 17 steps: the grey level g = 16 x spikes at step 16 - g exactly.
    when = np.argmax(spikes, axis=0)
    on = images > 0
    assert np.array_equal(when[on], (16 - np.round(16 * images))[on].astype(int))


def test_sample_is_jittable_and_labels_match_inputs():
    task = sj.tasks.Digits("latency", duration=17.0, dt=1.0, split="train", seed=1)
    batch = eqx.filter_jit(lambda t, k: t.sample(k, 32))(task, jax.random.key(5))
    assert batch.inputs.shape == (17, 32, 64) and batch.targets.shape == (32,) and batch.targets.dtype == jnp.int32
    # Decode the latency code back to grey levels and look the images up in the bundled data.
    spikes = np.asarray(batch.inputs)
    grey = np.where(spikes.sum(0) > 0, 16 - np.argmax(spikes, axis=0), 0) / 16.0
    data = load_digits()
    lookup = {bytes(np.asarray(x / 16.0, np.float64)): int(y) for x, y in zip(data.data, data.target)}
    assert [lookup[bytes(np.asarray(g, np.float64))] for g in grey] == np.asarray(batch.targets).tolist()
    other = task.sample(jax.random.key(6), 32)
    assert not jnp.array_equal(other.targets, batch.targets) or not jnp.array_equal(other.inputs, batch.inputs)


def test_loss_and_accuracy_closed_form():
    rng = np.random.default_rng(0)
    readout = rng.standard_normal((5, 4, 10))
    labels = np.array([3, 1, 0, 9], np.int32)
    out = sj.Output(spikes=None, v=None, readout=jnp.asarray(readout), final_state=None, info={})
    batch = sj.tasks.Batch(inputs=None, targets=jnp.asarray(labels))
    for mode, logits in (("mean", readout.mean(0)), ("last", readout[-1])):
        task = sj.tasks.Digits(split="test", readout=mode)
        log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        m = task.metrics(out, batch)
        np.testing.assert_allclose(float(task.loss(out, batch)), -log_p[np.arange(4), labels].mean(), rtol=1e-12)
        assert float(m["accuracy"]) == np.mean(np.argmax(logits, -1) == labels)


def test_bad_input(monkeypatch, unchecked):
    with pytest.raises(ValueError, match="unknown coding 'phase'"):
        sj.tasks.Digits(coding="phase")
    with pytest.raises(ValueError, match="unknown split 'valid'"):
        sj.tasks.Digits(split="valid")
    with pytest.raises(ValueError, match="test_fraction must lie in"):
        sj.tasks.Digits(test_fraction=1.5)
    with pytest.raises(ValueError, match="dt must be finite and > 0"):
        sj.tasks.Digits(dt=0.0)
    task = sj.tasks.Digits(split="test")
    with pytest.raises(ValueError, match=r"batch_size must be an int in \[1, 359\]"):
        task.sample(jax.random.key(0), 1000)
    out = sj.Output(spikes=None, v=None, readout=jnp.zeros((3, 2, 4)), final_state=None, info={})
    with pytest.raises(ValueError, match="readout has 4 units, expected 10"):
        task.loss(out, sj.tasks.Batch(inputs=None, targets=jnp.zeros(2, jnp.int32)))
    digits_module._load_digits.cache_clear()
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    try:
        with pytest.raises(ImportError, match=r"scikit-learn.*simjax\[data\]"):
            sj.tasks.Digits()
    finally:
        digits_module._load_digits.cache_clear()


def test_rsnn_learns_digits():
    """64 inputs -> 100 LIF -> 10 readouts, latency-coded 20-step trials, 300 Adam steps."""
    kwargs = {"coding": "latency", "duration": 20.0, "dt": 1.0, "seed": 0}
    train, test = sj.tasks.Digits(split="train", **kwargs), sj.tasks.Digits(split="test", **kwargs)
    net = sj.networks.RSNN(64, 100, 10, sj.neurons.LIF(tau_mem=10.0), key=jax.random.key(0), in_scale=4.0,
                           tau_out=10.0)
    evaluate = eqx.filter_jit(lambda model: test.evaluate(model))
    chance = float(evaluate(net)["accuracy"])
    rules = {"exact": sj.rules.Exact(), "feedback alignment": sj.rules.FeedbackAlignment(key=1),
             "sign symmetry": sj.rules.SignSymmetry(),
             "direct feedback alignment": sj.rules.DirectFeedbackAlignment(key=1)}
    accuracy = {}
    for name, rule in rules.items():
        trained, history = sj.fit(net, rule, train, optax.adam(3e-3), steps=300, key=jax.random.key(1), batch_size=64)
        accuracy[name] = float(evaluate(trained)["accuracy"])
        assert np.all(np.isfinite(np.asarray(history["loss"])))
        assert float(jnp.mean(history["loss"][-20:])) < float(jnp.mean(history["loss"][:20]))
        print(f"digits, RSNN, {name}: test accuracy {accuracy[name]:.3f} (untrained {chance:.3f})")
    assert accuracy["exact"] >= 0.90
    for name in ("feedback alignment", "sign symmetry", "direct feedback alignment"):
        assert np.isfinite(accuracy[name]) and accuracy[name] > 0.3  # chance is 0.1
