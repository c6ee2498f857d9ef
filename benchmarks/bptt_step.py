"""One BPTT training step of a recurrent LIF network: simjax vs. a hand-written `lax.scan` vs. the
matmul FLOP floor, measured in the same process.

Workload (identical in both implementations): 100 Bernoulli(0.05) input channels, `N` recurrent
LIF neurons (`tau_mem = 20 ms`, `dt = 1 ms`, threshold 1, reset by subtraction, detached reset,
no self-connections), fast-sigmoid surrogate (slope 25), 10 leaky readouts (`tau_out = 20 ms`),
`T` steps, batch `B`; loss = cross-entropy of the time-mean readout against random labels;
one Adam step (lr 1e-3) on `w_in`, `w_rec`, `w_out` (the readout bias is not trained).

- **simjax**: what a user writes: `simjax.networks.RSNN` with `trainable=("w_in", "w_rec",
  "w_out")`, `simjax.tasks.Supervised(loss="cross_entropy", readout="mean")`,
  `simjax.rules.Exact`, `optax.adam`, `eqx.filter_jit`.
- **baseline**: the same step as one hand-written `lax.scan` carrying `(v, s, o, sum o)`.
- **floor**: training FLOPs (3x the forward matmuls) / the best matmul GFLOP/s measured here.

Before timing, the losses and gradients of the two are compared in float64 on the same weights.
Single thread, pinned to the least busy core; warm-up steps, then interleaved repeats (simjax,
baseline, simjax, ...) of individually timed steps; medians reported.

Usage: `python benchmarks/bptt_step.py [--quick] [--N 256 1024] [--T 500] [--B 32]`
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

N_IN, N_OUT, P_IN = 100, 10, 0.05
DT, TAU_MEM, TAU_OUT, V_TH, SLOPE, LR = 1.0, 20.0, 20.0, 1.0, 25.0, 1e-3
G_IN, G_REC, G_OUT = 2.0, 1.0, 1.0


def make_data(N: int, T: int, B: int, seed: int = 0) -> dict:
    """Inputs `(T, B, 100)`, labels `(B,)` and initial weights (std `G / sqrt(fan_in)`, no
    self-connections), as NumPy float64 (cast per use)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x = (rng.random((T, B, N_IN)) < P_IN).astype(np.float64)
    y = rng.integers(0, N_OUT, size=(B,)).astype(np.int32)
    w_in = rng.standard_normal((N_IN, N)) * G_IN / math.sqrt(N_IN)
    w_rec = rng.standard_normal((N, N)) * G_REC / math.sqrt(N)
    np.fill_diagonal(w_rec, 0.0)
    w_out = rng.standard_normal((N, N_OUT)) * G_OUT / math.sqrt(N)
    return dict(x=x, y=y, w_in=w_in, w_rec=w_rec, w_out=w_out)


