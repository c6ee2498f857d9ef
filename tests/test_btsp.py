"""BTSP: the two-state kinetic rule and the place-field protocol of Milstein et al. (2021)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import simjax as sj

P = sj.plasticity


def test_scaled_rectified_sigmoid_closed_form():
    theta, width = 0.3, 0.2
    x = jnp.array([-0.5, 0.0, 0.3, 0.7, 1.0, 2.0])
    s = lambda v: 1.0 / (1.0 + np.exp(-2.0 * (v - theta) / width))  # noqa: E731
    want = (s(np.clip(np.asarray(x), 0, 1)) - s(0.0)) / (s(1.0) - s(0.0))
    got = P.scaled_rectified_sigmoid(x, theta, width)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert got[0] == 0.0 and got[1] == 0.0 and got[4] == pytest.approx(1.0) and got[5] == pytest.approx(1.0)


def test_continuous_update_is_the_two_state_solution():
    # Inputs held at the filters' fixed points keep ET and IS (hence both rates) constant, so the
    # kinetic equation du/dt = a (1 - u) - b u has the closed form u_inf + (u0 - u_inf) exp(-(a + b) t).
    rule = P.BTSP(w_min=0.5, w_max=2.5)
    n_pre, steps, dt = 4, 300, 5.0
    pre = jnp.linspace(0.2, 1.0, n_pre)
    post = jnp.array([0.9, 0.4])
    w0 = jnp.full((n_pre, 2), 1.0)
    traces = P.BTSPTraces(eligibility=pre, instructive=post, potentiation=jnp.zeros_like(w0),
                          depression=jnp.zeros_like(w0))
    w, _ = P.run(rule, jnp.broadcast_to(pre, (steps, n_pre)), jnp.broadcast_to(post, (steps, 2)), w0, dt=dt,
                 traces=traces)
    x = np.asarray(pre)[:, None] * np.asarray(post)[None, :]
    s = lambda v, th, wd: 1.0 / (1.0 + np.exp(-2.0 * (v - th) / wd))  # noqa: E731
    q = lambda v, th, wd: (s(v, th, wd) - s(0, th, wd)) / (s(1, th, wd) - s(0, th, wd))  # noqa: E731
    a, b = 1.110e-3 * q(x, 0.415, 0.454), 0.425e-3 * q(x, 0.0262, 0.0998)
    u0, u_inf = 0.25, a / (a + b)
    u = u_inf + (u0 - u_inf) * np.exp(-(a + b) * steps * dt)
    np.testing.assert_allclose(w, 0.5 + 2.0 * u, rtol=1e-10)


def test_gated_update_changes_weights_only_when_signalled():
    rule = P.BTSP(update="gated")
    steps = 50
    pre = jnp.ones((steps, 3))
    post = jnp.ones((steps, 1))
    w0 = jnp.ones((3, 1))
    modulator = jnp.zeros(steps)
    w, traces = P.run(rule, pre, post, w0, dt=10.0, modulator=modulator)
    np.testing.assert_array_equal(w, w0)
    assert np.all(np.asarray(traces.potentiation) > 0)
    w, traces = P.run(rule, pre, post, w0, dt=10.0, modulator=modulator.at[-1].set(1.0))
    assert np.all(np.asarray(w) > 1.0) and np.all(np.asarray(traces.potentiation) == 0)


def _near(weights, track, position):
    return float(weights[int(np.argmin(np.abs(np.asarray(track.centres) - position)))])


def test_single_plateau_reproduces_the_published_weight_change():
    # One 300 ms plateau at 90 cm on a silent cell (all W = 1), 200 inputs on a 187 cm track at 25 cm/s.
    track = P.Track()
    w0 = jnp.ones(200)
    w = P.place_field(P.BTSP(update="gated"), w0, [np.nan, 90.0, np.nan], track=track)
    dw, offset = np.asarray(w - w0), np.asarray(track.centres) - 90.0
    assert dw.max() == pytest.approx(1.82, rel=0.2)
    assert -10.0 <= offset[dw.argmax()] <= -2.0  # the peak is ~6 cm before the plateau
    half = offset[dw > dw.max() / 2]
    assert half.min() == pytest.approx(-38.0, abs=5.0) and half.max() == pytest.approx(14.0, abs=5.0)
    assert -0.1 < dw.min() < 0.0  # slight depression of the weakly co-active inputs far away


def test_plateau_depresses_strong_inputs_bidirectionally():
    track = P.Track()
    rule = P.BTSP(update="gated")
    w = P.place_field(rule, jnp.ones(200), [np.nan, 150.0, 150.0, 150.0, np.nan], track=track)
    assert _near(w, track, 150.0) > 2.0
    w2 = P.place_field(rule, w, [np.nan, 130.0, np.nan], track=track)
    dw = w2 - w
    assert _near(dw, track, 150.0) == pytest.approx(-0.72, rel=0.2)
    assert _near(dw, track, 120.0) > 0.1
    assert np.all((np.asarray(w2) >= 0.0) & (np.asarray(w2) <= 4.68))


def _loss(params, names, base, track, target):
    rule = eqx.tree_at(lambda r: tuple(getattr(r, n) for n in names), base, tuple(params))
    w = P.place_field(rule, jnp.ones(track.n_inputs), [np.nan, 50.0], track=track)
    return jnp.sum((w - target) ** 2)


@pytest.mark.parametrize("update", ["gated", "continuous"])
def test_rule_parameter_gradients_match_finite_differences(update):
    track = P.Track(n_inputs=16, dt=20.0)
    base = P.BTSP(update=update)
    names = ("tau_et", "tau_is", "k_pot", "k_dep", "theta_pot", "width_pot", "theta_dep", "width_dep")
    params = [getattr(base, n) for n in names]
    target = jnp.linspace(1.0, 3.0, track.n_inputs)
    grads = jax.grad(_loss)(params, names, base, track, target)
    loss = jax.jit(_loss, static_argnums=(1, 3))
    for i, name in enumerate(names):
        h = 1e-5 * abs(float(params[i]))
        up = [p + h if j == i else p for j, p in enumerate(params)]
        down = [p - h if j == i else p for j, p in enumerate(params)]
        fd = (loss(up, names, base, track, target) - loss(down, names, base, track, target)) / (2 * h)
        assert float(grads[i]) == pytest.approx(float(fd), rel=1e-5, abs=1e-10), name


def test_place_field_vmaps_over_rule_parameters():
    track = P.Track(n_inputs=16, dt=20.0)
    taus = jnp.array([800.0, 1664.0, 2500.0])

    def one(tau):
        return P.place_field(P.BTSP(tau_et=tau, update="gated"), jnp.ones(16), [np.nan, 90.0], track=track)

    batched = jax.vmap(one)(taus)
    for i in range(3):
        np.testing.assert_allclose(batched[i], one(taus[i]), rtol=1e-12)


@pytest.mark.parametrize("kwargs, match", [
    (dict(w_min=2.0, w_max=1.0), "w_min < w_max"),
    (dict(tau_et=-5.0), "tau_et"),
    (dict(tau_is=0.0), "tau_is"),
    (dict(theta_pot=1.5), "theta_pot"),
    (dict(width_dep=-0.1), "width_dep"),
    (dict(update="lap"), "update"),
])
def test_bad_rule_parameters(unchecked, kwargs, match):
    with pytest.raises(ValueError, match=match):
        P.BTSP(**kwargs)


def test_bad_place_field_input(unchecked):
    rule = P.BTSP(update="gated")
    with pytest.raises(ValueError, match="weights"):
        P.place_field(rule, jnp.ones(10), [90.0])
    with pytest.raises(ValueError, match="plateau positions"):
        P.place_field(rule, jnp.ones(200), [200.0])
    with pytest.raises(ValueError, match="bounds"):
        P.place_field(rule, jnp.full(200, 9.0), [90.0])
    with pytest.raises(ValueError, match="modulator"):
        P.run(rule, jnp.ones((3, 2)), jnp.ones((3, 1)), jnp.ones((2, 1)), dt=1.0)
