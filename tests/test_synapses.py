"""Projections against independent NumPy references; Dale signs survive any update."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import simjax as sj
from simjax.synapses import Conv2d, Dale, Sparse, upsample_nearest

RNG = np.random.default_rng(0)


def test_sparse_equals_numpy_dense_forward_and_gradient():
    pre_idx = np.array([0, 0, 2, 3, 3, 1])
    post_idx = np.array([1, 2, 0, 1, 1, 2])  # a repeated pair (3 -> 1) adds up
    w = RNG.normal(size=6)
    proj = Sparse(w, pre_idx, post_idx, 4, 3)
    dense = np.zeros((4, 3))
    np.add.at(dense, (pre_idx, post_idx), w)
    x = RNG.normal(size=(5, 2, 4))  # leading time and batch axes
    np.testing.assert_allclose(proj(jnp.asarray(x)), x @ dense, rtol=1e-12)
    np.testing.assert_allclose(proj.dense(), dense, rtol=1e-12)
    grad = jax.grad(lambda w: jnp.sum(jnp.sin(Sparse(w, pre_idx, post_idx, 4, 3)(jnp.asarray(x)))))(jnp.asarray(w))
    upstream = np.cos(x @ dense)  # d/d post of sum(sin(post))
    expected = np.einsum("tbi,tbj->ij", x, upstream)[pre_idx, post_idx]
    np.testing.assert_allclose(grad, expected, rtol=1e-10)


@pytest.mark.parametrize("lead", [(), (3,), (5, 2), (4, 2, 3)])
def test_dense_any_leading_axes_forward_and_gradient(lead):
    """Leading axes are merged before the product (one 2-D matmul); values and the weight gradient
    are those of `x @ W` in NumPy."""
    w = RNG.normal(size=(4, 3))
    x = RNG.normal(size=(*lead, 4))
    proj = sj.synapses.Dense(jnp.asarray(w))
    out = proj(jnp.asarray(x))
    assert out.shape == (*lead, 3)
    np.testing.assert_allclose(out, x @ w, rtol=1e-12)
    grad = jax.grad(lambda w: jnp.sum(jnp.sin(sj.synapses.Dense(w)(jnp.asarray(x)))))(jnp.asarray(w))
    upstream = np.cos(x @ w)
    expected = (x.reshape(-1, 4).T @ upstream.reshape(-1, 3))
    np.testing.assert_allclose(grad, expected, rtol=1e-10)


def test_sparse_random_structure_and_errors():
    proj = Sparse.random(50, 50, 0.2, key=jax.random.key(0), self_connections=False)
    assert not np.any(np.asarray(proj.pre_idx) == np.asarray(proj.post_idx))
    assert 0.15 < proj.weight.size / 2500 < 0.25
    with pytest.raises(ValueError, match=r"post_idx must lie in \[0, 3\), got values in \[0, 3\]"):
        Sparse(np.ones(2), [0, 1], [0, 3], 2, 3)
    with pytest.raises(ValueError, match="same length"):
        Sparse(np.ones(3), [0, 1], [0, 1], 2, 3)
    with pytest.raises(ValueError, match=r"p must be in \(0, 1\]"):
        Sparse.random(3, 3, 1.5, key=jax.random.key(0))


def test_sparse_projection_drives_an_rsnn():
    w_rec = Sparse.random(6, 6, 0.5, key=jax.random.key(1), self_connections=False)
    net = sj.networks.RSNN(n_in=3, n_rec=6, n_out=2, key=jax.random.key(2), w_rec=w_rec)
    dense_net = sj.networks.RSNN(n_in=3, n_rec=6, n_out=2, key=jax.random.key(2), w_rec=np.asarray(w_rec.dense()))
    x = jnp.asarray(RNG.random((20, 2, 3)) < 0.3, dtype=jnp.float64) * 2.0
    a, b = sj.simulate(net, x, dt=1.0), sj.simulate(dense_net, x, dt=1.0)
    np.testing.assert_allclose(a.v, b.v, rtol=1e-12, atol=1e-12)


def test_dale_signs_survive_a_large_opposite_update():
    dale = Dale.init(6, 4, frac_excitatory=0.5, key=jax.random.key(0), max_magnitude=0.8)
    w0 = np.asarray(dale.weight)
    exc = np.asarray(dale.excitatory)
    assert np.all(w0[exc] >= 0) and np.all(w0[~exc] <= 0)
    net = sj.networks.FeedForward((6, 4), neuron="linear", weights=(dale,), biases=(np.zeros(4),))
    x = RNG.normal(size=(1, 8, 6))
    # targets that push every weight hard towards the opposite sign
    batch = sj.tasks.Batch(inputs=jnp.asarray(x), targets=jnp.asarray(x[0] @ (-5.0 * w0)))
    task = sj.tasks.Dataset(batch.inputs, batch.targets, full_batch=True)
    trained, _ = sj.fit(net, sj.rules.Exact(), task, optax.sgd(10.0), steps=5, key=jax.random.key(1))
    w = np.asarray(trained.layers[0].weight)
    assert np.any(w == 0.0)  # the updates did push entries across zero
    assert np.all(w[exc] >= 0) and np.all(w[~exc] <= 0)  # zero is allowed, a flip is not
    assert np.all(np.abs(w) <= 0.8)


def test_dale_forward_and_gradient_use_the_projected_weights():
    # rows 0, 1 excitatory, row 2 inhibitory; per-entry bound
    w = np.array([[0.5, -0.3, 0.0], [2.0, 0.7, 1.0], [-0.4, 0.2, -1.5]])
    bound = np.array([[1.0, 1.0, 1.0], [1.5, 1.5, 1.0], [1.0, 1.0, 1.0]])
    exc = np.array([True, True, False])
    dale = Dale(w, exc, max_magnitude=bound)
    projected = np.array([[0.5, 0.0, 0.0], [1.5, 0.7, 1.0], [-0.4, 0.0, -1.0]])
    inside = np.array([[1, 0, 1], [0, 1, 1], [1, 0, 0]], dtype=float)  # closed allowed set, boundary included
    x = RNG.normal(size=(5, 3))
    np.testing.assert_allclose(dale(jnp.asarray(x)), x @ projected, rtol=1e-12)
    np.testing.assert_array_equal(dale.dense(), projected)
    np.testing.assert_array_equal(dale.constrain().weight, projected)
    c = RNG.normal(size=(5, 3))
    grad = jax.grad(lambda w: jnp.sum(Dale(w, exc, max_magnitude=bound)(jnp.asarray(x)) * c))(jnp.asarray(w))
    np.testing.assert_allclose(grad, (x.T @ c) * inside, rtol=1e-12)
    with pytest.raises(ValueError, match="max_magnitude"):
        Dale(w, exc, max_magnitude=-1.0)


def test_dale_errors():
    with pytest.raises(ValueError, match=r"excitatory has shape \(3,\), expected \(2,\)"):
        Dale(np.ones((2, 2)), [True, False, True])


def _numpy_conv(x, w, stride, pad):
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), pad[0], pad[1]))
    ho = (xp.shape[2] - kh) // stride + 1
    wo = (xp.shape[3] - kw) // stride + 1
    out = np.zeros((n, o, ho, wo))
    for i in range(ho):
        for j in range(wo):
            patch = xp[:, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
            out[:, :, i, j] = np.einsum("ncij,ocij->no", patch, w)
    return out


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("padding", ["VALID", "SAME"])
def test_conv2d_equals_direct_loop(stride, padding):
    w = RNG.normal(size=(3, 2, 3, 3))
    b = RNG.normal(size=3)
    x = RNG.normal(size=(4, 2, 2, 7, 7))  # time, batch, channels, H, W
    conv = Conv2d(w, b, stride=stride, padding=padding)
    y = np.asarray(conv(jnp.asarray(x)))
    if padding == "VALID":
        pad = ((0, 0), (0, 0))
    else:  # XLA's SAME: output ceil(H / stride), extra padding at the end
        total = max((int(np.ceil(7 / stride)) - 1) * stride + 3 - 7, 0)
        pad = ((total // 2, total - total // 2),) * 2
    expected = _numpy_conv(x.reshape(8, 2, 7, 7), w, stride, pad).reshape(4, 2, 3, *y.shape[-2:]) + b[:, None, None]
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-12)


def test_conv2d_gradient_matches_finite_differences():
    w = RNG.normal(size=(2, 1, 2, 2))
    x = jnp.asarray(RNG.normal(size=(1, 1, 4, 4)))
    loss = lambda w: jnp.sum(jnp.tanh(Conv2d(w, padding=1)(x)))
    g = jax.grad(loss)(jnp.asarray(w))
    eps = 1e-6
    for idx in [(0, 0, 0, 0), (1, 0, 1, 0), (1, 0, 1, 1)]:
        d = np.zeros_like(w)
        d[idx] = eps
        fd = (loss(jnp.asarray(w + d)) - loss(jnp.asarray(w - d))) / (2 * eps)
        assert float(g[idx]) == pytest.approx(float(fd), rel=1e-6)


def test_conv2d_errors_and_upsampling():
    conv = Conv2d.init(2, 3, 3, key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"expected \[..., 2, H, W\]"):
        conv(jnp.zeros((1, 3, 4, 4)))
    with pytest.raises(ValueError, match="padding must be"):
        Conv2d(np.ones((1, 1, 1, 1)), padding="FULL")
    x = jnp.arange(4.0).reshape(1, 2, 2)
    np.testing.assert_array_equal(upsample_nearest(x, 2)[0], np.kron(np.arange(4.0).reshape(2, 2), np.ones((2, 2))))
