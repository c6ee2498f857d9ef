"""Feedback alignment, sign symmetry and DFA: exact limits, a NumPy DFA reference, and learning a
linear teacher with random feedback (Lillicrap et al. 2016)."""

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import simjax as sj
from simjax.neurons._rate import LeakyRate
from simjax.rules import DirectFeedbackAlignment, FeedbackAlignment, FeedbackProjection, SignSymmetry

MSE = sj.tasks.Supervised("mse", "all", dt=1.0)


@eqx.filter_jit
def _apply(rule, net, task, batch):
    return rule(net, task, batch, None)


def _max_diff(a, b):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(la) == len(lb) and la
    return max(float(jnp.max(jnp.abs(u - v))) for u, v in zip(la, lb))


def _scale(a):
    return max(float(jnp.max(jnp.abs(u))) for u in jax.tree.leaves(a))


def _normal(seed, *shape, scale=1.0):
    # NumPy draws: test data without compiling a random-number kernel per shape.
    return jnp.asarray(scale * np.random.default_rng(seed).standard_normal(shape))


def _spike_batch(t=10, batch=3, n_in=5, n_out=2, seed=1):
    x = (np.random.default_rng(seed).uniform(size=(t, batch, n_in)) < 0.3).astype(np.float64)
    return sj.tasks.Batch(inputs=jnp.asarray(x), targets=_normal(seed + 1, t, batch, n_out))


def _static_batch(n_in, n_out, batch=6, seed=2):
    return sj.tasks.Batch(inputs=_normal(seed, 1, batch, n_in), targets=_normal(seed + 1, 1, batch, n_out))


def _rsnn(w_rec=None):
    w_rec = _normal(11, 8, 8, scale=2.0 / np.sqrt(8)) if w_rec is None else w_rec
    return sj.networks.RSNN(5, 8, 2, w_in=_normal(10, 5, 8, scale=4.0 / np.sqrt(5)), w_rec=w_rec,
                            w_out=_normal(12, 8, 2, scale=1.0 / np.sqrt(8)))


def _feedforward(sizes, activation="tanh", seed=20, gain=1.0, **kwargs):
    weights = [_normal(seed + l, n, m, scale=gain / np.sqrt(n)) for l, (n, m) in enumerate(zip(sizes[:-1], sizes[1:]))]
    return sj.networks.FeedForward(sizes, activation, weights=weights, **kwargs)


# -- the projection --------------------------------------------------------------------------


class _Gained(sj.synapses.AbstractProjection):
    """A parameterised projection `pre @ (gain * weight)` (tests the local weight gradient)."""

    weight: jax.Array
    gain: jax.Array
    trainable: ClassVar[tuple[str, ...]] = ("weight", "gain")

    def __call__(self, pre):
        return pre @ (self.gain * self.weight)

    @property
    def shape(self):
        return tuple(self.weight.shape)

    def dense(self):
        return self.gain * self.weight

    def without_self_connections(self):
        return self

    def constrain(self):
        return self


def test_feedback_projection_keeps_local_gradient_and_replaces_transport():
    proj = _Gained(_normal(1, 4, 3), jnp.asarray(0.7))
    feedback = _normal(2, 4, 3)
    x = _normal(3, 5, 4)
    f = lambda p, x: jnp.sum(jnp.sin(p(x)))
    g_true = jax.grad(f, argnums=(0, 1))(proj, x)
    g_fb = jax.grad(lambda p, x: f(FeedbackProjection(p, feedback), x), argnums=(0, 1))(proj, x)
    wrapped = jax.grad(lambda w: f(FeedbackProjection(w, feedback), x))(proj)
    delta = jnp.cos(x @ proj.dense())
    assert jnp.allclose(FeedbackProjection(proj, feedback)(x), proj(x), rtol=0, atol=0)
    assert _max_diff(g_fb[0], g_true[0]) < 1e-13 and _max_diff(wrapped, g_true[0]) < 1e-13
    assert jnp.allclose(g_fb[1], delta @ feedback.T, rtol=1e-13, atol=1e-13)
    assert jnp.allclose(g_true[1], delta @ proj.dense().T, rtol=1e-13, atol=1e-13)
    with pytest.raises(ValueError, match=r"feedback has shape \(3, 4\), expected \(4, 3\)"):
        FeedbackProjection(proj, jnp.zeros((3, 4)))


# -- exact limits ------------------------------------------------------------------------------


