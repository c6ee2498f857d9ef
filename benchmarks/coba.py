"""COBA and CUBA E/I networks (Vogels & Abbott 2005; Brette et al. 2007 benchmarks 1-2): simjax
against Brian2 (numpy and cython runtime, C++ standalone) on the same machine, in the same run.

For each network kind (`coba`, `cuba`), connection convention (`fixed_probability`: p = 0.02,
weights scaled by 4000 / n; `fixed_in_degree`: k = 80, weights unscaled) and size `n`:

- **simjax**: `EINetwork.coba` / `cuba` (event-driven `EventProjection`, float32, one jitted
  program per chunk of steps), run time per simulated second after compilation (median of
  `--repeats` runs interleaved with the Brian2 runs), compile time, E/I rates and the CV of
  the inter-spike intervals (from the spike log), dropped spikes (must be 0), memory (model,
  state);
- **Brian2** with the *same* connectivity (the index list simjax drew) and initial potentials:
  `numpy` and `cython` runtime targets and `cpp_standalone` (run time as reported by the
  standalone binary, and code generation + compilation apart), float64 as Brian2 computes;
- **hand-written JAX** (`jax_handwritten`): the same network in plain JAX as a user would write
  it (capped `nonzero` of the spiking neurons, one scatter-add of their rows over the budget),
  and the **floor** (`floor`): the neuron update alone, which every step must do; ratios in the
  same run;
- **propagation options** (`--propagation`): the step with the event-driven projection vs a
  segment sum over every synapse (`simjax.synapses.Sparse`), a `jax.experimental.sparse` BCOO
  product and a dense matmul (small sizes), and brainevent's `binary_fcnmv` where installed;
- **vmap** (`--vmap 16`): 16 parameter sets (excitatory weight scaled 0.9..1.1) of the 4 k
  network as one vmapped program: network-seconds per wall-second against standalone's.

Threads: `--threads 1` pins one core and XLA/BLAS to one thread; `--threads 2` lets XLA and
Brian2 standalone (OpenMP) use two. Each thread setting needs its own process (XLA reads its
flags once): run the script once per setting.

Usage: `python benchmarks/coba.py [--quick] [--sizes 4000 16000] [--kinds coba] [--threads 1]`
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

DT = 0.1


def parse():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="4 k only, 200 ms, no standalone, 1 repeat")
    ap.add_argument("--sizes", type=int, nargs="+", default=[4000, 16000, 40000, 100000])
    ap.add_argument("--kinds", nargs="+", default=["coba", "cuba"])
    ap.add_argument("--conventions", nargs="+", default=["fixed_probability", "fixed_in_degree"])
    ap.add_argument("--duration", type=float, default=1000.0, help="simulated ms per timed run")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, choices=[1, 2])
    ap.add_argument("--brian2", nargs="*", default=["numpy", "cython", "cpp_standalone"])
    ap.add_argument("--brian2-max-n", type=int, default=40000, help="largest n run with the Brian2 runtime targets")
    ap.add_argument("--max-synapses", type=float, default=4e7, help="skip networks with more synapses")
    ap.add_argument("--vmap", type=int, default=16)
    ap.add_argument("--no-baselines", dest="baselines", action="store_false",
                    help="skip the hand-written JAX step and the neuron-update floor")
    ap.add_argument("--baselines-max-n", type=int, default=16000,
                    help="largest n with the baselines (the hand-written step scatters the whole budget: "
                         "56 s per simulated second at 16 k, classic)")
    ap.add_argument("--propagation", action="store_true", help="also time the propagation options at 4 k")
    ap.add_argument("--out", type=Path, default=_common.RESULTS / "coba.json")
    args = ap.parse_args()
    if args.quick:
        args.sizes, args.duration, args.repeats = [4000], 200.0, 1
        args.brian2 = [b for b in args.brian2 if b != "cpp_standalone"]
        args.vmap = 4
    return args


def set_threads(threads: int) -> dict:
    if threads == 1:
        return _common.single_thread()
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=true").strip()
    return {"xla_flags": os.environ["XLA_FLAGS"], "pinned_core": None}


# ------------------------------------------------------------------ simjax
def build(kind, n, convention, seed=0, max_events=400000):
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    import simjax as sj

    maker = sj.networks.EINetwork.coba if kind == "coba" else sj.networks.EINetwork.cuba
    net = maker(n, key=jax.random.key(seed), connectivity=convention, dt=DT, max_events=max_events)
    return jax.tree.map(lambda a: a.astype(jnp.float32) if eqx.is_inexact_array(a) else a, net)


def simjax_runner(net, steps, batch=None):
    """`(run, state0)`: `run(state)` simulates `steps` steps and blocks."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    import simjax as sj

    x = jnp.zeros((steps, 1), jnp.float32)

    @eqx.filter_jit
    def run(net, state):
        out = sj.simulate(net, x, dt=DT, state=state, record=("readout",), checks=False)
        return out.final_state, out.readout

    state = net.init(jax.random.key(1), ())
    return (lambda s: jax.block_until_ready(run(net, s))), state


