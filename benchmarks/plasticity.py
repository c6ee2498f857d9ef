"""Online plasticity: the cost of pair STDP inside a running network, and the memory of a
differentiable run against its length.

- **time per simulated second** of the COBA network (`EINetwork.coba`, float32, dt = 0.1 ms), with
  dense recurrent weights and with its event-driven projection, programs timed interleaved in one
  process: the static network
  (`simjax.simulate`), the same network with pair STDP on every excitatory synapse
  (`simjax.plasticity.simulate`, dense update, and with ``max_spikes``: only the rows and columns of
  the neurons that spiked), and a hand-written `lax.scan` of the same plastic step (the
  network's `transition` plus the trace update written out inline), the baseline for the
  abstraction's cost; and the event-driven network static and with pair STDP on its stored
  excitatory synapses (every synapse every step, and with ``max_spikes``: only the outgoing and
  incoming synapses of the neurons that spiked). Reported: ms per simulated second and the
  paired ratios plastic / static (target <= 1.5) and simjax / hand-written.
- **exact event method**: an `RSNN` of ``--event-n`` LIF neurons (constant currents, every
  recurrent synapse plastic) run by the event-driven method for ``--event-events`` events, static
  (`simjax.simulate(method="event")`) and with pair STDP applied at the events
  (`simjax.plasticity.simulate(method="event")`), timed interleaved: the paired ratio per event.
- **Brian2** with the same STDP (numpy and cython runtime targets, and C++ standalone: the run
  time its binary reports), where it imports (the test extra); its reason otherwise.
- **memory**: XLA's `temp_size_in_bytes` of `jax.grad` (in `A+`) of a loss on the final weights of
  `simjax.plasticity.run` (``n x n`` synapses, Poisson trains), for ``memory="store"`` and
  ``"checkpoint"`` at several lengths; nothing is run, so the figures are exact.

Usage: ``python benchmarks/plasticity.py [--quick] [--n 1000] [--duration 200]``
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

DT = 0.1


def parse():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="n = 400, 50 ms, 1 repeat, short memory sweep")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--duration", type=float, default=200.0, help="simulated ms per timed call")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-spikes", type=int, default=32, help="spikes per step of the row/column update")
    ap.add_argument("--memory-T", type=int, nargs="+", default=[1000, 4000, 16000])
    ap.add_argument("--memory-n", type=int, default=100)
    ap.add_argument("--event-n", type=int, default=200, help="neurons of the exact event-method comparison")
    ap.add_argument("--event-events", type=int, default=2048, help="events per call of that comparison")
    ap.add_argument("--out", type=Path, default=_common.RESULTS / "plasticity.json")
    args = ap.parse_args()
    if args.quick:
        args.n, args.duration, args.repeats, args.memory_T = 400, 50.0, 1, [500, 2000]
        args.event_n, args.event_events = 100, 512
    return args


def programs(n: int, steps: int, max_spikes: int):
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    import simjax as sj

    net = sj.networks.EINetwork.coba(n, key=jax.random.key(0), dense=True, dt=DT)
    net = jax.tree.map(lambda a: a.astype(jnp.float32) if eqx.is_inexact_array(a) else a, net)
    w = net.recurrent.weight
    mask = (jnp.arange(n) < net.n_exc)[:, None] & (w != 0)
    rule = sj.plasticity.PairSTDP(a_plus=jnp.float32(1e-3), a_minus=jnp.float32(1.05e-3), tau_plus=jnp.float32(20.0),
                                  tau_minus=jnp.float32(20.0), w_max=jnp.float32(2 * float(jnp.max(w))))
    x = jnp.zeros((steps, 1), jnp.float32)
    key = jax.random.key(1)

    @jax.jit
    def static(key):
        return sj.simulate(net, x, dt=DT, key=key, record=("readout",), checks=False).readout

    @jax.jit
    def plastic(key):
        return sj.plasticity.simulate(net, rule, x, dt=DT, key=key, mask=mask)[1].readout

    @jax.jit
    def plastic_sparse(key):
        return sj.plasticity.simulate(net, rule, x, dt=DT, key=key, mask=mask, max_spikes=max_spikes)[1].readout

    @jax.jit
    def hand(key):
        a_p, a_m, w_max = rule.a_plus, rule.a_minus, rule.w_max
        decay = jnp.exp(-DT / rule.tau_plus)

        def body(carry, x_t):
            state, w, tp, tq = carry
            proj = eqx.tree_at(lambda p: p.weight, net.recurrent, w)
            state, rec = net.transition(state, x_t, DT, proj)
            s = state.spikes
            tp, tq = tp * decay, tq * decay
            dw = a_p * tp[:, None] * s[None, :] - a_m * s[:, None] * tq[None, :]
            w = jnp.where(mask, jnp.clip(w + dw, 0.0, w_max), w)
            return (state, w, tp + s, tq + s), rec.readout

        z = jnp.zeros(n, jnp.float32)
        return jax.lax.scan(body, (net.init(key, ()), w, z, z), x)[1]

    event_net = sj.networks.EINetwork.coba(n, key=jax.random.key(0), dt=DT)
    event_net = jax.tree.map(lambda a: a.astype(jnp.float32) if eqx.is_inexact_array(a) else a, event_net)
    proj = event_net.recurrent
    event_mask = (proj.channels == 0)[:, None] & (proj.targets < n)

    @jax.jit
    def static_event(key):
        return sj.simulate(event_net, x, dt=DT, key=key, record=("readout",), checks=False).readout

    @jax.jit
    def plastic_event(key):
        return sj.plasticity.simulate(event_net, rule, x, dt=DT, key=key, mask=event_mask)[1].readout

    @jax.jit
    def plastic_event_spiking(key):
        return sj.plasticity.simulate(event_net, rule, x, dt=DT, key=key, mask=event_mask,
                                      max_spikes=max_spikes)[1].readout

    return {"static": lambda: static(key).block_until_ready(), "plastic": lambda: plastic(key).block_until_ready(),
            "static event": lambda: static_event(key).block_until_ready(),
            "plastic event": lambda: plastic_event(key).block_until_ready(),
            "plastic event max_spikes": lambda: plastic_event_spiking(key).block_until_ready(),
            "plastic max_spikes": lambda: plastic_sparse(key).block_until_ready(),
            "hand-written plastic": lambda: hand(key).block_until_ready()}, net


def event_programs(n: int, events: int):
    """Static and plastic event-driven runs of the same `RSNN` (float32), each exactly `events`
    events (the network fires more often than that before `t1`, so every call spends its budget:
    `on_exhausted="flag"`)."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    import simjax as sj

    f32 = lambda tree: jax.tree.map(lambda a: a.astype(jnp.float32) if eqx.is_inexact_array(a) else a, tree)  # noqa: E731
    w = jnp.abs(jax.random.normal(jax.random.key(0), (n, n))) * (0.02 * (1 - jnp.eye(n)))
    lif = sj.neurons.LIF(tau_mem=20.0, v_th=1.0, bias=jnp.linspace(1.1, 1.5, n))
    net = f32(sj.networks.RSNN(n_in=1, n_rec=n, n_out=1, neuron=lif, w_in=jnp.zeros((1, n)), w_rec=w,
                               w_out=jnp.ones((n, 1))))
    rule = f32(sj.plasticity.PairSTDP(a_plus=1e-3, a_minus=1.2e-3, tau_plus=20.0, tau_minus=20.0))
    train = sj.SpikeTrain(jnp.array([jnp.inf], jnp.float32), jnp.array([0]), n=1)
    kw = dict(method="event", t1=1000.0, max_events=events, on_exhausted="flag")

    def static():
        return sj.simulate(net, train, **kw).spikes.times.block_until_ready()

    def plastic():
        return sj.plasticity.simulate(net, rule, train, **kw)[0].w_rec.weight.block_until_ready()

    out = sj.simulate(net, train, **kw)
    assert bool(out.info["exhausted"]), "the event comparison needs a network that spends its whole budget"
    return {"static event method": static, "plastic event method": plastic}