def test_fa_with_forward_weights_is_exact_on_rsnn():
    net, batch = _rsnn(), _spike_batch()
    loss0, g0, _ = _apply(sj.rules.Exact(), net, MSE, batch)
    # The unmasked recurrent matrix: the rule masks the diagonal as the network does.
    weights = {"w_in": net.w_in.weight, "w_rec": net.w_rec.weight, "w_out": net.w_out.weight}
    rule = FeedbackAlignment(feedback=weights)
    loss, g, aux = _apply(rule, net, MSE, batch)
    assert jax.tree.structure(g) == jax.tree.structure(sj.parameters.params(net))
    assert float(loss) == float(loss0) and set(aux) == {"loss", "nmse"}
    assert _max_diff(g, g0) < 1e-10 * _scale(g0)
    # ... while random feedback gives a different update.
    random = FeedbackAlignment(key=1).feedback_for(net)
    _, g_random, _ = _apply(FeedbackAlignment(feedback=random), net, MSE, batch)
    assert _max_diff(g_random.w_in, g0.w_in) > 1e-3 * _scale(g0.w_in)
    assert _max_diff(g_random.w_out, g0.w_out) < 1e-12 * _scale(g0.w_out)  # the readout's own gradient


def test_fa_with_forward_weights_is_exact_on_feedforward_and_rate_rnn():
    ff = _feedforward((4, 6, 5, 3))
    batch = _static_batch(4, 3)
    _, g0, _ = _apply(sj.rules.Exact(), ff, MSE, batch)
    feedback = {f"layers[{l}]": p.weight for l, p in enumerate(ff.layers)}
    _, g, _ = _apply(FeedbackAlignment(feedback=feedback), ff, MSE, batch)
    assert _max_diff(g, g0) < 1e-10 * _scale(g0)

    rnn = sj.networks.RateRNN(5, 7, 2, w_in=_normal(30, 5, 7), w_rec=_normal(31, 7, 7, scale=1.2 / np.sqrt(7)),
                              w_out=_normal(32, 7, 2))
    batch = _spike_batch()
    _, g0, _ = _apply(sj.rules.Exact(), rnn, MSE, batch)
    _, g, _ = _apply(FeedbackAlignment(feedback={"w_rec": rnn.w_rec.weight, "w_out": rnn.w_out.weight}), rnn,
                     MSE, batch)
    assert _max_diff(g, g0) < 1e-10 * _scale(g0)


def test_sign_symmetry_on_sign_valued_weights_is_exact():
    signs = lambda seed, shape, c=1.0: c * jnp.sign(_normal(seed, *shape))
    net = sj.networks.RSNN(5, 8, 2, w_in=signs(40, (5, 8)), w_rec=signs(41, (8, 8)), w_out=signs(42, (8, 2)))
    batch = _spike_batch()
    _, g0, _ = _apply(sj.rules.Exact(), net, MSE, batch)
    _, g, _ = _apply(SignSymmetry(), net, MSE, batch)
    assert _scale(g0.w_rec) > 0 and _max_diff(g, g0) < 1e-10 * _scale(g0)
    # +-c weights: the feedback magnitude is the mean |W|, so B = W again.
    ff = sj.networks.FeedForward((4, 6, 3), "tanh", weights=[signs(43, (4, 6), 0.3), signs(44, (6, 3), 0.3)])
    batch = _static_batch(4, 3)
    _, g0, _ = _apply(sj.rules.Exact(), ff, MSE, batch)
    _, g, _ = _apply(SignSymmetry(), ff, MSE, batch)
    assert _max_diff(g, g0) < 1e-10 * _scale(g0)
    # Generic weights: B = sign(W) * mean|W| differs from W.
    ff = _feedforward((4, 6, 3))
    _, g0, _ = _apply(sj.rules.Exact(), ff, MSE, batch)
    _, g, _ = _apply(SignSymmetry(), ff, MSE, batch)
    assert _max_diff(g.layers[0], g0.layers[0]) > 1e-3 * _scale(g0.layers[0])


def test_dfa_with_forward_weights_is_exact_without_recurrent_transport():
    # One hidden population: B = W_out^T is backprop when no error travels through W_rec.
    net = _rsnn(w_rec=jnp.zeros((8, 8)))
    batch = _spike_batch()
    _, g0, _ = _apply(sj.rules.Exact(), net, MSE, batch)
    _, g, _ = _apply(DirectFeedbackAlignment(feedback={"hidden[0]": net.w_out.weight}), net, MSE, batch)
    assert _scale(g0.w_in) > 0 and _max_diff(g, g0) < 1e-10 * _scale(g0)
    ff = _feedforward((4, 6, 3), seed=50)
    batch = _static_batch(4, 3)
    _, g0, _ = _apply(sj.rules.Exact(), ff, MSE, batch)
    _, g, _ = _apply(DirectFeedbackAlignment(feedback={"hidden[0]": ff.layers[1].weight}), ff, MSE, batch)
    assert _max_diff(g, g0) < 1e-10 * _scale(g0)


