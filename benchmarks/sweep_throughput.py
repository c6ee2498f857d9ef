"""Runs per hour of a seed sweep as one vmapped program vs a Python loop of single runs.

Workload: a small recurrent LIF network (20 inputs, 32 neurons, 2 readouts) learning a 50 ms
pattern-generation task, 50 Adam steps of batch 8 per run, built exactly as `simjax sweep` builds
its runs (`simjax._app.sweep._train_fn`). For 1, 8, 64 and 256 seeds it times (after compilation)

- `vmapped`: all seeds in one `jax.vmap`-ed, jitted program (what `simjax sweep` runs);
- `loop`: the same single-run program (jitted once) called seed after seed from Python;
- `loop_fit`: `simjax.fit` called seed after seed as a script would (no `jax.jit` around it,
  so every call traces and compiles its scan again), timed on up to 4 seeds;

and reports runs per hour and their ratio, compile times, and writes
`benchmarks/results/sweep_throughput.json`. Single thread, pinned (see `_common.py`).

Usage: `python benchmarks/sweep_throughput.py [--quick] [--seeds 1 8 64 256]`
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

CONFIG = {
    "experiment": {"name": "train", "seed": 0},
    "model": {"type": "rsnn", "n_rec": 32, "neuron": {"type": "lif", "tau_mem": 20.0}},
    "task": {"type": "pattern_generation", "n_in": 20, "n_out": 2, "duration": 50.0},
    "rule": {"type": "exact"},
    "optimizer": {"type": "adam", "learning_rate": 3e-3},
    "train": {"steps": 50, "batch_size": 8, "log_every": 1},
    "sweep": {"seeds": 1},
}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="seeds 1 and 8, one repeat")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 8, 64, 256])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    threads = _common.single_thread()
    import jax
    import jax.numpy as jnp

    from simjax._app.experiments import train as generic
    from simjax._app.sweep import Group, _train_fn

    seeds = [1, 8] if args.quick else args.seeds
    repeats = 1 if args.quick else args.repeats
    cfg = generic.merge_config(CONFIG)
    one = _train_fn(cfg, Group(static={}, traced=[], runs=[]), generic.build)
    single = jax.jit(lambda s: one(s, {}))
    batched = jax.jit(jax.vmap(lambda s: one(s, {})))
    block = lambda out: jax.block_until_ready(out)

    t0 = time.perf_counter()
    block(single(jnp.uint32(0)))
    compile_single = time.perf_counter() - t0
    naive = []
    for seed in range(4):
        t0 = time.perf_counter()
        block(one(jnp.uint32(seed), {}))
        naive.append(time.perf_counter() - t0)
    fit_per_hour = 3600 / sorted(naive)[len(naive) // 2]
    print(f"simjax.fit called per seed without jit: {fit_per_hour:.0f} runs/h")
    results = []
    for n in seeds:
        keys = jnp.arange(n, dtype=jnp.uint32)
        t0 = time.perf_counter()
        block(batched(keys))
        compile_batched = time.perf_counter() - t0
        timing = _common.interleaved({
            "vmapped": lambda: block(batched(keys)),
            "loop": lambda: [block(single(k)) for k in keys],
        }, steps=1, repeats=repeats, reference="loop")
        per_hour = {k: n * 3600e3 / v["median_ms"] for k, v in timing.items()}
        row = {"seeds": n, "runs_per_hour_vmapped": per_hour["vmapped"], "runs_per_hour_loop": per_hour["loop"],
               "speedup": per_hour["vmapped"] / per_hour["loop"],
               "speedup_vs_fit_loop": per_hour["vmapped"] / fit_per_hour, "compile_s_vmapped": compile_batched,
               "timing": timing}
        results.append(row)
        print(f"seeds {n:>4}: vmapped {per_hour['vmapped']:>10.0f} runs/h   loop {per_hour['loop']:>9.0f} runs/h   "
              f"speedup {row['speedup']:6.1f}x (vs jitted loop) {row['speedup_vs_fit_loop']:7.1f}x (vs fit loop)   "
              f"(compile {compile_batched:.1f} s)", flush=True)
    out = {"benchmark": "sweep_throughput", "config": CONFIG, "threads": threads, "machine": _common.machine(),
           "compile_s_single": compile_single, "runs_per_hour_fit_loop": fit_per_hour, "results": results}
    path = _common.write_json(_common.RESULTS / "sweep_throughput.json", out)
    print(f"written {path}")
    return out


if __name__ == "__main__":
    main()
