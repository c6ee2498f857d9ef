r"""`sweep`: the cartesian product seeds x hyper-parameters x tasks x rules as few compiled programs.

Axes come from a config's `[sweep]` table: `seeds` (a count or a list) and dotted keys with lists
of values (`"optimizer.learning_rate" = [1e-3, 3e-3]`, `"rule.type" = ["exact", "feedback_alignment"]`).

* Runs are grouped by their non-float values (rule/task names, sizes: anything that changes the
  program); float values that can be traced are `vmap`-ped together with the seeds, so each group
  is one compiled program whose leading run axis is sharded over every device
  (`jax.sharding.Mesh` over `jax.devices()`; multi-host after `jax.distributed.initialize()`).
  A float axis that cannot be traced (it sets a shape) becomes a grouping axis automatically.
* Each run's PRNG key is `jax.random.key(seed)` (model from `fold_in(key, 0)`, training from
  `fold_in(key, 1)`), so a run's result depends neither on the device count nor on batching.
* Work is split into chunks of runs; each finished chunk is written atomically (its rows and its
  final parameters) before the next starts. Re-running with the same output folder resumes, skipping
  finished chunks; a folder written by a different config is refused.
* Results: one tidy table (a row per run x logged step x metric, every swept value a column) as
  `results.csv` (and `results.parquet` with pyarrow), `summary.json` (final metrics per run),
  `config.json` (config + hash), `params/` (equinox serialisation per chunk).
"""

from __future__ import annotations

import copy
import csv
import itertools
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from .._fit.fit import fit
from .._memory import available_memory
from .._table import Table
from ..parameters._parameters import params
from . import io
from .config import ConfigError, digest, load
from .configured import experiment_named, merged
from .experiments import train as generic
from .point_sweep import run_points

RESERVED = ("seeds", "chunk_runs", "distributed")


def _set(cfg: dict, dotted: str, value: Any) -> None:
    *path, last = dotted.split(".")
    node = cfg
    for p in path:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"sweep axis {dotted!r}: {p!r} is not a table")
    node[last] = value


def axes_of(cfg: dict) -> tuple[list[int], dict[str, list]]:
    """`(seeds, {dotted_key: values})` from a merged config's `[sweep]` table."""
    spec = dict(cfg.get("sweep", {}))
    seeds = spec.pop("seeds", 1)
    for k in RESERVED:
        spec.pop(k, None)
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds <= 0:
            raise ConfigError(f"sweep.seeds = {seeds!r} is not allowed: expected a positive integer or a list of ints")
        base = cfg["experiment"].get("seed", 0)
        seeds = list(range(base, base + seeds))
    elif not (isinstance(seeds, list) and seeds and all(isinstance(s, int) for s in seeds)):
        raise ConfigError(f"sweep.seeds = {seeds!r} is not allowed: expected a positive integer or a list of ints")
    axes = {}
    for k, values in spec.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"sweep.{k} = {values!r} is not allowed: expected a non-empty list of values")
        if k.split(".")[0] not in ("model", "task", "rule", "optimizer", "train"):
            raise ConfigError(f"sweep axis {k!r} must start with model., task., rule., optimizer. or train.")
        axes[k] = values
    return seeds, axes


@dataclass
class Group:
    """Runs sharing one compiled program: static values fixed, float axes and seeds vmapped."""

    static: dict[str, Any]
    traced: list[str]
    runs: list[dict]  # each: {"run": id, "seed": s, **axis values}


def plan(cfg: dict, build: Any) -> tuple[list[Group], dict[str, list]]:
    """Splits the grid into groups; float axes that cannot be traced become static."""
    seeds, axes = axes_of(cfg)
    names = list(axes)
    for k, values in axes.items():  # every value of every axis is built once, concretely
        for v in values:
            c = copy.deepcopy(cfg)
            _set(c, k, v)
            try:
                build(c, jax.random.key(0))
            except ConfigError as err:
                raise ConfigError(f"sweep.{k} value {v!r}: {err}") from None
    grid = [dict(zip(names, combo)) for combo in itertools.product(*axes.values())] or [{}]
    runs = [{"run": i, "seed": s, **point} for i, (point, s) in enumerate(itertools.product(grid, seeds))]
    floats = [k for k in names if all(isinstance(v, float) for v in axes[k])]
    traceable = [k for k in floats if _traceable(cfg, build, k, axes[k][0])]
    groups: dict[tuple, Group] = {}
    for r in runs:
        static = {k: r[k] for k in names if k not in traceable}
        gkey = tuple(json.dumps(static[k]) for k in sorted(static))
        groups.setdefault(gkey, Group(static=static, traced=traceable, runs=[])).runs.append(r)
    return list(groups.values()), axes


