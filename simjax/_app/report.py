"""`simjax report DIR`: learning curves and final-metric plots for a run or a sweep folder."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from .config import ConfigError
from .experiments.observatory import markdown_report, plot_alignment, plot_plane


def _read(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["step"] = int(r["step"])
        r["value"] = float(r["value"])
    return rows


def _axes(rows: list[dict]) -> list[str]:
    """The columns that label a curve: the rule (runs comparing rules) and the swept settings."""
    fixed = {"run", "seed", "step", "metric", "value"}
    return [k for k in rows[0] if k not in fixed] if rows else []


def report(folder: Path) -> list[Path]:
    """Reports every table a run, sweep or gradient-quality folder holds: learning curves
    (`history.csv` or a sweep's `results.csv`, tidy `step, metric, value` rows) as
    `report_<metric>.png` (one curve per rule / swept value, mean and min-max band over seeds) and
    `final_<metric>_vs_<axis>.png` with the final-metric table; `gradient_quality.csv` as the
    observatory's tables (the headline aggregate of the groups each rule approximates first, then
    every group, then the total, then the alignment along training of `alignment.csv`) and its
    bias-variance plane, and `alignment.csv` as its alignment-over-training figure; any other CSV
    table as means with their standard deviation over seeds (see `_summary_table`). Returns the
    written paths."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{folder} is not a folder (expected a run or sweep folder written by simjax)")
    written = []
    tables = sorted(folder.glob("*.csv"))
    if not tables:
        raise ConfigError(f"{folder} holds no CSV table (expected the folder of a simjax run or sweep)")
    if (folder / "gradient_quality.csv").exists():
        written += _gradient_quality(folder)
    if (folder / "alignment.csv").exists():
        written += _alignment(folder)
    source = folder / "results.csv" if (folder / "results.csv").exists() else folder / "history.csv"
    curves = source.exists() and {"step", "metric", "value"} <= set(_header(source))
    swept = _swept_keys(folder)
    for path in tables:
        if path.name not in ("gradient_quality.csv", "alignment.csv") and not (curves and path == source):
            _summary_table(path, swept)
    if curves:
        written += _curves(folder, _read(source))
    return written


def _header(path: Path) -> list[str]:
    with open(path, newline="") as f:
        return next(csv.reader(f), [])


def _swept_keys(folder: Path) -> list[str]:
    """The swept keys of a point sweep's folder (its `config.json` keeps the `[sweep]` table)."""
    marker = folder / "config.json"
    spec = json.loads(marker.read_text()).get("sweep") if marker.exists() else None
    return [k for k in spec if k != "seeds"] if isinstance(spec, dict) else []


def _summary_table(path: Path, swept: list[str] = ()) -> None:
    """Prints a CSV table grouped by its settings, the text and integer columns and the `swept`
    ones (`seed` and `run` excepted); every other number column is shown as mean +- standard
    deviation over the rows of a group (n), a float-valued setting with a standard deviation of 0."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return

    def number(v):
        try:
            return float(v)
        except ValueError:
            return None

    columns = [c for c in rows[0] if c not in ("seed", "run")]
    numeric = {c for c in columns if all(number(r[c]) is not None for r in rows)}
    integer = {c for c in numeric if all(r[c].lstrip("-").isdigit() for r in rows)}  # written as integers
    keys = [c for c in columns if c not in numeric or c in integer or c in swept]
    values = [c for c in columns if c not in keys]
    groups = defaultdict(list)
    for r in rows:
        groups[tuple(r[k] for k in keys)].append(r)
    print(f"{path.name}: " + (f"mean +- sd over rows of each ({', '.join(keys)})" if keys else "mean +- sd"))
    for key, members in groups.items():
        label = ", ".join(f"{k}={v}" for k, v in zip(keys, key))
        cells = []
        for c in values:
            x = np.asarray([float(r[c]) for r in members])
            cells.append(f"{c} {np.mean(x):.4g}" + (f" +- {np.std(x, ddof=1):.2g}" if len(x) > 1 else ""))
        print(f"  {label:<40} " + "  ".join(cells) + f"  (n={len(members)})")


def _curves(folder: Path, rows: list[dict]) -> list[Path]:
    written = []
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
        by[r["metric"]][label][(r.get("run"), r.get("seed"))][r["step"]] = r["value"]  # one curve per run
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
        run = (r.get("run"), r.get("seed"), *(r[a] for a in axes))
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
    """Prints the observatory tables of `gradient_quality.csv` (the headline first) and redraws
    its bias-variance plane."""
    with open(folder / "gradient_quality.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["value"], r["stderr"] = float(r["value"]), float(r["stderr"])
    print(markdown_report(rows, _alignment_rows(folder)))
    path = plot_plane(folder / "bias_variance_plane.png", rows)
    return [path] if path is not None else []


def _alignment_rows(folder: Path) -> list[dict]:
    """The rows of the observatory's `alignment.csv` (none if absent)."""
    if not (folder / "alignment.csv").exists():
        return []
    with open(folder / "alignment.csv", newline="") as f:
        return list(csv.DictReader(f))


def _alignment(folder: Path) -> list[Path]:
    """Redraws the observatory's alignment along training from `alignment.csv`."""
    rows = _alignment_rows(folder)
    if not rows:
        return []
    path = plot_alignment(folder / "alignment.png", rows)
    return [path] if path is not None else []
