"""Yin-Yang training: QIF with exact gradients and pseudodynamics vs exact event-driven LIF vs
surrogate-gradient clock-driven LIF (the `exact_spikes` experiment's comparison, timed).

Workload: the Yin-Yang data set (5000 train / 1000 validation / 1000 test), a 5-100-3 network with time-to-first-spike
readout (QIF, LIF: `simjax.networks.SpikingFeedForward`, event-driven, exact gradients;
surrogate: `simjax.networks.FeedForward` of LIF layers with a leaky readout, clock-driven with
`dt = 0.02`, max-over-time cross-entropy), Adam, batch 50 (100 steps per epoch), the settings of
`configs/exact_yinyang.toml`. Per model: compile time (first epoch minus the median of the
others), seconds per epoch (median over epochs after the first), validation and test accuracy
after every epoch, the test accuracy at the epoch with the best validation accuracy (mean and
standard deviation over `--seeds` seeds: data, initialisation and batch order), fraction of steps
with a non-finite gradient (those steps are skipped). Single thread, pinned
to the least busy core (`--no-pin` to use every core), float32 unless `--x64`.

Usage: `python benchmarks/exact_yinyang.py [--quick] [--epochs 15] [--seeds 5] [--models qif_exact lif_exact]`
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1000 training points, 2 epochs, hidden 30")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seeds", type=int, default=1, help="train every model for seeds 0 .. SEEDS-1 (data, init, order)")
    ap.add_argument("--models", nargs="+", default=["qif_exact", "lif_exact", "lif_surrogate"])
    ap.add_argument("--x64", action="store_true", help="float64 (default float32)")
    ap.add_argument("--no-pin", action="store_true", help="do not restrict to one pinned thread")
    ap.add_argument("--out", type=Path, default=_common.RESULTS / "exact_yinyang.json")
    args = ap.parse_args()
    threads = _common.single_thread(pin=True) if not args.no_pin else {"xla_flags": "", "pinned_core": None}

    import jax

    jax.config.update("jax_enable_x64", bool(args.x64))
    from simjax._app.experiments.exact_spikes import DEFAULTS, MODELS, learning_rate, train_yinyang, yinyang_setup

    cfg = copy.deepcopy(DEFAULTS)
    cfg["yinyang"]["epochs"] = args.epochs
    if args.quick:
        cfg["yinyang"].update(n_train=1000, hidden=30, epochs=2)
    for name in args.models:
        if name not in MODELS:
            ap.error(f"unknown model {name!r}; expected among {', '.join(MODELS)}")
    y = cfg["yinyang"]
    results = {}
    for name in args.models:
        runs = []
        for seed in range(args.seeds):
            print(f"{name}, seed {seed}:", flush=True)
            cfg["experiment"] = {**cfg.get("experiment", {}), "seed": seed}
            key = jax.random.key(seed)
            model, task = yinyang_setup(cfg, name, jax.random.fold_in(key, 1))
            load = _common.ForeignLoad().start()
            start = time.perf_counter()
            _, hist = train_yinyang(model, task, epochs=y["epochs"], batch_size=y["batch_size"],
                                    learning_rate=learning_rate(cfg, name), key=jax.random.fold_in(key, 2),
                                    log=lambda line: print(line, flush=True))
            total = time.perf_counter() - start
            epochs = hist["epochs"]
            later = [r["seconds"] for r in epochs[1:]] or [epochs[0]["seconds"]]
            per_epoch = statistics.median(later)
            steps = sum(r["steps"] for r in epochs)
            runs.append({
                "seed": seed, "seconds_per_epoch": round(per_epoch, 4),
                "compile_seconds": round(epochs[0]["seconds"] - per_epoch, 3), "total_seconds": round(total, 2),
                "test_accuracy": hist["selected"]["test_accuracy"], "selected_epoch": hist["selected"]["epoch"],
                "validation_accuracy": hist["selected"]["validation_accuracy"],
                "final_test_accuracy": epochs[-1]["test_accuracy"],
                "initial_test_accuracy": hist["initial"]["accuracy"], "initial_silent": hist["initial"]["silent"],
                "nonfinite_gradient_fraction": sum(r["nonfinite_steps"] for r in epochs) / steps,
                "validation_accuracy_per_epoch": [round(r["validation_accuracy"], 4) for r in epochs],
                "test_accuracy_per_epoch": [round(r["test_accuracy"], 4) for r in epochs],
                "seconds_per_epoch_all": [round(r["seconds"], 3) for r in epochs],
                "foreign_cores": round(load.stop(), 3)})
        acc = [r["test_accuracy"] for r in runs]
        results[name] = {"runs": runs, "test_accuracy_mean": statistics.mean(acc),
                         "test_accuracy_std": statistics.stdev(acc) if len(acc) > 1 else None,
                         "seconds_per_epoch": statistics.median(r["seconds_per_epoch"] for r in runs),
                         "compile_seconds": runs[0]["compile_seconds"],
                         "nonfinite_gradient_fraction": statistics.mean(r["nonfinite_gradient_fraction"] for r in runs)}
    report = {"benchmark": "exact_yinyang", "config": y, "demo": cfg["demo"],
              "dtype": "float64" if args.x64 else "float32",
              "threads": threads, "machine": _common.machine(), "results": results}
    path = _common.write_json(args.out, report)
    print(f"\n{'model':<14} {'s/epoch':>8} {'compile s':>9} {'test acc (mean +- std over seeds)':>34} "
          f"{'non-finite':>10}")
    for name, r in results.items():
        spread = "" if r["test_accuracy_std"] is None else f" +- {r['test_accuracy_std']:.3f}"
        print(f"{name:<14} {r['seconds_per_epoch']:8.3f} {r['compile_seconds']:9.1f} "
              f"{r['test_accuracy_mean']:>24.3f}{spread:>10} {r['nonfinite_gradient_fraction']:10.3f}")
    print("(test accuracy at each run's epoch with the best validation accuracy)")
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