def handwritten_runner(net, kind, steps, propagate=True):
    """`(run, state0)` of the same network written by hand in plain JAX, as a user without simjax
    would: conductances (or currents) and the potential as arrays, the spiking neurons' indices by
    `jnp.nonzero` capped at the network's `max_spikes`, and one scatter-add of their outgoing rows
    (`max_spikes x max_out` elements every step); the refractory hold in whole steps. With
    `propagate=False` the step is the neuron update alone: the floor of any step, which must
    update every neuron."""
    import jax
    import jax.numpy as jnp

    proj, lif, n = net.recurrent, net.neuron, net.n
    targets, weight, channels, cap = proj.targets, proj.weight, proj.channels, proj.max_spikes
    (r_e, r_i), dt = lif.receptors, jnp.float32(DT)
    decay = jnp.stack([jnp.exp(-dt / r_e.tau), jnp.exp(-dt / r_i.tau)]).astype(jnp.float32)[:, None]
    rest = (lif.v_rest + lif.bias).astype(jnp.float32)
    hold = int(round(float(lif.t_ref) / DT))
    if kind == "cuba":  # exact propagator over one step (Rotter & Diesmann 1999)
        a = jnp.exp(-dt / lif.tau_mem)
        couple = jnp.stack([r.tau / (r.tau - lif.tau_mem) * (jnp.exp(-dt / r.tau) - a) for r in (r_e, r_i)])
    e_rev = jnp.stack([r_e.e_rev, r_i.e_rev])[:, None] if kind == "coba" else None

    def step(carry, _):
        v, g, ref, spiked = carry
        if propagate:  # last step's spikes arrive now (zero delay)
            idx = jnp.nonzero(spiked, size=cap, fill_value=n)[0]
            rows = targets.at[idx].get(mode="fill", fill_value=n)
            w = weight.at[idx].get(mode="fill", fill_value=0.0)
            w = jnp.abs(w) if kind == "coba" else w
            flat = rows + n * channels.at[idx].get(mode="fill", fill_value=0)[:, None]
            g = g.reshape(-1).at[flat.ravel()].add(w.ravel(), mode="drop").reshape(2, n)
        if kind == "coba":  # exponential Euler, conductances frozen over the step
            total = 1.0 + g[0] + g[1]
            # (the two receptors written out: XLA's CPU code for a sum over the leading axis of
            # `[2, n]` costs 3x more per neuron above about 20 000 neurons)
            v_inf = (rest + g[0] * e_rev[0] + g[1] * e_rev[1]) / total
            v_new = v_inf + (v - v_inf) * jnp.exp(-total * dt / lif.tau_mem)
        else:
            v_new = rest + a * (v - rest) + couple[0] * g[0] + couple[1] * g[1]
        v = jnp.where(ref > 0, v, v_new)
        g = g * decay
        spiked = v > lif.v_th
        v = jnp.where(spiked, lif.v_reset, v)
        ref = jnp.where(spiked, hold, jnp.maximum(ref - 1, 0))
        return (v, g, ref, spiked), jnp.sum(spiked)

    @jax.jit
    def run(state):
        return jax.lax.scan(step, state, None, length=steps)

    v0 = jnp.asarray(net.init(jax.random.key(1), ()).neuron.v, jnp.float32)
    state0 = (v0, jnp.zeros((2, n), jnp.float32), jnp.zeros(n, jnp.int32), jnp.zeros(n, bool))
    return (lambda s: jax.block_until_ready(run(s))), state0


def mib(tree) -> float:
    """MiB of the arrays in `tree`."""
    import equinox as eqx
    import jax

    return sum(a.nbytes for a in jax.tree.leaves(eqx.filter(tree, eqx.is_array))) / 2**20


def isi_cv(log, n):
    import numpy as np

    from simjax._app.experiments.ei_network import isi_cv as cv

    kept = min(int(log.count), log.steps.shape[-1])
    return cv(np.asarray(log.steps)[:kept], np.asarray(log.ids)[:kept], n)


