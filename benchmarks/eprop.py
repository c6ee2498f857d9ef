"""Forward-in-time learning rules against BPTT: time per training step and peak temporary memory
vs the sequence length `T`, measured in the same process.

Workload: `PatternGeneration` (100 frozen 10 Hz Poisson inputs, 3 sine-sum targets, `dt = 1 ms`),
an RSNN of `N` LIF or ALIF neurons (`tau_mem = 20 ms`, `v_th = 0.6`, triangle pseudo-derivative,
`tau_adapt = 200 ms`), leaky readout `tau_out = 20 ms`, batch `B`; one training step =
`rule(net, task, batch, key)` + one Adam update, `jax.jit`-ed, float32.

- **eprop_lif / eprop_alif**: `simjax.rules.EProp()` (offline mode: factorised LIF traces; per-synapse
  adaptation traces for ALIF).
- **eprop_online_lif / eprop_online_alif** (memory only): `EProp(online_every=T)` (one pass).
- **bptt_lif / bptt_alif**: `simjax.rules.Exact()` (reverse mode through the scan).
- **eprop_lif_ref / bptt_lif_ref**: the LIF network with a 2 ms refractory period (e-prop then
  carries a per-synapse trace; BPTT differentiates the generic step, the fast path excludes it).
- **rtrl / bptt_small**: `simjax.rules.RTRL()` and `Exact()` on a small LIF network (`N_small`);
  timed up to `T = 1000` (RTRL costs `parameters x state` per step), memory at every `T`.

Memory: `temp_size_in_bytes` of XLA's memory analysis of the compiled step (arguments and outputs
excluded). Single thread, pinned to the least busy core; interleaved repeats; medians.

Usage: `python benchmarks/eprop.py [--quick] [--T 250 1000 4000 8000] [--N 100] [--B 8]`
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402


def make_step(rule_name: str, N: int, T: int, B: int, neuron_kind: str):
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import optax

    import simjax as sj

    f32 = jnp.float32
    task = sj.tasks.PatternGeneration(n_in=100, n_out=3, duration=float(T), rate=10.0)
    if neuron_kind == "alif":
        neuron = sj.neurons.ALIF(tau_mem=f32(20.0), v_th=f32(0.6), tau_adapt=f32(200.0), beta=f32(0.5))
    else:  # "lif", or "lif_ref": a 2 ms refractory period (per-synapse e-prop trace)
        neuron = sj.neurons.LIF(tau_mem=f32(20.0), v_th=f32(0.6), t_ref=f32(2.0 if neuron_kind == "lif_ref" else 0.0))
    net = sj.networks.RSNN(100, N, 3, neuron=neuron, surrogate=sj.surrogates.Triangle(f32(0.3), f32(0.6)),
                           key=jax.random.key(0), tau_out=f32(20.0), out_scale=0.1)
    net = jax.tree.map(lambda a: a.astype(f32) if eqx.is_inexact_array(a) else a, net)
    rule = {"eprop": sj.rules.EProp(), "eprop_online": sj.rules.EProp(online_every=T, learning_rate=1e-3),
            "bptt": sj.rules.Exact(), "rtrl": sj.rules.RTRL()}[rule_name]
    batch = task.sample(None, B)
    batch = sj.tasks.Batch(inputs=batch.inputs.astype(f32), targets=batch.targets.astype(f32))
    optimizer = optax.adam(1e-3)
    key = jax.random.key(0)

    @jax.jit
    def train_step(net, opt_state, batch):
        loss, updates, _ = rule(net, task, batch, key)
        updates, opt_state = optimizer.update(updates, opt_state, sj.parameters.params(net))
        return eqx.apply_updates(net, updates), opt_state, loss

    state = {"net": net, "opt": optimizer.init(sj.parameters.params(net))}

    def step():
        state["net"], state["opt"], loss = train_step(state["net"], state["opt"], batch)
        return loss.block_until_ready()

    def compiled():
        return train_step.lower(state["net"], state["opt"], batch).compile()

    return step, compiled


def run(Ts, N, N_small, B, steps, repeats, warmup, rtrl_max_T=1000):
    cases = {"eprop_lif": ("eprop", N, "lif"), "eprop_alif": ("eprop", N, "alif"),
             "bptt_lif": ("bptt", N, "lif"), "bptt_alif": ("bptt", N, "alif"),
             "eprop_lif_ref": ("eprop", N, "lif_ref"), "bptt_lif_ref": ("bptt", N, "lif_ref"),
             "rtrl": ("rtrl", N_small, "lif"), "bptt_small": ("bptt", N_small, "lif")}
    memory_only = {"eprop_online_lif": ("eprop_online", N, "lif"), "eprop_online_alif": ("eprop_online", N, "alif")}
    rows = []
    for T in Ts:
        fns, row = {}, {"T": T, "N": N, "N_small": N_small, "B": B, "temp_bytes": {}, "compile_s": {}}
        for name, (rule, n, kind) in {**cases, **memory_only}.items():
            step, compiled = make_step(rule, n, T, B, kind)
            t0 = time.perf_counter()
            c = compiled()
            row["compile_s"][name] = round(time.perf_counter() - t0, 2)
            row["temp_bytes"][name] = int(c.memory_analysis().temp_size_in_bytes)
            if name in cases and not (name in ("rtrl", "bptt_small") and T > rtrl_max_T):
                for _ in range(warmup):
                    step()
                fns[name] = step
        timing = _common.interleaved({k: fns[k] for k in ("bptt_lif", "eprop_lif", "eprop_alif", "bptt_alif",
                                                          "eprop_lif_ref", "bptt_lif_ref")},
                                     steps=steps, repeats=repeats, reference="bptt_lif")
        small = {} if T > rtrl_max_T else _common.interleaved(
            {k: fns[k] for k in ("bptt_small", "rtrl")}, steps=steps, repeats=repeats, reference="bptt_small")
        row["timing"] = {**timing, **small}
        row["ratios_cpu_paired"] = {
            "eprop_lif/bptt_lif": timing["eprop_lif"]["ratio_paired"],
            "eprop_alif/bptt_lif": timing["eprop_alif"]["ratio_paired"],
            "bptt_alif/bptt_lif": timing["bptt_alif"]["ratio_paired"],
            "eprop_lif_ref/bptt_lif": timing["eprop_lif_ref"]["ratio_paired"],
            "bptt_lif_ref/bptt_lif": timing["bptt_lif_ref"]["ratio_paired"],
            **({"rtrl/bptt_small": small["rtrl"]["ratio_paired"]} if small else {})}
        print(f"T={T}: CPU ms/step " + "  ".join(f"{k} {v['cpu_median_ms']:.1f}" for k, v in row["timing"].items())
              + "\n      ratios " + "  ".join(f"{k} {v:.2f}" for k, v in row["ratios_cpu_paired"].items())
              + "\n      temp KiB " + "  ".join(f"{k} {v / 1024:.0f}" for k, v in row["temp_bytes"].items()),
              flush=True)
        rows.append(row)
    first, last = rows[0]["temp_bytes"], rows[-1]["temp_bytes"]
    growth = {k: round(last[k] / first[k], 3) for k in first}
    print(f"temp memory growth T={Ts[0]} -> T={Ts[-1]}: " + "  ".join(f"{k} {v:.2f}x" for k, v in growth.items()))
    return rows, growth


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="N=32, T = 250 and 1000, few steps")
    p.add_argument("--T", type=int, nargs="+", default=None)
    p.add_argument("--N", type=int, default=None)
    p.add_argument("--N-small", type=int, default=8)
    p.add_argument("--B", type=int, default=8)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--repeats", type=int, default=None)
    args = p.parse_args(argv)
    setup = _common.single_thread()
    Ts = args.T or ([250, 1000] if args.quick else [250, 1000, 4000, 8000])
    N = args.N or (32 if args.quick else 100)
    steps = args.steps or (2 if args.quick else 3)
    repeats = args.repeats or (2 if args.quick else 3)
    rows, growth = run(Ts, N, args.N_small, args.B, steps, repeats, warmup=1)
    out = {"benchmark": "eprop", "machine": _common.machine(), "setup": setup,
           "config": {"T": Ts, "N": N, "N_small": args.N_small, "B": args.B, "steps": steps, "repeats": repeats,
                      "quick": args.quick},
           "rows": rows, "temp_growth": growth}
    path = _common.write_json(_common.RESULTS / ("eprop_quick.json" if args.quick else "eprop.json"), out)
    print(f"written {path}")


if __name__ == "__main__":
    main()