def memory_mib(n: int, steps: int, memory: str) -> float:
    import jax
    import jax.numpy as jnp

    import simjax as sj

    k1, k2 = jax.random.split(jax.random.key(0))
    pre = jax.random.bernoulli(k1, 0.02, (steps, n)).astype(jnp.float32)
    post = jax.random.bernoulli(k2, 0.02, (steps, n)).astype(jnp.float32)
    w0 = jnp.full((n, n), 0.5, jnp.float32)

    def loss(a_plus):
        rule = sj.plasticity.PairSTDP(a_plus=a_plus, a_minus=jnp.float32(1e-3), tau_plus=jnp.float32(20.0),
                                      tau_minus=jnp.float32(20.0), weight_dependence="soft", w_max=jnp.float32(1.0))
        return jnp.sum(sj.plasticity.run(rule, pre, post, w0, dt=1.0, memory=memory, segment=100)[0] ** 2)

    compiled = jax.jit(jax.grad(loss)).lower(jnp.float32(1e-3)).compile()
    return compiled.memory_analysis().temp_size_in_bytes / 2**20


def brian2_ms_per_s(n: int, duration: float, target: str = "numpy") -> tuple[float | None, str]:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    try:
        from tests.test_brian2 import _import_brian2  # (Brian2 needs a numpy 2 shim to import)

        b2 = _import_brian2()
    except Exception as err:
        return None, f"brian2 unavailable: {type(err).__name__}: {err}"
    standalone = target == "cpp_standalone"
    if standalone:  # run time as the binary reports it; code generation and compilation apart
        workdir = tempfile.mkdtemp(prefix="simjax_plasticity_b2_")
        b2.set_device("cpp_standalone", directory=workdir, build_on_run=False)
        b2.prefs.devices.cpp_standalone.openmp_threads = 0
    else:
        b2.prefs.codegen.target = target
    b2.start_scope()
    b2.defaultclock.dt = DT * b2.ms
    eqs = """dv/dt = (ge*(0*mV - v) + gi*(-80*mV - v) + (-60*mV - v) + 20*mV)/(20*ms) : volt (unless refractory)
             dge/dt = -ge/(5*ms) : 1
             dgi/dt = -gi/(10*ms) : 1"""
    group = b2.NeuronGroup(n, eqs, threshold="v > -50*mV", reset="v = -60*mV", refractory=5 * b2.ms,
                           method="exponential_euler")
    group.v = "-60*mV + rand() * 10*mV"
    n_exc = int(round(0.8 * n))
    scale = 4000.0 / n
    exc = b2.Synapses(group[:n_exc], group,
                      """w : 1
                         dapre/dt = -apre/(20*ms) : 1 (event-driven)
                         dapost/dt = -apost/(20*ms) : 1 (event-driven)""",
                      on_pre="ge += w; apre += 1; w = clip(w - 1.05e-3 * apost, 0, 2)",
                      on_post="apost += 1; w = clip(w + 1e-3 * apre, 0, 2)")
    exc.connect(p=0.02)
    exc.w = 0.6 * scale
    inh = b2.Synapses(group[n_exc:], group, on_pre=f"gi += {6.7 * scale}")
    inh.connect(p=0.02)
    if standalone:
        t0 = time.perf_counter()
        b2.run(duration * b2.ms)
        b2.device.build(directory=workdir, compile=True, run=True, debug=False)
        run_s = float(b2.device._last_run_time)
        build_s = time.perf_counter() - t0 - run_s
        b2.device.reinit()
        b2.device.activate()
        b2.set_device("runtime")
        shutil.rmtree(workdir, ignore_errors=True)
        return run_s * 1000.0 / (duration / 1000.0), (f"{target}, event-driven STDP, run time reported by the "
                                                       f"binary (code generation and compilation {build_s:.1f} s)")
    b2.run(10 * b2.ms)  # code generation
    t0 = time.perf_counter()
    b2.run(duration * b2.ms)
    return (time.perf_counter() - t0) * 1000.0 / (duration / 1000.0), f"{target} target, event-driven STDP"