class _NoRecurrentTransport(sj.networks.AbstractWrappedNetwork):
    """Reference: the RSNN with its recurrent input computed from stop_gradient(spikes)."""

    net: sj.networks.RSNN

    def __init__(self, net):
        self.net = net

    def prepare(self, inputs, dt):
        return self.net.prepare(inputs, dt)

    def step(self, state, x, dt):
        return self.net.step(eqx.tree_at(lambda s: s.spikes, state, jax.lax.stop_gradient(state.spikes)), x, dt)

    def step_fn(self, dt):
        return lambda state, x: self.step(state, x, dt)

    def vector_field(self, t, state, inputs_t):
        raise NotImplementedError

    def observe(self, state):
        raise NotImplementedError


def test_dfa_on_rsnn_cuts_recurrent_transport():
    net, batch = _rsnn(), _spike_batch()
    _, g_ref, _ = _apply(sj.rules.Exact(), _NoRecurrentTransport(net), MSE, batch)
    _, g, _ = _apply(DirectFeedbackAlignment(feedback={"hidden[0]": net.w_out.weight}), net, MSE, batch)
    assert _scale(g_ref.net.w_rec) > 0 and _max_diff(g, g_ref.net) < 1e-10 * _scale(g_ref.net)


def _numpy_dfa(ff, feedback, x, y):
    """Nøkland's DFA for a static tanh MLP with MSE, written out by hand."""
    w = [np.asarray(p.weight) for p in ff.layers]
    b = [np.asarray(v) for v in ff.biases]
    a1 = x @ w[0] + b[0]
    h1 = np.tanh(a1)
    a2 = h1 @ w[1] + b[1]
    h2 = np.tanh(a2)
    z = h2 @ w[2] + b[2]
    e = 2 * (z - y) / z.size
    d2 = (e @ feedback[1].T) * (1 - h2**2)
    d1 = (e @ feedback[0].T) * (1 - h1**2)
    return [x.T @ d1, h1.T @ d2, h2.T @ e], [d1.sum(0), d2.sum(0), e.sum(0)]


