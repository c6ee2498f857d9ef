"""First threshold crossings: simjax's bracketed bisection + regula falsi (`simjax.neurons._roots`)
against optimistix's `Bisection` root finder with its implicit-function-theorem adjoint, on the
same brackets.

Workload: the time to spike of a population of LIF neurons with exponential synapses (no closed
form; the case `LIF.time_to_spike` root-finds), the hot loop of event-driven simulation. Both
methods start from the same bracket (the grid/knot search of `first_crossing`, timed once for
both), refine it to the precision of the dtype and differentiate it; timed are the crossing times
and a reverse-mode gradient of their sum with respect to the neuron parameters and the state.
Reported: milliseconds per call (interleaved rounds, medians of CPU time, one pinned thread),
the ratio optimistix / simjax, the function evaluations each needs, and the largest difference
between the two results (they must agree to a few ulp of the bracket).

Usage: `python benchmarks/root_finding.py [--n 256] [--quick]`
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=256, help="neurons")
    ap.add_argument("--x64", action="store_true", help="float64 (default float32)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=_common.RESULTS / "root_finding.json")
    args = ap.parse_args()
    threads = _common.single_thread(pin=True)

    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import optimistix as optx

    jax.config.update("jax_enable_x64", bool(args.x64))
    import simjax as sj
    from simjax.neurons._roots import _search

    n = 32 if args.quick else args.n
    key = jax.random.key(0)
    neuron = sj.neurons.LIF(tau_mem=20.0, tau_syn=5.0, v_th=1.0, bias=jnp.linspace(0.5, 1.5, n))
    state = neuron.init(None, (n,))
    state = sj.neurons.LIFState(v=0.3 * jax.random.uniform(key, (n,)), i=0.4 + 0.2 * jax.random.uniform(key, (n,)),
                                refractory=state.refractory)
    horizon = jnp.asarray(100.0, state.v.dtype)
    dtype = state.v.dtype
    n_bisect = int(jnp.finfo(dtype).nmant) // 3

    def distance(t, args):
        neuron, s = args
        return neuron.threshold(neuron.free_flow(s, t))

    def simjax_times(neuron, state):
        return neuron.time_to_spike(state, horizon)

    def optx_times(neuron, state):
        # The same bracket as simjax (grid of 32 points), then optimistix's bisection per neuron.
        dynamic, static = eqx.partition((neuron, state), eqx.is_array)
        g = lambda t, d: jnp.broadcast_to(distance(t, eqx.combine(d, static)), (n,))
        lo_hi = jax.lax.stop_gradient(_bracket(lambda t: g(t, dynamic)))
        lo, hi, found = lo_hi

        def one(k, lo_k, hi_k, found_k):
            # Neurons without a crossing get a stand-in problem with a root (optimistix requires one).
            lo_k, hi_k = jnp.where(found_k, lo_k, 0.0), jnp.where(found_k, hi_k, 2.0)

            def fk(t, d):
                return jnp.where(found_k, g(jnp.full((n,), t), d)[k], t - 1.0)
            sol = optx.root_find(fk, optx.Bisection(rtol=0.0, atol=float(jnp.finfo(dtype).eps) * 100.0),
                                 0.5 * (lo_k + hi_k), args=dynamic, options={"lower": lo_k, "upper": hi_k},
                                 throw=False, max_steps=256)
            return sol.value, sol.stats["num_steps"]

        t, steps = jax.vmap(one)(jnp.arange(n), lo, hi, found)
        return jnp.where(found, t, jnp.inf), steps

    def _bracket(f):
        ts = jnp.linspace(0.0, 1.0, 32, dtype=dtype)[:, None] * horizon
        fs = jax.vmap(f)(jnp.broadcast_to(ts, (32, n)))
        up = fs >= 0
        j = jnp.argmax(up, axis=0)
        hi = jnp.take_along_axis(ts * jnp.ones((32, n), dtype), j[None], 0)[0]
        lo = jnp.take_along_axis(ts * jnp.ones((32, n), dtype), jnp.maximum(j - 1, 0)[None], 0)[0]
        return lo, hi, jnp.any(up, axis=0) & (j > 0)

    fwd_simjax = eqx.filter_jit(simjax_times)
    fwd_optx = eqx.filter_jit(lambda nr, s: optx_times(nr, s)[0])
    loss = lambda times: jnp.sum(jnp.where(jnp.isfinite(times), times, 0.0))
    grad_simjax = eqx.filter_jit(jax.grad(lambda nr, s: loss(simjax_times(nr, s)), argnums=(0, 1)))
    grad_optx = eqx.filter_jit(jax.grad(lambda nr, s: loss(optx_times(nr, s)[0]), argnums=(0, 1)))

    t_s, t_o = fwd_simjax(neuron, state), fwd_optx(neuron, state)
    finite = jnp.isfinite(t_s)
    agree = float(jnp.max(jnp.abs(jnp.where(finite, t_s - t_o, 0.0))))
    g_s, g_o = grad_simjax(neuron, state), grad_optx(neuron, state)
    g_diff = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(jax.tree.leaves(g_s), jax.tree.leaves(g_o)))
    steps_optx = int(jnp.max(optx_times(neuron, state)[1]))
    del _search  # the refinement inside time_to_spike: n_bisect bisections + 3 regula-falsi steps

    block = lambda f: (lambda: jax.block_until_ready(f(neuron, state)))
    timing = _common.interleaved({"simjax_forward": block(fwd_simjax), "optx_forward": block(fwd_optx),
                                  "simjax_gradient": block(grad_simjax), "optx_gradient": block(grad_optx)},
                                 steps=5 if args.quick else 20, repeats=3 if args.quick else 7)
    ratios = {"forward": _common.paired_ratio(timing, "optx_forward", "simjax_forward"),
              "gradient": _common.paired_ratio(timing, "optx_gradient", "simjax_gradient")}
    report = {"benchmark": "root_finding", "n": n, "dtype": str(dtype), "threads": threads,
              "machine": _common.machine(), "timing": timing, "ratio_optx_over_simjax": ratios,
              "evaluations": {"simjax": 32 + n_bisect + 3 + 1, "optx": 32 + steps_optx},
              "max_time_difference": agree, "max_gradient_difference": g_diff}
    path = _common.write_json(args.out, report)
    for name in ("forward", "gradient"):
        print(f"{name:9s} simjax {timing['simjax_' + name]['cpu_median_ms']:8.3f} ms   optimistix "
              f"{timing['optx_' + name]['cpu_median_ms']:8.3f} ms   optimistix/simjax {ratios[name]:.2f}x")
    print(f"function evaluations per neuron: simjax {report['evaluations']['simjax']}, optimistix "
          f"{report['evaluations']['optx']} (the same 32-point bracket search included)")
    print(f"max |t_simjax - t_optx| = {agree:.3g}, max gradient difference = {g_diff:.3g}")
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
