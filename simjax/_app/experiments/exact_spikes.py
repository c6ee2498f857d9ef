r"""Smooth exact gradient descent in spiking networks (Klos & Memmesheimer, Phys. Rev. Lett. 2025):
QIF (theta) neurons with pseudodynamics after the trial end.

`demo.kind` selects the study:

- `single_neuron`: one neuron, one input spike of weight `w`. Along a line in weight space the
  spike leaves the trial through `t1`; the loss `(t - t_target)^2` on the first spike time
  (pseudospike when silent) is continuous for QIF and jumps for LIF (exponential synapses, same
  loss, same pseudodynamics). Then gradient descent from a silent neuron adds the missing spike.
  Writes `loss_along_line.png` (the figure), `line.csv` and `summary.json`.
- `recurrent`: `N` recurrent QIF neurons, silent at the start, learn one target spike time
  each (RMS error relative to `t1` in `summary.json`, learning curve `history.csv`).
- `yinyang`: the Yin-Yang data set with a `5-H-3` network and time-to-first-spike readout,
  trained three ways: QIF with exact gradients and pseudodynamics from a network with no output
  spikes (`qif_exact`), LIF with exponential synapses and exact event-driven gradients
  (`lif_exact`, the EventProp gradient; trained with Göltz et al. 2021's time regulariser, a
  sharper softmax, cosine learning-rate decay and a weak pseudo drive: the `lif_*` keys), and
  clock-driven LIF with surrogate gradients and a max-over-time readout (`lif_surrogate`).
  `summary.json` holds the comparison table: test accuracy at the epoch chosen on the validation
  set, seconds per epoch (after compilation), compile time, fraction of steps whose
  gradient had a non-finite entry (those steps are skipped); `history.csv` per-epoch metrics.
"""

from __future__ import annotations

import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..._fit.fit import fit
from ..._simulate.simulate import simulate
from ..._spike_train import SpikeTrain
from ...losses._spike_times import spike_time_loss
from ...networks import RSNN, FeedForward, SpikingFeedForward
from ...neurons import LIF, QIF
from ...parameters._parameters import partition
from ...rules._exact import Exact
from ...surrogates._surrogates import FastSigmoid
from ...tasks._base import Batch
from ...tasks._spike_targets import SpikeTimeTargets
from ...tasks._yin_yang import YinYang
from .. import io
from ..config import require

KINDS = ("single_neuron", "recurrent", "yinyang")
MODELS = ("qif_exact", "lif_exact", "lif_surrogate")

DEFAULTS = {
    "experiment": {"name": "exact_spikes", "seed": 0},
    "demo": {"kind": "yinyang", "t1": 2.0, "pseudo_drive": 10.0, "qif_bias": -1.0, "lif_tau_syn": 0.5},
    "single_neuron": {"t_input": 0.5, "target": 1.5, "qif_w": [2.0, 2.3], "lif_w": [3.0, 6.0], "points": 401,
                      "w_start": 1.5, "steps": 300, "learning_rate": 0.05},
    "recurrent": {"n": 50, "n_in": 4, "steps": 300, "learning_rate": 0.03, "in_scale": 1.0, "rec_scale": 0.2},
    "yinyang": {"models": list(MODELS), "n_train": 5000, "n_test": 1000, "hidden": 100, "epochs": 30,
                "batch_size": 50, "learning_rate": 5e-3, "tau": 0.25, "missing_weight": 1.0,
                "qif_scale": [4.0, 1.0], "lif_scale": [4.0, 1.0], "lif_mean": [1.5, 0.4],
                "lif_exact_learning_rate": 5e-3, "lif_decay": True, "lif_tau": 0.1,
                "lif_early_weight": 0.01, "lif_early_tau": 0.5, "lif_pseudo_drive": 1.2, "dt": 0.02,
                "slope": 25.0},
}
QUICK = {
    "single_neuron": {"points": 51, "steps": 100},
    "recurrent": {"n": 6, "steps": 60},
    "yinyang": {"n_train": 300, "n_test": 150, "hidden": 12, "epochs": 2, "batch_size": 50,
                "models": ["qif_exact", "lif_surrogate"]},
}


