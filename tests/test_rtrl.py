"""RTRL: forward-mode sensitivities give the exact (surrogate) gradient; memory flat in time."""

import equinox as eqx
import jax
import pytest

import simjax as sj
from simjax.rules import RTRL

from .helpers import jit_rule as _jit
from .helpers import max_rel_error as _rel
from .helpers import spike_regression_batch

T, B, N_IN, N_REC, N_OUT = 40, 2, 3, 4, 2


@pytest.fixture(scope="module")
def data():
    return spike_regression_batch(T, B, N_IN, N_OUT, 0.3)


NETWORKS = {
    "lif": lambda: sj.networks.RSNN(N_IN, N_REC, N_OUT, neuron=sj.neurons.LIF(tau_mem=20.0, v_th=0.5),
                                    surrogate=sj.surrogates.Triangle(0.3, 0.5), key=jax.random.key(2),
                                    in_scale=3.0, rec_scale=2.0),
    "alif": lambda: sj.networks.RSNN(N_IN, N_REC, N_OUT, neuron=sj.neurons.ALIF(tau_mem=20.0, v_th=0.5, beta=0.3,
                                                                                tau_adapt=50.0),
                                     key=jax.random.key(2), in_scale=3.0, rec_scale=2.0),
    "rate": lambda: sj.networks.RateRNN(N_IN, N_REC, N_OUT, key=jax.random.key(3), tau_out=5.0, g=1.5),
}


@pytest.mark.parametrize("kind", sorted(NETWORKS))
def test_equals_exact_on_recurrent_network(kind, data):
    net = NETWORKS[kind]()
    task = sj.tasks.Supervised(loss="mse")
    exact, rtrl = sj.rules.Exact(), RTRL()

    @eqx.filter_jit  # one program for both rules
    def run(net, data, key):
        return exact(net, task, data, key)[:2], rtrl(net, task, data, key)[:2]

    if kind != "rate":
        assert float(_jit(lambda n, x: sj.simulate(n, x, dt=1.0).spikes.mean())(net, data.inputs)) > 0.02
    (loss_e, g_exact), (loss_r, g_rtrl) = run(net, data, jax.random.key(0))
    assert float(loss_r) == pytest.approx(float(loss_e), rel=1e-12)
    for a, b in zip(jax.tree.leaves(g_exact), jax.tree.leaves(g_rtrl)):
        assert _rel(a, b) < 1e-8
    # ... where e-prop, which drops the cross-neuron terms, is only an approximation.
    if kind == "lif":
        g_eprop = _jit(sj.rules.EProp())(net, task, data, jax.random.key(0))[1]
        assert _rel(g_exact.w_rec.weight, g_eprop.w_rec.weight) > 1e-3


def test_per_step_loss_path_equals_exact():
    # A task with a per-step loss: one forward pass, learning signal at every step.
    task = sj.tasks.PatternGeneration(n_in=N_IN, n_out=N_OUT, duration=30.0, rate=200.0)
    net = NETWORKS["alif"]()
    exact, rtrl = sj.rules.Exact(), RTRL()

    @eqx.filter_jit  # one program for the sample and both rules
    def run(net, key):
        batch = task.sample(None, B)
        return exact(net, task, batch, key)[:2], rtrl(net, task, batch, key)[:2]

    (loss_e, g_exact), (loss_r, g_rtrl) = run(net, jax.random.key(0))
    assert float(loss_r) == pytest.approx(float(loss_e), rel=1e-12)
    for a, b in zip(jax.tree.leaves(g_exact), jax.tree.leaves(g_rtrl)):
        assert _rel(a, b) < 1e-8


def _temp_bytes(rule, steps):
    task = sj.tasks.PatternGeneration(n_in=3, n_out=1, duration=float(steps))
    batch = jax.eval_shape(lambda: task.sample(None, 1))  # shapes are all the compiler needs
    net = sj.networks.RSNN(3, 4, 1, key=jax.random.key(1))
    f = lambda n, t, b: rule(n, t, b, jax.random.key(0))[:2]  # noqa: E731
    return jax.jit(f).lower(net, task, batch).compile().memory_analysis().temp_size_in_bytes


def test_memory_flat_in_sequence_length():
    rtrl = [_temp_bytes(RTRL(), s) for s in (250, 4000)]
    bptt = [_temp_bytes(sj.rules.Exact(), s) for s in (250, 4000)]
    assert rtrl[1] <= 1.1 * rtrl[0]
    assert bptt[1] - bptt[0] >= 4 * 8 * (4000 - 250)


def test_bad_input(data):
    task = sj.tasks.Supervised(loss="mse")
    with pytest.raises(ValueError, match="max_params"):
        RTRL(max_params=10)(NETWORKS["lif"](), task, data, None)
    with pytest.raises(ValueError, match="max_params"):
        RTRL(max_params=0)
    with pytest.raises(TypeError, match="network"):
        RTRL()(lambda x: x, task, data, None)
    with pytest.raises(ValueError, match="inputs"):
        RTRL()(NETWORKS["lif"](), task, sj.tasks.Batch(inputs=data.inputs[..., :2], targets=data.targets), None)
