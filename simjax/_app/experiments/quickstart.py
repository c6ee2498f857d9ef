"""Quickstart: a recurrent LIF network learns to generate three sine-sum patterns (e-prop's pattern
generation task), once with exact surrogate gradients (BPTT) and once with a biologically plausible
rule (feedback alignment through time by default), from the same initial network. About a minute
on 2 CPU cores; writes both learning curves and both networks' outputs."""

from __future__ import annotations

import time
from pathlib import Path

import jax
import numpy as np
import optax

from ..._fit.fit import fit
from ..._simulate.simulate import simulate
from ...networks import RSNN
from ...neurons import LIF
from ...surrogates._surrogates import FastSigmoid
from ...tasks import PatternGeneration
from .. import io
from ..config import require
from ..registry import construct

DEFAULTS = {
    "experiment": {"name": "quickstart", "seed": 0},
    "model": {"n_rec": 200, "tau_mem": 20.0, "v_th": 1.0, "tau_out": 20.0, "in_scale": 4.0, "slope": 25.0},
    "task": {"n_in": 100, "n_out": 3, "duration": 1000.0, "dt": 1.0},
    "train": {"steps": 800, "learning_rate": 3e-3, "batch_size": 1},
    "compare": {"rules": ["exact", "feedback_alignment"]},
}
QUICK = {"model": {"n_rec": 50}, "task": {"duration": 200.0}, "train": {"steps": 60}}


def validate(cfg: dict) -> None:
    m, t, tr = cfg["model"], cfg["task"], cfg["train"]
    for key in ("n_rec",):
        require(m[key] > 0, f"model.{key}", m[key], "a positive integer")
    for key in ("tau_mem", "v_th", "tau_out", "slope"):
        require(m[key] > 0, f"model.{key}", m[key], "a positive number")
    require(t["n_in"] > 0 and t["n_out"] > 0, "task.n_in/n_out", (t["n_in"], t["n_out"]), "positive integers")
    require(t["duration"] > 0 and t["dt"] > 0, "task.duration/dt", (t["duration"], t["dt"]), "positive numbers")
    require(tr["steps"] > 0, "train.steps", tr["steps"], "a positive integer")
    require(tr["batch_size"] > 0, "train.batch_size", tr["batch_size"], "a positive integer")
    require(tr["learning_rate"] > 0, "train.learning_rate", tr["learning_rate"], "a positive number")
    rules = cfg["compare"]["rules"]
    require(1 <= len(rules) <= 4, "compare.rules", rules, "one to four rule names")
    for i, name in enumerate(rules):
        construct("rule", {"type": name}, f"compare.rules[{i}]")


def run(cfg: dict, out_dir: Path) -> dict:
    m, t, tr = cfg["model"], cfg["task"], cfg["train"]
    key = jax.random.key(cfg["experiment"]["seed"])
    k_net, k_fit = jax.random.split(key)
    task = PatternGeneration(n_in=t["n_in"], n_out=t["n_out"], duration=t["duration"], dt=t["dt"],
                             seed=cfg["experiment"]["seed"])
    neuron = LIF(tau_mem=m["tau_mem"], v_th=m["v_th"], reset="subtract")
    net = RSNN(n_in=t["n_in"], n_rec=m["n_rec"], n_out=t["n_out"], neuron=neuron,
               surrogate=FastSigmoid(slope=m["slope"]), key=k_net, tau_out=m["tau_out"], in_scale=m["in_scale"])
    rules = cfg["compare"]["rules"]
    print(f"quickstart: RSNN {t['n_in']}-{m['n_rec']}-{t['n_out']} LIF, pattern generation over "
          f"{t['duration']:.0f} ms, {tr['steps']} Adam steps for each of: {', '.join(rules)}")
    summary, histories, trained = {"seconds": {}, "final": {}, "initial": {}}, {}, {}
    rows = []
    for name in rules:
        print(f"{name}:")
        start = time.perf_counter()
        trained[name], histories[name] = fit(net, construct("rule", {"type": name}, "compare.rules"), task,
                                             optax.adam(tr["learning_rate"]), steps=tr["steps"], key=k_fit,
                                             batch_size=tr["batch_size"], progress=True)
        summary["seconds"][name] = time.perf_counter() - start
        summary["final"][name] = {k: float(np.asarray(v)[-1]) for k, v in histories[name].items()}
        summary["initial"][name] = {k: float(np.asarray(v)[0]) for k, v in histories[name].items()}
        rows += io.history_rows(histories[name], rule=name)
        print("  final: " + "  ".join(f"{k} {v:.4g}" for k, v in summary["final"][name].items())
              + f"  ({summary['seconds'][name]:.0f} s)")
    io.write_rows(out_dir / "history.csv", rows)
    io.write_json(out_dir / "summary.json", summary)
    _plot(out_dir, task, trained, histories)
    return summary


def _plot(out_dir: Path, task, nets: dict, histories: dict) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib not installed: no plot; pip install 'simjax[plot]')")
        return

    batch = task.sample(jax.random.key(0), 1)
    fig, axes = plt.subplots(1, 1 + len(nets), figsize=(4.5 * (1 + len(nets)), 3.5))
    for name, history in histories.items():
        axes[0].semilogy(np.asarray(history["nmse"]), label=name)
    axes[0].set(xlabel="training step", ylabel="normalised MSE", title="learning curves")
    axes[0].legend()
    time_ms = np.arange(batch.inputs.shape[0]) * task.dt
    for ax, (name, net) in zip(axes[1:], nets.items()):
        out = simulate(net, batch.inputs, dt=task.dt)
        for k in range(out.readout.shape[-1]):
            line, = ax.plot(time_ms, np.asarray(batch.targets[:, 0, k]), "--")
            ax.plot(time_ms, np.asarray(out.readout[:, 0, k]), color=line.get_color())
        ax.set(xlabel="time (ms)", title=f"{name}: targets (dashed), outputs")
    fig.tight_layout()
    fig.savefig(out_dir / "quickstart.png", dpi=100)
    plt.close(fig)
