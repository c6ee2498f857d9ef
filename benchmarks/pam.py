"""Problems per second of probabilistic analogical mapping (graduated assignment).

Workload: part-correspondence problems (`sj.analogy.PartCorrespondence`) with 6, 20 and 50 parts,
the study's schedule (beta0 0.1, rate 1.075, final 100: 96 steps, 5 updates each, 30 Sinkhorn
iterations). For each size it times, after compilation,

- ``batched``: all problems in one jitted program, ``sj.analogy.graduated_assignment_batch``
  (problems on the last, vectorised axis) and the best-permutation read-out;
- ``vmap``: the same as ``jax.jit(jax.vmap(graduated_assignment))`` (problems on the first axis);
- ``loop``: the same solver jitted for one problem, called problem after problem from Python;
- ``numpy``: a plain NumPy implementation of the same schedule (log-domain Sinkhorn with slack,
  warm-started potentials), on a few problems;

and reports problems per second (median of ``--repeats`` timed calls, wall time; per CPU-second of
this process as well, which other load on a shared machine disturbs less), the speed-ups, the
agreement of the hard mappings between the JAX and NumPy solvers, and the cost per problem as the
graph grows (the relation term is ``O(n^2 m^2)``). Writes ``benchmarks/results/pam.json``. Uses
all cores allowed (no pinning) unless ``--single-thread``.

Usage: ``python benchmarks/pam.py [--quick] [--sizes 6 20 50] [--problems 256] [--repeats 5] [--single-thread]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import scipy.optimize

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402


def numpy_solver(source_nodes, source_edges, target_nodes, target_edges, *, alpha, beta0, rate, steps, inner,
                 sinkhorn, eps=1e-8):
    """The same graduated assignment in NumPy (cosine similarities, slack logit 0)."""
    def unit(x):
        return x / np.sqrt(np.sum(x * x, -1, keepdims=True) + eps)

    n, m = source_nodes.shape[0], target_nodes.shape[0]
    node = unit(source_nodes) @ unit(target_nodes).T
    edge = (unit(source_edges.reshape(n * n, -1)) @ unit(target_edges.reshape(m * m, -1)).T).reshape(n, n, m, m)
    edge = edge * (1 - np.eye(n))[:, :, None, None] * (1 - np.eye(m))[None, None]
    sym = edge + edge.transpose(1, 0, 3, 2)
    f, g = np.zeros(n), np.zeros(m)

    def lse_with_slack(x, axis, tau):  # log(sum(exp(x), axis) + exp(tau)), stabilised
        top = np.maximum(x.max(axis=axis), tau)
        return top + np.log(np.exp(x - np.expand_dims(top, axis)).sum(axis=axis) + np.exp(tau - top))

    def normalise(logits, f, g, tau):
        for _ in range(sinkhorn):
            f = -lse_with_slack(logits + g[None, :], 1, tau)
            g = -lse_with_slack(logits + f[:, None], 0, tau)
        return f, g, np.exp(logits + f[:, None] + g[None, :])

    f, g, matrix = normalise(np.zeros((n, m)), f, g, 0.0)
    beta = beta0
    for _ in range(steps):
        for _ in range(inner):
            q = np.einsum("ijab,jb->ia", sym, matrix) + alpha * node
            f, g, matrix = normalise(beta * q, f, g, 0.0)
        beta *= rate
    rows, cols = scipy.optimize.linear_sum_assignment(matrix, maximize=True)
    out = np.full(n, -1)
    out[rows] = cols
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="6 and 20 parts, few problems, a short schedule")
    ap.add_argument("--sizes", type=int, nargs="+", default=[6, 20, 50])
    ap.add_argument("--problems", type=int, default=256)
    ap.add_argument("--numpy-problems", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--single-thread", action="store_true")
    args = ap.parse_args(argv)
    threads = _common.single_thread() if args.single_thread else {}
    import jax
    import jax.numpy as jnp

    import simjax as sj

    pam = sj.analogy
    sizes = [6, 20] if args.quick else args.sizes
    schedule = pam.Annealing(0.1, 1.3, 100.0, inner=2, sinkhorn=10) if args.quick else \
        pam.Annealing(0.1, 1.075, 100.0, inner=5, sinkhorn=30)
    s = {"beta0": float(schedule.beta0), "rate": float(schedule.rate), "steps": schedule.steps,
         "inner": schedule.inner, "sinkhorn": schedule.sinkhorn}
    results = {"machine": _common.machine(), "threads": threads, "schedule": s, "sizes": {}}
    for n in sizes:
        problems_n = max(4, args.problems // (1 if n <= 6 else (n // 6) ** 2)) if not args.quick else 8

        method = "exhaustive" if n <= 6 else "hungarian"

        def solve(source, target):
            mapping = pam.graduated_assignment(source, target, alpha=1.0, schedule=schedule)
            return pam.hard_assignment(mapping.matrix, method=method)

        def solve_batch(sources, targets):
            mapping = pam.graduated_assignment_batch(sources, targets, alpha=1.0, schedule=schedule)
            return jax.vmap(lambda m: pam.hard_assignment(m, method=method))(mapping.matrix)

        problems = pam.PartCorrespondence(n=n).sample(jax.random.key(n), problems_n)
        batched = jax.jit(solve_batch)
        vmapped = jax.jit(jax.vmap(solve))
        single = jax.jit(solve)
        t0 = time.perf_counter()
        jax.block_until_ready(batched(problems.source, problems.target))
        compile_batched = time.perf_counter() - t0
        jax.block_until_ready(vmapped(problems.source, problems.target))
        one = lambda b: jax.tree.map(lambda x: x[b], (problems.source, problems.target))  # noqa: E731
        jax.block_until_ready(single(*one(0)))
        loop_count = min(problems_n, 32)
        timing = _common.interleaved({
            "batched": lambda: jax.block_until_ready(batched(problems.source, problems.target)),
            "vmap": lambda: jax.block_until_ready(vmapped(problems.source, problems.target)),
            "loop": lambda: [jax.block_until_ready(single(*one(b))) for b in range(loop_count)],
        }, steps=1, repeats=args.repeats, reference="batched")
        t_batched, t_vmap, t_loop = (timing[k]["median_ms"] / 1e3 for k in ("batched", "vmap", "loop"))
        cpu_batched = timing["batched"]["cpu_median_ms"] / 1e3
        hard = np.asarray(batched(problems.source, problems.target))
        hard_vmap = np.asarray(vmapped(problems.source, problems.target))
        numpy_count = min(problems_n, 1 if args.quick else args.numpy_problems)
        t_np, agree = 0.0, 0
        for b in range(numpy_count):
            src, tgt = one(b)
            t0 = time.perf_counter()
            out = numpy_solver(np.asarray(src.nodes), np.asarray(src.edges), np.asarray(tgt.nodes),
                               np.asarray(tgt.edges), alpha=1.0, beta0=s["beta0"], rate=s["rate"], steps=s["steps"],
                               inner=s["inner"], sinkhorn=s["sinkhorn"])
            t_np += time.perf_counter() - t0
            agree += int(np.array_equal(out, hard[b]))
        row = {"problems": problems_n, "batched_per_s": problems_n / t_batched,
               "batched_per_cpu_s": problems_n / cpu_batched, "vmap_per_s": problems_n / t_vmap,
               "loop_per_s": loop_count / t_loop, "numpy_per_s": numpy_count / t_np,
               "numpy_ms_per_problem": 1e3 * t_np / numpy_count, "batched_ms_per_problem": 1e3 * t_batched / problems_n,
               "numpy_agrees": f"{agree}/{numpy_count}", "vmap_agrees": bool(np.array_equal(hard, hard_vmap)),
               "compile_s": compile_batched, "accuracy": float(jnp.mean(jnp.asarray(hard) == problems.answer)),
               "timing": timing}
        row["batched_over_vmap"] = row["batched_per_s"] / row["vmap_per_s"]
        row["batched_over_loop"] = row["batched_per_s"] / row["loop_per_s"]
        row["batched_over_numpy"] = row["batched_per_s"] / row["numpy_per_s"]
        results["sizes"][n] = row
        print(f"n = {n:3d}: batched {row['batched_per_s']:9.1f}/s ({row['batched_per_cpu_s']:.1f} per CPU-s)  vmap "
              f"{row['vmap_per_s']:8.1f}/s  loop {row['loop_per_s']:8.1f}/s  numpy {row['numpy_per_s']:7.2f}/s "
              f"({row['numpy_ms_per_problem']:.0f} ms)  batched/vmap {row['batched_over_vmap']:.1f}x  batched/loop "
              f"{row['batched_over_loop']:.1f}x  batched/numpy {row['batched_over_numpy']:.0f}x  numpy agrees "
              f"{row['numpy_agrees']}  vmap agrees {row['vmap_agrees']}  accuracy {row['accuracy']:.3f}  "
              f"compile {compile_batched:.1f} s  foreign load {timing['batched']['foreign_cores']:.2f} cores")
    path = _common.write_json(_common.RESULTS / "pam.json", results)
    print(f"written to {path}")
    return results


if __name__ == "__main__":
    main()
