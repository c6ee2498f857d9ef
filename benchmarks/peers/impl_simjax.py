"""simjax as one more column of the peer harness (`../shared/bench-peers`).

Implements the harness's `build(cfg) -> Bench(step, check, meta)` for its workloads W1 (one BPTT +
Adam training step) and W2 (forward only) with the public simjax API: `simjax.networks.RSNN` of
`simjax.neurons.LIF` (subtract reset, detached), fast-sigmoid surrogate (slope 25), leaky readout,
`simjax.tasks.Supervised(loss="cross_entropy", readout="mean")`, `simjax.rules.Exact`, optax Adam.
Deviation from the harness's reference equations: simjax resets within the step
(`v_t = beta (v_{t-1} - thr s_{t-1}) + ...`, like brainstate and SpikingJelly) rather than at the
next step (`beta v_{t-1} - thr s_{t-1}`); the FLOPs are the same.

Environment: `SIMJAX_MEMORY` = `store` (default) | `checkpoint` | `recompute` selects the
memory policy of `simjax.simulate`; `PEER_HARNESS` is the harness folder (for `common.py`).
Run through `benchmarks/peers/run.py`.
"""

import os
import sys
from pathlib import Path

HARNESS = os.environ.get("PEER_HARNESS", str(Path(__file__).resolve().parents[3] / "shared" / "bench-peers"))
sys.path.insert(0, HARNESS)
import common  # noqa: E402

MEMORY = os.environ.get("SIMJAX_MEMORY", "store")
LIB = "simjax" + ("" if MEMORY == "store" else f"-{MEMORY}")


def versions():
    import jax
    import simjax

    return dict(jax=jax.__version__, simjax=getattr(simjax, "__version__", "dev"))


def build(cfg):
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    import simjax as sj

    d = common.make_data(cfg)
    f32 = jnp.float32
    tau_mem = -1.0 / float(np.log(common.BETA))  # dt = 1 ms
    tau_out = -1.0 / float(np.log(common.KAPPA))
    lif = sj.neurons.LIF(tau_mem=jnp.asarray(tau_mem, f32), v_th=jnp.asarray(common.THRESHOLD, f32))
    net = sj.networks.RSNN(n_in=d["w_in"].shape[0], n_rec=cfg.N, n_out=d["w_out"].shape[1], neuron=lif,
                           surrogate=sj.surrogates.FastSigmoid(slope=jnp.asarray(common.SLOPE, f32)),
                           w_in=jnp.asarray(d["w_in"]), w_rec=jnp.asarray(d["w_rec"]),
                           w_out=jnp.asarray(d["w_out"]), b_out=jnp.zeros((d["w_out"].shape[1],), f32),
                           tau_out=jnp.asarray(tau_out, f32), trainable=("w_in", "w_rec", "w_out"))
    task = sj.tasks.Supervised(loss="cross_entropy", readout="mean", dt=1.0)
    rule = sj.rules.Exact(memory=MEMORY)
    batch = sj.tasks.Batch(inputs=jnp.asarray(d["x"]), targets=jnp.asarray(d["y"], dtype=jnp.int32))
    key = jax.random.key(0)
    opt = optax.adam(common.LR)
    state = dict(net=net, opt=opt.init(sj.parameters.params(net)))

    @eqx.filter_jit
    def train_step(net, opt_state, batch):
        loss, updates, _ = rule(net, task, batch, key)
        updates, opt_state = opt.update(updates, opt_state, sj.parameters.params(net))
        return eqx.apply_updates(net, updates), opt_state, loss

    @eqx.filter_jit
    def forward(net, x):
        return jnp.mean(sj.simulate(net, x, dt=1.0, record=("readout",)).readout, axis=0)

    @eqx.filter_jit
    def check_fn(net, batch):
        loss, grads, _ = rule(net, task, batch, key)
        out = sj.simulate(net, batch.inputs, dt=1.0, record=("spikes", "readout"))
        norm = jnp.sqrt(sum(jnp.sum(g ** 2) for g in jax.tree.leaves(grads)))
        return loss, jnp.mean(out.spikes), jnp.mean(jnp.abs(out.readout)), norm

    if cfg.workload == "W1":
        def step():
            state["net"], state["opt"], loss = train_step(state["net"], state["opt"], batch)
            loss.block_until_ready()
    else:
        def step():
            forward(state["net"], batch.inputs).block_until_ready()

    def check():
        loss, rate, oabs, gn = (float(v) for v in check_fn(state["net"], batch))
        return dict(loss=loss, rate=rate, out_abs_mean=oabs, grad_norm=gn)

    return common.Bench(step=step, check=check, meta=dict(
        neuron="simjax LIF (reset within the step), fast-sigmoid(25)", notes=f"simulate memory={MEMORY!r}"))


if __name__ == "__main__":
    common.main(build, LIB, versions)