def test_dfa_on_deep_static_network_matches_numpy():
    ff = _feedforward((4, 6, 5, 3), seed=60, biases=[0.1 * jnp.ones(6), -0.2 * jnp.ones(5), 0.3 * jnp.ones(3)])
    batch = _static_batch(4, 3)
    rule = DirectFeedbackAlignment(key=2)
    feedback = {k: np.asarray(v) for k, v in rule.feedback_for(ff).items()}
    assert feedback["hidden[0]"].shape == (6, 3) and feedback["hidden[1]"].shape == (5, 3)
    loss, g, aux = _apply(rule, ff, MSE, batch)
    dw, db = _numpy_dfa(ff, [feedback["hidden[0]"], feedback["hidden[1]"]], np.asarray(batch.inputs[0]),
                        np.asarray(batch.targets[0]))
    for l in range(3):
        np.testing.assert_allclose(np.asarray(g.layers[l].weight), dw[l], rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(np.asarray(g.biases[l]), db[l], rtol=1e-10, atol=1e-13)
    _, g0, _ = _apply(sj.rules.Exact(), ff, MSE, batch)
    assert float(jnp.abs(loss - aux["loss"])) == 0.0
    assert _max_diff(g.layers[2], g0.layers[2]) < 1e-12  # the readout learns from its true gradient


# -- feedback is fixed and seeded ---------------------------------------------------------------


def test_random_feedback_is_fixed_per_rule_and_seeded():
    net, batch = _rsnn(), _spike_batch()
    rule = FeedbackAlignment(key=3, scale=0.5)
    a, b = rule.feedback_for(net), rule.feedback_for(net)
    assert sorted(a) == ["w_in", "w_out", "w_rec"] and a["w_rec"].shape == (8, 8)
    assert all(jnp.array_equal(a[k], b[k]) for k in a)
    assert float(jnp.max(jnp.abs(jnp.diag(a["w_rec"])))) == 0.0  # no self-connections, no self-feedback
    alias = FeedbackAlignment(seed=3, scale=0.5).feedback_for(net)
    assert all(jnp.array_equal(a[k], alias[k]) for k in a)
    other = FeedbackAlignment(key=4, scale=0.5).feedback_for(net)
    assert not jnp.allclose(a["w_out"], other["w_out"])
    wide = _feedforward((2, 200, 100))
    std = float(jnp.std(FeedbackAlignment(key=0, scale=0.5).feedback_for(wide)["layers[1]"]))
    assert abs(std - 0.5 / np.sqrt(200)) < 0.03 * 0.5 / np.sqrt(200)
    # `fit` draws them once (init) and every step uses them: the same update as a plain call.
    state = rule.init(net, jax.random.key(99))
    loss, g, aux, state2 = eqx.filter_jit(lambda s, n, b: rule.step(s, n, MSE, b, None))(state, net, batch)
    _, g_call, _ = _apply(FeedbackAlignment(feedback=a), net, MSE, batch)
    assert all(jnp.array_equal(state2[k], state[k]) for k in state)
    assert _max_diff(g, g_call) < 1e-12 * _scale(g_call)
    dfa = DirectFeedbackAlignment(key=3)
    assert jnp.array_equal(dfa.init(net, None)["hidden[0]"], dfa.feedback_for(net)["hidden[0]"])


# -- learning with random feedback --------------------------------------------------------------


def test_feedback_alignment_learns_linear_teacher():
    # Lillicrap et al. (2016), Fig. 2: a linear 30-20-10 network with small initial weights learns a
    # linear teacher with fixed random feedback. The 20-unit hidden layer is a bottleneck, so the
    # readout alone cannot fit the teacher: its best loss with the initial hidden weights W1 is
    # ||(I - W1 W1^+) T||_F^2 / n_out (inputs ~ N(0, I)), and FA must beat it by training W1.
    n_in, n_hidden, n_out, batch_size, steps, lr = 30, 20, 10, 32, 300, 0.05
    teacher = _normal(70, n_in, n_out, scale=1.0 / np.sqrt(n_in))
    net = _feedforward((n_in, n_hidden, n_out), "linear", seed=71, gain=0.1)
    w1, t = np.asarray(net.layers[0].weight), np.asarray(teacher)
    readout_only_floor = np.sum((t - w1 @ np.linalg.pinv(w1) @ t) ** 2) / n_out
    fa, exact = FeedbackAlignment(key=11), sj.rules.Exact()
    feedback = fa.init(net, None)

    def one(net, key):
        x = jax.random.normal(key, (1, batch_size, n_in))
        batch = sj.tasks.Batch(inputs=x, targets=x @ teacher)
        loss, g, _, _ = fa.step(feedback, net, MSE, batch, None)
        _, g_true, _ = exact(net, MSE, batch, None)
        u, v = g.layers[0].weight.ravel(), g_true.layers[0].weight.ravel()
        angle = jnp.degrees(jnp.arccos(jnp.vdot(u, v) / (jnp.linalg.norm(u) * jnp.linalg.norm(v))))
        return eqx.apply_updates(net, jax.tree.map(lambda d: -lr * d, g)), (loss, angle)

    train = eqx.filter_jit(lambda n, ks: jax.lax.scan(one, n, ks))
    _, (losses, angles) = train(net, jax.random.split(jax.random.key(10), steps))
    first, last = float(jnp.mean(losses[:10])), float(jnp.mean(losses[-10:]))
    early_angle, late_angle = float(jnp.mean(angles[:3])), float(jnp.mean(angles[-50:]))
    print(f"FA on a linear teacher: loss {first:.4f} -> {last:.5f} (readout-only floor {readout_only_floor:.4f}); "
          f"hidden-update angle to the gradient {early_angle:.0f} -> {late_angle:.0f} degrees")
    assert first / last >= 10.0
    assert last < 0.2 * readout_only_floor  # the hidden layer learned, from random feedback
    assert late_angle < 60.0 and late_angle < early_angle - 20.0


# -- bad input ----------------------------------------------------------------------------------


def test_bad_input(unchecked):
    net, batch = _rsnn(), _spike_batch()
    with pytest.raises(TypeError, match="dict has no projections"):
        FeedbackAlignment()({"w": jnp.ones(3)}, MSE, batch, None)
    with pytest.raises(TypeError, match="dict has no projections"):
        SignSymmetry()({"w": jnp.ones(3)}, MSE, batch, None)
    with pytest.raises(ValueError, match=r"no projection named \['w_hidden'\].*'w_rec'"):
        FeedbackAlignment(feedback={"w_hidden": jnp.ones((8, 8))}).feedback_for(net)
    with pytest.raises(ValueError, match=r"feedback for 'w_out'.*shape \(2, 8\), expected \(8, 2\)"):
        FeedbackAlignment(feedback={"w_out": jnp.ones((2, 8))})(net, MSE, batch, None)
    with pytest.raises(ValueError, match="scale must be finite and > 0"):
        FeedbackAlignment(scale=-1.0)
    with pytest.raises(TypeError, match="int seed or a jax.random key"):
        FeedbackAlignment(key="seven")
    with pytest.raises(TypeError, match="DirectFeedbackAlignment: cannot handle dict; it needs"):
        DirectFeedbackAlignment()({"w": jnp.ones(3)}, MSE, batch, None)
    leaky = _feedforward((4, 5, 5, 2), LeakyRate())
    with pytest.raises(TypeError, match="FeedForward network with 2 hidden layers and memory in time"):
        DirectFeedbackAlignment()(leaky, MSE, batch, None)
    with pytest.raises(ValueError, match=r"'hidden\[0\]' has shape \(2, 8\), expected \(8, 2\)"):
        DirectFeedbackAlignment(feedback={"hidden[0]": jnp.ones((2, 8))}).feedback_for(net)
