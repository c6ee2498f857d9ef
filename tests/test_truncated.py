"""TruncatedBPTT: limits (k >= T, memoryless network) and a segment-by-segment autodiff reference."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import simjax as sj
from simjax.neurons._rate import InstantaneousRate
from simjax.parameters import partition
from simjax.rules import TruncatedBPTT, TruncatedNetwork

T, BATCH, N_IN, N_REC, N_OUT = 12, 3, 5, 8, 2


def _normal(seed, *shape, scale=1.0):
    # NumPy draws: test data without compiling a random-number kernel per shape.
    return jnp.asarray(scale * np.random.default_rng(seed).standard_normal(shape))


def _batch(seed=1):
    x = (np.random.default_rng(seed).uniform(size=(T, BATCH, N_IN)) < 0.3).astype(np.float64)
    return sj.tasks.Batch(inputs=jnp.asarray(x), targets=_normal(seed + 1, T, BATCH, N_OUT))


def _net(**kwargs):
    weights = {"w_in": _normal(10, N_IN, N_REC, scale=4.0 / np.sqrt(N_IN)),
               "w_rec": _normal(11, N_REC, N_REC, scale=2.0 / np.sqrt(N_REC)),
               "w_out": _normal(12, N_REC, N_OUT, scale=1.0 / np.sqrt(N_REC))}
    return sj.networks.RSNN(N_IN, N_REC, N_OUT, **{**weights, **kwargs})


def _max_diff(a, b):
    return max(float(jnp.max(jnp.abs(u - v))) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _norm(a):
    return max(float(jnp.max(jnp.abs(u))) for u in jax.tree.leaves(a))


TASK = sj.tasks.Supervised("mse", "all", dt=1.0)


@eqx.filter_jit
def _apply(rule, net, batch):
    return rule(net, TASK, batch, None)


@pytest.mark.parametrize("k", [T, 50])
def test_k_at_least_sequence_length_is_exact(k):
    net, batch = _net(), _batch()
    loss0, g0, _ = _apply(sj.rules.Exact(), net, batch)
    loss, g, aux = _apply(TruncatedBPTT(k=k), net, batch)
    assert jax.tree.structure(g) == jax.tree.structure(sj.parameters.params(net))
    assert float(jnp.abs(loss - loss0)) == 0.0
    assert _max_diff(g, g0) < 1e-12 * _norm(g0)
    assert set(aux) == {"loss", "nmse"}


def _memoryless(kind):
    if kind == "spiking":
        # No recurrent weights, a membrane that forgets within one step (exp(-dt/tau_mem) = 0 in
        # float64) and a memoryless readout.
        return _net(neuron=sj.neurons.LIF(tau_mem=1e-3), w_rec=jnp.zeros((N_REC, N_REC)), tau_out=None)
    # A discrete-time (Elman) rate RNN x_t = tanh(x_{t-1}) W_rec + u_t W_in with W_rec = 0.
    return sj.networks.RateRNN(N_IN, N_REC, N_OUT, InstantaneousRate("tanh"), w_in=_normal(20, N_IN, N_REC),
                               w_rec=jnp.zeros((N_REC, N_REC)), w_out=_normal(21, N_REC, N_OUT), tau_out=None)


@pytest.mark.parametrize("kind", ["spiking", "rate"])
def test_k1_on_memoryless_network_is_exact(kind):
    # Nothing is carried from step to step, so truncating at every step is exact.
    net, batch = _memoryless(kind), _batch()
    _, g0, _ = _apply(sj.rules.Exact(), net, batch)
    _, g, _ = _apply(TruncatedBPTT(k=1), net, batch)
    assert _norm(g0.w_in) > 0 and _norm(g0.w_out) > 0
    assert _max_diff(g, g0) < 1e-12 * _norm(g0)


@eqx.filter_jit
def _block_grad(params, static, state, xs, err):
    """Autodiff of one block started from a constant state: (vjp with the block's error, final state)."""
    block = lambda p: sj.simulate(eqx.combine(p, static), xs, dt=1.0, state=state)
    out, vjp = eqx.filter_vjp(block, params)
    (g,) = vjp(eqx.tree_at(lambda o: o.readout, jax.tree.map(jnp.zeros_like, out), err))
    return g, jax.lax.stop_gradient(out.final_state)


def _segment_reference(net, batch, k):
    """Sum over blocks of separate autodiff runs started from the (constant) block-initial state,
    each weighted by the full loss's error on that block's readout."""
    params, static = partition(net)
    out = sj.simulate(net, batch.inputs, dt=1.0)
    err = jax.grad(lambda r: TASK.loss(eqx.tree_at(lambda o: o.readout, out, r), batch))(out.readout)
    total = jax.tree.map(jnp.zeros_like, params)
    state = net.init(None, (BATCH,))
    for start in range(0, T, k):
        g, state = _block_grad(params, static, state, batch.inputs[start:start + k], err[start:start + k])
        total = jax.tree.map(jnp.add, total, g)
    return total


def _rate_rnn():
    return sj.networks.RateRNN(N_IN, N_REC, N_OUT, w_in=_normal(30, N_IN, N_REC),
                               w_rec=_normal(31, N_REC, N_REC, scale=1.5 / np.sqrt(N_REC)),
                               w_out=_normal(32, N_REC, N_OUT), tau_out=5.0)


@pytest.mark.parametrize("kind, k", [("rsnn", 1), ("rsnn", 5), ("rate", 5)])
def test_truncated_gradient_matches_blockwise_reference(kind, k):
    net, batch = (_net() if kind == "rsnn" else _rate_rnn()), _batch()
    _, g0, _ = _apply(sj.rules.Exact(), net, batch)
    loss, g, _ = _apply(TruncatedBPTT(k=k), net, batch)
    ref = _segment_reference(net, batch, k)
    assert _max_diff(g, ref) < 1e-10 * _norm(ref)
    assert _max_diff(g, g0) > 1e-3 * _norm(g0)  # truncation really changes the gradient here


def test_truncation_composes_with_checkpointed_scan():
    net, batch = _net(), _batch()
    _, g, _ = _apply(TruncatedBPTT(k=5, memory="checkpoint", segment=4), net, batch)
    ref = _segment_reference(net, batch, 5)
    assert _max_diff(g, ref) < 1e-10 * _norm(ref)


def test_wrapper_forward_is_unchanged():
    net, batch = _net(), _batch()
    a = sj.simulate(net, batch.inputs, dt=1.0)
    b = sj.simulate(TruncatedNetwork(net, 3), batch.inputs, dt=1.0)
    assert jnp.array_equal(a.readout, b.readout) and jnp.array_equal(a.spikes, b.spikes)


def test_bad_input(unchecked):
    with pytest.raises(ValueError, match="k must be a positive int"):
        TruncatedBPTT(k=0)
    with pytest.raises(ValueError, match="k must be a positive int"):
        TruncatedBPTT(k=2.5)
    with pytest.raises(ValueError, match="method 'ode'"):
        TruncatedBPTT(k=3, method="ode")
    with pytest.raises(TypeError, match="got dict"):
        TruncatedBPTT(k=3)({"w": jnp.ones(2)}, TASK, _batch(), None)