def validate(cfg: dict) -> None:
    d, s, y = cfg["demo"], cfg["single_neuron"], cfg["yinyang"]
    require(d["kind"] in KINDS, "demo.kind", d["kind"], " | ".join(KINDS))
    require(d["t1"] > 0, "demo.t1", d["t1"], "a positive number")
    require(d["qif_bias"] + d["pseudo_drive"] > 0, "demo.pseudo_drive", d["pseudo_drive"],
            f"a number > -demo.qif_bias = {-d['qif_bias']} (every neuron must fire after t1)")
    require(d["lif_tau_syn"] > 0, "demo.lif_tau_syn", d["lif_tau_syn"], "a positive number")
    require(0 <= s["t_input"] < d["t1"], "single_neuron.t_input", s["t_input"], "a time in [0, demo.t1)")
    for key in ("qif_w", "lif_w"):
        require(len(s[key]) == 2 and s[key][0] < s[key][1], f"single_neuron.{key}", s[key],
                "[low, high] with low < high")
    for section, keys in (("single_neuron", ("points", "steps")), ("recurrent", ("n", "n_in", "steps")),
                          ("yinyang", ("n_train", "n_test", "hidden", "epochs", "batch_size"))):
        for key in keys:
            v = cfg[section][key]
            require(isinstance(v, int) and v >= 2, f"{section}.{key}", v, "an integer >= 2")
    for section, key in (("single_neuron", "learning_rate"), ("recurrent", "learning_rate"),
                         ("yinyang", "learning_rate"), ("yinyang", "lif_exact_learning_rate"), ("yinyang", "tau"),
                         ("yinyang", "lif_tau"), ("yinyang", "lif_early_tau"), ("yinyang", "dt"), ("yinyang", "slope")):
        require(cfg[section][key] > 0, f"{section}.{key}", cfg[section][key], "a positive number")
    require(y["batch_size"] <= y["n_train"], "yinyang.batch_size", y["batch_size"], "at most yinyang.n_train")
    require(len(y["models"]) > 0 and all(m in MODELS for m in y["models"]), "yinyang.models", y["models"],
            "a non-empty list of " + " | ".join(MODELS))
    for key in ("qif_scale", "lif_scale"):
        require(len(y[key]) == 2 and all(v > 0 for v in y[key]), f"yinyang.{key}", y[key],
                "two positive numbers (hidden, output layer)")
    require(y["lif_early_weight"] >= 0, "yinyang.lif_early_weight", y["lif_early_weight"], "a number >= 0")
    require(y["lif_pseudo_drive"] > 1.0, "yinyang.lif_pseudo_drive", y["lif_pseudo_drive"],
            "a number > 1 (LIF with v_th = 1 must fire after t1)")
    require(isinstance(y["lif_decay"], bool), "yinyang.lif_decay", y["lif_decay"], "true or false")
    require(len(y["lif_mean"]) == 2, "yinyang.lif_mean", y["lif_mean"], "two numbers (hidden, output layer)")


def run(cfg: dict, out_dir: Path) -> dict:
    kind = cfg["demo"]["kind"]
    runner = {"single_neuron": run_single_neuron, "recurrent": run_recurrent, "yinyang": run_yinyang}[kind]
    summary = runner(cfg, out_dir)
    io.write_json(out_dir / "summary.json", summary)
    return summary


# ---------------------------------------------------------------------------------------------- single neuron
def _neurons(cfg):
    d = cfg["demo"]
    return {"qif": QIF(bias=d["qif_bias"]), "lif": LIF(tau_mem=1.0, tau_syn=d["lif_tau_syn"], v_th=1.0)}


def _single_loss(neuron, cfg):
    d, s = cfg["demo"], cfg["single_neuron"]
    x = SpikeTrain(jnp.asarray([s["t_input"]]), jnp.asarray([0]), n=1)

    def loss(w):
        net = SpikingFeedForward((1, 1), neuron, weights=[jnp.reshape(w, (1, 1))])
        t = simulate(net, x, method="event", t1=d["t1"], pseudo_drive=d["pseudo_drive"]).info["first_spike_times"][-1]
        return spike_time_loss(t[:, None], jnp.full((1, 1), s["target"]), t_missing=2 * d["t1"]), t[0]

    return loss