def _traceable(cfg: dict, build: Any, dotted: str, example: float) -> bool:
    def f(x):
        c = copy.deepcopy(cfg)
        _set(c, dotted, x)
        return build(c, jax.random.key(0))

    try:
        eqx.filter_eval_shape(f, jnp.asarray(example))
        return True
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerBoolConversionError,
            jax.errors.TracerIntegerConversionError, TypeError):
        return False


def _train_fn(cfg: dict, group: Group, build: Any):
    steps, batch_size = cfg["train"]["steps"], cfg["train"]["batch_size"]
    base = copy.deepcopy(cfg)
    for k, v in group.static.items():
        _set(base, k, v)

    def one(seed, values):
        c = copy.deepcopy(base)
        for k, v in values.items():
            _set(c, k, v)
        key = jax.random.key(seed)
        model, task, rule, optimizer = build(c, jax.random.fold_in(key, 0))
        model, history = fit(model, rule, task, optimizer, steps=steps, key=jax.random.fold_in(key, 1),
                             batch_size=batch_size)
        return params(model), history

    return one


def _checked_compile(train: Any, args: tuple, n_runs: int, chunk_runs: int) -> Any:
    """`train` compiled for `args`; raises `MemoryError` before anything runs when XLA's memory
    analysis of the chunk exceeds what the device has available, naming the knob to turn."""
    executable = train.lower(*args).compile()
    analysis = executable.memory_analysis()
    if analysis is not None:
        need = analysis.temp_size_in_bytes + analysis.argument_size_in_bytes + analysis.output_size_in_bytes
        available = available_memory()
        if need > 0.9 * available:
            raise MemoryError(f"sweep: a chunk of {n_runs} runs needs {need / 2**30:.2f} GiB, more than the "
                              f"{available / 2**30:.2f} GiB available; lower [sweep] chunk_runs (now {chunk_runs}) "
                              "or the batch size")
    return executable


def _shard(tree: Any, n_runs: int):
    """Pads the run axis to a multiple of the device count and shards it over all devices."""
    devices = jax.devices()
    pad = (-n_runs) % len(devices)
    if pad:
        tree = jax.tree.map(lambda a: jnp.concatenate([a, jnp.repeat(a[-1:], pad, axis=0)]), tree)
    mesh = jax.sharding.Mesh(np.asarray(devices), ("runs",))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("runs"))
    return jax.device_put(tree, sharding)


def _gather(tree: Any) -> Any:
    if jax.process_count() > 1:
        return multihost_utils.process_allgather(tree, tiled=True)
    return jax.device_get(tree)


def _rows(chunk: list[dict], history: dict, log_every: int, columns: list[str]) -> list[dict]:
    rows = []
    steps = len(next(iter(history.values()))[0])
    logged = sorted(set(range(0, steps, log_every)) | {steps - 1})
    for i, run in enumerate(chunk):
        base = {"run": run["run"], "seed": run["seed"], **{c: run[c] for c in columns}}
        for metric, values in history.items():
            values = np.asarray(values[i])
            if values.ndim != 1:
                continue
            rows.extend({**base, "step": s, "metric": metric, "value": float(values[s])} for s in logged)
    return rows


def _check_resume(out: Path, cfg: dict) -> None:
    marker = out / "config.json"
    if marker.exists():
        old = json.loads(marker.read_text())
        if old.get("hash") != digest(cfg):
            raise ConfigError(f"{out} holds a sweep of a different config (hash {old.get('hash')} != {digest(cfg)}); "
                              "use a new --out folder or the original config")
    else:
        io.write_json(marker, {"config": cfg, "hash": digest(cfg)})


