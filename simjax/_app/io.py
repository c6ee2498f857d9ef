"""Run folders and atomic file writes (a crash never leaves a half-written result)."""

from __future__ import annotations

import csv
import io as _io
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import equinox as eqx
import numpy as np


def atomic_write(path: str | Path, data: str | bytes) -> None:
    """Writes `data` to a temporary file beside `path` and renames it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if hasattr(x, "shape"):
        a = np.asarray(x)
        return a.item() if a.ndim == 0 else a.tolist()
    return x


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write(path, json.dumps(_plain(obj), indent=2, sort_keys=True) + "\n")


def write_rows(path: str | Path, rows: list[dict]) -> None:
    """Writes a tidy table (list of dicts with the same keys) as CSV."""
    buf = _io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    atomic_write(path, buf.getvalue())


def history_rows(history: dict, **columns: Any) -> list[dict]:
    """A metric history `{name: [steps]}` as tidy rows `(columns..., step, metric, value)`."""
    rows = []
    for name, values in history.items():
        values = np.asarray(values)
        if values.ndim != 1:
            continue
        rows.extend({**columns, "step": i, "metric": name, "value": float(v)} for i, v in enumerate(values))
    return rows


def save_model(path: str | Path, tree: Any) -> None:
    """Serialises a pytree of arrays (equinox leaf serialisation), atomically."""
    buf = _io.BytesIO()
    eqx.tree_serialise_leaves(buf, tree)
    atomic_write(path, buf.getvalue())


def new_run_dir(root: str | Path, name: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = Path(root) / f"{name}-{stamp}"
    k = 1
    while path.exists():
        path = Path(root) / f"{name}-{stamp}-{k}"
        k += 1
    path.mkdir(parents=True)
    return path


def save_figure(path: str | Path, draw: Any, figsize: tuple[float, float] = (6, 4)) -> None:
    """Draws one figure with `draw(ax)` and saves it as `path`; without matplotlib (the `plot`
    extra) it prints how to install it and saves nothing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib not installed: no plot; pip install 'simjax[plot]')")
        return
    fig, ax = plt.subplots(figsize=figsize)
    draw(ax)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