def run_single_neuron(cfg: dict, out_dir: Path) -> dict:
    d, s = cfg["demo"], cfg["single_neuron"]
    summary, rows, curves = {"t1": d["t1"], "target": s["target"]}, [], {}
    for name, neuron in _neurons(cfg).items():
        loss = jax.jit(jax.vmap(_single_loss(neuron, cfg)))
        lo, hi = s[f"{name}_w"]
        entry = {}
        grids = [np.linspace(lo, hi, points) for points in (s["points"], 4 * s["points"] - 3)]
        all_values, all_times = (np.asarray(a) for a in loss(jnp.asarray(np.concatenate(grids))))  # one compile
        cut = [len(grids[0])]
        for ws, values, times in zip(grids, np.split(all_values, cut), np.split(all_times, cut)):
            points = len(ws)
            entry[f"max_jump_{points}"] = float(np.max(np.abs(np.diff(values))))
            if points == s["points"]:
                curves[name] = (ws, values, times)
                rows += [{"neuron": name, "w": float(w), "loss": float(v), "first_spike_time": float(t)}
                         for w, v, t in zip(ws, values, times)]
        jumps = list(entry.values())
        entry["jump_ratio_on_4x_finer_grid"] = jumps[1] / jumps[0]
        entry["loss_scale"] = float(np.max(curves[name][1]) - np.min(curves[name][1]))
        summary[name] = entry
    summary["addition"] = _spike_addition(cfg)
    io.write_rows(out_dir / "line.csv", rows)
    _plot_line(out_dir, curves, summary, d["t1"])
    for name in ("qif", "lif"):
        jump = summary[name][f"max_jump_{s['points']}"]
        print(f"  {name}: max loss jump between neighbouring weights {jump:.3g} "
              f"(4x finer grid: x{summary[name]['jump_ratio_on_4x_finer_grid']:.2f})")
    a = summary["addition"]
    print(f"  spike addition (QIF): first spike {a['t_start']:.3f} -> {a['t_end']:.4f} (target {s['target']}), "
          f"loss non-increasing: {a['monotone']}")
    return summary


def _spike_addition(cfg):
    s = cfg["single_neuron"]
    loss = _single_loss(_neurons(cfg)["qif"], cfg)
    step = jax.jit(jax.value_and_grad(lambda w: loss(w)[0]))
    w = jnp.asarray(s["w_start"])
    t_start = float(loss(w)[1])
    history = []
    for _ in range(s["steps"]):
        value, g = step(w)
        history.append(float(value))
        w = w - s["learning_rate"] * g
    t_end = float(loss(w)[1])
    diffs = np.diff(history)
    return {"w_start": s["w_start"], "w_end": float(w), "t_start": t_start, "t_end": t_end,
            "loss_start": history[0], "loss_end": history[-1],
            "monotone": bool(np.all(diffs <= 1e-12 * max(1.0, history[0]))), "loss_history": history}


def _plot_line(out_dir, curves, summary, t1):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib not installed: no plots)")
        return
    fig, axes = plt.subplots(2, 2, figsize=(9, 6), sharex="col")
    for col, name in enumerate(("qif", "lif")):
        ws, values, times = curves[name]
        inside = times <= t1
        axes[0, col].plot(ws, values, ".-", ms=2, lw=0.8)
        axes[0, col].set(title=f"{name.upper()}: loss along a line in weight space", ylabel="(t - t_target)^2")
        axes[1, col].plot(ws[inside], times[inside], ".", ms=2, label="spike (t <= t1)")
        axes[1, col].plot(ws[~inside], times[~inside], ".", ms=2, label="pseudospike (t > t1)")
        axes[1, col].axhline(t1, color="0.6", lw=0.8)
        axes[1, col].set(xlabel="input weight w", ylabel="first spike time")
        axes[1, col].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "loss_along_line.png", dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------- recurrent
