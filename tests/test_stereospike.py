"""StereoSpike: the one-step convolutional spiking blocks against closed forms and NumPy/SciPy
re-implementations, the depth losses, the random-dot stereogram generator's geometry, and bad input."""

import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.signal import correlate2d

import simjax as sj
from simjax._app import config as cfgmod
from simjax._app.experiments import stereospike
from simjax.networks import (
    FULL_CHANNELS,
    SCALED_CHANNELS,
    DecoderStage,
    DepthReadout,
    SEWBlock,
    StatelessIF,
    StereoSpike,
    UpsampleConv,
)
from simjax.synapses import Conv2d

# ---------------------------------------------------------------------------------------------- neurons


def test_stateless_if_spikes_iff_input_reaches_threshold():
    x = jnp.array([-2.0, 0.0, 0.999, 1.0, 1.001, 3.0])
    np.testing.assert_array_equal(StatelessIF()(x), (np.asarray(x) >= 1.0).astype(float))


def test_arctan_surrogate_derivative_is_alpha_over_two_at_threshold_and_the_closed_form_elsewhere():
    neuron = StatelessIF()  # Arctan(alpha=2)
    grad = jax.vmap(jax.grad(lambda v: neuron(v)))
    v = jnp.array([1.0, 0.5, 1.3, -1.0])
    expected = 1.0 / (1.0 + (np.pi / 2 * 2.0 * (np.asarray(v) - 1.0)) ** 2)
    np.testing.assert_allclose(grad(v), expected, rtol=1e-12)
    assert float(grad(jnp.array([1.0]))[0]) == 1.0


# ---------------------------------------------------------------------------------------------- blocks


def _numpy_upsample_conv(x, weight, bias, size):
    """Independent NN-resize (index floor(i * in / out)) + valid cross-correlation, [B, C, h, w]."""
    kh, kw = weight.shape[-2:]
    h2, w2 = size[0] + kh - 1, size[1] + kw - 1
    rows = np.floor(np.arange(h2) * x.shape[-2] / h2).astype(int)
    cols = np.floor(np.arange(w2) * x.shape[-1] / w2).astype(int)
    up = x[..., rows, :][..., cols]
    out = np.zeros((x.shape[0], weight.shape[0], *size))
    for b in range(x.shape[0]):
        for o in range(weight.shape[0]):
            out[b, o] = sum(correlate2d(up[b, c], weight[o, c], mode="valid") for c in range(x.shape[1]))
            out[b, o] += 0.0 if bias is None else bias[o]
    return out


def test_upsample_conv_matches_numpy_and_its_output_has_the_target_size():
    up = UpsampleConv.init(3, 2, 5, key=jax.random.key(0), bias=True)
    up = eqx.tree_at(lambda m: m.conv.bias, up, jnp.array([0.5, -1.0]))
    x = jax.random.normal(jax.random.key(1), (2, 3, 4, 6))
    out = up(x, (9, 11))
    assert out.shape == (2, 2, 9, 11)
    np.testing.assert_allclose(out, _numpy_upsample_conv(np.asarray(x), np.asarray(up.conv.weight),
                                                        np.asarray(up.conv.bias), (9, 11)), rtol=1e-10, atol=1e-12)


def _lax_conv(x, w, padding):
    return jax.lax.conv_general_dilated(x, w, (1, 1), padding, dimension_numbers=("NCHW", "OIHW", "NCHW"))


