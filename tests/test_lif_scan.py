"""The recurrent-LIF fast path (`simjax.networks._lif_scan`) against plain autodiff of the generic step.

`simulate(..., memory="recompute")` always takes the generic path (autodiff through `RSNN.step`,
recomputed per step), so it is an independent reference for the hand-derived backward pass.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import simjax as sj
from simjax.networks import _lif_scan as lif_scan
from simjax.networks._lif_scan import supports
from simjax.synapses import Dale


def network(reset, **kwargs):
    lif = sj.neurons.LIF(tau_mem=jnp.linspace(10.0, 30.0, 6), v_th=1.0, reset=reset, bias=0.05, v_rest=-0.05,
                         v_reset=0.1)
    return sj.networks.RSNN(4, 6, 3, neuron=lif, key=jax.random.key(0), rec_scale=1.0, in_scale=1.0, **kwargs)


X = 0.15 * jax.random.uniform(jax.random.key(1), (60, 2, 3, 4))  # two batch axes


def loss(net, state, memory):
    out = sj.simulate(net, X, dt=1.0, state=state, memory=memory)
    final = out.final_state
    time_weights = jnp.cos(jnp.arange(60.0))[:, None, None, None]
    return (jnp.sum(jnp.sin(out.readout) * time_weights) + 0.1 * jnp.sum(out.v ** 2)
            + jnp.sum(out.spikes * jnp.cos(jnp.arange(6.0))) + jnp.sum(2.0 * final.neuron.v)
            + jnp.sum(3.0 * final.spikes) + jnp.sum(final.readout))


def test_readout_only_loss_and_hessian_vector_products():
    """Unused outputs are symbolic zeros in the backward pass; forward-over-reverse (HVPs, as in
    `simjax._curvature`) differentiates the hand-derived backward pass itself."""
    net = network("subtract")
    w0 = net.w_rec.weight

    def readout_loss(w, memory):
        n = eqx.tree_at(lambda n: n.w_rec.weight, net, w)
        return jnp.sum(jnp.mean(sj.simulate(n, X, dt=1.0, memory=memory, record=("readout",)).readout, 0) ** 2)

    direction = jax.random.normal(jax.random.key(5), w0.shape)
    for fn in (jax.grad(readout_loss),
               lambda w, m: jax.jvp(lambda w: jax.grad(readout_loss)(w, m), (w,), (direction,))[1]):
        program = jax.jit(fn, static_argnums=1)  # (eagerly, every operation would compile on its own)
        fast, slow = program(w0, "store"), program(w0, "recompute")
        np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-10 * float(jnp.max(jnp.abs(slow))))


def initial_state(net):
    state = net.init(None, (2, 3))
    spikes = (jax.random.uniform(jax.random.key(2), (2, 3, 6)) < 0.5).astype(float)
    v = jax.random.uniform(jax.random.key(3), (2, 3, 6))
    return eqx.tree_at(lambda s: (s.spikes, s.neuron.v), state, (spikes, v))


@pytest.mark.parametrize("reset, dale, neuron_major",
                         [("subtract", False, False), ("zero", False, False), ("subtract", True, False),
                          ("subtract", False, True), ("zero", True, True)])
def test_fast_path_equals_autodiff_of_the_generic_step(reset, dale, neuron_major, monkeypatch):
    """Values, loss and gradients of the fast path (both loop layouts) against autodiff of the
    generic step, from a non-resting state, with two batch axes; the readout and the weight
    gradients run over ten chunks of time."""
    monkeypatch.setattr(lif_scan, "NEURON_MAJOR_FROM", 0 if neuron_major else 10**9)
    monkeypatch.setattr(lif_scan, "CHUNK_ROWS", 42)  # 6 rows per step: chunks of 6 of the 60 steps
    kwargs = {}
    if dale:
        kwargs["w_rec"] = Dale.init(6, 6, key=jax.random.key(4), frac_excitatory=0.5, scale=1.0)
    net = network(reset, **kwargs)
    assert supports(net)
    state = initial_state(net)
    fast = sj.simulate(net, X, dt=1.0, state=state)
    slow = sj.simulate(net, X, dt=1.0, state=state, memory="recompute")
    rate = float(jnp.mean(slow.spikes))
    assert 0.02 < rate < 0.6  # the comparison covers spiking and silent steps
    for a, b in zip(jax.tree.leaves(fast), jax.tree.leaves(slow)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)

    # Differentiated, the fast path runs a different forward (voltage trace kept, readout as one
    # matmul after the loop): its values must agree as well.
    value_and_grad = eqx.filter_value_and_grad(lambda args, memory: loss(*args, memory))
    l_fast, g_fast = value_and_grad((net, state), "store")
    l_slow, g_slow = value_and_grad((net, state), "recompute")
    np.testing.assert_allclose(l_fast, l_slow, rtol=1e-12)
    leaves = jax.tree_util.tree_leaves_with_path(g_slow)
    assert len(leaves) == len(jax.tree.leaves(g_fast))
    for (path, b), a in zip(leaves, jax.tree.leaves(g_fast)):
        scale = float(jnp.max(jnp.abs(b))) + 1e-12
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-10 * scale, err_msg=jax.tree_util.keystr(path))


@pytest.mark.parametrize("w_in", ["dense", "sparse"])
def test_input_gradients_equal_autodiff(w_in):
    """Gradients with respect to the inputs and the input weights: the fast path applies dense input
    weights inside its loops and receives the current of any other projection (here sparse)."""
    kwargs = {} if w_in == "dense" else {"w_in": sj.synapses.Sparse.random(4, 6, p=0.6, key=jax.random.key(7),
                                                                            scale=1.0)}
    net = network("subtract", **kwargs)

    def readout_loss(args, memory):
        n, x = args
        out = sj.simulate(n, x, dt=1.0, memory=memory, record=("readout", "v"))
        return jnp.sum(jnp.sin(out.readout)) + 0.1 * jnp.sum(out.v ** 2)

    grad = eqx.filter_grad(readout_loss)
    (gn_fast, gx_fast), (gn_slow, gx_slow) = grad((net, X), "store"), grad((net, X), "recompute")
    assert float(jnp.max(jnp.abs(gx_slow))) > 0
    np.testing.assert_allclose(gx_fast, gx_slow, rtol=0, atol=1e-10 * float(jnp.max(jnp.abs(gx_slow))))
    for a, b in zip(jax.tree.leaves(gn_fast.w_in), jax.tree.leaves(gn_slow.w_in)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-10 * float(jnp.max(jnp.abs(b))))


def test_only_eligible_networks_take_the_fast_path():
    assert supports(network("subtract"))
    assert not supports(network("subtract", w_rec=sj.synapses.Sparse.random(6, 6, p=0.5, key=jax.random.key(0))))
    for neuron in (sj.neurons.LIF(t_ref=2.0), sj.neurons.LIF(tau_syn=5.0), sj.neurons.LIF(detach_reset=False),
                   sj.neurons.ALIF()):
        assert not supports(sj.networks.RSNN(2, 3, 1, neuron=neuron, key=jax.random.key(0)))


def test_time_chunks_divide_the_sequence(monkeypatch):
    """Chunk lengths divide the number of steps (chunking is a reshape), sit near the target number
    of rows, and fall back to one chunk when no divisor is long enough (a prime number of steps)."""
    monkeypatch.setattr(lif_scan, "CHUNK_ROWS", 1024)
    assert lif_scan._chunk_length(500, 32, 256) == 25  # target 32 steps; divisors 25 and 50 nearest
    assert lif_scan._chunk_length(499, 32, 256) == 499  # prime: one chunk
    assert lif_scan._chunk_length(60, 6, 6) == 60  # target 171 steps > 60: one chunk
    assert lif_scan._chunk_length(1, 32, 256) == 1
    for steps in (7, 48, 100, 360, 1000):
        assert steps % lif_scan._chunk_length(steps, 8, 64) == 0
