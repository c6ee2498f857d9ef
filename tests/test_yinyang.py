"""Yin-Yang data (Kriener et al. 2022), a silent QIF network learning it, and the exact_spikes CLI."""

import json
from pathlib import Path

import jax
import numpy as np
import pytest

import simjax as sj
from simjax._app.experiments.exact_spikes import DEFAULTS, train_yinyang
from simjax.tasks._yin_yang import yin_yang_class

ROOT = Path(__file__).resolve().parent.parent


def test_class_regions_are_point_symmetric_with_the_expected_areas():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0.0, 1.0, (400_000, 2))
    xy = xy[np.hypot(xy[:, 0] - 0.5, xy[:, 1] - 0.5) <= 0.5]
    c = yin_yang_class(xy[:, 0], xy[:, 1])
    # Dots: two disks of radius 0.1 in the disk of radius 0.5 -> 8 %; yin and yang share the rest.
    frac = np.bincount(c, minlength=3) / len(c)
    np.testing.assert_allclose(frac, [0.46, 0.46, 0.08], atol=0.005)
    # Rotating by 180 degrees about the centre swaps yin and yang and keeps the dots.
    mirrored = yin_yang_class(1.0 - xy[:, 0], 1.0 - xy[:, 1])
    ok = np.hypot(xy[:, 0] - 0.5, xy[:, 1] - 0.5) < 0.499  # (away from the rim, where rounding decides)
    np.testing.assert_array_equal(np.where(c == 2, 2, 1 - c)[ok], mirrored[ok])
    np.testing.assert_array_equal(yin_yang_class(np.array([0.25, 0.75, 0.5, 0.5, 0.25]),
                                                 np.array([0.5, 0.5, 0.9, 0.1, 0.35])), [2, 2, 1, 0, 1])


def test_generated_sets_are_seeded_balanced_and_encoded_as_spike_times():
    task = sj.tasks.YinYang(seed=3, n_train=300, n_test=90)
    again = sj.tasks.YinYang(seed=3, n_train=300, n_test=90)
    other = sj.tasks.YinYang(seed=4, n_train=300, n_test=90)
    np.testing.assert_array_equal(task.train_xy, again.train_xy)
    assert not np.allclose(task.train_xy, other.train_xy)
    assert not np.allclose(task.train_xy[:90], task.test_xy)
    for xy, labels, n in ((task.train_xy, task.train_labels, 300), (task.test_xy, task.test_labels, 90)):
        xy, labels = np.asarray(xy), np.asarray(labels)
        assert xy.shape == (n, 2) and np.all(np.bincount(labels) == n // 3)
        assert np.all(np.hypot(xy[:, 0] - 0.5, xy[:, 1] - 0.5) <= 0.5)
        np.testing.assert_array_equal(yin_yang_class(xy[:, 0], xy[:, 1]), labels)
    default = sj.tasks.YinYang()
    assert default.train_labels.shape == (5000,) and default.test_labels.shape == (1000,)
    spikes = task.encode(np.array([[0.0, 1.0], [0.25, 0.5]]))
    t0, t1, tb = task.t_min, task.t_max, task.t_bias
    np.testing.assert_allclose(spikes.times, [[t0, t1, t1, t0, tb],
                                              [t0 + 0.25 * (t1 - t0), t0 + 0.5 * (t1 - t0), t0 + 0.75 * (t1 - t0),
                                               t0 + 0.5 * (t1 - t0), tb]])
    batch = task.sample(jax.random.key(0), 7)
    assert batch.inputs.times.shape == (7, 5) and batch.targets.shape == (7,) and batch.inputs.n == 5


def test_silent_qif_network_learns_yinyang_with_pseudospikes():
    """5-30-3 QIF network with no output spike at the start; exact gradients through spikes and
    pseudospikes, 1500 training points, 6 epochs: >= 90 % test accuracy (500 test points)."""
    y = DEFAULTS["yinyang"]
    task = sj.tasks.YinYang(seed=0, n_train=1500, n_test=500, pseudo_drive=DEFAULTS["demo"]["pseudo_drive"],
                            tau=y["tau"], missing_weight=y["missing_weight"])
    net = sj.networks.SpikingFeedForward((5, 30, 3), sj.neurons.QIF(bias=-1.0), key=jax.random.key(0),
                                         scale=[4.0, 1.0])
    _, hist = train_yinyang(net, task, epochs=6, batch_size=25, learning_rate=1e-2, key=jax.random.key(1),
                            log=lambda *_: None)
    assert hist["initial"]["silent"] == 1.0 and hist["initial"]["accuracy"] == 0.0
    final = hist["epochs"][-1]
    assert final["test_accuracy"] >= 0.9
    assert final["test_silent"] < 0.05
    assert sum(r["nonfinite_steps"] for r in hist["epochs"]) == 0


def test_single_neuron_demo_quick_mode(tmp_path, capsys):
    # In process (the CLI's own entry point) rather than in a new interpreter: no second start-up of JAX.
    from simjax._app.cli import main

    code = main(["run", str(ROOT / "configs" / "exact_single_neuron.toml"), "--quick", "--out", str(tmp_path)])
    assert code == 0, capsys.readouterr().err
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["qif"]["jump_ratio_on_4x_finer_grid"] < 0.35  # continuous: jumps shrink with the step
    assert summary["lif"]["jump_ratio_on_4x_finer_grid"] > 0.9   # a jump that refinement keeps
    addition = summary["addition"]
    assert addition["t_start"] > summary["t1"] and addition["monotone"]
    assert addition["t_end"] == pytest.approx(summary["target"], abs=1e-3)
    assert (tmp_path / "loss_along_line.png").stat().st_size > 1000


@pytest.mark.parametrize("kwargs, match", [
    ({"n_train": 2}, "n_train must be an int >= 3"),
    ({"seed": -1}, "seed must be a non-negative int"),
    ({"t_min": 1.0, "t_max": 0.5}, "t_min < t_max <= t1"),
    ({"pseudo_drive": -1.0}, "pseudo_drive must be a positive number or None"),
    ({"tau": 0.0}, "tau must be finite and > 0"),
    ({"early_weight": -0.1}, "early_weight must be finite and >= 0"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sj.tasks.YinYang(n_train=30, n_test=30, **kwargs) if "n_train" not in kwargs else sj.tasks.YinYang(**kwargs)


def test_bad_points_and_config_values(unchecked):
    task = sj.tasks.YinYang(n_train=30, n_test=30)
    with pytest.raises(ValueError, match=r"expected \[..., 2\]"):
        task.encode(np.zeros((4, 3)))
    bad = ROOT / "configs" / "exact_yinyang.toml"
    from simjax._app.cli import _merged
    from simjax._app.config import ConfigError, load
    from simjax._app.experiments import exact_spikes

    raw = load(bad)
    raw["yinyang"]["models"] = ["qif_exact", "bptt"]
    with pytest.raises(ConfigError, match="yinyang.models"):
        _merged(exact_spikes, raw, False)
    raw = load(bad)
    raw["demo"]["pseudo_drive"] = 0.5
    with pytest.raises(ConfigError, match="demo.pseudo_drive = 0.5 is not allowed"):
        _merged(exact_spikes, raw, False)
    raw = load(bad)
    raw["yinyang"]["lif_pseudo_drive"] = 0.9
    with pytest.raises(ConfigError, match="yinyang.lif_pseudo_drive = 0.9 is not allowed"):
        _merged(exact_spikes, raw, False)