def run_sweep(cfg: dict, build: Any, out: str | Path | None = None, *, progress: bool = True) -> Table:
    """Runs the sweep described by a merged config; see the module docstring."""
    if cfg.get("sweep", {}).get("distributed", False):
        jax.distributed.initialize()
    groups, axes = plan(cfg, build)
    columns = list(axes)
    out = Path(out) if out is not None else io.new_run_dir("runs", cfg["experiment"]["name"] + "-sweep")
    writer = jax.process_index() == 0
    if writer:
        out.mkdir(parents=True, exist_ok=True)
        _check_resume(out, cfg)
    chunk_runs = int(cfg.get("sweep", {}).get("chunk_runs", 64))
    n_total = sum(len(g.runs) for g in groups)
    if progress:
        print(f"  sweep: {n_total} runs in {len(groups)} compiled program(s); results in {out}", flush=True)
    done, start = 0, time.perf_counter()
    for gi, group in enumerate(groups):
        train = None
        for ci in range(0, len(group.runs), chunk_runs):
            chunk = group.runs[ci:ci + chunk_runs]
            name = f"g{gi:03d}-c{ci // chunk_runs:04d}"
            if (out / "chunks" / f"{name}.csv").exists():
                done += len(chunk)
                continue
            if train is None:
                train, compiled = jax.jit(jax.vmap(_train_fn(cfg, group, build))), {}
            seeds = jnp.asarray([r["seed"] for r in chunk], dtype=jnp.uint32)
            values = {k: jnp.asarray([r[k] for r in chunk], dtype=jnp.result_type(float)) for k in group.traced}
            args = _shard((seeds, values), len(chunk))
            if len(chunk) not in compiled:  # compiled once per chunk size, its memory checked before it runs
                compiled[len(chunk)] = _checked_compile(train, args, len(chunk), chunk_runs)
            final_params, history = _gather(compiled[len(chunk)](*args))
            history = jax.tree.map(lambda a: a[: len(chunk)], history)
            final_params = jax.tree.map(lambda a: a[: len(chunk)], final_params)
            if writer:
                io.save_model(out / "params" / f"{name}.eqx", final_params)
                io.write_rows(out / "chunks" / f"{name}.csv",
                              _rows(chunk, history, cfg["train"].get("log_every", 1), columns))
            done += len(chunk)
            if progress:
                elapsed = time.perf_counter() - start
                print(f"  sweep: {done}/{n_total} runs  [{elapsed:.0f}s elapsed]", flush=True)
    table = collect(out, columns) if writer else Table()
    if writer:
        _write_results(out, table)
    return table


def collect(out: Path, columns: list[str] | None = None) -> Table:
    """Reads every finished chunk of a sweep folder into one table."""
    rows = []
    for path in sorted((Path(out) / "chunks").glob("*.csv")):
        with open(path, newline="") as f:
            rows.extend(csv.DictReader(f))
    for r in rows:
        for k, v in r.items():
            r[k] = _parse(v)
    rows.sort(key=lambda r: (r["run"], r["metric"], r["step"]))
    return Table.from_rows(rows)


def _parse(v: str) -> Any:
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v


def _write_results(out: Path, table: Table) -> None:
    rows = table.rows()
    io.write_rows(out / "results.csv", rows)
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq

        tmp = out / ".results.parquet.tmp"
        pq.write_table(pa.table({k: list(v) for k, v in table.columns.items()}), tmp)
        tmp.replace(out / "results.parquet")
    except ImportError:
        pass
    final: dict[int, dict] = {}
    for r in rows:
        entry = final.setdefault(r["run"], {k: v for k, v in r.items() if k not in ("step", "metric", "value")})
        if r["step"] >= entry.get("_step_" + r["metric"], -1):
            entry["_step_" + r["metric"]] = r["step"]
            entry[r["metric"]] = r["value"]
    summary = [{k: v for k, v in e.items() if not k.startswith("_step_")} for _, e in sorted(final.items())]
    io.write_json(out / "summary.json", {"runs": summary})


def sweep(config: str | Path | dict, *, out: str | Path | None = None, progress: bool = True,
          quick: bool = False) -> Table:
    """Runs the sweep of a config file (or raw config dict) and returns its table.

    `sj.sweep("configs/<name>.toml")` is the same as `simjax sweep configs/<name>.toml`. The generic
    `train` experiment sweeps as a few compiled programs (this module); every other experiment runs
    once per grid point (`simjax._app.point_sweep`), except those whose own config has a `[sweep]`
    table, which `simjax run` sweeps in one program.
    """
    raw = load(config) if not isinstance(config, dict) else config
    module = experiment_named(raw)
    if module is generic:
        return run_sweep(merged(module, raw, quick), module.build, out, progress=progress)
    if "sweep" in module.DEFAULTS:
        raise ConfigError(f"experiment {raw['experiment']['name']!r} sweeps its own [sweep] grid in one program: "
                          "use `simjax run`")
    return run_points(module, raw, lambda r: merged(module, r, quick), out, progress=progress)
