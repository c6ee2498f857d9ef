"""`simjax report DIR`: learning curves and final-metric plots for a run or a sweep folder."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import numpy as np

from .config import ConfigError
from .experiments.observatory import _plot_plane, markdown_table


def _read(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["step"] = int(r["step"])
        r["value"] = float(r["value"])
    return rows


def _axes(rows: list[dict]) -> list[str]:
    fixed = {"run", "seed", "step", "metric", "value", "rule"}
    return [k for k in rows[0] if k not in fixed] if rows else []


def report(folder: Path) -> list[Path]:
    """Writes `report_<metric>.png` (curves per swept value, mean and min-max band over seeds) and
    `final_<metric>_vs_<axis>.png`; prints the final-metric table. Returns the written paths."""
    folder = Path(folder)
    written = []
    if (folder / "gradient_quality.csv").exists():
        written += _gradient_quality(folder)
    source = folder / "results.csv" if (folder / "results.csv").exists() else folder / "history.csv"
    if not source.exists():
        if written:
            return written
        raise ConfigError(f"{folder} has no results.csv (sweep), history.csv (run) or gradient_quality.csv")
    rows = _read(source)
    axes = _axes(rows)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        plt = None
        print("(matplotlib not installed: tables only; pip install 'simjax[plot]')")
    by = defaultdict(lambda: defaultdict(lambda: defaultdict(dict)))  # metric -> label -> run -> step
    for r in rows:
        if r["metric"].startswith("quality/") and not np.isfinite(r["value"]):
            continue
        label = ", ".join(f"{a}={r[a]}" for a in axes) or "run"
        by[r["metric"]][label][r.get("run", 0)][r["step"]] = r["value"]
    for metric, labels in by.items():
        print(f"{metric} (final, mean over seeds):")
        if plt is not None:
            fig, ax = plt.subplots(figsize=(6, 4))
        for label, runs in labels.items():
            steps = sorted(next(iter(runs.values())))
            curves = np.asarray([[runs[r].get(s, np.nan) for s in steps] for r in runs])
            mean = np.nanmean(curves, axis=0)
            print(f"  {label:<50} {mean[-1]:.4g}  (n={len(curves)})")
            if plt is not None:
                line, = ax.plot(steps, mean, label=label)
                if len(curves) > 1:
                    ax.fill_between(steps, np.nanmin(curves, 0), np.nanmax(curves, 0), color=line.get_color(),
                                    alpha=0.2)
        if plt is not None:
            ax.set(xlabel="training step", ylabel=metric)
            if np.all(np.asarray([r["value"] for r in rows if r["metric"] == metric]) > 0):
                ax.set_yscale("log")
            ax.legend(fontsize=7)
            fig.tight_layout()
            path = folder / f"report_{metric}.png"
            fig.savefig(path, dpi=100)
            plt.close(fig)
            written.append(path)
            written += _final_vs_axis(plt, folder, rows, metric, axes)
    return written


def _final_vs_axis(plt, folder: Path, rows: list[dict], metric: str, axes: list[str]) -> list[Path]:
    written = []
    last = {}
    for r in rows:
        run = r.get("run", 0)
        if r["metric"] == metric and r["step"] >= last.get(run, {}).get("step", -1):
            last[run] = r
    for axis in axes:
        values = sorted({r[axis] for r in last.values()}, key=str)
        if len(values) < 2:
            continue
        fig, ax = plt.subplots(figsize=(5, 3.5))
        xs = np.arange(len(values))
        finals = [[r["value"] for r in last.values() if r[axis] == v] for v in values]
        ax.errorbar(xs, [np.mean(f) for f in finals], yerr=[np.std(f) for f in finals], fmt="o-", capsize=3)
        ax.set_xticks(xs, [str(v) for v in values])
        ax.set(xlabel=axis, ylabel=f"final {metric}")
        fig.tight_layout()
        path = folder / f"final_{metric}_vs_{axis.replace('.', '_')}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


def _gradient_quality(folder: Path) -> list[Path]:
    """Prints the observatory table of `gradient_quality.csv` (every group) and redraws its
    bias-variance plane."""
    with open(folder / "gradient_quality.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["value"], r["stderr"] = float(r["value"]), float(r["stderr"])
    for group in dict.fromkeys(r["group"] for r in rows):
        print(f"gradient quality, parameter group {group!r}:")
        print(markdown_table(rows, group))
    _plot_plane(folder, rows)
    return [folder / "bias_variance_plane.png"]
