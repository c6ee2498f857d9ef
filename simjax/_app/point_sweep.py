"""`simjax sweep` for the study experiments: one run of the experiment per grid point.

The generic `train` experiment sweeps as a few compiled programs (`simjax._app.sweep`). The study
experiments (implicit bias, analogical mapping, plasticity, E/I networks, ...) compile their own
programs, most of them already vmapped over the seeds and settings of their table; sweeping one of
them runs it once per point of the config's `[sweep]` grid:

```toml
[sweep]
seeds = 3                                   # experiment.seed = seed, seed + 1, seed + 2
"train.init_scale" = [1e-3, 1e-2]           # any key of the experiment's config, dotted
```

Each point runs into `points/pNNNN/` (its own `config.json`, `summary.json`, tables and figures)
and is marked finished by `points/pNNNN/done.json`, written atomically last; rerunning the same
command with the same `--out` resumes after the last finished point, and a folder written by a
different config is refused. After every point, `results.csv` (one row per point: its index `run`,
its swept values and every number of its `summary.json`, nested keys dotted) and `summary.json` are
rewritten; `simjax report` groups that table by the swept values (mean +- sd over seeds).
"""

from __future__ import annotations

import copy
import itertools
import json
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from .._table import Table
from . import io
from .config import ConfigError, digest


def grid_of(spec: dict, base: dict) -> list[dict]:
    """The points of a `[sweep]` table, each `{dotted key: value}` with `experiment.seed` set; keys
    must exist in the merged base config `base`."""
    spec = dict(spec)
    seeds = spec.pop("seeds", 1)
    first = base["experiment"].get("seed", 0)
    if isinstance(seeds, int) and not isinstance(seeds, bool) and seeds > 0:
        seeds = list(range(first, first + seeds))
    elif not (isinstance(seeds, list) and seeds and all(isinstance(s, int) and not isinstance(s, bool)
                                                       for s in seeds)):
        raise ConfigError(f"sweep.seeds = {seeds!r} is not allowed: expected a positive integer or a list of ints")
    for key, values in spec.items():
        node = base
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                raise ConfigError(f"sweep axis {key!r} is not a key of experiment {base['experiment']['name']!r} "
                                  "(see `simjax list --keys NAME`)")
            node = node[part]
        if not isinstance(values, list) or not values:
            raise ConfigError(f"sweep.{key} = {values!r} is not allowed: expected a non-empty list of values")
    names = list(spec)
    return [{**dict(zip(names, combo)), "experiment.seed": seed}
            for combo in itertools.product(*spec.values()) for seed in seeds]


def _with(raw: dict, point: dict) -> dict:
    out = copy.deepcopy(raw)
    for dotted, value in point.items():
        *path, last = dotted.split(".")
        node = out
        for part in path:
            node = node.setdefault(part, {})
        node[last] = value
    return out


def _numbers(tree: Any, prefix: str = "") -> dict[str, Any]:
    """The scalar leaves of a JSON tree, nested keys dotted."""
    if isinstance(tree, dict):
        out = {}
        for k, v in tree.items():
            out.update(_numbers(v, f"{prefix}{k}."))
        return out
    if isinstance(tree, (bool, int, float, str)):
        return {prefix[:-1]: tree}
    return {}


def run_points(module: ModuleType, raw: dict, merge: Callable[[dict], dict], out: str | Path | None = None, *,
               progress: bool = True) -> Table:
    """Runs experiment `module` once per point of `raw`'s `[sweep]` grid (see the module docstring);
    `merge` turns a raw config into the experiment's merged, validated config."""
    raw = dict(raw)
    spec = raw.pop("sweep", {})
    if not isinstance(spec, dict):
        raise ConfigError(f"[sweep] must be a table, got {spec!r}")
    base = merge(raw)
    points = grid_of(spec, base)
    configs = []
    for point in points:  # every point is merged and validated before anything runs
        try:
            configs.append(merge(_with(raw, point)))
        except ConfigError as err:
            raise ConfigError(f"sweep point {point}: {err}") from None
    out = Path(out) if out is not None else io.new_run_dir("runs", base["experiment"]["name"] + "-sweep")
    out.mkdir(parents=True, exist_ok=True)
    marker, signature = out / "config.json", digest({"config": base, "sweep": spec})
    if marker.exists():
        old = json.loads(marker.read_text()).get("hash")
        if old != signature:
            raise ConfigError(f"{out} holds a sweep of a different config (hash {old} != {signature}); "
                              "use a new --out folder or the original config")
    else:
        io.write_json(marker, {"config": base, "sweep": spec, "hash": signature})
    if progress:
        print(f"  sweep: {len(points)} runs of {base['experiment']['name']}, one per point; results in {out}",
              flush=True)
    start = time.perf_counter()
    for i, (point, cfg) in enumerate(zip(points, configs)):
        folder = out / "points" / f"p{i:04d}"
        if (folder / "done.json").exists():
            continue
        folder.mkdir(parents=True, exist_ok=True)
        io.write_json(folder / "config.json", {"config": cfg, "hash": digest(cfg)})
        module.run(cfg, folder)
        summary = json.loads((folder / "summary.json").read_text()) if (folder / "summary.json").exists() else {}
        io.write_json(folder / "done.json", {"point": point, "summary": summary})
        _write_results(out, points)
        if progress:
            print(f"  sweep: {i + 1}/{len(points)} points  [{time.perf_counter() - start:.0f}s elapsed]", flush=True)
    return _write_results(out, points)


def _write_results(out: Path, points: list[dict]) -> Table:
    rows = []
    for i, point in enumerate(points):
        done = out / "points" / f"p{i:04d}" / "done.json"
        if done.exists():
            entry = json.loads(done.read_text())
            rows.append({"run": i, **{k.removeprefix("experiment."): v for k, v in point.items()},
                         **_numbers(entry["summary"])})
    columns = list(dict.fromkeys(k for r in rows for k in r))
    rows = [{k: r.get(k, float("nan")) for k in columns} for r in rows]
    io.write_rows(out / "results.csv", rows)
    io.write_json(out / "summary.json", {"points": rows})
    return Table.from_rows(rows) if rows else Table()
