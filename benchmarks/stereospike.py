"""One StereoSpike training step (forward, backward, Adam) of the scaled network: simjax vs. the
same network written by hand in plain JAX, measured in the same process.

Workload (identical in both): the scaled StereoSpike (channels 4-8-16-32-64, 5x5 kernels, two
3x3 SEW blocks at 64 channels, 4-scale I-neuron readout, arctan surrogate alpha=2, sigmoid alpha=4
in the bottleneck), a fixed batch of 8 binocular random-dot stereograms of 64x96 pixels (4
event-count maps), the multi-scale scale-invariant + 0.5 x zero-padded Sobel loss with 5 % NaN
pixels, one Adam step (lr 1e-3), float32.

- **simjax**: what a user writes: `simjax.networks.StereoSpike`, `simjax.tasks.RandomDotStereo`
  (its `loss`), `simjax.rules.Exact`, `optax.adam`, `eqx.filter_jit`.
- **baseline**: the same step with a dict of weight arrays, `lax.conv_general_dilated`, a
  `jax.custom_jvp` Heaviside and the loss written out (no simjax import in its code path).

PyTorch + SpikingJelly: not run here (neither is installed in this environment and nothing is
downloaded); the JSON records the skip and its reason.

Before timing, the losses and gradients of the two are compared in float64 on the same weights.
Single thread, pinned to the least busy core; warm-up steps, then interleaved repeats of
individually timed steps; medians reported, and the ratio simjax / baseline (target <= 1.05).

GPU plan (no GPU was lent when this was written): run `python benchmarks/stereospike.py --full`
on the device (drop the single-thread pinning with `--no-pin`): the full network (channels
32-512) on 260x346 inputs, batch 1 as in the paper and batch 8, reporting the step time and
`jax.devices()[0].memory_stats()["peak_bytes_in_use"]` for both implementations.

Usage: `python benchmarks/stereospike.py [--quick] [--full] [--B 8] [--H 64 --W 96]`
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

SCALED = (4, 8, 16, 32, 64)
FULL = (32, 64, 128, 256, 512)
LR, GRAD_WEIGHT, NAN_FRACTION = 1e-3, 0.5, 0.05


def make_data(H: int, W: int, B: int):
    import jax
    import jax.numpy as jnp

    import simjax as sj

    task = sj.tasks.RandomDotStereo(H, W, size=max(B, 8), nan_fraction=NAN_FRACTION)
    batch = task.scenes(jnp.arange(B))
    return task, jax.device_get(batch.inputs), jax.device_get(batch.targets)


# ---------------------------------------------------------------------------- simjax
def simjax_step(task, x, y, channels, dtype):
    import equinox as eqx
    import optax

    import simjax as sj

    net, batch, loss_and_grads = simjax_loss_and_grads(task, x, y, channels, dtype)
    opt = optax.adam(LR)
    params, static = sj.parameters.partition(net)
    rule = sj.rules.Exact()

    @eqx.filter_jit
    def train_step(params, opt_state, batch):
        loss, grads, _ = rule(eqx.combine(params, static), task, batch, None)
        updates, opt_state = opt.update(grads, opt_state, params)
        return eqx.apply_updates(params, updates), opt_state, loss

    state = {"params": params, "opt": opt.init(params)}

    def step():
        state["params"], state["opt"], loss = train_step(state["params"], state["opt"], batch)
        return loss.block_until_ready()

    step.compile = lambda: train_step.lower(state["params"], state["opt"], batch).compile()

    return step, net, loss_and_grads


def simjax_loss_and_grads(task, x, y, channels, dtype):
    """The simjax network (weights from key 0, cast to `dtype`), the batch, and a jitted function
    returning the task loss and its surrogate gradients."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    import simjax as sj

    net = sj.networks.StereoSpike(4, channels, key=jax.random.key(0))
    net = jax.tree.map(lambda a: a.astype(dtype) if eqx.is_inexact_array(a) else a, net)
    batch = sj.tasks.Batch(inputs=jnp.asarray(x, dtype), targets=jnp.asarray(y, dtype))

    @eqx.filter_jit
    def loss_and_grads(net, batch):  # arguments, not closed-over constants (XLA would fold them)
        loss, grads, _ = sj.rules.Exact()(net, task, batch, None)
        return loss, grads

    return net, batch, lambda: loss_and_grads(net, batch)


