"""Sequential learning (A then B): tasks, learned-connectivity projections, `train_sequence`, the
interference measures, and a quick reproduction of the experiment through its config."""

import copy
import csv
import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from simjax import Output
from simjax._app.cli import _merged
from simjax._app.config import ConfigError, load
from simjax._app.experiments import interference as experiment
from simjax._fit.fit import fit
from simjax._fit.sequential import TaskLosses, train_sequence
from simjax.analysis import angle, relative_interference, update_overlap
from simjax.networks import FullUpdate, LowRankUpdate, RateRNN, SubspaceUpdate, random_coupling
from simjax.neurons import LeakyRate
from simjax.parameters import params
from simjax.rules import Exact, WeightPerturbation
from simjax.synapses import Dense
from simjax.tasks import FixedPointMemory, InputTracking, SineGeneration, orthonormal_patterns

N = 10


def test_orthonormal_patterns_are_gram_schmidt_of_gaussians():
    key = jax.random.key(4)
    p = np.asarray(orthonormal_patterns(N, 3, key=key))
    np.testing.assert_allclose(p @ p.T, N * np.eye(3), atol=1e-10)
    gauss = np.asarray(jax.random.normal(key, (N, 3)))
    basis = []
    for v in gauss.T:  # classical Gram-Schmidt, by hand
        for q in basis:
            v = v - (v @ q) * q
        basis.append(v / np.linalg.norm(v))
    np.testing.assert_allclose(p, np.sqrt(N) * np.array(basis), atol=1e-10)
    np.testing.assert_array_equal(p, orthonormal_patterns(N, 3, key=key))
    with pytest.raises(ValueError, match="count"):
        orthonormal_patterns(N, N + 1, key=key)


def test_fixed_point_memory_signals_and_loss():
    pattern = orthonormal_patterns(N, 1, key=jax.random.key(0))[0]
    task = FixedPointMemory(pattern, dt=0.25, duration=8.0, window=(5.0, 8.0))
    batch = task.sample(jax.random.key(1), 3)
    t = np.arange(1, 33) * 0.25
    s = np.where(t <= 1.0, 1.0, 0.0)  # steps covering (0, 1]
    expected = np.broadcast_to(s[:, None, None] * np.asarray(pattern), (32, 3, N))
    np.testing.assert_allclose(batch.inputs, expected, atol=0)
    np.testing.assert_allclose(batch.mask[:, 0], (t >= 5.0).astype(float))
    np.testing.assert_allclose(batch.targets, 0.5)
    # The readout z = p . rates / N of a hand-made output, and the window's squared error.
    rates = jnp.broadcast_to(0.3 * pattern / N * np.linspace(0, 2, 32)[:, None, None] * N, (32, 3, N))
    z = 0.3 * np.linspace(0, 2, 32)
    out = Output(spikes=rates, v=None, readout=None, final_state=None, info={})
    np.testing.assert_allclose(task.readout(out)[:, 0], z, rtol=1e-12)
    expected = np.sum((t >= 5.0) * (z - 0.5) ** 2) / np.sum(t >= 5.0)
    np.testing.assert_allclose(task.loss(out, batch), expected, rtol=1e-12)
    with pytest.raises(ValueError, match="window"):
        FixedPointMemory(pattern, window=(5.0, 30.0))


def test_sine_and_input_tracking_targets():
    pattern = orthonormal_patterns(N, 1, key=jax.random.key(0))[0]
    sine = SineGeneration(pattern, period=4.0, amplitude_out=0.5, dt=0.5, duration=10.0, window=(5.0, 10.0))
    _, target, mask = sine.signals(None, 2)
    t = np.arange(1, 21) * 0.5
    np.testing.assert_allclose(target[:, 1], 0.5 * np.sin(2 * np.pi * t / 4.0), atol=1e-12)
    np.testing.assert_allclose(mask[:, 0], (t >= 5.0).astype(float))
    track = InputTracking(pattern, segments=4, gain=0.5, settle=1.0, duration=8.0, dt=0.5)
    batch = track.sample(jax.random.key(2), 5)
    s = np.asarray(batch.inputs @ pattern / N)
    np.testing.assert_allclose(batch.targets, 0.5 * s, atol=1e-12)
    levels = s.reshape(4, 4, 5)  # 4 segments of 4 steps: constant within each
    np.testing.assert_allclose(levels, np.broadcast_to(levels[:, :1], levels.shape), atol=1e-12)
    assert np.all(np.abs(s) <= 1.0) and np.unique(levels[:, 0]).size == 20
    # The first `settle` time units after each change (2 steps of 0.5) are not scored.
    np.testing.assert_allclose(batch.mask[:, 0], np.tile([0.0, 0.0, 1.0, 1.0], 4))


