"""Gradient-quality report: exact limits, a controlled estimator with known bias/variance, dense
Hessian agreement on a tiny network, and the one-step loss-change prediction."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import simjax as sj
from simjax._curvature import extreme_eigenvector, flat_loss, hvp
from simjax.analysis import gradient_quality, parameter_groups, report_arrays, summarize
from simjax.analysis._gradient_quality import (
    CPU_CHUNK,
    auto_chunk_size,
    choose_chunk_size,
    compiled_memory,
    sample_memory,
)
from simjax.neurons._rate import LeakyRate
from simjax.rules._noisy_gradient import NoisyGradient


@pytest.fixture(scope="module")
def setup():
    """A tiny smooth recurrent rate network on a regression batch (P = 3*5 + 5*5 + 5*2 + 5 + 2 = 57)."""
    net = sj.networks.RateRNN(n_in=3, n_rec=5, n_out=2, neuron=LeakyRate(tau=5.0, activation="tanh"),
                              key=jax.random.key(0), g=1.2)
    k1, k2 = jax.random.split(jax.random.key(1))
    batch = sj.tasks.Batch(inputs=jax.random.normal(k1, (12, 4, 3)), targets=jax.random.normal(k2, (4, 2)) * 0.5)
    task = sj.tasks.Supervised(loss="mse", readout="last", dt=1.0)
    return net, task, batch


def test_exact_rule_has_zero_bias_and_variance(setup):
    net, task, batch = setup
    t = gradient_quality(net, sj.rules.Exact(), task, key=jax.random.key(2), samples=4, batch=batch)
    for group in ("total", "w_rec", "w_out"):
        assert t.value(group=group, quantity="relative_bias") < 1e-7
        assert t.value(group=group, quantity="relative_variance") < 1e-14
        assert abs(t.value(group=group, quantity="cosine_mean") - 1) < 1e-12
        assert t.value(group=group, quantity="sign_agreement") == 1.0
        assert abs(t.value(group=group, quantity="curvature_variance")) < 1e-12


def test_noisy_gradient_recovers_its_bias_and_variance(setup):
    net, task, batch = setup
    g = ravel_pytree(sj.rules.Exact()(net, task, batch, None)[1])[0]
    gnorm = float(jnp.linalg.norm(g))
    beta, sigma = 0.5, 0.3 * gnorm
    rule = NoisyGradient(bias=beta, sigma=sigma, direction="random", seed=3)
    t = gradient_quality(net, rule, task, key=jax.random.key(4), samples=200, batch=batch, curvature=False)
    for quantity, truth in (("relative_bias", beta), ("relative_variance", (sigma / gnorm) ** 2)):
        value, se = t.value(group="total", quantity=quantity), t.value("stderr", group="total", quantity=quantity)
        assert abs(value - truth) < 4 * se + 1e-3 * truth, (quantity, value, truth, se)
        assert se < 0.1 * truth  # the error bars are informative


def test_hessian_vector_quantities_match_dense_hessian(setup):
    net, task, batch = setup
    rule = NoisyGradient(bias=0.3, sigma=0.05, direction="random", seed=1)
    G = jax.jit(jax.vmap(lambda k: ravel_pytree(rule(net, task, batch, k)[1])[0]))(
        jax.random.split(jax.random.key(5), 6))
    g = jax.jit(lambda: ravel_pytree(sj.rules.Exact()(net, task, batch, None)[1])[0])()
    theta, loss_fn, _ = flat_loss(net, task, batch)
    groups = {"total": np.ones(theta.shape[0], bool), **parameter_groups(net)}
    t = summarize(G, g, groups, loss_fn=loss_fn, theta=theta)
    H = np.asarray(jax.jit(jax.hessian(loss_fn))(theta))  # dense: only for this check
    for name in ("total", "w_rec", "w_out"):
        idx = np.flatnonzero(groups[name])
        Hb, Gb, gb = H[np.ix_(idx, idx)], np.asarray(G)[:, idx], np.asarray(g)[idx]
        tr_hcov = float(np.trace(Hb @ np.cov(Gb, rowvar=False)))
        b = Gb.mean(0) - gb
        assert t.value(group=name, quantity="curvature_variance") == pytest.approx(tr_hcov, rel=1e-8)
        assert t.value(group=name, quantity="curvature_bias") == pytest.approx(b @ Hb @ b - tr_hcov / 6, rel=1e-8)
    v = jax.random.normal(jax.random.key(9), theta.shape, theta.dtype)
    np.testing.assert_allclose(hvp(loss_fn, theta, v), H @ np.asarray(v), rtol=1e-10, atol=1e-12)
    eigvals, eigvecs = np.linalg.eigh(H)
    for which, i in (("top", -1), ("bottom", 0)):
        vec, lam = jax.jit(lambda th, w=which: extreme_eigenvector(loss_fn, th, jax.random.key(0), which=w,
                                                                  iterations=300))(theta)
        assert float(lam) == pytest.approx(eigvals[i], abs=1e-4 * abs(eigvals[-1]))


def test_predicted_one_step_loss_change_matches_measured(setup):
    net, task, batch = setup
    rule = NoisyGradient(bias=0.2, sigma=0.1, direction="random", seed=2)
    t = gradient_quality(net, rule, task, key=jax.random.key(6), samples=32, batch=batch, learning_rate=1e-2)
    predicted = t.value(group="total", quantity="loss_change_predicted")
    measured = t.value(group="total", quantity="loss_change_measured")
    assert predicted < 0
    assert abs(predicted - measured) < 0.1 * abs(measured)


def test_quality_is_tracked_inside_fit(setup):
    import optax

    net, task, batch = setup
    fixed = sj.tasks.Supervised(loss="mse", readout="last", dt=1.0)

    class FixedBatch(type(fixed)):
        def sample(self, key, batch_size):
            return batch

    rule = NoisyGradient(bias=0.5, sigma=0.0, direction="random", seed=0)
    tracker = sj.analysis.QualityTracker(every=3, samples=4)
    _, hist = sj.fit(net, rule, FixedBatch(loss="mse", readout="last"), optax.sgd(1e-2), steps=7,
                     key=jax.random.key(0), track=tracker)
    rel_bias = np.asarray(hist["quality/total/relative_bias"])
    assert np.all(np.isnan(rel_bias[[1, 2, 4, 5]]))
    np.testing.assert_allclose(rel_bias[[0, 3, 6]], 0.5, rtol=1e-6)  # noiseless: exactly beta
    assert np.all(np.asarray(hist["quality/w_out/cosine_mean"])[[0, 3, 6]] <= 1.0)


def test_closed_form_jackknife_equals_recomputing_without_each_sample():
    from simjax.analysis._group_statistics import single_group

    # (compiled once per shape: eagerly, each of its operations would compile for every shape)
    full_stats = jax.jit(lambda *args: single_group(*args, errors=False)[0])

    rng = np.random.default_rng(0)
    S, P = 7, 12
    G = jnp.asarray(rng.normal(size=(S, P)) + 0.5)
    g = jnp.asarray(rng.normal(size=P))
    A = rng.normal(size=(P, P))
    H = jnp.asarray(A @ A.T / P)
    K, c, d = G @ H @ G.T, G @ H @ g, g @ H @ g
    full, se = jax.jit(single_group)(G, g, K, c, d)
    direct = full_stats(G, g, K, c, d)
    loo = [full_stats(jnp.delete(G, i, axis=0), g, jnp.delete(jnp.delete(K, i, 0), i, 1), jnp.delete(c, i), d)
           for i in range(S)]
    for q in full:
        np.testing.assert_allclose(full[q], direct[q], rtol=1e-12)
        if q == "snr_median":
            continue  # a block jackknife, below
        values = np.array([float(r[q]) for r in loo])
        expected = np.sqrt((S - 1) / S * np.sum((values - values.mean()) ** 2))
        np.testing.assert_allclose(se[q], expected, rtol=1e-9, atol=1e-14, err_msg=q)

    # the median SNR: delete-a-block jackknife (S = 16 -> 8 blocks of 2 consecutive samples)
    from simjax.analysis._group_statistics import snr_blocks

    G16 = jnp.asarray(rng.normal(size=(16, P)) + 0.3)
    zero = jnp.zeros((16, 16))
    assert snr_blocks(16) == 8 and snr_blocks(7) == 7 and snr_blocks(64) == 8
    _, se16 = jax.jit(single_group)(G16, g, zero, jnp.zeros(16), jnp.zeros(()))
    reps = np.array([float(full_stats(jnp.delete(G16, jnp.arange(2 * b, 2 * b + 2), axis=0), g, zero[:14, :14],
                                      jnp.zeros(14), jnp.zeros(()))["snr_median"]) for b in range(8)])
    np.testing.assert_allclose(se16["snr_median"], np.sqrt(7 / 8 * np.sum((reps - reps.mean()) ** 2)), rtol=1e-9)


def test_every_group_reads_as_its_own_columns_alone():
    """All groups come out of one set of sums over 0/1 weights: each must equal the report of its
    columns sliced out (with its diagonal Hessian block), for contiguous and scattered masks, and
    "learned" must be the union of the groups the samples do not match exactly."""
    from simjax.analysis._gradient_quality import group_reports
    from simjax.analysis._group_statistics import single_group

    rng = np.random.default_rng(1)
    S, P = 8, 15
    g = rng.normal(size=P)
    G = rng.normal(size=(S, P)) + g
    G[:, :5] = g[:5]  # group "a" is computed exactly
    A = rng.normal(size=(P, P))
    H = A @ A.T / P
    idx = {"total": np.arange(P), "a": np.arange(5), "b": np.arange(5, P, 2), "c": np.arange(6, P, 2)}
    groups = {name: np.isin(np.arange(P), i) for name, i in idx.items()}
    reports, _ = jax.jit(lambda G, g: group_reports(G, g, groups, exact_rtol=1e-8,
                                                    curvature=lambda v: jnp.asarray(H) @ v))(G, g)
    assert sorted(reports) == ["a", "b", "c", "learned", "total"]
    idx["learned"] = np.arange(5, P)
    reference = jax.jit(single_group)  # (compiled per group size: eagerly, every operation would compile)
    for name, i in idx.items():
        Gb, gb, Hb = G[:, i], g[i], H[np.ix_(i, i)]
        full, se = reference(jnp.asarray(Gb), jnp.asarray(gb), jnp.asarray(Gb @ Hb @ Gb.T),
                                   jnp.asarray(Gb @ Hb @ gb), jnp.asarray(gb @ Hb @ gb))
        got_full, got_se, deviation, exact = reports[name]
        for q in full:  # the bias of an exact group is the square root of rounding, summed in another order
            atol = 1e-7 if q == "relative_bias" else 1e-13
            np.testing.assert_allclose(got_full[q], full[q], rtol=1e-10, atol=atol, err_msg=(name, q))
            np.testing.assert_allclose(got_se[q], se[q], rtol=1e-8, atol=atol, err_msg=(name, q))
        expected = np.max(np.linalg.norm(Gb - gb, axis=1)) / np.linalg.norm(gb)
        np.testing.assert_allclose(deviation, expected, rtol=1e-10, atol=1e-300)
        assert float(exact) == float(name == "a"), name


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_selection_median_equals_numpy_median(dtype):
    from simjax.analysis._group_statistics import median_nonnegative

    rng = np.random.default_rng(3)
    for n in (1, 2, 5, 6, 257):
        x = (rng.exponential(size=(3, n)) * 10.0 ** rng.uniform(-30, 30, size=(3, n))).astype(dtype)
        x[0, : n // 2] = 0.0  # zeros
        x[1] = np.round(x[1] * 0 + rng.integers(0, 3, size=n))  # heavy ties
        x[2, -1] = np.finfo(dtype).max
        np.testing.assert_array_equal(np.asarray(median_nonnegative(jnp.asarray(x))), np.median(x, axis=-1))


def test_streamed_report_equals_the_all_at_once_report(setup):
    net, task, batch = setup
    rule = NoisyGradient(bias=0.2, sigma=0.1, direction="random", seed=2)
    per_step = sj.tasks.PatternGeneration(n_in=3, n_out=2, duration=10.0, dt=1.0)
    # a fixed batch with curvature (chunked updates, Hessian-vector products and loss changes);
    # batches drawn per sample (chunked updates and references)
    for task_, fixed, resample in ((task, batch, False), (per_step, None, True)):
        kwargs = dict(key=jax.random.key(3), samples=10, batch=fixed, resample_batch=resample, batch_size=4,
                      curvature=not resample)
        whole = gradient_quality(net, rule, task_, chunk_size=10, **kwargs)
        streamed = gradient_quality(net, rule, task_, chunk_size=3, **kwargs)  # 3 + 3 + 3 + 1
        for column in ("value", "stderr"):
            np.testing.assert_allclose(streamed.columns[column], whole.columns[column], rtol=1e-9, atol=1e-14)


def test_streamed_report_peak_memory_is_a_few_samples_not_all():
    """One sample's update needs M bytes of temporary memory (XLA's analysis); a 64-sample report
    with curvature, streamed 4 at a time, stays under 10 M (4 updates + 4 Hessian-vector products,
    each about M, and the statistics), while the all-at-once program needs far more."""
    net = sj.networks.RSNN(3, 16, 2, key=jax.random.key(0))
    task = sj.tasks.PatternGeneration(n_in=3, n_out=2, duration=200.0, dt=1.0)
    batch, key, rule = task.sample(jax.random.key(1), 16), jax.random.key(2), sj.rules.FeedbackAlignment()
    one = sample_memory(net, rule, task, batch, key)

    def peak(chunk):
        program = lambda n, r, b, k: report_arrays(n, r, task, b, k, samples=64, chunk_size=chunk)  # noqa: E731
        return compiled_memory(program, net, rule, batch, key).temp_size_in_bytes

    streamed, whole = peak(4), peak(None)
    assert streamed < 10 * one
    assert whole > 8 * streamed
    # on a CPU the default chunk is capped at CPU_CHUNK samples (a power of two) however much
    # memory there is: this small network's samples would all fit at once, yet it streams
    chunk = auto_chunk_size(net, rule, task, batch, key, samples=64)
    assert chunk == CPU_CHUNK == 16


def test_chunk_size_is_chosen_from_memory_and_refused_when_one_sample_cannot_fit():
    assert choose_chunk_size(2**20, 64, available=10 * 2**20) == 5  # half of 10 MiB, 1 MiB each
    assert choose_chunk_size(2**20, 64, available=2**30) == 64
    assert choose_chunk_size(2**28, 64, available=2**40) == 8  # at most 2 GiB at a time by default
    with pytest.raises(MemoryError, match=r"needs 10.00 GiB .* 2.00 GiB budget .* 4.00 GiB available.*batch_size"):
        choose_chunk_size(10 * 2**30, 64, available=4 * 2**30)