# ---------------------------------------------------------------------------- plain JAX
def baseline_weights(net) -> dict:
    """The simjax network's weights as the plain dict the baseline uses."""
    return {"bottom": net.bottom.conv.weight, "enc": [e.conv.weight for e in net.encoders],
            "sew": [(b.conv1.weight, b.conv2.weight) for b in net.bottleneck],
            "dec": [d.upconv.conv.weight for d in net.decoders],
            "pred": [(p.conv.weight, p.conv.bias) for p in net.readout.predictions]}


def baseline_step(params, x, y, dtype):
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    def make_spike(alpha, kind):
        @jax.custom_jvp
        def spike(u):  # u = I - v_th; spikes at u >= 0
            return (u >= 0).astype(u.dtype)

        @spike.defjvp
        def _(primals, tangents):
            (u,), (du,) = primals, tangents
            if kind == "atan":
                g = (alpha / 2) / (1 + (jnp.pi / 2 * alpha * u) ** 2)
            else:
                s = jax.nn.sigmoid(alpha * u)
                g = alpha * s * (1 - s)
            return spike(u), g * du

        return spike

    atan, sig = make_spike(2.0, "atan"), make_spike(4.0, "sigmoid")

    def conv(x, w, stride=1, pad=0):
        return jax.lax.conv_general_dilated(x, w, (stride, stride), ((pad, pad), (pad, pad)),
                                           dimension_numbers=("NCHW", "OIHW", "NCHW"))

    def resize(x, h2, w2):
        h, w = x.shape[-2:]
        return x[:, :, (np.arange(h2) * h) // h2][:, :, :, (np.arange(w2) * w) // w2]

    def upconv(x, w, h, wd):
        k = w.shape[-1]
        return conv(resize(x, h + k - 1, wd + k - 1), w)

    sobel_x = np.array([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    sobel_k = np.stack([sobel_x, sobel_x.T])[:, None]

    def forward(p, x):
        H, W = x.shape[-2:]
        skips = [atan(conv(x, p["bottom"], 1, 2) - 1.0)]
        for w in p["enc"]:
            skips.append(atan(conv(skips[-1], w, 2, 2) - 1.0))
        out = skips.pop()
        for w1, w2 in p["sew"]:
            out = sig(conv(sig(conv(out, w1, 1, 1) - 1.0), w2, 1, 1) - 1.0) + out
        depth, depths = 0.0, []
        for w, (wp, bp) in zip(p["dec"], p["pred"]):
            skip = skips.pop()
            out = atan(upconv(out, w, *skip.shape[-2:]) - 1.0) + skip
            depth = depth + upconv(out, wp, H, W)[:, 0] + bp[0]
            depths.append(depth)
        return depths

    def loss_fn(p, x, y):
        valid = jnp.isfinite(y)
        n = jnp.sum(valid, axis=(-2, -1))
        total = 0.0
        for d in forward(p, x):
            r = jnp.where(valid, d - jnp.where(valid, y, 0), 0)
            reg = jnp.sum(r**2, axis=(-2, -1)) / n - (jnp.sum(r, axis=(-2, -1)) / n) ** 2
            g = conv(r[:, None], jnp.asarray(sobel_k, r.dtype), 1, 1)
            grad = jnp.sum(jnp.abs(g), axis=(-3, -2, -1)) / n
            total = total + jnp.mean(reg) + GRAD_WEIGHT * jnp.mean(grad)
        return total

    opt = optax.adam(LR)
    params = jax.tree.map(lambda a: jnp.asarray(a, dtype), params)
    xj, yj = jnp.asarray(x, dtype), jnp.asarray(y, dtype)

    @jax.jit
    def train_step(p, opt_state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(p, x, y)
        updates, opt_state = opt.update(grads, opt_state, p)
        return optax.apply_updates(p, updates), opt_state, loss

    state = {"params": params, "opt": opt.init(params)}

    def step():
        state["params"], state["opt"], loss = train_step(state["params"], state["opt"], xj, yj)
        return loss.block_until_ready()

    step.compile = lambda: train_step.lower(state["params"], state["opt"], xj, yj).compile()
    return step, lambda: jax.jit(jax.value_and_grad(loss_fn))(params, xj, yj)


def check_agreement(task, x, y, channels) -> dict:
    """Loss and gradients of the two in float64 on the same weights (relative errors)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    x64 = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        net, _, sj_lg = simjax_loss_and_grads(task, x, y, channels, jnp.float64)
        loss_sj, grads_sj = sj_lg()
        _, ref_lg = baseline_step(baseline_weights(net), x, y, jnp.float64)
        loss_ref, grads_ref = ref_lg()
        g_sj = [np.asarray(a) for a in jax.tree.leaves(baseline_weights(grads_sj))]
        g_ref = [np.asarray(a) for a in jax.tree.leaves(grads_ref)]
        rel = max(float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300)) for a, b in zip(g_sj, g_ref))
        return {"loss_simjax": float(loss_sj), "loss_baseline": float(loss_ref),
                "loss_rel_err": abs(float(loss_sj) - float(loss_ref)) / abs(float(loss_ref)),
                "grad_max_rel_err": rel}
    finally:
        jax.config.update("jax_enable_x64", x64)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="32x48, few steps (smoke test)")
    ap.add_argument("--full", action="store_true", help="the full network (channels 32-512) on 260x346 (GPU)")
    ap.add_argument("--B", type=int, default=8)
    ap.add_argument("--H", type=int, default=None)
    ap.add_argument("--W", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None, help="timed steps per repeat")
    ap.add_argument("--repeats", type=int, default=None, help="interleaved repeats")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--no-check", action="store_true", help="skip the float64 agreement check")
    ap.add_argument("--no-pin", action="store_true", help="all threads, no pinning (GPU runs)")
    ap.add_argument("--out", type=Path, default=_common.RESULTS / "stereospike.json")
    args = ap.parse_args(argv)
    H = args.H or (32 if args.quick else 260 if args.full else 64)
    W = args.W or (48 if args.quick else 346 if args.full else 96)
    channels = FULL if args.full else SCALED
    steps = args.steps or (3 if args.quick else 5)
    repeats = args.repeats or (2 if args.quick else 5)
    threads = {} if args.no_pin else _common.single_thread()
    import jax
    import jax.numpy as jnp

    started = time.strftime("%Y-%m-%d %H:%M:%S")
    task, x, y = make_data(H, W, args.B)
    result = {"H": H, "W": W, "B": args.B, "channels": list(channels), "dtype": "float32"}
    if not args.no_check:
        a = check_agreement(task, x, y, channels)
        result["agreement_float64"] = a
        print(f"check (float64, same weights): loss simjax {a['loss_simjax']:.12g} baseline {a['loss_baseline']:.12g} "
              f"(rel {a['loss_rel_err']:.1e}); grad max rel err {a['grad_max_rel_err']:.1e}", flush=True)
    sj_step, net, _ = simjax_step(task, x, y, channels, jnp.float32)
    ref_step, _ = baseline_step(baseline_weights(net), x, y, jnp.float32)
    fns = {"simjax": sj_step, "baseline": ref_step}
    compile_s = {}
    for name, fn in fns.items():
        compile_s[name] = _common.timed(fn.compile)
        for _ in range(1 + args.warmup):
            fn()
    timing = _common.interleaved(fns, steps=steps, repeats=repeats, reference="baseline")
    for name in fns:
        timing[name]["compile_s"] = round(compile_s[name], 3)
    result["timing"] = timing
    result["ratios"] = {"simjax/baseline": round(timing["simjax"]["median_ms"] / timing["baseline"]["median_ms"], 3),
                        "simjax/baseline_cpu_paired": timing["simjax"]["ratio_paired"]}
    missing = [m for m in ("torch", "spikingjelly") if importlib.util.find_spec(m) is None]
    result["spikingjelly"] = (f"skipped: {', '.join(missing)} not installed in this environment (nothing is "
                              "downloaded)" if missing else "skipped: no SpikingJelly step is written yet")
    print(f"PyTorch + SpikingJelly: {result['spikingjelly']}")
    if jax.devices()[0].platform != "cpu":
        result["peak_bytes_in_use"] = jax.devices()[0].memory_stats().get("peak_bytes_in_use")
    print(f"{H}x{W} batch {args.B} channels {channels}: simjax {timing['simjax']['median_ms']:.1f} ms, "
          f"baseline {timing['baseline']['median_ms']:.1f} ms, ratio {result['ratios']['simjax/baseline']:.3f} "
          f"(cpu, paired: {result['ratios']['simjax/baseline_cpu_paired']:.3f}); compile "
          f"{compile_s['simjax']:.1f}/{compile_s['baseline']:.1f} s; foreign load "
          f"{max(v['foreign_cores'] for v in timing.values()):.2f} cores")
    report = {"benchmark": "stereospike", "started": started, "argv": sys.argv[1:], "threads": threads,
              "machine": _common.machine(), "protocol": {"warmup": args.warmup, "steps": steps, "repeats": repeats,
                                                         "interleaved": True}, "results": [result]}
    path = _common.write_json(args.out, report)
    print(f"wrote {path}")
    return report


if __name__ == "__main__":
    main()
