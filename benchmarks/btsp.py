"""BTSP on the 21-7-21 dendritic E/I network: many training runs as one program.

- **seeds**: ``--seeds`` (10) runs of ``--epochs`` (300) epochs of single-pattern BTSP updates
  (`simjax.fit` with `simjax.rules.BTSP`, 21 one-hot patterns) as one `jax.vmap`-ed program,
  against a per-seed loop of the same jitted single-run program, timed in the same process after
  compilation. Reported: seconds of each and the ratio loop / vmapped.
- **search**: ``--settings`` (1000) learning-rate settings (the four BTSP rates drawn log-uniformly
  within a factor 3 of the defaults) in one vmapped program, against the per-setting loop
  extrapolated from ``--loop-settings`` (5) timed calls of the single-run program.

Both in float32 on the default backend. Writes ``results/btsp.json``.

Usage: ``python benchmarks/btsp.py [--quick] [--seeds 10] [--epochs 300] [--settings 1000]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402


def parse():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 seeds, 20 epochs, 20 settings")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--settings", type=int, default=1000)
    ap.add_argument("--search-epochs", type=int, default=100)
    ap.add_argument("--loop-settings", type=int, default=5)
    ap.add_argument("--out", type=Path, default=_common.RESULTS / "btsp.json")
    args = ap.parse_args()
    if args.quick:
        args.seeds, args.epochs, args.settings, args.search_epochs, args.loop_settings = 3, 20, 20, 10, 2
    return args


def main():
    args = parse()
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import optax

    import simjax as sj

    task = sj.tasks.OneHotPatterns()

    def train(etas, key, epochs):
        rule = sj.rules.BTSP(eta_ff=etas[:2], eta_td=etas[2], eta_dend=etas[3])
        k_net, k_fit = jax.random.split(key)
        net = sj.networks.DendriticEINetwork((21, 7, 21), key=k_net)
        _, history = sj.fit(net, rule, task, optax.sgd(1.0), steps=epochs * 21, key=k_fit, batch_size=1)
        return jnp.mean(history["accuracy"][-21 * max(epochs // 6, 1):])

    defaults = jnp.array([0.009, 0.0173, 0.069, 0.005], jnp.float32)
    keys = jax.random.split(jax.random.key(0), args.seeds)
    one = eqx.filter_jit(lambda k: train(defaults, k, args.epochs))
    many = eqx.filter_jit(jax.vmap(lambda k: train(defaults, k, args.epochs)))

    def block(x):
        return jax.block_until_ready(x)

    t0 = time.perf_counter()
    block(many(keys))
    compile_vmapped = time.perf_counter() - t0
    block(one(keys[0]))
    vmapped = min(_common.timed(lambda: block(many(keys))) for _ in range(2))
    loop = min(_common.timed(lambda: [block(one(k)) for k in keys]) for _ in range(2))
    acc = many(keys)
    seeds = {"seeds": args.seeds, "epochs": args.epochs, "vmapped_s": vmapped, "loop_s": loop,
             "loop_over_vmapped": loop / vmapped, "first_call_vmapped_s": compile_vmapped,
             "accuracy_mean": float(acc.mean())}
    print(f"seeds: {args.seeds} x {args.epochs} epochs: vmapped {vmapped:.3f} s, per-seed loop {loop:.3f} s, "
          f"ratio {loop / vmapped:.1f}x (mean final training accuracy {float(acc.mean()):.3f})")

    k_eta, k_seed = jax.random.split(jax.random.key(1))
    etas = defaults * jnp.exp(jax.random.uniform(k_eta, (args.settings, 4), jnp.float32, -1.0986, 1.0986))
    skeys = jax.random.split(k_seed, args.settings)
    one_s = eqx.filter_jit(lambda e, k: train(e, k, args.search_epochs))
    many_s = eqx.filter_jit(jax.vmap(lambda e, k: train(e, k, args.search_epochs)))
    block(many_s(etas, skeys))
    block(one_s(etas[0], skeys[0]))
    t_many = _common.timed(lambda: block(many_s(etas, skeys)))
    n = args.loop_settings
    t_loop = _common.timed(lambda: [block(one_s(etas[i], skeys[i])) for i in range(n)]) * args.settings / n
    best = many_s(etas, skeys)
    search = {"settings": args.settings, "epochs": args.search_epochs, "vmapped_s": t_many,
              "loop_s_extrapolated": t_loop, "loop_over_vmapped": t_loop / t_many,
              "best_accuracy": float(best.max()), "best_etas": [float(x) for x in etas[int(best.argmax())]]}
    print(f"search: {args.settings} settings x {args.search_epochs} epochs: vmapped {t_many:.2f} s, loop "
          f"(extrapolated from {n}) {t_loop:.2f} s, ratio {t_loop / t_many:.1f}x")
    path = _common.write_json(args.out, {"machine": _common.machine(), "seeds": seeds, "search": search,
                                         "quick": args.quick})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