def test_prediction_layer_values_and_gradients_equal_lax_conv_of_the_resized_input():
    # C -> 1 layers contract the channels before resizing: compare with the resize followed by
    # lax.conv_general_dilated (valid, stride 1), values and the gradients of x, W, b
    for c_in, k, x_shape, size in [(16, 3, (2, 4, 6), (9, 13)), (4, 5, (1, 3, 2), (3, 7))]:
        up = UpsampleConv.init(c_in, 1, k, key=jax.random.key(0), bias=True)
        x = jax.random.normal(jax.random.key(1), (x_shape[0], c_in, *x_shape[1:]))
        g = jax.random.normal(jax.random.key(2), (x_shape[0], 1, *size))
        args = (x, up.conv.weight, jnp.array([0.3]))

        def ref(x, w, b):
            up_x = sj.synapses.resize_nearest(x, (size[0] + k - 1, size[1] + k - 1))
            return _lax_conv(up_x, w, "VALID") + b[:, None, None]

        mine = lambda x, w, b: eqx.tree_at(lambda m: (m.conv.weight, m.conv.bias), up, (w, b))(x, size)
        both = jax.jit(lambda *a: [(f(*a), jax.vjp(f, *a)[1](g)) for f in (mine, ref)])
        (out, grads), (out_ref, grads_ref) = both(*args)
        np.testing.assert_allclose(out, out_ref, rtol=1e-12, atol=1e-12)
        for a, b in zip(grads, grads_ref):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_sobel_values_and_gradients_equal_a_zero_padded_lax_conv():
    sx = np.array([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    kernel = jnp.asarray(np.stack([sx, sx.T])[:, None])
    x = jax.random.normal(jax.random.key(3), (3, 7, 9))
    g = jax.random.normal(jax.random.key(4), (2, 3, 7, 9))

    def ref(x):
        out = _lax_conv(x[:, None], kernel, ((1, 1), (1, 1)))
        return jnp.stack([out[:, 0], out[:, 1]])

    mine = lambda x: jnp.stack(sj.losses.sobel(x))
    (out, (grad,)), (out_ref, (grad_ref,)) = jax.jit(lambda x: [(f(x), jax.vjp(f, x)[1](g)) for f in (mine, ref)])(x)
    np.testing.assert_allclose(out, out_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grad, grad_ref, rtol=1e-12, atol=1e-12)


def test_full_size_decoder_outputs_have_the_skip_shapes_and_the_paper_parameter_count():
    net = eqx.filter_eval_shape(StereoSpike, 4, FULL_CHANNELS, key=jax.random.key(0))  # shapes only
    out = eqx.filter_eval_shape(net, jax.ShapeDtypeStruct((1, 4, 260, 346), jnp.float64))
    sizes = [(260, 346), (130, 173), (65, 87), (33, 44), (17, 22)]
    assert out.spikes["bottom"].shape == (1, 32, 260, 346)
    for l in range(1, 5):
        assert out.spikes[f"encoder{l}"].shape == (1, FULL_CHANNELS[l], *sizes[l])
        assert out.spikes[f"decoder{l}"].shape == out.spikes["bottom" if l == 1 else f"encoder{l - 1}"].shape
    assert out.spikes["bottleneck"].shape == (1, 512, 17, 22)
    assert out.depths.shape == (4, 1, 260, 346)
    c = FULL_CHANNELS
    expected = (4 * c[0] * 25 + 2 * sum(a * b * 25 for a, b in zip(c[:-1], c[1:])) + 2 * 2 * c[-1] ** 2 * 9
                + sum(ci * 9 + 1 for ci in c[:-1]))
    weights = sum(x.size for x in jax.tree.leaves(net) if isinstance(x, jax.ShapeDtypeStruct) and x.ndim >= 1)
    assert weights == expected
    assert 18.0e6 < expected < 18.3e6  # "~18 M parameters"


def test_sew_block_adds_spike_counts_that_stay_integers():
    channels = 2
    eye = np.zeros((channels, channels, 3, 3))
    eye[np.arange(channels), np.arange(channels), 1, 1] = 1.0
    block = SEWBlock(Conv2d(2.0 * eye, padding=1), Conv2d(2.0 * eye, padding=1), StatelessIF())
    x = jnp.asarray(np.random.default_rng(0).integers(0, 3, (1, channels, 5, 5)), jnp.float64)
    out = block(x)
    # closed form: the block fires where 2x >= 1 (x >= 1), and again where 2 * that >= 1
    np.testing.assert_array_equal(out, np.asarray(x) + (np.asarray(x) >= 1))
    assert float(jnp.max(out)) == 3.0
    np.testing.assert_array_equal(out, jnp.round(out))


def test_decoder_stage_sums_the_skip_and_keeps_its_shape():
    stage = DecoderStage.init(8, 4, 5, key=jax.random.key(0))
    x = jnp.ones((2, 8, 3, 4))
    skip = jnp.ones((2, 4, 7, 9))
    out = stage(x, skip)
    assert out.shape == skip.shape
    np.testing.assert_array_equal(out - skip, StatelessIF()(stage.upconv(x, (7, 9))))


def test_i_neurons_accumulate_every_stage_prediction():
    readout = DepthReadout.init([8, 4, 2], key=jax.random.key(0))
    readout = eqx.tree_at(lambda r: [p.conv.bias for p in r.predictions], readout,
                          [jnp.array([0.1]), jnp.array([0.2]), jnp.array([-0.5])])
    feats = [jax.random.normal(k, (2, c, s, s)) for k, c, s in zip(jax.random.split(jax.random.key(1), 3),
                                                                     [8, 4, 2], [3, 6, 12])]
    depths = readout(feats, (12, 12))
    p = [_numpy_upsample_conv(np.asarray(f), np.asarray(pr.conv.weight), np.asarray(pr.conv.bias), (12, 12))[:, 0]
         for f, pr in zip(feats, readout.predictions)]
    np.testing.assert_allclose(depths, np.stack([p[0], p[0] + p[1], p[0] + p[1] + p[2]]), rtol=1e-10, atol=1e-12)


def test_readout_stages_and_skips_select_the_wiring():
    x = jnp.ones((1, 4, 8, 12))
    top = StereoSpike(4, (2, 4, 8), key=jax.random.key(0), readout=[1])
    assert top(x).depths.shape == (1, 1, 8, 12)
    assert len(top.readout.predictions) == 1 and top.readout.predictions[0].conv.weight.shape == (1, 2, 3, 3)
    noskip = StereoSpike(4, (2, 4, 8), key=jax.random.key(0), skips=False)
    assert noskip(x).depths.shape == (2, 1, 8, 12)


# ---------------------------------------------------------------------------------------------- losses


def _pair(seed=0, shape=(3, 6, 7), nan=0.2):
    rng = np.random.default_rng(seed)
    pred = rng.uniform(1, 5, shape)
    target = rng.uniform(1, 5, shape)
    target[rng.random(shape) < nan] = np.nan
    return pred, target


def test_mean_depth_error_ignores_nan_pixels():
    pred, target = _pair()
    valid = np.isfinite(target)
    expected = np.mean(np.abs(pred - target)[valid])
    np.testing.assert_allclose(sj.losses.mean_depth_error(pred, target), expected, rtol=1e-12)
    moved = np.where(valid, pred, 1e6)  # predictions at masked pixels do not count
    np.testing.assert_allclose(sj.losses.mean_depth_error(moved, target), expected, rtol=1e-12)


def test_regression_term_is_the_residual_variance_and_ignores_an_offset():
    pred, target = _pair()
    per_image = [np.var((p - t)[np.isfinite(t)]) for p, t in zip(pred, target)]
    np.testing.assert_allclose(sj.losses.scale_invariant_loss(pred, target), np.mean(per_image), rtol=1e-10)
    np.testing.assert_allclose(sj.losses.scale_invariant_loss(pred + 0.7, target),
                               sj.losses.scale_invariant_loss(pred, target), rtol=1e-10)


def test_gradient_term_is_zero_padded_sobel_so_an_offset_changes_it():
    pred, target = _pair()
    sx = np.array([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    expected = []
    for p, t in zip(pred, target):
        r = np.where(np.isfinite(t), p - np.nan_to_num(t), 0.0)
        g = np.abs(correlate2d(r, sx, mode="same")) + np.abs(correlate2d(r, sx.T, mode="same"))
        expected.append(g.sum() / np.isfinite(t).sum())
    np.testing.assert_allclose(sj.losses.sobel_gradient_loss(pred, target), np.mean(expected), rtol=1e-10)
    clean = np.where(np.isfinite(target), target, 3.0)  # no holes: only the border sees the offset
    assert float(sj.losses.sobel_gradient_loss(clean + 0.5, clean)) > 0.1
    assert float(sj.losses.sobel_gradient_loss(clean, clean)) == 0.0
    shifted = sj.losses.sobel_gradient_loss(pred + 0.5, target)
    assert float(shifted) != float(sj.losses.sobel_gradient_loss(pred, target))


def test_multi_scale_loss_and_spike_penalty_closed_forms():
    pred, target = _pair()
    depths = np.stack([pred, pred + 1.0])
    expected = sum(sj.losses.scale_invariant_loss(d, target) + 0.5 * sj.losses.sobel_gradient_loss(d, target)
                   for d in depths)
    np.testing.assert_allclose(sj.losses.depth_loss(depths, target), expected, rtol=1e-12)
    counts = [jnp.array([[0.0, 1.0], [2.0, 3.0]]), jnp.ones((3,))]
    np.testing.assert_allclose(sj.losses.spike_penalty(counts), (0 + 1 + 4 + 9) / 8 + 3 / 6, rtol=1e-12)


# ---------------------------------------------------------------------------------------------- bad input


def test_all_masked_depth_gives_nan_free_losses_and_an_mde_error(unchecked):
    pred = np.ones((2, 4, 5))
    target = np.full((2, 4, 5), np.nan)
    assert float(sj.losses.depth_loss(pred[None], target)) == 0.0
    g = jax.grad(lambda p: sj.losses.depth_loss(p[None], target))(jnp.asarray(pred))
    assert np.all(np.isfinite(g)) and not np.any(g)
    with pytest.raises(Exception, match="every ground-truth pixel is masked"):
        sj.losses.mean_depth_error(pred, target)
    one_valid = target.copy()
    one_valid[0, 0, 0] = 2.0  # an image without valid pixels is left out of the batch mean
    np.testing.assert_allclose(sj.losses.scale_invariant_loss(pred, one_valid), 0.0, atol=1e-15)


def test_wrong_number_of_input_channels_is_named(unchecked):
    net = StereoSpike(4, SCALED_CHANNELS, key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"expected \[batch, 4, H, W\]"):
        net(jnp.ones((1, 2, 16, 24)))
    with pytest.raises(ValueError, match="readout must list distinct decoder stages"):
        StereoSpike(4, SCALED_CHANNELS, key=jax.random.key(0), readout=[5])


def test_empty_event_window_predicts_the_sum_of_the_prediction_biases():
    net = StereoSpike(4, SCALED_CHANNELS, key=jax.random.key(0))
    biases = [0.3, 1.0, 2.0, -0.1]
    net = eqx.tree_at(lambda n: [p.conv.bias for p in n.readout.predictions], net, [jnp.array([b]) for b in biases])
    out = net(jnp.zeros((1, 4, 8, 12)))
    np.testing.assert_allclose(out.depths, np.cumsum(biases)[:, None, None, None] * np.ones((4, 1, 8, 12)),
                               rtol=1e-12)
    assert all(float(jnp.sum(s)) == 0.0 for s in out.spikes.values())


# ---------------------------------------------------------------------------------------------- stereograms


def test_stereogram_geometry_and_occlusions_with_integer_disparities():
    # background at Z = 4 (d = 2 px), one object at Z = 2 (d = 4 px): right pixel x shows the object
    # iff the left camera sees it at x + 4, else the background seen by the left camera at x + 2.
    for seed in range(4):
        counts, depth = sj.tasks.render_stereogram(jax.random.key(seed), 24, 40, background_depth=(4.0, 4.0),
                                                   object_depth=(2.0, 2.0), max_objects=1, dtype=jnp.float64)
        counts, depth = np.asarray(counts), np.asarray(depth)
        assert set(np.unique(depth)) <= {2.0, 4.0} and (depth == 2.0).any()
        left, right = counts[:2], counts[2:]
        checked = 0
        for x in range(40 - 4):
            obj = depth[:, x + 4] == 2.0
            bg = ~obj & (depth[:, x + 2] == 4.0)
            np.testing.assert_array_equal(right[:, obj, x], left[:, obj, x + 4])
            np.testing.assert_array_equal(right[:, bg, x], left[:, bg, x + 2])
            checked += obj.sum() + bg.sum()
        assert checked > 0.8 * 24 * 36
        assert counts.sum() > 0 and np.all(counts == np.round(counts))


def test_stereogram_task_is_seeded_with_disjoint_splits_and_optional_nan_pixels():
    train = sj.tasks.RandomDotStereo(16, 24, size=20, nan_fraction=0.1)
    a, b = train.scenes(jnp.arange(3)), train.scenes(jnp.arange(3))
    np.testing.assert_array_equal(a.inputs, b.inputs)
    test = train.with_split("test")
    assert not np.array_equal(np.asarray(test.scenes(jnp.arange(3)).inputs), np.asarray(a.inputs))
    frac = float(jnp.mean(jnp.isnan(a.targets)))
    assert 0.05 < frac < 0.15
    left = sj.tasks.RandomDotStereo(16, 24, size=20, nan_fraction=0.1, cameras="left").sample(jax.random.key(0), 3)
    assert left.inputs.shape == (3, 2, 16, 24)


def test_left_events_carry_no_depth_cue():
    # every surface has the same dot statistics: the left camera's event counts do not depend on depth
    task = sj.tasks.RandomDotStereo(32, 48, size=64, max_objects=3)
    batch = task.full()
    left = np.asarray(batch.inputs[:, :2].sum(1))
    near = np.asarray(batch.targets) < 4.0
    assert abs(left[near].mean() - left[~near].mean()) < 0.05 * left.mean()


# ---------------------------------------------------------------------------------------------- whole network


def test_loss_and_surrogate_gradients_equal_a_hand_written_plain_jax_network():
    # the benchmark's baseline: dict weights, lax.conv_general_dilated, custom_jvp spikes, loss written out
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import stereospike as bench

    rng = np.random.default_rng(0)  # event counts and depths with 10 % NaN pixels (no rendering needed)
    x = rng.poisson(1.0, (2, 4, 8, 12)).astype(float)
    y = np.where(rng.random((2, 8, 12)) < 0.1, np.nan, rng.uniform(1.0, 8.0, (2, 8, 12)))
    a = bench.check_agreement(sj.tasks.RandomDotStereo(8, 12, size=4), x, y, (2, 4, 8))
    assert a["loss_rel_err"] < 1e-12
    assert a["grad_max_rel_err"] < 1e-10


def test_shipped_configs_validate_and_bad_values_are_named():
    for name in ("stereospike_binocular", "stereospike_monocular", "stereospike_ablations"):
        raw = cfgmod.load(name)
        stereospike.validate(cfgmod.merge(stereospike.DEFAULTS, raw))
    bad = cfgmod.merge(stereospike.DEFAULTS, {"compare": {"variants": ["stereo"]}})
    with pytest.raises(cfgmod.ConfigError, match="'stereo' is not a known variant"):
        stereospike.validate(bad)
    bad = cfgmod.merge(stereospike.DEFAULTS, {"data": {"height": 30}})
    with pytest.raises(cfgmod.ConfigError, match="data.height/width"):
        stereospike.validate(bad)


def test_interrupted_run_resumes_from_its_finished_trainings(tmp_path, monkeypatch):
    cfg = cfgmod.merge(stereospike.DEFAULTS, stereospike.QUICK)
    cfg = cfgmod.merge(cfg, {"experiment": {"seeds": [0, 1]}, "compare": {"variants": ["binocular", "monocular"]}})
    monkeypatch.setattr(stereospike, "_plot", lambda *args: None)
    calls = []

    def trained(cfg, name, seed, crash_at=None):  # a stand-in training: its own weights and metrics
        calls.append((name, seed))
        if seed == crash_at:
            raise RuntimeError("killed")
        net = jax.tree.map(lambda a: 2 * a + seed if eqx.is_inexact_array(a) else a,
                           stereospike.network(cfg, name, seed))
        mde = 1.0 + seed + cfg["train"]["learning_rate"]
        return {"model": net, "curves": [{"step": 2, "train_loss": mde, "train_mde": mde, "validation_mde": mde,
                                          "validation_firing_rate": 0.1}],
                "test": {"mde": mde, "firing_rate": 0.1}, "validation_mde": mde, "rates": {"e1": 0.1}}

    monkeypatch.setattr(stereospike, "train_variant", lambda *a: trained(*a, crash_at=1))
    with pytest.raises(RuntimeError, match="killed"):
        stereospike.run(cfg, tmp_path)
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["binocular-seed0.eqx", "binocular-seed0.json"]

    calls.clear()
    monkeypatch.setattr(stereospike, "train_variant", trained)
    summary = stereospike.run(cfg, tmp_path)
    assert calls == [("binocular", 1), ("monocular", 0), ("monocular", 1)]  # seed 0 was loaded, not trained again
    lr = cfg["train"]["learning_rate"]
    np.testing.assert_allclose(summary["variants"]["binocular"]["test_mde"], [1.0 + lr, 2.0 + lr])
    for name in ("binocular", "monocular"):  # (the monocular network has 2 input maps, not 4)
        loaded = stereospike._load(tmp_path / "runs", cfg, name, 0)["model"]
        for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(trained(cfg, name, 0)["model"]), strict=True):
            np.testing.assert_array_equal(a, b)

    for other in ({"train": {"learning_rate": 0.5}}, {"data": {"data_seed": 1}}, {"model": {"scale": 2.0}}):
        assert stereospike._load(tmp_path / "runs", cfgmod.merge(cfg, other), "binocular", 0) is None, other
    assert stereospike._load(tmp_path / "runs", cfg, "top_readout", 0) is None