# ---------------------------------------------------------------------------- simjax
def simjax_step(data: dict, dtype, **simulate_kwargs):
    """`(step, loss_and_grads)` written with the public simjax API; `simulate_kwargs` go to
    `simjax.rules.Exact` (e.g. `checks=False`)."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import optax

    import simjax as sj

    cast = lambda a: jnp.asarray(a, dtype)
    N = data["w_rec"].shape[0]
    lif = sj.neurons.LIF(tau_mem=cast(TAU_MEM), v_th=cast(V_TH), reset="subtract")
    net = sj.networks.RSNN(n_in=N_IN, n_rec=N, n_out=N_OUT, neuron=lif,
                           surrogate=sj.surrogates.FastSigmoid(slope=cast(SLOPE)),
                           w_in=cast(data["w_in"]), w_rec=cast(data["w_rec"]), w_out=cast(data["w_out"]),
                           b_out=jnp.zeros((N_OUT,), dtype), tau_out=cast(TAU_OUT),
                           trainable=("w_in", "w_rec", "w_out"))
    task = sj.tasks.Supervised(loss="cross_entropy", readout="mean", dt=DT)
    rule = sj.rules.Exact(**simulate_kwargs)
    batch = sj.tasks.Batch(inputs=cast(data["x"]), targets=jnp.asarray(data["y"]))
    optimizer = optax.adam(LR)
    key = jax.random.key(0)

    @eqx.filter_jit
    def train_step(net, opt_state, batch, key):
        loss, updates, _ = rule(net, task, batch, key)
        updates, opt_state = optimizer.update(updates, opt_state, sj.parameters.params(net))
        return eqx.apply_updates(net, updates), opt_state, loss

    @eqx.filter_jit
    def loss_and_grads(net, batch, key):
        loss, grads, _ = rule(net, task, batch, key)
        return loss, {name: getattr(grads, name).weight for name in ("w_in", "w_rec", "w_out")}

    state = {"net": net, "opt": optimizer.init(sj.parameters.params(net))}

    def step():
        state["net"], state["opt"], loss = train_step(state["net"], state["opt"], batch, key)
        return loss.block_until_ready()

    step.compile = lambda: train_step.lower(state["net"], state["opt"], batch, key).compile()
    return step, lambda: loss_and_grads(net, batch, key)


# ---------------------------------------------------------------------------- baseline
def baseline_step(data: dict, dtype):
    """The same training step as one hand-written `lax.scan` (no simjax)."""
    import jax
    import jax.numpy as jnp
    import optax

    cast = lambda a: jnp.asarray(a, dtype)
    x, y = cast(data["x"]), jnp.asarray(data["y"])
    params = {k: cast(data[k]) for k in ("w_in", "w_rec", "w_out")}
    N = params["w_rec"].shape[0]
    b_out = jnp.zeros((N_OUT,), dtype)
    beta, kappa = jnp.exp(cast(-DT / TAU_MEM)), jnp.exp(cast(-DT / TAU_OUT))
    off_diagonal = 1.0 - jnp.eye(N, dtype=dtype)

    @jax.custom_jvp
    def spike(u):
        return (u > 0).astype(u.dtype)

    @spike.defjvp
    def _(primals, tangents):
        (u,), (du,) = primals, tangents
        return spike(u), du / (1.0 + SLOPE * jnp.abs(u)) ** 2

    def loss_fn(p, x, y):
        w_rec = p["w_rec"] * off_diagonal
        drive = x @ p["w_in"]  # (T, B, N): does not depend on the state

        def f(carry, drive_t):
            v, s, o, o_sum = carry
            v = beta * v + drive_t + s @ w_rec
            s = spike(v - V_TH)
            v = v - V_TH * jax.lax.stop_gradient(s)
            o = kappa * o + s @ p["w_out"] + b_out
            return (v, s, o, o_sum + o), None

        zeros, zeros_out = jnp.zeros(x.shape[1:-1] + (N,), dtype), jnp.zeros(x.shape[1:-1] + (N_OUT,), dtype)
        (_, _, _, o_sum), _ = jax.lax.scan(f, (zeros, zeros, zeros_out, zeros_out), drive)
        logits = o_sum / x.shape[0]
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    optimizer = optax.adam(LR)

    @jax.jit
    def train_step(p, opt_state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(p, x, y)
        updates, opt_state = optimizer.update(grads, opt_state, p)
        return optax.apply_updates(p, updates), opt_state, loss

    loss_and_grads = jax.jit(jax.value_and_grad(loss_fn))
    state = {"p": params, "opt": optimizer.init(params)}

    def step():
        state["p"], state["opt"], loss = train_step(state["p"], state["opt"], x, y)
        return loss.block_until_ready()

    step.compile = lambda: train_step.lower(state["p"], state["opt"], x, y).compile()
    return step, lambda: loss_and_grads(params, x, y)


# ---------------------------------------------------------------------------- checks and timing
def check_agreement(data: dict) -> dict:
    """Loss and gradients of simjax and the baseline on the same weights, in float64."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    with jax.enable_x64(True):
        _, sj_fn = simjax_step(data, jnp.float64)
        _, ref_fn = baseline_step(data, jnp.float64)
        loss_sj, g_sj = sj_fn()
        loss_ref, g_ref = ref_fn()
        out = {"loss_simjax": float(loss_sj), "loss_baseline": float(loss_ref),
               "loss_rel_err": abs(float(loss_sj) - float(loss_ref)) / abs(float(loss_ref))}
        for name in ("w_in", "w_rec", "w_out"):
            a, b = np.asarray(g_sj[name]), np.asarray(g_ref[name])
            out[f"grad_{name}_rel_err"] = float(np.linalg.norm(a - b) / np.linalg.norm(b))
    return out


