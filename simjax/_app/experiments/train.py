"""The generic experiment: one model, task, rule and optimizer named in a config, trained by `fit`.

```toml
[experiment]
name = "train"
[model]            # type = rsnn | rate_rnn | feedforward, plus its keywords
type = "rsnn"
n_rec = 64
neuron = { type = "lif", tau_mem = 20.0 }
surrogate = { type = "fast_sigmoid", slope = 25.0 }
[task]             # type = pattern_generation | digits | teacher_student | ...
type = "pattern_generation"
[rule]             # type = exact | truncated_bptt | feedback_alignment | ...
type = "exact"
[optimizer]        # type = adam | sgd | adamw | rmsprop, plus optax keywords;
                   # clip_norm = c clips the update's global norm to c first (optax.clip_by_global_norm)
type = "adam"
learning_rate = 3e-3
[train]
steps = 200
batch_size = 8
log_every = 1
[sweep]            # used by `simjax sweep`: seeds and axes as dotted keys
seeds = 4
"optimizer.learning_rate" = [1e-3, 3e-3]
```
The model's `n_in`/`n_out` default to the task's when the task has them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
import optax

from ..._fit.fit import fit
from ...parameters._parameters import params
from .. import io
from ..config import ConfigError, merge, require
from ..registry import construct

SECTIONS = ("experiment", "model", "task", "rule", "optimizer", "train", "sweep")
DEFAULTS = {
    "experiment": {"name": "train", "seed": 0},
    "model": {"type": "rsnn"},
    "task": {"type": "pattern_generation"},
    "rule": {"type": "exact"},
    "optimizer": {"type": "adam", "learning_rate": 1e-3},
    "train": {"steps": 100, "batch_size": 8, "log_every": 1},
    "sweep": {"seeds": 1},
}
QUICK = {"train": {"steps": 5}}
FREE_FORM = ("model", "task", "rule", "optimizer", "sweep")


def validate(cfg: dict) -> None:
    tr = cfg["train"]
    require(isinstance(tr["steps"], int) and tr["steps"] > 0, "train.steps", tr["steps"], "a positive integer")
    require(isinstance(tr["batch_size"], int) and tr["batch_size"] > 0, "train.batch_size", tr["batch_size"],
            "a positive integer")
    require(isinstance(tr["log_every"], int) and tr["log_every"] > 0, "train.log_every", tr["log_every"],
            "a positive integer")
    build(cfg, jax.random.key(0))  # constructs everything once: unknown names/keys/values fail here


def build(cfg: dict, key: Any) -> tuple[Any, Any, Any, Any]:
    """`(model, task, rule, optimizer)` from a merged config (values may be traced arrays)."""
    task = construct("task", cfg["task"], "task")
    spec = dict(cfg["model"])
    extra: dict[str, Any] = {"key": key}
    for sub, kind in (("neuron", "neuron"), ("surrogate", "surrogate")):
        if sub in spec:
            extra[sub] = construct(kind, spec.pop(sub), f"model.{sub}")
    for size in ("n_in", "n_out"):
        if size not in spec and hasattr(task, size):
            extra[size] = getattr(task, size)
    model = construct("model", spec, "model", **extra)
    rule = construct("rule", cfg["rule"], "rule")
    return model, task, rule, build_optimizer(cfg["optimizer"])


def build_optimizer(spec: dict):
    """An optax optimizer from `{type, clip_norm?, **kwargs}` (`clip_norm`: global-norm clipping of the
    update before the optimizer)."""
    spec = dict(spec)
    clip = spec.pop("clip_norm", None)
    optimizer = construct("optimizer", spec, "optimizer")
    if clip is None:
        return optimizer
    concrete = isinstance(clip, (bool, str, int, float))  # (a traced value, in a sweep, is not checked)
    require(not concrete or (not isinstance(clip, (bool, str)) and clip > 0), "optimizer.clip_norm", clip,
            "a positive number")
    return optax.chain(optax.clip_by_global_norm(clip), optimizer)


def run(cfg: dict, out_dir: Path) -> dict:
    key = jax.random.key(cfg["experiment"]["seed"])
    k_model, k_fit = jax.random.split(key)
    model, task, rule, optimizer = build(cfg, k_model)
    tr = cfg["train"]
    print(f"train: {cfg['model']['type']} on {cfg['task']['type']} with {cfg['rule']['type']}, {tr['steps']} steps")
    start = time.perf_counter()
    model, history = fit(model, rule, task, optimizer, steps=tr["steps"], key=k_fit,
                         batch_size=tr["batch_size"], progress=True)
    final = {k: float(np.asarray(v)[-1]) for k, v in history.items()}
    io.write_rows(out_dir / "history.csv", io.history_rows(
        {k: np.asarray(v)[:: tr["log_every"]] for k, v in history.items()}, rule=cfg["rule"]["type"]))
    io.write_json(out_dir / "summary.json", {"final": final, "seconds": time.perf_counter() - start})
    io.save_model(out_dir / "params.eqx", params(model))
    print("final: " + "  ".join(f"{k} {v:.4g}" for k, v in final.items()))
    return final


def merge_config(raw: dict) -> dict:
    """Merges a raw config with `DEFAULTS`: fixed sections are checked key by key, free-form
    sections (model/task/rule/optimizer/sweep) are validated by construction."""
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"unknown section [{unknown[0]}]; allowed sections: {', '.join(SECTIONS)}")
    out = {}
    for section in SECTIONS:
        given = raw.get(section, {})
        if not isinstance(given, dict):
            raise ConfigError(f"[{section}] must be a table, got {given!r}")
        if section in FREE_FORM:
            base = dict(DEFAULTS[section])
            if "type" in given and section != "sweep" and given["type"] != base.get("type"):
                base = {k: v for k, v in base.items() if k == "type"}
            out[section] = {**base, **given}
        else:
            out[section] = merge(DEFAULTS[section], given, section)
    return out
