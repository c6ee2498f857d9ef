"""e-prop's three tasks at full size (Bellec et al. 2020), with the final held-out figures against the
targets the study sets, each run through the shipped config (`simjax._app.experiments.eprop`).

| case | config, overrides | target |
|---|---|---|
| pattern_{symmetric,random,adaptive,bptt} | `eprop_pattern.toml` (N = 100 LIF, 1000 iterations) | NMSE <= 0.10 |
|  |  | symmetric, <= 0.05 BPTT, random within 2x of symmetric |
| pattern600_{symmetric,bptt} | the same with N = 600 | (paper scale) |
| store_recall_{alif,lif} | `eprop_store_recall.toml`; LIF: `beta = 0` | ALIF >= 95 % at delays >= 600 ms; |
|  |  | LIF-only <= 65 % |
| evidence_{alif,lif} | `eprop_evidence.toml`; LIF: `beta = 0` | ALIF >= 85 %; LIF-only near chance |

Metrics are measured on held-out trials after training (`test_*`; 256 trials, 1 frozen pattern for
pattern generation); the settings are the paper's, fixed in advance (nothing is selected on these
trials). With `--seeds K` every case runs for seeds `0 .. K-1` and the JSON holds every seed's
value with the mean, standard deviation and standard error. Each finished run is appended to
`results/eprop_reproduce.json` at once, so an interrupted run keeps what it finished; `--only`
reruns chosen cases and merges them in. Each run's folder (learning curve, outputs and raster in
`eprop.png`) goes to `runs/eprop_reproduce/<case>-seed<k>`.

Usage: `python benchmarks/eprop_reproduce.py [--only pattern_symmetric store_recall_alif ...] [--seeds 5] [--quick]`
(about 25 min on 2 CPU cores; `--quick`: the configs' seconds-long forms, to check the script).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
LIF_ONLY = {"model.neuron": {"type": "alif", "tau_mem": 20.0, "v_th": 0.6, "tau_adapt": 2000.0, "beta": 0.0}}

# name -> (config, dotted overrides, metric, target as (comparison, value) or None)
CASES = {
    "pattern_symmetric": ("eprop_pattern", {}, "test_nmse", ("<=", 0.10)),
    "pattern_random": ("eprop_pattern", {"rule.variant": "random"}, "test_nmse", ("<=", "2x pattern_symmetric")),
    "pattern_adaptive": ("eprop_pattern", {"rule.variant": "adaptive"}, "test_nmse", None),
    "pattern_bptt": ("eprop_pattern", {"rule": {"type": "exact"}}, "test_nmse", ("<=", 0.05)),
    "pattern600_symmetric": ("eprop_pattern", {"model.n_rec": 600}, "test_nmse", ("<=", 0.10)),
    "pattern600_bptt": ("eprop_pattern", {"model.n_rec": 600, "rule": {"type": "exact"}}, "test_nmse",
                        ("<=", 0.05)),
    "store_recall_alif": ("eprop_store_recall", {}, "test_accuracy_delay_ge_600ms", (">=", 0.95)),
    "store_recall_lif": ("eprop_store_recall", LIF_ONLY, "test_accuracy_delay_ge_600ms", ("<=", 0.65)),
    "evidence_alif": ("eprop_evidence", {}, "test_accuracy", (">=", 0.85)),
    "evidence_lif": ("eprop_evidence", LIF_ONLY, "test_accuracy", ("<=", 0.65)),
}


def run_case(name: str, quick: bool, out_root: Path, seed: int = 0) -> dict:
    from simjax._app import config as cfgmod
    from simjax._app.experiments import eprop

    config, overrides, metric, target = CASES[name]
    raw = cfgmod.load(CONFIGS / f"{config}.toml")
    quick_overrides = raw.pop("quick", {})
    raw.update({k: v for k, v in overrides.items() if "." not in k})            # whole sections
    dotted = {k: v for k, v in overrides.items() if "." in k}
    raw["quick"] = {"apply": True, **(quick_overrides if quick else {}), **dotted, "experiment.seed": seed}
    cfg = eprop.merge_config(raw)
    eprop.validate(cfg)
    start = time.perf_counter()
    final = eprop.run(cfg, out_root / f"{name}-seed{seed}")
    return {"config": f"configs/{config}.toml", "overrides": overrides, "metric": metric,
            "value": final.get(metric), "target": target, "final": final,
            "seconds": time.perf_counter() - start}


def summarize(runs: list[dict]) -> dict:
    """Per-seed values of a case's metric with their mean, standard deviation and standard error."""
    values = [r["value"] for r in runs if r["value"] is not None]
    n = len(values)
    mean = sum(values) / n if n else None
    std = (sum((v - mean) ** 2 for v in values) / (n - 1)) ** 0.5 if n > 1 else None
    return {**runs[-1], "seeds": [r["seed"] for r in runs], "values": values, "value": mean, "std": std,
            "sem": None if std is None else std / n**0.5}


def verdict(name: str, results: dict) -> str:
    r = results[name]
    if r["target"] is None or r["value"] is None:
        return ""
    op, bound = r["target"]
    if isinstance(bound, str):                       # "2x <case>"
        factor, other = bound.split("x ")
        if other not in results:
            return "?"
        bound = float(factor) * results[other]["value"]
    ok = r["value"] <= bound if op == "<=" else r["value"] >= bound
    return f"{'met' if ok else 'NOT met'} ({op} {bound:.3g})"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="+", choices=sorted(CASES), default=None)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--seeds", type=int, default=1, help="run every case for seeds 0 .. SEEDS-1")
    p.add_argument("--runs", default="runs/eprop_reproduce", help="run folders (plots, histories, parameters)")
    args = p.parse_args(argv)
    machine = _common.machine()
    out = _common.RESULTS / ("eprop_reproduce_quick.json" if args.quick else "eprop_reproduce.json")
    previous = json.loads(out.read_text())["results"] if out.exists() else {}
    results = dict(previous)
    runs = Path(args.runs)
    for name in args.only or CASES:
        done = [r for r in previous.get(name, {}).get("runs", []) if r["seed"] < args.seeds]
        for seed in range(args.seeds):
            if any(r["seed"] == seed for r in done):
                continue
            print(f"=== {name} seed {seed}")
            done.append({**run_case(name, args.quick, runs, seed), "seed": seed})
            results[name] = {**summarize(sorted(done, key=lambda r: r["seed"])), "runs": done}
            _common.write_json(out, {"machine": machine, "results": results})
    print(f"\n{'case':24s} {'metric':30s} {'value':>8s}  target")
    for name in CASES:
        if name in results:
            r = results[name]
            value = "-" if r["value"] is None else f"{r['value']:.4f}"
            spread = "" if r.get("sem") is None else f" +- {r['sem']:.4f} (sem, {len(r['values'])} seeds)"
            print(f"{name:24s} {r['metric']:30s} {value:>8s}{spread}  {verdict(name, results)}")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