def run_config(N: int, T: int, B: int, *, warmup: int, steps: int, repeats: int, check: bool,
               breakdown: bool = False) -> dict:
    import jax.numpy as jnp

    data = make_data(N, T, B)
    flops = _common.rnn_matmul_flops(B=B, T=T, n_in=N_IN, N=N, n_out=N_OUT)
    result = {"N": N, "T": T, "B": B, "dtype": "float32", "flops": flops}
    if check:
        result["agreement_float64"] = check_agreement(data)
        a = result["agreement_float64"]
        print(f"  check (float64, same weights): loss simjax {a['loss_simjax']:.12g} baseline "
              f"{a['loss_baseline']:.12g} (rel {a['loss_rel_err']:.1e}); grad rel err "
              f"w_in {a['grad_w_in_rel_err']:.1e} w_rec {a['grad_w_rec_rel_err']:.1e} "
              f"w_out {a['grad_w_out_rel_err']:.1e}", flush=True)

    fns = {"simjax": simjax_step(data, jnp.float32)[0], "baseline": baseline_step(data, jnp.float32)[0]}
    floor_program, floor_scale = _common.matmul_floor_program(B=B, T=T, n_in=N_IN, N=N, n_out=N_OUT)
    for _ in range(1 + warmup):
        floor_program()
    if breakdown:  # the same simjax step without the runtime NaN check of the inputs
        fns["simjax_nocheck"] = simjax_step(data, jnp.float32, checks=False)[0]
    compile_s = {}
    for name, fn in fns.items():
        compile_s[name] = _common.timed(fn.compile)  # trace + lower + XLA compile (ahead of time)
        for _ in range(1 + warmup):  # the first call compiles again (its own cache), then warm-up
            fn()
    timing = _common.interleaved({**fns, "floor": floor_program}, steps=steps, repeats=repeats,
                                 reference="baseline")
    for name in fns:
        timing[name]["compile_s"] = round(compile_s[name], 3)
    result["timing"] = timing

    rates = _common.matmul_rates(B=B, T=T, n_in=N_IN, N=N, n_out=N_OUT)
    floor = _common.floor_ms(flops, rates)
    result["matmul_gflops"] = rates
    result["floor_ms"] = {k: round(v, 3) for k, v in floor.items()}
    sj_ms, ref_ms = timing["simjax"]["median_ms"], timing["baseline"]["median_ms"]
    result["ratios"] = {"simjax/baseline": round(sj_ms / ref_ms, 3),
                        "simjax/baseline_cpu_paired": timing["simjax"]["ratio_paired"],
                        "simjax/floor": round(sj_ms / floor["peak"], 3),
                        "simjax/floor_cpu": round(timing["simjax"]["cpu_median_ms"] / floor["peak"], 3),
                        "baseline/floor_cpu": round(timing["baseline"]["cpu_median_ms"] / floor["peak"], 3),
                        "baseline/floor": round(ref_ms / floor["peak"], 3),
                        "simjax/floor_sequential": round(sj_ms / floor["sequential"], 3),
                        "simjax/floor_timed": _common.paired_ratio(timing, "simjax", "floor", floor_scale),
                        "baseline/floor_timed": _common.paired_ratio(timing, "baseline", "floor", floor_scale)}
    result["floor_timed_ms"] = round(floor_scale * timing["floor"]["median_ms"], 3)
    return result


def print_table(results: list[dict]) -> None:
    head = (f"{'N':>5} {'T':>5} {'B':>3} | {'simjax ms':>9} {'base ms':>8} {'floor ms':>8} {'timed':>6} | "
            f"{'sj/base':>7} {'(cpu)':>6} {'sj/floor':>8} {'timed':>6} {'base/floor':>10} | {'compile s sj/base':>17} "
            f"| foreign")
    print(head)
    print("-" * len(head))
    for r in results:
        t, f, q = r["timing"], r["floor_ms"], r["ratios"]
        print(f"{r['N']:>5} {r['T']:>5} {r['B']:>3} | {t['simjax']['median_ms']:>9.1f} "
              f"{t['baseline']['median_ms']:>8.1f} {f['peak']:>8.1f} {r['floor_timed_ms']:>6.1f} | "
              f"{q['simjax/baseline']:>7.3f} {q['simjax/baseline_cpu_paired']:>6.3f} {q['simjax/floor']:>8.2f} "
              f"{q['simjax/floor_timed']:>6.2f} {q['baseline/floor']:>10.2f} | "
              f"{t['simjax']['compile_s']:>8.2f}/{t['baseline']['compile_s']:<8.2f} | "
              f"{max(v['foreign_cores'] for v in t.values()):.2f}")
        if "simjax_nocheck" in t:
            print(f"{'':>15} simjax without the input NaN check: {t['simjax_nocheck']['median_ms']:.1f} ms, "
                  f"/baseline (cpu, paired) {t['simjax_nocheck']['ratio_paired']:.3f}")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="N=256, T=100, few steps (smoke test)")
    ap.add_argument("--N", type=int, nargs="+", default=None, help="recurrent sizes (default 256 1024)")
    ap.add_argument("--T", type=int, default=None, help="time steps (default 500)")
    ap.add_argument("--B", type=int, default=32, help="batch size (default 32)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per repeat (default 4)")
    ap.add_argument("--repeats", type=int, default=None, help="interleaved repeats (default 5)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--no-check", action="store_true", help="skip the float64 agreement check")
    ap.add_argument("--breakdown", action="store_true",
                    help="also time simjax with Exact(checks=False) (cost of the input NaN check)")
    ap.add_argument("--no-pin", action="store_true", help="do not pin to one core")
    ap.add_argument("--out", type=Path, default=_common.RESULTS / "bptt_step.json")
    args = ap.parse_args(argv)
    sizes = args.N or ([256] if args.quick else [256, 1024])
    T = args.T or (100 if args.quick else 500)
    steps = args.steps or (5 if args.quick else 4)
    repeats = args.repeats or (2 if args.quick else 5)

    threads = _common.single_thread(pin=not args.no_pin)
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    results = []
    for N in sizes:
        print(f"N={N} T={T} B={args.B}", flush=True)
        results.append(run_config(N, T, args.B, warmup=args.warmup, steps=steps, repeats=repeats,
                                  check=not args.no_check, breakdown=args.breakdown))
    print()
    print_table(results)
    report = {"benchmark": "bptt_step", "started": started, "argv": sys.argv[1:], "threads": threads,
              "machine": _common.machine(), "protocol": {"warmup": args.warmup, "steps": steps,
                                                         "repeats": repeats, "interleaved": True},
              "results": results}
    path = _common.write_json(args.out, report)
    print(f"\nwrote {path}")
    return report


if __name__ == "__main__":
    main()
