"""Paired, interleaved timing of the JAX-based harness implementations in one process.

The harness (`run.py`) times each library in its own process, one after the other; on a shared host
whose speed drifts by tens of percent within minutes, one such pass can put any library 30 % ahead
or behind. Here every implementation is built once in this interpreter, and each round times one
step of each, in a shuffled order: the ratio of two libraries within a round is measured seconds
apart. Reported: median ms per step, and the median (with quartiles) over rounds of the per-round
ratio to the hand-written reference `jax-ref`.

Needs an interpreter where simjax and the peers are importable together (the JAX peers share
JAX 0.10), e.g.::

    python -m venv ~/peer-venvs/mix && ~/peer-venvs/mix/bin/pip install -e . spyx brainstate brainpy braintrace psutil
    ~/peer-venvs/mix/bin/python benchmarks/peers/interleaved.py --libs jax-ref,simjax,spyx,brainstate \\
        --cells W1,W2 --N 256 --rounds 40 --out benchmarks/results/peers_interleaved.json

One thread (XLA flags set below) on one core (the least busy one is taken unless `--cpu` is given).
"""

import argparse
import importlib
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
HERE = Path(__file__).resolve().parent
HARNESS = Path(os.environ.get("PEER_HARNESS", str(HERE.parents[2] / "shared" / "bench-peers")))
sys.path[:0] = [str(HARNESS), str(HERE)]

import common  # noqa: E402  (the harness's data, constants and workloads)

MODULES = {"jax-ref": "impl_jax_ref", "simjax": "impl_simjax", "spyx": "impl_spyx", "brainstate": "impl_brainstate",
           "rockpool": "impl_rockpool"}


def quartiles(v):
    q = statistics.quantiles(v, n=4) if len(v) > 1 else [v[0]] * 3
    return [round(q[0], 3), round(q[1], 3), round(q[2], 3)]


def time_cell(libs, cfg, rounds, warmup):
    steps = {}
    for lib in libs:
        try:
            module = importlib.import_module(MODULES[lib])
            steps[lib] = module.build(cfg).step
        except ImportError as e:
            raise SystemExit(f"interleaved.py: {lib} cannot be built in this interpreter ({e}); install it "
                             "next to simjax (see the module docstring) or drop it from --libs") from e
        for _ in range(warmup):
            steps[lib]()
    times = {lib: [] for lib in libs}
    for _ in range(rounds):
        order = list(libs)
        random.shuffle(order)
        for lib in order:
            t0 = time.perf_counter()
            steps[lib]()
            times[lib].append(1e3 * (time.perf_counter() - t0))
    out = {}
    for lib in libs:
        ratios = [t / r for t, r in zip(times[lib], times["jax-ref"])]
        out[lib] = dict(median_ms=round(statistics.median(times[lib]), 3), ratio_to_jax_ref=quartiles(ratios),
                        ms=[round(t, 3) for t in times[lib]])
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--libs", default="jax-ref,simjax,spyx,brainstate")
    ap.add_argument("--cells", default="W1,W2")
    ap.add_argument("--N", default="256")
    ap.add_argument("--T", type=int, default=500)
    ap.add_argument("--B", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--cpu", type=int, default=None, help="core to pin to (default: the least busy)")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    libs = a.libs.split(",")
    unknown = [lib for lib in libs if lib not in MODULES]
    if unknown or "jax-ref" not in libs:
        ap.error(f"--libs must include jax-ref and name only {', '.join(MODULES)}; got {a.libs!r}")
    if a.rounds < 1:
        ap.error(f"--rounds must be >= 1, got {a.rounds}")
    cpu = a.cpu
    if cpu is None:
        s0 = common.cpu_snapshot()
        time.sleep(1.0)
        load = common.per_cpu_load(s0, common.cpu_snapshot())
        cpu = int(min(load, key=load.get).removeprefix("cpu"))
    os.sched_setaffinity(0, {cpu})
    result = dict(started=time.strftime("%Y-%m-%d %H:%M:%S"), argv=sys.argv[1:], cpu=cpu,
                  machine=dict(processor=platform.processor() or platform.machine(), cpus=os.cpu_count()),
                  cells={})
    for workload in a.cells.split(","):
        for n in (int(v) for v in a.N.split(",")):
            cfg = common.Cfg(workload=workload, N=n, T=a.T, B=a.B, threads=1)
            name = f"{workload} N={n} T={a.T} B={a.B}"
            cell = time_cell(libs, cfg, a.rounds, a.warmup)
            result["cells"][name] = cell
            print(name + ": " + ", ".join(f"{lib} {c['median_ms']:.1f} ms ({c['ratio_to_jax_ref'][1]:.2f}x "
                                          f"[{c['ratio_to_jax_ref'][0]:.2f}, {c['ratio_to_jax_ref'][2]:.2f}])"
                                          for lib, c in cell.items()), flush=True)
            if a.out:  # after every cell: an interrupted run keeps what it measured
                Path(a.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
