"""Randman: a recurrent LIF network learns the random-manifold spike-timing task (Zenke & Vogels 2021)
with a learning rule (exact surrogate gradients by default); scored on held-out trials (fresh
points on the same manifolds) drawn from a key the training never sees."""

from __future__ import annotations

import time
from pathlib import Path

import jax
import numpy as np
import optax

from ..._fit.fit import fit
from ...networks import RSNN
from ...neurons import LIF
from ...surrogates._surrogates import FastSigmoid
from ...tasks import Randman
from .. import io
from ..config import require
from ..registry import construct

DEFAULTS = {
    "experiment": {"name": "randman", "seed": 0},
    "task": {"n_classes": 10, "n_in": 20, "dim_manifold": 1, "alpha": 2.0, "n_spikes": 1, "duration": 100.0,
             "dt": 1.0, "step_frac": 0.5, "manifold_seed": 0, "readout": "max"},
    "model": {"n_rec": 128, "tau_mem": 10.0, "v_th": 1.0, "tau_out": 10.0, "in_scale": 3.0, "slope": 25.0},
    "train": {"rule": "exact", "steps": 2000, "learning_rate": 3e-3, "batch_size": 32},
    "evaluate": {"trials": 1024},
}
QUICK = {"task": {"n_classes": 4, "duration": 50.0}, "model": {"n_rec": 32},
         "train": {"steps": 150, "learning_rate": 1e-2}, "evaluate": {"trials": 512}}


def validate(cfg: dict) -> None:
    t, m, tr = cfg["task"], cfg["model"], cfg["train"]
    for key in ("n_classes", "n_in", "dim_manifold", "n_spikes"):
        require(t[key] > 0, f"task.{key}", t[key], "a positive integer")
    require(t["n_classes"] >= 2, "task.n_classes", t["n_classes"], "at least 2")
    for key in ("alpha", "duration", "dt"):
        require(t[key] > 0, f"task.{key}", t[key], "a positive number")
    require(0 < t["step_frac"] <= 1, "task.step_frac", t["step_frac"], "a number in (0, 1]")
    require(t["readout"] in ("max", "mean", "last"), "task.readout", t["readout"], "one of max, mean, last")
    require(m["n_rec"] > 0, "model.n_rec", m["n_rec"], "a positive integer")
    for key in ("tau_mem", "v_th", "tau_out", "in_scale", "slope"):
        require(m[key] > 0, f"model.{key}", m[key], "a positive number")
    for key in ("steps", "batch_size"):
        require(tr[key] > 0, f"train.{key}", tr[key], "a positive integer")
    require(tr["learning_rate"] > 0, "train.learning_rate", tr["learning_rate"], "a positive number")
    require(cfg["evaluate"]["trials"] > 0, "evaluate.trials", cfg["evaluate"]["trials"], "a positive integer")
    construct("rule", {"type": tr["rule"]}, "train.rule")
    _task(cfg)


def _task(cfg: dict) -> Randman:
    t = cfg["task"]
    return Randman(n_classes=t["n_classes"], n_in=t["n_in"], dim_manifold=t["dim_manifold"], alpha=t["alpha"],
                   n_spikes=t["n_spikes"], duration=t["duration"], dt=t["dt"], step_frac=t["step_frac"],
                   seed=t["manifold_seed"], readout=t["readout"])


def run(cfg: dict, out_dir: Path) -> dict:
    t, m, tr = cfg["task"], cfg["model"], cfg["train"]
    task = _task(cfg)
    k_net, k_fit, k_eval = jax.random.split(jax.random.key(cfg["experiment"]["seed"]), 3)
    net = RSNN(n_in=t["n_in"], n_rec=m["n_rec"], n_out=t["n_classes"], neuron=LIF(tau_mem=m["tau_mem"], v_th=m["v_th"]),
               surrogate=FastSigmoid(slope=m["slope"]), key=k_net, tau_out=m["tau_out"], in_scale=m["in_scale"])
    rule = construct("rule", {"type": tr["rule"]}, "train.rule")
    print(f"randman: {t['n_classes']} classes, {t['n_in']} inputs, D = {t['dim_manifold']}; RSNN with "
          f"{m['n_rec']} LIF neurons, {tr['steps']} Adam steps of {tr['rule']}")
    start = time.perf_counter()
    trained, history = fit(net, rule, task, optax.adam(tr["learning_rate"]), steps=tr["steps"], key=k_fit,
                           batch_size=tr["batch_size"], progress=True)
    seconds = time.perf_counter() - start
    held_out = task.sample(k_eval, cfg["evaluate"]["trials"])
    scores = {k: float(v) for k, v in task.metrics(task.forward(trained, held_out), held_out).items()}
    summary = {"validation_accuracy": scores["accuracy"], "validation_loss": scores["loss"],
               "chance": 1.0 / t["n_classes"],
               "final_train": {k: float(np.asarray(v)[-1]) for k, v in history.items()}, "seconds": seconds}
    io.write_rows(out_dir / "history.csv", io.history_rows(history, rule=tr["rule"]))
    io.write_json(out_dir / "summary.json", summary)
    print(f"held-out accuracy {scores['accuracy']:.3f} (chance {summary['chance']:.3f}), {seconds:.0f} s")
    return summary