def main():
    args = parse()
    threads = _common.single_thread()
    import jax  # noqa: F401  (after the thread settings)

    steps = int(round(args.duration / DT))
    fns, net = programs(args.n, steps, args.max_spikes)
    t0 = time.perf_counter()
    for fn in fns.values():
        fn()
    compile_s = time.perf_counter() - t0
    timing = _common.interleaved(fns, steps=1, repeats=args.repeats, reference="static")
    per_s = {name: t["median_ms"] / (args.duration / 1000.0) for name, t in timing.items()}
    ratio_static = _common.paired_ratio(timing, "plastic", "static")
    ratio_hand = _common.paired_ratio(timing, "plastic", "hand-written plastic")
    ratio_sparse = _common.paired_ratio(timing, "plastic max_spikes", "static")
    ratio_event = _common.paired_ratio(timing, "plastic event", "static event")
    ratio_event_spiking = _common.paired_ratio(timing, "plastic event max_spikes", "static event")
    print(f"COBA n={args.n} dense, dt={DT} ms, {args.duration} ms per call (compile {compile_s:.1f} s):")
    for name, v in per_s.items():
        print(f"  {name:>22}: {v:9.1f} ms per simulated second")
    print(f"  plastic / static: dense {ratio_static:.2f}, max_spikes={args.max_spikes} {ratio_sparse:.2f} "
          f"(target <= 1.5); plastic / hand-written (dense): {ratio_hand:.2f}")
    print(f"  event-driven projection: plastic / static {ratio_event:.2f}, max_spikes={args.max_spikes} "
          f"{ratio_event_spiking:.2f} (target <= 1.5)")
    event_fns = event_programs(args.event_n, args.event_events)
    for fn in event_fns.values():
        fn()
    event_timing = _common.interleaved(event_fns, steps=3, repeats=args.repeats, reference="static event method")
    ratio_exact = _common.paired_ratio(event_timing, "plastic event method", "static event method")
    print(f"  exact event method, RSNN n={args.event_n}, {args.event_events} events: static "
          f"{event_timing['static event method']['median_ms']:.1f} ms, plastic "
          f"{event_timing['plastic event method']['median_ms']:.1f} ms, plastic / static {ratio_exact:.2f}")
    brian2 = {}
    for target in ("numpy", "cython", "cpp_standalone"):
        b2_ms, b2_note = brian2_ms_per_s(args.n, args.duration, target)
        brian2[target] = {"ms_per_simulated_second": b2_ms, "note": b2_note}
        versus = ("" if b2_ms is None else
                  f"; simjax plastic event (max_spikes) / Brian2 {per_s['plastic event max_spikes'] / b2_ms:.2f}")
        print(f"  Brian2: {'n/a' if b2_ms is None else f'{b2_ms:.1f} ms per simulated second'} ({b2_note}){versus}")
    memory = {}
    for policy in ("store", "checkpoint"):
        memory[policy] = {T: round(memory_mib(args.memory_n, T, policy), 3) for T in args.memory_T}
        print(f"  grad memory ({policy}, {args.memory_n}x{args.memory_n} synapses): "
              + ", ".join(f"T={T}: {m:.2f} MiB" for T, m in memory[policy].items()))
    result = {"n": args.n, "dt": DT, "duration_ms": args.duration, "threads": threads, "timing": timing,
              "ms_per_simulated_second": per_s, "ratio_plastic_static": ratio_static,
              "ratio_plastic_hand": ratio_hand,
              "ratio_plastic_sparse_static": ratio_sparse, "ratio_plastic_event_static_event": ratio_event,
              "ratio_plastic_event_max_spikes_static_event": ratio_event_spiking,
              "max_spikes": args.max_spikes,
              "event_method": {"n": args.event_n, "events": args.event_events, "timing": event_timing,
                               "ratio_plastic_static": ratio_exact},
              "brian2": brian2,
              "grad_temp_mib": memory, "machine": _common.machine()}
    print(f"written to {_common.write_json(args.out, result)}")


if __name__ == "__main__":
    main()
