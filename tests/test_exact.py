"""`Exact()` against central finite differences for every simulation method, and simulate's input
checks."""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import simjax as sj
from simjax.neurons._rate import LeakyRate
from simjax.parameters import partition

RNG = np.random.default_rng(3)


class _EventTask(sj.tasks.Supervised):
    """MSE of the event-driven readout at t1 against fixed targets."""

    def forward(self, model, batch, key=None, **kwargs):
        return sj.simulate(model, batch.inputs, method="event", t1=20.0, max_events=64)


def _check_against_fd(model, task, batch, eps=1e-6, rtol=1e-5, n_coords=6):
    _, grads, _ = eqx.filter_jit(sj.rules.Exact())(model, task, batch, None)
    g, _ = ravel_pytree(grads)
    params, static = partition(model)
    theta, unravel = ravel_pytree(params)

    @jax.jit  # compiled once, evaluated 2 n_coords times
    def loss(t):
        m = eqx.combine(unravel(t), static)
        return task.loss(task.forward(m, batch, None), batch)

    for i in RNG.choice(theta.size, n_coords, replace=False):
        e = jnp.zeros_like(theta).at[i].set(eps)
        fd = (loss(theta + e) - loss(theta - e)) / (2 * eps)
        assert float(g[i]) == pytest.approx(float(fd), rel=rtol, abs=1e-9), i


def test_exact_matches_finite_differences_clock_driven_rate_network():
    net = sj.networks.RateRNN(3, 5, 2, neuron=LeakyRate(tau=4.0), key=jax.random.key(0), g=1.3)
    batch = sj.tasks.Batch(inputs=jnp.asarray(RNG.normal(size=(15, 2, 3))),
                           targets=jnp.asarray(RNG.normal(size=(2, 2))))
    _check_against_fd(net, sj.tasks.Supervised("mse", "last"), batch)


def test_exact_matches_finite_differences_through_diffrax():
    net = sj.networks.RateRNN(3, 4, 2, neuron=LeakyRate(tau=4.0), key=jax.random.key(1), g=1.1)

    class OdeTask(sj.tasks.Supervised):
        def forward(self, model, batch, key=None, **kwargs):
            return sj.simulate(model, batch.inputs, method="ode", dt=1.0, t1=8.0)

    batch = sj.tasks.Batch(inputs=jnp.asarray(RNG.normal(size=(8, 2, 3))), targets=jnp.asarray(RNG.normal(size=(2, 2))))
    _check_against_fd(net, OdeTask("mse", "last"), batch)


def test_exact_matches_finite_differences_event_driven_spiking_network():
    times = jnp.asarray([1.0, 2.5, 4.0, 6.0, 7.5, 9.0, 12.0, 15.0])
    ids = jnp.asarray([0, 1, 2, 0, 1, 2, 0, 1])
    w_in = jnp.asarray(RNG.uniform(0.5, 0.9, size=(3, 4)))
    net = sj.networks.RSNN(3, 4, 2, neuron=sj.neurons.LIF(tau_mem=10.0, bias=0.3), w_in=w_in,
                           w_rec=jnp.asarray(RNG.uniform(0.0, 0.3, size=(4, 4))),
                           w_out=jnp.asarray(RNG.normal(size=(4, 2))), tau_out=5.0)
    batch = sj.tasks.Batch(inputs=sj.SpikeTrain(times, ids, n=3), targets=jnp.asarray([0.3, -0.2]))
    out = sj.simulate(net, batch.inputs, method="event", t1=20.0, max_events=64)
    assert int(out.info["n_spikes"]) >= 3  # the loss depends on real spike times
    _check_against_fd(net, _EventTask("mse", "last"), batch, eps=1e-7, rtol=1e-5)


def test_simulate_rejects_nan_inputs_and_wrong_widths(unchecked):
    net = sj.networks.RSNN(3, 4, 2, key=jax.random.key(0))
    x = np.zeros((5, 2, 3))
    x[2, 1, 0] = np.nan
    with pytest.raises(ValueError, match="inputs contains NaN or inf"):
        sj.simulate(net, x, dt=1.0)
    with pytest.raises(ValueError, match=r"expected \[time, \*batch, 3\] \(the network has n_in=3"):
        sj.simulate(net, np.zeros((5, 2, 4)), dt=1.0)
    with pytest.raises(ValueError, match="unknown method 'evnt'"):
        sj.simulate(net, np.zeros((5, 2, 3)), dt=1.0, method="evnt")
    with pytest.raises(ValueError, match="dt must be finite and > 0, got -1.0"):
        sj.simulate(net, np.zeros((5, 2, 3)), dt=-1.0)


