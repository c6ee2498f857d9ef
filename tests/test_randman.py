"""Randman (Zenke & Vogels 2021): the manifolds against a direct evaluation of their formula, seeding,
the spike encoding, and a recurrent LIF network that learns the quick config."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import simjax as sj
from simjax._app import config as cfgmod
from simjax._app.experiments import randman as experiment
from simjax.tasks._randman import evaluate_manifold, manifold_parameters


def test_manifold_matches_its_formula_term_by_term():
    alpha = 1.5
    params = manifold_parameters(7, 2, 1, 3, 2, alpha)
    assert params.shape == (2, 1, 3, 2, 3, math.ceil(1e-3 ** (-1 / alpha)))
    assert np.all(params[..., 0, 0] == 0.0)                      # no constant term
    x = np.array([[0.1, 0.7], [0.93, 0.02]])
    got = np.asarray(evaluate_manifold(params, x, alpha))
    assert got.shape == (2, 1, 3, 2)
    for k in range(2):
        for n in range(3):
            for b in range(2):
                value = 1.0
                for d in range(2):
                    a, f, c = params[k, 0, n, d]
                    value *= sum(a[i] * (i + 1.0) ** -alpha * math.sin(2 * math.pi * (i * x[b, d] * f[i] + c[i]))
                                 for i in range(len(a)))
                np.testing.assert_allclose(got[k, 0, n, b], value, rtol=1e-12, atol=1e-14)


def test_same_seed_same_data_other_seed_other_manifolds():
    make = lambda seed: sj.tasks.Randman(n_classes=3, n_in=6, dim_manifold=2, n_spikes=2, duration=40.0,
                                         seed=seed)
    a, b, c = make(1), make(1), make(2)
    np.testing.assert_array_equal(a.params, b.params)
    assert not np.allclose(a.params, c.params)
    key = jax.random.key(5)
    x, y = a.sample(key, 8), b.sample(key, 8)
    np.testing.assert_array_equal(x.inputs, y.inputs)
    np.testing.assert_array_equal(x.targets, y.targets)
    assert not np.array_equal(a.sample(jax.random.key(6), 8).inputs, x.inputs)


def test_each_unit_fires_n_spikes_in_the_window_and_clock_inputs_bin_the_event_times():
    task = sj.tasks.Randman(n_classes=4, n_in=5, dim_manifold=1, n_spikes=2, duration=30.0, dt=0.5,
                            step_frac=0.5, seed=3)
    key = jax.random.key(0)
    events, dense = task.sample_events(key, 16), task.sample(key, 16)
    times = np.asarray(events.inputs.times)
    assert times.shape == (16, 10) and np.all(np.diff(times, axis=1) >= 0)
    assert np.all((times >= 0) & (times <= 15.0))
    np.testing.assert_array_equal(events.targets, dense.targets)
    counts = np.asarray(dense.inputs).sum(axis=0)
    np.testing.assert_array_equal(counts, np.full((16, 5), 2.0))
    # hand binning: a spike at t lands in step ceil(t / dt) - 1 (step 0 for t = 0)
    expect = np.zeros((60, 16, 5))
    for b in range(16):
        for t, n in zip(times[b], np.asarray(events.inputs.ids)[b]):
            expect[max(math.ceil(t / 0.5) - 1, 0), b, n] += 1
    np.testing.assert_array_equal(np.asarray(dense.inputs), expect)
    # the unit's value is its standardised manifold coordinate: the whole [0, 1] range is used
    labels, points = task.draw(jax.random.key(1), 2000)
    unit = np.asarray(task.spike_times(labels, points)) / 15.0
    assert unit.min() < 0.02 and unit.max() > 0.98
    # and the labels are uniform over the classes
    assert set(np.unique(labels)) == {0, 1, 2, 3}


def test_logits_by_readout_mode():
    readout = jnp.asarray(np.random.default_rng(0).normal(size=(7, 3, 4)))
    batch = sj.tasks.Batch(inputs=None, targets=jnp.array([0, 1, 2]))
    for mode, expect in (("max", readout.max(0)), ("mean", readout.mean(0)), ("last", readout[-1])):
        task = sj.tasks.Randman(n_classes=4, n_in=3, duration=7.0, readout=mode)
        np.testing.assert_allclose(task.logits(readout), expect)
        loss = task.loss(sj.Output(spikes=None, v=None, readout=readout, final_state=None, info={}), batch)
        logp = expect - jax.nn.logsumexp(expect, axis=-1, keepdims=True)
        np.testing.assert_allclose(loss, -np.mean(np.asarray(logp)[np.arange(3), [0, 1, 2]]), rtol=1e-12)


def test_bad_arguments_name_the_value(unchecked):
    with pytest.raises(ValueError, match="n_classes"):
        sj.tasks.Randman(n_classes=1)
    with pytest.raises(ValueError, match="step_frac"):
        sj.tasks.Randman(step_frac=1.5)
    with pytest.raises(ValueError, match="readout"):
        sj.tasks.Randman(readout="sum")
    with pytest.raises(cfgmod.ConfigError, match="task.n_classes"):
        experiment.validate(cfgmod.merge(experiment.DEFAULTS, {"task": {"n_classes": 1}}))


def test_rsnn_learns_the_quick_config(tmp_path):
    """The quick variant of `configs/randman.toml`: 4 classes, 20 inputs, 1-D manifolds, 32 LIF
    neurons, 150 Adam steps of BPTT; held-out accuracy above 75 % (chance 25 %)."""
    cfg = cfgmod.merge(cfgmod.merge(experiment.DEFAULTS, cfgmod.load("configs/randman.toml")), experiment.QUICK)
    experiment.validate(cfg)
    summary = experiment.run(cfg, tmp_path)
    assert summary["chance"] == 0.25
    assert summary["validation_accuracy"] > 0.75
    assert (tmp_path / "summary.json").is_file()