def run_recurrent(cfg: dict, out_dir: Path) -> dict:
    d, r = cfg["demo"], cfg["recurrent"]
    n, t1 = r["n"], d["t1"]
    key = jax.random.key(cfg["experiment"]["seed"])
    t_in = jnp.linspace(0.05, 0.35, r["n_in"]) * t1
    x = SpikeTrain(t_in, jnp.arange(r["n_in"]), n=r["n_in"])
    targets = jnp.linspace(0.4, 0.8, n)[:, None] * t1
    net = RSNN(n_in=r["n_in"], n_rec=n, n_out=1, neuron=QIF(bias=d["qif_bias"]), key=key, in_scale=r["in_scale"],
               rec_scale=r["rec_scale"], tau_out=1.0, trainable=("w_in", "w_rec"))
    budget = 3 * n + r["n_in"]
    task = SpikeTimeTargets(x, targets, t1=t1, pseudo_drive=d["pseudo_drive"], max_events=budget,
                            max_pseudospikes=budget)
    batch = task.sample(None, 1)
    times_of = lambda net: task.spike_times(task.forward(net, batch))[0]
    opt = optax.adam(optax.cosine_decay_schedule(r["learning_rate"], r["steps"], 0.02))
    train = eqx.filter_jit(lambda net: fit(net, Exact(), task, opt, steps=r["steps"], key=key, batch_size=1))

    start = time.perf_counter()
    t_init = np.asarray(times_of(net))
    trained, history = train(net)
    losses = history["loss"]
    times = np.asarray(times_of(trained))
    errors = np.abs(times - np.asarray(targets))
    rms = float(np.sqrt(np.mean(errors**2)))
    summary = {"n": n, "t1": t1, "seconds": time.perf_counter() - start,
               "spiking_at_start": int(np.sum(t_init <= t1)), "spiking_at_end": int(np.sum(times <= t1)),
               "rms_error": rms, "rms_error_over_t1": rms / t1, "median_error_over_t1": float(np.median(errors) / t1),
               "target_rms_below_1pct": bool(rms < 0.01 * t1)}
    io.write_rows(out_dir / "history.csv", [{"step": i, "loss": float(v)} for i, v in enumerate(np.asarray(losses))])
    print(f"  N={n}: neurons spiking {summary['spiking_at_start']} -> {summary['spiking_at_end']}, RMS timing error "
          f"{100 * summary['rms_error_over_t1']:.2f} % of t1 (median {100 * summary['median_error_over_t1']:.2f} %)")
    return summary


# ---------------------------------------------------------------------------------------------- Yin-Yang
def yinyang_setup(cfg: dict, name: str, key):
    """`(model, task)` for one of `MODELS`."""
    d, y = cfg["demo"], cfg["yinyang"]
    seed = cfg["experiment"]["seed"]
    common = dict(seed=seed, n_train=y["n_train"], n_test=y["n_test"], t1=d["t1"], tau=y["tau"],
                  missing_weight=y["missing_weight"], dt=y["dt"])
    sizes = (5, y["hidden"], 3)
    lif = LIF(tau_mem=1.0, tau_syn=d["lif_tau_syn"], v_th=1.0)
    if name == "qif_exact":
        task = YinYang(pseudo_drive=d["pseudo_drive"], **common)
        model = SpikingFeedForward(sizes, QIF(bias=d["qif_bias"]), key=key, scale=y["qif_scale"])
    elif name == "lif_exact":
        task = YinYang(pseudo_drive=y["lif_pseudo_drive"], early_weight=y["lif_early_weight"],
                       early_tau=y["lif_early_tau"], **{**common, "tau": y["lif_tau"]})
        model = SpikingFeedForward(sizes, lif, key=key, scale=y["lif_scale"], mean=y["lif_mean"])
    else:
        task = YinYang(pseudo_drive=None, **common)
        model = FeedForward(sizes, lif, FastSigmoid(slope=y["slope"]), key=key, scale=y["lif_scale"], tau_out=1.0)
    return model, task