# ------------------------------------------------------------------ Brian2
def brian2_run(net, state, target, duration_ms, threads, workdir):
    """Run the same network in Brian2; returns run seconds, compile seconds, rates."""
    import numpy as np

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.test_brian2 import _import_brian2

    b2 = _import_brian2()
    ms, mV = b2.ms, b2.mV
    b2.prefs.logging.file_log = False
    b2.prefs.logging.std_redirection = False
    if target == "cpp_standalone":
        b2.set_device("cpp_standalone", directory=str(workdir), build_on_run=False)
        b2.prefs.devices.cpp_standalone.openmp_threads = threads if threads > 1 else 0
    else:
        b2.prefs.codegen.target = target
    b2.start_scope()
    import simjax as sj

    coba = isinstance(net.neuron.receptors[0], sj.synapses.ExponentialConductance)
    if coba:
        eqs = """dv/dt = (ge * (0*mV - v) + gi * (-80*mV - v) - (v + 60*mV) + 20*mV) / (20*ms)
                        : volt (unless refractory)
                 dge/dt = -ge / (5*ms) : 1
                 dgi/dt = -gi / (10*ms) : 1"""
        method, on_e, on_i = "exponential_euler", "ge += w", "gi += w"
    else:
        eqs = """dv/dt = (ge + gi - (v + 49*mV)) / (20*ms) : volt (unless refractory)
                 dge/dt = -ge / (5*ms) : volt
                 dgi/dt = -gi / (10*ms) : volt"""
        method, on_e, on_i = "exact", "ge += w*mV", "gi += w*mV"
    group = b2.NeuronGroup(net.n, eqs, threshold="v > -50*mV", reset="v = -60*mV", refractory=(5 + DT) * ms,
                           method=method, dt=DT * ms)
    group.v = np.asarray(state.neuron.v, np.float64) * mV
    pre, post = net.recurrent.indices()
    w = net.recurrent.synapse_values(net.recurrent.weight).astype(np.float64)
    if coba:
        w = np.abs(w)
    exc = pre < net.n_exc
    syns = []
    for mask, on_pre in ((exc, on_e), (~exc, on_i)):
        s = b2.Synapses(group, group, "w : 1", on_pre=on_pre, dt=DT * ms)
        s.connect(i=pre[mask], j=post[mask])
        s.w[:] = w[mask]
        syns.append(s)
    monitor = b2.SpikeMonitor(group)
    network = b2.Network(group, *syns, monitor)
    t0 = time.perf_counter()
    if target == "cpp_standalone":
        network.run(duration_ms * ms, namespace={})
        b2.device.build(directory=str(workdir), compile=True, run=True, debug=False)
        total = time.perf_counter() - t0
        run_s = float(b2.device._last_run_time)
        compile_s = total - run_s
    else:
        network.run(DT * ms * 10, namespace={})  # code generation and compilation, timed apart
        compile_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        network.run(duration_ms * ms, namespace={})
        run_s = time.perf_counter() - t0
    i = np.asarray(monitor.i)
    seconds = duration_ms / 1000.0
    rates = [float(np.sum(i < net.n_exc) / net.n_exc / seconds), float(np.sum(i >= net.n_exc) / net.n_inh / seconds)]
    if target == "cpp_standalone":
        b2.device.reinit()
        b2.device.activate()
        b2.set_device("runtime")
    return {"run_s": run_s, "per_sim_s": run_s / seconds, "compile_s": compile_s, "rates_hz": rates}


