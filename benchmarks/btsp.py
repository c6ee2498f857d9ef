"""BTSP on the 21-7-21 dendritic E/I network: many training runs as one program.

- **seeds**: ``--seeds`` (10) runs of ``--epochs`` (300) epochs of single-pattern BTSP updates
  (`simjax.fit` with `simjax.rules.BTSP`, 21 one-hot patterns) as one `jax.vmap`-ed program,
  against a per-seed loop of the same jitted single-run program, timed in the same process after
  compilation. Reported: seconds of each and the ratio loop / vmapped.
- **numpy**: the same training written in plain NumPy (`numpy_train`: the forward Euler steps, the
  sequential plateau assignment, the BTSP and dendritic-inhibition updates, the bounds), one seed
  after the other on the same pattern sequences, timed in the same process. Reported: the ratio
  NumPy loop / vmapped simjax (target >= 20x). `numpy_train` is also the independent
  implementation the tests compare simjax's weights with.
- **search**: ``--settings`` (1000) learning-rate settings (the four BTSP rates drawn log-uniformly
  within a factor 3 of the defaults) in one vmapped program, against the per-setting loop
  extrapolated from ``--loop-settings`` (5) timed calls of the single-run program.

All in float32 on the default backend (NumPy in float64, its default), XLA and BLAS restricted to
one thread and the process pinned to the least busy core (``--multi-thread`` leaves XLA's thread
pool on: on these tiny matrices it adds overhead and makes the timing depend on the load of the
other core). Writes ``results/btsp.json``.

Usage: ``python benchmarks/btsp.py [--quick] [--seeds 10] [--epochs 300] [--settings 1000]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

# the defaults of DendriticEINetwork((21, 7, 21)) and BTSP()
PARAMS = {"tau": 3.0, "steps": 10, "w_fbi": (-0.225, -5.90), "theta_hidden": (0.0996, -0.163),
          "theta_out": (0.450, -0.724), "eta_ff": (0.009, 0.0173), "eta_td": 0.069, "eta_dend": 0.005,
          "neg_discount": 0.25, "dep_theta": 0.01, "dep_width": 0.01, "w_ff_max": (3.738, 3.161), "w_td_max": 3.106}


def _q_dep(v, theta, width):
    s = lambda x: 1.0 / (1.0 + np.exp(-2.0 * (x - theta) / width))  # noqa: E731
    return (s(np.clip(v, 0.0, 1.0)) - s(0.0)) / (s(1.0) - s(0.0))


def numpy_train(w0, w1, w_td, w_dend, patterns, p=PARAMS):
    """BTSP training of the 21-7-21 dendritic network in plain NumPy, one pattern index per update
    (`patterns`); weights `w0 (21, 7)`, `w1 (7, 21)`, `w_td (21, 7)`, `w_dend (1, 7)` in the
    `(pre, post)` layout. Returns the trained weights and the accuracy of each trial (before its
    update)."""
    w0, w1, w_td, w_dend = (np.array(w, copy=True) for w in (w0, w1, w_td, w_dend))
    dtype = w0.dtype
    n_in, n_h = w0.shape
    n_out = w1.shape[1]
    k = 1.0 / p["tau"]
    fbi_h, fbi_o = p["w_fbi"]
    th_ph, th_mh = p["theta_hidden"]
    th_po, th_mo = p["theta_out"]
    relu = lambda v: np.maximum(v, 0.0)  # noqa: E731

    def delta(w, pre, plateau, eta, w_max):
        discount = np.where(plateau > 0, 1.0, np.where(plateau < 0, p["neg_discount"], 0.0))
        et = pre[:, None] * discount[None, :]
        return eta * np.abs(plateau)[None, :] * ((w_max - w) * et - w * _q_dep(et, p["dep_theta"], p["dep_width"]))

    correct = np.zeros(len(patterns), dtype)
    for t, idx in enumerate(patterns):
        x = np.zeros(n_in, dtype)
        x[idx] = 1.0
        s_h, s_o = np.zeros(n_h, dtype), np.zeros(n_out, dtype)
        g_h = g_o = 0.0
        for _ in range(p["steps"]):
            s_h = s_h + k * (x @ w0 + fbi_h * relu(g_h) - s_h)
            r_h = relu(s_h)
            g_h = g_h + k * (r_h.sum() - g_h)
            s_o = s_o + k * (r_h @ w1 + fbi_o * relu(g_o) - s_o)
            r_o = relu(s_o)
            g_o = g_o + k * (r_o.sum() - g_o)
        correct[t] = float(np.argmax(r_o) == idx)
        # backward phase: output plateaus and nudges, then the sequential hidden plateaus
        d_o = np.clip(x - r_o, -1.0, 1.0)
        pos = d_o > th_po
        p_o = np.where(pos | (d_o < th_mo), d_o, 0.0)
        r_o = np.where(pos, relu(s_o + d_o), r_o)
        top = r_o @ w_td
        nudge = np.zeros(n_h, dtype)

        def dendrite(nudge):
            return np.clip(top + relu(relu(s_h + nudge).sum()) * w_dend[0], -1.0, 1.0)

        d = dendrite(nudge)
        p_h = np.zeros(n_h, dtype)
        for j in np.argsort(-d, kind="stable"):
            if d[j] > th_ph:
                p_h[j] = nudge[j] = d[j]
                d = dendrite(nudge)
            elif d[j] < th_mh:
                p_h[j] = d[j]
        r_h = relu(s_h + nudge)
        a_d = relu(r_h.sum())
        w0 = np.clip(w0 + delta(w0, x, p_h, p["eta_ff"][0], p["w_ff_max"][0]), 0.0, p["w_ff_max"][0])
        w1 = np.clip(w1 + delta(w1, r_h, p_o, p["eta_ff"][1], p["w_ff_max"][1]), 0.0, p["w_ff_max"][1])
        w_td = np.clip(w_td + delta(w_td, r_o, p_h, p["eta_td"], p["w_td_max"]), 0.0, p["w_td_max"])
        w_dend = np.minimum(w_dend - p["eta_dend"] * a_d * p_h[None, :], 0.0)
    return (w0, w1, w_td, w_dend), correct


def fit_patterns(key, steps: int):
    """The pattern indices `simjax.fit` draws from `key` for `steps` single-pattern updates of
    `OneHotPatterns(21)` (its key derivation), so that NumPy trains on the same sequence."""
    import jax

    _, k_steps = jax.random.split(key)
    keys = jax.random.split(k_steps, steps)
    k_batch = jax.vmap(lambda k: jax.random.split(k, 3)[0])(keys)
    return np.asarray(jax.vmap(lambda k: jax.random.randint(k, (1,), 0, 21)[0])(k_batch))


def parse():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 seeds, 20 epochs, 20 settings")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--settings", type=int, default=1000)
    ap.add_argument("--search-epochs", type=int, default=100)
    ap.add_argument("--loop-settings", type=int, default=5)
    ap.add_argument("--multi-thread", action="store_true", help="leave XLA's CPU thread pool on")
    ap.add_argument("--out", type=Path, default=_common.RESULTS / "btsp.json")
    args = ap.parse_args()
    if args.quick:
        args.seeds, args.epochs, args.settings, args.search_epochs, args.loop_settings = 3, 20, 20, 10, 2
    return args


def main():
    args = parse()
    threads = None if args.multi_thread else _common.single_thread()
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
    vmapped = min(_common.timed(lambda: block(many(keys))) for _ in range(3))
    t0 = time.process_time()
    block(many(keys))
    vmapped_cpu = time.process_time() - t0
    loop = min(_common.timed(lambda: [block(one(k)) for k in keys]) for _ in range(2))
    acc = many(keys)
    seeds = {"seeds": args.seeds, "epochs": args.epochs, "vmapped_s": vmapped, "loop_s": loop,
             "loop_over_vmapped": loop / vmapped, "first_call_vmapped_s": compile_vmapped,
             "vmapped_cpu_s": vmapped_cpu,
             "accuracy_mean": float(acc.mean())}
    print(f"seeds: {args.seeds} x {args.epochs} epochs: vmapped {vmapped:.3f} s ({vmapped_cpu:.3f} s CPU), "
          f"per-seed loop {loop:.3f} s, "
          f"ratio {loop / vmapped:.1f}x (mean final training accuracy {float(acc.mean()):.3f})")

    # the same runs (initial weights, pattern sequences) in plain NumPy, one seed after the other
    runs = []
    for key in keys:
        k_net, k_fit = jax.random.split(key)
        net = sj.networks.DendriticEINetwork((21, 7, 21), key=k_net)
        weights = [np.asarray(p.dense(), np.float64) for p in (*net.w_ff, *net.w_td, *net.w_dend)]
        runs.append((weights, fit_patterns(k_fit, args.epochs * 21)))
    t0 = time.perf_counter()
    np_acc = [numpy_train(*w, order)[1] for w, order in runs]
    numpy_s = time.perf_counter() - t0
    window = 21 * max(args.epochs // 6, 1)
    np_final = float(np.mean([a[-window:].mean() for a in np_acc]))
    seeds.update({"numpy_loop_s": numpy_s, "numpy_over_vmapped": numpy_s / vmapped,
                  "numpy_accuracy_mean": np_final})
    print(f"numpy: {args.seeds} seeds one after the other {numpy_s:.2f} s ({numpy_s / args.seeds:.2f} s per seed), "
          f"ratio numpy / vmapped simjax {numpy_s / vmapped:.1f}x (mean final training accuracy {np_final:.3f})")

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
    path = _common.write_json(args.out, {"machine": _common.machine(), "threads": threads, "seeds": seeds,
                                         "search": search, "quick": args.quick})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