def learning_rate(cfg: dict, name: str):
    """Adam's learning rate for model `name`: a number, or for `lif_exact` with `lif_decay` a
    cosine decay over all steps to 5 % of `lif_exact_learning_rate`."""
    y = cfg["yinyang"]
    if name != "lif_exact":
        return y["learning_rate"]
    if not y["lif_decay"]:
        return y["lif_exact_learning_rate"]
    steps = y["epochs"] * (y["n_train"] // y["batch_size"])
    return optax.cosine_decay_schedule(y["lif_exact_learning_rate"], steps, 0.05)


def train_yinyang(model, task, *, epochs: int, batch_size: int, learning_rate: float, key, log=print):
    """Adam on exact (or surrogate) gradients, one jitted epoch (shuffled mini-batches) at a time.

    **Returns:** `(model, history)`; history has one row per epoch: train loss, validation and test
    accuracy and loss, fraction of silent test trials, seconds, non-finite gradient steps (skipped);
    `selected` is the epoch with the best validation accuracy (the first, on ties) with its test
    accuracy: the figure to report (the test set never chooses anything).
    """
    rule = Exact()
    opt = optax.adam(learning_rate)
    n = task.train_labels.shape[0]
    steps = n // batch_size

    @eqx.filter_jit
    def epoch(model, opt_state, key):
        order = jax.random.permutation(key, n)[: steps * batch_size].reshape(steps, batch_size)

        def one(carry, idx):
            model, state = carry
            batch = Batch(inputs=task.encode(task.train_xy[idx]), targets=task.train_labels[idx])
            loss, grads, _ = rule(model, task, batch, None)
            finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))
            grads = jax.tree.map(lambda g: jnp.where(finite, g, 0.0), grads)
            updates, new_state = opt.update(grads, state, partition(model)[0])
            model = eqx.apply_updates(model, updates)
            state = jax.tree.map(lambda a, b: jnp.where(finite, a, b), new_state, state)
            return (model, state), (loss, ~finite)

        (model, opt_state), (losses, bad) = jax.lax.scan(one, (model, opt_state), order)
        return model, opt_state, jnp.mean(losses), jnp.sum(bad)

    test, validation = task.test_set(), task.validation_set()
    metrics_of = eqx.filter_jit(lambda m, batch: task.metrics(task.forward(m, batch), batch))
    evaluate = lambda m: metrics_of(m, test)  # (the sets as arguments, not constants to fold)
    opt_state = opt.init(partition(model)[0])
    history = []
    initial = {k: float(v) for k, v in evaluate(model).items()}
    log(f"    start: test accuracy {initial['accuracy']:.3f}, silent {initial['silent']:.3f}")
    for e in range(epochs):
        start = time.perf_counter()
        model, opt_state, loss, bad = epoch(model, opt_state, jax.random.fold_in(key, e))
        loss = float(loss)
        seconds = time.perf_counter() - start
        metrics = {k: float(v) for k, v in evaluate(model).items()}
        val = {k: float(v) for k, v in metrics_of(model, validation).items()}
        row = {"epoch": e + 1, "train_loss": loss, "validation_accuracy": val["accuracy"],
               "test_accuracy": metrics["accuracy"], "test_loss": metrics["loss"], "test_silent": metrics["silent"],
               "seconds": seconds, "nonfinite_steps": int(bad), "steps": steps}
        history.append(row)
        log(f"    epoch {e + 1:3d}: train loss {loss:.4f}  test accuracy {metrics['accuracy']:.3f}  "
            f"({seconds:.2f} s, {int(bad)} non-finite)")
    best = max(history, key=lambda r: r["validation_accuracy"]) if history else None
    selected = None if best is None else {"epoch": best["epoch"], "validation_accuracy": best["validation_accuracy"],
                                          "test_accuracy": best["test_accuracy"]}
    return model, {"initial": initial, "epochs": history, "selected": selected}


def run_yinyang(cfg: dict, out_dir: Path) -> dict:
    y = cfg["yinyang"]
    key = jax.random.key(cfg["experiment"]["seed"])
    table, rows = {}, []
    print(f"exact_spikes (Yin-Yang): 5-{y['hidden']}-3, {y['n_train']} train / {y['n_test']} test, "
          f"{y['epochs']} epochs of batch {y['batch_size']}, models {', '.join(y['models'])}")
    for name in y["models"]:
        print(f"  {name}:")
        model, task = yinyang_setup(cfg, name, jax.random.fold_in(key, 1))
        _, hist = train_yinyang(model, task, epochs=y["epochs"], batch_size=y["batch_size"],
                                learning_rate=learning_rate(cfg, name), key=jax.random.fold_in(key, 2))
        epochs = hist["epochs"]
        later = [r["seconds"] for r in epochs[1:]] or [epochs[0]["seconds"]]
        steps = sum(r["steps"] for r in epochs)
        table[name] = {"test_accuracy": hist["selected"]["test_accuracy"],
                       "selected_epoch": hist["selected"]["epoch"],
                       "validation_accuracy": hist["selected"]["validation_accuracy"],
                       "final_test_accuracy": epochs[-1]["test_accuracy"],
                       "initial_test_accuracy": hist["initial"]["accuracy"],
                       "initial_silent": hist["initial"]["silent"], "final_silent": epochs[-1]["test_silent"],
                       "seconds_per_epoch": float(np.median(later)),
                       "first_epoch_seconds": epochs[0]["seconds"],
                       "nonfinite_gradient_fraction": sum(r["nonfinite_steps"] for r in epochs) / steps}
        rows += [{"model": name, **r} for r in epochs]
    io.write_rows(out_dir / "history.csv", rows)
    print(f"  {'model':<14} {'test acc':>8} {'epoch':>5} {'s/epoch':>8} {'non-finite':>10}")
    for name, e in table.items():
        print(f"  {name:<14} {e['test_accuracy']:8.3f} {e['selected_epoch']:5d} {e['seconds_per_epoch']:8.2f} "
              f"{e['nonfinite_gradient_fraction']:10.3f}")
    print("  (test accuracy at the epoch with the best validation accuracy)")
    return {"table": table, "config": y}
