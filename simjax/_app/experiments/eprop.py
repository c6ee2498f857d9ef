"""e-prop experiments: the generic `train` experiment (model, task, rule and optimizer named in the
config, trained by `simjax.fit`) plus the figures of Bellec et al. (2020): learning curves, the
readout against the targets (or the decision logits) and a spike raster of a trained trial.

Sections are those of `train`, plus `[quick]`: dotted overrides applied by `simjax run --quick`
(e.g. `"task.duration" = 200.0`, `"train.steps" = 5`), so every config has a seconds-long form.

After training, the metrics are measured again on `train.eval_batch` held-out trials (`test_*`
in the summary); for `StoreRecall` also the held-out accuracy restricted to delays of at least
`k` periods (`test_accuracy_delay_ge_<k * period>ms`, drawn with `min_delay = k`).

Writes `history.csv`, `summary.json`, `params.eqx` and (with matplotlib) `eprop.png`.
"""

from __future__ import annotations

import time
from pathlib import Path

import equinox as eqx
import jax
import numpy as np

from ..._fit.fit import fit
from ..._simulate.simulate import simulate
from ...parameters._parameters import params
from ...tasks import StoreRecall
from .. import io
from ..config import ConfigError, require
from . import train as generic

DEFAULTS = {**generic.DEFAULTS, "experiment": {"name": "eprop", "seed": 0}, "rule": {"type": "eprop"}}
QUICK = {"quick": {"apply": True}}


def merge_config(raw: dict) -> dict:
    """`train`'s merge, after applying the `[quick]` overrides when `quick.apply` is set."""
    raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    quick = raw.pop("quick", {})
    if not isinstance(quick, dict):
        raise ConfigError(f"[quick] must be a table of dotted overrides, got {quick!r}")
    if quick.pop("apply", False):
        for dotted, value in quick.items():
            section, _, key = dotted.partition(".")
            if not key or section not in generic.SECTIONS:
                raise ConfigError(f"quick.{dotted!r}: expected 'section.key' with a section among "
                                  f"{', '.join(generic.SECTIONS)}")
            raw.setdefault(section, {})
            raw[section] = {**raw[section], key: value}
    raw.setdefault("rule", {"type": "eprop"})
    train = dict(raw.get("train", {}))
    eval_batch = train.pop("eval_batch", 256)
    require(isinstance(eval_batch, int) and not isinstance(eval_batch, bool) and eval_batch > 0, "train.eval_batch",
            eval_batch, "a positive integer (held-out trials)")
    cfg = generic.merge_config({**raw, "train": train})
    cfg["train"]["eval_batch"] = eval_batch
    return cfg


def validate(cfg: dict) -> None:
    generic.validate(cfg)


def run(cfg: dict, out_dir: Path) -> dict:
    key = jax.random.key(cfg["experiment"]["seed"])
    k_model, k_fit = jax.random.split(key)
    model, task, rule, optimizer = generic.build(cfg, k_model)
    tr = cfg["train"]
    print(f"eprop: {cfg['model']['type']} on {cfg['task']['type']} with {cfg['rule']['type']}, {tr['steps']} steps")
    start = time.perf_counter()
    model, history = fit(model, rule, task, optimizer, steps=tr["steps"], key=k_fit, batch_size=tr["batch_size"],
                         progress=True)
    seconds = time.perf_counter() - start
    final = {k: float(np.asarray(v)[-1]) for k, v in history.items()}
    final.update(held_out_metrics(model, task, jax.random.fold_in(key, 2), tr["eval_batch"]))
    io.write_rows(out_dir / "history.csv", io.history_rows(
        {k: np.asarray(v)[:: tr["log_every"]] for k, v in history.items()}, rule=cfg["rule"]["type"]))
    io.write_json(out_dir / "summary.json", {"final": final, "seconds": seconds})
    io.save_model(out_dir / "params.eqx", params(model))
    print("final: " + "  ".join(f"{k} {v:.4g}" for k, v in final.items()))
    _plot(out_dir, model, task, history, jax.random.fold_in(key, 1))
    return final


def held_out_metrics(model, task, key, batch_size: int) -> dict:
    """`task.metrics` on `batch_size` fresh trials, as `test_<name>`; for `StoreRecall`, also the
    accuracy over trials whose delay is at least `k` periods, for every possible `k`."""

    @eqx.filter_jit
    def evaluate(model, task, key):
        batch = task.sample(key, batch_size)
        return task.metrics(simulate(model, batch.inputs, dt=task.dt), batch)

    result = {f"test_{k}": float(v) for k, v in evaluate(model, task, key).items()}
    if isinstance(task, StoreRecall):
        for k in range(task.min_delay + 1, task.n_periods):
            longer = task.with_min_delay(k)
            ms = round(k * task.period_steps * task.dt)
            result[f"test_accuracy_delay_ge_{ms}ms"] = float(evaluate(model, longer, key)["accuracy"])
    return result


def _plot(out_dir: Path, model, task, history: dict, key) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib not installed: no plot)")
        return

    batch = task.sample(key, 1)
    out = simulate(model, batch.inputs, dt=task.dt)
    t_ms = np.arange(batch.inputs.shape[0]) * task.dt
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    metric = "nmse" if "nmse" in history else ("accuracy" if "accuracy" in history else "loss")
    axes[0].plot(np.asarray(history[metric]))
    if metric != "accuracy":
        axes[0].set_yscale("log")
    axes[0].set(xlabel="training step", ylabel=metric, title="learning curve")
    readout = np.asarray(out.readout[:, 0])
    targets = np.asarray(batch.targets)
    for k in range(readout.shape[-1]):
        line, = axes[1].plot(t_ms, readout[:, k], label=f"output {k}")
        if targets.ndim == 3:
            axes[1].plot(t_ms, targets[:, 0, k], "--", color=line.get_color())
    if batch.mask is not None and targets.ndim == 1:
        mask = np.asarray(batch.mask)
        axes[1].fill_between(t_ms, readout.min(), readout.max(), where=mask > 0, alpha=0.15, color="gray")
        axes[1].set_title(f"logits (label {int(targets[0])}; shaded: decision window)")
    else:
        axes[1].set_title("outputs (solid) and targets (dashed)")
    axes[1].set(xlabel="time (ms)")
    spikes = np.asarray(out.spikes[:, 0]) if out.spikes is not None else None
    if spikes is not None:
        inputs = np.asarray(batch.inputs[:, 0])
        t_in, i_in = np.nonzero(inputs)
        t_rec, i_rec = np.nonzero(spikes)
        axes[2].scatter(t_in * task.dt, i_in, s=1, c="gray", label="inputs")
        axes[2].scatter(t_rec * task.dt, i_rec + inputs.shape[1] + 2, s=1, c="k", label="network")
        axes[2].set(xlabel="time (ms)", ylabel="input / neuron index", title="spike raster")
    fig.tight_layout()
    fig.savefig(out_dir / "eprop.png", dpi=100)
    plt.close(fig)