def test_learned_connectivity_projections_and_what_learns():
    key = jax.random.key(3)
    base = random_coupling(N, 0.8, key=key)
    np.testing.assert_allclose(jnp.std(base) * np.sqrt(N), 0.8, rtol=0.2)
    delta = 0.1 * jax.random.normal(jax.random.key(4), (N, N))
    low = LowRankUpdate.init(base, 2, key=jax.random.key(5), scale=0.3)
    basis = orthonormal_patterns(N, 2, key=key).T
    m = jnp.array([[0.5, -0.2], [0.3, 1.0]])
    pre = jax.random.normal(jax.random.key(6), (3, N))
    cases = [(FullUpdate(base, delta), delta), (low, low.v @ low.u.T / N), (SubspaceUpdate(base, basis, m),
                                                                             (basis @ m @ basis.T / N).T)]
    for proj, learned in cases:
        np.testing.assert_allclose(proj.dense(), base + learned, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(proj(pre), pre @ (base + learned), rtol=1e-12, atol=1e-13)
        net = RateRNN(N, N, 1, LeakyRate(tau=1.0), w_in=Dense(jnp.eye(N)), w_rec=proj, w_out=jnp.zeros((N, 1)),
                      trainable=("w_rec",))
        p = params(net)
        assert p.w_rec.base is None and p.w_in.weight is None
        assert all(getattr(p.w_rec, name) is not None for name in proj.trainable)
    with pytest.raises(ValueError, match="delta"):
        FullUpdate(base, jnp.zeros((N, N + 1)))
    with pytest.raises(ValueError, match="rank"):
        LowRankUpdate.init(base, 0, key=key)
    with pytest.raises(ValueError, match="m has shape"):
        SubspaceUpdate(base, basis, jnp.zeros((3, 3)))


def small_setup(g=0.5, n=8):
    a, b = orthonormal_patterns(n, 2, key=jax.random.key(0))
    base = random_coupling(n, g, key=jax.random.key(1)).T
    net = RateRNN(n, n, 1, LeakyRate(tau=1.0), w_in=Dense(jnp.eye(n)), w_rec=FullUpdate(base),
                  w_out=jnp.zeros((n, 1)), trainable=("w_rec",))
    tasks = tuple(FixedPointMemory(p, dt=0.5, duration=8.0, window=(5.0, 8.0)) for p in (a, b))
    return net, tasks


def test_train_sequence_is_consecutive_fits_with_tracked_losses():
    net, (task_a, task_b) = small_setup()
    key, steps, opt = jax.random.key(9), 6, optax.sgd(2.0)

    def loss(model, task):
        batch = task.sample(jax.random.key(0), 1)
        return task.loss(task.forward(model, batch), batch)

    @eqx.filter_jit
    def everything(net):
        models, hist = train_sequence(net, Exact(), (task_a, task_b), opt, steps=steps, key=key, eval_every=2)
        ref_a, _ = fit(net, Exact(), task_a, opt, steps=steps, key=jax.random.fold_in(key, 0), batch_size=1)
        ref_b, _ = fit(ref_a, Exact(), task_b, opt, steps=steps, key=jax.random.fold_in(key, 1), batch_size=1)
        expected = jnp.array([[loss(m, t) for t in (task_a, task_b)] for m in (net, *models)])
        return models, hist, (ref_a, ref_b), expected

    (after_a, after_b), hist, refs, expected = everything(net)
    for got, ref in zip((after_a, after_b), refs):
        np.testing.assert_allclose(got.w_rec.delta, ref.w_rec.delta, rtol=1e-12, atol=1e-14)
    assert float(jnp.max(jnp.abs(after_b.w_rec.delta - after_a.w_rec.delta))) > 1e-3  # B learned something
    np.testing.assert_allclose(hist["losses"], expected, rtol=1e-12)
    ev = np.asarray(hist["eval"])
    assert ev.shape == (2 * steps + 1, 2) and hist["loss"].shape == (2 * steps,)
    np.testing.assert_allclose(ev[[0, steps, 2 * steps]], expected, rtol=1e-12)
    assert np.all(np.isnan(ev[1::2][:-1])) and not np.any(np.isnan(ev[::2]))
    np.testing.assert_array_equal(hist["phase"], np.repeat([0, 1], steps))
    # The tracked training loss of phase A's first step is L_A at the start.
    np.testing.assert_allclose(hist["loss"][0], expected[0, 0], rtol=1e-12)
    with pytest.raises(ValueError, match="steps"):
        train_sequence(net, Exact(), (task_a, task_b), opt, steps=(3,), key=key)
    with pytest.raises(ValueError, match="one batch per task"):
        TaskLosses((task_a,), ())


def test_train_sequence_vmaps_over_hyper_parameters():
    _, (task_a, task_b) = small_setup()

    def one(g):
        net, _ = small_setup(g)
        _, hist = train_sequence(net, Exact(), (task_a, task_b), optax.sgd(2.0), steps=3, key=jax.random.key(0))
        return hist["losses"]

    gs = jnp.array([0.0, 0.9])
    batched = jax.jit(jax.vmap(one))(gs)
    single = jax.jit(one)
    for i, g in enumerate(gs):
        np.testing.assert_allclose(batched[i], single(g), rtol=1e-10)
    assert not np.allclose(batched[0], batched[1])


def test_train_sequence_with_a_stochastic_rule_and_low_rank_updates():
    """Any rule: weight perturbation (its noise drawn from the phase keys) gives the same models as
    consecutive `fit` calls; a rank-R Delta J = U V^T / N stays of rank R while both tasks are learned."""
    net, (task_a, task_b) = small_setup()
    rule, opt, key = WeightPerturbation(sigma=1e-4, samples=4), optax.sgd(2.0), jax.random.key(5)

    @eqx.filter_jit
    def both(net):
        models, _ = train_sequence(net, rule, (task_a, task_b), opt, steps=3, key=key)
        ref_a, _ = fit(net, rule, task_a, opt, steps=3, key=jax.random.fold_in(key, 0), batch_size=1)
        ref_b, _ = fit(ref_a, rule, task_b, opt, steps=3, key=jax.random.fold_in(key, 1), batch_size=1)
        return models, (ref_a, ref_b)

    models, refs = both(net)
    for got, ref in zip(models, refs):
        np.testing.assert_allclose(got.w_rec.delta, ref.w_rec.delta, rtol=1e-12, atol=1e-14)
    assert float(jnp.max(jnp.abs(models[1].w_rec.delta - models[0].w_rec.delta))) > 1e-4

    cfg = {"model": {"n": 8, "tau": 1.0, "structure": "low_rank", "rank": 1, "init_scale": 0.5}}
    low, _ = experiment.make_network(cfg, 0.5, jax.random.key(2))
    (after_a, after_b), hist = eqx.filter_jit(
        lambda m: train_sequence(m, Exact(), (task_a, task_b), optax.sgd(2.0), steps=20, key=key))(low)
    for model in (after_a, after_b):
        sv = np.linalg.svd(np.asarray(model.w_rec.learned()), compute_uv=False)
        assert sv[0] > 1e-2 and np.all(sv[1:] < 1e-12 * sv[0])
    losses = np.asarray(hist["losses"])
    assert losses[1, 0] < 0.5 * losses[0, 0] and losses[2, 1] < 0.5 * losses[1, 1]
    assert np.all(after_b.w_rec.base == low.w_rec.base)  # the random part stays fixed


def test_interference_measures_closed_forms():
    losses = jnp.array([[0.4, 0.3], [0.1, 0.35], [0.2, 0.05]])
    np.testing.assert_allclose(relative_interference(losses), (0.2 - 0.1) / 0.4)
    np.testing.assert_allclose(relative_interference(jnp.stack([losses, losses])), [0.25, 0.25])
    net, _ = small_setup()
    d_a = jax.random.normal(jax.random.key(1), (8, 8))
    d_b = jax.random.normal(jax.random.key(2), (8, 8))
    with_delta = lambda d: eqx.tree_at(lambda m: m.w_rec.delta, net, d)
    cos = np.sum(d_a * d_b) / (np.linalg.norm(d_a) * np.linalg.norm(d_b))
    np.testing.assert_allclose(update_overlap(net, with_delta(d_a), with_delta(d_a + d_b)), cos, rtol=1e-10)
    np.testing.assert_allclose(update_overlap(net, net, with_delta(d_b)), 0.0)
    np.testing.assert_allclose(angle(jnp.array([1.0, 0.0]), jnp.array([1.0, 1.0])), 45.0, rtol=1e-12)


def test_quick_run_of_the_config(tmp_path):
    """The quick version of `configs/interference_g.toml` (N = 48, 60 Adam steps per task at 5x the
    learning rate, g in {0, 1}, 4 seeds, all modes): one vmapped program. What it must show at this size."""
    cfg = _merged(experiment, load("configs/interference_g.toml"), quick=True)
    summary = experiment.run(cfg, tmp_path)
    rows = list(csv.DictReader(open(tmp_path / "runs.csv")))
    assert len(rows) == 2 * 4 * 3 and summary["runs"] == 24
    col = lambda mode, key, g=None: np.array([float(r[key]) for r in rows
                                              if r["mode"] == mode and (g is None or float(r["g"]) == g)])
    for mode in ("recurrent", "both"):
        # Recurrent learning solves both memories one after the other ...
        assert np.all(col(mode, "loss_A_after_A") < 0.02 * col(mode, "loss_A_init"))
        assert np.all(col(mode, "loss_B_after_B") < 0.02 * col(mode, "loss_A_init"))
        # ... with true, stable fixed points (Newton from the end of A's trial) ...
        assert np.all(col(mode, "fp_residual_max") < 1e-8) and np.all(col(mode, "fp_max_real_after_A") < 0)
        # ... and learning B turns the fixed point that A's cue reaches, although a and b are orthogonal.
        assert np.all(col(mode, "fp_angle_A") > 20.0)
    # The plane part of B's change: rotation dominates for g = 0, less so for g = 1 (growth on b catches up).
    margin = lambda g: col("recurrent", "mode_rotation", g) - col("recurrent", "mode_growth", g)
    assert np.all(margin(0.0) > 0) and np.mean(margin(1.0)) < 0.5 * np.mean(margin(0.0))
    # Input weights alone cannot hold a memory without recurrence (g = 0): nothing is learned, nothing is lost.
    assert np.all(col("input", "loss_A_after_A", 0.0) > 0.9 * col("input", "loss_A_init", 0.0))
    assert np.all(np.abs(col("input", "interference")) < 0.01)
    # Outputs: tidy curves, per-run table, summary, figures.
    header = (tmp_path / "results.csv").read_text().splitlines()[0]
    assert header == "mode,g,seed,step,phase,metric,value"
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert set(saved["per_mode"]) == {"recurrent", "input", "both"}
    for name in ("interference_vs_g.png", "loss_curves.png", "plane_flow.png", "learning_modes.png"):
        assert (tmp_path / name).stat().st_size > 5000


def test_config_errors_name_the_value():
    cfg = _merged(experiment, load("configs/interference_g.toml"), quick=True)
    for section, key, value, match in (("model", "structure", "dense", "model.structure"),
                                       ("sweep", "modes", ["recurrent", "output"], "sweep.modes"),
                                       ("train", "eval_every", 7, "train.eval_every"),
                                       ("task", "kind", "memory", "task.kind")):
        bad = copy.deepcopy(cfg)
        bad[section][key] = value
        with pytest.raises(ConfigError, match=match):
            experiment.validate(bad)