# ------------------------------------------------------------------ main
def main():
    args = parse()
    threads = set_threads(args.threads)
    import jax
    import jax.numpy as jnp
    import numpy as np

    steps = round(args.duration / DT)
    rows = []
    print(f"coba.py: {args.threads} thread(s); {args.duration:.0f} ms per run; dt = {DT} ms")
    for kind in args.kinds:
        for convention in args.conventions:
            for n in args.sizes:
                expected = n * (0.02 * n if convention == "fixed_probability" else 80)
                if expected > args.max_synapses:
                    print(f"  {kind} {convention} n={n}: skipped ({expected:.2g} synapses > --max-synapses)")
                    rows.append({"kind": kind, "convention": convention, "n": n, "skipped": "memory"})
                    continue
                t0 = time.perf_counter()
                net = build(kind, n, convention)
                build_s = time.perf_counter() - t0
                run, state0 = simjax_runner(net, steps)
                t0 = time.perf_counter()
                final, readout = run(state0)
                first_s = time.perf_counter() - t0
                baselines = {}
                if args.baselines and n <= args.baselines_max_n:
                    for name, propagate in (("jax_handwritten", True), ("floor", False)):
                        hand, hand0 = handwritten_runner(net, kind, steps, propagate)
                        hand(hand0)  # compile
                        baselines[name] = (hand, hand0, [])
                row = {"kind": kind, "convention": convention, "n": n, "synapses": net.recurrent.n_synapses,
                       "max_spikes": net.recurrent.max_spikes, "build_s": build_s}
                times, b2_times = [], {t: [] for t in args.brian2}
                b2_extra = {}
                for rep in range(args.repeats):
                    t0 = time.perf_counter()
                    final, readout = run(state0)
                    times.append(time.perf_counter() - t0)
                    for hand, hand0, hand_times in baselines.values():
                        t0 = time.perf_counter()
                        hand(hand0)
                        hand_times.append(time.perf_counter() - t0)
                    for target in args.brian2:
                        if target != "cpp_standalone" and n > args.brian2_max_n:
                            continue
                        if target == "cpp_standalone" and rep > 0:
                            continue  # one build per network (its run time is measured by the binary)
                        workdir = Path(tempfile.gettempdir()) / f"coba_standalone_{kind}_{convention}_{n}"
                        res = brian2_run(net, state0, target, args.duration, args.threads, workdir)
                        b2_times[target].append(res["per_sim_s"])
                        b2_extra[target] = res
                seconds = args.duration / 1000.0
                rates = np.asarray(readout).mean(0)
                row.update(simjax_per_sim_s=statistics.median(times) / seconds,
                           simjax_compile_s=max(first_s - statistics.median(times), 0.0),
                           rates_hz=[float(r) for r in rates], cv_isi=isi_cv(final.log, net.n),
                           dropped=int(final.dropped),
                           memory_mib={"model": mib(net), "state": mib(state0)})
                for target, ts in b2_times.items():
                    if ts:
                        row[f"brian2_{target}"] = {**b2_extra[target], "per_sim_s": statistics.median(ts)}
                for name, (hand, hand0, hand_times) in baselines.items():
                    row[f"{name}_per_sim_s"] = statistics.median(hand_times) / seconds
                    row[f"{name}_rate_hz"] = float(jnp.sum(hand(hand0)[1])) / (net.n * seconds)
                rows.append(row)
                line = (f"  {kind} {convention:17s} n={n:6d} syn={row['synapses']:9d}: simjax "
                        f"{row['simjax_per_sim_s']:.3f} s/sim-s (+{row['simjax_compile_s']:.1f} s compile), "
                        f"rates E {rates[0]:.1f} I {rates[1]:.1f} Hz, CV {row['cv_isi']:.2f}, dropped {row['dropped']}")
                for name in baselines:
                    line += (f"; {name} {row[f'{name}_per_sim_s']:.3f} s/sim-s "
                             f"(simjax/it {row['simjax_per_sim_s'] / row[f'{name}_per_sim_s']:.2f}, "
                             f"rate {row[f'{name}_rate_hz']:.1f} Hz)")
                for target in args.brian2:
                    if f"brian2_{target}" in row:
                        b = row[f"brian2_{target}"]
                        ratio = row["simjax_per_sim_s"] / b["per_sim_s"]
                        line += (f"; {target} {b['per_sim_s']:.3f} s/sim-s (simjax/it {ratio:.2f}),"
                                 f" rates {b['rates_hz'][0]:.1f}/{b['rates_hz'][1]:.1f}")
                print(line, flush=True)
    vmap_row = None
    if args.vmap and 4000 in args.sizes:
        import equinox as eqx

        import simjax as sj

        net = build("coba", 4000, "fixed_probability", max_events=0)
        scales = jnp.linspace(0.9, 1.1, args.vmap, dtype=jnp.float32)
        x = jnp.zeros((steps, 1), jnp.float32)
        exc_rows = (jnp.arange(net.n) < net.n_exc)[:, None]

        @jax.jit
        def many(scales):
            def one(scale):
                w = jnp.where(exc_rows, net.recurrent.weight * scale, net.recurrent.weight)
                m = eqx.tree_at(lambda m: m.recurrent.weight, net, w)
                out = sj.simulate(m, x, dt=DT, key=jax.random.key(1), record=("readout",), checks=False)
                return out.readout.mean(0), out.final_state.dropped
            return jax.vmap(one)(scales)

        jax.block_until_ready(many(scales))
        ts = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            rates, dropped = jax.block_until_ready(many(scales))
            ts.append(time.perf_counter() - t0)
        t = statistics.median(ts)
        throughput = args.vmap * args.duration / 1000 / t
        vmap_row = {"sets": args.vmap, "wall_s": t, "network_seconds_per_wall_second": throughput,
                    "rates_hz": np.asarray(rates).tolist(), "dropped": np.asarray(dropped).tolist()}
        print(f"  vmap {args.vmap} COBA 4k sets: {throughput:.2f} network-s per wall-s")
    result = {"machine": _common.machine(), "threads": threads, "args": {k: str(v) for k, v in vars(args).items()},
              "rows": rows, "vmap": vmap_row}
    print("wrote", _common.write_json(args.out, result))


if __name__ == "__main__":
    main()
