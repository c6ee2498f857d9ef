"""The implicit-bias tables as vmapped programs against a loop of the jitted single run and a per-run
NumPy implementation, in the same process.

Workloads (the configs' full sizes):

- XOR detection: m = 6, 10, 20, 40 x k = 2, 4, 10, 50 x 20 seeds, 5000 full-batch steps, one
  program per width (`simjax._app.experiments.implicit_bias.detection_run`);
- read-once DNF: m = 128, 512 x init scale 1e-3, 0.3, 1 x 10 seeds, r = 50, 3000 steps (`dnf_run`).

For each table it times, after compilation: `grouped` (what the experiment runs: for XOR
`detection_grid_program`, all runs of a width with the run index on the vectorised last axis and
the gradient written out; for the DNF one `vmap` per training-set size on that size's points;
median of `--repeats` calls), `vmapped` (the whole table in one `vmap` of the single run, padded to
the largest size), `chunked` (`lax.map` over vmapped chunks of `--chunk` runs, the previous default),
`loop` (the same single-run program jitted once, called run after run; timed on `--loop-runs` runs
per program and scaled to the table) and `numpy` (gradient descent written out in NumPy, vectorised
over the training points, the same data and initialisation; timed on `--numpy-runs` runs per program
and scaled). The NumPy runs double as an independent check: their final weights must match the JAX
runs'. Single thread, pinned (see `_common.py`). Writes `benchmarks/results/implicit_bias.json`.

Usage: `python benchmarks/implicit_bias.py [--quick] [--loop-runs 8] [--numpy-runs 2] [--repeats 3]`
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402


def numpy_maxpool(x, y, weights, w, u, lr, steps):
    """Hinge-loss gradient descent of the max-pool detector, NumPy (x [n, d, p])."""
    w, u = w.copy(), u.copy()
    scale = weights / weights.sum()
    rows = np.arange(x.shape[0])[:, None]

    def side(f):
        z = np.einsum("ndp,kp->nkd", x, f)
        j = np.argmax(z, axis=2)
        m = np.take_along_axis(z, j[..., None], axis=2)[..., 0]
        return m, j

    for _ in range(steps):
        mw, jw = side(w)
        mu, ju = side(u)
        out = np.maximum(mw, 0).sum(1) - np.maximum(mu, 0).sum(1)
        g = -y * (y * out < 1) * scale
        gw = np.einsum("nk,nkp->kp", g[:, None] * (mw > 0), x[rows, jw])
        gu = -np.einsum("nk,nkp->kp", g[:, None] * (mu > 0), x[rows, ju])
        w -= lr * gw
        u -= lr * gu
    return w, u


def numpy_convex(x, y, weights, w, b, lr, steps):
    """Hinge-loss gradient descent of the convex ReLU network (offset -1), NumPy."""
    w, b = w.copy(), b.copy()
    scale = weights / weights.sum()
    for _ in range(steps):
        pre = x @ w.T + b
        out = np.maximum(pre, 0).sum(1) - 1.0
        g = (-y * (y * out < 1) * scale)[:, None] * (pre > 0)
        w -= lr * g.T @ x
        b -= lr * g.sum(0)
    return w, b


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small tables, 200 steps")
    ap.add_argument("--loop-runs", type=int, default=8)
    ap.add_argument("--numpy-runs", type=int, default=2)
    ap.add_argument("--chunk", type=int, default=16, help="runs per vmapped chunk of the chunked program")
    ap.add_argument("--repeats", type=int, default=3, help="timed calls of the grouped program (median)")
    args = ap.parse_args(argv)
    threads = _common.single_thread()
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    import simjax as sj
    from simjax._app import config
    from simjax._app.experiments import implicit_bias as ib

    over = {"train": {"seeds": 20}}
    if args.quick:
        over = {"train": {"seeds": 2}, "xor": {"steps": 200, "widths": [2, 50]}, "dnf": {"steps": 200}}
    cfg = config.merge(ib.DEFAULTS, config.overlay(over, {}))
    dnf_cfg = config.merge(cfg, {"train": {"seeds": 2 if args.quick else 10}})
    block = jax.block_until_ready
    dtype = jnp.result_type(float)

    def programs():
        xc = cfg["xor"]
        task = ib.detection_task(cfg, "xor")
        for k in xc["widths"]:
            grid = ib._mesh(seed=np.arange(cfg["train"]["seeds"]), size=np.asarray(xc["sizes"]))
            program = ib.detection_grid_program(cfg, "xor", k)
            grouped = [lambda program=program, grid=grid: program(jnp.asarray(grid["seed"], jnp.uint32),
                                                                  jnp.asarray(grid["size"], dtype))]
            yield "xor", f"k={k}", ib.detection_run(cfg, "xor", k), grid, (task, k, xc), grouped
        dc = dnf_cfg["dnf"]
        grid = ib._mesh(seed=np.arange(dnf_cfg["train"]["seeds"]), size=np.asarray(dc["sizes"]),
                        init_scale=np.asarray(dc["init_scales"], float))
        grouped = []
        for size in dc["sizes"]:
            part = ib._mesh(seed=np.arange(dnf_cfg["train"]["seeds"]), size=np.asarray([size]),
                            init_scale=np.asarray(dc["init_scales"], float))
            cols = [jnp.asarray(v, jnp.uint32 if k == "seed" else dtype) for k, v in part.items()]
            program = jax.jit(jax.vmap(ib.dnf_run(dnf_cfg, size)))
            grouped.append(lambda program=program, cols=cols: program(*cols))
        yield "dnf", "all", ib.dnf_run(dnf_cfg), grid, (None, None, dc), grouped

    def numpy_run(table, extra, point):
        task, k, c = extra
        key = jax.random.key(int(point["seed"]))
        largest = max(c["sizes"])
        weights = (np.arange(largest) < point["size"]).astype(float)
        t = sj.tasks.ReadOnceDNF(c["dim"], c["terms"]) if table == "dnf" else task
        data = t.sample(jax.random.fold_in(key, 1), largest)
        x, y = np.asarray(data.inputs), np.asarray(data.targets)
        if table == "xor":
            net = sj.networks.MaxPoolDetector(2, k, init_scale=c["init_scale"], key=jax.random.fold_in(key, 0))
            args_ = (np.asarray(net.w), np.asarray(net.u))
            t0 = time.perf_counter()
            res = numpy_maxpool(x, y, weights, *args_, c["learning_rate"], c["steps"])
        else:
            net = sj.networks.ConvexReLUNetwork(c["dim"], c["width"], init_scale=point["init_scale"],
                                       key=jax.random.fold_in(key, 0))
            args_ = (np.asarray(net.w), np.asarray(net.b))
            t0 = time.perf_counter()
            res = numpy_convex(x, y, weights, *args_, c["learning_rate"], c["steps"])
        return time.perf_counter() - t0, res

    results = {}
    for table, label, run, grid, extra, grouped in programs():
        n = len(grid["seed"])
        cols = [jnp.asarray(v, jnp.uint32 if k == "seed" else dtype) for k, v in grid.items()]
        t0 = time.perf_counter()
        for part in grouped:
            block(part())
        compile_grouped = time.perf_counter() - t0
        t_grouped = _common.interleaved({"grouped": lambda: [block(part()) for part in grouped]}, steps=1,
                                        repeats=args.repeats)["grouped"]["median_ms"] / 1e3
        batched = jax.jit(jax.vmap(run))
        single = jax.jit(run)
        t0 = time.perf_counter()
        block(batched(*cols))
        compile_vmapped = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = block(batched(*cols))
        t_vmapped = time.perf_counter() - t0
        chunked = jax.jit(lambda *c, run=run: jax.lax.map(lambda a: run(*a), c, batch_size=args.chunk))
        block(chunked(*cols))
        t0 = time.perf_counter()
        block(chunked(*cols))
        t_chunked = time.perf_counter() - t0
        block(single(*(c[0] for c in cols)))
        picks = np.linspace(0, n - 1, min(args.loop_runs, n)).astype(int)
        t0 = time.perf_counter()
        for i in picks:
            block(single(*(c[i] for c in cols)))
        t_loop = (time.perf_counter() - t0) / len(picks) * n
        np_picks = np.linspace(0, n - 1, min(args.numpy_runs, n)).astype(int)
        t_np, max_dev = 0.0, 0.0
        for i in np_picks:
            dt, res = numpy_run(table, extra, {k: v[i] for k, v in grid.items()})
            t_np += dt
            ref = (out["w"][i], out["u"][i] if table == "xor" else out["b"][i])
            max_dev = max(max_dev, *(float(np.max(np.abs(a - b))) for a, b in zip(res, ref)))
        t_np = t_np / len(np_picks) * n
        row = {"runs": n, "grouped_s": t_grouped, "vmapped_s": t_vmapped, "chunked_s": t_chunked,
               "loop_s_scaled": t_loop, "numpy_s_scaled": t_np, "compile_and_first_run_grouped_s": compile_grouped,
               "compile_and_first_run_vmapped_s": compile_vmapped, "grouped_over_loop": t_loop / t_grouped,
               "grouped_over_numpy": t_np / t_grouped, "grouped_over_chunked": t_chunked / t_grouped,
               "vmap_over_loop": t_loop / t_vmapped, "chunked_over_loop": t_loop / t_chunked,
               "chunked_over_numpy": t_np / t_chunked, "numpy_max_weight_difference": max_dev}
        results.setdefault(table, {})[label] = row
        print(f"{table} {label:>5}: {n:>3} runs  grouped {t_grouped:7.2f} s  vmapped {t_vmapped:7.2f} s  chunked "
              f"{t_chunked:7.2f} s  loop {t_loop:7.2f} s  numpy {t_np:8.2f} s  -> grouped "
              f"{row['grouped_over_loop']:4.1f}x the loop, {row['grouped_over_numpy']:5.1f}x numpy, "
              f"{row['grouped_over_chunked']:4.1f}x chunked (numpy weights within {max_dev:.1e})", flush=True)
    for table, rows in results.items():
        keys = ("grouped_s", "vmapped_s", "chunked_s", "loop_s_scaled", "numpy_s_scaled")
        tot = {k: sum(r[k] for r in rows.values()) for k in keys}
        rows["total"] = {**tot, "grouped_over_loop": tot["loop_s_scaled"] / tot["grouped_s"],
                         "grouped_over_numpy": tot["numpy_s_scaled"] / tot["grouped_s"],
                         "grouped_over_chunked": tot["chunked_s"] / tot["grouped_s"],
                         "vmap_over_loop": tot["loop_s_scaled"] / tot["vmapped_s"],
                         "chunked_over_loop": tot["loop_s_scaled"] / tot["chunked_s"],
                         "chunked_over_numpy": tot["numpy_s_scaled"] / tot["chunked_s"]}
        t = rows["total"]
        print(f"{table} table: grouped {tot['grouped_s']:.1f} s ({t['grouped_over_loop']:.1f}x the jitted loop, "
              f"{t['grouped_over_numpy']:.1f}x NumPy, {t['grouped_over_chunked']:.1f}x the chunked vmap); vmapped "
              f"{tot['vmapped_s']:.1f} s, chunked {tot['chunked_s']:.1f} s, loop {tot['loop_s_scaled']:.1f} s, "
              f"NumPy {tot['numpy_s_scaled']:.1f} s")
    out = {"benchmark": "implicit_bias", "quick": args.quick, "threads": threads, "machine": _common.machine(),
           "devices": [str(d) for d in jax.devices()], "results": results}
    path = _common.write_json(_common.RESULTS / "implicit_bias.json", out)
    print(f"written {path}")
    return out


if __name__ == "__main__":
    main()