@pytest.mark.parametrize("kind,method", [("rsnn", "clock"), ("feedforward", "clock"), ("rate", "ode")])
def test_simulate_rejects_nan_inputs_under_jit(kind, method):
    """Traced inputs are checked at run time; only the readout is used, so the check must not be
    dropped as dead code, and finite inputs give the unchecked result."""
    key = jax.random.key(0)
    net = {"rsnn": lambda: sj.networks.RSNN(3, 4, 2, key=key, tau_out=5.0),
           "feedforward": lambda: sj.networks.FeedForward((3, 4, 2), key=key),
           "rate": lambda: sj.networks.RateRNN(3, 4, 2, key=key)}[kind]()
    kwargs = dict(dt=0.5, t1=2.5) if method == "ode" else dict(dt=1.0)

    @functools.partial(jax.jit, static_argnames="checks")
    def readout(x, checks=True):
        return sj.simulate(net, x, method=method, record=("readout",), checks=checks, **kwargs).readout

    x = np.asarray(RNG.normal(size=(5, 2, 3)))
    np.testing.assert_array_equal(readout(x), readout(x, checks=False))
    x[2, 1, 0] = np.inf
    with pytest.raises(Exception, match="inputs contains NaN or inf"):
        jax.block_until_ready(readout(x))
    assert np.all(np.isfinite(readout(np.where(np.isfinite(x), x, 0.0))))


def test_nan_input_under_filter_jit_raises_simjax_message_first():
    """As the conventions page says: under `equinox.filter_jit` the error is equinox's, with the
    program's own stack and simjax's message (not XLA's callback error)."""
    import equinox as eqx

    net = sj.networks.RSNN(3, 4, 2, key=jax.random.key(0))
    x = np.zeros((6, 3))
    x[2, 1] = np.nan
    with pytest.raises(eqx.EquinoxRuntimeError) as err:
        jax.block_until_ready(eqx.filter_jit(lambda x: sj.simulate(net, x, dt=1.0).readout)(x))
    message = str(err.value)
    assert "EquinoxRuntimeError: simulate: inputs contains NaN or inf values" in message
    assert "CpuCallback" not in message and "simulate.py" in message


def test_exact_with_a_replacement_surrogate_returns_updates_shaped_like_the_model():
    """`Exact(surrogate=...)` differentiates with another pseudo-derivative, but its updates keep the
    model's own structure (optimisers and `fit` apply them to the model), and equal the gradient of
    the same network built with that surrogate."""
    kwargs = dict(n_in=3, n_rec=5, n_out=2, key=jax.random.key(0), in_scale=3.0,
                  trainable=("w_in", "w_rec", "w_out", "b_out", "neuron"))
    net = sj.networks.RSNN(**kwargs, surrogate=sj.surrogates.FastSigmoid(slope=25.0))
    built = sj.networks.RSNN(**kwargs, surrogate=sj.surrogates.Triangle(dampening=0.3))
    task = sj.tasks.Supervised(loss="mse", dt=1.0)
    batch = sj.tasks.Batch(inputs=jnp.asarray(RNG.uniform(size=(15, 2, 3))),
                           targets=jnp.asarray(RNG.normal(size=(15, 2, 2))))
    _, updates, _ = sj.rules.Exact(surrogate=sj.surrogates.Triangle(dampening=0.3))(net, task, batch, None)
    _, reference, _ = sj.rules.Exact()(built, task, batch, None)
    assert jax.tree.structure(updates) == jax.tree.structure(partition(net)[0])
    for name in ("w_in", "w_rec", "w_out"):
        np.testing.assert_allclose(getattr(updates, name).weight, getattr(reference, name).weight, rtol=1e-12)
    np.testing.assert_allclose(updates.neuron.tau_mem, reference.neuron.tau_mem, rtol=1e-12)
