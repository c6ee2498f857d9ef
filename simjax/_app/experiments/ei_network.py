"""The Vogels-Abbott E/I network (COBA or CUBA; Brette et al. 2007 benchmarks 1 and 2): simulate,
then report the excitatory and inhibitory rates, the coefficient of variation of the inter-spike
intervals, the time per simulated second (compilation apart) and the memory the run keeps.

What is recorded is chosen for large networks: the two population rates per step, the spikes of
`raster_neurons` neurons (the raster), the potentials of `voltage_neurons` neurons, and a spike
log of every neuron with a budget of `max_events` events (the CV); nothing per step for every
neuron. Writes `summary.json`, `rates.csv` (rates binned to `bin_ms`) and `ei_network.png`
(raster and rates).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..._simulate.simulate import simulate
from ...networks import EINetwork
from .. import io
from ..config import require

DEFAULTS = {
    "experiment": {"name": "ei_network", "seed": 0},
    "network": {"kind": "coba", "n": 4000, "connectivity": "fixed_probability", "p": 0.02, "k": 80,
                "max_spikes": 0, "delay": 0.0},
    "run": {"duration": 1000.0, "dt": 0.1, "float32": True, "chunk": 10000},
    "record": {"raster_neurons": 500, "voltage_neurons": 5, "max_events": 200000, "bin_ms": 5.0,
               "transient": 100.0},
}
QUICK = {"network": {"n": 1000}, "run": {"duration": 200.0, "chunk": 2000},
         "record": {"raster_neurons": 100, "max_events": 20000, "transient": 50.0}}


def validate(cfg: dict) -> None:
    n, r, rec = cfg["network"], cfg["run"], cfg["record"]
    require(n["kind"] in ("coba", "cuba"), "network.kind", n["kind"], "'coba' or 'cuba'")
    require(n["connectivity"] in ("fixed_probability", "fixed_in_degree"), "network.connectivity",
            n["connectivity"], "'fixed_probability' or 'fixed_in_degree'")
    require(n["n"] >= 10, "network.n", n["n"], "an integer >= 10")
    require(0.0 <= n["p"] <= 1.0, "network.p", n["p"], "a probability in [0, 1]")
    require(0 <= n["k"] < n["n"], "network.k", n["k"], "an in-degree in [0, n)")
    require(n["max_spikes"] >= 0, "network.max_spikes", n["max_spikes"], "0 (automatic) or a positive integer")
    require(n["delay"] >= 0, "network.delay", n["delay"], "a delay >= 0 ms")
    require(r["duration"] > 0 and r["dt"] > 0, "run.duration/dt", (r["duration"], r["dt"]), "positive numbers")
    require(r["chunk"] > 0, "run.chunk", r["chunk"], "a positive number of steps")
    require(0 <= rec["raster_neurons"] <= n["n"], "record.raster_neurons", rec["raster_neurons"], "in [0, n]")
    require(0 <= rec["voltage_neurons"] <= n["n"], "record.voltage_neurons", rec["voltage_neurons"], "in [0, n]")
    require(rec["max_events"] >= 0, "record.max_events", rec["max_events"], "a non-negative integer")
    require(rec["bin_ms"] > 0, "record.bin_ms", rec["bin_ms"], "a positive number")
    require(0 <= rec["transient"] < r["duration"], "record.transient", rec["transient"], "in [0, duration)")


def build(cfg: dict) -> EINetwork:
    """The network of `cfg` (float32 unless `run.float32` is false)."""
    n, r, rec = cfg["network"], cfg["run"], cfg["record"]
    maker = EINetwork.coba if n["kind"] == "coba" else EINetwork.cuba
    size = n["n"]
    raster = np.linspace(0, size - 1, rec["raster_neurons"]).astype(int) if rec["raster_neurons"] else ()
    volts = np.linspace(0, size - 1, rec["voltage_neurons"]).astype(int) if rec["voltage_neurons"] else ()
    net = maker(size, key=jax.random.key(cfg["experiment"]["seed"]), connectivity=n["connectivity"], p=n["p"],
                k=n["k"], max_spikes=n["max_spikes"] or None, dt=r["dt"], delay=n["delay"],
                record_spikes=tuple(raster), record_v=tuple(volts), max_events=rec["max_events"])
    if r["float32"]:
        net = jax.tree.map(lambda a: a.astype(jnp.float32) if eqx.is_inexact_array(a) else a, net)
    return net


def isi_cv(steps: np.ndarray, ids: np.ndarray, n: int, min_spikes: int = 3) -> float:
    """Mean over neurons with at least `min_spikes` spikes of std/mean of their inter-spike intervals."""
    order = np.lexsort((steps, ids))
    steps, ids = steps[order], ids[order]
    cvs = []
    bounds = np.searchsorted(ids, np.arange(n + 1))
    for a, b in zip(bounds[:-1], bounds[1:]):
        if b - a >= min_spikes:
            isi = np.diff(steps[a:b]).astype(np.float64)
            cvs.append(isi.std() / isi.mean())
    return float(np.mean(cvs)) if cvs else float("nan")


def run(cfg: dict, out_dir: Path) -> dict:
    n, r, rec = cfg["network"], cfg["run"], cfg["record"]
    dt, steps = r["dt"], round(r["duration"] / r["dt"])
    start = time.perf_counter()
    net = build(cfg)
    build_s = time.perf_counter() - start
    chunk = min(r["chunk"], steps)
    chunks = math.ceil(steps / chunk)
    dtype = jnp.float32 if r["float32"] else jnp.result_type(float)
    x = jnp.zeros((chunk, 1), dtype)

    @eqx.filter_jit
    def advance(net, state):
        out = simulate(net, x, dt=dt, state=state, record=("spikes", "v", "readout"), checks=False)
        return out.final_state, out.spikes, out.v, out.readout

    state = net.init(jax.random.key(cfg["experiment"]["seed"] + 1), ())
    t0 = time.perf_counter()
    jax.block_until_ready(advance(net, state))  # compiles (the first chunk is then run again, timed)
    first_s = time.perf_counter() - t0
    print(f"ei_network: {n['kind'].upper()} n={n['n']} ({n['connectivity']}), {net.recurrent.n_synapses} synapses, "
          f"{r['duration']:.0f} ms at dt={dt} ms in {chunks} chunk(s) of {chunk} steps")
    rasters, volts, rates = [], [], []
    run_s = 0.0
    for _ in range(chunks):
        t0 = time.perf_counter()
        state, raster, v, rate = jax.block_until_ready(advance(net, state))
        run_s += time.perf_counter() - t0
        rasters.append(np.asarray(raster) if raster is not None else None)
        volts.append(np.asarray(v) if v is not None else None)
        rates.append(np.asarray(rate))
    rates = np.concatenate(rates)[:steps]
    compile_s = max(first_s - run_s / chunks, 0.0)
    simulated_s = chunks * chunk * dt / 1000.0
    skip = round(rec["transient"] / dt)
    rate_e, rate_i = (float(x) for x in rates[skip:].mean(0))
    cv = float("nan")
    events = 0
    if state.log is not None:
        events = int(state.log.count)
        kept = min(events, rec["max_events"])
        s, i = np.asarray(state.log.steps)[:kept], np.asarray(state.log.ids)[:kept]
        late = s >= skip
        cv = isi_cv(s[late], i[late], net.n)
    record_bytes = sum(a.nbytes for a in rasters + volts if a is not None) + rates.nbytes
    state_bytes = sum(a.nbytes for a in jax.tree.leaves(state) if hasattr(a, "nbytes"))
    model_bytes = sum(a.nbytes for a in jax.tree.leaves(eqx.filter(net, eqx.is_array)))
    summary = {"kind": n["kind"], "n": n["n"], "connectivity": n["connectivity"],
               "synapses": net.recurrent.n_synapses, "duration_ms": r["duration"], "dt": dt,
               "rate_exc_hz": rate_e, "rate_inh_hz": rate_i, "cv_isi": cv,
               "seconds_per_simulated_second": run_s / simulated_s, "compile_seconds": compile_s,
               "build_seconds": build_s, "dropped_spikes": int(state.dropped), "logged_events": events,
               "log_complete": events <= rec["max_events"],
               "memory_mib": {"model": model_bytes / 2**20, "state": state_bytes / 2**20,
                              "records": record_bytes / 2**20}}
    print(f"  rates E {rate_e:.2f} Hz, I {rate_i:.2f} Hz; CV of ISIs {cv:.3f}; "
          f"{summary['seconds_per_simulated_second']:.3f} s per simulated second (+{compile_s:.1f} s compile); "
          f"dropped spikes {summary['dropped_spikes']}; memory: model {summary['memory_mib']['model']:.1f} MiB, "
          f"state {summary['memory_mib']['state']:.1f} MiB, records {summary['memory_mib']['records']:.1f} MiB")
    width = max(1, round(rec["bin_ms"] / dt))
    nbins = len(rates) // width
    binned = rates[:nbins * width].reshape(nbins, width, 2).mean(1)
    io.write_rows(out_dir / "rates.csv", [{"t_ms": (k + 1) * width * dt, "rate_exc_hz": float(e),
                                           "rate_inh_hz": float(i)} for k, (e, i) in enumerate(binned)])
    io.write_json(out_dir / "summary.json", summary)
    raster = np.concatenate(rasters)[:steps] if rasters and rasters[0] is not None else None
    _plot(out_dir, raster, net.record_spikes, binned, width * dt, dt, net.n_exc)
    return summary


def _plot(out_dir: Path, raster, ids, binned, bin_ms, dt, n_exc) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib not installed: no plot; pip install 'simjax[plot]')")
        return
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    if raster is not None:
        k, j = np.nonzero(raster)
        neuron = np.asarray(ids)[j]
        exc = neuron < n_exc
        ax1.plot(k[exc] * dt, neuron[exc], ",", color="C0")
        ax1.plot(k[~exc] * dt, neuron[~exc], ",", color="C3")
    ax1.set(ylabel="neuron", title="spikes (blue: excitatory, red: inhibitory)")
    t = (np.arange(len(binned)) + 1) * bin_ms
    ax2.plot(t, binned[:, 0], color="C0", label="E")
    ax2.plot(t, binned[:, 1], color="C3", label="I")
    ax2.set(xlabel="time (ms)", ylabel="rate (Hz)")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "ei_network.png", dpi=100)
    plt.close(fig)
